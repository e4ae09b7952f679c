package packet

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

func TestSumMatchesNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	// Offsets 0..7 so the data starts at every alignment of the backing array.
	backing := make([]byte, 2000+8)
	for n := 0; n <= 2000; n++ {
		for i := range backing {
			backing[i] = byte(rng.Uint32())
		}
		for off := 0; off < 8; off++ {
			b := backing[off : off+n]
			initial := rng.Uint32() >> rng.IntN(33)
			if got, want := Sum(b, initial), naiveSum(b, initial); got != want {
				t.Fatalf("n %d off %d initial %#x: Sum %#x, naive %#x", n, off, initial, got, want)
			}
			if got, want := Checksum(b, initial), ^naiveSum(b, initial); got != want {
				t.Fatalf("n %d off %d: Checksum %#x, want %#x", n, off, got, want)
			}
		}
	}
}

// All-ones data makes every 64-bit addition carry.
func TestSumCarries(t *testing.T) {
	for _, fill := range []byte{0xff, 0xfe, 0x80, 0x00} {
		b := make([]byte, 4096)
		for i := range b {
			b[i] = fill
		}
		for _, n := range []int{1, 2, 7, 8, 31, 32, 33, 63, 64, 65, 1500, 4096} {
			for _, initial := range []uint32{0, 1, 0xffff, 0xffffffff} {
				if got, want := Sum(b[:n], initial), naiveSum(b[:n], initial); got != want {
					t.Fatalf("fill %#x n %d initial %#x: Sum %#x, naive %#x", fill, n, initial, got, want)
				}
			}
		}
	}
	if Sum(nil, 0) != 0 || Checksum(nil, 0) != 0xffff || Sum([]byte{0x12}, 0) != 0x1200 {
		t.Fatal("edge values")
	}
}

func TestPseudoHeaderSum(t *testing.T) {
	for _, c := range []struct {
		src, dst netip.Addr
		proto    uint8
		n        int
	}{
		{outerSrc4, outerDst4, protoUDP, 1500},
		{netip.MustParseAddr("255.255.255.255"), netip.MustParseAddr("255.255.255.254"), protoTCP, 65535},
		{outerSrc6, outerDst6, protoUDP, 70000},
		{netip.MustParseAddr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), netip.MustParseAddr("ffff::ffff"), protoTCP, 0xffffffff},
	} {
		got := fold32(PseudoHeaderSum(c.src, c.dst, c.proto, c.n))
		if want := fold32(naivePseudo(c.src, c.dst, c.proto, c.n)); got != want {
			t.Errorf("%v -> %v: %#x, want %#x", c.src, c.dst, got, want)
		}
	}
}

// The checksums gopacket writes verify with ours, and ours equal them.
func TestChecksumMatchesGopacket(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 200; i++ {
		payload := make([]byte, rng.IntN(1500))
		for j := range payload {
			payload[j] = byte(rng.Uint32())
		}
		v6 := i%2 == 1
		var src, dst netip.Addr
		var ipLayer gopacket.SerializableLayer
		var net gopacket.NetworkLayer
		if v6 {
			src = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(i), 14: byte(rng.Uint32()), 15: 1})
			dst = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(rng.Uint32())})
			ip := &layers.IPv6{Version: 6, HopLimit: 9, NextHeader: layers.IPProtocolUDP, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
			if i%4 == 3 {
				ip.NextHeader = layers.IPProtocolTCP
			}
			ipLayer, net = ip, ip
		} else {
			src = netip.AddrFrom4([4]byte{192, 0, 2, byte(rng.Uint32())})
			dst = netip.AddrFrom4([4]byte{198, 51, 100, byte(rng.Uint32())})
			ip := &layers.IPv4{Version: 4, TTL: 9, Id: uint16(rng.Uint32()), Protocol: layers.IPProtocolUDP,
				SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
			if i%4 == 2 {
				ip.Protocol = layers.IPProtocolTCP
			}
			ipLayer, net = ip, ip
		}
		var l4 gopacket.SerializableLayer
		proto := uint8(protoUDP)
		if i%4 >= 2 {
			tcp := &layers.TCP{SrcPort: layers.TCPPort(rng.Uint32()), DstPort: 80, Seq: rng.Uint32(), SYN: true, Window: 1}
			if err := tcp.SetNetworkLayerForChecksum(net); err != nil {
				t.Fatal(err)
			}
			l4, proto = tcp, protoTCP
		} else {
			udp := &layers.UDP{SrcPort: layers.UDPPort(rng.Uint32()), DstPort: 4789}
			if err := udp.SetNetworkLayerForChecksum(net); err != nil {
				t.Fatal(err)
			}
			l4 = udp
		}
		pkt := mustSerialize(t, ipLayer, l4, gopacket.Payload(payload))
		hl := 40
		if !v6 {
			hl = 20
			if Checksum(pkt[:20], 0) != 0 {
				t.Fatalf("gopacket IPv4 header checksum does not verify")
			}
			h := append([]byte(nil), pkt[:20]...)
			h[10], h[11] = 0, 0
			if Checksum(h, 0) != binary.BigEndian.Uint16(pkt[10:12]) {
				t.Fatalf("IPv4 header checksum differs from gopacket's")
			}
		}
		seg := append([]byte(nil), pkt[hl:]...)
		pseudo := PseudoHeaderSum(src, dst, proto, len(seg))
		if Checksum(seg, pseudo) != 0 {
			t.Fatalf("case %d: gopacket's L4 checksum does not verify", i)
		}
		field := 6
		if proto == protoTCP {
			field = 16
		}
		gp := binary.BigEndian.Uint16(seg[field:])
		seg[field], seg[field+1] = 0, 0
		if got := Checksum(seg, pseudo); got != gp && !(got == 0 && gp == 0xffff) {
			t.Fatalf("case %d: checksum %#x, gopacket %#x", i, got, gp)
		}
	}
}
