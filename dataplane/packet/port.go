package packet

import "encoding/binary"

// IPv6 extension headers that IsUDPTo walks (RFC 8200 section 4).
const (
	ipv6HopByHop = 0
	ipv6Routing  = 43
	ipv6Fragment = 44
	ipv6AH       = 51
	ipv6DestOpts = 60
)

// IsUDPTo reports whether the Ethernet frame carries a UDP datagram to
// destination port port: what a workload sending its own VXLAN toward a VTEP
// looks like. The egress path drops such frames so that no container can
// tunnel inside the tunnel, whatever its destination address.
//
// It looks behind any number of 802.1Q/802.1ad tags, IPv4 options and IPv6
// extension headers (hop-by-hop, routing, destination options, fragment, AH).
// Tags and the IPv6 chain are walked to their end, so neither can be made long
// enough to hide the UDP header; every step consumes at least 4 bytes. Only the first
// fragment of a datagram carries its UDP header, so later fragments are not
// UDP to anything; a first fragment too short to show the destination port
// counts as UDP to port (RFC 1858's tiny fragments), since the port is in the
// next fragment. ESP and unknown headers hide what follows: not UDP.
//
// It reads only headers, allocates nothing, and never reads out of frame.
func IsUDPTo(frame []byte, port uint16) bool {
	if len(frame) < ethHeaderLen {
		return false
	}
	etherType := binary.BigEndian.Uint16(frame[12:14])
	l3 := frame[ethHeaderLen:]
	for etherType == etherTypeVLAN || etherType == etherTypeQinQ {
		if len(l3) < vlanTagLen {
			return false
		}
		etherType = binary.BigEndian.Uint16(l3[2:4])
		l3 = l3[vlanTagLen:]
	}
	var (
		l4    []byte
		first bool // the datagram is a fragment, and this is its first one
	)
	switch etherType {
	case etherTypeIPv4:
		if len(l3) < ipv4HeaderLen || l3[0]>>4 != 4 || l3[9] != protoUDP {
			return false
		}
		frag := binary.BigEndian.Uint16(l3[6:8])
		if frag&ipv4FragOffset != 0 {
			return false
		}
		first = frag&ipv4FlagMF != 0
		hl := int(l3[0]&0x0f) * 4
		total := ipEnd(l3, 0, binary.BigEndian.Uint16(l3[2:4]))
		if hl < ipv4HeaderLen || hl > total {
			return false
		}
		l4 = l3[hl:total]
	case etherTypeIPv6:
		if len(l3) < ipv6HeaderLen || l3[0]>>4 != 6 {
			return false
		}
		next := l3[6]
		l4 = l3[ipv6HeaderLen:ipEnd(l3, ipv6HeaderLen, binary.BigEndian.Uint16(l3[4:6]))]
		for next != protoUDP {
			var n int
			switch next {
			case ipv6HopByHop, ipv6Routing, ipv6DestOpts:
				if len(l4) < 2 {
					return false
				}
				n = (int(l4[1]) + 1) * 8
			case ipv6AH:
				if len(l4) < 2 {
					return false
				}
				n = (int(l4[1]) + 2) * 4
			case ipv6Fragment:
				if len(l4) < 8 {
					return false
				}
				if binary.BigEndian.Uint16(l4[2:4])&^7 != 0 {
					return false // not the first fragment: no UDP header
				}
				first = first || l4[3]&1 != 0
				n = 8
			default:
				return false
			}
			if n > len(l4) {
				return false
			}
			next, l4 = l4[0], l4[n:]
		}
	default:
		return false
	}
	if len(l4) < 4 {
		return first
	}
	return binary.BigEndian.Uint16(l4[2:4]) == port
}

// ipEnd is where the IP packet l3 ends by its length field n, which counts
// from base: cut to the frame, so Ethernet padding is never read as a header.
// A length field of 0 means the whole frame, as in GSO super-frames (BIG TCP)
// and jumbograms: a header claiming no length must not hide what follows it.
func ipEnd(l3 []byte, base int, n uint16) int {
	if n == 0 {
		return len(l3)
	}
	return min(base+int(n), len(l3))
}
