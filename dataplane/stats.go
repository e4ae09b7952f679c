//go:build linux

package dataplane

import (
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"github.com/vxdp/vxdp/bpf"
	"github.com/vxdp/vxdp/dataplane/fdb"
	"github.com/vxdp/vxdp/dataplane/xsk"
)

// State is where a VTEP is in its life.
type State int32

// States of a VTEP, in order.
const (
	// StateStarting: New returned; Run has not finished setting the node up.
	StateStarting State = iota
	// StateRunning: set up and carrying traffic.
	StateRunning
	// StateStopping: tearing down.
	StateStopping
	// StateStopped: Run has returned.
	StateStopped
)

// String names s for /healthz and logs.
func (s State) String() string {
	switch s {
	case StateStarting:
		return "starting"
	case StateRunning:
		return "running"
	case StateStopping:
		return "stopping"
	case StateStopped:
		return "stopped"
	}
	return fmt.Sprintf("State(%d)", int32(s))
}

// lifecycle tracks a VTEP's State for readers in other goroutines (the admin server). Once
// setup has succeeded, the VTEP's slices and maps (queues, sockets, ports, networks, remotes)
// no longer change; marking it running publishes them: a reader that sees ran set may read
// them, since the atomic store follows setup's writes and the load precedes the reads.
type lifecycle struct {
	state atomic.Int32
	ran   atomic.Bool // setup succeeded: the VTEP's structure may be read
}

// running marks the end of a successful setup.
func (l *lifecycle) running() {
	l.ran.Store(true)
	l.state.Store(int32(StateRunning))
}

// stopping marks the start of teardown, stopped its end.
func (l *lifecycle) stopping() { l.state.Store(int32(StateStopping)) }
func (l *lifecycle) stopped()  { l.state.Store(int32(StateStopped)) }

// State returns where the VTEP is in its life. Safe to call from any goroutine.
func (v *VTEP) State() State { return State(v.life.state.Load()) }

// Stats is a snapshot of what the VTEP counts, for the admin server. Each number is read
// atomically; together they are not one instant's.
type Stats struct {
	// State is the VTEP's state when the snapshot was taken. Before the VTEP ran, only State
	// is set.
	State State
	// Counters are the dataplane's counters summed over its goroutines.
	Counters Counters
	// XDP are the XDP program's verdict counters; XDPErr is set instead once the program
	// is closed.
	XDP    bpf.Counters
	XDPErr error
	// Queues has one element per underlay RX queue, in queue order.
	Queues []QueueStats
	// Ports has one element per local port, in config order.
	Ports []PortStats
	// Networks has one element per VNI, in config order.
	Networks []NetworkStats
	// ReorderWait is the reorder wait-time histogram summed over the queues.
	ReorderWait WaitHistogram
	// UnderlayDown is set while the underlay is down (administratively, or without
	// carrier) or removed; UnderlayDowns counts the times it went down since setup.
	UnderlayDown  bool
	UnderlayDowns uint64
}

// QueueStats are one underlay RX queue's numbers.
type QueueStats struct {
	// Queue is the NIC queue index.
	Queue int
	// Socket are the queue's AF_XDP socket statistics (the kernel's and the socket layer's);
	// after the socket closed, only the socket layer's.
	Socket xsk.Stats
	// Delivered and DeliveredBytes count the inner frames this queue's merger wrote to TAPs.
	Delivered, DeliveredBytes uint64
	// ReorderWait is the histogram of the waits of this queue's finished micro-flows.
	ReorderWait WaitHistogram
}

// PortStats are one local port's numbers.
type PortStats struct {
	// Name is the TAP device's name as vxdp created it, or the veth's host end.
	Name string
	// VNI is the port's network.
	VNI uint32
	// Read and ReadBytes count the frames read from the TAP.
	Read, ReadBytes uint64
	// WriteErrors counts failed TAP writes (each dropped a frame), or for a veth the frames
	// that found no room on its AF_XDP TX ring; ReadErrors counts failed reads (the port's
	// reader stops at the first).
	WriteErrors, ReadErrors uint64
	// Veth is set for a veth port: its XDP program's counters and its sockets' statistics.
	Veth *VethStats
	// Container is the kernel's drop counters of the port's interface on the container's
	// side, nil when they could not be read (its namespace or the device is gone).
	Container *ContainerLink
}

// ContainerLink are the kernel's drop counters of a port's interface on the container's
// side: the TAP, or the veth's peer. They count since the device was created (a TAP
// taken over after a restart keeps counting), and what they count vxdp never saw.
type ContainerLink struct {
	// TxDropped counts frames the container sent that the kernel dropped before vxdp read
	// them: a TAP's queue was full (the tun driver drops rather than hold the sender back),
	// or a veth's peer could not take them.
	TxDropped uint64
	// RxDropped counts frames vxdp delivered that the container's side dropped.
	RxDropped uint64
}

// NetworkStats are one VNI's numbers.
type NetworkStats struct {
	// VNI is the network's identifier.
	VNI uint32
	// FDBEntries is the number of FDB entries, static ones (the local ports) included;
	// FDBCap the most it holds.
	FDBEntries, FDBCap int
	// FDB are the FDB's cumulative change counts.
	FDB fdb.Stats
}

