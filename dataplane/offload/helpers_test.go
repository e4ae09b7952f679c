package offload

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// Test frames use documentation addresses (RFC 5737, RFC 3849) and locally
// administered MACs.
var (
	macA = [6]byte{0x02, 0, 0, 0, 0x0c, 0x01}
	macB = [6]byte{0x02, 0, 0, 0, 0x0c, 0x02}
)

const testMTU = 1500

// flowSpec is what stays the same across the frames of one test flow.
type flowSpec struct {
	v6, udp      bool
	srcMAC       [6]byte
	dstMAC       [6]byte
	src, dst     netip.Addr
	sport, dport uint16
	tos, ttl     uint8
	df           bool
	ipOpts       bool // IPv4: a router alert option (the frame is then never merged)
	ts           bool // TCP: NOP, NOP, timestamps
}

// segSpec is what varies per frame.
type segSpec struct {
	seq, ack     uint32
	flags        uint8 // tcpXXX bits
	window       uint16
	id           uint16
	tsval, tsecr uint32
	ttl          uint8 // 0: the flow's
	payload      []byte
}

// defaultFlow returns flow number i of a family, distinct in its ports.
func defaultFlow(i int, v6, udp bool) flowSpec {
	s := flowSpec{
		v6: v6, udp: udp, srcMAC: macA, dstMAC: macB,
		sport: uint16(40000 + i), dport: 5201, tos: 0, ttl: 64, df: true, ts: true,
	}
	if v6 {
		s.src, s.dst = netip.MustParseAddr("2001:db8:1::1"), netip.MustParseAddr("2001:db8:1::2")
	} else {
		s.src, s.dst = netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("198.51.100.2")
	}
	return s
}

// ipHdrLen is the IP+transport header length of the flow's frames.
func (s flowSpec) ipHdrLen() int {
	n := 20
	if s.v6 {
		n = 40
	} else if s.ipOpts {
		n += 4
	}
	if s.udp {
		return n + 8
	}
	if s.ts {
		return n + 32
	}
	return n + 20
}

// build serializes one frame with gopacket, lengths and checksums computed by it.
func (s flowSpec) build(tb testing.TB, g segSpec) []byte {
	tb.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr(s.srcMAC[:]), DstMAC: net.HardwareAddr(s.dstMAC[:])}
	ttl := s.ttl
	if g.ttl != 0 {
		ttl = g.ttl
	}
	proto := layers.IPProtocolTCP
	if s.udp {
		proto = layers.IPProtocolUDP
	}
	var ip gopacket.SerializableLayer
	var nl gopacket.NetworkLayer
	if s.v6 {
		eth.EthernetType = layers.EthernetTypeIPv6
		ip6 := &layers.IPv6{Version: 6, TrafficClass: s.tos, HopLimit: ttl, NextHeader: proto,
			SrcIP: s.src.AsSlice(), DstIP: s.dst.AsSlice()}
		ip, nl = ip6, ip6
	} else {
		eth.EthernetType = layers.EthernetTypeIPv4
		ip4 := &layers.IPv4{Version: 4, TOS: s.tos, TTL: ttl, Protocol: proto, Id: g.id,
			SrcIP: s.src.AsSlice(), DstIP: s.dst.AsSlice()}
		if s.df {
			ip4.Flags = layers.IPv4DontFragment
		}
		if s.ipOpts {
			ip4.Options = []layers.IPv4Option{{OptionType: 0x94, OptionLength: 4, OptionData: []byte{0, 0}}}
		}
		ip, nl = ip4, ip4
	}
	var l4 gopacket.SerializableLayer
	if s.udp {
		u := &layers.UDP{SrcPort: layers.UDPPort(s.sport), DstPort: layers.UDPPort(s.dport)}
		if err := u.SetNetworkLayerForChecksum(nl); err != nil {
			tb.Fatal(err)
		}
		l4 = u
	} else {
		t := &layers.TCP{SrcPort: layers.TCPPort(s.sport), DstPort: layers.TCPPort(s.dport),
			Seq: g.seq, Ack: g.ack, Window: g.window,
			FIN: g.flags&tcpFIN != 0, SYN: g.flags&tcpSYN != 0, RST: g.flags&tcpRST != 0,
			PSH: g.flags&tcpPSH != 0, ACK: g.flags&tcpACK != 0, URG: g.flags&tcpURG != 0,
			ECE: g.flags&tcpECE != 0, CWR: g.flags&tcpCWR != 0}
		if s.ts {
			ts := make([]byte, 8)
			binary.BigEndian.PutUint32(ts[0:4], g.tsval)
			binary.BigEndian.PutUint32(ts[4:8], g.tsecr)
			t.Options = []layers.TCPOption{
				{OptionType: layers.TCPOptionKindNop},
				{OptionType: layers.TCPOptionKindNop},
				{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: ts},
			}
		}
		if err := t.SetNetworkLayerForChecksum(nl); err != nil {
			tb.Fatal(err)
		}
		l4 = t
	}
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, eth, ip, l4, gopacket.Payload(g.payload)); err != nil {
		tb.Fatalf("serialize: %v", err)
	}
	b := buf.Bytes()
	// gopacket pads Ethernet frames to 60 bytes; a TAP frame is not padded (tests that
	// want padding add it).
	ipLen := int(binary.BigEndian.Uint16(b[ethLen+2:])) // IPv4 total length
	if s.v6 {
		ipLen = ipv6Len + int(binary.BigEndian.Uint16(b[ethLen+4:]))
	}
	return append([]byte(nil), b[:ethLen+ipLen]...)
}

