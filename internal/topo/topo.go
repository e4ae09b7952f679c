//go:build linux

// Package topo builds the two-host overlay topology that vxdp's integration
// tests, demo and benchmarks run on, out of network namespaces: two hosts
// joined by a veth wire that behaves like a NIC between them (WireKind), a
// container namespace behind each host, and on demand the kernel's own
// overlay (vxlan + bridge + veth, as Docker's overlay driver builds it) on
// either host, or its bridge between both containers on one host.
//
//	<prefix>-cA                                              <prefix>-cB
//	  eth0 10.42.0.1/24                                 10.42.0.2/24 eth0
//	    |  (KernelVXLAN, or vxdp's TAP via ContainerIf)          |
//	<prefix>-hA                                              <prefix>-hB
//	  ethA 192.168.77.1/24 <======= veth wire =======> 192.168.77.2/24 ethB
//
// Every object lives inside a namespace the topology created, so deleting
// the namespaces removes everything, and two topologies with different
// prefixes never collide. Configuration goes through the ip, bridge and
// ethtool commands, the way a network engineer would type it.
package topo

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Names of the interfaces that KernelVXLAN creates. They live inside the
// topology's namespaces, so they are the same in every topology.
const (
	// VXLANIf is the kernel vxlan device on a host.
	VXLANIf = "vxlan0"
	// BridgeIf is the bridge that joins the vxlan device and the host veth.
	BridgeIf = "br0"
	// HostVethIf is the host end of the container's veth pair.
	HostVethIf = "veth0"
	// ContainerVethIf is the container end of the veth pair, in the
	// container namespace.
	ContainerVethIf = "eth0"
	// LocalVethIf is the host end of the second container's veth pair on
	// the bridge that LocalBridge builds.
	LocalVethIf = "veth1"
)

// Defaults for the zero fields of Options.
const (
	// DefaultVNI is the VXLAN network identifier of the overlay.
	DefaultVNI = 42
	// DefaultPort is the IANA VXLAN UDP port.
	DefaultPort = 4789
	// DefaultWireMTU is an Ethernet NIC's MTU, in bytes.
	DefaultWireMTU = 1500
	// DefaultOverlayMTU leaves room for the 50 bytes of outer
	// Ethernet + IPv4 + UDP + VXLAN headers inside DefaultWireMTU.
	DefaultOverlayMTU = 1450
	// DefaultWireQueues is the number of TX and RX queues on each wire end:
	// two, so that per-queue code paths run with more than one queue.
	DefaultWireQueues = 2
	// DefaultWireA names the wire end in host A.
	DefaultWireA = "ethA"
	// DefaultWireB names the wire end in host B.
	DefaultWireB = "ethB"
)

// Default addresses for the zero fields of Options. Every topology has its
// own namespaces, so all of them can use the same addresses.
var (
	// DefaultUnderlayA is host A's wire address.
	DefaultUnderlayA = netip.MustParsePrefix("192.168.77.1/24")
	// DefaultUnderlayB is host B's wire address.
	DefaultUnderlayB = netip.MustParsePrefix("192.168.77.2/24")
	// DefaultOverlayA is container A's address.
	DefaultOverlayA = netip.MustParsePrefix("10.42.0.1/24")
	// DefaultOverlayB is container B's address.
	DefaultOverlayB = netip.MustParsePrefix("10.42.0.2/24")
)

// cmdTimeout bounds each command run while cleaning up, which must work
// even after the caller's context is done.
const cmdTimeout = 10 * time.Second

// ifWaitDefault is how long ContainerIf waits for an interface when the
// context carries no deadline.
const ifWaitDefault = 10 * time.Second

// ifPollInterval is how often ContainerIf looks for the interface.
const ifPollInterval = 20 * time.Millisecond

// maxQueues is the kernel's limit on a device's TX or RX queues.
const maxQueues = 4096

// Side names one of the two hosts (and the container behind it).
type Side int

