package packet

import (
	"encoding/binary"
	"net/netip"
)

// Header sizes and field values of the outer encapsulation, in bytes unless named otherwise.
const (
	ethHeaderLen   = 14
	vlanTagLen     = 4
	ipv4HeaderLen  = 20 // without options
	ipv6HeaderLen  = 40
	udpHeaderLen   = 8
	vxlanHeaderLen = 8

	etherTypeIPv4  = 0x0800
	etherTypeIPv6  = 0x86dd
	etherTypeVLAN  = 0x8100 // 802.1Q C-tag
	etherTypeQinQ  = 0x88a8 // 802.1ad S-tag
	protoTCP       = 6
	protoUDP       = 17
	ipv4FlagMF     = 0x2000
	ipv4FragOffset = 0x1fff

	// vxlanFlagI is the I flag of RFC 7348 section 5: the VNI is valid.
	vxlanFlagI = 0x08

	// IPv4 option types (RFC 791) that parseIPv4Options treats apart.
	ipv4OptEnd  = 0   // end of option list: the rest of the header is padding
	ipv4OptNOP  = 1   // no operation: one byte, no length
	ipv4OptLSRR = 131 // loose source and record route
	ipv4OptSSRR = 137 // strict source and record route
)

// VXLAN header bits as one big-endian 64-bit word (the flags in bits 63-56, the
// VNI in bits 31-8), the layout of the Linux vxlan driver's reserved_bits.
const (
	// VXLANHeaderUsed are the bits RFC 7348 gives a meaning: the I flag and
	// the VNI. They can never be reserved.
	VXLANHeaderUsed uint64 = 0x08000000_ffffff00
	// VXLANReservedAll is every other bit, the ones RFC 7348 reserves: the
	// default of ParseOuter, and of Linux vxlan without GBP, GPE or RCO.
	VXLANReservedAll = ^VXLANHeaderUsed
)

// Policy relaxes optional checks of ParseOuterPolicy and CheckInnerPolicy. The
// zero value is the strict policy of ParseOuter and CheckInner.
type Policy uint8

const (
	// AllowVXLANReserved accepts VXLAN headers with reserved bits set. RFC 7348
	// says receivers ignore them; the Linux vxlan driver drops them unless an
	// extension (GBP, GPE, RCO) claims them, and so does the strict policy,
	// because a set bit usually means an extension vxdp does not speak.
	// ParseOuterReserved takes the reserved bits as a mask instead.
	AllowVXLANReserved Policy = 1 << iota
	// AllowVNIZero accepts VNI 0, which some deployments use as a real segment.
	AllowVNIZero
	// AllowInnerVLAN accepts one 802.1Q/802.1ad tag on the inner frame; the
	// checks then look at the EtherType behind the tag.
	AllowInnerVLAN
)

// Outer holds the outer headers of a VXLAN frame as read from the wire. Fields
// past the point where ParseOuter stopped keep their previous values.
type Outer struct {
	DstMAC, SrcMAC [6]byte
	// VLANTPID is the outer tag's TPID (0x8100 or 0x88a8), 0 when untagged.
	VLANTPID uint16
	// VLANTCI is the outer tag's priority, DEI and VLAN ID; 0 when untagged.
	VLANTCI uint16

	// Src and Dst are the outer IP addresses. netip.AddrFrom4 and AddrFrom16
	// do not allocate; an IPv6 frame always gives 16-byte addresses, even
	// IPv4-mapped ones.
	Src, Dst netip.Addr
	// TOS is the IPv4 TOS byte or the IPv6 traffic class.
	TOS uint8
	// TTL is the IPv4 TTL or the IPv6 hop limit.
	TTL uint8
	// IPID is the IPv4 identification; 0 for IPv6.
	IPID uint16

	SrcPort, DstPort uint16
	// UDPChecksum is the checksum field as read; 0 when the sender left it out.
	UDPChecksum uint16

	// Flags is the first byte of the VXLAN header; RFC 7348 defines only 0x08 (I).
	Flags uint8
	// Reserved1 holds the 24 reserved bits after the flags (GBP's fields when in use).
	Reserved1 uint32
	// VNI is the 24-bit VXLAN network identifier.
	VNI uint32
	// Reserved2 is the last byte of the VXLAN header.
	Reserved2 uint8

	// InnerOffset is where the inner Ethernet frame starts in the outer frame.
	InnerOffset int
	// InnerSum is the folded one's complement sum (Sum) of the inner frame, the UDP
	// payload behind the VXLAN header, when InnerSumOK: the outer UDP checksum covers the
	// inner frame, so verifying it sums the inner frame anyway, and InnerSum lets the
	// inner L4 checksum be verified without summing the payload a second time.
	InnerSum uint16
	// InnerSumOK says InnerSum is set: the outer UDP checksum was non-zero and verified.
	InnerSumOK bool
}

