//go:build linux

package dataplane

import (
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/vxdp/vxdp/dataplane/fdb"
	"github.com/vxdp/vxdp/dataplane/offload"
	"github.com/vxdp/vxdp/dataplane/packet"
	"github.com/vxdp/vxdp/dataplane/xsk"
)

// encapSlot holds the outer header template toward one remote VTEP of one VNI. The
// neighbour resolver replaces it when the next hop's MAC changes; readers load it per frame.
type encapSlot struct {
	p atomic.Pointer[packet.Encap]
}

// egress is the state of one port reader, allocated once before its loop.
type egress struct {
	v    *VTEP
	t    *tap
	n    *network
	sock *xsk.Socket
	c    *counters
	mtu  int // the port's MTU: the largest inner IP packet it may send
	// srcPorts is the outer UDP source port range (config field srcport).
	srcPorts packet.PortRange
	tx       [][]byte // frames encapsulated in this batch, waiting for one Transmit
	one      [][]byte // a batch of one, for flooding to several remotes
	// With offloads: segs[:used] hold the segments cut from super-frames of this batch,
	// each behind packet.Headroom bytes for the outer headers, until flush sends them.
	segs  [][]byte
	sizes []int
	used  int
	// plain and plainSize present a frame that needs no cutting as a list of one.
	plain     [][]byte
	plainSize []int
	// inPlace: a segment with its outer headers fits one UMEM frame, so a super-frame for
	// one remote is cut straight into TX frames reserved from sock (zc, with zsizes), its
	// segments encapsulated there and posted without another copy.
	inPlace bool
	zc      [][]byte
	zsizes  []int
	// held is the TX frame reserved from sock that the frame being switched was read into,
	// or nil if it was read into the heap; heap is the read's heap buffer, laid out alike,
	// where a frame flooded to several remotes is copied. Queueing the frame for
	// transmission in place clears held; the reader takes back a frame still held.
	held, heap []byte
	// placed holds the TX frames a scattered read put the payload of the super-frame being
	// switched in (its headers are in heap), one per segment, or nil; r is the reader they
	// go back to if they are not queued.
	placed [][]byte
	r      *tapReader
	// veth holds what toVeth cuts from super-frames for veth ports; nil until needed.
	veth *vethScratch
	// neigh holds the answer to an ARP request or a neighbour solicitation (neigh_suppress),
	// behind v.room bytes for a plain virtio_net_hdr.
	neigh []byte
}

// tapVnetBatch is how many frames a port reader takes per wakeup from a TAP with
// offloads: each may be a 64 KB super-frame, so fewer than batchSize keep the buffers
// small (8 of them are already up to 512 KB in flight per port).
const tapVnetBatch = 8

// runPort is the reader of one local port: it reads frames from the TAP in batches,
// switches each within its VNI, encapsulates what goes to remote VTEPs (cutting
// super-frames into MTU-sized frames first) and transmits the batch on the underlay with
// one wakeup. It returns when the TAP is closed.
func (v *VTEP) runPort(t *tap, c *counters) {
	if t.veth != nil {
		v.runVeth(t, c)
		return
	}
	e := newEgress(v, t, c, v.txSocket(t.index))
	var r *tapReader
	if t.vnet {
		// The virtio_net_hdr is read into the end of the headroom, so that the frame
		// itself starts at packet.Headroom, as without offloads.
		r = newTapReader(t, tapVnetBatch, packet.Headroom-offload.HdrLen, offload.HdrLen+offload.MaxFrameLen, e.sock, e.mtu)
	} else {
		r = newTapReader(t, batchSize, packet.Headroom, 14+e.mtu+1, e.sock, 0) // one spare byte detects oversize frames
	}
	for {
		n, err := r.readBatch()
		if err != nil {
			if !t.closed.Load() {
				t.errs.read.Add(1)
				v.log.Error("port reader stopped", "port", t.port.dev(), "err", err, portErrCause(err))
			}
			return
		}
		now := v.clock.Now()
		v.mu.RLock() // once per batch: the ports, networks and remotes hold still
		e.switchBatch(r, n, now)
		v.mu.RUnlock()
	}
}

