//go:build linux

package dataplane

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/vxdp/vxdp/dataplane/fdb"
	"github.com/vxdp/vxdp/dataplane/offload"
	"github.com/vxdp/vxdp/dataplane/packet"
)

// testPortMAC is the MAC of the test node's local port, static in its VNI's FDB.
var testPortMAC = net.HardwareAddr{0x02, 0, 0, 0, 0x0c, 0x01}

// testNode is a VTEP with no sockets and no TAP devices: VNI 42 with remote testRemote and
// one local port (MTU 1450), VNI 43 with another remote only, VNI 44 with a port and no
// remote (for egress, which then never reaches the underlay). Its worker and port reader
// run the real ingress and egress code on frames handed to them.
type testNode struct {
	v      *VTEP
	w      *worker
	mf     *microflow
	n42    *network
	port42 *tap
	e44    *egress // the reader of VNI 44's port
}

func newTestNode(t testing.TB, cfg Config) *testNode {
	t.Helper()
	cfg.Port = 4789
	if cfg.FDBMax == 0 {
		cfg.FDBMax = 64
	}
	v := &VTEP{cfg: &cfg, nets: map[uint32]*network{}, header: cfg.Header, noLearning: cfg.NoLearning,
		log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	r1 := &remote{index: 0, addr: netip.AddrFrom4([4]byte(testRemote))}
	r2 := &remote{index: 1, addr: netip.MustParseAddr("192.0.2.3")}
	v.remotes = []*remote{r1, r2}
	for _, vni := range []uint32{42, 43, 44} {
		table, err := fdb.New(fdb.Options{Cap: cfg.FDBMax})
		if err != nil {
			t.Fatal(err)
		}
		v.nets[vni] = &network{vni: vni, fdb: table}
	}
	v.nets[42].remotes = []*remote{r1}
	v.nets[43].remotes = []*remote{r2}
	for i, vni := range []uint32{42, 44} {
		n := v.nets[vni]
		p := &tap{port: Port{TAP: fmt.Sprintf("t%d", vni), MTU: 1450}, index: i, net: n}
		p.mac = [6]byte(testPortMAC)
		p.mac[5] += byte(i)
		if err := n.fdb.Static(fdb.MACFrom(p.mac[:]), fdb.LocalPort(i)); err != nil {
			t.Fatal(err)
		}
		n.ports = []*tap{p}
		v.ports = append(v.ports, p)
	}
	v.workerCnt = make([]counters, 1)
	v.portCnt = []*counters{{}, {}}
	mf := &microflow{out: make([]delivery, 0, 8)}
	w := &worker{v: v, c: &v.workerCnt[0], mf: mf}
	p44 := v.ports[1]
	e := &egress{v: v, t: p44, n: p44.net, c: v.portCnt[1], mtu: p44.port.MTU}
	return &testNode{v: v, w: w, mf: mf, n42: v.nets[42], port42: v.ports[0], e44: e}
}

// receive runs one frame through the ingress worker and returns what it counted (the
// worker's counters before and after) and the inner frames it queued for ports.
func (tn *testNode) receive(frame []byte) (before, after Counters, out []delivery) {
	return tn.receiveAt(frame, 1)
}

// receiveAt is receive at FDB clock time now.
func (tn *testNode) receiveAt(frame []byte, now uint32) (before, after Counters, out []delivery) {
	tn.mf.out = tn.mf.out[:0]
	before.add(tn.w.c)
	var o packet.Outer
	tn.w.ingress(frame, &o, now)
	after.add(tn.w.c)
	return before, after, tn.mf.out
}

// send runs one frame through VNI 44's port reader, as if read from its TAP, and returns
// what the reader counted.
func (tn *testNode) send(frame []byte) (before, after Counters) {
	buf := make([]byte, packet.Headroom+len(frame))
	copy(buf[packet.Headroom:], frame)
	before.add(tn.e44.c)
	tn.e44.forward(buf, packet.Headroom, len(frame), offload.VirtioNetHdr{}, 1)
	after.add(tn.e44.c)
	return before, after
}

// outcome is what one frame did to the counters: the header check and dataplane reasons
// that rose (each must rise by exactly 1, and nothing else), or a delivery.
type outcome struct {
	parse     packet.DropReason // DropNone: no parse counter rose
	drop      Drop
	dropped   bool // drop rose
	delivered int  // inner frames queued for ports
}

func (o outcome) String() string {
	switch {
	case o.dropped && o.parse != packet.DropNone:
		return fmt.Sprintf("parse %v + dataplane %v", o.parse, o.drop)
	case o.dropped:
		return fmt.Sprintf("dataplane %v", o.drop)
	case o.parse != packet.DropNone:
		return fmt.Sprintf("parse %v", o.parse)
	}
	return fmt.Sprintf("%d deliveries", o.delivered)
}

// outcomeOf reads what changed between two snapshots; ok is false when a counter rose by
// more than one or two reasons of a kind rose.
func outcomeOf(before, after Counters, delivered int) (o outcome, ok bool) {
	ok = true
	o.delivered = delivered
	for r := range after.Parse {
		switch after.Parse[r] - before.Parse[r] {
		case 0:
		case 1:
			ok = ok && o.parse == packet.DropNone
			o.parse = packet.DropReason(r)
		default:
			ok = false
		}
	}
	for d := range after.Drops {
		switch after.Drops[d] - before.Drops[d] {
		case 0:
		case 1:
			ok = ok && !o.dropped
			o.drop, o.dropped = Drop(d), true
		default:
			ok = false
		}
	}
	return o, ok
}

// fixIPv4 recomputes the outer IPv4 header checksum after a test changed the header.
func fixIPv4(f []byte) []byte {
	ip := f[14:]
	hl := int(ip[0]&0x0f) * 4
	if hl < 20 || hl > len(ip) {
		return f
	}
	ip[10], ip[11] = 0, 0
	binary.BigEndian.PutUint16(ip[10:12], ^packet.Sum(ip[:hl], 0))
	return f
}

// Offsets in a vxlanFrame: the IPv4 header, UDP, VXLAN and the inner frame.
const (
	offIP    = 14
	offUDP   = 34
	offVXLAN = 42
	offInner = 50
)

// withInner returns f with its inner source MAC replaced.
func withInnerSrc(f []byte, mac net.HardwareAddr) []byte {
	copy(f[offInner+6:offInner+12], mac)
	return f
}

// ipv6HopByHopFrame is VXLAN over IPv6 with a hop-by-hop header between IPv6 and UDP.
func ipv6HopByHopFrame(t testing.TB) []byte {
	ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolIPv6HopByHop,
		SrcIP: net.ParseIP("2001:db8::1"), DstIP: net.ParseIP("2001:db8::2")}
	inner := innerFrame(t, nil, 53, 10)
	udp := append([]byte{0xc3, 0x50, 0x12, 0xb5, 0, 0, 0, 0, 0x08, 0, 0, 0, 0, 0, 42, 0}, inner...)
	binary.BigEndian.PutUint16(udp[4:], uint16(len(udp)))
	hbh := []byte{17, 0, 1, 4, 0, 0, 0, 0}
	return serialize(t, &layers.Ethernet{SrcMAC: testInnerSrc, DstMAC: testInnerDst, EthernetType: layers.EthernetTypeIPv6},
		ip, gopacket.Payload(append(hbh, udp...)))
}

