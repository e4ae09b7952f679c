//go:build linux

package bpf

import (
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// XDP actions (enum xdp_action).
const (
	xdpAborted  = 0
	xdpDrop     = 1
	xdpPass     = 2
	xdpRedirect = 4
)

const testPort = 4789

var (
	localV4    = netip.MustParseAddr("192.0.2.1")
	remoteV4   = netip.MustParseAddr("192.0.2.2")
	otherV4    = netip.MustParseAddr("192.0.2.3")
	strangerV4 = netip.MustParseAddr("198.51.100.66")
	localV6    = netip.MustParseAddr("2001:db8::1")
	remoteV6   = netip.MustParseAddr("2001:db8::2")
	strangerV6 = netip.MustParseAddr("2001:db8::66")

	srcMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x02}
	dstMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}
)

func testConfig() Config {
	return Config{
		Port:    testPort,
		Locals:  []netip.Addr{localV4, localV6},
		Remotes: []netip.Addr{remoteV4, remoteV6},
	}
}

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (CAP_BPF, CAP_NET_ADMIN) to load XDP programs")
	}
}

// loadProgram loads a fresh Program (fresh counters), configured with cfg
// unless cfg is nil, and closes it at the end of the test.
func loadProgram(t testing.TB, cfg *Config) *Program {
	t.Helper()
	requireRoot(t)
	p, err := Load()
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	if cfg != nil {
		if err := p.Configure(*cfg); err != nil {
			t.Fatalf("Configure: %v", err)
		}
	}
	return p
}

// run runs the program once on frame through BPF_PROG_TEST_RUN (receive
// queue 0) and returns the action and the counters it moved.
func run(t testing.TB, p *Program, frame []byte) (uint32, Counters) {
	t.Helper()
	before, err := p.Counters()
	if err != nil {
		t.Fatalf("Counters: %v", err)
	}
	ret, err := p.objs.VxdpRx.Run(&ebpf.RunOptions{Data: frame})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	after, err := p.Counters()
	if err != nil {
		t.Fatalf("Counters: %v", err)
	}
	return ret, Counters{
		Passed:            after.Passed - before.Passed,
		Redirected:        after.Redirected - before.Redirected,
		DropUnknownRemote: after.DropUnknownRemote - before.DropUnknownRemote,
		DropNoSocket:      after.DropNoSocket - before.DropNoSocket,
		DropFragment:      after.DropFragment - before.DropFragment,
		RedirectFailed:    after.RedirectFailed - before.RedirectFailed,
		DropIPv6Ext:       after.DropIPv6Ext - before.DropIPv6Ext,
	}
}

// frameSpec describes a test frame; the zero value plus addresses is VXLAN.
type frameSpec struct {
	src, dst netip.Addr
	dport    uint16
	tags     []layers.EthernetType // VLAN tag ethertypes, outermost first
	tcp      bool                  // TCP instead of UDP
	noVXLAN  bool                  // bare UDP header, no VXLAN header or payload
	options  []layers.IPv4Option
	flags    layers.IPv4Flag
	fragOff  uint16 // in 8-byte units
	hopByHop bool   // IPv6 hop-by-hop extension header before UDP
	// ext6 are IPv6 extension header types (0, 43, 44, 51, 60, or 50 for
	// ESP), in order, between the IPv6 header and UDP; a fragment header
	// carries frag6Off (8-byte units) and frag6More.
	ext6      []uint8
	frag6Off  uint16
	frag6More bool
}

// ipv6ExtChain returns the raw extension headers of types, each naming the
// next one and the last naming last.
func ipv6ExtChain(types []uint8, last uint8, fragOff uint16, more bool) []byte {
	var out []byte
	for i, typ := range types {
		next := last
		if i+1 < len(types) {
			next = types[i+1]
		}
		switch typ {
		case 44: // fragment: offset, M flag, identification
			v := fragOff << 3
			if more {
				v |= 1
			}
			out = append(out, next, 0, byte(v>>8), byte(v), 0, 0, 0, 9)
		case 51: // AH, 12 bytes: payload length 1, SPI 256, sequence 1
			out = append(out, next, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1)
		case 43: // routing type 4, segments left 0
			out = append(out, next, 0, 4, 0, 0, 0, 0, 0)
		default: // options headers with one PadN; for ESP its SPI and sequence
			out = append(out, next, 0, 1, 4, 0, 0, 0, 0)
		}
	}
	return out
}