// switchBatch switches the n frames r read and transmits what goes to remote VTEPs. The
// TX frames r read into go out with the batch or back to r.
func (e *egress) switchBatch(r *tapReader, n int, now uint32) {
	e.r = r
	for i := 0; i < n; i++ {
		e.held, e.heap = r.tx[i], r.heap[i]
		if r.placed != nil {
			e.placed, r.placed[i] = r.placed[i], nil
		}
		if e.t.vnet {
			e.readVnet(r.bufs[i], r.sizes[i], now)
		} else {
			e.readPlain(r.bufs[i], r.sizes[i], now)
		}
		if e.held != nil { // dropped, delivered to local ports or copied: not queued
			r.giveBack(e.held)
			e.held = nil
		}
		if e.placed != nil { // dropped
			r.giveBackAll(e.placed)
			e.placed = nil
		}
		r.tx[i] = nil
	}
	e.flush()
	r.trimSpare()
}

// newEgress prepares the state of port t's reader, which transmits on sock and counts in c:
// with offloads (a TAP with a virtio_net_hdr), room for the segments of its super-frames.
func newEgress(v *VTEP, t *tap, c *counters, sock *xsk.Socket) *egress {
	e := &egress{
		v: v, t: t, n: t.net, c: c, sock: sock,
		mtu:      t.port.MTU,
		srcPorts: v.cfg.SrcPorts,
		one:      make([][]byte, 1),
		plain:    make([][]byte, 1), plainSize: make([]int, 1),
		tx:    make([][]byte, 0, batchSize),
		neigh: make([]byte, v.room+packet.NeighReplyLen),
	}
	if e.srcPorts == (packet.PortRange{}) {
		e.srcPorts = packet.DefaultPortRange
	}
	if t.vnet {
		e.segs = make([][]byte, 2*tapGSOMaxSegs)
		for i := range e.segs {
			e.segs[i] = make([]byte, packet.Headroom+14+e.mtu)
		}
		e.sizes = make([]int, len(e.segs))
		e.inPlace = packet.Headroom+14+e.mtu <= sock.FrameSize()
		e.zc = make([][]byte, tapGSOMaxSegs)
		e.zsizes = make([]int, tapGSOMaxSegs)
		// Room for a batch of super-frames all cut in place, and the copies.
		e.tx = make([][]byte, 0, tapVnetBatch*(tapGSOMaxSegs+1)+len(e.segs))
	}
	return e
}

// readPlain takes one frame read from a TAP without offloads: size bytes at
// buf[packet.Headroom:].
func (e *egress) readPlain(buf []byte, size int, now uint32) {
	e.c.outPackets.Add(1)
	e.c.outBytes.Add(uint64(size))
	switch {
	case size < 14:
		e.c.drops[DropRunt].Add(1)
		return
	case size > 14+e.mtu:
		e.c.drops[DropTooBig].Add(1)
		e.v.frameTooBig(DropTooBig, e.t, netip.Addr{}, size, 14+e.mtu)
		return
	}
	e.forward(buf, packet.Headroom, size, offload.VirtioNetHdr{}, now)
}