// buildSuper builds a GSO super-frame as a TAP read returns it: lengths of the whole,
// the transport checksum field holding the folded pseudo-header sum (computed here
// independently of the package), and its virtio_net_hdr.
func (s flowSpec) buildSuper(tb testing.TB, g segSpec, gsoSize int) (VirtioNetHdr, []byte) {
	tb.Helper()
	frame := s.build(tb, g)
	l4 := ethLen + 20
	if s.v6 {
		l4 = ethLen + 40
	} else if s.ipOpts {
		l4 += 4
	}
	h := VirtioNetHdr{Flags: FlagNeedsCsum, HdrLen: uint16(ethLen + s.ipHdrLen()), GSOSize: uint16(gsoSize), CsumStart: uint16(l4)}
	proto := uint32(protoTCP)
	if s.udp {
		h.GSOType, h.CsumOffset, proto = GSOUDPL4, udpCsumOffset, protoUDP
	} else {
		h.GSOType, h.CsumOffset = GSOTCPv4, tcpCsumOffset
		if s.v6 {
			h.GSOType = GSOTCPv6
		}
		if g.flags&tcpCWR != 0 {
			h.GSOType |= GSOECN
		}
	}
	var sum uint32
	if s.v6 {
		sum = naiveSum(frame[ethLen+8:ethLen+40], 0)
	} else {
		sum = naiveSum(frame[ethLen+12:ethLen+20], 0)
	}
	sum += proto + uint32(len(frame)-l4)
	binary.BigEndian.PutUint16(frame[l4+int(h.CsumOffset):], naiveFold(sum))
	return h, frame
}

// naiveSum and naiveFold are a byte-at-a-time RFC 1071 sum, to check the package's
// word-at-a-time one against.
func naiveSum(b []byte, s uint32) uint32 {
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	return s
}