// ingressCase is one frame and what the ingress pipeline must make of it.
type ingressCase struct {
	name  string
	cfg   Config
	frame func(t testing.TB) []byte
	want  outcome
}

func ingressCases() []ingressCase {
	valid := func(t testing.TB) []byte { return vxlanFrame(t, 42, innerFrame(t, nil, 53, 100)) }
	mod := func(fn func([]byte) []byte) func(t testing.TB) []byte {
		return func(t testing.TB) []byte { return fn(valid(t)) }
	}
	sized := func(vlans []uint16, size int) func(t testing.TB) []byte {
		return func(t testing.TB) []byte {
			hdr := 14 + 4*len(vlans) + 20 + 8
			return vxlanFrame(t, 42, innerFrame(t, vlans, 53, size-hdr))
		}
	}
	parse := func(r packet.DropReason) outcome { return outcome{parse: r} }
	inner := func(r packet.DropReason) outcome { return outcome{parse: r, drop: DropInner, dropped: true} }
	dropped := func(d Drop) outcome { return outcome{drop: d, dropped: true} }
	flood := outcome{delivered: 1}
	vlanOK := Config{InnerVLAN: true}
	return []ingressCase{
		{"valid", Config{}, valid, flood},
		{"to the port's MAC", Config{}, mod(func(f []byte) []byte { copy(f[offInner:], testPortMAC); return f }), flood},
		{"unknown vni", Config{}, func(t testing.TB) []byte { return vxlanFrame(t, 99, innerFrame(t, nil, 53, 10)) }, dropped(DropUnknownVNI)},
		{"remote not in vni", Config{}, func(t testing.TB) []byte { return vxlanFrame(t, 43, innerFrame(t, nil, 53, 10)) }, dropped(DropRemoteNotInVNI)},
		{"vni 0", Config{}, func(t testing.TB) []byte { return vxlanFrame(t, 0, innerFrame(t, nil, 53, 10)) }, parse(packet.DropVNIZero)},
		{"udp payload shorter than vxlan", Config{}, mod(func(f []byte) []byte {
			f = f[:offVXLAN+4]
			binary.BigEndian.PutUint16(f[offIP+2:], uint16(len(f)-offIP))
			binary.BigEndian.PutUint16(f[offUDP+4:], 8+4)
			return fixIPv4(f)
		}), parse(packet.DropShortVXLAN)},
		{"I flag clear", Config{}, mod(func(f []byte) []byte { f[offVXLAN] = 0; return f }), parse(packet.DropVXLANFlags)},
		{"reserved flag", Config{}, mod(func(f []byte) []byte { f[offVXLAN] |= 0x04; return f }), parse(packet.DropVXLANReserved)},
		{"reserved byte 1", Config{}, mod(func(f []byte) []byte { f[offVXLAN+1] = 0x80; return f }), parse(packet.DropVXLANReserved)},
		{"reserved last byte", Config{}, mod(func(f []byte) []byte { f[offVXLAN+7] = 1; return f }), parse(packet.DropVXLANReserved)},
		{"reserved bits accepted", Config{VXLANReservedIgnored: packet.VXLANReservedAll},
			mod(func(f []byte) []byte { f[offVXLAN] |= 0x84; f[offVXLAN+7] = 1; return f }), flood},
		{"reserved bits partly ignored", Config{VXLANReservedIgnored: 0xff},
			mod(func(f []byte) []byte { f[offVXLAN+3] = 1; return f }), parse(packet.DropVXLANReserved)},
		{"ipv4 checksum", Config{}, mod(func(f []byte) []byte { f[offIP+10] ^= 0x40; return f }), parse(packet.DropIPv4Checksum)},
		{"ipv4 ihl 4", Config{}, mod(func(f []byte) []byte { f[offIP] = 0x44; return fixIPv4(f) }), parse(packet.DropIPv4IHL)},
		{"ipv4 total length beyond frame", Config{}, mod(func(f []byte) []byte {
			binary.BigEndian.PutUint16(f[offIP+2:], uint16(len(f)-offIP+1))
			return fixIPv4(f)
		}), parse(packet.DropIPv4TotalLength)},
		{"udp length short of ip payload", Config{}, mod(func(f []byte) []byte {
			binary.BigEndian.PutUint16(f[offUDP+4:], binary.BigEndian.Uint16(f[offUDP+4:])-1)
			return f
		}), parse(packet.DropUDPLength)},
		{"ipv4 first fragment", Config{}, mod(func(f []byte) []byte { f[offIP+6] |= 0x20; return fixIPv4(f) }), parse(packet.DropIPv4Fragment)},
		{"ipv4 later fragment", Config{}, mod(func(f []byte) []byte { f[offIP+7] = 9; return fixIPv4(f) }), parse(packet.DropIPv4Fragment)},
		{"udp checksum wrong", Config{}, mod(func(f []byte) []byte { f[offUDP+7] = 1; return f }), parse(packet.DropUDPChecksum)},
		{"ipv6 extension header", Config{}, ipv6HopByHopFrame, parse(packet.DropIPv6ExtensionHeader)},
		{"inner shorter than ethernet", Config{}, mod(func(f []byte) []byte {
			f = f[:offInner+10]
			binary.BigEndian.PutUint16(f[offIP+2:], uint16(len(f)-offIP))
			binary.BigEndian.PutUint16(f[offUDP+4:], uint16(len(f)-offUDP))
			return fixIPv4(f)
		}), inner(packet.DropShortInner)},
		{"inner ip header cut", Config{}, mod(func(f []byte) []byte {
			f = f[:offInner+14+12]
			binary.BigEndian.PutUint16(f[offIP+2:], uint16(len(f)-offIP))
			binary.BigEndian.PutUint16(f[offUDP+4:], uint16(len(f)-offUDP))
			return fixIPv4(f)
		}), inner(packet.DropShortInnerIP)},
		{"inner source multicast", Config{}, mod(func(f []byte) []byte { return withInnerSrc(f, net.HardwareAddr{1, 0, 0x5e, 0, 0, 1}) }), inner(packet.DropInnerSrcMAC)},
		{"inner source broadcast", Config{}, mod(func(f []byte) []byte { return withInnerSrc(f, layers.EthernetBroadcast) }), inner(packet.DropInnerSrcMAC)},
		{"inner source zero", Config{}, mod(func(f []byte) []byte { return withInnerSrc(f, make(net.HardwareAddr, 6)) }), inner(packet.DropInnerSrcMAC)},
		{"inner source is a local port's", Config{}, mod(func(f []byte) []byte { return withInnerSrc(f, testPortMAC) }), dropped(DropLocalMAC)},
		{"inner 802.1q", Config{}, func(t testing.TB) []byte { return vxlanFrame(t, 42, innerFrame(t, []uint16{7}, 53, 10)) }, inner(packet.DropInnerVLAN)},
		{"inner 802.1q accepted", vlanOK, func(t testing.TB) []byte { return vxlanFrame(t, 42, innerFrame(t, []uint16{7}, 53, 10)) }, flood},
		{"inner of the port's MTU", Config{}, sized(nil, 1450+14), flood},
		{"inner beyond the port's MTU", Config{}, sized(nil, 1450+14+1), dropped(DropInnerTooBig)},
		{"tagged inner of the port's MTU", vlanOK, sized([]uint16{7}, 1450+18), flood},
		{"tagged inner beyond the port's MTU", vlanOK, sized([]uint16{7}, 1450+18+1), dropped(DropInnerTooBig)},
		{"outer CE over a Not-ECT inner packet", Config{}, mod(func(f []byte) []byte { return withECN(f, packet.ECNCE, packet.ECNNotECT) }), dropped(DropECN)},
		{"outer CE over an ECT(0) inner packet", Config{}, mod(func(f []byte) []byte { return withECN(f, packet.ECNCE, packet.ECNECT0) }), flood},
		{"outer ECT(1) over a Not-ECT inner packet", Config{}, mod(func(f []byte) []byte { return withECN(f, packet.ECNECT1, packet.ECNNotECT) }), flood},
	}
}