// readVnet takes one read from a TAP with offloads: size bytes at
// buf[packet.Headroom-offload.HdrLen:], a virtio_net_hdr and a frame or super-frame.
func (e *egress) readVnet(buf []byte, size int, now uint32) {
	off := packet.Headroom
	size -= offload.HdrLen
	if size < 14 {
		e.c.outPackets.Add(1)
		e.c.drops[DropRunt].Add(1)
		return
	}
	hdr, err := offload.Decode(buf[off-offload.HdrLen : off])
	frames, hl := 1, 0
	if err == nil {
		frames, hl, err = offload.Segments(hdr, buf[off:off+size], e.mtu)
	}
	if err != nil {
		e.c.outPackets.Add(1)
		e.c.outBytes.Add(uint64(size))
		e.c.drops[offloadDrop(err)].Add(1)
		return
	}
	// Counted as the frames the super-frame stands for, as they will cross the wire.
	e.c.outPackets.Add(uint64(frames))
	e.c.outBytes.Add(uint64(size + (frames-1)*hl))
	if hdr.GSOType == offload.GSONone && size > 14+e.mtu {
		e.c.drops[DropTooBig].Add(1)
		e.v.frameTooBig(DropTooBig, e.t, netip.Addr{}, size, 14+e.mtu)
		return
	}
	e.forward(buf, off, size, hdr, now)
}

// offloadDrop is the drop reason of an error of package offload.
func offloadDrop(err error) Drop {
	if err == offload.ErrMTU {
		return DropTooBig
	}
	return DropBadOffload
}

// forward switches one frame read from the port; buf holds it at buf[off:off+size] with
// headroom for the outer headers in front, and with offloads hdr, its virtio_net_hdr, in
// the last offload.HdrLen bytes of that headroom. Local ports get the frame as it came,
// super-frame and header included; remote VTEPs get it in MTU-sized frames.
func (e *egress) forward(buf []byte, off, size int, hdr offload.VirtioNetHdr, now uint32) {
	inner := buf[off : off+size]
	src := inner[6:12]
	if src[0]&1 != 0 || [6]byte(src) == [6]byte{} {
		e.c.drops[DropBadSource].Add(1)
		return
	}
	if d, drop := e.v.cfg.fromPortDrop(inner); drop {
		e.c.drops[d].Add(1)
		return
	}
	n, c := e.n, e.c
	switch n.fdb.Learn(fdb.MACFrom(src), fdb.LocalPort(e.t.index), now) {
	case fdb.LearnAdded, fdb.LearnMoved, fdb.LearnEvicted:
		c.learned.Add(1)
	}
	pkt := buf[off-e.v.room : off+size] // what a local port gets
	if inner[0]&1 == 0 {                // unicast destination
		if to, ok := n.fdb.Lookup(fdb.MACFrom(inner[0:6])); ok {
			if to.IsLocal() {
				if p := e.v.ports[to.Index()]; p != e.t {
					e.gather(buf, off, size, hdr)
					e.toLocal(p, pkt, hdr, size)
				}
				return
			}
			e.toRemote(buf, off, size, hdr, to.Index())
			return
		}
	}
	// Broadcast, multicast or unknown unicast: a copy to every other local port, and
	// head-end replication to every remote VTEP of the VNI; but an ARP request or a
	// neighbour solicitation vxdp can answer goes no further.
	if n.suppress && e.answerNeighbour(inner) {
		return
	}
	if len(n.ports) > 1 || len(n.remotes) > 1 {
		e.gather(buf, off, size, hdr) // copies need the whole frame
	}
	for _, p := range n.ports {
		if p != e.t {
			e.toLocal(p, pkt, hdr, size)
		}
	}
	switch len(n.remotes) {
	case 0:
		return
	case 1:
		e.toSlot(0, buf, off, size, hdr) // as to a known MAC: queued, in place where it can be
		return
	}
	if e.held != nil {
		// Each remote's outer headers go in front of the frame in turn, and Transmit would
		// post it from its TX frame as it is: the remotes get copies of the heap's instead.
		copy(e.heap[off:off+size], buf[off:off+size])
		buf = e.heap
	}
	bufs, sizes := e.segment(buf, off, size, hdr)
	if len(bufs) == 0 {
		return
	}
	// Each remote needs its own outer header in the same headroom, so what is queued goes
	// out first (keeping the port's order) and each copy is posted on its own.
	e.transmit(e.tx)
	e.tx = e.tx[:0]
	srcPort := e.srcPorts.SourcePort(bufs[0][packet.Headroom : packet.Headroom+sizes[0]])
	for j, seg := range bufs {
		for i := range n.remotes {
			frame := e.encap(i, seg, packet.Headroom, sizes[j], srcPort)
			if frame == nil {
				continue
			}
			e.one[0] = frame
			e.transmit(e.one)
		}
	}
	e.used = 0 // every segment is out
}

