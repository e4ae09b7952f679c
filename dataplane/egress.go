//go:build linux

package dataplane

import (
	"sync/atomic"
	"time"

	"github.com/vxdp/vxdp/dataplane/fdb"
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
	tx   [][]byte // frames encapsulated in this batch, waiting for one Transmit
	one  [][]byte // a batch of one, for flooding to several remotes
}

// runPort is the reader of one local port: it reads frames from the TAP in batches,
// switches each within its VNI, encapsulates what goes to remote VTEPs and transmits the
// batch on the underlay with one wakeup. It returns when the TAP is closed.
func (v *VTEP) runPort(t *tap, c *counters) {
	mtu := t.port.MTU + 14
	r := newTapReader(t, batchSize, packet.Headroom, mtu+1) // one spare byte detects oversize frames
	e := &egress{
		v: v, t: t, n: t.net, c: c,
		sock: v.socks[t.index%len(v.socks)],
		tx:   make([][]byte, 0, batchSize),
		one:  make([][]byte, 1),
	}
	for {
		n, err := r.readBatch()
		if err != nil {
			if !t.closed.Load() {
				t.errs.read.Add(1)
				v.log.Error("port reader stopped", "port", t.port.TAP, "err", err)
			}
			return
		}
		now := v.clock.Now()
		for i := 0; i < n; i++ {
			size := r.sizes[i]
			c.outPackets.Add(1)
			c.outBytes.Add(uint64(size))
			switch {
			case size < 14:
				c.drops[DropRunt].Add(1)
				continue
			case size > mtu:
				c.drops[DropTooBig].Add(1)
				continue
			}
			e.forward(r.bufs[i], packet.Headroom, size, now)
		}
		e.flush()
	}
}

// forward switches one frame read from the port; buf holds it at buf[off:off+size] with
// headroom for the outer headers in front.
func (e *egress) forward(buf []byte, off, size int, now uint32) {
	inner := buf[off : off+size]
	src := inner[6:12]
	if src[0]&1 != 0 || [6]byte(src) == [6]byte{} {
		e.c.drops[DropBadSource].Add(1)
		return
	}
	n, c := e.n, e.c
	switch n.fdb.Learn(fdb.MACFrom(src), fdb.LocalPort(e.t.index), now) {
	case fdb.LearnAdded, fdb.LearnMoved, fdb.LearnEvicted:
		c.learned.Add(1)
	}
	if inner[0]&1 == 0 { // unicast destination
		if to, ok := n.fdb.Lookup(fdb.MACFrom(inner[0:6])); ok {
			if to.IsLocal() {
				if p := e.v.ports[to.Index()]; p != e.t {
					e.v.deliver(p, inner, c)
				}
				return
			}
			e.toRemote(buf, off, size, to.Index())
			return
		}
	}
	// Broadcast, multicast or unknown unicast: head-end replication to every remote VTEP of
	// the VNI, and a copy to every other local port.
	for _, p := range n.ports {
		if p != e.t {
			e.v.deliver(p, inner, c)
		}
	}
	if len(n.remotes) == 0 {
		return
	}
	// Each remote needs its own outer header in the same headroom, so what is queued goes
	// out first (keeping the port's order) and each copy is posted on its own.
	e.flush()
	srcPort := packet.SourcePort(inner)
	for i := range n.remotes {
		frame := e.encap(i, buf, off, size, srcPort)
		if frame == nil {
			continue
		}
		e.one[0] = frame
		e.transmit(e.one)
	}
}

// toRemote encapsulates the frame toward the remote VTEP with global index ri and queues it.
func (e *egress) toRemote(buf []byte, off, size, ri int) {
	for i, r := range e.n.remotes {
		if r.index == ri {
			if frame := e.encap(i, buf, off, size, packet.SourcePort(buf[off:off+size])); frame != nil {
				e.tx = append(e.tx, frame)
			}
			return
		}
	}
	// The FDB points at a remote this VNI no longer has: flood instead on the next frame.
	e.c.drops[DropNoNeighbour].Add(1)
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

// flush transmits the queued frames with one wakeup.
func (e *egress) flush() {
	if len(e.tx) > 0 {
		e.transmit(e.tx)
		e.tx = e.tx[:0]
	}
}

// transmit posts frames on the underlay. When the TX frames are all in flight (in copy mode
// the kernel returns them only once the receiver has freed its copy), it waits a little for
// completions rather than drop: the port reader then stops reading, the TAP's queue fills
// and the container's TCP slows down, instead of losing segments. Only frames that still
// find no room after txWait are dropped and counted.
func (e *egress) transmit(frames [][]byte) {
	for _, f := range frames {
		e.c.txBytes.Add(uint64(len(f)))
	}
	posted := e.sock.Transmit(frames)
	for waited := time.Duration(0); posted < len(frames) && waited < txWait; waited += txPause {
		time.Sleep(txPause)
		posted += e.sock.Transmit(frames[posted:])
	}
	e.c.txPackets.Add(uint64(posted))
	if posted < len(frames) {
		e.c.drops[DropTxFull].Add(uint64(len(frames) - posted))
		e.v.txFull(e.t, len(frames)-posted)
		for _, f := range frames[posted:] {
			e.c.txBytes.Add(-uint64(len(f)))
		}
	}
}
