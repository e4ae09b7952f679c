package packet

import (
	"bytes"
	"net"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

var (
	askerMAC    = net.HardwareAddr{0x02, 0, 0, 0, 0x0c, 0x01}
	neighMAC    = [6]byte{0x02, 0xaa, 0, 0, 0, 0x01}
	askerIP4    = netip.MustParseAddr("10.42.0.2")
	neighIP4    = netip.MustParseAddr("10.42.0.1")
	askerIP6    = netip.MustParseAddr("fe80::1")
	neighIP6    = netip.MustParseAddr("fd42::1")
	solicitedMC = net.HardwareAddr{0x33, 0x33, 0xff, 0, 0, 1}
)

func arpRequestFrame(t testing.TB, sender, target netip.Addr) []byte {
	return mustSerialize(t,
		&layers.Ethernet{SrcMAC: askerMAC, DstMAC: layers.EthernetBroadcast, EthernetType: layers.EthernetTypeARP},
		&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			Operation: layers.ARPRequest, SourceHwAddress: askerMAC, SourceProtAddress: sender.AsSlice(),
			DstHwAddress: make([]byte, 6), DstProtAddress: target.AsSlice()})
}

func nsFrame(t testing.TB, src, target netip.Addr, hop uint8) []byte {
	ip := &layers.IPv6{Version: 6, HopLimit: hop, NextHeader: layers.IPProtocolICMPv6,
		SrcIP: src.AsSlice(), DstIP: net.ParseIP("ff02::1:ff00:1")}
	icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeNeighborSolicitation, 0)}
	if err := icmp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	ns := &layers.ICMPv6NeighborSolicitation{TargetAddress: target.AsSlice(),
		Options: layers.ICMPv6Options{{Type: layers.ICMPv6OptSourceAddress, Data: askerMAC}}}
	return mustSerialize(t, &layers.Ethernet{SrcMAC: askerMAC, DstMAC: solicitedMC, EthernetType: layers.EthernetTypeIPv6}, ip, icmp, ns)
}

func TestNeighRequest(t *testing.T) {
	badSum := nsFrame(t, askerIP6, neighIP6, 255)
	badSum[len(badSum)-1] ^= 1
	for _, c := range []struct {
		name  string
		frame []byte
		want  netip.Addr
	}{
		{"arp request", arpRequestFrame(t, askerIP4, neighIP4), neighIP4},
		{"arp probe", arpRequestFrame(t, netip.IPv4Unspecified(), neighIP4), netip.Addr{}},
		{"gratuitous arp", arpRequestFrame(t, neighIP4, neighIP4), netip.Addr{}},
		{"arp short", arpRequestFrame(t, askerIP4, neighIP4)[:40], netip.Addr{}},
		{"neighbour solicitation", nsFrame(t, askerIP6, neighIP6, 255), neighIP6},
		{"ns for duplicate address detection", nsFrame(t, netip.IPv6Unspecified(), neighIP6, 255), netip.Addr{}},
		{"ns from beyond the link", nsFrame(t, askerIP6, neighIP6, 64), netip.Addr{}},
		{"ns with a bad checksum", badSum, netip.Addr{}},
		{"ns for a multicast address", nsFrame(t, askerIP6, netip.MustParseAddr("ff02::1"), 255), netip.Addr{}},
		{"ipv4", buildInner(t, false, 1, 2, 10), netip.Addr{}},
	} {
		got, ok := NeighRequest(c.frame)
		if ok != c.want.IsValid() || got != c.want {
			t.Errorf("%s: %v %v, want %v", c.name, got, ok, c.want)
		}
	}
}