func naiveFold(s uint32) uint16 {
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

// emitted is a copy of what an EmitFunc received.
type emitted struct {
	hdr   VirtioNetHdr
	frame []byte
}

// collect returns an EmitFunc that appends copies to *out, checking the header
// decodes and, for a super-frame, that header and frame are adjacent.
func collect(tb testing.TB, out *[]emitted) EmitFunc {
	return func(_ uint32, vnetHdr, frame []byte, rest [][]byte) {
		h, err := Decode(vnetHdr)
		if err != nil {
			tb.Fatalf("emitted header: %v", err)
		}
		if len(vnetHdr) != HdrLen {
			tb.Fatalf("emitted header of %d bytes", len(vnetHdr))
		}
		if h.GSOType != GSONone && cap(vnetHdr) >= HdrLen+len(frame) &&
			!bytes.Equal(vnetHdr[:HdrLen+len(frame)][HdrLen:], frame) {
			tb.Fatalf("super-frame not adjacent to its header")
		}
		if rest != nil && h.GSOType == GSONone {
			tb.Fatalf("a single frame emitted in pieces")
		}
		*out = append(*out, emitted{h, flatten(frame, rest)})
	}
}

// flatten returns a copy of frame followed by the pieces of rest: a super-frame as a
// gathering write hands it to the kernel.
func flatten(frame []byte, rest [][]byte) []byte {
	b := append([]byte(nil), frame...)
	for _, r := range rest {
		b = append(b, r...)
	}
	return b
}

// expandOut are expand's output buffers, kept across calls (tests do not run in
// parallel).
var expandOut [][]byte

// expand re-segments emitted frames with Segment at mtu; it returns the segments
// (copies) and, for each, the index of the emitted frame it came from.
func expand(tb testing.TB, items []emitted, mtu int) (segs [][]byte, from []int) {
	tb.Helper()
	const headroom = 50
	if len(expandOut) == 0 || len(expandOut[0]) < headroom+ethLen+mtu {
		expandOut = make([][]byte, 1024)
		for i := range expandOut {
			expandOut[i] = make([]byte, headroom+ethLen+mtu)
		}
	}
	out := expandOut
	sizes := make([]int, len(out))
	for k, it := range items {
		n, err := Segment(it.hdr, it.frame, mtu, out, sizes, headroom)
		if err != nil {
			tb.Fatalf("segment emitted frame %d (%+v, %d bytes): %v", k, it.hdr, len(it.frame), err)
		}
		for i := range n {
			segs = append(segs, append([]byte(nil), out[i][headroom:headroom+sizes[i]]...))
			from = append(from, k)
		}
	}
	return segs, from
}

// keys returns a test frame's flow key (empty if none: non-IP, or ports hidden) and
// address key (empty for non-IP); proto is the transport, 0 if unknown (IPv6
// extension headers). A hand parser, deliberately simpler than the package's.
func keys(frame []byte) (flowKey, addrKey string, proto byte) {
	if len(frame) < ethLen+20 {
		return "", "", 0
	}
	switch binary.BigEndian.Uint16(frame[12:14]) {
	case etherTypeIP4:
		ihl := int(frame[ethLen]&0x0f) * 4
		if len(frame) < ethLen+ihl+4 {
			return "", "", 0
		}
		addrKey = fmt.Sprintf("4:%x", frame[ethLen+12:ethLen+20])
		proto = frame[ethLen+9]
		if binary.BigEndian.Uint16(frame[ethLen+6:])&ipv4FragOff != 0 {
			return "", addrKey, proto
		}
		return fmt.Sprintf("%s:%d:%x", addrKey, proto, frame[ethLen+ihl:ethLen+ihl+4]), addrKey, proto
	case etherTypeIP6:
		if len(frame) < ethLen+44 {
			return "", "", 0
		}
		addrKey = fmt.Sprintf("6:%x", frame[ethLen+8:ethLen+40])
		proto = frame[ethLen+6]
		if proto != protoTCP && proto != protoUDP {
			return "", addrKey, 0
		}
		return fmt.Sprintf("%s:%d:%x", addrKey, proto, frame[ethLen+40:ethLen+44]), addrKey, proto
	}
	return "", "", 0
}

// frameKeys is keys' result for one frame.
type frameKeys struct {
	flow, addr string
	proto      byte
}

// related reports whether the order of input frames a and b must be kept: same flow,
// or one may be of the other's flow without showing its ports.
func related(a, b frameKeys) bool {
	if a.flow != "" && a.flow == b.flow {
		return true
	}
	if a.addr == "" || a.addr != b.addr || (a.flow != "" && b.flow != "") {
		return false
	}
	return a.proto == 0 || b.proto == 0 || a.proto == b.proto
}

// checkOrder checks that segs (the re-segmented output) is a permutation of in that
// keeps the order of every related pair.
func checkOrder(tb testing.TB, in, segs [][]byte) {
	tb.Helper()
	if len(segs) != len(in) {
		tb.Fatalf("%d frames in, %d out after re-segmenting", len(in), len(segs))
	}
	where := make(map[string][]int)
	for i, f := range in {
		where[string(f)] = append(where[string(f)], i)
	}
	pos := make([]int, len(in))
	for i := range pos {
		pos[i] = -1
	}
	for j, s := range segs {
		idx := where[string(s)]
		if len(idx) == 0 {
			tb.Fatalf("output frame %d matches no input frame (or too many times):\n%s", j, describe(s, in))
		}
		pos[idx[0]] = j
		where[string(s)] = idx[1:]
	}
	ks := make([]frameKeys, len(in))
	for i, f := range in {
		ks[i].flow, ks[i].addr, ks[i].proto = keys(f)
	}
	for i := range in {
		for k := i + 1; k < len(in); k++ {
			if pos[i] > pos[k] && related(ks[i], ks[k]) {
				tb.Fatalf("input frames %d and %d of one flow left in the opposite order", i, k)
			}
		}
	}
}

// describe explains a frame that matched no input: the closest input by flow and
// length, with the first differing byte.
func describe(s []byte, in [][]byte) string {
	for i, f := range in {
		if len(f) == len(s) {
			fk, _, _ := keys(f)
			sk, _, _ := keys(s)
			if fk == sk {
				for k := range f {
					if f[k] != s[k] {
						return fmt.Sprintf("closest input %d differs first at byte %d: %#x vs %#x", i, k, f[k], s[k])
					}
				}
			}
		}
	}
	return "no input of that length and flow"
}

// checkGopacket decodes frame with gopacket, serializes its layers again with
// gopacket's lengths and checksums, and requires the same bytes: lengths and
// checksums as an independent implementation computes them. A UDP (or generic) checksum
// of 0xffff stands for a computed 0.
func checkGopacket(tb testing.TB, frame []byte) {
	tb.Helper()
	p := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	if el := p.ErrorLayer(); el != nil {
		tb.Fatalf("gopacket decode: %v", el.Error())
	}
	eth, _ := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	var ip gopacket.SerializableLayer
	var nl gopacket.NetworkLayer
	if l, ok := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ok {
		ip, nl = l, l
	} else if l, ok := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6); ok {
		ip, nl = l, l
	} else {
		tb.Fatalf("no IP layer")
	}
	var l4 gopacket.SerializableLayer
	var payload []byte
	csumAt := 0
	if t, ok := p.Layer(layers.LayerTypeTCP).(*layers.TCP); ok {
		_ = t.SetNetworkLayerForChecksum(nl)
		l4, payload = t, t.Payload
		csumAt = len(frame) - len(t.Payload) - len(t.Contents) + tcpCsumOffset
	} else if u, ok := p.Layer(layers.LayerTypeUDP).(*layers.UDP); ok {
		_ = u.SetNetworkLayerForChecksum(nl)
		l4, payload = u, u.Payload
		csumAt = len(frame) - len(u.Payload) - len(u.Contents) + udpCsumOffset
	} else {
		tb.Fatalf("no TCP or UDP layer")
	}
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, eth, ip, l4, gopacket.Payload(payload)); err != nil {
		tb.Fatalf("gopacket serialize: %v", err)
	}
	want := buf.Bytes()
	if len(frame) < 60 && len(want) == 60 && bytes.Count(want[len(frame):], []byte{0}) == 60-len(frame) {
		want = want[:len(frame)] // gopacket's Ethernet padding
	}
	got := frame
	if len(got) == len(want) && binary.BigEndian.Uint16(got[csumAt:]) == 0xffff && binary.BigEndian.Uint16(want[csumAt:]) == 0 {
		got = append([]byte(nil), frame...)
		got[csumAt], got[csumAt+1] = 0, 0
	}
	if !bytes.Equal(got, want) {
		for k := range min(len(got), len(want)) {
			if got[k] != want[k] {
				tb.Fatalf("frame differs from gopacket's at byte %d: %#x, gopacket %#x (len %d vs %d)", k, got[k], want[k], len(got), len(want))
			}
		}
		tb.Fatalf("frame of %d bytes, gopacket's of %d", len(got), len(want))
	}
}