// withECN sets the ECN fields of a vxlanFrame's outer and inner IPv4 headers and fixes
// both header checksums.
func withECN(f []byte, outer, inner uint8) []byte {
	f[offIP+1] = f[offIP+1]&^packet.ECNMask | outer
	f[offInner+14+1] = f[offInner+14+1]&^packet.ECNMask | inner
	fixIPv4(f[offInner:])
	return fixIPv4(f)
}

// TestIngressECN runs every combination of RFC 6040's decapsulation table through the
// ingress worker: the inner packet delivered carries the table's ECN field (outer CE over
// ECT gives CE, outer ECT(1) over ECT(0) gives ECT(1)), with a correct IPv4 header
// checksum, and outer CE over Not-ECT is dropped under ecn_ce_not_ect.
func TestIngressECN(t *testing.T) {
	// [inner][outer]: what the container gets, -1 for a drop (Linux's behaviour).
	table := [4][4]int{
		{0, 0, 0, -1},
		{1, 1, 1, 3},
		{2, 1, 2, 3},
		{3, 3, 3, 3},
	}
	tn := newTestNode(t, Config{})
	for in := range uint8(4) {
		for out := range uint8(4) {
			frame := withECN(vxlanFrame(t, 42, innerFrame(t, nil, 53, 100)), out, in)
			before, after, got := tn.receive(frame)
			want := table[in][out]
			if want < 0 {
				if len(got) != 0 || after.Drops[DropECN]-before.Drops[DropECN] != 1 {
					t.Errorf("inner %d outer %d: %d deliveries, ecn drops +%d; want a drop", in, out, len(got), after.Drops[DropECN]-before.Drops[DropECN])
				}
				continue
			}
			if len(got) != 1 {
				t.Fatalf("inner %d outer %d: %d deliveries", in, out, len(got))
			}
			ip := got[0].pkt[14:34]
			if ip[1]&packet.ECNMask != uint8(want) || packet.Checksum(ip, 0) != 0 {
				t.Errorf("inner %d outer %d: delivered ecn %d (checksum verifies: %v), want %d", in, out, ip[1]&packet.ECNMask, packet.Checksum(ip, 0) == 0, want)
			}
		}
	}
}

