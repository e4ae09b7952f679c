//go:build linux

package dataplane

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/vxdp/vxdp/dataplane/fdb"
	"github.com/vxdp/vxdp/dataplane/offload"
	"github.com/vxdp/vxdp/dataplane/packet"
	"github.com/vxdp/vxdp/dataplane/xsk"
	"github.com/vxdp/vxdp/reorder"
)

// The ingress pipeline of one underlay queue:
//
//	reader:  RX ring -> micro-flows of up to Config.MicroFlow consecutive frames, sequenced
//	workers: (shared pool) parse, validate, learn, look up: a list of deliveries per micro-flow
//	merger:  micro-flows strictly in sequence order -> TAP writes
//
// With run_to_completion (the default) the reader does all three itself for a micro-flow
// that finds its queue idle (nothing in flight, the merger done) and the RX ring empty
// behind it: two hand-offs, each a goroutine wakeup, buy no parallelism then. A micro-flow
// that fills up (the ring has more) goes down the pipeline, so that the next micro-flows'
// work and the TAP writes run on other cores meanwhile.
//
// A frame stays in the UMEM from RX to TAP write: workers and the merger read it in place.
// The frames of a micro-flow go back to the fill ring when the reader reuses its slot, so
// the RX side of the socket keeps its single owner.

// microflow is the unit of work of the worker pool: consecutive frames of one queue.
type microflow struct {
	q     *queue
	descs []xsk.Desc // frames taken from the RX ring, still held
	n     int        // descs[:n] are held; the reader hands them back when it reuses the slot
	out   []delivery // what the merger writes, in order; filled by the worker
	// rest holds the pieces of the GRO super-frames the worker built in place from this
	// micro-flow's frames (delivery.rest are slices of it): one per frame at most.
	rest [][]byte
	// jumbo holds the frames the worker gathered from several UMEM frames each, until the
	// merger has written them (nil without multi-buffer sockets). Room for every byte
	// descs can hold, so a micro-flow's frames always fit.
	jumbo []byte
}

// delivery is one TAP write for one local port: an inner frame or, with offloads, a
// virtio_net_hdr and a frame or GRO super-frame behind it.
type delivery struct {
	t   *tap
	pkt []byte
	// rest, for a super-frame built in place, are the payloads of the frames merged
	// behind pkt, where they lie (the UMEM, or jumbo): one gathering write with pkt.
	rest [][]byte
	// frames and bytes are the inner frames the write carries as they crossed the
	// underlay: a super-frame counts each segment it merged, headers included.
	frames, bytes uint32
}

// groFlows is how many inner flows a worker coalesces at once within a micro-flow.
// Super-frames are built in place, in the micro-flow's own frames, so a micro-flow needs
// no buffer for them.
const groFlows = 8

// worker is the state of one ingress worker, allocated before the pool starts.
type worker struct {
	v      *VTEP
	c      *counters
	gro    *offload.Coalescer // nil without offloads
	mf     *microflow         // the micro-flow being processed: where emit appends
	emitFn offload.EmitFunc   // w.emit, bound once so that passing it allocates nothing
	// tallies count frames per remote VTEP for runChecksumWatch (checksumwatch.go).
	tallies []remoteTally
}

// queue is the ingress state of one AF_XDP socket.
type queue struct {
	index int
	sock  *xsk.Socket
	line  *reorder.Line[microflow]
	items []*microflow // every slot's item, to hand their frames back at teardown
	c     counters     // the reader's and the merger's
	// wait is the merger's histogram of how long done micro-flows waited for their turn.
	wait waitHistogram
	// veth gathers the merger's deliveries to veth ports, one Transmit per port and micro-flow.
	veth vethBatch
	// writer makes the merger's gathering writes of super-frames built in place.
	writer *tapWriter
	// solo is the micro-flow the reader fills while the line is idle, and inline the
	// worker state it processes one with itself (nil: run_to_completion is off). Neither
	// is in the line: the reader alone uses them.
	solo   *microflow
	inline *worker
	// ring writes the merger's TAP deliveries in batches (tapring.go); nil: one write per
	// delivery, through writer for super-frames.
	ring *tapRing
}

// newQueue prepares the reorder line of socket s; depth micro-flows of batch frames each
// may be in flight. With a multi-buffer socket a micro-flow takes batch UMEM frames, at
// least a packet's worth (xsk.MaxChunks), and a buffer to gather them into.
func newQueue(index int, s *xsk.Socket, depth, batch int) (*queue, error) {
	q := &queue{index: index, sock: s, writer: newTapWriter()}
	descs := batch
	if s.MultiBuffer() {
		descs = max(batch, xsk.MaxChunks)
	}
	init := func(mf *microflow) {
		mf.q = q
		mf.descs = make([]xsk.Desc, descs)
		mf.out = make([]delivery, 0, descs)
		if s.MultiBuffer() {
			mf.jumbo = make([]byte, descs*(s.FrameSize()-xsk.RxHeadroom))
		}
		mf.rest = make([][]byte, 0, descs)
		q.items = append(q.items, mf)
	}
	line, err := reorder.NewLine(reorder.Config[microflow]{Depth: depth, Init: init})
	if err != nil {
		return nil, err
	}
	q.line = line
	q.solo = &microflow{}
	init(q.solo)
	return q, nil
}