const (
	// SideA is host A, the one with the lower underlay address by default.
	SideA Side = iota
	// SideB is host B.
	SideB
)

// String returns "A" or "B".
func (s Side) String() string {
	switch s {
	case SideA:
		return "A"
	case SideB:
		return "B"
	}
	return "Side(" + strconv.Itoa(int(s)) + ")"
}

// Other returns the opposite side.
func (s Side) Other() Side {
	if s == SideA {
		return SideB
	}
	return SideA
}

// Options configures a Topology. The zero value gives the default topology
// under a fresh prefix.
type Options struct {
	// Prefix starts every namespace name: <prefix>-hA, -hB, -cA, -cB.
	// Empty means Prefix("topo"), unique to this process and call.
	Prefix string
	// UnderlayA and UnderlayB are the wire addresses of hosts A and B, the
	// VTEP addresses. They must be in the same subnet. Default
	// 192.168.77.1/24 and 192.168.77.2/24.
	UnderlayA, UnderlayB netip.Prefix
	// OverlayA and OverlayB are the container addresses behind A and B.
	// They must be in the same subnet. Default 10.42.0.1/24 and 10.42.0.2/24.
	OverlayA, OverlayB netip.Prefix
	// VNI is the overlay's VXLAN network identifier, below 1<<24.
	// Default 42.
	VNI uint32
	// Port is the VXLAN UDP destination port. Default 4789.
	Port uint16
	// WireMTU is the MTU of the wire, in bytes. Default 1500.
	WireMTU int
	// OverlayMTU is the MTU of the containers' interfaces and of the kernel
	// vxlan device, in bytes; at most WireMTU minus the outer headers.
	// Default 1450.
	OverlayMTU int
	// WireQueues is the number of TX queues and of RX queues on each wire
	// end. Default 2.
	WireQueues int
	// WireA and WireB name the wire ends in hosts A and B. Default "ethA"
	// and "ethB".
	WireA, WireB string
	// WireKind says how the veth wire behaves; empty means WireNIC.
	WireKind WireKind
}

// WireKind is how the veth wire between the hosts behaves (DESIGN.md,
// decision 5).
type WireKind string

const (
	// WireNIC makes the wire behave like a NIC between two hosts, the
	// default: it carries MTU-sized frames with finished checksums
	// (segmentation offloads (TSO, GSO, USO, tunnel GSO) and TX checksum
	// offload off on both ends), each end receives in batches in its own
	// NAPI thread, with GRO, as a NIC's driver does (GRO on, which gives a
	// veth its NAPI, and /sys/class/net/DEV/threaded = 1), and each end
	// sends through a NIC's qdisc (mq with a pfifo_fast per TX queue), so
	// that a sender faster than the peer's NAPI thread waits as it would
	// for a full TX ring, instead of losing the frames that do not fit the
	// peer's 256-frame ring (a veth without a qdisc drops them).
	WireNIC WireKind = "nic"
	// WirePlain is a plain veth with the same offloads off and GRO off as
	// well: without NAPI, the receiving end's whole path runs inside the
	// sender's transmit, one frame at a time, which no pair of hosts does.
	// Kept for comparison.
	WirePlain WireKind = "plain"
	// WireOffloaded leaves the veth's own offloads on: it carries 64 KB
	// frames with unfinished checksums, which flatters the kernel baseline
	// and no AF_XDP receiver can take as is. Only for tests of the
	// topology itself.
	WireOffloaded WireKind = "offloads"
)