// TestIngressNoLearning: with learning off nothing a remote sends is learned, its frames
// for unknown MACs are flooded to the ports, and a remote still cannot claim a port's MAC.
func TestIngressNoLearning(t *testing.T) {
	tn := newTestNode(t, Config{NoLearning: true})
	frame := vxlanFrame(t, 42, innerFrame(t, nil, 53, 100))
	before, after, out := tn.receive(frame)
	if len(out) != 1 || after.Learned != before.Learned || tn.n42.fdb.Len() != 1 {
		t.Errorf("%d deliveries, learned +%d, fdb %d entries; want 1, 0, 1 (the port's)", len(out), after.Learned-before.Learned, tn.n42.fdb.Len())
	}
	if _, ok := tn.n42.fdb.Lookup(fdb.MACFrom(testInnerSrc)); ok {
		t.Error("the remote's source MAC was learned")
	}
	spoof := withInnerSrc(vxlanFrame(t, 42, innerFrame(t, nil, 53, 100)), testPortMAC)
	before, after, out = tn.receive(spoof)
	if len(out) != 0 || after.Drops[DropLocalMAC]-before.Drops[DropLocalMAC] != 1 {
		t.Errorf("a port's MAC from a remote: %d deliveries, local_mac_from_remote +%d", len(out), after.Drops[DropLocalMAC]-before.Drops[DropLocalMAC])
	}
}

