package packet

import "encoding/binary"

// ECN codepoints of the two low bits of the IPv4 TOS byte and the IPv6 traffic class
// (RFC 3168).
const (
	ECNMask   = 0x03
	ECNNotECT = 0x00
	ECNECT1   = 0x01
	ECNECT0   = 0x02
	ECNCE     = 0x03
)

// innerIP returns the IP header of an inner Ethernet frame, untagged or behind one
// 802.1Q/802.1ad tag, and whether it is IPv6; nil when the frame carries no IP or the
// fixed part of the header does not fit in it.
func innerIP(inner []byte) (ip []byte, v6 bool) {
	if len(inner) < ethHeaderLen {
		return nil, false
	}
	et := binary.BigEndian.Uint16(inner[12:14])
	l3 := inner[ethHeaderLen:]
	if et == etherTypeVLAN || et == etherTypeQinQ {
		if len(l3) < vlanTagLen {
			return nil, false
		}
		et = binary.BigEndian.Uint16(l3[2:4])
		l3 = l3[vlanTagLen:]
	}
	switch {
	case et == etherTypeIPv4 && len(l3) >= ipv4HeaderLen && l3[0]>>4 == 4:
		return l3, false
	case et == etherTypeIPv6 && len(l3) >= ipv6HeaderLen && l3[0]>>4 == 6:
		return l3, true
	}
	return nil, false
}

// InnerECN returns the ECN field of an inner Ethernet frame's IP header (untagged or
// behind one tag), and false for a frame that carries no IP.
func InnerECN(inner []byte) (ecn uint8, ok bool) {
	ip, v6 := innerIP(inner)
	switch {
	case ip == nil:
		return 0, false
	case v6:
		return ip[1] >> 4 & ECNMask, true
	}
	return ip[1] & ECNMask, true
}

// DecapECN applies RFC 6040's decapsulation (section 4.2) to the inner frame of a VXLAN
// frame whose outer IPv4 TOS or IPv6 traffic class was outerTOS, in place, as Linux's
// INET_ECN_decapsulate does: an outer CE over an ECT(0) or ECT(1) inner IP packet sets
// CE in the inner header, and an outer ECT(1) over an ECT(0) one sets ECT(1) (the IPv4
// header checksum is updated, RFC 1624); an outer CE over a Not-ECT one is a congestion
// mark the receiver could not see, and DecapECN reports false: the frame must be dropped.
// Every other combination leaves the inner ECN field as it is. A frame that carries no IP
// is left alone. Only an outer CE or ECT(1) can change anything: callers may skip the
// call unless outerTOS&1 != 0.
func DecapECN(outerTOS uint8, inner []byte) bool {
	out := outerTOS & ECNMask
	if out != ECNCE && out != ECNECT1 {
		return true
	}
	ip, v6 := innerIP(inner)
	if ip == nil {
		return true
	}
	in := ip[1] & ECNMask
	if v6 {
		in = ip[1] >> 4 & ECNMask
	}
	var to uint8
	switch {
	case in == ECNNotECT && out == ECNCE:
		return false
	case in == ECNNotECT || in == ECNCE || in == out:
		return true
	case out == ECNCE:
		to = ECNCE
	case in == ECNECT0: // out is ECT(1)
		to = ECNECT1
	default: // ECT(1) under ECT(1)
		return true
	}
	if v6 {
		ip[1] = ip[1]&^(ECNMask<<4) | to<<4
		return true
	}
	old := binary.BigEndian.Uint16(ip[0:2])
	ip[1] = ip[1]&^ECNMask | to
	// RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m').
	sum := uint32(^binary.BigEndian.Uint16(ip[10:12])) + uint32(^old) + uint32(binary.BigEndian.Uint16(ip[0:2]))
	binary.BigEndian.PutUint16(ip[10:12], ^fold32(sum))
	return true
}