// Topology is a live two-host topology. Its exported fields describe it;
// callers read them instead of hardcoding names and addresses, and must not
// change them. Close removes it.
type Topology struct {
	// Prefix starts every namespace name.
	Prefix string
	// HostA and HostB are the host namespaces, joined by the wire.
	HostA, HostB NS
	// ContainerA and ContainerB are the container namespaces.
	ContainerA, ContainerB NS
	// WireA and WireB are the wire ends, in HostA and HostB.
	WireA, WireB string
	// UnderlayA and UnderlayB are the addresses on WireA and WireB.
	UnderlayA, UnderlayB netip.Prefix
	// OverlayA and OverlayB are the container addresses.
	OverlayA, OverlayB netip.Prefix
	// VNI is the overlay's VXLAN network identifier.
	VNI uint32
	// Port is the VXLAN UDP destination port.
	Port uint16
	// WireMTU is the wire's MTU, in bytes.
	WireMTU int
	// OverlayMTU is the containers' MTU, in bytes.
	OverlayMTU int
	// WireQueues is the number of TX and of RX queues on each wire end.
	WireQueues int
	// WireKind is how the wire behaves: WireNIC, WirePlain or WireOffloaded.
	WireKind WireKind
	// KeepPorts makes VXDPConfig ask vxdp to leave its TAPs when it exits (ports_on_exit:
	// keep, vxdp's own default); false, the topology's default, has them removed, so that
	// a test or benchmark leaves nothing but what deleting its namespaces removes.
	KeepPorts bool
	// VethPorts makes VXDPConfig give vxdp a veth port (veth: VXDPVethIf, its peer the
	// container's eth0) instead of a TAP. Like KeepPorts, callers may set it between runs.
	VethPorts bool

	// mu guards made.
	mu sync.Mutex
	// made lists the namespaces this topology created and has not yet
	// deleted, in creation order.
	made []NS
}

// prefixSeq tells apart the prefixes that one process asks for.
var prefixSeq atomic.Uint32

// Prefix returns a namespace-name prefix unique to this process and call:
// "vx" + tag + "-" + pid + "-" + sequence number. Keep tag short and made of
// letters and digits. CleanupStale recognises the prefixes it returns.
func Prefix(tag string) string {
	return fmt.Sprintf("vx%s-%d-%d", tag, os.Getpid(), prefixSeq.Add(1)-1)
}

// roles are the suffixes of the topology's namespace names, in creation
// order; the last, cC, only when AddContainer asks for it.
var roles = [...]string{"hA", "hB", "cA", "cB", "cC"}

// New creates the namespaces, the wire between the hosts and their
// addresses; overlays are added afterwards with KernelVXLAN or ContainerIf.
// On any error it removes what it made before returning.
func New(ctx context.Context, opts Options) (*Topology, error) {
	opts.setDefaults()
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("validate topology options: %w", err)
	}
	t := &Topology{
		Prefix:     opts.Prefix,
		HostA:      NS{opts.Prefix + "-" + roles[0]},
		HostB:      NS{opts.Prefix + "-" + roles[1]},
		ContainerA: NS{opts.Prefix + "-" + roles[2]},
		ContainerB: NS{opts.Prefix + "-" + roles[3]},
		WireA:      opts.WireA,
		WireB:      opts.WireB,
		UnderlayA:  opts.UnderlayA,
		UnderlayB:  opts.UnderlayB,
		OverlayA:   opts.OverlayA,
		OverlayB:   opts.OverlayB,
		VNI:        opts.VNI,
		Port:       opts.Port,
		WireMTU:    opts.WireMTU,
		OverlayMTU: opts.OverlayMTU,
		WireQueues: opts.WireQueues,
		WireKind:   opts.WireKind,
	}
	if err := t.build(ctx); err != nil {
		if cerr := t.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("clean up after failed setup: %w", cerr))
		}
		return nil, fmt.Errorf("create topology %s: %w", t.Prefix, err)
	}
	return t, nil
}

