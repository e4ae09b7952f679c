//go:build linux

package dataplane

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"unsafe"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/vxdp/vxdp/bpf"
	"github.com/vxdp/vxdp/dataplane/offload"
	"github.com/vxdp/vxdp/dataplane/packet"
	"github.com/vxdp/vxdp/dataplane/xsk"
)

// A veth port is the alternative to a TAP (config field veth:): a veth pair whose host
// end stays in vxdp's namespace and whose peer is the container's interface.
//
//	egress:  container -> peer -> host end -> XDP (bpf.PortProgram) -> AF_XDP RX -> port reader
//	ingress: merger -> AF_XDP TX on the host end -> peer -> container
//
// Frames cross in batches through the AF_XDP rings, one wakeup per batch each way, where
// a TAP costs a read or write syscall per frame (or per super-frame with offloads). An
// XDP frame is one buffer, so nothing crosses as a super-frame: the workers do not
// coalesce frames bound for a veth port, and a super-frame a TAP port sends to a veth
// port is cut first.

const (
	// vethQueues is the number of RX and TX queues of each end of a veth port. One: a
	// single flow never spans queues, so more would only add sockets, and the kernel
	// wants the host end's RX queues to be at least the peer's TX queues for XDP.
	vethQueues = 1
	// vethFrames is the UMEM size of a veth port's socket, in frames, of which vethTxFrames
	// carry ingress into the container. A TX frame comes back once the container's stack
	// has taken the frame off the veth's backlog (up to net.core.netdev_max_backlog, 1000
	// by default): a full ring's worth covers it. The RX part feeds a full fill ring.
	vethFrames   = 2 * ringSize
	vethTxFrames = ringSize
	// in6AddrGenModeNone (IN6_ADDR_GEN_MODE_NONE) keeps the kernel from giving the host
	// end an IPv6 link-local address, and so from sending neighbour discovery and MLD
	// into the container from it.
	in6AddrGenModeNone = 1
)

// veth is the AF_XDP side of a veth port: the port program on the host end and one
// socket per RX queue of it. Set up by openVeth, read-only until close.
type veth struct {
	ifindex int // the host end's, in vxdp's namespace
	prog    *bpf.PortProgram
	socks   []*xsk.Socket
}

// openPort opens local port p as its kind says: a TAP (openTAP) or a veth pair.
func (v *VTEP) openPort(p Port, index int) (*tap, error) {
	if p.Veth == "" {
		return openTAP(p, index, v.cfg.Offload)
	}
	t, replaced, err := openVeth(p, index)
	if replaced {
		v.log.Info("removed stale veth, left by a vxdp that died", "port", p.Veth)
	}
	return t, err
}

