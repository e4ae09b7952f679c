//go:build linux

package dataplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/vxdp/vxdp/bpf"
	"github.com/vxdp/vxdp/dataplane/fdb"
	"github.com/vxdp/vxdp/dataplane/offload"
	"github.com/vxdp/vxdp/dataplane/packet"
	"github.com/vxdp/vxdp/dataplane/xsk"
	"github.com/vxdp/vxdp/reorder"
)

const (
	// batchSize is how many frames a stage takes per ring access or per TAP wakeup: large
	// enough to share one syscall among many frames, small enough to stay in L1/L2.
	batchSize = 64
	// ringSize is each AF_XDP ring's number of descriptors (fill, completion, RX and TX).
	ringSize = 2048
	// umemFrames per socket: the fill ring full, plus room for the frames a stage holds, plus TX.
	umemFrames = 2 * ringSize
	// txFrames of each socket's UMEM are kept for egress.
	txFrames = ringSize / 2
	// neighbourPeriod is how often next hops are looked up and refreshed in the kernel's
	// neighbour table; our frames bypass the kernel, so it would otherwise let them go stale.
	neighbourPeriod = time.Second
	// txWait is how long egress waits for free TX frames before dropping, and txPause the
	// step: long enough for the receiving side to drain a ring's worth of frames.
	txWait  = 5 * time.Millisecond
	txPause = 50 * time.Microsecond
	// expiryPeriod is how often aged FDB entries are removed.
	expiryPeriod = 5 * time.Second
)

// VTEP is a running VXLAN tunnel endpoint on one underlay NIC.
type VTEP struct {
	cfg      *Config
	log      *slog.Logger
	underlay netlink.Link
	srcMAC   [6]byte

	prog  *bpf.Program
	socks []*xsk.Socket
	// multiBuffer: the ports' MTU makes underlay frames longer than one UMEM frame, so the
	// sockets are bound with XDP_USE_SG (jumbo.go). Set by New.
	multiBuffer bool
	queues      []*queue // one per socket: the ingress pipeline's reader, line and merger
	pool        *reorder.Pool[microflow]
	// mu guards what Reload changes: ports, nets, remotes, portCnt, networks, and the
	// networks' remotes, encaps and ports. Every stage that reads them takes it shared,
	// once per batch (a micro-flow, a TAP read batch, a resolver pass), never per frame;
	// Reload takes it alone.
	mu       sync.RWMutex
	ports    []*tap              // indexed by the FDB's local-port index; nil: removed by Reload
	nets     map[uint32]*network // the VNIs, by VNI
	networks []Network           // the networks as configured now: cfg.Networks, then Reload's
	// reloadMu makes Reloads take turns; resolveAll asks the resolver to rebuild every
	// outer header template, remotes having moved between VNIs.
	reloadMu   sync.Mutex
	resolveAll atomic.Bool
	// header and noLearning are cfg.Header and cfg.NoLearning as a Reload left them; v.mu.
	header     packet.HeaderOptions
	noLearning bool

	remotes   []*remote // every remote VTEP, indexed by its fdb.RemoteVTEP index
	clock     *fdb.Clock
	resolve   chan struct{} // wakes the neighbour resolver early
	workerCnt []counters    // one per ingress worker
	portCnt   []*counters   // one per local port's reader, indexed as ports; never shrinks
	life      lifecycle     // State, and when the fields above may be read by others
	events    eventLog      // rate limits of per-packet log lines
	link      linkState     // the underlay's state, from runLinkWatch (linkwatch.go)
	workers   []worker      // the ingress workers' state, indexed as workerCnt
	// groUDP: the workers' coalescers merge UDP datagrams too (every port takes USO).
	groUDP bool
	// faulty: a test armed fault injection (faults.go), which stalls pool workers only;
	// the readers then run nothing to completion, or a stall would miss its worker.
	faulty bool
	// room is the space inner frames need in front of them for a virtio_net_hdr on the
	// way into a TAP: offload.HdrLen with offloads, else 0.
	room int
	// ringOnce logs, once, that the mergers cannot have io_uring (tapring.go).
	ringOnce sync.Once
	// xdpFinal holds the XDP counters as Run began to stop, for the exit log.
	xdpFinal finalXDP

	depth int // micro-flows in flight per queue

	queueWatch sync.WaitGroup // runQueueWatch, which adds queues: waited for first
	readers    sync.WaitGroup // queue readers
	mergers    sync.WaitGroup // queue mergers
	writers    sync.WaitGroup // port readers
	others     sync.WaitGroup // resolver, FDB expiry, clock, link watch, checksum watch
}

