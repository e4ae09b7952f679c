package offload

import "errors"

// Errors returned by Decode, Segment and NewCoalescer. They are returned bare, never wrapped, so a
// malformed frame costs no allocation; compare with errors.Is or ==.
var (
	// ErrShortHeader: fewer than HdrLen bytes for a virtio_net_hdr.
	ErrShortHeader = errors.New("virtio_net_hdr shorter than 10 bytes")
	// ErrBadHeader: unknown flag bits or GSO type in a virtio_net_hdr.
	ErrBadHeader = errors.New("unknown virtio_net_hdr flags or gso_type")
	// ErrGSOType: the GSO type is not supported here (UFO) or does not match the frame
	// (GSO_TCPV4 on an IPv6 frame, a TCP GSO type on UDP, ECN on UDP).
	ErrGSOType = errors.New("gso_type does not match the frame")
	// ErrGSOSize: gso_size is 0 in a GSO frame.
	ErrGSOSize = errors.New("gso_size 0 in a gso frame")
	// ErrCsumStart: csum_start/csum_offset point outside the frame, or, in a GSO frame,
	// not at the transport header's checksum field.
	ErrCsumStart = errors.New("csum_start or csum_offset out of range")
	// ErrMalformed: an Ethernet, IP, TCP or UDP header is truncated or invalid, or a
	// length field disagrees with the frame.
	ErrMalformed = errors.New("malformed frame")
	// ErrUnsupported: a GSO frame this package does not segment: not Ethernet+IPv4/IPv6
	// (a VLAN tag, say), IPv6 extension headers, or an IPv4 fragment.
	ErrUnsupported = errors.New("unsupported gso frame")
	// ErrMTU: a segment cannot fit the MTU (the headers alone exceed it, or a UDP GSO
	// segment, whose size is the application's datagram size, is larger), or a frame
	// without GSO is larger than the MTU.
	ErrMTU = errors.New("segment exceeds mtu")
	// ErrTooManySegments: the super-frame needs more segments than out (or sizes) has.
	ErrTooManySegments = errors.New("too many segments for the output buffers")
	// ErrShortBuffer: an output buffer is too short for headroom plus its segment.
	ErrShortBuffer = errors.New("output buffer too short")
	// ErrMaxFlows: CoalescerConfig.MaxFlows is outside 1 to MaxFlowsLimit.
	ErrMaxFlows = errors.New("max flows out of range")
)
