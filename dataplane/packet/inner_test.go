package packet

import (
	"encoding/binary"
	"testing"
)

// tagInner inserts an 802.1Q tag with VLAN ID 10 after the MACs.
func tagInner(f []byte, tpid uint16) []byte {
	out := append([]byte(nil), f[:12]...)
	out = binary.BigEndian.AppendUint16(out, tpid)
	out = binary.BigEndian.AppendUint16(out, 10)
	return append(out, f[12:]...)
}

func TestCheckInner(t *testing.T) {
	tcp4 := buildInner(t, false, 1000, 80, 60)
	tcp6 := buildInner(t, true, 1000, 80, 10)
	with := func(f []byte, fn func([]byte)) []byte {
		g := append([]byte(nil), f...)
		fn(g)
		return g
	}
	cases := []struct {
		name   string
		frame  []byte
		policy Policy
		want   DropReason
	}{
		{"tcp4", tcp4, 0, DropNone},
		{"tcp6", tcp6, 0, DropNone},
		{"empty", nil, 0, DropShortInner},
		{"13 bytes", tcp4[:13], 0, DropShortInner},
		{"header only, arp", with(tcp4[:14], func(f []byte) { f[12], f[13] = 0x08, 0x06 }), 0, DropNone},
		{"broadcast source", with(tcp4, func(f []byte) { copy(f[6:12], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}) }), 0, DropInnerSrcMAC},
		{"multicast source", with(tcp4, func(f []byte) { copy(f[6:12], []byte{0x01, 0x00, 0x5e, 0x00, 0x00, 0x01}) }), 0, DropInnerSrcMAC},
		{"multicast bit only", with(tcp4, func(f []byte) { f[6] |= 1 }), 0, DropInnerSrcMAC},
		{"zero source", with(tcp4, func(f []byte) { clear(f[6:12]) }), 0, DropInnerSrcMAC},
		{"source zero but last byte", with(tcp4, func(f []byte) { clear(f[6:11]); f[11] = 1 }), 0, DropNone},
		{"source zero but byte 4", with(tcp4, func(f []byte) { clear(f[6:12]); f[10] = 1 }), 0, DropNone},
		{"broadcast destination is fine", with(tcp4, func(f []byte) { copy(f[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}) }), 0, DropNone},
		{"802.1q", tagInner(tcp4, 0x8100), 0, DropInnerVLAN},
		{"802.1ad", tagInner(tcp4, 0x88a8), 0, DropInnerVLAN},
		{"802.1q allowed", tagInner(tcp4, 0x8100), AllowInnerVLAN, DropNone},
		{"802.1q allowed v6", tagInner(tcp6, 0x8100), AllowInnerVLAN, DropNone},
		{"802.1q cut", tagInner(tcp4, 0x8100)[:17], AllowInnerVLAN, DropShortInner},
		{"802.1q ipv4 cut", tagInner(tcp4, 0x8100)[:18+19], AllowInnerVLAN, DropShortInnerIP},
		{"802.1q ipv6 cut", tagInner(tcp6, 0x8100)[:18+39], AllowInnerVLAN, DropShortInnerIP},
		{"ipv4 cut", tcp4[:14+19], 0, DropShortInnerIP},
		{"ipv4 header exactly", with(tcp4[:14+20], func([]byte) {}), 0, DropNone},
		{"ipv4 options cut", with(tcp4[:14+40], func(f []byte) { f[14] = 0x4f }), 0, DropShortInnerIP},
		{"ipv4 options fit", with(tcp4[:14+60], func(f []byte) { f[14] = 0x4f }), 0, DropNone},
		{"ipv6 cut", tcp6[:14+39], 0, DropShortInnerIP},
		{"ipv6 header exactly", tcp6[:14+40], 0, DropNone},
		{"ethertype ipv4, nothing behind", tcp4[:14], 0, DropShortInnerIP},
	}
	covered := make(map[DropReason]bool)
	for _, c := range cases {
		if got := CheckInnerPolicy(c.frame, c.policy); got != c.want {
			t.Errorf("%s: CheckInnerPolicy = %v, want %v", c.name, got, c.want)
		}
		if c.policy == 0 {
			if got := CheckInner(c.frame); got != c.want {
				t.Errorf("%s: CheckInner = %v, want %v", c.name, got, c.want)
			}
		}
		covered[c.want] = true
	}
	for _, r := range DropReasons() {
		if r.Inner() && !covered[r] {
			t.Errorf("no case produces %v", r)
		}
	}
}
