//go:build linux

package dataplane

import (
	"context"
	"net/netip"

	"github.com/vxdp/vxdp/dataplane/fdb"
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
// A frame stays in the UMEM from RX to TAP write: workers and the merger read it in place.
// The frames of a micro-flow go back to the fill ring when the reader reuses its slot, so
// the RX side of the socket keeps its single owner.

// microflow is the unit of work of the worker pool: consecutive frames of one queue.
type microflow struct {
	q     *queue
	descs []xsk.Desc // frames taken from the RX ring, still held
	n     int        // descs[:n] are held; the reader hands them back when it reuses the slot
	out   []delivery // what the merger writes, in order; filled by the worker
}

// delivery is one inner frame for one local port.
type delivery struct {
	t     *tap
	frame []byte
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
}

// newQueue prepares the reorder line of socket s; depth micro-flows of batch frames each
// may be in flight.
func newQueue(index int, s *xsk.Socket, depth, batch int) (*queue, error) {
	q := &queue{index: index, sock: s}
	line, err := reorder.NewLine(reorder.Config[microflow]{
		Depth: depth,
		Init: func(mf *microflow) {
			mf.q = q
			mf.descs = make([]xsk.Desc, batch)
			mf.out = make([]delivery, 0, batch)
			q.items = append(q.items, mf)
		},
	})
	if err != nil {
		return nil, err
	}
	q.line = line
	return q, nil
}

// runReader cuts the RX ring into micro-flows and submits them to the worker pool. A
// micro-flow closes when it has MicroFlow frames or when the ring has no more right now,
// so a slow flow is never held back waiting for company. It returns when the socket is
// closed or ctx ends.
func (v *VTEP) runReader(ctx context.Context, q *queue) {
	for {
		b, err := q.line.Begin(ctx)
		if err != nil {
			return
		}
		mf := &b.Item
		if mf.n > 0 { // the slot's previous frames, delivered: back to the fill ring
			q.sock.Fill(mf.descs[:mf.n])
			mf.n = 0
		}
		mf.out = mf.out[:0]
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
		for _, d := range b.Item.out {
			v.deliver(d.t, d.frame, &q.c)
		}
		b.Recycle()
	}
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

// process is the workers' part of a micro-flow: everything per frame but the TAP write.
func (v *VTEP) process(worker int, mf *microflow) {
	c := &v.workerCnt[worker]
	c.microflows.Add(1)
	now := v.clock.Now()
	var outer packet.Outer
	for i := range mf.descs[:mf.n] {
		v.ingress(mf, mf.q.sock.Frame(mf.descs[i]), &outer, now, c)
	}
}

// ingress decapsulates one VXLAN frame and decides where its inner frame goes: the local
// port that owns the destination MAC, or every local port of the VNI.
func (v *VTEP) ingress(mf *microflow, frame []byte, outer *packet.Outer, now uint32, c *counters) {
	c.rxPackets.Add(1)
	c.rxBytes.Add(uint64(len(frame)))
	inner, reason := packet.ParseOuter(frame, v.cfg.Port, outer)
	if reason != packet.DropNone {
		c.parse[reason].Add(1)
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
	if reason := packet.CheckInner(inner); reason != packet.DropNone {
		c.parse[reason].Add(1)
		c.drops[DropInner].Add(1)
		return
	}
	switch n.fdb.Learn(fdb.MACFrom(inner[6:12]), fdb.RemoteVTEP(from.index), now) {
	case fdb.LearnAdded, fdb.LearnMoved, fdb.LearnEvicted:
		c.learned.Add(1)
	case fdb.LearnRejected:
		// The source MAC is one of our own ports' (static): spoofed or looped.
		c.drops[DropLocalMAC].Add(1)
		return
	}
	if inner[0]&1 == 0 { // unicast destination
		if t, ok := n.fdb.Lookup(fdb.MACFrom(inner[0:6])); ok {
			if !t.IsLocal() {
				c.drops[DropHairpin].Add(1)
				return
			}
			mf.out = append(mf.out, delivery{v.ports[t.Index()], inner})
			return
		}
	}
	if len(n.ports) == 0 {
		c.drops[DropNoPort].Add(1)
		return
	}
	for _, t := range n.ports {
		mf.out = append(mf.out, delivery{t, inner})
	}
}

// deliver writes an inner frame to a local port.
func (v *VTEP) deliver(t *tap, frame []byte, c *counters) {
	if err := t.write(frame); err != nil {
		c.drops[DropTAPWrite].Add(1)
		v.tapWriteFailed(t, err)
		return
	}
	c.inPackets.Add(1)
	c.inBytes.Add(uint64(len(frame)))
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
