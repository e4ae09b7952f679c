package packet

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/google/gopacket/layers"
)

func TestParseOuterFields(t *testing.T) {
	routerAlert := layers.IPv4Option{OptionType: 0x94, OptionLength: 4, OptionData: []byte{0, 0}}
	timestamp := layers.IPv4Option{OptionType: 0x44, OptionLength: 12, OptionData: []byte{5, 0, 0, 0, 0, 1, 0, 0, 0, 2}}
	cases := []struct {
		name string
		mod  func(*outerSpec)
	}{
		{"ipv4", func(*outerSpec) {}},
		{"ipv4 zero udp checksum", func(s *outerSpec) { s.zeroUDPCsum = true }},
		{"ipv4 802.1q", func(s *outerSpec) { s.tpid, s.vlanTCI = 0x8100, 0xa064 }},
		{"ipv4 802.1ad", func(s *outerSpec) { s.tpid, s.vlanTCI = 0x88a8, 0x0fff }},
		{"ipv4 options", func(s *outerSpec) { s.options = []layers.IPv4Option{routerAlert} }},
		{"ipv4 options 802.1q", func(s *outerSpec) {
			s.options = []layers.IPv4Option{routerAlert, timestamp}
			s.tpid, s.vlanTCI = 0x8100, 7
		}},
		{"ipv4 padded", func(s *outerSpec) { s.pad = 17 }},
		{"ipv4 inner ipv6", func(s *outerSpec) { s.inner = buildInner(t, true, 1, 2, 0) }},
		{"ipv4 max vni", func(s *outerSpec) { s.vni = 0xffffff }},
		{"ipv6", func(s *outerSpec) { s.v6 = true }},
		{"ipv6 zero udp checksum", func(s *outerSpec) { s.v6, s.zeroUDPCsum = true, true }},
		{"ipv6 802.1q padded", func(s *outerSpec) { s.v6, s.tpid, s.vlanTCI, s.pad = true, 0x8100, 100, 4 }},
		{"ipv6 large inner", func(s *outerSpec) { s.v6, s.inner = true, buildInner(t, true, 9, 10, 1400) }},
		{"ipv6 empty inner", func(s *outerSpec) { s.v6, s.inner = true, nil }},
		{"ipv4 options nop and end", func(s *outerSpec) {
			s.options = []layers.IPv4Option{{OptionType: 1}, routerAlert, {OptionType: 0}}
		}},
		{"ipv4 options largest header", func(s *outerSpec) {
			// 40 bytes of options, IHL 15: a record route with room for 9 addresses.
			s.options = []layers.IPv4Option{{OptionType: 7, OptionLength: 39, OptionData: append([]byte{4}, make([]byte, 36)...)}}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := defaultSpec(t, false)
			tc.mod(&s)
			frame := buildOuter(t, s)
			var o Outer
			inner, r := ParseOuter(frame, testPort, &o)
			if r != DropNone {
				t.Fatalf("ParseOuter: drop %v, want none", r)
			}
			if !bytes.Equal(inner, s.inner) {
				t.Fatalf("inner = %x, want %x", inner, s.inner)
			}
			if o.InnerOffset+len(inner)+s.pad != len(frame) {
				t.Errorf("InnerOffset %d + inner %d + pad %d != frame %d", o.InnerOffset, len(inner), s.pad, len(frame))
			}
			if len(inner) > 0 && &inner[0] != &frame[o.InnerOffset] {
				t.Errorf("inner is not a sub-slice of frame at InnerOffset")
			}
			if o.DstMAC != outerDstMAC || o.SrcMAC != outerSrcMAC {
				t.Errorf("MACs %x -> %x, want %x -> %x", o.SrcMAC, o.DstMAC, outerSrcMAC, outerDstMAC)
			}
			if o.VLANTPID != s.tpid || o.VLANTCI != s.vlanTCI {
				t.Errorf("tag %#x/%#x, want %#x/%#x", o.VLANTPID, o.VLANTCI, s.tpid, s.vlanTCI)
			}
			wantSrc, wantDst, wantID := outerSrc4, outerDst4, s.id
			if s.v6 {
				wantSrc, wantDst, wantID = outerSrc6, outerDst6, 0
			}
			if o.Src != wantSrc || o.Dst != wantDst {
				t.Errorf("addresses %v -> %v, want %v -> %v", o.Src, o.Dst, wantSrc, wantDst)
			}
			if o.TOS != s.tos || o.TTL != s.ttl || o.IPID != wantID {
				t.Errorf("tos/ttl/id %#x/%d/%#x, want %#x/%d/%#x", o.TOS, o.TTL, o.IPID, s.tos, s.ttl, wantID)
			}
			if o.SrcPort != s.srcPort || o.DstPort != s.dstPort {
				t.Errorf("ports %d -> %d, want %d -> %d", o.SrcPort, o.DstPort, s.srcPort, s.dstPort)
			}
			u := udpOffset(frame)
			if got := binary.BigEndian.Uint16(frame[u+6:]); o.UDPChecksum != got || (s.zeroUDPCsum != (got == 0)) {
				t.Errorf("UDPChecksum %#x, frame has %#x, zero wanted %v", o.UDPChecksum, got, s.zeroUDPCsum)
			}
			if o.Flags != 0x08 || o.Reserved1 != 0 || o.Reserved2 != 0 || o.VNI != s.vni {
				t.Errorf("vxlan flags %#x res %#x/%#x vni %#x, want 0x08 0/0 %#x", o.Flags, o.Reserved1, o.Reserved2, o.VNI, s.vni)
			}
			if r := CheckInner(inner); len(s.inner) > 0 && r != DropNone {
				t.Errorf("CheckInner: drop %v", r)
			}
		})
	}
}

