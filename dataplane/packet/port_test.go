package packet

import (
	"encoding/binary"
	"net"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// portSpec describes a frame a container sends, for IsUDPTo.
type portSpec struct {
	v6      bool
	tags    []layers.EthernetType // TPIDs, outermost first
	proto   layers.IPProtocol     // 0: UDP
	dport   uint16
	options []layers.IPv4Option
	flags   layers.IPv4Flag
	fragOff uint16 // IPv4 fragment offset, in 8-byte units
	ext     []byte // raw IPv6 extension headers between the IPv6 header and UDP; their next headers are the caller's
	extNext uint8  // the IPv6 header's next header when ext is set
	cut     int    // bytes of the L4 header and payload kept; 0 keeps all
}

// buildPortFrame serializes s with gopacket: Ethernet, tags, IP, UDP (or the
// raw bytes of another protocol) with a small payload.
func buildPortFrame(t testing.TB, s portSpec) []byte {
	t.Helper()
	if s.proto == 0 {
		s.proto = layers.IPProtocolUDP
	}
	// The L4 header is serialized alone, so its checksum stays 0: IsUDPTo
	// does not look at it.
	var l4Layer gopacket.SerializableLayer = &layers.UDP{SrcPort: 40000, DstPort: layers.UDPPort(s.dport)}
	if s.proto != layers.IPProtocolUDP {
		l4Layer = &layers.TCP{SrcPort: 40000, DstPort: layers.TCPPort(s.dport)}
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true}, l4Layer, gopacket.Payload("tunnel in tunnel?")); err != nil {
		t.Fatal(err)
	}
	l4 := buf.Bytes()
	if s.cut > 0 {
		l4 = l4[:s.cut]
	}
	l3Type := layers.EthernetTypeIPv4
	if s.v6 {
		l3Type = layers.EthernetTypeIPv6
	}
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr(innerSrcMAC[:]), DstMAC: net.HardwareAddr(innerDstMAC[:]), EthernetType: l3Type}
	ls := []gopacket.SerializableLayer{eth}
	for i, tpid := range s.tags {
		if i == 0 {
			eth.EthernetType = tpid
		}
		next := l3Type
		if i+1 < len(s.tags) {
			next = s.tags[i+1]
		}
		ls = append(ls, &layers.Dot1Q{VLANIdentifier: uint16(10 + i), Type: next})
	}
	if s.v6 {
		ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: s.proto, SrcIP: innerSrc6.AsSlice(), DstIP: innerDst6.AsSlice()}
		if s.ext != nil {
			ip.NextHeader = layers.IPProtocol(s.extNext)
		}
		ls = append(ls, ip, gopacket.Payload(append(append([]byte(nil), s.ext...), l4...)))
	} else {
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: s.proto, Flags: s.flags, FragOffset: s.fragOff,
			Options: s.options, SrcIP: innerSrc4.AsSlice(), DstIP: innerDst4.AsSlice()}
		ls = append(ls, ip, gopacket.Payload(l4))
	}
	return mustSerialize(t, ls...)
}

// Raw IPv6 extension headers of 8 bytes (12 for AH), each naming next as the
// header behind it.
func hopByHop(next uint8) []byte { return []byte{next, 0, 1, 4, 0, 0, 0, 0} } // PadN
func destOpts(next uint8) []byte { return []byte{next, 0, 1, 4, 0, 0, 0, 0} }
func routing(next uint8) []byte  { return []byte{next, 0, 4, 0, 0, 0, 0, 0} } // segments left 0
func authHeader(next uint8) []byte {
	return []byte{next, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1} // 12 bytes: SPI 256, sequence 1, no ICV
}
func fragmentHeader(next uint8, offset uint16, more bool) []byte {
	h := []byte{next, 0, 0, 0, 0, 0, 0, 42}
	v := offset << 3
	if more {
		v |= 1
	}
	binary.BigEndian.PutUint16(h[2:4], v)
	return h
}

func cat(bs ...[]byte) []byte {
	var out []byte
	for _, b := range bs {
		out = append(out, b...)
	}
	return out
}