// TestApplyEntries: static entries are set behind their remote, marked static, survive
// learning and ageing, never take a port's MAC, and leave when the config drops them.
func TestApplyEntries(t *testing.T) {
	tn := newTestNode(t, Config{})
	n, r := tn.n42, tn.v.remotes[0]
	macA, macB := [6]byte{2, 0xaa, 0, 0, 0, 1}, [6]byte{2, 0xaa, 0, 0, 0, 2}
	nc := Network{VNI: 42, Remotes: []netip.Addr{r.addr},
		FDB:        []StaticEntry{{macA, r.addr}, {macB, r.addr}},
		Neighbours: []Neighbour{{netip.MustParseAddr("10.42.0.1"), macA}}, NeighSuppress: true}
	// A learned entry of macB first: the static entry replaces it.
	if n.fdb.Learn(fdb.MACFrom(macB[:]), fdb.LocalPort(0), 1) != fdb.LearnAdded {
		t.Fatal("learn")
	}
	if err := tn.v.applyEntriesLocked(n, nc); err != nil {
		t.Fatal(err)
	}
	static := func() map[[6]byte]fdb.Target {
		m := map[[6]byte]fdb.Target{}
		n.fdb.Entries(func(e fdb.Entry) bool {
			if e.Static {
				m[[6]byte(e.MAC[:])] = e.To
			}
			return true
		})
		return m
	}
	if s := static(); s[macA] != fdb.RemoteVTEP(r.index) || s[macB] != fdb.RemoteVTEP(r.index) || len(s) != 3 {
		t.Fatalf("static entries %v", s)
	}
	if n.fdb.Learn(fdb.MACFrom(macA[:]), fdb.LocalPort(0), 2) != fdb.LearnRejected || n.fdb.Expire(1<<20) != 0 {
		t.Error("a static entry moved or aged")
	}
	if !n.suppress || len(n.neighbours) != 1 {
		t.Errorf("neighbours %v, suppress %v", n.neighbours, n.suppress)
	}
	// The config drops macB and names a port's MAC: macB goes, the port's entry stays.
	nc.FDB = []StaticEntry{{macA, r.addr}, {tn.port42.mac, r.addr}}
	nc.NeighSuppress = false
	if err := tn.v.applyEntriesLocked(n, nc); err == nil {
		t.Error("a static entry on a port's MAC was accepted")
	}
	if s := static(); s[macA] != fdb.RemoteVTEP(r.index) || s[tn.port42.mac] != fdb.LocalPort(0) || len(s) != 2 {
		t.Fatalf("static entries after the change %v", s)
	}
	if _, ok := n.fdb.Lookup(fdb.MACFrom(macB[:])); ok || n.suppress {
		t.Errorf("macB still there, or suppression still on")
	}
}

