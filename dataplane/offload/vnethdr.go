package offload

import "encoding/binary"

// HdrLen is the size in bytes of struct virtio_net_hdr, the header in front of every
// frame read from or written to a TAP opened with IFF_VNET_HDR (the default header
// size: vxdp never calls TUNSETVNETHDRSZ).
const HdrLen = 10

// virtio_net_hdr flags (include/uapi/linux/virtio_net.h).
const (
	// FlagNeedsCsum (VIRTIO_NET_HDR_F_NEEDS_CSUM): the checksum from CsumStart to the
	// end of the frame is still to be computed and stored at CsumStart+CsumOffset;
	// that field holds the folded pseudo-header sum meanwhile.
	FlagNeedsCsum uint8 = 1
	// FlagDataValid (VIRTIO_NET_HDR_F_DATA_VALID): the writer verified the checksums.
	FlagDataValid uint8 = 2
)

// virtio_net_hdr GSO types (include/uapi/linux/virtio_net.h).
const (
	GSONone  uint8 = 0    // VIRTIO_NET_HDR_GSO_NONE: one frame, no segmentation
	GSOTCPv4 uint8 = 1    // VIRTIO_NET_HDR_GSO_TCPV4: TSO over IPv4
	GSOUDP   uint8 = 3    // VIRTIO_NET_HDR_GSO_UDP: UFO (IP fragmentation), deprecated, not segmented here
	GSOTCPv6 uint8 = 4    // VIRTIO_NET_HDR_GSO_TCPV6: TSO over IPv6
	GSOUDPL4 uint8 = 5    // VIRTIO_NET_HDR_GSO_UDP_L4: USO, one UDP datagram per segment
	GSOECN   uint8 = 0x80 // VIRTIO_NET_HDR_GSO_ECN: flag on a TCP type, the first segment carries CWR
)

// VirtioNetHdr is struct virtio_net_hdr, the 10-byte header in front of every frame a
// TAP with IFF_VNET_HDR reads or writes. Its 16-bit fields are little-endian on the
// wire (a TAP's default on little-endian hosts; a big-endian host must set
// TUNSETVNETLE). Offsets count from the start of the Ethernet frame.
type VirtioNetHdr struct {
	Flags      uint8  // FlagNeedsCsum, FlagDataValid
	GSOType    uint8  // GSONone, GSOTCPv4, GSOTCPv6, GSOUDPL4, optionally | GSOECN
	HdrLen     uint16 // a hint: Ethernet+IP+transport header length (see Segment)
	GSOSize    uint16 // payload bytes per segment, transport header excluded
	CsumStart  uint16 // where the checksummed region starts: the transport header
	CsumOffset uint16 // position of the checksum field from CsumStart: 16 TCP, 6 UDP
}

// Decode reads a virtio_net_hdr from the first HdrLen bytes of b. It refuses a short
// b (ErrShortHeader) and unknown flag bits or GSO types (ErrBadHeader: only
// FlagNeedsCsum and FlagDataValid; GSOECN only on a GSO type). Whether the offsets fit
// a frame is Segment's check.
func Decode(b []byte) (VirtioNetHdr, error) {
	if len(b) < HdrLen {
		return VirtioNetHdr{}, ErrShortHeader
	}
	h := VirtioNetHdr{
		Flags:      b[0],
		GSOType:    b[1],
		HdrLen:     binary.LittleEndian.Uint16(b[2:4]),
		GSOSize:    binary.LittleEndian.Uint16(b[4:6]),
		CsumStart:  binary.LittleEndian.Uint16(b[6:8]),
		CsumOffset: binary.LittleEndian.Uint16(b[8:10]),
	}
	if err := h.check(); err != nil {
		return VirtioNetHdr{}, err
	}
	return h, nil
}

// check refuses unknown flag bits and GSO types.
func (h VirtioNetHdr) check() error {
	if h.Flags&^(FlagNeedsCsum|FlagDataValid) != 0 {
		return ErrBadHeader
	}
	switch h.GSOType &^ GSOECN {
	case GSONone:
		if h.GSOType&GSOECN != 0 {
			return ErrBadHeader
		}
	case GSOTCPv4, GSOTCPv6, GSOUDP, GSOUDPL4:
	default:
		return ErrBadHeader
	}
	return nil
}

// Encode writes h into b[:HdrLen]. b must be at least HdrLen bytes long; Encode checks
// that first, so a shorter b is a caller's bug that panics here rather than corrupting
// memory elsewhere.
func (h VirtioNetHdr) Encode(b []byte) {
	_ = b[HdrLen-1]
	b[0] = h.Flags
	b[1] = h.GSOType
	binary.LittleEndian.PutUint16(b[2:4], h.HdrLen)
	binary.LittleEndian.PutUint16(b[4:6], h.GSOSize)
	binary.LittleEndian.PutUint16(b[6:8], h.CsumStart)
	binary.LittleEndian.PutUint16(b[8:10], h.CsumOffset)
}
