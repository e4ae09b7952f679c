package packet

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// gopacketVerdict is what gopacket's decoders make of an outer frame.
type gopacketVerdict int

const (
	// gopacketVXLAN: well-formed headers down to VXLAN on UDP to testPort, in
	// the layout ParseOuter takes (at most one tag, no IPv6 extension header,
	// no fragment).
	gopacketVXLAN gopacketVerdict = iota
	// gopacketOther: well-formed as far as decoded, but not that.
	gopacketOther
	// gopacketMalformed: a decoder refused a header or found it truncated.
	gopacketMalformed
	// gopacketStricter: a decoder refused what IP allows: an IPv4 option of
	// length 2 (RFC 791 lets an option carry no data; Linux takes it).
	gopacketStricter
)

// truncation is a gopacket.DecodeFeedback that remembers truncation.
type truncation bool

func (t *truncation) SetTruncated() { *t = true }

// gopacketOuter is what gopacket decodes from an outer frame.
type gopacketOuter struct {
	src, dst     []byte
	tos, ttl     uint8
	sport, dport uint16
	vx           layers.VXLAN
	innerOffset  int
}

// decodeOuterGopacket decodes an outer VXLAN frame with gopacket's own layer
// decoders, one header at a time in the order ParseOuter reads them, so that
// the inner frame (gopacket would go on decoding it) plays no part.
func decodeOuterGopacket(frame []byte) (gopacketOuter, gopacketVerdict, error) {
	var (
		g   gopacketOuter
		tr  truncation
		eth layers.Ethernet
	)
	if err := eth.DecodeFromBytes(frame, &tr); err != nil {
		return g, gopacketMalformed, err
	}
	next, payload := eth.EthernetType, eth.Payload
	if next == layers.EthernetTypeDot1Q || next == layers.EthernetTypeQinQ {
		var tag layers.Dot1Q
		if err := tag.DecodeFromBytes(payload, &tr); err != nil {
			return g, gopacketMalformed, err
		}
		next, payload = tag.Type, tag.Payload
	}
	switch next {
	case layers.EthernetTypeIPv4:
		var ip layers.IPv4
		if err := ip.DecodeFromBytes(payload, &tr); err != nil {
			if strings.Contains(err.Error(), "Must be greater than 2") {
				return g, gopacketStricter, err
			}
			return g, gopacketMalformed, err
		}
		if tr || ip.Version != 4 {
			return g, gopacketMalformed, nil
		}
		if ip.Flags&layers.IPv4MoreFragments != 0 || ip.FragOffset != 0 || ip.Protocol != layers.IPProtocolUDP {
			return g, gopacketOther, nil
		}
		g.src, g.dst, g.tos, g.ttl, payload = ip.SrcIP, ip.DstIP, ip.TOS, ip.TTL, ip.Payload
	case layers.EthernetTypeIPv6:
		var ip layers.IPv6
		if err := ip.DecodeFromBytes(payload, &tr); err != nil {
			return g, gopacketMalformed, err
		}
		if tr || ip.Version != 6 {
			return g, gopacketMalformed, nil
		}
		if ip.NextHeader != layers.IPProtocolUDP {
			return g, gopacketOther, nil
		}
		g.src, g.dst, g.tos, g.ttl, payload = ip.SrcIP, ip.DstIP, ip.TrafficClass, ip.HopLimit, ip.Payload
	default:
		return g, gopacketOther, nil
	}
	var udp layers.UDP
	if err := udp.DecodeFromBytes(payload, &tr); err != nil {
		return g, gopacketMalformed, err
	}
	if tr || udp.Length == 0 { // 0 is a jumbogram's, impossible in these frames
		return g, gopacketMalformed, nil
	}
	if udp.DstPort != testPort {
		return g, gopacketOther, nil
	}
	g.sport, g.dport = uint16(udp.SrcPort), uint16(udp.DstPort)
	if err := g.vx.DecodeFromBytes(udp.Payload, &tr); err != nil {
		return g, gopacketMalformed, err
	}
	// The payload shares frame's backing array: its offset is the difference
	// of capacities.
	g.innerOffset = cap(frame) - cap(g.vx.Payload)
	return g, gopacketVXLAN, nil
}