// answerNeighbour answers inner, a frame from this port, for the VNI's neighbour it asks
// about, if it is an ARP request or a neighbour solicitation for one, and reports whether
// it did. The answer goes back to this port alone.
func (e *egress) answerNeighbour(inner []byte) bool {
	target, ok := packet.NeighRequest(inner)
	if !ok {
		return false
	}
	for _, nb := range e.n.neighbours {
		if nb.IP != target {
			continue
		}
		room := e.v.room
		size := packet.NeighReply(e.neigh[room:], inner, nb.MAC)
		clear(e.neigh[:room]) // a plain virtio_net_hdr
		e.c.neighReplies.Add(1)
		e.toLocal(e.t, e.neigh[:room+size], offload.VirtioNetHdr{}, size)
		return true
	}
	return false
}

// toLocal writes a frame read from this port to another local port of the VNI.
func (e *egress) toLocal(p *tap, pkt []byte, hdr offload.VirtioNetHdr, size int) {
	if p.veth != nil {
		e.toVeth(p, pkt[e.v.room:], hdr)
		return
	}
	frames, bytes := uint32(1), uint32(size)
	if hdr.GSOType != offload.GSONone {
		n, hl, _ := offload.Segments(hdr, pkt[offload.HdrLen:], e.mtu) // readVnet checked it
		frames, bytes = uint32(n), uint32(size+(n-1)*hl)
	}
	e.v.deliver(p, pkt, frames, bytes, e.c)
}

// toRemote encapsulates the frame (its segments, for a super-frame) toward the remote VTEP
// with global index ri and queues it.
func (e *egress) toRemote(buf []byte, off, size int, hdr offload.VirtioNetHdr, ri int) {
	i := e.n.remoteSlot(ri)
	if i < 0 {
		// The FDB points at a remote this VNI no longer has: flood instead on the next frame.
		e.c.drops[DropNoNeighbour].Add(1)
		return
	}
	e.toSlot(i, buf, off, size, hdr)
}

// toSlot encapsulates the frame (its segments, for a super-frame) toward the VNI's i-th
// remote VTEP and queues it. A frame read into a TX frame (e.held) is queued there, so
// that Transmit posts it without a copy.
func (e *egress) toSlot(i int, buf []byte, off, size int, hdr offload.VirtioNetHdr) {
	var bufs [][]byte
	var sizes []int
	var inPlace bool
	if e.placed != nil {
		bufs, sizes, inPlace = e.segmentPlaced(buf, off, size, hdr), e.zsizes, true
		sizes = sizes[:len(bufs)]
	} else {
		bufs, sizes, inPlace = e.segmentInPlace(buf, off, size, hdr)
	}
	if len(bufs) == 0 {
		return
	}
	srcPort := e.srcPorts.SourcePort(bufs[0][packet.Headroom : packet.Headroom+sizes[0]])
	for j, seg := range bufs {
		if frame := e.encap(i, seg, packet.Headroom, sizes[j], srcPort); frame != nil {
			e.tx = append(e.tx, frame)
			if e.held != nil && &seg[0] == &e.held[0] {
				e.held = nil // transmit posts it, or releases it if it cannot
				e.c.txInPlace.Add(1)
			}
		} else if inPlace {
			e.sock.Release(bufs[j : j+1])
		}
	}
}

