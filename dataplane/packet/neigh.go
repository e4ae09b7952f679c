package packet

import (
	"encoding/binary"
	"net/netip"
)

// Sizes and values of ARP (RFC 826) over Ethernet for IPv4 and of IPv6 neighbour discovery
// (RFC 4861) that NeighRequest and NeighReply use.
const (
	etherTypeARP = 0x0806
	arpLen       = 28 // hardware type to target protocol address, Ethernet and IPv4
	arpRequest   = 1
	arpReply     = 2

	protoICMPv6       = 58
	ndSolicitation    = 135
	ndAdvertisement   = 136
	ndHopLimit        = 255 // RFC 4861 section 7.1.1: anything else did not come from the link
	ndMinLen          = 24  // ICMPv6 header, reserved word, target address
	ndOptTargetLLAddr = 2
	ndFlagSolicited   = 0x40
	ndFlagOverride    = 0x20
	naLen             = ndMinLen + 8 // with the target link-layer address option

	// NeighReplyLen is the most NeighReply writes: an Ethernet frame with a neighbour
	// advertisement and its target link-layer address option (an ARP reply is shorter).
	NeighReplyLen = ethHeaderLen + ipv6HeaderLen + naLen
)

// NeighRequest reports whether the untagged Ethernet frame is a question vxdp may answer
// for a neighbour: an ARP request for an IPv4 address from a sender that has one (not a
// probe from 0.0.0.0, nor a gratuitous ARP), or an IPv6 neighbour solicitation that is
// valid as RFC 4861 section 7.1.1 says (hop limit 255, code 0, a correct checksum, a
// unicast target) from a sender that has an address (not duplicate address detection);
// and the address asked for.
func NeighRequest(frame []byte) (target netip.Addr, ok bool) {
	if len(frame) < ethHeaderLen {
		return target, false
	}
	switch binary.BigEndian.Uint16(frame[12:14]) {
	case etherTypeARP:
		a := frame[ethHeaderLen:]
		if len(a) < arpLen || binary.BigEndian.Uint16(a[0:2]) != 1 || binary.BigEndian.Uint16(a[2:4]) != etherTypeIPv4 ||
			a[4] != 6 || a[5] != 4 || binary.BigEndian.Uint16(a[6:8]) != arpRequest {
			return target, false
		}
		sender, tip := netip.AddrFrom4([4]byte(a[14:18])), netip.AddrFrom4([4]byte(a[24:28]))
		if sender.IsUnspecified() || sender == tip || tip.IsUnspecified() || tip.IsMulticast() {
			return target, false
		}
		return tip, true
	case etherTypeIPv6:
		ip := frame[ethHeaderLen:]
		if len(ip) < ipv6HeaderLen+ndMinLen || ip[0]>>4 != 6 || ip[6] != protoICMPv6 || ip[7] != ndHopLimit {
			return target, false
		}
		plen := int(binary.BigEndian.Uint16(ip[4:6]))
		if plen < ndMinLen || plen > len(ip)-ipv6HeaderLen {
			return target, false
		}
		icmp := ip[ipv6HeaderLen : ipv6HeaderLen+plen]
		if icmp[0] != ndSolicitation || icmp[1] != 0 {
			return target, false
		}
		src, tgt := netip.AddrFrom16([16]byte(ip[8:24])), netip.AddrFrom16([16]byte(icmp[8:24]))
		if src.IsUnspecified() || tgt.IsMulticast() || tgt.IsUnspecified() {
			return target, false
		}
		if Checksum(icmp, pseudoSum6(ip[8:24], ip[24:40], protoICMPv6, uint32(plen))) != 0 {
			return target, false
		}
		return tgt, true
	}
	return target, false
}

// NeighReply writes into buf the answer to request, a question NeighRequest accepted, as
// the neighbour with MAC address mac would give it: an ARP reply, or a solicited neighbour
// advertisement (override set, router clear) with a target link-layer address option,
// addressed to the asker. It returns the reply's length, or 0 when buf is shorter than
// NeighReplyLen. buf and request must not overlap.
func NeighReply(buf, request []byte, mac [6]byte) int {
	if len(buf) < NeighReplyLen {
		return 0
	}
	copy(buf[0:6], request[6:12]) // to the asker
	copy(buf[6:12], mac[:])
	copy(buf[12:14], request[12:14])
	if binary.BigEndian.Uint16(request[12:14]) == etherTypeARP {
		q, a := request[ethHeaderLen:], buf[ethHeaderLen:ethHeaderLen+arpLen]
		copy(a[0:6], q[0:6]) // hardware type, protocol type, their lengths
		binary.BigEndian.PutUint16(a[6:8], arpReply)
		copy(a[8:14], mac[:])
		copy(a[14:18], q[24:28]) // the address asked for
		copy(a[18:24], q[8:14])  // the asker's hardware and protocol addresses
		copy(a[24:28], q[14:18])
		return ethHeaderLen + arpLen
	}
	q, ip := request[ethHeaderLen:], buf[ethHeaderLen:ethHeaderLen+ipv6HeaderLen+naLen]
	clear(ip)
	ip[0] = 6 << 4
	binary.BigEndian.PutUint16(ip[4:6], naLen)
	ip[6], ip[7] = protoICMPv6, ndHopLimit
	copy(ip[8:24], q[ipv6HeaderLen+8:ipv6HeaderLen+24]) // from the target address
	copy(ip[24:40], q[8:24])                            // to the asker
	na := ip[ipv6HeaderLen:]
	na[0] = ndAdvertisement
	na[4] = ndFlagSolicited | ndFlagOverride
	copy(na[8:24], ip[8:24])
	na[24], na[25] = ndOptTargetLLAddr, 1 // length in units of 8 bytes
	copy(na[26:32], mac[:])
	binary.BigEndian.PutUint16(na[2:4], Checksum(na, pseudoSum6(ip[8:24], ip[24:40], protoICMPv6, naLen)))
	return NeighReplyLen
}
