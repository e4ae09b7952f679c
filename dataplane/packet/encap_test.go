package packet

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// encapFrame puts inner behind Headroom bytes and encapsulates it with e.
func encapFrame(t testing.TB, e *Encap, inner []byte, srcPort uint16) []byte {
	t.Helper()
	buf := make([]byte, Headroom+len(inner))
	copy(buf[Headroom:], inner)
	frame, ok := e.Prepend(buf, Headroom, len(inner), srcPort)
	if !ok {
		t.Fatalf("Prepend(%d inner bytes) failed", len(inner))
	}
	return frame
}

func TestEncapIPv4(t *testing.T) {
	const vni, ttl, sport = 0x123456, 33, 54321
	e, err := NewEncap(outerSrcMAC, outerDstMAC, outerSrc4, outerDst4, testPort, vni, ttl)
	if err != nil {
		t.Fatal(err)
	}
	if e.Len() != HeadroomIPv4 || HeadroomIPv4 != 50 {
		t.Fatalf("Len = %d, HeadroomIPv4 = %d, want 50", e.Len(), HeadroomIPv4)
	}
	inner := buildInner(t, false, 40000, 443, 333)
	frame := encapFrame(t, e, inner, sport)
	if len(frame) != 50+len(inner) {
		t.Fatalf("frame %d bytes, want %d", len(frame), 50+len(inner))
	}

	p := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	if el := p.ErrorLayer(); el != nil {
		t.Fatalf("gopacket: %v", el.Error())
	}
	eth := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	if !bytes.Equal(eth.SrcMAC, outerSrcMAC[:]) || !bytes.Equal(eth.DstMAC, outerDstMAC[:]) || eth.EthernetType != layers.EthernetTypeIPv4 {
		t.Errorf("ethernet %v -> %v type %v", eth.SrcMAC, eth.DstMAC, eth.EthernetType)
	}
	ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	if ip.Version != 4 || ip.IHL != 5 || ip.TOS != 0 || ip.Flags != 0 || ip.FragOffset != 0 ||
		ip.TTL != ttl || ip.Protocol != layers.IPProtocolUDP || int(ip.Length) != len(frame)-14 {
		t.Errorf("ipv4 header %+v", ip)
	}
	if !ip.SrcIP.Equal(outerSrc4.AsSlice()) || !ip.DstIP.Equal(outerDst4.AsSlice()) {
		t.Errorf("ipv4 %v -> %v", ip.SrcIP, ip.DstIP)
	}
	// gopacket recomputes the header checksum when reserializing.
	hdr := append([]byte(nil), frame[14:34]...)
	ip2 := *ip
	ip2.Options = nil
	ip2.Payload = nil
	rebuf := gopacket.NewSerializeBuffer()
	if err := ip2.SerializeTo(rebuf, gopacket.SerializeOptions{ComputeChecksums: true}); err != nil {
		t.Fatal(err)
	}
	re := rebuf.Bytes()
	if binary.BigEndian.Uint16(re[10:12]) != ip.Checksum || naiveSum(hdr, 0) != 0xffff {
		t.Errorf("ipv4 checksum %#x, gopacket computes %#x", ip.Checksum, binary.BigEndian.Uint16(re[10:12]))
	}
	udp := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
	if udp.SrcPort != sport || udp.DstPort != testPort || int(udp.Length) != len(frame)-34 || udp.Checksum != 0 {
		t.Errorf("udp %d -> %d length %d checksum %#x", udp.SrcPort, udp.DstPort, udp.Length, udp.Checksum)
	}
	vx := p.Layer(layers.LayerTypeVXLAN).(*layers.VXLAN)
	if !vx.ValidIDFlag || vx.VNI != vni || vx.GBPExtension || vx.GBPGroupPolicyID != 0 {
		t.Errorf("vxlan %+v", vx)
	}
	if want := []byte{0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0}; !bytes.Equal(frame[42:50], want) {
		t.Errorf("vxlan header %x, want %x", frame[42:50], want)
	}
	if !bytes.Equal(vx.Payload, inner) {
		t.Errorf("vxlan payload differs from inner frame")
	}
	if tcp, _ := p.Layers()[len(p.Layers())-2].(*layers.TCP); tcp == nil || tcp.SrcPort != 40000 {
		t.Errorf("inner TCP not decoded: %v", p.Layers())
	}

	// Byte for byte what gopacket builds from the same fields.
	ip4 := &layers.IPv4{Version: 4, TTL: ttl, Id: ip.Id, Protocol: layers.IPProtocolUDP, SrcIP: outerSrc4.AsSlice(), DstIP: outerDst4.AsSlice()}
	u4 := &layers.UDP{SrcPort: sport, DstPort: testPort}
	if err := u4.SetNetworkLayerForChecksum(ip4); err != nil {
		t.Fatal(err)
	}
	want := mustSerialize(t,
		&layers.Ethernet{SrcMAC: outerSrcMAC[:], DstMAC: outerDstMAC[:], EthernetType: layers.EthernetTypeIPv4},
		ip4, u4, &layers.VXLAN{ValidIDFlag: true, VNI: vni}, gopacket.Payload(inner))
	want[40], want[41] = 0, 0 // RFC 7348: IPv4 UDP checksum 0
	if !bytes.Equal(frame, want) {
		t.Errorf("frame\n%x\nwant\n%x", frame[:50], want[:50])
	}

	// The ID moves by one per packet, and the checksum follows.
	frame2 := encapFrame(t, e, inner, sport)
	id1, id2 := binary.BigEndian.Uint16(frame[18:20]), binary.BigEndian.Uint16(frame2[18:20])
	if id2 != id1+1 || naiveSum(frame2[14:34], 0) != 0xffff {
		t.Errorf("ids %d then %d, second header sum %#x", id1, id2, naiveSum(frame2[14:34], 0))
	}
}

