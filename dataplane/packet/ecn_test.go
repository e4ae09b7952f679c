package packet

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// innerWith returns an inner TCP frame (buildInner) with its IPv4 TOS or IPv6 traffic
// class, TTL or hop limit, and IPv4 DF set as given, the IPv4 header checksum fixed.
func innerWith(t testing.TB, v6 bool, tos, ttl uint8, df bool) []byte {
	f := buildInner(t, v6, 40000, 443, 64)
	ip := f[ethHeaderLen:]
	if v6 {
		ip[0] = 6<<4 | tos>>4
		ip[1] = tos<<4 | ip[1]&0x0f
		ip[7] = ttl
		return f
	}
	ip[1], ip[8] = tos, ttl
	ip[6] &^= 0x40
	if df {
		ip[6] |= 0x40
	}
	ip[10], ip[11] = 0, 0
	binary.BigEndian.PutUint16(ip[10:12], ^Sum(ip[:ipv4HeaderLen], 0))
	return f
}

// arpFrame is an inner frame that carries no IP.
func arpFrame(t testing.TB) []byte {
	return mustSerialize(t,
		&layers.Ethernet{SrcMAC: net.HardwareAddr(innerSrcMAC[:]), DstMAC: layers.EthernetBroadcast, EthernetType: layers.EthernetTypeARP},
		&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			Operation: layers.ARPRequest, SourceHwAddress: innerSrcMAC[:], SourceProtAddress: innerSrc4.AsSlice(),
			DstHwAddress: make([]byte, 6), DstProtAddress: innerDst4.AsSlice()})
}

// outerFields decodes an encapsulated frame with gopacket and returns its outer TOS (or
// traffic class), TTL (or hop limit) and DF, after checking that its IPv4 header checksum
// and its UDP checksum (if not 0) verify, and that it carries inner unchanged.
func outerFields(t *testing.T, frame, inner []byte, v6 bool) (tos, ttl uint8, df bool, udpCsum uint16) {
	t.Helper()
	p := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	if el := p.ErrorLayer(); el != nil {
		t.Fatalf("gopacket: %v", el.Error())
	}
	udp := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
	var ulen int
	var pseudo uint32
	if v6 {
		ip := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
		tos, ttl = ip.TrafficClass, ip.HopLimit
		pseudo = naivePseudo(outerSrc6, outerDst6, protoUDP, len(ip.Payload))
		ulen = len(ip.Payload)
	} else {
		ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		tos, ttl, df = ip.TOS, ip.TTL, ip.Flags&layers.IPv4DontFragment != 0
		if naiveSum(frame[14:34], 0) != 0xffff {
			t.Errorf("outer ipv4 header checksum does not verify")
		}
		pseudo = naivePseudo(outerSrc4, outerDst4, protoUDP, len(ip.Payload))
		ulen = len(ip.Payload)
	}
	if udp.Checksum != 0 {
		l4 := len(frame) - ulen
		if naiveSum(frame[l4:], pseudo) != 0xffff {
			t.Errorf("outer udp checksum %#x does not verify", udp.Checksum)
		}
	}
	if !bytes.Equal(frame[len(frame)-len(inner):], inner) {
		t.Errorf("inner frame changed")
	}
	return tos, ttl, df, udp.Checksum
}

// TestEncapHeaderOptions checks every header option against frames decoded by gopacket,
// for both outer families, with inner IPv4, IPv6 and non-IP frames.
func TestEncapHeaderOptions(t *testing.T) {
	type want struct {
		tos, ttl uint8
		df, csum bool
	}
	// Inner frames: IPv4 DSCP 46 ECT(0) TTL 9 DF; IPv6 DSCP 10 ECT(1) hop limit 200; ARP.
	inners := []struct {
		name string
		v6   bool
		tos  uint8
		ttl  uint8
		df   bool
		arp  bool
	}{
		{"ipv4", false, 46<<2 | ECNECT0, 9, true, false},
		{"ipv6", true, 10<<2 | ECNECT1, 200, false, false},
		{"arp", false, 0, 0, false, true},
	}
	cases := []struct {
		name string
		opts HeaderOptions
		want func(tos, ttl uint8, df bool) want
	}{
		{"defaults", DefaultHeaderOptions, func(tos, _ uint8, _ bool) want { return want{tos: tos & ECNMask, ttl: 64} }},
		{"ttl 3 tos 0x88 df set csum", HeaderOptions{TTL: 3, TOS: 0x88 | ECNCE, DF: DFSet, UDPChecksum: true},
			func(tos, _ uint8, _ bool) want { return want{tos: 0x88 | tos&ECNMask, ttl: 3, df: true, csum: true} }},
		{"inherit all", HeaderOptions{TOSInherit: true, DF: DFInherit},
			func(tos, ttl uint8, df bool) want {
				if ttl == 0 {
					ttl = 64
				}
				return want{tos: tos, ttl: ttl, df: df}
			}},
	}
	for _, outer6 := range []bool{false, true} {
		for _, in := range inners {
			for _, c := range cases {
				t.Run(fmt.Sprintf("outer v6 %v/%s/%s", outer6, in.name, c.name), func(t *testing.T) {
					src, dst := outerSrc4, outerDst4
					if outer6 {
						src, dst = outerSrc6, outerDst6
					}
					e, err := NewEncapOptions(outerSrcMAC, outerDstMAC, src, dst, testPort, 42, c.opts)
					if err != nil {
						t.Fatal(err)
					}
					inner := arpFrame(t)
					if !in.arp {
						inner = innerWith(t, in.v6, in.tos, in.ttl, in.df)
					}
					w := c.want(in.tos, in.ttl, in.df)
					if outer6 {
						w.df = false
						w.csum = true
					}
					for range 2 { // the template stays as it was
						tos, ttl, df, csum := outerFields(t, encapFrame(t, e, inner, 50000), inner, outer6)
						if tos != w.tos || ttl != w.ttl || df != w.df || (csum != 0) != w.csum {
							t.Fatalf("outer tos %#x ttl %d df %v udp checksum %#x, want tos %#x ttl %d df %v checksum %v",
								tos, ttl, df, csum, w.tos, w.ttl, w.df, w.csum)
						}
					}
				})
			}
		}
	}
}