// runReader cuts the RX ring into micro-flows and submits them to the worker pool. A
// micro-flow closes when it has MicroFlow frames or when the ring has no more right now,
// so a slow flow is never held back waiting for company. It returns when the socket is
// closed or ctx ends.
func (v *VTEP) runReader(ctx context.Context, q *queue) {
	for {
		if q.inline != nil && q.line.Idle() {
			if !v.runSolo(ctx, q) {
				return
			}
			continue
		}
		b, err := q.line.Begin(ctx)
		if err != nil {
			return
		}
		mf := &b.Item
		mf.recycle()
		n := q.sock.Receive(mf.descs)
		for n == 0 {
			if err := q.sock.Wait(); err != nil {
				b.Done() // empty: the line must not stall behind it
				return
			}
			n = q.sock.Receive(mf.descs)
		}
		mf.n = n
		if err := v.pool.Submit(ctx, b); err != nil {
			b.Done()
			return
		}
	}
}

// runSolo takes the next frames of q's RX ring while q's line is idle, waiting for them if
// need be, and runs them to completion when they are all the ring had: processed and
// delivered by the reader itself, their frames back in the fill ring. A full micro-flow
// goes into the line instead, with its successors behind it. It reports false once the
// reader must stop.
func (v *VTEP) runSolo(ctx context.Context, q *queue) bool {
	mf := q.solo
	n := q.sock.Receive(mf.descs)
	for n == 0 {
		if err := q.sock.Wait(); err != nil {
			return false
		}
		n = q.sock.Receive(mf.descs)
	}
	mf.n = n
	if n < len(mf.descs) {
		q.inline.process(mf)
		v.write(q, mf)
		mf.recycle()
		return true
	}
	// The line is idle, so Begin does not wait: the frames trade places with the slot's
	// old ones, which go back to the fill ring.
	b, err := q.line.Begin(ctx)
	if err != nil {
		return false // teardown hands the solo's frames back (q.items)
	}
	it := &b.Item
	it.recycle()
	it.descs, mf.descs = mf.descs, it.descs
	it.n, mf.n = n, 0
	if err := v.pool.Submit(ctx, b); err != nil {
		b.Done()
		return false
	}
	return true
}

// recycle hands the frames of a delivered micro-flow back to the fill ring and empties it.
func (mf *microflow) recycle() {
	if mf.n > 0 {
		mf.q.sock.Fill(mf.descs[:mf.n])
		mf.n = 0
	}
	mf.out = mf.out[:0]
}

// runMerger writes the micro-flows' deliveries to the TAPs in sequence order. It returns
// when the line is closed and drained.
func (v *VTEP) runMerger(q *queue) {
	ctx := context.Background() // Close ends Next, after the batches already done
	for {
		b, err := q.line.Next(ctx)
		if err != nil {
			return
		}
		q.c.reorderWaitNanos.Add(uint64(b.Waited()))
		q.wait.observe(b.Waited())
		v.write(q, &b.Item)
		b.Recycle()
	}
}

// write makes the deliveries of micro-flow mf, in order: the merger's part, or the
// reader's for a micro-flow it runs to completion (the merger is idle then).
func (v *VTEP) write(q *queue, mf *microflow) {
	for i, d := range mf.out {
		if d.t.veth != nil {
			q.veth.pend = append(q.veth.pend, d)
			continue
		}
		if q.ring != nil {
			q.ring.sent = append(q.ring.sent, i)
			continue
		}
		if d.rest != nil {
			v.delivered(d.t, q.writer.writev(d.t, d.pkt, d.rest), d.frames, d.bytes, &q.c)
			continue
		}
		v.deliver(d.t, d.pkt, d.frames, d.bytes, &q.c)
	}
	if q.ring != nil && len(q.ring.sent) > 0 {
		v.writeRing(q, mf.out)
	}
	q.veth.flush(v, &q.c)
}

// drain hands every frame still held by the queue's micro-flows back to the socket, so its
// UMEM is released. Only once every stage of the queue has stopped.
func (q *queue) drain() {
	for _, mf := range q.items {
		if mf.n > 0 {
			q.sock.Fill(mf.descs[:mf.n])
			mf.n = 0
		}
	}
}

