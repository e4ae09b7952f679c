package packet

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// Addresses from the documentation ranges (RFC 5737, RFC 3849) and locally
// administered MACs: test frames never name a real host.
var (
	outerSrcMAC = [6]byte{0x02, 0x00, 0x00, 0x00, 0x0a, 0x01}
	outerDstMAC = [6]byte{0x02, 0x00, 0x00, 0x00, 0x0a, 0x02}
	innerSrcMAC = [6]byte{0x02, 0x00, 0x00, 0x00, 0x0b, 0x01}
	innerDstMAC = [6]byte{0x02, 0x00, 0x00, 0x00, 0x0b, 0x02}
	outerSrc4   = netip.MustParseAddr("192.0.2.1")
	outerDst4   = netip.MustParseAddr("192.0.2.2")
	outerSrc6   = netip.MustParseAddr("2001:db8::1")
	outerDst6   = netip.MustParseAddr("2001:db8::2")
	innerSrc4   = netip.MustParseAddr("198.51.100.1")
	innerDst4   = netip.MustParseAddr("198.51.100.2")
	innerSrc6   = netip.MustParseAddr("2001:db8:1::1")
	innerDst6   = netip.MustParseAddr("2001:db8:1::2")
)

const testPort = 4789 // IANA VXLAN port; gopacket decodes VXLAN on it

// outerSpec describes an outer VXLAN frame for buildOuter.
type outerSpec struct {
	v6          bool
	tpid        uint16 // 0: untagged; else 0x8100 or 0x88a8
	vlanTCI     uint16
	options     []layers.IPv4Option
	tos, ttl    uint8
	id          uint16
	srcPort     uint16
	dstPort     uint16
	vni         uint32
	zeroUDPCsum bool // send UDP checksum 0
	pad         int  // Ethernet trailer bytes after the IP packet
	inner       []byte
}

func defaultSpec(t testing.TB, v6 bool) outerSpec {
	return outerSpec{
		v6:      v6,
		tos:     0x28,
		ttl:     61,
		id:      0x1234,
		srcPort: 51000,
		dstPort: testPort,
		vni:     0xabcdef,
		inner:   buildInner(t, false, 33000, 5201, 100),
	}
}

func mustSerialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true}
	if err := gopacket.SerializeLayers(buf, opts, ls...); err != nil {
		t.Fatalf("serialize: %v", err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// buildInner returns an inner Ethernet frame carrying TCP over IPv4 or IPv6
// with payload bytes of data.
func buildInner(t testing.TB, v6 bool, sport, dport uint16, payload int) []byte {
	t.Helper()
	data := make([]byte, payload)
	for i := range data {
		data[i] = byte(i*7 + 3)
	}
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr(innerSrcMAC[:]), DstMAC: net.HardwareAddr(innerDstMAC[:])}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), Seq: 1000, Ack: 2000, ACK: true, PSH: true, Window: 512}
	if v6 {
		eth.EthernetType = layers.EthernetTypeIPv6
		ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolTCP,
			SrcIP: innerSrc6.AsSlice(), DstIP: innerDst6.AsSlice()}
		if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
			t.Fatal(err)
		}
		return mustSerialize(t, eth, ip, tcp, gopacket.Payload(data))
	}
	eth.EthernetType = layers.EthernetTypeIPv4
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, Flags: layers.IPv4DontFragment,
		SrcIP: innerSrc4.AsSlice(), DstIP: innerDst4.AsSlice()}
	if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	return mustSerialize(t, eth, ip, tcp, gopacket.Payload(data))
}