func buildFrame(t testing.TB, s frameSpec) []byte {
	t.Helper()
	var (
		ls  []gopacket.SerializableLayer
		nwl gopacket.NetworkLayer
		l3  gopacket.SerializableLayer
		et  layers.EthernetType
		l4p layers.IPProtocol = layers.IPProtocolUDP
	)
	if s.tcp {
		l4p = layers.IPProtocolTCP
	}
	if s.dst.Is4() {
		et = layers.EthernetTypeIPv4
		ip := &layers.IPv4{
			Version: 4, TTL: 64, Protocol: l4p, Id: 7,
			SrcIP: s.src.AsSlice(), DstIP: s.dst.AsSlice(),
			Options: s.options, Flags: s.flags, FragOffset: s.fragOff,
		}
		nwl, l3 = ip, ip
	} else {
		et = layers.EthernetTypeIPv6
		ip := &layers.IPv6{
			Version: 6, HopLimit: 64, NextHeader: l4p,
			SrcIP: s.src.AsSlice(), DstIP: s.dst.AsSlice(),
		}
		if s.hopByHop {
			ip.NextHeader = layers.IPProtocolIPv6HopByHop
		}
		if len(s.ext6) > 0 {
			ip.NextHeader = layers.IPProtocol(s.ext6[0])
		}
		nwl, l3 = ip, ip
	}

	first := et
	if len(s.tags) > 0 {
		first = s.tags[0]
	}
	ls = append(ls, &layers.Ethernet{SrcMAC: srcMAC, DstMAC: dstMAC, EthernetType: first})
	for i := range s.tags {
		next := et
		if i+1 < len(s.tags) {
			next = s.tags[i+1]
		}
		ls = append(ls, &layers.Dot1Q{VLANIdentifier: uint16(100 + i), Type: next})
	}
	ls = append(ls, l3)
	if s.hopByHop {
		// Next header UDP, length 0 (8 bytes), PadN of 4 bytes of padding.
		ls = append(ls, gopacket.Payload{byte(l4p), 0, 1, 4, 0, 0, 0, 0})
	}
	if len(s.ext6) > 0 {
		ls = append(ls, gopacket.Payload(ipv6ExtChain(s.ext6, uint8(l4p), s.frag6Off, s.frag6More)))
	}
	if s.tcp {
		tcp := &layers.TCP{SrcPort: 40000, DstPort: layers.TCPPort(s.dport), SYN: true, Window: 1024}
		if err := tcp.SetNetworkLayerForChecksum(nwl); err != nil {
			t.Fatal(err)
		}
		ls = append(ls, tcp)
	} else {
		udp := &layers.UDP{SrcPort: 54321, DstPort: layers.UDPPort(s.dport)}
		if err := udp.SetNetworkLayerForChecksum(nwl); err != nil {
			t.Fatal(err)
		}
		ls = append(ls, udp)
		if !s.noVXLAN {
			ls = append(ls,
				&layers.VXLAN{ValidIDFlag: true, VNI: 42},
				&layers.Ethernet{SrcMAC: srcMAC, DstMAC: dstMAC, EthernetType: layers.EthernetTypeIPv4},
				gopacket.Payload(make([]byte, 64)))
		}
	}
	return serialize(t, ls...)
}

func serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, ls...); err != nil {
		t.Fatalf("serialize: %v", err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

func vxlan(t testing.TB, src, dst netip.Addr) []byte {
	return buildFrame(t, frameSpec{src: src, dst: dst, dport: testPort})
}

func arpFrame(t testing.TB) []byte {
	return serialize(t,
		&layers.Ethernet{SrcMAC: srcMAC, DstMAC: layers.EthernetBroadcast, EthernetType: layers.EthernetTypeARP},
		&layers.ARP{
			AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4,
			HwAddressSize: 6, ProtAddressSize: 4, Operation: layers.ARPRequest,
			SourceHwAddress: srcMAC, SourceProtAddress: remoteV4.AsSlice(),
			DstHwAddress: make([]byte, 6), DstProtAddress: localV4.AsSlice(),
		})
}

// refClassify is an independent model of the program's decision, written
// from the specification, for the fuzz target and as a check on the tables.
// It assumes no socket is registered (queue 0 of BPF_PROG_TEST_RUN).
func refClassify(f []byte, port uint16, locals, remotes map[[16]byte]bool) xdpVxdpReason {
	be16 := func(b []byte) uint16 { return binary.BigEndian.Uint16(b) }
	mapped := func(b []byte) [16]byte {
		var a [16]byte
		a[10], a[11] = 0xff, 0xff
		copy(a[12:], b)
		return a
	}
	if len(f) < 14 {
		return xdpVxdpReasonVXDP_PASSED
	}
	et, off := be16(f[12:]), 14
	if et == 0x8100 || et == 0x88a8 {
		if len(f) < 18 {
			return xdpVxdpReasonVXDP_PASSED
		}
		et, off = be16(f[16:]), 18
	}
	if port == 0 {
		return xdpVxdpReasonVXDP_PASSED
	}
	ip := f[off:]
	var src [16]byte
	switch et {
	case 0x0800:
		if len(ip) < 20 || ip[0]>>4 != 4 || ip[9] != 17 {
			return xdpVxdpReasonVXDP_PASSED
		}
		ihl := int(ip[0]&0xf) * 4
		frag := be16(ip[6:])
		if ihl < 20 || frag&0x1fff != 0 || len(ip) < ihl+8 || be16(ip[ihl+2:]) != port ||
			!locals[mapped(ip[16:20])] {
			return xdpVxdpReasonVXDP_PASSED
		}
		if frag&0x2000 != 0 {
			return xdpVxdpReasonVXDP_DROP_FRAGMENT
		}
		src = mapped(ip[12:16])
	case 0x86dd:
		if len(ip) < 40 || ip[0]>>4 != 6 {
			return xdpVxdpReasonVXDP_PASSED
		}
		// Up to 8 extension headers before UDP; a first fragment or any
		// extension header makes VXLAN to us a drop of its own.
		next, l4, ext, fragment := ip[6], ip[40:], false, false
		for i := 0; i < 8 && next != 17; i++ {
			if len(l4) < 2 {
				return xdpVxdpReasonVXDP_PASSED
			}
			n := 0
			switch next {
			case 0, 43, 60:
				n = (int(l4[1]) + 1) * 8
			case 51:
				n = (int(l4[1]) + 2) * 4
			case 44:
				if len(l4) < 8 || be16(l4[2:])&0xfff8 != 0 {
					return xdpVxdpReasonVXDP_PASSED
				}
				n, fragment = 8, true
			default:
				return xdpVxdpReasonVXDP_PASSED
			}
			if n > len(l4) {
				// The program's next bounds check fails as well: whatever
				// it reads next lies beyond the frame.
				return xdpVxdpReasonVXDP_PASSED
			}
			next, l4, ext = l4[0], l4[n:], true
		}
		if next != 17 || len(l4) < 8 || be16(l4[2:]) != port || !locals[[16]byte(ip[24:40])] {
			return xdpVxdpReasonVXDP_PASSED
		}
		if fragment {
			return xdpVxdpReasonVXDP_DROP_FRAGMENT
		}
		if ext {
			return xdpVxdpReasonVXDP_DROP_IPV6EXT
		}
		src = [16]byte(ip[8:24])
		if netip.AddrFrom16(src).Is4In6() {
			return xdpVxdpReasonVXDP_DROP_UNKNOWN_REMOTE
		}
	default:
		return xdpVxdpReasonVXDP_PASSED
	}
	if !remotes[src] {
		return xdpVxdpReasonVXDP_DROP_UNKNOWN_REMOTE
	}
	return xdpVxdpReasonVXDP_DROP_NO_SOCKET
}

func addrSet(addrs ...netip.Addr) map[[16]byte]bool {
	m := make(map[[16]byte]bool)
	for _, a := range addrs {
		m[a.As16()] = true
	}
	return m
}

// reasonCounters is the Counters delta of one packet counted under r.
func reasonCounters(r xdpVxdpReason) Counters {
	var c Counters
	switch r {
	case xdpVxdpReasonVXDP_PASSED:
		c.Passed = 1
	case xdpVxdpReasonVXDP_REDIRECTED:
		c.Redirected = 1
	case xdpVxdpReasonVXDP_DROP_UNKNOWN_REMOTE:
		c.DropUnknownRemote = 1
	case xdpVxdpReasonVXDP_DROP_NO_SOCKET:
		c.DropNoSocket = 1
	case xdpVxdpReasonVXDP_DROP_FRAGMENT:
		c.DropFragment = 1
	case xdpVxdpReasonVXDP_REDIRECT_FAILED:
		c.RedirectFailed = 1
	case xdpVxdpReasonVXDP_DROP_IPV6EXT:
		c.DropIPv6Ext = 1
	}
	return c
}