// ParseOuter checks the outer headers of a VXLAN frame sent to UDP port port
// with the strict policy, fills o, and returns the inner Ethernet frame as a
// sub-slice of frame (no copy). On a drop inner is nil.
func ParseOuter(frame []byte, port uint16, o *Outer) (inner []byte, r DropReason) {
	return ParseOuterPolicy(frame, port, 0, o)
}

// ParseOuterPolicy is ParseOuter with the checks p relaxes left out.
func ParseOuterPolicy(frame []byte, port uint16, p Policy, o *Outer) (inner []byte, r DropReason) {
	return ParseOuterReserved(frame, port, p, VXLANReservedAll, o)
}

// ParseOuterReserved is ParseOuterPolicy with the VXLAN header bits that must
// be zero given as a mask, in the layout of VXLANReservedAll: a frame with one
// of them set is dropped with DropVXLANReserved. Bits of VXLANHeaderUsed in
// reserved are ignored; 0 accepts every reserved bit, as AllowVXLANReserved in
// p does whatever reserved holds.
//
// Frame layout: Ethernet, at most one 802.1Q or 802.1ad tag, IPv4 (options
// allowed, IHL honoured, their layout checked) or IPv6 (no extension headers),
// UDP, VXLAN. Ethernet padding past the IP length is ignored; the UDP length
// must be the IP payload length, as every sender writes it, so no bytes hide
// between the end of the datagram and the end of the IP packet. A zero UDP
// checksum is accepted for IPv4 (RFC 768) and for IPv6 too: RFC 6935/6936
// allow it for tunnels and Linux accepts it on a vxlan device created with
// udp6zerocsumrx; vxdp accepts it unconditionally since the XDP program
// already restricts senders to known remote VTEPs. A non-zero UDP checksum is
// verified, which costs a pass over the whole packet; that pass leaves the inner
// frame's sum in o.InnerSum, so that nothing needs to sum the payload again.
func ParseOuterReserved(frame []byte, port uint16, p Policy, reserved uint64, o *Outer) (inner []byte, r DropReason) {
	if len(frame) < ethHeaderLen {
		return nil, DropShortEthernet
	}
	copy(o.DstMAC[:], frame[0:6])
	copy(o.SrcMAC[:], frame[6:12])
	etherType := binary.BigEndian.Uint16(frame[12:14])
	off := ethHeaderLen
	o.VLANTPID, o.VLANTCI = 0, 0
	if etherType == etherTypeVLAN || etherType == etherTypeQinQ {
		if len(frame) < ethHeaderLen+vlanTagLen {
			return nil, DropShortVLAN
		}
		o.VLANTPID = etherType
		o.VLANTCI = binary.BigEndian.Uint16(frame[14:16])
		etherType = binary.BigEndian.Uint16(frame[16:18])
		off += vlanTagLen
	}

	// ip is the IP packet cut to its announced length, so that Ethernet
	// padding never reaches UDP; udp is the IP payload.
	var ip, udp []byte
	var pseudo uint32
	switch etherType {
	case etherTypeIPv4:
		ip = frame[off:]
		if len(ip) < ipv4HeaderLen {
			return nil, DropShortIPv4
		}
		if ip[0]>>4 != 4 {
			return nil, DropIPv4Version
		}
		hl := int(ip[0]&0x0f) * 4
		if hl < ipv4HeaderLen {
			return nil, DropIPv4IHL
		}
		if len(ip) < hl {
			return nil, DropShortIPv4
		}
		if Checksum(ip[:hl], 0) != 0 {
			return nil, DropIPv4Checksum
		}
		total := int(binary.BigEndian.Uint16(ip[2:4]))
		if total > len(ip) || total < hl {
			return nil, DropIPv4TotalLength
		}
		if binary.BigEndian.Uint16(ip[6:8])&(ipv4FlagMF|ipv4FragOffset) != 0 {
			return nil, DropIPv4Fragment
		}
		if hl > ipv4HeaderLen && !validIPv4Options(ip[ipv4HeaderLen:hl]) {
			return nil, DropIPv4Options
		}
		o.TOS = ip[1]
		o.IPID = binary.BigEndian.Uint16(ip[4:6])
		o.TTL = ip[8]
		o.Src = netip.AddrFrom4([4]byte(ip[12:16]))
		o.Dst = netip.AddrFrom4([4]byte(ip[16:20]))
		if ip[9] != protoUDP {
			return nil, DropNotUDP
		}
		udp = ip[hl:total]
		off += hl
		if len(udp) >= udpHeaderLen && binary.BigEndian.Uint16(udp[6:8]) != 0 {
			// Only needed for a checksum; the length term is added below.
			pseudo = pseudoSum4(ip[12:16], ip[16:20], protoUDP, 0)
		}
	case etherTypeIPv6:
		ip = frame[off:]
		if len(ip) < ipv6HeaderLen {
			return nil, DropShortIPv6
		}
		if ip[0]>>4 != 6 {
			return nil, DropIPv6Version
		}
		payload := int(binary.BigEndian.Uint16(ip[4:6]))
		if payload > len(ip)-ipv6HeaderLen {
			return nil, DropIPv6PayloadLength
		}
		o.TOS = ip[0]<<4 | ip[1]>>4
		o.IPID = 0
		o.TTL = ip[7]
		o.Src = netip.AddrFrom16([16]byte(ip[8:24]))
		o.Dst = netip.AddrFrom16([16]byte(ip[24:40]))
		if next := ip[6]; next != protoUDP {
			if isIPv6ExtensionHeader(next) {
				return nil, DropIPv6ExtensionHeader
			}
			return nil, DropNotUDP
		}
		udp = ip[ipv6HeaderLen : ipv6HeaderLen+payload]
		off += ipv6HeaderLen
		if len(udp) >= udpHeaderLen && binary.BigEndian.Uint16(udp[6:8]) != 0 {
			pseudo = pseudoSum6(ip[8:24], ip[24:40], protoUDP, 0)
		}
	default:
		return nil, DropNotIP
	}

	if len(udp) < udpHeaderLen {
		return nil, DropShortUDP
	}
	udpLen := int(binary.BigEndian.Uint16(udp[4:6]))
	if udpLen != len(udp) {
		return nil, DropUDPLength
	}
	o.SrcPort = binary.BigEndian.Uint16(udp[0:2])
	o.DstPort = binary.BigEndian.Uint16(udp[2:4])
	o.UDPChecksum = binary.BigEndian.Uint16(udp[6:8])
	if o.DstPort != port {
		return nil, DropUDPPort
	}
	o.InnerSumOK = false
	if o.UDPChecksum != 0 {
		// The length is at most 0xffff, so it is one word of the pseudo-header. The inner
		// frame starts 16 bytes (an even count) into the datagram, so its sum on its own
		// and the headers' add up to the datagram's.
		var inner uint16
		head := udp
		if len(udp) >= udpHeaderLen+vxlanHeaderLen {
			head = udp[:udpHeaderLen+vxlanHeaderLen]
			inner = Sum(udp[udpHeaderLen+vxlanHeaderLen:], 0)
		}
		if Checksum(head, pseudo+uint32(udpLen)+uint32(inner)) != 0 {
			return nil, DropUDPChecksum
		}
		o.InnerSum, o.InnerSumOK = inner, len(udp) >= udpHeaderLen+vxlanHeaderLen
	}

	vx := udp[udpHeaderLen:]
	if len(vx) < vxlanHeaderLen {
		return nil, DropShortVXLAN
	}
	hdr := binary.BigEndian.Uint64(vx[:vxlanHeaderLen])
	o.Flags = vx[0]
	o.Reserved1 = uint32(hdr>>32) & 0xffffff
	o.VNI = uint32(hdr>>8) & 0xffffff
	o.Reserved2 = vx[7]
	o.InnerOffset = off + udpHeaderLen + vxlanHeaderLen
	if o.Flags&vxlanFlagI == 0 {
		return nil, DropVXLANFlags
	}
	if p&AllowVXLANReserved == 0 && hdr&reserved&^VXLANHeaderUsed != 0 {
		return nil, DropVXLANReserved
	}
	if p&AllowVNIZero == 0 && o.VNI == 0 {
		return nil, DropVNIZero
	}
	return vx[vxlanHeaderLen:], DropNone
}