func TestNeighReplyARP(t *testing.T) {
	req := arpRequestFrame(t, askerIP4, neighIP4)
	buf := make([]byte, NeighReplyLen)
	n := NeighReply(buf, req, neighMAC)
	p := gopacket.NewPacket(buf[:n], layers.LayerTypeEthernet, gopacket.Default)
	eth, _ := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	arp, _ := p.Layer(layers.LayerTypeARP).(*layers.ARP)
	if eth == nil || arp == nil {
		t.Fatalf("not an ARP frame: %v", p)
	}
	if !bytes.Equal(eth.DstMAC, askerMAC) || !bytes.Equal(eth.SrcMAC, neighMAC[:]) || arp.Operation != layers.ARPReply ||
		!bytes.Equal(arp.SourceHwAddress, neighMAC[:]) || !bytes.Equal(arp.SourceProtAddress, neighIP4.AsSlice()) ||
		!bytes.Equal(arp.DstHwAddress, askerMAC) || !bytes.Equal(arp.DstProtAddress, askerIP4.AsSlice()) {
		t.Errorf("reply %v / %+v", eth, arp)
	}
	if _, ok := NeighRequest(buf[:n]); ok {
		t.Error("the reply is taken for a request")
	}
	if NeighReply(buf[:NeighReplyLen-1], req, neighMAC) != 0 {
		t.Error("a short buffer was written")
	}
}

func TestNeighReplyNA(t *testing.T) {
	req := nsFrame(t, askerIP6, neighIP6, 255)
	buf := make([]byte, NeighReplyLen)
	n := NeighReply(buf, req, neighMAC)
	p := gopacket.NewPacket(buf[:n], layers.LayerTypeEthernet, gopacket.Default)
	if el := p.ErrorLayer(); el != nil {
		t.Fatalf("gopacket: %v", el.Error())
	}
	eth := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	ip := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
	na, _ := p.Layer(layers.LayerTypeICMPv6NeighborAdvertisement).(*layers.ICMPv6NeighborAdvertisement)
	if na == nil {
		t.Fatalf("not a neighbour advertisement: %v", p)
	}
	if !bytes.Equal(eth.DstMAC, askerMAC) || !bytes.Equal(eth.SrcMAC, neighMAC[:]) || ip.HopLimit != 255 ||
		!ip.SrcIP.Equal(neighIP6.AsSlice()) || !ip.DstIP.Equal(askerIP6.AsSlice()) ||
		!na.TargetAddress.Equal(neighIP6.AsSlice()) || !na.Solicited() || !na.Override() || na.Router() ||
		len(na.Options) != 1 || na.Options[0].Type != layers.ICMPv6OptTargetAddress || !bytes.Equal(na.Options[0].Data, neighMAC[:]) {
		t.Errorf("reply %v\n%+v\n%+v", eth, ip, na)
	}
	icmp := buf[ethHeaderLen+ipv6HeaderLen : n]
	if naiveSum(icmp, naivePseudo(neighIP6, askerIP6, protoICMPv6, len(icmp))) != 0xffff {
		t.Error("icmpv6 checksum does not verify")
	}
}

// FuzzNeighRequest: NeighRequest never reads past the frame, and what it accepts NeighReply
// answers with a frame gopacket decodes and NeighRequest does not take for a question.
func FuzzNeighRequest(f *testing.F) {
	f.Add(arpRequestFrame(f, askerIP4, neighIP4))
	f.Add(nsFrame(f, askerIP6, neighIP6, 255))
	f.Add(nsFrame(f, netip.IPv6Unspecified(), neighIP6, 255))
	f.Add(buildInner(f, true, 1, 2, 0))
	buf := make([]byte, NeighReplyLen)
	f.Fuzz(func(t *testing.T, frame []byte) {
		target, ok := NeighRequest(frame)
		if !ok {
			return
		}
		if !target.IsValid() || target.IsMulticast() || target.IsUnspecified() {
			t.Fatalf("accepted target %v", target)
		}
		n := NeighReply(buf, frame, neighMAC)
		if n == 0 {
			t.Fatal("no reply")
		}
		p := gopacket.NewPacket(buf[:n], layers.LayerTypeEthernet, gopacket.Default)
		if el := p.ErrorLayer(); el != nil {
			t.Fatalf("gopacket: %v", el.Error())
		}
		if _, again := NeighRequest(buf[:n]); again {
			t.Fatal("the reply is taken for a request")
		}
	})
}