// openVeth creates the veth pair of port p: the host end p.Veth stays in vxdp's
// namespace, its peer goes into p.Netns under p's name there; both get p's MTU and come
// up. The port program is attached to the host end, with an AF_XDP socket on each of its
// RX queues. A veth named p.Veth left by a vxdp that died is removed first (replaced
// says so). On error nothing is left behind.
func openVeth(p Port, index int) (_ *tap, replaced bool, err error) {
	target := netns.None()
	h := &netlink.Handle{} // netlink in the peer's namespace
	if p.Netns != "" {
		if target, err = netns.GetFromPath(p.Netns); err != nil {
			return nil, replaced, fmt.Errorf("open netns %s: %w", p.Netns, err)
		}
		defer target.Close()
		if h, err = netlink.NewHandleAt(target); err != nil {
			return nil, replaced, fmt.Errorf("netlink in %s: %w", p.Netns, err)
		}
		defer h.Close()
	}
	if replaced, err = removeStaleVeth(p.Veth); err != nil {
		return nil, false, err
	}
	la := netlink.NewLinkAttrs()
	la.Name, la.MTU = p.Veth, p.MTU
	la.NumTxQueues, la.NumRxQueues = vethQueues, vethQueues
	pair := &netlink.Veth{
		LinkAttrs: la, PeerName: p.name(), PeerMTU: uint32(p.MTU),
		PeerNumTxQueues: vethQueues, PeerNumRxQueues: vethQueues,
	}
	if p.Netns != "" {
		pair.PeerNamespace = netlink.NsFd(target)
	}
	if err := netlink.LinkAdd(pair); err != nil {
		return nil, replaced, fmt.Errorf("create veth %s with peer %s in %s: %w", p.Veth, p.name(), nsName(p.Netns), err)
	}
	host, err := netlink.LinkByName(p.Veth)
	if err != nil {
		// Created but not found: delete by name so it is not left behind.
		return nil, replaced, errors.Join(fmt.Errorf("find veth %s: %w", p.Veth, err), netlink.LinkDel(pair))
	}
	vp := &veth{ifindex: host.Attrs().Index}
	defer func() {
		if err != nil {
			err = errors.Join(err, vp.close())
		}
	}()
	if err := netlink.LinkSetIP6AddrGenMode(host, in6AddrGenModeNone); err != nil {
		return nil, replaced, fmt.Errorf("turn off ipv6 addresses on veth %s: %w", p.Veth, err)
	}
	if err := netlink.LinkSetUp(host); err != nil {
		return nil, replaced, fmt.Errorf("set veth %s up: %w", p.Veth, err)
	}
	peer, err := h.LinkByName(p.name())
	if err != nil {
		return nil, replaced, fmt.Errorf("find veth peer %s in %s: %w", p.name(), nsName(p.Netns), err)
	}
	// The container's stack would hand its TCP and UDP frames over with the checksum left
	// to the device (CHECKSUM_PARTIAL), and XDP passes them on as they are: the receiver
	// would drop them. Without the offload the container's stack completes them.
	if err := txChecksumOff(target, p.name()); err != nil {
		return nil, replaced, fmt.Errorf("veth peer %s in %s: %w", p.name(), nsName(p.Netns), err)
	}
	if err := h.LinkSetUp(peer); err != nil {
		return nil, replaced, fmt.Errorf("set veth peer %s up in %s: %w", p.name(), nsName(p.Netns), err)
	}
	if vp.prog, err = bpf.LoadPort(); err != nil {
		return nil, replaced, fmt.Errorf("veth %s: %w", p.Veth, err)
	}
	for q := 0; q < max(1, host.Attrs().NumRxQueues); q++ {
		s, err := xsk.Open(xsk.Options{
			Ifindex: vp.ifindex, Queue: q,
			NumFrames: vethFrames, RingSize: ringSize, TxFrames: vethTxFrames,
			MultiBuffer: 14+p.MTU > singleBufferRoom,
		})
		if err != nil {
			return nil, replaced, fmt.Errorf("open af_xdp socket on veth %s queue %d: %w", p.Veth, q, err)
		}
		vp.socks = append(vp.socks, s)
		if err := vp.prog.RegisterSocket(q, s.FD()); err != nil {
			return nil, replaced, fmt.Errorf("veth %s: %w", p.Veth, err)
		}
	}
	// Attached last, once every queue has its socket.
	if err := vp.prog.Attach(vp.ifindex); err != nil {
		return nil, replaced, fmt.Errorf("veth %s: %w", p.Veth, err)
	}
	t := &tap{port: p, index: index, veth: vp}
	copy(t.mac[:], peer.Attrs().HardwareAddr) // the container's address: the FDB's static entry
	return t, replaced, nil
}

// removeStaleVeth deletes the veth named name in vxdp's namespace, if there is one, and
// says whether there was: a veth port outlives a vxdp that dies (SIGKILL, OOM), and its
// name is the config's. Deleting it removes its peer too. A device of that name that is
// not a veth is an error: vxdp removes only its own kind of device.
func removeStaleVeth(name string) (bool, error) {
	l, err := netlink.LinkByName(name)
	if errors.As(err, &netlink.LinkNotFoundError{}) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("look up %s: %w", name, err)
	}
	if _, ok := l.(*netlink.Veth); !ok {
		return false, fmt.Errorf("create veth %s: %s exists and is a %s device, not a veth", name, name, l.Type())
	}
	if err := netlink.LinkDel(l); err != nil {
		return false, fmt.Errorf("remove stale veth %s: %w", name, err)
	}
	return true, nil
}

// ethtoolValue is struct ethtool_value, the argument of the single-feature ethtool commands.
type ethtoolValue struct {
	cmd, data uint32
}

// txChecksumOff turns off the TX checksum offload (ETHTOOL_STXCSUM) of interface name
// in namespace ns (netns.None(): vxdp's).
func txChecksumOff(ns netns.NsHandle, name string) error {
	return inNetns(ns, func() error {
		ev := &ethtoolValue{cmd: unix.ETHTOOL_STXCSUM}
		if err := ethtool(name, unsafe.Pointer(ev)); err != nil {
			return fmt.Errorf("turn off tx checksum offload: %w", err)
		}
		return nil
	})
}

// inNetns runs fn on the calling goroutine's thread switched into namespace ns, or as it
// is for netns.None(). If the thread cannot be switched back it stays locked, so Go ends
// it with the goroutine instead of running other code in the wrong namespace.
func inNetns(ns netns.NsHandle, fn func() error) (err error) {
	if !ns.IsOpen() {
		return fn()
	}
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("current netns: %w", err)
	}
	defer orig.Close()
	if err := netns.Set(ns); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter netns: %w", err)
	}
	defer func() {
		if serr := netns.Set(orig); serr != nil {
			err = errors.Join(err, fmt.Errorf("return to own netns: %w", serr))
			return
		}
		runtime.UnlockOSThread()
	}()
	return fn()
}