// setUDPLength rewrites the IP and UDP lengths so that the UDP payload is n
// bytes (the frame keeps its bytes as padding) and fixes the checksums.
func setUDPLength(frame []byte, n int) {
	l3 := l3Offset(frame)
	u := udpOffset(frame)
	if isV6(frame) {
		binary.BigEndian.PutUint16(frame[l3+4:], uint16(8+n))
	} else {
		binary.BigEndian.PutUint16(frame[l3+2:], uint16(u-l3+8+n))
	}
	binary.BigEndian.PutUint16(frame[u+4:], uint16(8+n))
	refix(frame)
}

func TestParseOuterDropReasons(t *testing.T) {
	v4, v6 := false, true
	type tc struct {
		name   string
		v6     bool
		spec   func(*outerSpec)
		mutate func(f []byte) []byte // the IP and UDP checksums are not fixed after it
		fix    bool                  // refix after mutate
		policy Policy
		want   DropReason
	}
	l3 := func(f []byte) []byte { return f[l3Offset(f):] }
	udp := func(f []byte) []byte { return f[udpOffset(f):] }
	vx := func(f []byte) []byte { return f[udpOffset(f)+8:] }
	tagged := func(s *outerSpec) { s.tpid, s.vlanTCI = 0x8100, 5 }
	zeroCsum := func(s *outerSpec) { s.zeroUDPCsum = true }
	withOption := func(s *outerSpec) {
		s.options = []layers.IPv4Option{{OptionType: 0x94, OptionLength: 4, OptionData: []byte{0, 0}}}
	}
	// setOptions overwrites the 4 option bytes of a withOption frame.
	setOptions := func(b ...byte) func([]byte) []byte {
		return func(f []byte) []byte { copy(l3(f)[20:24], b); return f }
	}
	cases := []tc{
		{name: "valid v4", v6: v4, want: DropNone},
		{name: "valid v6", v6: v6, want: DropNone},
		{name: "empty", mutate: func(f []byte) []byte { return f[:0] }, want: DropShortEthernet},
		{name: "13 bytes", mutate: func(f []byte) []byte { return f[:13] }, want: DropShortEthernet},
		{name: "tag cut", spec: tagged, mutate: func(f []byte) []byte { return f[:17] }, want: DropShortVLAN},
		{name: "tag only", spec: tagged, mutate: func(f []byte) []byte { return f[:18] }, want: DropShortIPv4},
		{name: "arp", mutate: func(f []byte) []byte { f[12], f[13] = 0x08, 0x06; return f }, want: DropNotIP},
		{name: "802.3 length", mutate: func(f []byte) []byte { f[12], f[13] = 0x05, 0xdc; return f }, want: DropNotIP},
		{name: "two tags", spec: tagged, mutate: func(f []byte) []byte { f[16], f[17] = 0x81, 0x00; return f }, want: DropNotIP},
		{name: "v4 19 bytes", mutate: func(f []byte) []byte { return f[:14+19] }, want: DropShortIPv4},
		{name: "v4 options cut", mutate: func(f []byte) []byte { f[14] = 0x46; return f[:14+22] }, want: DropShortIPv4},
		{name: "v4 version 6", mutate: func(f []byte) []byte { l3(f)[0] = 0x65; return f }, want: DropIPv4Version},
		{name: "v4 version 0", mutate: func(f []byte) []byte { l3(f)[0] = 0x05; return f }, want: DropIPv4Version},
		{name: "v4 ihl 4", mutate: func(f []byte) []byte { l3(f)[0] = 0x44; return f }, want: DropIPv4IHL},
		{name: "v4 ihl 0", mutate: func(f []byte) []byte { l3(f)[0] = 0x40; return f }, want: DropIPv4IHL},
		{name: "v4 checksum", mutate: func(f []byte) []byte { l3(f)[5] ^= 0x10; return f }, want: DropIPv4Checksum},
		{name: "v4 checksum zeroed", mutate: func(f []byte) []byte { l3(f)[10], l3(f)[11] = 0, 0; return f }, want: DropIPv4Checksum},
		{name: "v4 total beyond frame", mutate: func(f []byte) []byte {
			binary.BigEndian.PutUint16(l3(f)[2:], uint16(len(l3(f))+1))
			return f
		}, fix: true, want: DropIPv4TotalLength},
		{name: "v4 total below header", mutate: func(f []byte) []byte {
			binary.BigEndian.PutUint16(l3(f)[2:], 19)
			return f
		}, fix: true, want: DropIPv4TotalLength},
		{name: "v4 MF", mutate: func(f []byte) []byte { l3(f)[6] |= 0x20; return f }, fix: true, want: DropIPv4Fragment},
		{name: "v4 offset", mutate: func(f []byte) []byte { l3(f)[7] = 1; return f }, fix: true, want: DropIPv4Fragment},
		{name: "v4 DF accepted", mutate: func(f []byte) []byte { l3(f)[6] |= 0x40; return f }, fix: true, want: DropNone},
		{name: "v4 tcp", mutate: func(f []byte) []byte { l3(f)[9] = protoTCP; return f }, fix: true, want: DropNotUDP},
		{name: "v4 udp 7 bytes", spec: zeroCsum, mutate: func(f []byte) []byte {
			binary.BigEndian.PutUint16(l3(f)[2:], 20+7)
			return f
		}, fix: true, want: DropShortUDP},
		{name: "v4 udp length 7", mutate: func(f []byte) []byte { binary.BigEndian.PutUint16(udp(f)[4:], 7); return f }, want: DropUDPLength},
		{name: "v4 udp length beyond ip", mutate: func(f []byte) []byte {
			binary.BigEndian.PutUint16(udp(f)[4:], binary.BigEndian.Uint16(udp(f)[4:])+1)
			return f
		}, want: DropUDPLength},
		{name: "v4 udp length beyond ip into padding", spec: func(s *outerSpec) { s.pad = 10 }, mutate: func(f []byte) []byte {
			binary.BigEndian.PutUint16(udp(f)[4:], binary.BigEndian.Uint16(udp(f)[4:])+2)
			return f
		}, want: DropUDPLength},
		{name: "v4 udp length below ip payload", mutate: func(f []byte) []byte {
			binary.BigEndian.PutUint16(udp(f)[4:], binary.BigEndian.Uint16(udp(f)[4:])-1)
			return f
		}, fix: true, want: DropUDPLength},
		{name: "v4 udp length below ip payload, zero checksum", spec: zeroCsum, mutate: func(f []byte) []byte {
			binary.BigEndian.PutUint16(udp(f)[4:], binary.BigEndian.Uint16(udp(f)[4:])-8)
			return f
		}, fix: true, want: DropUDPLength},
		{name: "v4 option length 0", spec: withOption, mutate: setOptions(0x94, 0, 0, 0), fix: true, want: DropIPv4Options},
		{name: "v4 option length 1", spec: withOption, mutate: setOptions(0x94, 1, 0, 0), fix: true, want: DropIPv4Options},
		{name: "v4 option past header", spec: withOption, mutate: setOptions(0x94, 5, 0, 0), fix: true, want: DropIPv4Options},
		{name: "v4 option without length byte", spec: withOption, mutate: setOptions(1, 1, 1, 0x94), fix: true, want: DropIPv4Options},
		{name: "v4 option lsrr", spec: withOption, mutate: setOptions(131, 3, 4, 0), fix: true, want: DropIPv4Options},
		{name: "v4 option ssrr after nop", spec: withOption, mutate: setOptions(1, 137, 3, 4), fix: true, want: DropIPv4Options},
		{name: "v4 option length 2", spec: withOption, mutate: setOptions(0x94, 2, 1, 0), fix: true, want: DropNone},
		{name: "v4 option end, then padding", spec: withOption, mutate: setOptions(0, 0xff, 0xff, 0xff), fix: true, want: DropNone},
		{name: "v4 option lsrr after end is padding", spec: withOption, mutate: setOptions(1, 0, 131, 3), fix: true, want: DropNone},
		{name: "v4 port", spec: func(s *outerSpec) { s.dstPort = 4790 }, want: DropUDPPort},
		{name: "v4 udp checksum", mutate: func(f []byte) []byte { f[len(f)-1] ^= 1; return f }, want: DropUDPChecksum},
		{name: "v4 udp checksum field", mutate: func(f []byte) []byte { udp(f)[7] ^= 1; return f }, want: DropUDPChecksum},
		{name: "v4 zero checksum not verified", spec: zeroCsum, mutate: func(f []byte) []byte { f[len(f)-1] ^= 1; return f }, want: DropNone},
		{name: "v4 short vxlan", mutate: func(f []byte) []byte { setUDPLength(f, 7); return f }, want: DropShortVXLAN},
		{name: "v4 empty udp", mutate: func(f []byte) []byte { setUDPLength(f, 0); return f }, want: DropShortVXLAN},
		{name: "v4 vxlan header only", mutate: func(f []byte) []byte { setUDPLength(f, 8); return f }, want: DropNone},
		{name: "v4 I clear", mutate: func(f []byte) []byte { vx(f)[0] = 0; return f }, fix: true, want: DropVXLANFlags},
		{name: "v4 G only", mutate: func(f []byte) []byte { vx(f)[0] = 0x80; return f }, fix: true, want: DropVXLANFlags},
		{name: "v4 flag reserved", mutate: func(f []byte) []byte { vx(f)[0] = 0x0c; return f }, fix: true, want: DropVXLANReserved},
		{name: "v4 reserved1", mutate: func(f []byte) []byte { vx(f)[2] = 0x40; return f }, fix: true, want: DropVXLANReserved},
		{name: "v4 reserved2", mutate: func(f []byte) []byte { vx(f)[7] = 1; return f }, fix: true, want: DropVXLANReserved},
		{name: "v4 reserved allowed", mutate: func(f []byte) []byte {
			vx(f)[0], vx(f)[1], vx(f)[3], vx(f)[7] = 0xff, 1, 2, 3
			return f
		}, fix: true, policy: AllowVXLANReserved, want: DropNone},
		{name: "v4 vni 0", spec: func(s *outerSpec) { s.vni = 0 }, want: DropVNIZero},
		{name: "v4 vni 0 allowed", spec: func(s *outerSpec) { s.vni = 0 }, policy: AllowVNIZero, want: DropNone},
		{name: "v4 reserved and vni 0", spec: func(s *outerSpec) { s.vni = 0 }, mutate: func(f []byte) []byte { vx(f)[7] = 9; return f },
			fix: true, policy: AllowVXLANReserved, want: DropVNIZero},

		{name: "v6 39 bytes", v6: v6, mutate: func(f []byte) []byte { return f[:14+39] }, want: DropShortIPv6},
		{name: "v6 tagged 39 bytes", v6: v6, spec: tagged, mutate: func(f []byte) []byte { return f[:18+39] }, want: DropShortIPv6},
		{name: "v6 version 4", v6: v6, mutate: func(f []byte) []byte { l3(f)[0] = 0x40; return f }, want: DropIPv6Version},
		{name: "v6 payload beyond frame", v6: v6, mutate: func(f []byte) []byte {
			binary.BigEndian.PutUint16(l3(f)[4:], uint16(len(l3(f))-40+1))
			return f
		}, want: DropIPv6PayloadLength},
		{name: "v6 hop-by-hop", v6: v6, mutate: func(f []byte) []byte { l3(f)[6] = 0; return f }, want: DropIPv6ExtensionHeader},
		{name: "v6 fragment header", v6: v6, mutate: func(f []byte) []byte { l3(f)[6] = 44; return f }, want: DropIPv6ExtensionHeader},
		{name: "v6 destination options", v6: v6, mutate: func(f []byte) []byte { l3(f)[6] = 60; return f }, want: DropIPv6ExtensionHeader},
		{name: "v6 tcp", v6: v6, mutate: func(f []byte) []byte { l3(f)[6] = protoTCP; return f }, want: DropNotUDP},
		{name: "v6 no next header", v6: v6, mutate: func(f []byte) []byte { l3(f)[6] = 59; return f }, want: DropNotUDP},
		{name: "v6 udp 7 bytes", v6: v6, mutate: func(f []byte) []byte { binary.BigEndian.PutUint16(l3(f)[4:], 7); return f }, want: DropShortUDP},
		{name: "v6 payload 0", v6: v6, mutate: func(f []byte) []byte { binary.BigEndian.PutUint16(l3(f)[4:], 0); return f }, want: DropShortUDP},
		{name: "v6 udp length 0", v6: v6, mutate: func(f []byte) []byte { binary.BigEndian.PutUint16(udp(f)[4:], 0); return f }, want: DropUDPLength},
		{name: "v6 udp length beyond ip", v6: v6, spec: func(s *outerSpec) { s.pad = 6 }, mutate: func(f []byte) []byte {
			binary.BigEndian.PutUint16(udp(f)[4:], binary.BigEndian.Uint16(udp(f)[4:])+1)
			return f
		}, want: DropUDPLength},
		{name: "v6 port", v6: v6, spec: func(s *outerSpec) { s.dstPort = 8472 }, want: DropUDPPort},
		{name: "v6 udp checksum", v6: v6, mutate: func(f []byte) []byte { f[len(f)-3] ^= 0x80; return f }, want: DropUDPChecksum},
		{name: "v6 udp checksum address", v6: v6, mutate: func(f []byte) []byte { l3(f)[39] ^= 0x02; return f }, want: DropUDPChecksum},
		{name: "v6 zero checksum accepted", v6: v6, spec: zeroCsum, want: DropNone},
		{name: "v6 0xffff checksum of nonzero sum", v6: v6, mutate: func(f []byte) []byte { udp(f)[6], udp(f)[7] = 0xff, 0xff; return f },
			want: DropUDPChecksum},
		{name: "v6 short vxlan", v6: v6, mutate: func(f []byte) []byte { setUDPLength(f, 4); return f }, want: DropShortVXLAN},
		{name: "v6 I clear", v6: v6, mutate: func(f []byte) []byte { vx(f)[0] = 0; return f }, fix: true, want: DropVXLANFlags},
		{name: "v6 reserved", v6: v6, mutate: func(f []byte) []byte { vx(f)[1] = 0x80; return f }, fix: true, want: DropVXLANReserved},
		{name: "v6 vni 0", v6: v6, spec: func(s *outerSpec) { s.vni = 0 }, want: DropVNIZero},
	}
	// Each of the 64 bits of the VXLAN header, set alone on top of a valid
	// header: the 39 reserved ones drop, the I flag and the VNI's do not.
	for bit := 0; bit < 64; bit++ {
		want := DropNone
		if VXLANReservedAll>>bit&1 != 0 {
			want = DropVXLANReserved
		}
		for _, v := range []bool{v4, v6} {
			cases = append(cases, tc{name: fmt.Sprintf("vxlan bit %d v6=%v", bit, v), v6: v, mutate: func(f []byte) []byte {
				h := vx(f)
				binary.BigEndian.PutUint64(h, binary.BigEndian.Uint64(h)|1<<bit)
				return f
			}, fix: true, want: want})
		}
	}
	covered := make(map[DropReason]bool)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := defaultSpec(t, c.v6)
			if c.spec != nil {
				c.spec(&s)
			}
			frame := buildOuter(t, s)
			if c.mutate != nil {
				frame = c.mutate(frame)
			}
			if c.fix {
				refix(frame)
			}
			var o Outer
			inner, r := ParseOuterPolicy(frame, testPort, c.policy, &o)
			if r != c.want {
				t.Fatalf("drop %v, want %v", r, c.want)
			}
			if (r == DropNone) != (inner != nil) {
				t.Fatalf("drop %v with inner %d bytes (nil %v)", r, len(inner), inner == nil)
			}
			if c.policy == 0 {
				if _, r2 := ParseOuter(frame, testPort, &o); r2 != r {
					t.Fatalf("ParseOuter %v, ParseOuterPolicy(0) %v", r2, r)
				}
			}
			covered[r] = true
		})
	}
	for _, r := range DropReasons() {
		if !r.Inner() && !covered[r] {
			t.Errorf("no case produces %v", r)
		}
	}
}