// Stats returns a snapshot of the VTEP's numbers. Safe to call from any goroutine, at any
// point of the VTEP's life; it allocates, makes a few syscalls per queue and a netlink
// request per port (in the port's namespace), so it is for scrapes, not for the packet path.
func (v *VTEP) Stats() Stats {
	s := Stats{State: v.State()}
	if !v.life.ran.Load() {
		return s
	}
	s.Counters = v.Counters()
	s.XDP, s.XDPErr = v.XDPCounters()
	s.UnderlayDown, s.UnderlayDowns = v.link.down.Load(), v.link.downs.Load()
	ports := v.snapshot(&s)
	// The kernel's counters take netlink in the containers' namespaces: outside the lock,
	// which a reload waits for and the packet path then too.
	for i, p := range ports {
		s.Ports[i].Container = containerLink(p)
	}
	return s
}

// snapshot fills s with what the VTEP holds under v.mu and returns the config of each port
// of s.Ports.
func (v *VTEP) snapshot(s *Stats) []Port {
	v.mu.RLock()
	defer v.mu.RUnlock()
	var ports []Port
	for _, q := range v.queues {
		qs := QueueStats{
			Queue:          q.index,
			Delivered:      q.c.inPackets.Load(),
			DeliveredBytes: q.c.inBytes.Load(),
			ReorderWait:    q.wait.snapshot(),
		}
		// After Close the kernel's part is gone and the error says so; the rest still counts.
		qs.Socket, _ = q.sock.Stats()
		s.ReorderWait.add(qs.ReorderWait)
		s.Queues = append(s.Queues, qs)
	}
	for _, t := range v.ports {
		if t == nil {
			continue // removed by Reload
		}
		c := v.portCnt[t.index]
		s.Ports = append(s.Ports, PortStats{
			Name: t.port.dev(), VNI: t.net.vni,
			Read: c.outPackets.Load(), ReadBytes: c.outBytes.Load(),
			WriteErrors: t.errs.write.Load(), ReadErrors: t.errs.read.Load(),
			Veth: t.veth.stats(),
		})
		ports = append(ports, t.port)
	}
	for _, nc := range v.networks {
		n := v.nets[nc.VNI]
		s.Networks = append(s.Networks, NetworkStats{
			VNI: n.vni, FDBEntries: n.fdb.Len(), FDBCap: n.fdb.Cap(), FDB: n.fdb.Stats(),
		})
	}
	return ports
}

// containerLink reads the kernel's drop counters of port p's interface on the container's
// side, or returns nil if it cannot: the namespace or the device is gone, or the name is
// now another kind of device's.
func containerLink(p Port) *ContainerLink {
	h := &netlink.Handle{}
	if p.Netns != "" {
		ns, err := netns.GetFromPath(p.Netns)
		if err != nil {
			return nil
		}
		defer ns.Close()
		if h, err = netlink.NewHandleAt(ns); err != nil {
			return nil
		}
		defer h.Close()
	}
	link, err := h.LinkByName(p.name())
	if err != nil || link.Attrs().Statistics == nil {
		return nil
	}
	// A device of that name of another kind is not the port's (the container renamed ours
	// and made another): its counters would mislead.
	if _, isTAP := link.(*netlink.Tuntap); isTAP != (p.Veth == "") {
		return nil
	}
	st := link.Attrs().Statistics
	return &ContainerLink{TxDropped: st.TxDropped, RxDropped: st.RxDropped}
}

// FDBEntry is one FDB entry with its target resolved to a name.
type FDBEntry struct {
	// MAC is the Ethernet address.
	MAC fdb.MAC
	// Port is the local port's TAP name, when the address lives behind a local port.
	Port string
	// Remote is the remote VTEP's address, when the address lives behind a remote VTEP.
	Remote netip.Addr
	// Static is true for a local port's own address, which never ages.
	Static bool
	// Age is the time since a frame from the address was last seen, to the second; 0 for
	// a static entry.
	Age time.Duration
}

// FDBTable is the FDB of one VNI.
type FDBTable struct {
	// VNI is the network's identifier.
	VNI uint32
	// Ageing is how long a learned entry lives without traffic.
	Ageing time.Duration
	// Entries are the VNI's entries, in no particular order.
	Entries []FDBEntry
}

// FDB returns every VNI's FDB entries, VNIs in config order, or nil before the VTEP ran.
// Safe to call from any goroutine; it takes each table's lock once to copy it.
func (v *VTEP) FDB() []FDBTable {
	if !v.life.ran.Load() {
		return nil
	}
	now := v.clock.Now()
	var tables []FDBTable
	v.mu.RLock()
	defer v.mu.RUnlock()
	for _, nc := range v.networks {
		n := v.nets[nc.VNI]
		ft := FDBTable{VNI: n.vni, Ageing: n.fdb.Ageing(), Entries: []FDBEntry{}}
		n.fdb.Entries(func(e fdb.Entry) bool {
			fe := FDBEntry{MAC: e.MAC, Static: e.Static}
			switch i := e.To.Index(); {
			case e.To.IsLocal() && i < len(v.ports) && v.ports[i] != nil:
				fe.Port = v.ports[i].port.dev()
			case e.To.IsRemote() && i < len(v.remotes):
				fe.Remote = v.remotes[i].addr
			}
			if !e.Static {
				// Modulo 2^32, as the table compares times; a refresh racing with the
				// clock's tick may be a second ahead of now.
				fe.Age = time.Duration(max(int32(now-e.LastSeen), 0)) * time.Second
			}
			ft.Entries = append(ft.Entries, fe)
			return true
		})
		tables = append(tables, ft)
	}
	return tables
}