// network is one VNI at run time.
type network struct {
	vni     uint32
	fdb     *fdb.Table
	remotes []*remote // this VNI's remote VTEPs: flood targets and allowed sources
	ports   []*tap
	// encaps[i] holds the outer header template toward remotes[i]; nil until the next
	// hop's MAC is resolved, replaced when it changes.
	encaps []encapSlot
	// static are the MAC addresses of the configured static entries set in fdb
	// (applyEntriesLocked); neighbours answer ARP and NS when suppress is on.
	static     [][6]byte
	neighbours []Neighbour
	suppress   bool
}

// remote is a remote VTEP.
type remote struct {
	index int
	addr  netip.Addr
	mac   [6]byte // the next hop's MAC the encaps were built with; the resolver's alone
	gone  bool    // no VNI has it any more (Reload): neither resolved nor accepted; v.mu
}

// New checks cfg against the node (the underlay exists and has the local address, the
// MTUs fit) without changing anything.
func New(cfg *Config, log *slog.Logger) (*VTEP, error) {
	link, err := netlink.LinkByName(cfg.Underlay)
	if err != nil {
		return nil, fmt.Errorf("find underlay %s: %w", cfg.Underlay, err)
	}
	addrs, err := netlink.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("list addresses of %s: %w", cfg.Underlay, err)
	}
	found := false
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == cfg.Local {
			found = true
		}
	}
	if !found {
		return nil, fmt.Errorf("local %s is not an address of underlay %s", cfg.Local, cfg.Underlay)
	}
	overhead := packet.HeadroomIPv4 - 14
	if cfg.Local.Is6() {
		overhead = packet.HeadroomIPv6 - 14
	}
	for _, n := range cfg.Networks {
		for _, p := range n.Ports {
			if p.MTU+14+overhead > link.Attrs().MTU {
				return nil, fmt.Errorf("port %s: mtu %d does not fit underlay %s (mtu %d) with %d bytes of VXLAN headers",
					p.dev(), p.MTU, cfg.Underlay, link.Attrs().MTU, overhead+14)
			}
		}
	}
	v := &VTEP{cfg: cfg, log: log, underlay: link, resolve: make(chan struct{}, 1), multiBuffer: needsMultiBuffer(cfg),
		header: cfg.Header, noLearning: cfg.NoLearning}
	if cfg.Offload {
		v.room = offload.HdrLen
	}
	copy(v.srcMAC[:], link.Attrs().HardwareAddr)
	return v, nil
}

// Run sets the node up, carries traffic until ctx is done, and then removes everything it
// made: the XDP program, the AF_XDP sockets and the TAP devices.
func (v *VTEP) Run(ctx context.Context) (err error) {
	defer func() {
		v.life.stopping()
		if cerr := v.teardown(); cerr != nil {
			err = errors.Join(err, cerr)
		}
		v.life.stopped()
	}()
	if err := v.setup(); err != nil {
		return err
	}
	v.life.running()
	v.log.Info("vxdp running", "underlay", v.cfg.Underlay, "local", v.cfg.Local, "port", v.cfg.Port,
		"xdp_mode", v.prog.Mode(), "queues", len(v.socks), "zerocopy", v.socks[0].ZeroCopy(),
		"multibuffer", v.multiBuffer, "ports", len(v.ports),
		"workers", v.cfg.Workers, "microflow", v.cfg.MicroFlow, "tap_io_uring", v.queues[0].ring != nil)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	v.queueWatch.Add(1)
	go func() { defer v.queueWatch.Done(); v.runQueueWatch(ctx) }()
	v.others.Add(5)
	go func() { defer v.others.Done(); v.runChecksumWatch(ctx) }()
	go func() { defer v.others.Done(); v.clock.Run(ctx) }()
	go func() { defer v.others.Done(); v.runLinkWatch(ctx) }()
	go func() { defer v.others.Done(); v.runResolver(ctx) }()
	go func() { defer v.others.Done(); v.runExpiry(ctx) }()
	for _, q := range v.queues {
		v.startQueue(ctx, q)
	}
	for _, t := range v.ports {
		v.writers.Add(1)
		go func() { defer v.writers.Done(); v.runPort(t, v.portCnt[t.index]) }()
	}
	<-ctx.Done()
	v.keepXDPCounters()
	st := v.SocketStats()
	v.log.Info("vxdp stopping", "rx_ring_full", st.RxRingFull, "fill_ring_empty", st.FillRingEmpty,
		"rx_dropped", st.RxDropped, "tx_no_room", st.TxNoRoom)
	return nil
}