// TestEncapECN: RFC 6040 normal mode copies the inner ECN field, CE included, whatever
// the configured TOS, behind a VLAN tag too.
func TestEncapECN(t *testing.T) {
	for _, outer6 := range []bool{false, true} {
		src, dst := outerSrc4, outerDst4
		if outer6 {
			src, dst = outerSrc6, outerDst6
		}
		e, err := NewEncapOptions(outerSrcMAC, outerDstMAC, src, dst, testPort, 7, HeaderOptions{TTL: 64, TOS: 0xb8})
		if err != nil {
			t.Fatal(err)
		}
		for _, inner6 := range []bool{false, true} {
			for ecn := uint8(0); ecn < 4; ecn++ {
				inner := innerWith(t, inner6, 0x20|ecn, 64, false)
				tos, _, _, _ := outerFields(t, encapFrame(t, e, inner, 50000), inner, outer6)
				if tos != 0xb8|ecn {
					t.Errorf("outer v6 %v inner v6 %v ecn %d: outer tos %#x, want %#x", outer6, inner6, ecn, tos, 0xb8|ecn)
				}
				tagged := append(append(append([]byte(nil), inner[:12]...), 0x81, 0, 0, 7), inner[12:]...)
				tos, _, _, _ = outerFields(t, encapFrame(t, e, tagged, 50000), tagged, outer6)
				if tos != 0xb8|ecn {
					t.Errorf("tagged, outer v6 %v inner v6 %v ecn %d: outer tos %#x, want %#x", outer6, inner6, ecn, tos, 0xb8|ecn)
				}
			}
		}
	}
}

func TestNewEncapOptionsErrors(t *testing.T) {
	if _, err := NewEncapOptions(outerSrcMAC, outerDstMAC, outerSrc4, outerDst4, testPort, 1, HeaderOptions{TTL: 1, DF: 3}); err == nil {
		t.Fatal("df 3 accepted")
	}
}

// rfc6040 is the decapsulation table of RFC 6040 section 4.2, as Linux 6.18 applies it
// (INET_ECN_decapsulate, checked on the wire by cmd/vxdp's TestECNDecapsulation): the
// inner ECN field that leaves, by [inner][outer], and -1 for a drop.
var rfc6040 = [4][4]int{
	ECNNotECT: {ECNNotECT: ECNNotECT, ECNECT1: ECNNotECT, ECNECT0: ECNNotECT, ECNCE: -1},
	ECNECT1:   {ECNNotECT: ECNECT1, ECNECT1: ECNECT1, ECNECT0: ECNECT1, ECNCE: ECNCE},
	ECNECT0:   {ECNNotECT: ECNECT0, ECNECT1: ECNECT1, ECNECT0: ECNECT0, ECNCE: ECNCE},
	ECNCE:     {ECNNotECT: ECNCE, ECNECT1: ECNCE, ECNECT0: ECNCE, ECNCE: ECNCE},
}