// validIPv4Options reports whether opts, the options of an IPv4 header, parse
// as RFC 791 lays them out, the way Linux's ip_options_compile walks them: an
// end-of-list ends them (what follows is padding), a NOP is one byte, any other
// option has a length byte of at least 2 that stays inside the header. A
// source route option makes them invalid here: it names a hop beyond this one.
// Other options are not interpreted; a router would not either.
func validIPv4Options(opts []byte) bool {
	for len(opts) > 0 {
		switch opts[0] {
		case ipv4OptEnd:
			return true
		case ipv4OptNOP:
			opts = opts[1:]
			continue
		case ipv4OptLSRR, ipv4OptSSRR:
			return false
		}
		if len(opts) < 2 || opts[1] < 2 || int(opts[1]) > len(opts) {
			return false
		}
		opts = opts[opts[1]:]
	}
	return true
}

// isIPv6ExtensionHeader reports whether next is an IPv6 extension header
// number (RFC 8200 section 4, and the IANA "IPv6 Extension Header Types" list).
func isIPv6ExtensionHeader(next uint8) bool {
	switch next {
	case 0, // Hop-by-Hop Options
		43,       // Routing
		44,       // Fragment
		50,       // Encapsulating Security Payload
		51,       // Authentication Header
		60,       // Destination Options
		135,      // Mobility
		139,      // Host Identity Protocol
		140,      // Shim6
		253, 254: // experimentation and testing
		return true
	}
	return false
}