// setup loads the XDP program, opens one AF_XDP socket per RX queue, creates the TAPs and
// only then attaches XDP, so no frame is redirected before a socket is there to take it.
func (v *VTEP) setup() error {
	var err error
	if v.prog, err = bpf.Load(); err != nil {
		return fmt.Errorf("load xdp program: %w", err)
	}
	bc := bpf.Config{Port: v.cfg.Port, Locals: []netip.Addr{v.cfg.Local}}
	seen := map[netip.Addr]*remote{}
	v.clock = fdb.NewClock()
	v.nets = map[uint32]*network{}
	v.networks = v.cfg.Networks
	for _, nc := range v.cfg.Networks {
		table, err := fdb.New(fdb.Options{Cap: v.cfg.FDBMax, Ageing: v.cfg.FDBAgeing})
		if err != nil {
			return fmt.Errorf("fdb of vni %d: %w", nc.VNI, err)
		}
		n := &network{vni: nc.VNI, fdb: table}
		for _, a := range nc.Remotes {
			r := seen[a]
			if r == nil {
				r = &remote{index: len(v.remotes), addr: a}
				seen[a] = r
				v.remotes = append(v.remotes, r)
				bc.Remotes = append(bc.Remotes, a)
			}
			n.remotes = append(n.remotes, r)
		}
		n.encaps = make([]encapSlot, len(n.remotes))
		v.nets[nc.VNI] = n
	}
	if err := v.prog.Configure(bc); err != nil {
		return fmt.Errorf("configure xdp program: %w", err)
	}
	// Each queue may hold inFlight frames between its RX ring and the TAP writes: what the
	// UMEM's RX part has beyond a full fill ring.
	inFlight := umemFrames - txFrames - ringSize
	perFlow := v.cfg.MicroFlow // UMEM frames a micro-flow holds: newQueue's descriptors
	if v.multiBuffer {
		perFlow = max(perFlow, xsk.MaxChunks)
	}
	v.depth = max(2, inFlight/perFlow)
	v.workerCnt = make([]counters, v.cfg.Workers)
	process, err := v.workerFunc() // v.process, unless a test arms faults (faults.go)
	if err != nil {
		return err
	}
	// The pool's queue has room for every queue the device could ever use, as queues come
	// into use while vxdp runs (runQueueWatch).
	attrs := v.underlay.Attrs()
	maxQueues := max(1, attrs.NumRxQueues)
	if v.pool, err = reorder.NewPool(v.cfg.Workers, maxQueues*v.depth, process); err != nil {
		return fmt.Errorf("worker pool: %w", err)
	}
	queues, err := queuesInUse(attrs.Name, attrs.Index, maxQueues)
	if err != nil {
		return fmt.Errorf("queues of %s: %w", v.cfg.Underlay, err)
	}
	for q := 0; q < queues; q++ {
		if err := v.openQueue(q); err != nil {
			return err
		}
	}
	for _, nc := range v.cfg.Networks {
		n := v.nets[nc.VNI]
		for _, p := range nc.Ports {
			t, err := v.openPort(p, len(v.ports))
			if err != nil {
				return err
			}
			if t.adopted {
				v.log.Info("took over tap", "port", p.TAP, "netns", p.Netns, "ifname", p.name())
			}
			t.net = n
			v.ports = append(v.ports, t)
			n.ports = append(n.ports, t)
			if err := n.fdb.Static(fdb.MACFrom(t.mac[:]), fdb.LocalPort(t.index)); err != nil {
				return fmt.Errorf("fdb of vni %d: port %s: %w", n.vni, p.dev(), err)
			}
		}
	}
	for _, nc := range v.cfg.Networks {
		if err := v.applyEntriesLocked(v.nets[nc.VNI], nc); err != nil {
			return err
		}
	}
	v.portCnt = make([]*counters, len(v.ports))
	for i := range v.portCnt {
		v.portCnt[i] = &counters{}
	}
	if err := v.newWorkers(); err != nil {
		return fmt.Errorf("ingress workers: %w", err)
	}
	v.resolveNeighbours()
	// A program an earlier vxdp left through netlink would block the attach; one that is
	// not vxdp's, or that a running process holds, is an error, never replaced.
	if err := bpf.DetachStale(v.underlay.Attrs().Index); err != nil {
		return fmt.Errorf("xdp on %s: %w", v.cfg.Underlay, err)
	}
	if err := v.prog.Attach(v.underlay.Attrs().Index); err != nil {
		return fmt.Errorf("attach xdp to %s: %w", v.cfg.Underlay, err)
	}
	// Set up: from now on the TAPs follow ports_on_exit, also if vxdp dies.
	for _, t := range v.ports {
		if err := t.setPersist(v.cfg.KeepPorts); err != nil {
			return err
		}
	}
	return nil
}

