//go:build linux

package topo

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"
)

// EtcdBinary is the etcd server the tests and the demo run: Debian's etcd-server.
const EtcdBinary = "etcd"

// Etcd is a single-member etcd server with a data directory of its own, run by a test or
// the demo in a namespace (or the root one) on an address of that namespace. Stop ends
// it and removes its data; Start runs it again on the same data and ports (an outage).
type Etcd struct {
	// ClientURL is the URL clients reach it at.
	ClientURL string

	ns       *NS // nil: the root namespace
	addr     netip.Addr
	client   int
	peer     int
	dataDir  string
	cmd      *exec.Cmd
	done     chan struct{}
	log      *syncBuffer
	prevLogs string
}

// StartEtcd runs etcd in ns (nil: the root namespace) on addr, with a fresh data
// directory and client and peer ports no one else uses, and waits until it answers.
func StartEtcd(ctx context.Context, ns *NS, addr netip.Addr) (*Etcd, error) {
	if _, err := exec.LookPath(EtcdBinary); err != nil {
		return nil, fmt.Errorf("start etcd: %w (Debian package etcd-server)", err)
	}
	dir, err := os.MkdirTemp("", "vxdp-etcd")
	if err != nil {
		return nil, fmt.Errorf("start etcd: %w", err)
	}
	e := &Etcd{ns: ns, addr: addr, dataDir: dir}
	if e.client, e.peer, err = freePorts(ns, addr); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start etcd: %w", err)
	}
	e.ClientURL = "http://" + net.JoinHostPort(addr.String(), strconv.Itoa(e.client))
	if err := e.Start(ctx); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return e, nil
}

// freePorts returns two TCP ports free on addr in ns, by binding port 0 and letting go.
func freePorts(ns *NS, addr netip.Addr) (a, b int, err error) {
	pick := func() error {
		var ls []net.Listener
		defer func() {
			for _, l := range ls {
				l.Close()
			}
		}()
		for range 2 {
			l, err := net.Listen("tcp", net.JoinHostPort(addr.String(), "0"))
			if err != nil {
				return fmt.Errorf("find a free port on %s: %w", addr, err)
			}
			ls = append(ls, l)
		}
		a, b = ls[0].Addr().(*net.TCPAddr).Port, ls[1].Addr().(*net.TCPAddr).Port
		return nil
	}
	if ns == nil {
		return a, b, pick()
	}
	return a, b, ns.Do(pick)
}

// Start runs the server (again) and waits until it answers on its client URL.
func (e *Etcd) Start(ctx context.Context) error {
	if e.cmd != nil {
		return errors.New("start etcd: already running")
	}
	peerURL := "http://" + net.JoinHostPort(e.addr.String(), strconv.Itoa(e.peer))
	args := []string{"--name", "vxdp-test", "--data-dir", e.dataDir,
		"--listen-client-urls", e.ClientURL, "--advertise-client-urls", e.ClientURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "vxdp-test=" + peerURL,
		// No metrics, no v2 store: a bare v3 server.
		"--enable-v2=false", "--log-level", "warn", "--logger", "zap"}
	var cmd *exec.Cmd
	if e.ns != nil {
		cmd = e.ns.Exec(context.Background(), EtcdBinary, args...)
	} else {
		cmd = exec.Command(EtcdBinary, args...)
	}
	e.log = &syncBuffer{}
	cmd.Stdout, cmd.Stderr = e.log, e.log
	// Its own process group: `ip netns exec` forks etcd, and Stop must reach both.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start etcd: %w", err)
	}
	e.cmd, e.done = cmd, make(chan struct{})
	go func() { cmd.Wait(); close(e.done) }()
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for {
		if e.healthy(wctx) {
			return nil
		}
		select {
		case <-e.done:
			e.cmd = nil
			return fmt.Errorf("start etcd: exited: %s", e.log.String())
		case <-wctx.Done():
			e.Stop()
			return fmt.Errorf("start etcd: not answering on %s: %w", e.ClientURL, wctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// healthy reports whether /health answers 200.
func (e *Etcd) healthy(ctx context.Context) bool {
	rctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	host := net.JoinHostPort(e.addr.String(), strconv.Itoa(e.client))
	if e.ns != nil {
		status, _, err := e.ns.HTTPGet(rctx, host, "/health")
		return err == nil && status == http.StatusOK
	}
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, e.ClientURL+"/health", nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// Stop ends the server (SIGKILL, as a crash would) and waits for it; the data stays for
// Start. Stopping a stopped server does nothing.
func (e *Etcd) Stop() {
	if e.cmd == nil {
		return
	}
	syscall.Kill(-e.cmd.Process.Pid, syscall.SIGKILL)
	<-e.done
	e.prevLogs += e.log.String()
	e.cmd = nil
}

// Close stops the server and removes its data.
func (e *Etcd) Close() error {
	e.Stop()
	return os.RemoveAll(e.dataDir)
}

// Log returns what the server printed, over all its runs.
func (e *Etcd) Log() string {
	if e.cmd != nil {
		return e.prevLogs + e.log.String()
	}
	return e.prevLogs
}