func TestEncapIPv6(t *testing.T) {
	const vni, ttl, sport = 1, 255, 49152
	e, err := NewEncap(outerSrcMAC, outerDstMAC, outerSrc6, outerDst6, testPort, vni, ttl)
	if err != nil {
		t.Fatal(err)
	}
	if e.Len() != HeadroomIPv6 || HeadroomIPv6 != 70 || Headroom != 70 {
		t.Fatalf("Len = %d, HeadroomIPv6 = %d, Headroom = %d, want 70", e.Len(), HeadroomIPv6, Headroom)
	}
	for _, n := range []int{0, 1, 37, 1400} {
		inner := buildInner(t, true, 40000, 443, n)
		frame := encapFrame(t, e, inner, sport)
		p := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
		if el := p.ErrorLayer(); el != nil {
			t.Fatalf("gopacket: %v", el.Error())
		}
		ip := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
		if ip.Version != 6 || ip.TrafficClass != 0 || ip.FlowLabel != 0 || ip.NextHeader != layers.IPProtocolUDP ||
			ip.HopLimit != ttl || int(ip.Length) != len(frame)-54 {
			t.Errorf("ipv6 header %+v", ip)
		}
		if !ip.SrcIP.Equal(outerSrc6.AsSlice()) || !ip.DstIP.Equal(outerDst6.AsSlice()) {
			t.Errorf("ipv6 %v -> %v", ip.SrcIP, ip.DstIP)
		}
		udp := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
		if udp.SrcPort != sport || udp.DstPort != testPort || int(udp.Length) != len(frame)-54 {
			t.Errorf("udp %d -> %d length %d", udp.SrcPort, udp.DstPort, udp.Length)
		}
		if s := naiveSum(frame[54:], naivePseudo(outerSrc6, outerDst6, protoUDP, len(frame)-54)); s != 0xffff || udp.Checksum == 0 {
			t.Errorf("udp checksum %#x does not verify (sum %#x)", udp.Checksum, s)
		}
		vx := p.Layer(layers.LayerTypeVXLAN).(*layers.VXLAN)
		if want := []byte{0x08, 0, 0, 0, 0, 0, 1, 0}; !vx.ValidIDFlag || vx.VNI != vni || !bytes.Equal(frame[62:70], want) {
			t.Errorf("vxlan header %x, want %x", frame[62:70], want)
		}
		// gopacket computes the same checksum from the same fields.
		ip6 := &layers.IPv6{Version: 6, HopLimit: ttl, NextHeader: layers.IPProtocolUDP, SrcIP: outerSrc6.AsSlice(), DstIP: outerDst6.AsSlice()}
		u := &layers.UDP{SrcPort: sport, DstPort: testPort}
		if err := u.SetNetworkLayerForChecksum(ip6); err != nil {
			t.Fatal(err)
		}
		want := mustSerialize(t, &layers.Ethernet{SrcMAC: outerSrcMAC[:], DstMAC: outerDstMAC[:], EthernetType: layers.EthernetTypeIPv6},
			ip6, u, &layers.VXLAN{ValidIDFlag: true, VNI: vni}, gopacket.Payload(inner))
		if !bytes.Equal(frame, want) {
			t.Errorf("inner %d: frame\n%x\nwant\n%x", n, frame[:70], want[:70])
		}
	}
}

// A UDP checksum that computes to 0 goes out as 0xffff: 0 means "none".
func TestEncapIPv6ChecksumZero(t *testing.T) {
	e, err := NewEncap(outerSrcMAC, outerDstMAC, outerSrc6, outerDst6, testPort, 7, 64)
	if err != nil {
		t.Fatal(err)
	}
	inner := append(buildInner(t, true, 1, 2, 10), 0, 0) // even length, last word free
	if len(inner)%2 != 0 {
		inner = append(inner, 0)
	}
	frame := encapFrame(t, e, inner, 50000)
	c := binary.BigEndian.Uint16(frame[60:62])
	if c == 0xffff {
		t.Skip("first checksum already the special case")
	}
	// Adding c to a zero word brings the sum to 0xffff: the checksum computes to 0.
	binary.BigEndian.PutUint16(inner[len(inner)-2:], c)
	frame = encapFrame(t, e, inner, 50000)
	if got := binary.BigEndian.Uint16(frame[60:62]); got != 0xffff {
		t.Fatalf("checksum %#x, want 0xffff", got)
	}
	var o Outer
	if got, r := ParseOuter(frame, testPort, &o); r != DropNone || !bytes.Equal(got, inner) {
		t.Fatalf("ParseOuter: %v", r)
	}
}