// openQueue opens an AF_XDP socket on the underlay's RX queue q, registers it with the
// XDP program and adds its ingress pipeline (reorder line) as v.queues[q].
func (v *VTEP) openQueue(q int) error {
	s, err := xsk.Open(xsk.Options{
		Ifindex: v.underlay.Attrs().Index, Queue: q,
		NumFrames: umemFrames, RingSize: ringSize, TxFrames: txFrames,
		MultiBuffer: v.multiBuffer,
	})
	if errors.Is(err, xsk.ErrNoMultiBuffer) {
		return errNoMultiBuffer(v.cfg, err)
	}
	if err != nil {
		return fmt.Errorf("open af_xdp socket on %s queue %d: %w", v.cfg.Underlay, q, err)
	}
	qu, err := newQueue(q, s, v.depth, v.cfg.MicroFlow)
	if err != nil {
		s.Close()
		return fmt.Errorf("reorder line of queue %d: %w", q, err)
	}
	qu.ring = v.newTapRing(v.cfg.MicroFlow)
	if err := v.prog.RegisterSocket(q, s.FD()); err != nil {
		s.Close()
		qu.ring.close()
		return fmt.Errorf("register af_xdp socket of queue %d: %w", q, err)
	}
	v.mu.Lock()
	v.socks = append(v.socks, s)
	v.queues = append(v.queues, qu)
	v.mu.Unlock()
	return nil
}

// addQueue opens queue q while vxdp runs and starts its reader and merger.
func (v *VTEP) addQueue(ctx context.Context, q int) error {
	if err := v.openQueue(q); err != nil {
		return err
	}
	v.mu.RLock()
	qu := v.queues[q]
	v.mu.RUnlock()
	v.startQueue(ctx, qu)
	return nil
}

// startQueue starts the reader and the merger of q.
func (v *VTEP) startQueue(ctx context.Context, q *queue) {
	if v.cfg.RunToCompletion && !v.faulty {
		w := &worker{}
		if err := v.initWorker(w, &q.c); err == nil { // the pool workers' coalescers were made alike
			v.mu.Lock() // sumTallies reads it
			q.inline = w
			v.mu.Unlock()
		} else {
			v.log.Error("queue runs nothing to completion", "queue", q.index, "err", err)
		}
	}
	v.readers.Add(1)
	go func() { defer v.readers.Done(); v.runReader(ctx, q) }()
	v.mergers.Add(1)
	go func() { defer v.mergers.Done(); v.runMerger(q) }()
}

// txSocket is the underlay socket egress of local port index i transmits on.
func (v *VTEP) txSocket(i int) *xsk.Socket {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.socks[i%len(v.socks)]
}

