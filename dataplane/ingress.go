//go:build linux

package dataplane

import (
	"net/netip"

	"github.com/vxdp/vxdp/dataplane/fdb"
	"github.com/vxdp/vxdp/dataplane/packet"
	"github.com/vxdp/vxdp/dataplane/xsk"
)

// runQueue is the reader of one AF_XDP socket: it takes VXLAN frames from the RX ring in
// batches, decapsulates and delivers each, and hands the batch's frames back to the fill
// ring. It returns when the socket is closed.
func (v *VTEP) runQueue(s *xsk.Socket, c *counters) {
	descs := make([]xsk.Desc, batchSize)
	var outer packet.Outer
	for {
		n := s.Receive(descs)
		if n == 0 {
			if err := s.Wait(); err != nil {
				return
			}
			continue
		}
		now := v.clock.Now()
		for i := range descs[:n] {
			v.ingress(s.Frame(descs[i]), &outer, now, c)
		}
		s.Fill(descs[:n])
	}
}

// ingress decapsulates one VXLAN frame and delivers its inner frame to the local port that
// owns the destination MAC, or floods it to every local port of the VNI.
func (v *VTEP) ingress(frame []byte, outer *packet.Outer, now uint32, c *counters) {
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
	src := fdb.MACFrom(inner[6:12])
	if t, ok := n.fdb.Lookup(src); ok && t.IsLocal() {
		// A remote claims the MAC of one of our own ports: spoofed or looped.
		c.drops[DropLocalMAC].Add(1)
		return
	}
	switch n.fdb.Learn(src, fdb.RemoteVTEP(from.index), now) {
	case fdb.LearnAdded, fdb.LearnMoved, fdb.LearnEvicted:
		c.learned.Add(1)
	}
	if inner[0]&1 == 0 { // unicast destination
		if t, ok := n.fdb.Lookup(fdb.MACFrom(inner[0:6])); ok {
			if !t.IsLocal() {
				c.drops[DropHairpin].Add(1)
				return
			}
			v.deliver(v.ports[t.Index()], inner, c)
			return
		}
	}
	if len(n.ports) == 0 {
		c.drops[DropNoPort].Add(1)
		return
	}
	for _, t := range n.ports {
		v.deliver(t, inner, c)
	}
}

// deliver writes an inner frame to a local port.
func (v *VTEP) deliver(t *tap, frame []byte, c *counters) {
	if err := t.write(frame); err != nil {
		c.drops[DropTAPWrite].Add(1)
		return
	}
	c.inPackets.Add(1)
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