// newWorkers prepares the ingress workers' state once the ports are open: with offloads,
// a coalescer each, which merges UDP datagrams too if every port's kernel takes USO.
func (v *VTEP) newWorkers() error {
	v.groUDP = true
	for _, t := range v.ports {
		v.groUDP = v.groUDP && (t.uso || t.veth != nil) // a veth port takes no super-frames at all
	}
	v.workers = make([]worker, v.cfg.Workers)
	for i := range v.workers {
		if err := v.initWorker(&v.workers[i], &v.workerCnt[i]); err != nil {
			return fmt.Errorf("worker %d: %w", i, err)
		}
	}
	return nil
}

// initWorker readies w, a pool worker or a queue reader's inline worker, counting in c.
func (v *VTEP) initWorker(w *worker, c *counters) error {
	w.v, w.c = v, c
	w.emitFn = w.emit
	if !v.cfg.Offload {
		return nil
	}
	var err error
	w.gro, err = offload.NewCoalescer(offload.CoalescerConfig{MaxFlows: groFlows, UDP: v.groUDP, InPlace: true}, nil)
	return err
}

// process is the pool workers' part of a micro-flow: everything per frame but the TAP write.
func (v *VTEP) process(worker int, mf *microflow) {
	v.workers[worker].process(mf)
}

// process parses, validates, learns and looks up every frame of mf, leaving its
// deliveries in mf.out.
func (w *worker) process(mf *microflow) {
	v := w.v
	w.c.microflows.Add(1)
	w.mf = mf
	mf.rest = mf.rest[:0]
	now := v.clock.Now()
	var outer packet.Outer
	v.mu.RLock() // once per micro-flow: the ports, networks and remotes hold still
	sock, jumbo := mf.q.sock, mf.jumbo
	for i := 0; i < mf.n; {
		d := &mf.descs[i]
		if !d.Continued {
			w.ingress(sock.Frame(*d), &outer, now)
			i++
			continue
		}
		// A frame over several UMEM frames: gathered, then as any other. Gather fails
		// only for descriptors the kernel would not give, which the parser counts as a
		// runt (nil frame).
		frame, took := sock.Gather(mf.descs[i:mf.n], jumbo)
		jumbo = jumbo[len(frame):]
		w.ingress(frame, &outer, now)
		i += took
	}
	if w.gro != nil {
		w.gro.Flush(w.emitFn)
	}
	v.mu.RUnlock()
	w.mf = nil
}

// ingress decapsulates one VXLAN frame and decides where its inner frame goes: the local
// port that owns the destination MAC, or every local port of the VNI.
func (w *worker) ingress(frame []byte, outer *packet.Outer, now uint32) {
	v, c := w.v, w.c
	c.rxPackets.Add(1)
	c.rxBytes.Add(uint64(len(frame)))
	inner, reason := v.cfg.parseOuter(frame, outer)
	if reason != packet.DropNone {
		c.parse[reason].Add(1)
		if reason == packet.DropUDPChecksum {
			w.badChecksum(outer.Src)
		}
		return
	}
	n := v.nets[outer.VNI]
	if n == nil {
		c.drops[DropUnknownVNI].Add(1)
		return
	}
	from := n.remote(outer.Src)
	if from == nil {
		c.drops[DropRemoteNotInVNI].Add(1)
		return
	}
	w.tally(from.index).passed++
	if reason := v.cfg.checkInner(inner); reason != packet.DropNone {
		c.parse[reason].Add(1)
		c.drops[DropInner].Add(1)
		return
	}
	if n.innerTooBig(inner, v.cfg.InnerVLAN) {
		c.drops[DropInnerTooBig].Add(1)
		v.frameTooBig(DropInnerTooBig, nil, outer.Src, len(inner), n.innerLimit())
		return
	}
	// RFC 6040: only an outer CE or ECT(1), the codepoints with bit 0 set, ask for work.
	if outer.TOS&1 != 0 {
		if !packet.DecapECN(outer.TOS, inner) {
			c.drops[DropECN].Add(1)
			return
		}
		// An IPv6 traffic class it changed changes the inner frame's sum (an IPv4
		// header's checksum makes up for its TOS): the inner checksums are then verified
		// over the bytes, not from the outer checksum's sum.
		outer.InnerSumOK = false
	}
	if v.noLearning {
		// Nothing is learned, but a remote still may not claim one of our ports' MACs.
		if t, ok := n.fdb.Lookup(fdb.MACFrom(inner[6:12])); ok && t.IsLocal() {
			c.drops[DropLocalMAC].Add(1)
			return
		}
	} else {
		switch n.fdb.Learn(fdb.MACFrom(inner[6:12]), fdb.RemoteVTEP(from.index), now) {
		case fdb.LearnAdded, fdb.LearnMoved, fdb.LearnEvicted:
			c.learned.Add(1)
		case fdb.LearnRejected:
			// The source MAC is static elsewhere: one of our own ports' (spoofed or
			// looped), or a static entry behind another remote (as the kernel, dropped).
			d := DropLocalMAC
			if t, ok := n.fdb.Lookup(fdb.MACFrom(inner[6:12])); ok && t.IsRemote() {
				d = DropStaticMAC
			}
			c.drops[d].Add(1)
			return
		}
	}
	if inner[0]&1 == 0 { // unicast destination
		if t, ok := n.fdb.Lookup(fdb.MACFrom(inner[0:6])); ok {
			if !t.IsLocal() {
				c.drops[DropHairpin].Add(1)
				return
			}
			w.toPort(v.ports[t.Index()], frame[outer.InnerOffset-v.room:outer.InnerOffset+len(inner)], outer)
			return
		}
	}
	if len(n.ports) == 0 {
		c.drops[DropNoPort].Add(1)
		return
	}
	w.flood(n.ports, frame[outer.InnerOffset-v.room:outer.InnerOffset+len(inner)])
}