// buildOuter serializes s with gopacket.
func buildOuter(t testing.TB, s outerSpec) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr(outerSrcMAC[:]), DstMAC: net.HardwareAddr(outerDstMAC[:])}
	l3Type := layers.EthernetTypeIPv4
	if s.v6 {
		l3Type = layers.EthernetTypeIPv6
	}
	ls := []gopacket.SerializableLayer{eth}
	if s.tpid != 0 {
		eth.EthernetType = layers.EthernetType(s.tpid)
		ls = append(ls, &layers.Dot1Q{
			Priority:       uint8(s.vlanTCI >> 13),
			DropEligible:   s.vlanTCI&0x1000 != 0,
			VLANIdentifier: s.vlanTCI & 0x0fff,
			Type:           l3Type,
		})
	} else {
		eth.EthernetType = l3Type
	}
	udp := &layers.UDP{SrcPort: layers.UDPPort(s.srcPort), DstPort: layers.UDPPort(s.dstPort)}
	if s.v6 {
		ip := &layers.IPv6{Version: 6, TrafficClass: s.tos, HopLimit: s.ttl, NextHeader: layers.IPProtocolUDP,
			SrcIP: outerSrc6.AsSlice(), DstIP: outerDst6.AsSlice()}
		if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
			t.Fatal(err)
		}
		ls = append(ls, ip)
	} else {
		ip := &layers.IPv4{Version: 4, TOS: s.tos, TTL: s.ttl, Id: s.id, Protocol: layers.IPProtocolUDP,
			SrcIP: outerSrc4.AsSlice(), DstIP: outerDst4.AsSlice(), Options: s.options}
		if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
			t.Fatal(err)
		}
		ls = append(ls, ip)
	}
	ls = append(ls, udp, &layers.VXLAN{ValidIDFlag: true, VNI: s.vni}, gopacket.Payload(s.inner))
	frame := mustSerialize(t, ls...)
	if s.zeroUDPCsum {
		u := udpOffset(frame)
		frame[u+6], frame[u+7] = 0, 0
	}
	return append(frame, make([]byte, s.pad)...)
}

// l3Offset returns where the IP header starts, skipping one tag.
func l3Offset(frame []byte) int {
	et := binary.BigEndian.Uint16(frame[12:14])
	if et == etherTypeVLAN || et == etherTypeQinQ {
		return 18
	}
	return 14
}

func isV6(frame []byte) bool { return frame[l3Offset(frame)]>>4 == 6 }

// udpOffset returns where the UDP header starts in a well-formed frame.
func udpOffset(frame []byte) int {
	l3 := l3Offset(frame)
	if isV6(frame) {
		return l3 + 40
	}
	return l3 + int(frame[l3]&0x0f)*4
}

// naiveSum is RFC 1071 taken literally: 16-bit words into a 32-bit
// accumulator, carries folded back at the end.
func naiveSum(b []byte, initial uint32) uint16 {
	s := uint64(initial)
	for i := 0; i+1 < len(b); i += 2 {
		s += uint64(b[i])<<8 | uint64(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint64(b[len(b)-1]) << 8
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

// naivePseudo builds the pseudo-header bytes and sums them naively.
func naivePseudo(src, dst netip.Addr, proto uint8, length int) uint32 {
	var b []byte
	b = append(b, src.AsSlice()...)
	b = append(b, dst.AsSlice()...)
	if src.Is4() {
		b = append(b, 0, proto, byte(length>>8), byte(length))
	} else {
		b = append(b, byte(length>>24), byte(length>>16), byte(length>>8), byte(length), 0, 0, 0, proto)
	}
	return uint32(naiveSum(b, 0))
}

// refix recomputes, with the naive sum, the IPv4 header checksum and a non-zero
// UDP checksum of frame after a test changed a field, as far as the headers
// are consistent; a broken length leaves the UDP checksum as it was.
// It never panics, whatever frame holds, so fuzz targets use it too.
func refix(frame []byte) {
	if len(frame) < 14 {
		return
	}
	l3 := l3Offset(frame)
	if len(frame) < l3+20 {
		return
	}
	ip := frame[l3:]
	var src, dst netip.Addr
	var udp []byte
	if ip[0]>>4 == 6 {
		if len(ip) < 40 {
			return
		}
		src = netip.AddrFrom16([16]byte(ip[8:24]))
		dst = netip.AddrFrom16([16]byte(ip[24:40]))
		udp = ip[40:]
	} else {
		hl := int(ip[0]&0x0f) * 4
		if hl < 20 || hl > len(ip) {
			return
		}
		ip[10], ip[11] = 0, 0
		binary.BigEndian.PutUint16(ip[10:12], ^naiveSum(ip[:hl], 0))
		src = netip.AddrFrom4([4]byte(ip[12:16]))
		dst = netip.AddrFrom4([4]byte(ip[16:20]))
		udp = ip[hl:]
	}
	if len(udp) < 8 || (udp[6] == 0 && udp[7] == 0) {
		return
	}
	ul := int(binary.BigEndian.Uint16(udp[4:6]))
	if ul < 8 || ul > len(udp) {
		return
	}
	udp[6], udp[7] = 0, 0
	c := ^naiveSum(udp[:ul], naivePseudo(src, dst, protoUDP, ul))
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(udp[6:8], c)
}