// build creates the namespaces and the wire, recording each namespace in
// t.made just before creating it so that Close can remove it.
func (t *Topology) build(ctx context.Context) error {
	for _, ns := range []NS{t.HostA, t.HostB, t.ContainerA, t.ContainerB} {
		if _, err := os.Stat(ns.Path()); err == nil {
			return fmt.Errorf("create netns %s: %w", ns, os.ErrExist)
		}
		// Recorded before it exists: `ip netns add` cut short by the context
		// may leave the namespace made but the command failed.
		t.mu.Lock()
		t.made = append(t.made, ns)
		t.mu.Unlock()
		if _, err := run(hostCmd(ctx, "ip", "netns", "add", ns.Name), "the root netns"); err != nil {
			return err
		}
		if _, err := ns.ip(ctx, "link", "set", "lo", "up"); err != nil {
			return err
		}
	}
	q := strconv.Itoa(t.WireQueues)
	mtu := strconv.Itoa(t.WireMTU)
	if _, err := t.HostA.ip(ctx, "link", "add", t.WireA,
		"numtxqueues", q, "numrxqueues", q, "mtu", mtu,
		"type", "veth", "peer", "name", t.WireB, "netns", t.HostB.Name,
		"numtxqueues", q, "numrxqueues", q, "mtu", mtu); err != nil {
		return err
	}
	for _, s := range []Side{SideA, SideB} {
		h, wire := t.Host(s), t.Wire(s)
		var err error
		switch t.WireKind {
		case WireNIC:
			err = setFeatures(ctx, h, wire, isWireOffload, nicFeatures)
		case WirePlain:
			err = setFeatures(ctx, h, wire, isPlainOffload, nil)
		}
		if err != nil {
			return err
		}
		if _, err := h.ip(ctx, "addr", "add", t.Underlay(s).String(), "dev", wire); err != nil {
			return err
		}
	}
	// Up only once both ends are configured: a veth enables its NAPI when it
	// comes up with GRO on, and the threaded switch needs the NAPI there.
	for _, s := range []Side{SideA, SideB} {
		if _, err := t.Host(s).ip(ctx, "link", "set", t.Wire(s), "up"); err != nil {
			return err
		}
	}
	if t.WireKind == WireNIC {
		for _, s := range []Side{SideA, SideB} {
			if err := setThreadedNAPI(ctx, t.Host(s), t.Wire(s)); err != nil {
				return err
			}
			if err := setNICQdisc(ctx, t.Host(s), t.Wire(s), t.WireQueues); err != nil {
				return err
			}
		}
	}
	return nil
}

// Close deletes the topology's namespaces, which destroys every interface
// in them. Processes still running in them are killed first, since they
// would keep a namespace alive after its name is gone. Close is idempotent
// and does not depend on any caller context.
func (t *Topology) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	var errs []error
	// Reverse order: containers before hosts, the opposite of creation.
	for i := len(t.made) - 1; i >= 0; i-- {
		if err := deleteNS(t.made[i]); err != nil {
			errs = append(errs, err)
			continue
		}
		t.made = t.made[:i]
	}
	if len(errs) > 0 {
		return fmt.Errorf("close topology %s: %w", t.Prefix, errors.Join(errs...))
	}
	return nil
}

// Host returns the host namespace of side s.
func (t *Topology) Host(s Side) NS {
	if s == SideA {
		return t.HostA
	}
	return t.HostB
}

// Container returns the container namespace of side s.
func (t *Topology) Container(s Side) NS {
	if s == SideA {
		return t.ContainerA
	}
	return t.ContainerB
}

// Wire returns the name of the wire end in the host of side s.
func (t *Topology) Wire(s Side) string {
	if s == SideA {
		return t.WireA
	}
	return t.WireB
}

// Underlay returns the wire address of the host of side s.
func (t *Topology) Underlay(s Side) netip.Prefix {
	if s == SideA {
		return t.UnderlayA
	}
	return t.UnderlayB
}

// Overlay returns the address of the container of side s.
func (t *Topology) Overlay(s Side) netip.Prefix {
	if s == SideA {
		return t.OverlayA
	}
	return t.OverlayB
}