// segmentInPlace is segment for a frame toward one remote VTEP: a super-frame is cut
// straight into TX frames of the underlay socket when its segments fit them and enough are
// free, which saves a copy of every byte; inPlace says so (the caller transmits or
// releases each of bufs). Otherwise it is segment's result.
func (e *egress) segmentInPlace(buf []byte, off, size int, hdr offload.VirtioNetHdr) (bufs [][]byte, sizes []int, inPlace bool) {
	if !e.inPlace || hdr.GSOType == offload.GSONone {
		bufs, sizes = e.segment(buf, off, size, hdr)
		return bufs, sizes, false
	}
	frame := buf[off : off+size]
	k, _, err := offload.Segments(hdr, frame, e.mtu)
	if err == nil && k <= len(e.zc) {
		got := e.sock.Reserve(e.zc[:k])
		if got == k {
			n, err := offload.Segment(hdr, frame, e.mtu, e.zc[:k], e.zsizes[:k], packet.Headroom)
			if err == nil {
				e.c.gsoSuper.Add(1)
				e.c.gsoSegments.Add(uint64(n))
				if n < k {
					e.sock.Release(e.zc[n:k])
				}
				return e.zc[:n], e.zsizes[:n], true
			}
		}
		e.sock.Release(e.zc[:got])
	}
	bufs, sizes = e.segment(buf, off, size, hdr)
	return bufs, sizes, false
}

// segmentPlaced is segmentInPlace for a super-frame read scattered: its segments'
// payloads are in e.placed already, and only their headers are written. It returns the
// segments, which the caller transmits or releases, or none if it dropped the frame.
func (e *egress) segmentPlaced(buf []byte, off, size int, hdr offload.VirtioNetHdr) [][]byte {
	placed := e.placed
	e.placed = nil
	n, err := offload.SegmentPlaced(hdr, buf[off:off+size], size, e.mtu, placed, e.zsizes[:len(placed)], packet.Headroom)
	if err != nil || n != len(placed) { // the reader checked the layout: not expected
		e.c.drops[DropBadOffload].Add(1)
		e.r.giveBackAll(placed)
		return nil
	}
	e.c.gsoSuper.Add(1)
	e.c.gsoSegments.Add(uint64(n))
	e.c.gsoPlaced.Add(1)
	return placed
}

// gather moves the payload of a super-frame read scattered from e.placed into buf, behind
// its headers, where an ordinary read would have put it, for the paths that need the
// frame whole (local ports, copies for several remotes); the TX frames go back to the
// reader.
func (e *egress) gather(buf []byte, off, size int, hdr offload.VirtioNetHdr) {
	if e.placed == nil {
		return
	}
	hl, seg, _ := offload.PayloadPerSegment(hdr, buf[off:off+size], size, e.mtu) // the reader checked it
	at := packet.Headroom + hl
	for j, f := range e.placed {
		n := min(seg, size-hl-j*seg)
		copy(buf[off+hl+j*seg:], f[at:at+n])
	}
	e.r.giveBackAll(e.placed)
	e.placed = nil
	e.r.gathered()
}

// segment readies a frame for the underlay and returns the frames to encapsulate, each at
// bufs[j][packet.Headroom:packet.Headroom+sizes[j]], or none if it dropped the frame
// (counted). A frame without GSO stays where it is (off is packet.Headroom), its
// checksum completed if the virtio_net_hdr asks for it. A super-frame is cut into the
// next free segment buffers, after sending what the batch queued if too few are free.
func (e *egress) segment(buf []byte, off, size int, hdr offload.VirtioNetHdr) (bufs [][]byte, sizes []int) {
	frame := buf[off : off+size]
	if hdr.GSOType == offload.GSONone {
		if err := offload.CompleteChecksum(hdr, frame, e.mtu); err != nil {
			e.c.drops[offloadDrop(err)].Add(1)
			return nil, nil
		}
		e.plain[0], e.plainSize[0] = buf, size
		return e.plain, e.plainSize
	}
	if len(e.segs)-e.used < tapGSOMaxSegs {
		e.flush()
	}
	k, err := offload.Segment(hdr, frame, e.mtu, e.segs[e.used:], e.sizes[e.used:], packet.Headroom)
	if err != nil {
		// Not more than tapGSOMaxSegs unless the kernel ignored the TAP's gso_max_segs.
		e.c.drops[offloadDrop(err)].Add(1)
		return nil, nil
	}
	bufs, sizes = e.segs[e.used:e.used+k], e.sizes[e.used:e.used+k]
	e.used += k
	e.c.gsoSuper.Add(1)
	e.c.gsoSegments.Add(uint64(k))
	return bufs, sizes
}

