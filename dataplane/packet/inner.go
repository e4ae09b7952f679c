package packet

import "encoding/binary"

// CheckInner checks a decapsulated inner Ethernet frame with the strict policy:
// it is long enough for its Ethernet header, its source MAC is a unicast
// address (not multicast, broadcast or zero, which must never enter the FDB),
// it has no 802.1Q/802.1ad tag, and when its EtherType is IPv4 or IPv6 the IP
// header fits. It reads at most the first 38 bytes (a tag and an IPv4 IHL).
func CheckInner(inner []byte) DropReason {
	return CheckInnerPolicy(inner, 0)
}

// CheckInnerPolicy is CheckInner with the checks p relaxes left out. Only
// AllowInnerVLAN applies here: one tag is then skipped and the EtherType behind
// it checked.
func CheckInnerPolicy(inner []byte, p Policy) DropReason {
	if len(inner) < ethHeaderLen {
		return DropShortInner
	}
	// The group bit (I/G, least significant bit of the first octet) marks
	// multicast and broadcast.
	if inner[6]&0x01 != 0 {
		return DropInnerSrcMAC
	}
	if binary.BigEndian.Uint32(inner[6:10])|uint32(binary.BigEndian.Uint16(inner[10:12])) == 0 {
		return DropInnerSrcMAC
	}
	etherType := binary.BigEndian.Uint16(inner[12:14])
	l3 := inner[ethHeaderLen:]
	if etherType == etherTypeVLAN || etherType == etherTypeQinQ {
		if p&AllowInnerVLAN == 0 {
			return DropInnerVLAN
		}
		if len(l3) < vlanTagLen {
			return DropShortInner
		}
		etherType = binary.BigEndian.Uint16(l3[2:4])
		l3 = l3[vlanTagLen:]
	}
	switch etherType {
	case etherTypeIPv4:
		// A malformed IHL below 5 is left for the receiving stack; only a
		// header that would be read past the frame is refused here.
		if len(l3) < ipv4HeaderLen || len(l3) < int(l3[0]&0x0f)*4 {
			return DropShortInnerIP
		}
	case etherTypeIPv6:
		if len(l3) < ipv6HeaderLen {
			return DropShortInnerIP
		}
	}
	return DropNone
}