// FuzzParseOuterGopacket is a differential fuzz target of ParseOuter against
// gopacket's decoders: a frame gopacket finds malformed, or not VXLAN to our
// port, must be dropped; a frame ParseOuter accepts must be VXLAN to gopacket
// too, with the same addresses, ports, VNI and inner frame at the same offset.
// ParseOuter may drop more (checksums, reserved bits, VNI 0, UDP length short
// of the IP payload): gopacket verifies none of those.
func FuzzParseOuterGopacket(f *testing.F) {
	for i, s := range outerSeeds(f) {
		f.Add(s, i%2 == 0)
	}
	f.Fuzz(func(t *testing.T, frame []byte, fix bool) {
		if fix {
			refix(frame)
		}
		var o Outer
		inner, r := ParseOuter(frame, testPort, &o)
		g, verdict, err := decodeOuterGopacket(frame)
		switch verdict {
		case gopacketMalformed, gopacketOther:
			if r == DropNone {
				t.Fatalf("accepted, but gopacket says %d (%v)", verdict, err)
			}
			return
		case gopacketStricter:
			return
		}
		if r != DropNone {
			return
		}
		if !bytes.Equal(g.src, o.Src.AsSlice()) || !bytes.Equal(g.dst, o.Dst.AsSlice()) {
			t.Fatalf("addresses %v -> %v, gopacket %v -> %v", o.Src, o.Dst, g.src, g.dst)
		}
		if g.tos != o.TOS || g.ttl != o.TTL {
			t.Fatalf("tos/ttl %#x/%d, gopacket %#x/%d", o.TOS, o.TTL, g.tos, g.ttl)
		}
		if g.sport != o.SrcPort || g.dport != o.DstPort || g.vx.VNI != o.VNI || !g.vx.ValidIDFlag {
			t.Fatalf("ports %d -> %d vni %d, gopacket %d -> %d vni %d I %v", o.SrcPort, o.DstPort, o.VNI,
				g.sport, g.dport, g.vx.VNI, g.vx.ValidIDFlag)
		}
		if g.innerOffset != o.InnerOffset || !bytes.Equal(g.vx.Payload, inner) {
			t.Fatalf("inner at %d, %d bytes; gopacket's VXLAN payload at %d, %d bytes",
				o.InnerOffset, len(inner), g.innerOffset, len(g.vx.Payload))
		}
	})
}

// FuzzIsUDPTo checks IsUDPTo against gopacket's full decoding: whenever
// gopacket finds UDP to the port behind Ethernet, tags, one IP header of the
// right version and IPv6 extension headers (what a receiving Linux stack
// walks), IsUDPTo must say so too, or a workload could tunnel past it. The
// converse need not hold: IsUDPTo also flags first fragments too short to show
// the port, and does not parse IPv4 options gopacket refuses.
func FuzzIsUDPTo(f *testing.F) {
	for _, s := range portSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		got := IsUDPTo(frame, testPort)
		p := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.DecodeOptions{NoCopy: true, Lazy: false})
		ips := 0
	walk:
		for _, l := range p.Layers() {
			switch l := l.(type) {
			case *layers.Ethernet, *layers.Dot1Q, *layers.IPv6Routing, *layers.IPv6Destination, *layers.IPSecAH:
			case *layers.IPv4:
				if ips++; l.Version != 4 {
					return
				}
			case *layers.IPv6:
				if ips++; l.Version != 6 {
					return
				}
			case *layers.UDP:
				if ips == 1 && l.DstPort == testPort && !got {
					t.Fatalf("gopacket finds UDP to %d (%v), IsUDPTo does not", testPort, p.Layers())
				}
				break walk
			default:
				return // LLC, SNAP, other tunnels: not what a host decapsulates unasked
			}
		}
	})
}

// portSeeds are frames of TestIsUDPTo's kinds for FuzzIsUDPTo.
func portSeeds(f testing.TB) [][]byte {
	vx := uint16(testPort)
	q := []layers.EthernetType{layers.EthernetTypeDot1Q}
	return [][]byte{
		buildPortFrame(f, portSpec{dport: vx}),
		buildPortFrame(f, portSpec{dport: 53, tags: q}),
		buildPortFrame(f, portSpec{dport: vx, options: []layers.IPv4Option{{OptionType: 0x94, OptionLength: 4, OptionData: []byte{0, 0}}}}),
		buildPortFrame(f, portSpec{dport: vx, flags: layers.IPv4MoreFragments}),
		buildPortFrame(f, portSpec{dport: vx, fragOff: 3}),
		buildPortFrame(f, portSpec{v6: true, dport: vx}),
		buildPortFrame(f, portSpec{v6: true, dport: vx, extNext: 0, ext: cat(hopByHop(60), destOpts(43), routing(51), authHeader(17))}),
		buildPortFrame(f, portSpec{v6: true, dport: vx, ext: fragmentHeader(17, 0, true), extNext: 44}),
		buildPortFrame(f, portSpec{v6: true, dport: vx, proto: layers.IPProtocolTCP}),
	}
}
