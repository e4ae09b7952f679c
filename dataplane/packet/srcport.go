package packet

import "encoding/binary"

// Outer UDP source port range of SourcePort: the IANA dynamic range, which RFC
// 7348 section 5 recommends. Linux vxlan draws from the host's
// ip_local_port_range (32768-60999 by default) unless "srcport MIN MAX" is set.
const (
	SourcePortMin = 49152
	SourcePortMax = 65535
)

// SourcePort returns the outer UDP source port for an inner Ethernet frame: a
// hash of its flow (MAC addresses; behind at most one tag, for IPv4 and IPv6
// the addresses and protocol, and for TCP and UDP the ports) mapped into
// SourcePortMin..SourcePortMax, so that underlay ECMP and receive-side RSS
// spread flows while every packet of one flow takes the same path and queue.
// Fragments of IPv4 are hashed without ports, so all fragments of a datagram
// agree. Truncated headers are hashed as far as they go; SourcePort never
// reads past inner.
func SourcePort(inner []byte) uint16 {
	return SourcePortMin + uint16(flowHash(inner)&(SourcePortMax-SourcePortMin))
}

// PortRange is a range of outer UDP source ports, both ends included: the Linux vxlan
// device's srcport option (whose upper end the kernel excludes).
type PortRange struct {
	Min, Max uint16
}

// DefaultPortRange is SourcePort's range.
var DefaultPortRange = PortRange{SourcePortMin, SourcePortMax}

// SourcePort returns the outer UDP source port for an inner Ethernet frame, the flow
// hash of the package's SourcePort mapped onto r; for DefaultPortRange the same port.
// r.Min must not exceed r.Max.
func (r PortRange) SourcePort(inner []byte) uint16 {
	h := flowHash(inner)
	if r == DefaultPortRange {
		return SourcePortMin + uint16(h&(SourcePortMax-SourcePortMin))
	}
	// Multiply and shift: the hash's low 32 bits scaled onto the range, no division.
	return r.Min + uint16((h&0xffffffff)*(uint64(r.Max-r.Min)+1)>>32)
}

// flowHash hashes an inner frame's flow for SourcePort, finalised.
func flowHash(inner []byte) uint64 {
	return fmix(flowKeyHash(inner))
}

// flowKeyHash mixes an inner frame's flow key into a hash that fmix finalises.
func flowKeyHash(inner []byte) uint64 {
	h := uint64(0x9e3779b97f4a7c15) // any non-zero start; the golden ratio's bits
	if len(inner) < ethHeaderLen {
		for _, b := range inner {
			h = mix(h, uint64(b))
		}
		return h
	}
	h = mix(h, binary.BigEndian.Uint64(inner[0:8]))
	h = mix(h, uint64(binary.BigEndian.Uint32(inner[8:12])))
	etherType := binary.BigEndian.Uint16(inner[12:14])
	l3 := inner[ethHeaderLen:]
	if (etherType == etherTypeVLAN || etherType == etherTypeQinQ) && len(l3) >= vlanTagLen {
		etherType = binary.BigEndian.Uint16(l3[2:4])
		l3 = l3[vlanTagLen:]
	}
	h = mix(h, uint64(etherType))

	var proto uint8
	var l4 []byte
	switch etherType {
	case etherTypeIPv4:
		if len(l3) < ipv4HeaderLen {
			return h
		}
		proto = l3[9]
		h = mix(h, binary.BigEndian.Uint64(l3[12:20]))
		h = mix(h, uint64(proto))
		hl := int(l3[0]&0x0f) * 4
		if binary.BigEndian.Uint16(l3[6:8])&(ipv4FlagMF|ipv4FragOffset) != 0 || hl < ipv4HeaderLen || hl > len(l3) {
			return h
		}
		l4 = l3[hl:]
	case etherTypeIPv6:
		if len(l3) < ipv6HeaderLen {
			return h
		}
		proto = l3[6]
		h = mix(h, binary.BigEndian.Uint64(l3[8:16]))
		h = mix(h, binary.BigEndian.Uint64(l3[16:24]))
		h = mix(h, binary.BigEndian.Uint64(l3[24:32]))
		h = mix(h, binary.BigEndian.Uint64(l3[32:40]))
		h = mix(h, uint64(proto))
		l4 = l3[ipv6HeaderLen:]
	default:
		return h
	}
	if (proto == protoTCP || proto == protoUDP) && len(l4) >= 4 {
		h = mix(h, uint64(binary.BigEndian.Uint32(l4[0:4])))
	}
	return h
}

// mix folds v into the running hash h: a multiply and a xor-shift per word,
// enough to spread the few dozen bytes of a flow key.
func mix(h, v uint64) uint64 {
	h ^= v
	h *= 0xff51afd7ed558ccd
	h ^= h >> 32
	return h
}

// fmix finalises a flow hash (MurmurHash3's fmix64 constants).
func fmix(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}