// encap writes the outer headers toward the VNI's i-th remote in front of the frame and
// returns the whole VXLAN frame, or nil (counted) while the next hop is unresolved.
func (e *egress) encap(i int, buf []byte, off, size int, srcPort uint16) []byte {
	tmpl := e.n.encaps[i].p.Load()
	if tmpl == nil {
		e.c.drops[DropNoNeighbour].Add(1)
		select {
		case e.v.resolve <- struct{}{}:
		default:
		}
		return nil
	}
	frame, ok := tmpl.Prepend(buf, off, size, srcPort)
	if !ok {
		e.c.drops[DropTooBig].Add(1)
	}
	return frame
}

// flush transmits the queued frames with one wakeup; the segment buffers are free again.
func (e *egress) flush() {
	if len(e.tx) > 0 {
		e.transmit(e.tx)
		e.tx = e.tx[:0]
	}
	e.used = 0
}

// transmit posts frames on the underlay. When the TX frames are all in flight (in copy mode
// the kernel returns them only once the receiver has freed its copy), it waits a little for
// completions rather than drop: the port reader then stops reading, the TAP's queue fills
// and the container's TCP slows down, instead of losing segments. Only frames that still
// find no room after txWait are dropped and counted.
func (e *egress) transmit(frames [][]byte) {
	if e.v.link.down.Load() {
		// A down device takes nothing: sendto fails, or the kernel completes the frames
		// unsent, one per wakeup, counted as transmitted. Dropped here, and counted.
		e.c.drops[DropUnderlayDown].Add(uint64(len(frames)))
		e.sock.Release(frames) // those read or cut in place: their TX frames come back
		return
	}
	kept := frames[:0] // the caller's scratch list, compacted in place
	for _, f := range frames {
		if len(f) > e.sock.MaxTxLen() {
			e.c.drops[DropTxTooLong].Add(1)
			e.v.frameTooBig(DropTxTooLong, e.t, netip.Addr{}, len(f), e.sock.MaxTxLen())
			continue
		}
		e.c.txBytes.Add(uint64(len(f)))
		kept = append(kept, f)
	}
	frames = kept
	posted := e.sock.Transmit(frames)
	waited := time.Duration(0)
	for ; posted < len(frames) && waited < txWait; waited += txPause {
		time.Sleep(txPause)
		posted += e.sock.Transmit(frames[posted:])
	}
	// In copy mode a busy device leaves posted frames in the TX ring until the next wakeup,
	// and none comes if the port goes quiet (a TCP sender waiting for the ACKs of exactly
	// those frames): wake the kernel again until they are out.
	for ; e.sock.TxPending() > 0 && waited < txWait; waited += txPause {
		time.Sleep(txPause)
		e.sock.Transmit(nil)
	}
	e.c.txPackets.Add(uint64(posted))
	if posted < len(frames) {
		e.c.drops[DropTxFull].Add(uint64(len(frames) - posted))
		e.v.txFull(e.t, len(frames)-posted)
		for _, f := range frames[posted:] {
			e.c.txBytes.Add(-uint64(len(f)))
		}
		e.sock.Release(frames[posted:]) // those cut in place: their TX frames come back
	}
}

// remoteSlot returns the position in n.remotes of the remote VTEP with global index ri,
// or -1.
func (n *network) remoteSlot(ri int) int {
	for i, r := range n.remotes {
		if r.index == ri {
			return i
		}
	}
	return -1
}