// nsName names a port's netns in messages: its path, or vxdp's own.
func nsName(path string) string {
	if path == "" {
		return "vxdp's netns"
	}
	return path
}

// close detaches the port program (nothing more is redirected), closes the sockets
// (which stops the port's readers and fails later transmits) and deletes the host end,
// which takes the peer with it. It is called once, by the port's close.
func (vp *veth) close() error {
	var errs []error
	if vp.prog != nil {
		if err := vp.prog.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	for _, s := range vp.socks {
		if err := s.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close af_xdp socket: %w", err))
		}
	}
	if vp.ifindex > 0 {
		l, err := netlink.LinkByIndex(vp.ifindex)
		if err == nil {
			err = netlink.LinkDel(l)
		}
		if err != nil && !errors.As(err, &netlink.LinkNotFoundError{}) {
			errs = append(errs, fmt.Errorf("delete veth: %w", err))
		}
	}
	return errors.Join(errs...)
}

// VethStats are a veth port's own numbers.
type VethStats struct {
	// XDP are its port program's counters: frames redirected to the sockets, and frames
	// dropped for arriving on a queue without one. Zero once the port is closed.
	XDP bpf.PortCounters
	// Socket sums its AF_XDP sockets' statistics (after Close, the socket layer's only).
	Socket xsk.Stats
}

// stats returns the port's numbers, or nil for a TAP port (vp nil). For scrapes: it makes
// a few syscalls and allocates.
func (vp *veth) stats() *VethStats {
	if vp == nil {
		return nil
	}
	st := &VethStats{}
	st.XDP, _ = vp.prog.Counters() // ErrClosed after close: zero
	for _, s := range vp.socks {
		ss, _ := s.Stats() // after Close, the socket layer's own counters
		sum := &st.Socket
		sum.RxDropped += ss.RxDropped
		sum.RxInvalidDescs += ss.RxInvalidDescs
		sum.TxInvalidDescs += ss.TxInvalidDescs
		sum.RxRingFull += ss.RxRingFull
		sum.FillRingEmpty += ss.FillRingEmpty
		sum.TxRingEmpty += ss.TxRingEmpty
		sum.Received += ss.Received
		sum.Filled += ss.Filled
		sum.FillRefused += ss.FillRefused
		sum.Transmitted += ss.Transmitted
		sum.Completed += ss.Completed
		sum.TxNoRoom += ss.TxNoRoom
		sum.TxTooLong += ss.TxTooLong
		sum.RxKicks += ss.RxKicks
		sum.TxKicks += ss.TxKicks
		sum.KickErrors += ss.KickErrors
		if ss.LastKickErrno != 0 {
			sum.LastKickErrno = ss.LastKickErrno
		}
	}
	return st
}

// runVeth is the reader of a veth port: one goroutine per socket of the host end. It
// returns when the port is closed.
func (v *VTEP) runVeth(t *tap, c *counters) {
	var wg sync.WaitGroup
	for _, s := range t.veth.socks[1:] {
		wg.Add(1)
		go func() { defer wg.Done(); v.readVeth(t, s, c) }()
	}
	v.readVeth(t, t.veth.socks[0], c)
	wg.Wait()
}