func TestIsUDPTo(t *testing.T) {
	const vx = testPort
	routerAlert := []layers.IPv4Option{{OptionType: 0x94, OptionLength: 4, OptionData: []byte{0, 0}}}
	q, ad := layers.EthernetTypeDot1Q, layers.EthernetTypeQinQ
	cases := []struct {
		name string
		spec portSpec
		want bool
	}{
		{"v4 udp to vxlan", portSpec{dport: vx}, true},
		{"v4 udp to 53", portSpec{dport: 53}, false},
		{"v4 tcp to vxlan port", portSpec{dport: vx, proto: layers.IPProtocolTCP}, false},
		{"v4 options", portSpec{dport: vx, options: routerAlert}, true},
		{"v4 802.1q", portSpec{dport: vx, tags: []layers.EthernetType{q}}, true},
		{"v4 q-in-q", portSpec{dport: vx, tags: []layers.EthernetType{ad, q}}, true},
		{"v4 three tags", portSpec{dport: vx, tags: []layers.EthernetType{ad, q, q}}, true},
		{"v4 DF", portSpec{dport: vx, flags: layers.IPv4DontFragment}, true},
		{"v4 first fragment", portSpec{dport: vx, flags: layers.IPv4MoreFragments}, true},
		{"v4 first fragment to 53", portSpec{dport: 53, flags: layers.IPv4MoreFragments}, false},
		{"v4 tiny first fragment", portSpec{dport: 53, flags: layers.IPv4MoreFragments, cut: 2}, true},
		{"v4 later fragment", portSpec{dport: vx, fragOff: 1}, false},
		{"v4 last fragment", portSpec{dport: vx, fragOff: 100}, false},
		{"v4 udp header cut, not a fragment", portSpec{dport: vx, cut: 3}, false},
		{"v4 udp header to the port", portSpec{dport: vx, cut: 4}, true},
		{"v6 udp to vxlan", portSpec{v6: true, dport: vx}, true},
		{"v6 udp to 53", portSpec{v6: true, dport: 53}, false},
		{"v6 tcp", portSpec{v6: true, dport: vx, proto: layers.IPProtocolTCP}, false},
		{"v6 802.1ad", portSpec{v6: true, dport: vx, tags: []layers.EthernetType{ad}}, true},
		{"v6 hop-by-hop", portSpec{v6: true, dport: vx, ext: hopByHop(17), extNext: 0}, true},
		{"v6 every extension header", portSpec{v6: true, dport: vx, extNext: 0,
			ext: cat(hopByHop(60), destOpts(43), routing(51), authHeader(44), fragmentHeader(60, 0, false), destOpts(17))}, true},
		{"v6 first fragment", portSpec{v6: true, dport: vx, ext: fragmentHeader(17, 0, true), extNext: 44}, true},
		{"v6 tiny first fragment", portSpec{v6: true, dport: 53, ext: fragmentHeader(17, 0, true), extNext: 44, cut: 3}, true},
		{"v6 later fragment", portSpec{v6: true, dport: vx, ext: fragmentHeader(17, 2, true), extNext: 44}, false},
		{"v6 esp hides the rest", portSpec{v6: true, dport: vx, ext: []byte{}, extNext: 50}, false},
		{"v6 no next header", portSpec{v6: true, dport: vx, ext: []byte{}, extNext: 59}, false},
		{"v6 extension header cut", portSpec{v6: true, dport: vx, ext: []byte{17}, extNext: 60, cut: 0}, false},
	}
	for _, c := range cases {
		f := buildPortFrame(t, c.spec)
		if got := IsUDPTo(f, vx); got != c.want {
			t.Errorf("%s: IsUDPTo = %v, want %v", c.name, got, c.want)
		}
		for n := range len(f) {
			IsUDPTo(f[:n], vx) // every truncation: no panic
		}
	}

	// Not IP at all, or the version nibble disagrees with the EtherType.
	v4 := buildPortFrame(t, portSpec{dport: vx})
	arp := append([]byte(nil), v4...)
	arp[12], arp[13] = 0x08, 0x06
	v4as6 := append([]byte(nil), v4...)
	v4as6[14] = 0x65
	src := buildPortFrame(t, portSpec{dport: 53})
	binary.BigEndian.PutUint16(src[14+20:], vx) // the source port is the VXLAN port
	for name, f := range map[string][]byte{"arp": arp, "version 6 in IPv4": v4as6, "source port only": src, "13 bytes": v4[:13]} {
		if IsUDPTo(f, vx) {
			t.Errorf("%s: IsUDPTo = true", name)
		}
	}

	// A length field of 0 (GSO super-frames, jumbograms) covers the whole
	// frame; a short one cuts the UDP header off, and padding is not read.
	zero4 := append([]byte(nil), v4...)
	zero4[16], zero4[17] = 0, 0
	v6 := buildPortFrame(t, portSpec{v6: true, dport: vx})
	zero6 := append([]byte(nil), v6...)
	zero6[18], zero6[19] = 0, 0
	short4 := append([]byte(nil), v4...)
	binary.BigEndian.PutUint16(short4[16:], 20+3)
	for name, c := range map[string]struct {
		f    []byte
		want bool
	}{"v4 total length 0": {zero4, true}, "v6 payload length 0": {zero6, true}, "v4 total length cuts the port": {short4, false}} {
		if got := IsUDPTo(c.f, vx); got != c.want {
			t.Errorf("%s: IsUDPTo = %v, want %v", name, got, c.want)
		}
	}
}