// TestIngressDrops runs each bad frame through the ingress worker: it must be counted under
// its own reason, exactly once, and never queued for a port; the good ones must be.
func TestIngressDrops(t *testing.T) {
	for _, c := range ingressCases() {
		t.Run(c.name, func(t *testing.T) {
			tn := newTestNode(t, c.cfg)
			frame := c.frame(t)
			before, after, out := tn.receive(frame)
			got, ok := outcomeOf(before, after, len(out))
			if !ok || got != c.want {
				t.Fatalf("outcome %v (one counter each: %v), want %v", got, ok, c.want)
			}
			if after.RxPackets-before.RxPackets != 1 {
				t.Errorf("rx_packets rose by %d", after.RxPackets-before.RxPackets)
			}
			for _, d := range out {
				if d.t != tn.port42 || &d.pkt[0] != &frame[offInner] {
					t.Errorf("delivery to %s of the frame at %p, want the inner frame to %s", d.t.port.TAP, &d.pkt[0], tn.port42.port.TAP)
				}
			}
		})
	}
}

// TestIngressNoAllocs: the checks add no allocation to the ingress path, dropped or not.
func TestIngressNoAllocs(t *testing.T) {
	for _, c := range ingressCases() {
		tn := newTestNode(t, c.cfg)
		frame := c.frame(t)
		tn.receive(frame) // learn first: a new FDB entry is not the steady state
		if n := testing.AllocsPerRun(50, func() { tn.receive(frame) }); n != 0 {
			t.Errorf("%s: %v allocs per frame", c.name, n)
		}
	}
}

