package offload

import (
	"encoding/binary"

	"github.com/vxdp/vxdp/dataplane/packet"
)

// Header sizes and field values of the inner frames, in bytes.
const (
	ethLen       = 14 // Ethernet header without a VLAN tag: the only inner framing vxdp accepts
	ipv4MinLen   = 20
	ipv6Len      = 40
	tcpMinLen    = 20
	udpLen       = 8
	etherTypeIP4 = 0x0800
	etherTypeIP6 = 0x86dd
	protoTCP     = 6
	protoUDP     = 17

	tcpCsumOffset = 16 // checksum field within the TCP header
	udpCsumOffset = 6  // checksum field within the UDP header

	// maxIPLen is the largest IP packet a super-frame may carry: the IPv4 total length
	// field's limit, applied to IPv6 as well (no jumbograms, RFC 2675, through a TAP).
	maxIPLen = 65535
	// MaxFrameLen is the largest Ethernet frame (without virtio_net_hdr) a Coalescer
	// builds or Segment accepts as a GSO super-frame.
	MaxFrameLen = ethLen + maxIPLen
	// MinBufLen is the buffer size that lets a Coalescer build super-frames of the full
	// 64 KB: a virtio_net_hdr followed by the largest frame.
	MinBufLen = HdrLen + MaxFrameLen
)

// TCP flag bits (byte 13 of the TCP header).
const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpPSH = 0x08
	tcpACK = 0x10
	tcpURG = 0x20
	tcpECE = 0x40
	tcpCWR = 0x80
)

// ipv4MF and ipv4FragOff mask the More Fragments flag and the fragment offset in the
// IPv4 flags/fragment-offset word.
const (
	ipv4MF      = 0x2000
	ipv4FragOff = 0x1fff
)

// layout locates the headers of an Ethernet + IPv4/IPv6 + TCP/UDP frame. The IP
// header always starts at ethLen.
type layout struct {
	l4     int   // offset of the transport header
	hdrEnd int   // offset of the payload: end of the transport header
	end    int   // end of the IP packet; bytes after it (Ethernet padding) are not part of it
	proto  uint8 // protoTCP or protoUDP
	v6     bool
}

// addrSum returns the folded one's complement sum of the source and destination
// addresses, the part of the pseudo-header that is the same for every segment of a
// flow; adding the protocol and the transport length completes it.
func addrSum(frame []byte, v6 bool) uint32 {
	if v6 {
		return uint32(packet.Sum(frame[ethLen+8:ethLen+40], 0))
	}
	return uint32(packet.Sum(frame[ethLen+12:ethLen+20], 0))
}

// be16 reads a big-endian 16-bit field; be32 a 32-bit one. Callers check the bounds.
func be16(b []byte) uint16 { return binary.BigEndian.Uint16(b) }
func be32(b []byte) uint32 { return binary.BigEndian.Uint32(b) }