// teardown undoes setup in the order that keeps every stage safe and delivers what is in
// flight: detach XDP so nothing new arrives; close the sockets, which stops the readers;
// let the workers and mergers finish the micro-flows already taken; hand their frames
// back; then close the TAPs (which stops the port readers, and removes the TAPs unless
// ports_on_exit is keep); then the background goroutines. Run has cancelled the context
// by then.
func (v *VTEP) teardown() error {
	var errs []error
	v.queueWatch.Wait() // no queue is added from here on
	if v.prog != nil {
		if err := v.prog.Close(); err != nil {
			errs = append(errs, fmt.Errorf("detach xdp: %w", err))
		}
	}
	for _, s := range v.socks {
		if err := s.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close af_xdp socket: %w", err))
		}
	}
	v.readers.Wait()
	if v.pool != nil {
		v.pool.Close() // the workers finish the micro-flows already queued
	}
	for _, q := range v.queues {
		q.line.Close() // the mergers deliver what is done, then stop
	}
	v.mergers.Wait()
	for _, q := range v.queues {
		q.drain()
		if err := q.ring.close(); err != nil {
			errs = append(errs, fmt.Errorf("queue %d: %w", q.index, err))
		}
	}
	v.mu.Lock() // a Reload in progress ends first; one after this finds vxdp stopping
	for _, t := range v.ports {
		if t == nil {
			continue // removed by Reload
		}
		if err := t.close(); err != nil {
			errs = append(errs, fmt.Errorf("close port %s: %w", t.port.dev(), err))
		}
	}
	v.mu.Unlock()
	v.writers.Wait()
	v.others.Wait()
	return errors.Join(errs...)
}

// Counters sums the counters of every stage.
func (v *VTEP) Counters() Counters {
	v.mu.RLock()
	defer v.mu.RUnlock()
	var c Counters
	for _, q := range v.queues {
		c.add(&q.c)
		c.Inline += q.c.microflows.Load()
	}
	for i := range v.workerCnt {
		c.add(&v.workerCnt[i])
		c.PerWorker = append(c.PerWorker, v.workerCnt[i].microflows.Load())
	}
	for _, pc := range v.portCnt {
		c.add(pc)
	}
	return c
}

// SocketStats sums the AF_XDP sockets' statistics; the kernel's RxRingFull and
// FillRingEmpty show frames lost before vxdp could take them.
func (v *VTEP) SocketStats() xsk.Stats {
	var sum xsk.Stats
	for _, s := range v.socks {
		st, err := s.Stats()
		if err != nil {
			continue // closed: its last numbers are gone with it
		}
		sum.RxDropped += st.RxDropped
		sum.RxRingFull += st.RxRingFull
		sum.FillRingEmpty += st.FillRingEmpty
		sum.RxInvalidDescs += st.RxInvalidDescs
		sum.TxInvalidDescs += st.TxInvalidDescs
		sum.TxNoRoom += st.TxNoRoom
		sum.RxTooLong += st.RxTooLong
		sum.Received += st.Received
		sum.Transmitted += st.Transmitted
	}
	return sum
}

// XDPCounters returns the XDP program's counters.
func (v *VTEP) XDPCounters() (bpf.Counters, error) {
	return v.prog.Counters()
}

// runExpiry removes aged FDB entries every expiryPeriod, and on the same tick logs what
// the kernel dropped at the sockets since the last one (logSocketDrops).
func (v *VTEP) runExpiry(ctx context.Context) {
	tick := time.NewTicker(expiryPeriod)
	defer tick.Stop()
	var dropped [2]uint64
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			v.mu.RLock()
			for _, n := range v.nets {
				n.fdb.Expire(v.clock.Now())
			}
			v.mu.RUnlock()
			dropped = v.logSocketDrops(dropped)
		}
	}
}

// logSocketDrops logs the frames dropped at the AF_XDP sockets since last, the counts at
// the previous look (the kernel's rx_dropped, and Receive's rx_too_long), and returns the
// counts now. The kernel counts in rx_dropped a frame longer than the socket takes (one
// UMEM frame without multi-buffer: a remote VTEP whose MTU is larger than this node's ports
// need) and a frame that found no free UMEM frame; rx_too_long is a frame over more UMEM
// frames than a micro-flow takes. vxdp never sees either, so this line, once per
// expiryPeriod at most, is the only word of them besides vxdp_xsk_errors_total.
func (v *VTEP) logSocketDrops(last [2]uint64) [2]uint64 {
	st := v.SocketStats()
	now := [2]uint64{st.RxDropped, st.RxTooLong}
	// A socket closed since (its interface went away) takes its counts out of the sum.
	grew := func(i int) uint64 { return now[i] - min(last[i], now[i]) }
	if grew(0) > 0 || grew(1) > 0 {
		v.log.Warn("af_xdp sockets dropped frames longer than they take or without a free frame",
			"rx_dropped", grew(0), "rx_too_long", grew(1), "multibuffer", v.multiBuffer)
	}
	return now
}