func TestDecapECN(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		for in := range 4 {
			for out := range 4 {
				f := innerWith(t, v6, 0xa0|uint8(in), 33, true)
				orig := append([]byte(nil), f...)
				ok := DecapECN(0x48|uint8(out), f)
				want := rfc6040[in][out]
				if !ok != (want < 0) {
					t.Errorf("v6 %v inner %d outer %d: kept %v, want drop %v", v6, in, out, ok, want < 0)
					continue
				}
				if want < 0 {
					if !bytes.Equal(f, orig) {
						t.Errorf("v6 %v inner %d outer %d: a dropped frame was changed", v6, in, out)
					}
					continue
				}
				p := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
				var tos uint8
				if v6 {
					tos = p.Layer(layers.LayerTypeIPv6).(*layers.IPv6).TrafficClass
				} else {
					tos = p.Layer(layers.LayerTypeIPv4).(*layers.IPv4).TOS
					if naiveSum(f[14:34], 0) != 0xffff {
						t.Errorf("v6 %v inner %d outer %d: ipv4 header checksum does not verify", v6, in, out)
					}
				}
				if tos != 0xa0|uint8(want) {
					t.Errorf("v6 %v inner %d outer %d: inner tos %#x, want %#x", v6, in, out, tos, 0xa0|want)
				}
				if got, _ := InnerECN(f); got != uint8(want) {
					t.Errorf("InnerECN %d, want %d", got, want)
				}
			}
		}
	}
	arp := arpFrame(t)
	if !DecapECN(ECNCE, arp) {
		t.Error("outer CE over ARP dropped")
	}
}

// FuzzDecapECN runs arbitrary inner frames and outer TOS bytes through DecapECN: it never
// reads past the frame, changes at most the inner ECN field (and the IPv4 header checksum,
// which stays as right or wrong as it was), and follows the table.
func FuzzDecapECN(f *testing.F) {
	for _, v6 := range []bool{false, true} {
		for ecn := range uint8(4) {
			f.Add(innerWith(f, v6, ecn, 64, false), uint8(ECNCE))
		}
	}
	tagged := innerWith(f, false, ECNECT0, 64, false)
	f.Add(append(append(append([]byte(nil), tagged[:12]...), 0x81, 0, 0, 7), tagged[12:]...), uint8(ECNCE))
	f.Add(arpFrame(f), uint8(ECNCE))
	f.Add([]byte{0, 1, 2}, uint8(ECNECT0))
	f.Add(innerWith(f, true, ECNECT0, 64, false), uint8(ECNECT1))
	f.Fuzz(func(t *testing.T, inner []byte, outer uint8) {
		orig := append([]byte(nil), inner...)
		inECN, isIP := InnerECN(inner)
		ok := DecapECN(outer, inner)
		if !isIP || outer&1 == 0 {
			if !ok || !bytes.Equal(inner, orig) {
				t.Fatalf("non-IP or outer not CE: kept %v, changed %v", ok, !bytes.Equal(inner, orig))
			}
			return
		}
		want := rfc6040[inECN][outer&ECNMask]
		if !ok != (want < 0) {
			t.Fatalf("inner %d: kept %v", inECN, ok)
		}
		if got, _ := InnerECN(inner); ok && got != uint8(want) {
			t.Fatalf("inner %d: now %d, want %d", inECN, got, want)
		}
		var diff []int
		for i := range inner {
			if inner[i] != orig[i] {
				diff = append(diff, i)
			}
		}
		ip, v6 := innerIP(inner)
		l3 := len(inner) - len(ip)
		for _, i := range diff {
			switch {
			case i == l3+1:
			case !v6 && (i == l3+10 || i == l3+11):
			default:
				t.Fatalf("byte %d changed", i)
			}
		}
		if !v6 && len(diff) > 0 {
			// The header checksum (over IHL*4 bytes, if they fit) verifies as before.
			hl := int(ip[0]&0x0f) * 4
			if hl >= ipv4HeaderLen && hl <= len(ip) {
				before := naiveSum(orig[l3:l3+hl], 0) == 0xffff
				after := naiveSum(ip[:hl], 0) == 0xffff
				if before != after {
					t.Fatalf("ipv4 header checksum verified %v before, %v after", before, after)
				}
			}
		}
	})
}

func TestPortRange(t *testing.T) {
	for _, r := range []PortRange{DefaultPortRange, {1000, 1000}, {1000, 1003}, {1, 65535}, {32768, 60999}} {
		seen := map[uint16]bool{}
		for i := range 4000 {
			inner := buildInner(t, i%2 == 1, uint16(i), 80, 0)
			p := r.SourcePort(inner)
			if p < r.Min || p > r.Max {
				t.Fatalf("range %v: port %d", r, p)
			}
			if r == DefaultPortRange && p != SourcePort(inner) {
				t.Fatalf("default range: %d, SourcePort %d", p, SourcePort(inner))
			}
			seen[p] = true
		}
		if span := int(r.Max-r.Min) + 1; span <= 4 && len(seen) != span {
			t.Errorf("range %v: %d ports seen of %d", r, len(seen), span)
		}
		if r == (PortRange{1000, 1003}) && (!seen[1000] || !seen[1003]) {
			t.Errorf("range %v: an end never drawn: %v", r, seen)
		}
	}
}