// TestFDBFloodOfSourceMACs sends frames from a thousand random source MACs: the VNI's FDB
// stays within fdb_max, evicts old entries and counts them, every frame is still delivered,
// and the local port's own, static, address survives.
func TestFDBFloodOfSourceMACs(t *testing.T) {
	const cap, macs = 16, 1000
	tn := newTestNode(t, Config{FDBMax: cap})
	frame := vxlanFrame(t, 42, innerFrame(t, nil, 53, 10))
	var learned uint64
	mac := func(i int) net.HardwareAddr { return net.HardwareAddr{0x02, 0xee, 0, 0, byte(i >> 8), byte(i)} }
	for i := range macs {
		// One clock tick per MAC, so that the oldest entry is always one of the first: with
		// one time for all, eviction chooses among equals and any MAC may survive.
		before, after, out := tn.receiveAt(withInnerSrc(frame, mac(i)), uint32(i+1))
		if len(out) != 1 {
			t.Fatalf("frame %d: %d deliveries", i, len(out))
		}
		learned += after.Learned - before.Learned
		if n := tn.n42.fdb.Len(); n > cap {
			t.Fatalf("after %d MACs the FDB holds %d entries, cap %d", i+1, n, cap)
		}
	}
	st := tn.n42.fdb.Stats()
	// The port's static entry takes one place: cap-1 learned addresses fit before evictions.
	if learned != macs || st.Evicted != macs-(cap-1) {
		t.Errorf("learned %d, evicted %d; want %d and %d", learned, st.Evicted, macs, macs-(cap-1))
	}
	if to, ok := tn.n42.fdb.Lookup(fdb.MACFrom(mac(macs - 1))); !ok || !to.IsRemote() {
		t.Errorf("the newest MAC is not in the FDB (%v, %v)", to, ok)
	}
	for i := range macs / 2 {
		if _, ok := tn.n42.fdb.Lookup(fdb.MACFrom(mac(i))); ok {
			t.Errorf("MAC %d of the first half survived %d newer ones in a table of %d", i, macs-i-1, cap)
		}
	}
	_, after, out := tn.receiveAt(withInnerSrc(frame, testPortMAC), macs+1)
	if len(out) != 0 || after.Drops[DropLocalMAC] != 1 {
		t.Errorf("the port's own MAC from a remote: %d deliveries, local_mac_from_remote %d", len(out), after.Drops[DropLocalMAC])
	}
}

// TestEgressDrops runs frames a container sends through its port's reader: VXLAN of its
// own and (by default) tagged frames are dropped before learning, each under its reason.
func TestEgressDrops(t *testing.T) {
	cases := []struct {
		name  string
		cfg   Config
		frame []byte
		want  outcome
	}{
		{"udp", Config{}, innerFrame(t, nil, 53, 10), outcome{}},
		{"vxlan from the container", Config{}, innerFrame(t, nil, 4789, 60), outcome{drop: DropVXLANFromPort, dropped: true}},
		{"tagged", Config{}, innerFrame(t, []uint16{3}, 53, 10), outcome{drop: DropVLANFromPort, dropped: true}},
		{"tagged, accepted", Config{InnerVLAN: true}, innerFrame(t, []uint16{3}, 53, 10), outcome{}},
		{"tagged vxlan, tags accepted", Config{InnerVLAN: true}, innerFrame(t, []uint16{3}, 4789, 10), outcome{drop: DropVXLANFromPort, dropped: true}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tn := newTestNode(t, c.cfg)
			before, after := tn.send(c.frame)
			got, ok := outcomeOf(before, after, 0)
			if !ok || got != c.want {
				t.Fatalf("outcome %v (one counter each: %v), want %v", got, ok, c.want)
			}
			// A frame that passed was learned; a dropped one taught the FDB nothing.
			if learned := after.Learned - before.Learned; learned != 0 == c.want.dropped {
				t.Errorf("learned %d", learned)
			}
		})
	}
}