// KernelVXLAN builds, on the host of side s, the kernel overlay that
// Docker's overlay driver builds: a vxlan device on the wire, a bridge, and
// a veth pair whose far end is the container's eth0 with its overlay
// address. The vxlan device learns remote MACs, and an all-zeros FDB entry
// sends broadcast, unknown unicast and multicast to the peer host, so it
// interoperates with vxdp on the other side. On error it removes what it
// made.
func (t *Topology) KernelVXLAN(ctx context.Context, s Side) error {
	h := t.Host(s)
	for _, ifname := range []string{VXLANIf, BridgeIf, HostVethIf} {
		// Refuse before touching anything, so that a second call does not
		// tear down the overlay a first one built.
		if _, err := h.ip(ctx, "link", "show", "dev", ifname); err == nil {
			return fmt.Errorf("build kernel vxlan on %s: %s %w", h, ifname, os.ErrExist)
		}
	}
	if err := t.kernelVXLAN(ctx, s); err != nil {
		if rerr := t.RemoveKernelVXLAN(ctx, s); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return fmt.Errorf("build kernel vxlan on %s: %w", t.Host(s), err)
	}
	return nil
}

func (t *Topology) kernelVXLAN(ctx context.Context, s Side) error {
	h, c := t.Host(s), t.Container(s)
	mtu := strconv.Itoa(t.OverlayMTU)
	steps := [][]string{
		{"link", "add", VXLANIf, "mtu", mtu, "type", "vxlan",
			"id", strconv.FormatUint(uint64(t.VNI), 10),
			"local", t.Underlay(s).Addr().String(),
			"dstport", strconv.Itoa(int(t.Port)),
			"dev", t.Wire(s), "learning"},
		{"link", "add", BridgeIf, "mtu", mtu, "type", "bridge"},
		{"link", "set", VXLANIf, "master", BridgeIf},
		{"link", "add", HostVethIf, "mtu", mtu, "type", "veth",
			"peer", "name", ContainerVethIf, "mtu", mtu, "netns", c.Name},
		{"link", "set", HostVethIf, "master", BridgeIf},
		{"link", "set", VXLANIf, "up"},
		{"link", "set", BridgeIf, "up"},
		{"link", "set", HostVethIf, "up"},
	}
	for _, args := range steps {
		if _, err := h.ip(ctx, args...); err != nil {
			return err
		}
	}
	if _, err := run(hostCmd(ctx, "bridge", "-n", h.Name, "fdb", "append",
		"00:00:00:00:00:00", "dev", VXLANIf, "dst", t.Underlay(s.Other()).Addr().String()), h.Name); err != nil {
		return err
	}
	if _, err := c.ip(ctx, "addr", "add", t.Overlay(s).String(), "dev", ContainerVethIf); err != nil {
		return err
	}
	_, err := c.ip(ctx, "link", "set", ContainerVethIf, "up")
	return err
}

// LocalBridge builds on the host of side s the kernel's path between two
// containers of one node, as Docker's bridge network builds it: a bridge
// with a veth pair into each container namespace, the pair of side s ending
// in its container's eth0 and the other side's container moved onto this
// host the same way (LocalVethIf), each with its overlay address. Nothing
// goes on the wire. RemoveKernelVXLAN removes it. On error it removes what
// it made.
func (t *Topology) LocalBridge(ctx context.Context, s Side) error {
	h := t.Host(s)
	for _, ifname := range []string{BridgeIf, HostVethIf, LocalVethIf} {
		if _, err := h.ip(ctx, "link", "show", "dev", ifname); err == nil {
			return fmt.Errorf("build local bridge on %s: %s %w", h, ifname, os.ErrExist)
		}
	}
	if err := t.localBridge(ctx, s); err != nil {
		if rerr := t.RemoveKernelVXLAN(ctx, s); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return fmt.Errorf("build local bridge on %s: %w", h, err)
	}
	return nil
}

