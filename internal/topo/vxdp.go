//go:build linux

package topo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// VXDP is a vxdp node service running on one host of a topology, in place of the kernel's
// vxlan: its TAP becomes the container's eth0.
type VXDP struct {
	// Side is the host it runs on.
	Side Side
	// Config is the path of its config file.
	Config string

	cmd  *exec.Cmd
	dir  string // holds Config; removed once the process has exited
	log  *syncBuffer
	done chan struct{}
	err  error // the process's exit status, once done is closed
}

// Names of the devices vxdp creates for the container on each host: a TAP, or with
// VethPorts the host end of a veth pair (both become, or have a peer that becomes, eth0).
const (
	VXDPTapIf  = "vxp0"
	VXDPVethIf = "vxv0"
)

// VXDPConfig returns the config file vxdp needs on side s of the topology: the wire as the
// underlay, the other host as the only remote VTEP, and a TAP that becomes the container's
// eth0 (with t.VethPorts, a veth pair whose peer does), removed when vxdp exits unless
// t.KeepPorts. extra is appended verbatim (top-level fields of later features).
func (t *Topology) VXDPConfig(s Side, extra string) string {
	port := "tap: " + VXDPTapIf
	if t.VethPorts {
		port = "veth: " + VXDPVethIf
	}
	return t.vxdpConfig(s, []vxdpPort{{port, t.Container(s)}}, extra)
}

// VXDPLocalConfig returns the config file of one vxdp on side s with two ports of one VNI,
// one into each container: portA is container A's port and portB container B's, each
// "tap: NAME" or "veth: NAME", each becoming its container's eth0. Traffic between them is
// switched on the node and never crosses the wire (two containers of one node; container A
// is moved onto host s for it). extra is appended as in VXDPConfig.
func (t *Topology) VXDPLocalConfig(s Side, portA, portB, extra string) string {
	return t.vxdpConfig(s, []vxdpPort{{portA, t.ContainerA}, {portB, t.ContainerB}}, extra)
}

// vxdpPort is one port of a vxdp config: "tap: NAME" or "veth: NAME", into container ns.
type vxdpPort struct {
	port string
	ns   NS
}

// vxdpConfig is the config file of a vxdp on side s with ports in the topology's VNI, each
// becoming its container's eth0 at the overlay MTU; extra is appended.
func (t *Topology) vxdpConfig(s Side, ports []vxdpPort, extra string) string {
	onExit := "remove"
	if t.KeepPorts {
		onExit = "keep"
	}
	var b strings.Builder
	for _, p := range ports {
		fmt.Fprintf(&b, "      - %s\n        netns: %s\n        ifname: eth0\n        mtu: %d\n", p.port, p.ns.Path(), t.OverlayMTU)
	}
	return fmt.Sprintf(`underlay: %s
local: %s
port: %d
ports_on_exit: %s
networks:
  - vni: %d
    remotes: [%s]
    ports:
%s%s`, t.Wire(s), t.Underlay(s).Addr(), t.Port, onExit, t.VNI, t.Underlay(s.Other()).Addr(), b.String(), extra)
}

// StartVXDP runs the vxdp binary on side s with VXDPConfig(s, extra), waits until its TAP
// shows up in the container as eth0, and gives it the container's address. The process
// is stopped with Stop (or Kill); Close of the topology does not stop it.
func (t *Topology) StartVXDP(ctx context.Context, s Side, binary, extra string) (*VXDP, error) {
	return t.startVXDP(ctx, s, binary, t.VXDPConfig(s, extra), true)
}

// RestartVXDP runs the vxdp binary on side s as StartVXDP does, but leaves the container
// alone: it waits until vxdp says it is running, having taken over the TAP an earlier vxdp
// left (ports_on_exit: keep, t.KeepPorts), and changes nothing in the container.
func (t *Topology) RestartVXDP(ctx context.Context, s Side, binary, extra string) (*VXDP, error) {
	return t.startVXDP(ctx, s, binary, t.VXDPConfig(s, extra), false)
}

// StartVXDPConfig runs the vxdp binary on host s with config as its config file, for
// layouts VXDPConfig does not make (several ports, say), and waits until vxdp says it is
// running. It configures nothing in the containers: ContainerIf does that.
func (t *Topology) StartVXDPConfig(ctx context.Context, s Side, binary, config string) (*VXDP, error) {
	return t.startVXDP(ctx, s, binary, config, false)
}

// vxdpRunning is what vxdp logs once it carries traffic.
const vxdpRunning = `msg="vxdp running"`

func (t *Topology) startVXDP(ctx context.Context, s Side, binary, config string, configure bool) (*VXDP, error) {
	v, err := startVXDPIn(ctx, t.Host(s), s.String(), binary, config, t.Prefix)
	if err != nil {
		return nil, err
	}
	v.Side = s
	if configure {
		ictx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		if err := t.ContainerIf(ictx, s, "eth0"); err != nil {
			v.Kill()
			return nil, fmt.Errorf("start vxdp on host %s: %w\n%s", s, err, v.Log())
		}
	}
	return v, nil
}

// waitLog polls the process's output until it holds text, or ctx ends.
func (v *VXDP) waitLog(ctx context.Context, text string) error {
	tick := time.NewTicker(ifPollInterval)
	defer tick.Stop()
	for !strings.Contains(v.Log(), text) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s in the log of vxdp: %w", text, ctx.Err())
		case <-tick.C:
		}
	}
	return nil
}

// Stop sends SIGTERM and waits for a clean exit; it kills the process if that takes longer
// than 10 s. The error is the process's exit status.
func (v *VXDP) Stop() error {
	select {
	case <-v.done:
		return v.err
	default:
	}
	if err := v.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal vxdp: %w", err)
	}
	select {
	case <-v.done:
		return v.err
	case <-time.After(10 * time.Second):
		v.Kill()
		return fmt.Errorf("vxdp did not exit within 10s of SIGTERM\n%s", v.Log())
	}
}

// Reload asks vxdp to reload its config file (SIGHUP) and waits until it has logged the
// outcome: nil once it says the reload is done, an error with its log line otherwise.
func (v *VXDP) Reload(ctx context.Context) error {
	from := len(v.Log()) // the log only grows: what follows is this reload's
	if err := v.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		return fmt.Errorf("signal vxdp: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	tick := time.NewTicker(ifPollInterval)
	defer tick.Stop()
	for {
		for _, line := range strings.Split(v.Log()[from:], "\n") {
			switch {
			case strings.Contains(line, `msg="reload: done"`):
				return nil
			case strings.Contains(line, "level=ERROR") && strings.Contains(line, "reload"):
				return fmt.Errorf("vxdp refused the reload: %s", line)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for vxdp to reload: %w\n%s", ctx.Err(), v.Log())
		case <-v.done:
			return fmt.Errorf("vxdp exited while reloading: %v\n%s", v.err, v.Log())
		case <-tick.C:
		}
	}
}

// Kill ends the process with SIGKILL, as a crash or the OOM killer would, and waits.
func (v *VXDP) Kill() {
	_ = v.cmd.Process.Kill()
	<-v.done
}

// Done is closed when the process has exited.
func (v *VXDP) Done() <-chan struct{} { return v.done }

// Log returns what the process has written to stdout and stderr so far.
func (v *VXDP) Log() string { return v.log.String() }

// syncBuffer is a bytes.Buffer that the process's output and a reader may share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Clone(b.buf.String())
}