func TestEncapRoundTrip(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		src, dst := outerSrc4, outerDst4
		if v6 {
			src, dst = outerSrc6, outerDst6
		}
		e, err := NewEncap(outerSrcMAC, outerDstMAC, src, dst, 8472, 0xfffffe, 9)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range []int{0, 14, 60, 1514, 9000} {
			inner := make([]byte, n)
			for i := range inner {
				inner[i] = byte(i * 31)
			}
			sport := SourcePort(inner)
			frame := encapFrame(t, e, inner, sport)
			var o Outer
			got, r := ParseOuter(frame, 8472, &o)
			if r != DropNone {
				t.Fatalf("v6 %v n %d: drop %v", v6, n, r)
			}
			if !bytes.Equal(got, inner) || o.InnerOffset != e.Len() {
				t.Fatalf("v6 %v n %d: inner differs (offset %d)", v6, n, o.InnerOffset)
			}
			if o.Src != src || o.Dst != dst || o.SrcPort != sport || o.DstPort != 8472 || o.VNI != 0xfffffe ||
				o.TTL != 9 || o.SrcMAC != outerSrcMAC || o.DstMAC != outerDstMAC || o.Flags != 0x08 {
				t.Fatalf("v6 %v n %d: outer %+v", v6, n, o)
			}
		}
	}
}

func TestEncapLimits(t *testing.T) {
	e4, err := NewEncap(outerSrcMAC, outerDstMAC, outerSrc4, outerDst4, testPort, 1, 64)
	if err != nil {
		t.Fatal(err)
	}
	e6, err := NewEncap(outerSrcMAC, outerDstMAC, outerSrc6, outerDst6, testPort, 1, 64)
	if err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 70000)
	for i := range big {
		big[i] = 0xaa
	}
	// Largest frames that fit the 16-bit lengths.
	if !e4.Write(big[:14+0xffff], 1) || !e6.Write(big[:54+0xffff], 1) {
		t.Fatal("largest frame refused")
	}
	for i := range big {
		big[i] = 0xaa
	}
	if e4.Write(big[:14+0x10000], 1) || e6.Write(big[:54+0x10000], 1) {
		t.Fatal("oversized frame accepted")
	}
	if big[0] != 0xaa || big[20] != 0xaa {
		t.Fatal("refused Write touched the frame")
	}
	if e4.Write(big[:49], 1) || e6.Write(big[:69], 1) {
		t.Fatal("frame shorter than the headers accepted")
	}
	if !e4.Write(big[:50], 1) || !e6.Write(big[:70], 1) {
		t.Fatal("headers-only frame refused")
	}
	buf := make([]byte, 200)
	for _, c := range []struct {
		e        *Encap
		off, len int
	}{{e4, 49, 10}, {e6, 69, 10}, {e4, 50, 151}, {e4, 50, -1}} {
		if _, ok := c.e.Prepend(buf, c.off, c.len, 1); ok {
			t.Errorf("Prepend(off %d, len %d) accepted", c.off, c.len)
		}
	}
	if f, ok := e4.Prepend(buf, 60, 140, 1); !ok || len(f) != 190 || &f[0] != &buf[10] {
		t.Errorf("Prepend(60, 140) = %d bytes, %v", len(f), ok)
	}
}

func TestNewEncapErrors(t *testing.T) {
	zoned := netip.MustParseAddr("fe80::1%eth0")
	for _, c := range []struct {
		name     string
		src, dst netip.Addr
		port     uint16
		vni      uint32
		ttl      uint8
	}{
		{"no src", netip.Addr{}, outerDst4, testPort, 1, 64},
		{"no dst", outerSrc4, netip.Addr{}, testPort, 1, 64},
		{"mixed", outerSrc4, outerDst6, testPort, 1, 64},
		{"mapped", outerSrc4, netip.AddrFrom16(outerDst4.As16()), testPort, 1, 64},
		{"zone", outerSrc6, zoned, testPort, 1, 64},
		{"vni", outerSrc4, outerDst4, testPort, 1 << 24, 64},
		{"port", outerSrc4, outerDst4, 0, 1, 64},
		{"ttl", outerSrc6, outerDst6, testPort, 1, 0},
	} {
		if _, err := NewEncap(outerSrcMAC, outerDstMAC, c.src, c.dst, c.port, c.vni, c.ttl); !errors.Is(err, ErrInvalidEncap) {
			t.Errorf("%s: err %v, want ErrInvalidEncap", c.name, err)
		}
	}
	if _, err := NewEncap(outerSrcMAC, outerDstMAC, outerSrc4, outerDst4, testPort, 0, 1); err != nil {
		t.Errorf("vni 0: %v", err)
	}
}