// readVeth takes the frames the container sent from the RX ring of s in batches and
// forwards them as a TAP port's reader does, in place: each frame is switched and, for
// remote VTEPs, encapsulated in the headroom the kernel left in front of it in the UMEM,
// so the only copy is the one into the underlay's TX frames. The batch goes back to the
// fill ring once it is transmitted.
func (v *VTEP) readVeth(t *tap, s *xsk.Socket, c *counters) {
	e := newEgress(v, t, c, v.txSocket(t.index))
	descs := make([]xsk.Desc, max(batchSize, xsk.MaxChunks))
	// The frames of a batch that span several UMEM frames, each gathered behind its own
	// headroom, stay here until the batch is transmitted: room for every byte descs holds.
	var arena []byte
	if s.MultiBuffer() {
		arena = make([]byte, len(descs)*(packet.Headroom+s.FrameSize()-xsk.RxHeadroom))
	}
	for {
		n := s.Receive(descs)
		if n == 0 {
			if err := s.Wait(); err != nil {
				if !t.closed.Load() {
					t.errs.read.Add(1)
					v.log.Error("port reader stopped", "port", t.port.dev(), "err", err, portErrCause(err))
				}
				return
			}
			continue
		}
		now := v.clock.Now()
		jumbo := arena
		v.mu.RLock() // once per batch: the ports, networks and remotes hold still (Reload)
		for i := 0; i < n; {
			var buf []byte
			size := int(descs[i].Len)
			if descs[i].Continued { // over several UMEM frames: gathered, then as any other
				frame, took := s.Gather(descs[i:n], jumbo[packet.Headroom:])
				i += took
				if frame != nil {
					buf, size = jumbo[:packet.Headroom+len(frame)], len(frame)
					jumbo = jumbo[len(buf):]
				}
			} else {
				buf = s.FrameWithRoom(descs[i], packet.Headroom)
				i++
			}
			if buf == nil { // not a frame of this socket's UMEM: the kernel never posts one
				c.outPackets.Add(1)
				c.drops[DropRunt].Add(1)
				continue
			}
			// The bytes in front of the frame are a plain virtio_net_hdr for TAP ports with
			// offloads (forward delivers them); the frame's last use left headers there.
			clear(buf[packet.Headroom-v.room : packet.Headroom])
			e.readPlain(buf, size, now)
		}
		e.flush()
		v.mu.RUnlock()
		s.Fill(descs[:n])
	}
}

// vethScratch holds the frames a port reader cuts from a super-frame for a veth port.
type vethScratch struct {
	bufs   [][]byte
	sizes  []int
	frames [][]byte
}

// toVeth delivers a frame read from this port to veth port p. A plain frame goes as it
// is; a super-frame, or a frame whose checksum the TAP left for us to complete, is cut
// (copied) first, leaving the original as it is for the other ports and the remotes.
func (e *egress) toVeth(p *tap, frame []byte, hdr offload.VirtioNetHdr) {
	if hdr.GSOType == offload.GSONone && hdr.Flags&offload.FlagNeedsCsum == 0 {
		e.one[0] = frame
		e.v.vethTransmit(p, e.one, e.c)
		return
	}
	if e.veth == nil { // once per port reader, and only if it ever needs it
		e.veth = &vethScratch{
			bufs:   make([][]byte, tapGSOMaxSegs),
			sizes:  make([]int, tapGSOMaxSegs),
			frames: make([][]byte, tapGSOMaxSegs),
		}
		for i := range e.veth.bufs {
			e.veth.bufs[i] = make([]byte, 14+e.mtu)
		}
	}
	sc := e.veth
	k, err := offload.Segment(hdr, frame, e.mtu, sc.bufs, sc.sizes, 0)
	if err != nil {
		e.c.drops[offloadDrop(err)].Add(1)
		return
	}
	for i := range k {
		sc.frames[i] = sc.bufs[i][:sc.sizes[i]]
	}
	e.v.vethTransmit(p, sc.frames[:k], e.c)
}

// vethBatch gathers what one merger delivers to veth ports from one micro-flow, so that
// each port gets them in one AF_XDP Transmit: one wakeup per port and micro-flow, not
// one per frame. Owned by the merger; its slices grow to their need once and are reused.
type vethBatch struct {
	pend   []delivery // deliveries to veth ports, in the micro-flow's order
	frames [][]byte   // one port's frames from pend
}

// flush transmits what was gathered, port by port, each port's frames in their order.
func (b *vethBatch) flush(v *VTEP, c *counters) {
	for len(b.pend) > 0 {
		t := b.pend[0].t
		frames := b.frames[:0]
		rest := b.pend[:0] // compacts in place: rest never overtakes the range below
		for _, d := range b.pend {
			if d.t != t {
				rest = append(rest, d)
				continue
			}
			frames = append(frames, d.pkt[v.room:])
		}
		b.frames, b.pend = frames, rest
		v.vethTransmit(t, frames, c)
	}
}

// vethTransmit posts inner frames on veth port t's TX ring with one wakeup. Frames that
// find no free TX frame are dropped and counted (DropTxFull, and the port's write
// errors): the merger does not wait, or one slow container would hold up every port.
func (v *VTEP) vethTransmit(t *tap, frames [][]byte, c *counters) {
	sent := t.veth.socks[0].Transmit(frames)
	var bytes uint64
	for _, f := range frames[:sent] {
		bytes += uint64(len(f))
	}
	c.inPackets.Add(uint64(sent))
	c.inBytes.Add(bytes)
	if lost := len(frames) - sent; lost > 0 {
		c.drops[DropTxFull].Add(uint64(lost))
		t.errs.write.Add(uint64(lost))
		if !t.closed.Load() {
			v.txFull(t, lost)
		}
	}
}
