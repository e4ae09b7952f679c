package packet

// DropReason says why a frame was refused. The zero value, DropNone, means the
// frame passed. Reasons are small integers so that counters can be a plain
// array indexed by reason, one per worker, summed at scrape time.
type DropReason uint8

// Drop reasons, in the order the checks run. Append new reasons before
// NumDropReasons; never reorder, metrics dashboards key on the names only, but
// tests and per-worker counter arrays key on the values.
const (
	// DropNone: the frame passed every check.
	DropNone DropReason = iota

	// Outer Ethernet.

	// DropShortEthernet: fewer than 14 bytes.
	DropShortEthernet
	// DropShortVLAN: an 802.1Q/802.1ad TPID without the 4 bytes of the tag behind it.
	DropShortVLAN
	// DropNotIP: the EtherType (behind at most one tag) is neither IPv4 nor IPv6.
	DropNotIP

	// Outer IPv4.

	// DropShortIPv4: fewer than 20 bytes, or fewer than IHL*4, behind the Ethernet header.
	DropShortIPv4
	// DropIPv4Version: EtherType IPv4 but the version nibble is not 4.
	DropIPv4Version
	// DropIPv4IHL: IHL below 5 (a header shorter than 20 bytes).
	DropIPv4IHL
	// DropIPv4Checksum: the header checksum does not verify.
	DropIPv4Checksum
	// DropIPv4TotalLength: total length beyond the frame or below the header length.
	DropIPv4TotalLength
	// DropIPv4Fragment: MF set or a non-zero fragment offset; vxdp does not reassemble.
	DropIPv4Fragment

	// Outer IPv6.

	// DropShortIPv6: fewer than 40 bytes behind the Ethernet header.
	DropShortIPv6
	// DropIPv6Version: EtherType IPv6 but the version nibble is not 6.
	DropIPv6Version
	// DropIPv6PayloadLength: payload length beyond the frame.
	DropIPv6PayloadLength
	// DropIPv6ExtensionHeader: the next header is an IPv6 extension header; vxdp
	// does not walk extension chains on the fast path.
	DropIPv6ExtensionHeader

	// Outer UDP.

	// DropNotUDP: the IP protocol (IPv6 next header) is not UDP.
	DropNotUDP
	// DropShortUDP: the IP payload is shorter than a UDP header.
	DropShortUDP
	// DropUDPLength: UDP length below 8 or beyond the IP payload.
	DropUDPLength
	// DropUDPPort: the UDP destination port is not the VXLAN port.
	DropUDPPort
	// DropUDPChecksum: a non-zero UDP checksum that does not verify.
	DropUDPChecksum

	// VXLAN.

	// DropShortVXLAN: the UDP payload is shorter than a VXLAN header.
	DropShortVXLAN
	// DropVXLANFlags: the I flag is clear, so the VNI is not valid (RFC 7348 section 5).
	DropVXLANFlags
	// DropVXLANReserved: a reserved bit is set (flags other than I, the 24 bits
	// after the flags, or the 8 bits after the VNI). Only with strict policy.
	DropVXLANReserved
	// DropVNIZero: VNI 0; unless the policy allows it.
	DropVNIZero

	// Inner frame (CheckInner).

	// DropShortInner: the inner frame is shorter than its Ethernet header (with
	// its tag, when a tag is allowed).
	DropShortInner
	// DropInnerSrcMAC: the inner source MAC is multicast, broadcast or all zero;
	// such a frame must not be forwarded nor learnt in the FDB.
	DropInnerSrcMAC
	// DropInnerVLAN: the inner frame carries an 802.1Q/802.1ad tag; unless the policy allows it.
	DropInnerVLAN
	// DropShortInnerIP: the inner EtherType announces IPv4 or IPv6 but the IP
	// header does not fit in the frame.
	DropShortInnerIP

	// Outer IPv4, appended after the inner reasons (values never move).

	// DropIPv4Options: the outer IPv4 options do not parse (an option length
	// below 2 or past the header), or carry a source route (LSRR, SSRR), which
	// names a further hop: the packet is not for this VTEP to consume, and Linux
	// drops it too unless accept_source_route is set.
	DropIPv4Options

	// NumDropReasons is the number of reasons, DropNone included: size of a
	// per-reason counter array.
	NumDropReasons
)

var dropReasonNames = [NumDropReasons]string{
	DropNone:                "none",
	DropShortEthernet:       "short_ethernet",
	DropShortVLAN:           "short_vlan",
	DropNotIP:               "not_ip",
	DropShortIPv4:           "short_ipv4",
	DropIPv4Version:         "ipv4_version",
	DropIPv4IHL:             "ipv4_ihl",
	DropIPv4Checksum:        "ipv4_checksum",
	DropIPv4TotalLength:     "ipv4_total_length",
	DropIPv4Fragment:        "ipv4_fragment",
	DropShortIPv6:           "short_ipv6",
	DropIPv6Version:         "ipv6_version",
	DropIPv6PayloadLength:   "ipv6_payload_length",
	DropIPv6ExtensionHeader: "ipv6_extension_header",
	DropNotUDP:              "not_udp",
	DropShortUDP:            "short_udp",
	DropUDPLength:           "udp_length",
	DropUDPPort:             "udp_port",
	DropUDPChecksum:         "udp_checksum",
	DropShortVXLAN:          "short_vxlan",
	DropVXLANFlags:          "vxlan_flags",
	DropVXLANReserved:       "vxlan_reserved",
	DropVNIZero:             "vni_zero",
	DropShortInner:          "short_inner",
	DropInnerSrcMAC:         "inner_src_mac",
	DropInnerVLAN:           "inner_vlan",
	DropShortInnerIP:        "short_inner_ip",
	DropIPv4Options:         "ipv4_options",
}

// String returns the reason as a snake_case name fit for a metric label.
func (r DropReason) String() string {
	if r < NumDropReasons {
		return dropReasonNames[r]
	}
	return "unknown"
}

// Inner reports whether r is one of CheckInner's reasons; the others, but
// DropNone, are ParseOuter's.
func (r DropReason) Inner() bool {
	return r >= DropShortInner && r <= DropShortInnerIP
}

// DropReasons returns every reason, DropNone included, in value order, so that
// metrics can register one series per reason up front.
func DropReasons() []DropReason {
	rs := make([]DropReason, NumDropReasons)
	for i := range rs {
		rs[i] = DropReason(i)
	}
	return rs
}