func (t *Topology) localBridge(ctx context.Context, s Side) error {
	h := t.Host(s)
	mtu := strconv.Itoa(t.OverlayMTU)
	if _, err := h.ip(ctx, "link", "add", BridgeIf, "mtu", mtu, "type", "bridge"); err != nil {
		return err
	}
	if _, err := h.ip(ctx, "link", "set", BridgeIf, "up"); err != nil {
		return err
	}
	for _, c := range []struct {
		hostIf string
		side   Side
	}{{HostVethIf, s}, {LocalVethIf, s.Other()}} {
		ns := t.Container(c.side)
		for _, args := range [][]string{
			{"link", "add", c.hostIf, "mtu", mtu, "type", "veth",
				"peer", "name", ContainerVethIf, "mtu", mtu, "netns", ns.Name},
			{"link", "set", c.hostIf, "master", BridgeIf},
			{"link", "set", c.hostIf, "up"},
		} {
			if _, err := h.ip(ctx, args...); err != nil {
				return err
			}
		}
		if _, err := ns.ip(ctx, "addr", "add", t.Overlay(c.side).String(), "dev", ContainerVethIf); err != nil {
			return err
		}
		if _, err := ns.ip(ctx, "link", "set", ContainerVethIf, "up"); err != nil {
			return err
		}
	}
	return nil
}

// RemoveKernelVXLAN removes what KernelVXLAN or LocalBridge built on side s,
// leaving the side ready for vxdp; parts already gone are skipped.
func (t *Topology) RemoveKernelVXLAN(ctx context.Context, s Side) error {
	h := t.Host(s)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cmdTimeout)
	defer cancel()
	var errs []error
	// Deleting the host veth also deletes the container's end.
	for _, ifname := range []string{HostVethIf, LocalVethIf, BridgeIf, VXLANIf} {
		if _, err := h.ip(ctx, "link", "show", "dev", ifname); err != nil {
			continue // not there
		}
		if _, err := h.ip(ctx, "link", "del", "dev", ifname); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("remove kernel vxlan from %s: %w", h, errors.Join(errs...))
	}
	return nil
}

// ContainerIf configures the interface ifname in the container namespace
// of side s, which vxdp creates and moves there on its own schedule: it
// waits for the interface to appear (until ctx's deadline, or 10 s if ctx
// has none), then sets the overlay address and MTU and brings it up.
// Calling it again on the same interface is harmless.
func (t *Topology) ContainerIf(ctx context.Context, s Side, ifname string) error {
	c := t.Container(s)
	if err := validIfName(ifname); err != nil {
		return fmt.Errorf("configure container interface: %w", err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, ifWaitDefault)
		defer cancel()
	}
	if err := waitIf(ctx, c, ifname); err != nil {
		return err
	}
	for _, args := range [][]string{
		{"link", "set", "dev", ifname, "mtu", strconv.Itoa(t.OverlayMTU)},
		{"addr", "replace", t.Overlay(s).String(), "dev", ifname},
		{"link", "set", "dev", ifname, "up"},
	} {
		if _, err := c.ip(ctx, args...); err != nil {
			return fmt.Errorf("configure %s in %s: %w", ifname, c, err)
		}
	}
	return nil
}

// waitIf polls until ifname exists in ns or ctx is done.
func waitIf(ctx context.Context, ns NS, ifname string) error {
	tick := time.NewTicker(ifPollInterval)
	defer tick.Stop()
	for {
		if _, err := ns.ip(ctx, "link", "show", "dev", ifname); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s in %s: %w", ifname, ns, ctx.Err())
		case <-tick.C:
		}
	}
}