// toPort queues an inner frame for local port t; pkt is the frame behind v.room bytes of
// room for a virtio_net_hdr. With offloads it goes through the coalescer, tagged with
// the port, so that only frames for the same port are merged.
func (w *worker) toPort(t *tap, pkt []byte, outer *packet.Outer) {
	if w.gro != nil && t.veth == nil { // a veth port takes single frames only
		if outer.InnerSumOK { // the outer checksum's pass summed the inner frame: no second one
			w.gro.AddWithRoomSum(pkt, uint32(t.index), outer.InnerSum, w.emitFn)
		} else {
			w.gro.AddWithRoom(pkt, uint32(t.index), w.emitFn)
		}
		return
	}
	w.mf.out = append(w.mf.out, delivery{t: t, pkt: pkt, frames: 1, bytes: uint32(len(pkt) - w.v.room)})
}

// flood queues an inner frame for every port of ports; pkt as for toPort.
func (w *worker) flood(ports []*tap, pkt []byte) {
	size := len(pkt) - w.v.room
	if w.gro != nil {
		// What the coalescer holds came first: a frame of a flow whose destination was
		// just forgotten must not overtake that flow's earlier frames.
		w.gro.Flush(w.emitFn)
		clear(pkt[:offload.HdrLen]) // a plain virtio_net_hdr
	}
	for _, t := range ports {
		w.mf.out = append(w.mf.out, delivery{t: t, pkt: pkt, frames: 1, bytes: uint32(size)})
	}
}

// emit takes what the coalescer lets out: a frame or a super-frame behind its
// virtio_net_hdr, for the port tagged.
func (w *worker) emit(tag uint32, vnetHdr, frame []byte, rest [][]byte) {
	d := delivery{t: w.v.ports[tag], pkt: vnetHdr[:offload.HdrLen+len(frame)], frames: 1, bytes: uint32(len(frame))}
	size := len(frame)
	if rest != nil {
		// The coalescer reuses rest: the pieces go into the micro-flow's own list, which has
		// room for one per frame.
		mf := w.mf
		start := len(mf.rest)
		mf.rest = append(mf.rest, rest...)
		d.rest = mf.rest[start:len(mf.rest):len(mf.rest)]
		for _, r := range rest {
			size += len(r)
		}
	}
	if h, err := offload.Decode(vnetHdr); err == nil && h.GSOType != offload.GSONone {
		// The coalescer wrote HdrLen and GSOSize; every segment but the last is full.
		hl, seg := int(h.HdrLen), int(h.GSOSize)
		n := (size - hl + seg - 1) / seg
		d.frames, d.bytes = uint32(n), uint32(size+(n-1)*hl)
		w.c.groSuper.Add(1)
		w.c.groMerged.Add(uint64(n))
	}
	w.mf.out = append(w.mf.out, d)
}

// deliver writes a delivery's packet to a local port; frames and bytes are what it
// carries, for the counters.
func (v *VTEP) deliver(t *tap, pkt []byte, frames, bytes uint32, c *counters) {
	v.delivered(t, t.write(pkt), frames, bytes, c)
}

// delivered counts a write to a local port that returned err.
func (v *VTEP) delivered(t *tap, err error, frames, bytes uint32, c *counters) {
	if err != nil {
		c.drops[DropTAPWrite].Add(uint64(frames))
		v.tapWriteFailed(t, err)
		return
	}
	c.inPackets.Add(uint64(frames))
	c.inBytes.Add(uint64(bytes))
}

// remote returns the remote VTEP of this VNI with address a, or nil. A VNI has a handful of
// remotes, so a scan beats a map.
func (n *network) remote(a netip.Addr) *remote {
	for _, r := range n.remotes {
		if r.addr == a {
			return r
		}
	}
	return nil
}