func TestDropReasonString(t *testing.T) {
	seen := make(map[string]bool)
	rs := DropReasons()
	if len(rs) != int(NumDropReasons) || rs[0] != DropNone || rs[len(rs)-1] != NumDropReasons-1 {
		t.Fatalf("DropReasons() = %v", rs)
	}
	for _, r := range rs {
		s := r.String()
		if s == "" || s == "unknown" || seen[s] {
			t.Errorf("reason %d has name %q (empty, unknown or duplicate)", r, s)
		}
		seen[s] = true
	}
	if DropNone.String() != "none" || DropUDPChecksum.String() != "udp_checksum" || NumDropReasons.String() != "unknown" {
		t.Errorf("names: %v %v %v", DropNone, DropUDPChecksum, NumDropReasons)
	}
}

func TestParseOuterReservedMask(t *testing.T) {
	const (
		gFlag  = uint64(0x80) << 56 // GBP's G flag, a reserved flag bit to RFC 7348
		policy = uint64(0xffff) << 32
		last   = uint64(0xff)
	)
	frameWith := func(set uint64) []byte {
		f := buildOuter(t, defaultSpec(t, false))
		h := f[udpOffset(f)+8:]
		binary.BigEndian.PutUint64(h, binary.BigEndian.Uint64(h)|set)
		refix(f)
		return f
	}
	cases := []struct {
		name     string
		set      uint64 // bits set in the header
		reserved uint64
		policy   Policy
		want     DropReason
	}{
		{"all reserved, clean header", 0, VXLANReservedAll, 0, DropNone},
		{"all reserved, G", gFlag, VXLANReservedAll, 0, DropVXLANReserved},
		{"accept all", gFlag | policy | last, 0, 0, DropNone},
		{"GBP bits not reserved, G and policy set", gFlag | policy, VXLANReservedAll &^ (gFlag | policy), 0, DropNone},
		{"GBP bits not reserved, last byte set", gFlag | last, VXLANReservedAll &^ (gFlag | policy), 0, DropVXLANReserved},
		{"used bits in the mask are ignored", 0, ^uint64(0), 0, DropNone},
		{"only the last byte reserved", policy, last, 0, DropNone},
		{"policy overrides the mask", gFlag | last, VXLANReservedAll, AllowVXLANReserved, DropNone},
	}
	for _, c := range cases {
		var o Outer
		inner, r := ParseOuterReserved(frameWith(c.set), testPort, c.policy, c.reserved, &o)
		if r != c.want {
			t.Errorf("%s: drop %v, want %v", c.name, r, c.want)
		}
		if r == DropNone && (inner == nil || o.VNI != 0xabcdef) {
			t.Errorf("%s: accepted with inner %v, VNI %#x", c.name, inner != nil, o.VNI)
		}
	}
	if VXLANReservedAll|VXLANHeaderUsed != ^uint64(0) || VXLANReservedAll&VXLANHeaderUsed != 0 {
		t.Errorf("VXLANReservedAll %#x and VXLANHeaderUsed %#x do not split the header", VXLANReservedAll, VXLANHeaderUsed)
	}
}