// Cleanup deletes every namespace whose name is prefix + "-" + anything:
// a topology left behind by a run that could not call Close. It kills the
// processes still running in those namespaces.
func Cleanup(prefix string) error {
	if prefix == "" {
		return errors.New("clean up namespaces: empty prefix")
	}
	names, err := listNS()
	if err != nil {
		return err
	}
	var errs []error
	for _, name := range names {
		if strings.HasPrefix(name, prefix+"-") {
			if err := deleteNS(NS{name}); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// CleanupStale deletes the namespaces of topologies whose prefix came from
// Prefix(tag) in a process that no longer runs, and leaves alone those of
// live processes, so a run can sweep after a predecessor that was killed
// without disturbing one running beside it.
func CleanupStale(tag string) error {
	names, err := listNS()
	if err != nil {
		return err
	}
	var errs []error
	for _, name := range names {
		pid, ok := prefixPID(name, tag)
		if !ok || pid == os.Getpid() || processAlive(pid) {
			continue
		}
		if err := deleteNS(NS{name}); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// prefixPID returns the process ID in a namespace name made of
// Prefix(tag) + "-" + role.
func prefixPID(name, tag string) (int, bool) {
	rest, ok := strings.CutPrefix(name, "vx"+tag+"-")
	if !ok {
		return 0, false
	}
	parts := strings.Split(rest, "-")
	if len(parts) != 3 {
		return 0, false
	}
	pid, err := strconv.Atoi(parts[0])
	if err != nil || pid <= 0 {
		return 0, false
	}
	if _, err := strconv.ParseUint(parts[1], 10, 32); err != nil {
		return 0, false
	}
	for _, r := range roles {
		if parts[2] == r {
			return pid, true
		}
	}
	if isMeshRole(parts[2]) {
		return pid, true
	}
	return 0, false
}

// processAlive reports whether a process with that ID exists.
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// listNS returns the names of the namespaces under /run/netns.
func listNS() ([]string, error) {
	entries, err := os.ReadDir(netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list namespaces: %w", err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names, nil
}

// deleteNS kills the processes left in ns and deletes it. A namespace that
// is already gone counts as deleted.
func deleteNS(ns NS) error {
	if _, err := os.Stat(ns.Path()); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	out, err := run(hostCmd(ctx, "ip", "netns", "pids", ns.Name), "the root netns")
	if err == nil {
		for _, f := range strings.Fields(out) {
			pid, perr := strconv.Atoi(f)
			if perr != nil || pid == os.Getpid() {
				continue
			}
			// Best effort: the process may exit on its own meanwhile.
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	if _, err := run(hostCmd(ctx, "ip", "netns", "del", ns.Name), "the root netns"); err != nil {
		if _, serr := os.Stat(ns.Path()); errors.Is(serr, os.ErrNotExist) {
			return nil // raced with another cleanup
		}
		return err
	}
	return nil
}

func (o *Options) setDefaults() {
	if o.Prefix == "" {
		o.Prefix = Prefix("topo")
	}
	if !o.UnderlayA.IsValid() {
		o.UnderlayA = DefaultUnderlayA
	}
	if !o.UnderlayB.IsValid() {
		o.UnderlayB = DefaultUnderlayB
	}
	if !o.OverlayA.IsValid() {
		o.OverlayA = DefaultOverlayA
	}
	if !o.OverlayB.IsValid() {
		o.OverlayB = DefaultOverlayB
	}
	if o.VNI == 0 {
		o.VNI = DefaultVNI
	}
	if o.Port == 0 {
		o.Port = DefaultPort
	}
	if o.WireMTU == 0 {
		o.WireMTU = DefaultWireMTU
	}
	if o.OverlayMTU == 0 {
		o.OverlayMTU = DefaultOverlayMTU
	}
	if o.WireQueues == 0 {
		o.WireQueues = DefaultWireQueues
	}
	if o.WireA == "" {
		o.WireA = DefaultWireA
	}
	if o.WireB == "" {
		o.WireB = DefaultWireB
	}
	if o.WireKind == "" {
		o.WireKind = WireNIC
	}
}

// ErrBadOption reports an Options field out of range or inconsistent, or a
// bad argument to one of the package's functions.
var ErrBadOption = errors.New("bad topology option")

// Header overhead of VXLAN encapsulation over IPv4 and IPv6, in bytes:
// outer Ethernet 14 + IP (20 or 40) + UDP 8 + VXLAN 8.
const (
	vxlanOverhead4 = 14 + 20 + 8 + 8
	vxlanOverhead6 = 14 + 40 + 8 + 8
)

func (o *Options) validate() error {
	if err := validNSPrefix(o.Prefix); err != nil {
		return err
	}
	if err := validPair("underlay", o.UnderlayA, o.UnderlayB); err != nil {
		return err
	}
	if err := validPair("overlay", o.OverlayA, o.OverlayB); err != nil {
		return err
	}
	if o.VNI >= 1<<24 {
		return fmt.Errorf("%w: VNI %d does not fit in 24 bits", ErrBadOption, o.VNI)
	}
	if o.WireMTU < 68 || o.WireMTU > 65535 {
		return fmt.Errorf("%w: wire MTU %d outside 68..65535", ErrBadOption, o.WireMTU)
	}
	overhead := vxlanOverhead4
	if o.UnderlayA.Addr().Is6() {
		overhead = vxlanOverhead6
	}
	if o.OverlayMTU < 68 || o.OverlayMTU > o.WireMTU-overhead {
		return fmt.Errorf("%w: overlay MTU %d outside 68..%d (wire MTU %d minus %d bytes of VXLAN headers)",
			ErrBadOption, o.OverlayMTU, o.WireMTU-overhead, o.WireMTU, overhead)
	}
	switch o.WireKind {
	case WireNIC, WirePlain, WireOffloaded:
	default:
		return fmt.Errorf("%w: wire kind %q (want %q, %q or %q)", ErrBadOption, o.WireKind, WireNIC, WirePlain, WireOffloaded)
	}
	if o.WireQueues < 1 || o.WireQueues > maxQueues {
		return fmt.Errorf("%w: %d wire queues outside 1..%d", ErrBadOption, o.WireQueues, maxQueues)
	}
	for _, name := range []string{o.WireA, o.WireB} {
		if err := validIfName(name); err != nil {
			return err
		}
		switch name {
		case "lo", VXLANIf, BridgeIf, HostVethIf:
			return fmt.Errorf("%w: wire name %q is taken in the host namespace", ErrBadOption, name)
		}
	}
	return nil
}

// validPair checks that a and b are two distinct addresses of one subnet.
func validPair(what string, a, b netip.Prefix) error {
	if a.Addr().Is4In6() || b.Addr().Is4In6() {
		return fmt.Errorf("%w: %s addresses %s, %s: use plain IPv4", ErrBadOption, what, a, b)
	}
	if a.Masked() != b.Masked() {
		return fmt.Errorf("%w: %s addresses %s and %s are not in one subnet", ErrBadOption, what, a, b)
	}
	if a.Addr() == b.Addr() || a.Addr() == a.Masked().Addr() || b.Addr() == b.Masked().Addr() {
		return fmt.Errorf("%w: %s addresses %s and %s must be distinct host addresses", ErrBadOption, what, a, b)
	}
	return nil
}

// validNSPrefix checks that prefix can start a file name under /run/netns.
func validNSPrefix(prefix string) error {
	if len(prefix) > 200 || strings.ContainsAny(prefix, "/ \t\n\x00") || strings.HasPrefix(prefix, ".") {
		return fmt.Errorf("%w: namespace prefix %q", ErrBadOption, prefix)
	}
	return nil
}

// validIfName checks the kernel's rules for an interface name: 1 to 15
// bytes, no '/', ':' or white space, not "." or "..".
func validIfName(name string) error {
	if len(name) == 0 || len(name) > 15 || name == "." || name == ".." ||
		strings.ContainsAny(name, "/: \t\n\x00") {
		return fmt.Errorf("%w: interface name %q", ErrBadOption, name)
	}
	return nil
}

// hostCmd returns a command that runs in the caller's own namespace.
func hostCmd(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, name, args...)
}