// FuzzIngress runs arbitrary frames through the ingress worker and checks that each is
// counted exactly once (delivered, or dropped under one reason), and that only frames
// that pass every check reach a port: the inner frame of valid outer headers, within the
// port's MTU, in place in the received frame.
func FuzzIngress(f *testing.F) {
	for _, c := range ingressCases() {
		f.Add(c.frame(f), false)
	}
	tn := newTestNode(f, Config{})
	f.Fuzz(func(t *testing.T, frame []byte, fix bool) {
		if fix && len(frame) > offIP+20 {
			fixIPv4(frame)
		}
		before, after, out := tn.receive(frame)
		got, ok := outcomeOf(before, after, len(out))
		if !ok {
			t.Fatalf("a counter rose by more than one, or two reasons rose: %v", got)
		}
		// A failed inner check counts its reason and bad_inner: one drop.
		dropped := got.dropped || got.parse != packet.DropNone && !got.parse.Inner()
		if dropped == (len(out) > 0) || got.parse.Inner() != (got.dropped && got.drop == DropInner) {
			t.Fatalf("outcome %v: not counted exactly once", got)
		}
		if after.RxPackets-before.RxPackets != 1 {
			t.Fatalf("rx_packets rose by %d", after.RxPackets-before.RxPackets)
		}
		if len(out) == 0 {
			return
		}
		var o packet.Outer
		inner, r := packet.ParseOuter(frame, 4789, &o)
		if r != packet.DropNone || packet.CheckInner(inner) != packet.DropNone || len(inner) > 1450+14 {
			t.Fatalf("delivered a frame that fails a check: outer %v, inner %v, %d bytes", r, packet.CheckInner(inner), len(inner))
		}
		for _, d := range out {
			if len(d.pkt) != len(inner) || &d.pkt[0] != &inner[0] {
				t.Fatalf("delivered %d bytes at %p, the inner frame is %d at %p", len(d.pkt), &d.pkt[0], len(inner), &inner[0])
			}
		}
	})
}

// BenchmarkIngressWorker measures one ingress worker's work on a VXLAN frame of the
// underlay's MTU from a known remote to the VNI's local port (parse, checks, learn,
// look up, queue for the port); -benchmem shows it allocates nothing.
func BenchmarkIngressWorker(b *testing.B) {
	tn := newTestNode(b, Config{})
	inner := innerFrame(b, nil, 53, 1450-20-8)
	copy(inner[0:6], testPortMAC)
	frame := vxlanFrame(b, 42, inner)
	var o packet.Outer
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		tn.mf.out = tn.mf.out[:0]
		tn.w.ingress(frame, &o, 1)
	}
	if len(tn.mf.out) != 1 {
		b.Fatalf("%d deliveries, want 1", len(tn.mf.out))
	}
}

// TestReloadable: ttl, tos, df and learning reload, as on the kernel's vxlan; ttl to or from
// inherit, udp_checksum, srcport and the other top-level fields do not, and the refusal names
// them as the config file does.
func TestReloadable(t *testing.T) {
	base, err := ParseConfig(strings.NewReader(minimalConfig))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		yaml, refused string
	}{
		{"ttl: 9\ntos: inherit\ndf: inherit\nlearning: false\n", ""},
		{"tos: 0x88\ndf: set\n", ""},
		{"ttl: inherit\n", "ttl to or from inherit"},
		{"udp_checksum: true\n", "udp_checksum"},
		{"srcport: [1000, 2000]\n", "srcport"},
		{"tap_io_uring: false\n", "tap_io_uring"},
		{"fdb_max: 10\nworkers: 1\n", "fdb_max workers"},
	} {
		c, err := ParseConfig(strings.NewReader(tc.yaml + minimalConfig))
		if err != nil {
			t.Fatal(err)
		}
		c.Workers = base.Workers
		if strings.Contains(tc.yaml, "workers") {
			c.Workers = base.Workers + 1
		}
		v := &VTEP{cfg: base}
		err = v.reloadable(c)
		switch {
		case tc.refused == "" && err != nil:
			t.Errorf("%q refused: %v", tc.yaml, err)
		case tc.refused != "" && (!errors.Is(err, ErrReload) || !strings.Contains(err.Error(), "["+tc.refused+"]")):
			t.Errorf("%q: %v, want a refusal naming [%s]", tc.yaml, err, tc.refused)
		}
	}
}
