package offload

import (
	"encoding/binary"

	"github.com/vxdp/vxdp/dataplane/packet"
)

// Segment is software GSO for egress: it cuts frame, one Ethernet frame read from a
// TAP behind its virtio_net_hdr hdr, into frames whose IP packets are at most mtu
// bytes, and writes them to out[i][headroom:headroom+sizes[i]] for i < n. The first
// headroom bytes of every out[i] are left untouched for the outer headers. frame is
// only read.
//
// hdr.GSOType decides:
//
//   - GSONone: frame is copied as the single segment. If hdr has FlagNeedsCsum, the
//     Internet checksum of frame[CsumStart:] (the field at CsumStart+CsumOffset, which
//     holds the partial sum, included) is completed and stored in that field, 0 sent
//     as 0xffff, as the kernel's skb_checksum_help does (CsumOffset must be even).
//     frame's IP packet (len(frame)-14) must fit mtu.
//   - GSOTCPv4, GSOTCPv6 (optionally | GSOECN): frame must be Ethernet + IPv4 (options
//     allowed, no fragment) or IPv6 (no extension header) + TCP, its IP length equal
//     to the frame's. Each segment carries hdr.GSOSize payload bytes, or fewer when
//     the headers plus GSOSize exceed mtu (TCP is a byte stream, so a smaller segment
//     is correct), the last one the rest. Every segment gets a copy of the headers
//     with: sequence number advanced by the payload before it; CWR kept only on the
//     first, FIN and PSH only on the last; IPv4 total length, ID (the super-frame's
//     plus the segment's index, modulo 2^16, as the kernel's inet_gso_segment does)
//     and header checksum, or IPv6 payload length; a complete TCP checksum.
//   - GSOUDPL4 (USO): as TCP but each segment is a UDP datagram of hdr.GSOSize payload
//     bytes (the last one the rest) with its own UDP length and complete checksum.
//     GSOSize is the application's datagram size: if headers plus GSOSize exceed mtu,
//     ErrMTU.
//
// For a GSO frame, Segment finds the headers itself: hdr.HdrLen is ignored, because
// the kernel fills it with the length of the skb's linear part, which may include
// payload. If hdr has FlagNeedsCsum, CsumStart must be the transport header and
// CsumOffset its checksum field's offset; the partial sum in the frame is not used,
// checksums are computed from scratch. A GSO frame whose payload is at most one
// segment gives one segment. FlagDataValid is ignored.
//
// Errors (nothing useful is in out then): ErrBadHeader, ErrGSOType (UFO, or type and
// frame disagree), ErrGSOSize, ErrCsumStart, ErrMalformed, ErrUnsupported, ErrMTU,
// ErrTooManySegments (more segments than len(out) or len(sizes)), ErrShortBuffer
// (headroom negative, or an out[i] shorter than headroom plus its segment). Segment
// never panics and never allocates.
func Segment(hdr VirtioNetHdr, frame []byte, mtu int, out [][]byte, sizes []int, headroom int) (n int, err error) {
	if err := hdr.check(); err != nil {
		return 0, err
	}
	if headroom < 0 {
		return 0, ErrShortBuffer
	}
	if hdr.GSOType == GSONone {
		return segmentNone(hdr, frame, mtu, out, sizes, headroom)
	}
	var l layout
	seg, n, err := plan(hdr, frame, len(frame), mtu, &l)
	if err != nil {
		return 0, err
	}
	return writeSegments(frame, &l, seg, n, out, sizes, headroom, false)
}

// SegmentPlaced is Segment for a GSO super-frame whose payload a scattering read has
// already put where Segment would copy it: head holds the frame's first bytes, its
// headers at least (HeaderLen), frameLen is the whole frame's length, and the payload of
// segment i lies at out[i][headroom+h:headroom+sizes[i]], h being the header length and
// the payload pieces PayloadPerSegment bytes each (the last one the rest). SegmentPlaced
// writes each segment's headers in front of its payload, as Segment does, and returns
// the number of segments. It takes GSO frames only (ErrGSOType for GSONone); its errors
// are otherwise Segment's, ErrShortBuffer also for a head shorter than the headers.
func SegmentPlaced(hdr VirtioNetHdr, head []byte, frameLen, mtu int, out [][]byte, sizes []int, headroom int) (int, error) {
	if err := hdr.check(); err != nil {
		return 0, err
	}
	if hdr.GSOType == GSONone {
		return 0, ErrGSOType
	}
	if headroom < 0 {
		return 0, ErrShortBuffer
	}
	var l layout
	seg, n, err := plan(hdr, head, frameLen, mtu, &l)
	if err != nil {
		return 0, err
	}
	return writeSegments(head, &l, seg, n, out, sizes, headroom, true)
}

// PayloadPerSegment returns the header length and the payload bytes per segment Segment
// gives a GSO super-frame of frameLen bytes whose headers head holds, which is what a
// scattering read needs to place the payload for SegmentPlaced. Its errors are
// SegmentPlaced's.
func PayloadPerSegment(hdr VirtioNetHdr, head []byte, frameLen, mtu int) (hdrLen, seg int, err error) {
	if err := hdr.check(); err != nil {
		return 0, 0, err
	}
	if hdr.GSOType == GSONone {
		return 0, 0, ErrGSOType
	}
	var l layout
	if seg, _, err = plan(hdr, head, frameLen, mtu, &l); err != nil {
		return 0, 0, err
	}
	return l.hdrEnd, seg, nil
}

// writeSegments writes the n segments of seg payload bytes each of the super-frame laid
// out in l whose headers frame holds; with placed, the payload is already in out, else it
// is copied from frame.
func writeSegments(frame []byte, l *layout, seg, n int, out [][]byte, sizes []int, headroom int, placed bool) (int, error) {
	hl := l.hdrEnd // header bytes copied into every segment
	payload := l.end - l.hdrEnd
	if n > len(out) || n > len(sizes) {
		return 0, ErrTooManySegments
	}
	for i := range n {
		size := hl + min(seg, payload-i*seg)
		if len(out[i]) < headroom || len(out[i])-headroom < size {
			return 0, ErrShortBuffer
		}
	}

	asum := addrSum(frame, l.v6)
	csumAt := l.l4 + udpCsumOffset
	var seq uint32
	var flags uint8
	if l.proto == protoTCP {
		csumAt = l.l4 + tcpCsumOffset
		seq = be32(frame[l.l4+4 : l.l4+8])
		flags = frame[l.l4+13]
	}
	var id uint16
	if !l.v6 {
		id = be16(frame[ethLen+4 : ethLen+6])
	}
	for i := range n {
		off := hl + i*seg
		chunk := min(seg, l.end-off)
		size := hl + chunk
		dst := out[i][headroom : headroom+size]
		copy(dst[:hl], frame[:hl])
		if !placed {
			copy(dst[hl:], frame[off:off+chunk])
		}

		ipLen := size - ethLen
		if l.v6 {
			binary.BigEndian.PutUint16(dst[ethLen+4:ethLen+6], uint16(ipLen-ipv6Len))
		} else {
			binary.BigEndian.PutUint16(dst[ethLen+2:ethLen+4], uint16(ipLen))
			binary.BigEndian.PutUint16(dst[ethLen+4:ethLen+6], id+uint16(i))
			dst[ethLen+10], dst[ethLen+11] = 0, 0
			binary.BigEndian.PutUint16(dst[ethLen+10:ethLen+12], packet.Checksum(dst[ethLen:l.l4], 0))
		}

		l4Len := size - l.l4
		if l.proto == protoTCP {
			binary.BigEndian.PutUint32(dst[l.l4+4:l.l4+8], seq+uint32(i*seg))
			f := flags
			if i > 0 {
				f &^= tcpCWR
			}
			if i < n-1 {
				f &^= tcpFIN | tcpPSH
			}
			dst[l.l4+13] = f
		} else {
			binary.BigEndian.PutUint16(dst[l.l4+4:l.l4+6], uint16(l4Len))
		}
		dst[csumAt], dst[csumAt+1] = 0, 0
		c := packet.Checksum(dst[l.l4:size], asum+uint32(l.proto)+uint32(l4Len))
		if c == 0 && l.proto == protoUDP {
			c = 0xffff // 0 means "no checksum" in UDP (RFC 768)
		}
		binary.BigEndian.PutUint16(dst[csumAt:csumAt+2], c)
		sizes[i] = size
	}
	return n, nil
}

// Segments returns how many frames Segment would cut a GSO super-frame into, and the
// length of the headers each of them repeats, without writing anything; for a frame
// without GSO, 1 and 0. Its errors are Segment's (but those about output buffers).
func Segments(hdr VirtioNetHdr, frame []byte, mtu int) (n, hdrLen int, err error) {
	if err := hdr.check(); err != nil {
		return 0, 0, err
	}
	if hdr.GSOType == GSONone {
		return 1, 0, nil
	}
	var l layout
	if _, n, err = plan(hdr, frame, len(frame), mtu, &l); err != nil {
		return 0, 0, err
	}
	return n, l.hdrEnd, nil
}

// plan parses a GSO super-frame of frameLen bytes, whose headers frame holds, into l and
// returns the payload bytes per segment and the number of segments.
func plan(hdr VirtioNetHdr, frame []byte, frameLen, mtu int, l *layout) (seg, n int, err error) {
	if err := parseGSO(hdr, frame, frameLen, l); err != nil {
		return 0, 0, err
	}
	ipHdrs := l.hdrEnd - ethLen // IP + transport headers, counted against the MTU
	seg = int(hdr.GSOSize)
	if ipHdrs+seg > mtu {
		if l.proto == protoUDP {
			return 0, 0, ErrMTU
		}
		seg = mtu - ipHdrs
		if seg <= 0 {
			return 0, 0, ErrMTU
		}
	}
	n = 1
	if payload := l.end - l.hdrEnd; payload > seg {
		n = (payload + seg - 1) / seg
	}
	return seg, n, nil
}

// segmentNone handles a frame without GSO: one segment, its checksum completed if
// FlagNeedsCsum asks for it.
func segmentNone(hdr VirtioNetHdr, frame []byte, mtu int, out [][]byte, sizes []int, headroom int) (int, error) {
	if len(frame) < ethLen {
		return 0, ErrMalformed
	}
	if len(frame)-ethLen > mtu {
		return 0, ErrMTU
	}
	if err := checkCsumField(hdr, frame); err != nil {
		return 0, err
	}
	if len(out) < 1 || len(sizes) < 1 {
		return 0, ErrTooManySegments
	}
	if len(out[0]) < headroom || len(out[0])-headroom < len(frame) {
		return 0, ErrShortBuffer
	}
	dst := out[0][headroom : headroom+len(frame)]
	copy(dst, frame)
	completeChecksum(hdr, dst)
	sizes[0] = len(frame)
	return 1, nil
}

// CompleteChecksum is Segment for a frame without GSO, in place: if hdr has
// FlagNeedsCsum, it completes the checksum in frame itself. It returns ErrBadHeader,
// ErrGSOType for a GSO frame (Segment's), ErrMalformed for a frame shorter than an
// Ethernet header, ErrCsumStart, or ErrMTU if frame's IP packet exceeds mtu.
func CompleteChecksum(hdr VirtioNetHdr, frame []byte, mtu int) error {
	if err := hdr.check(); err != nil {
		return err
	}
	switch {
	case hdr.GSOType != GSONone:
		return ErrGSOType
	case len(frame) < ethLen:
		return ErrMalformed
	case len(frame)-ethLen > mtu:
		return ErrMTU
	}
	if err := checkCsumField(hdr, frame); err != nil {
		return err
	}
	completeChecksum(hdr, frame)
	return nil
}

// checkCsumField checks that the checksum field hdr points at lies within frame.
func checkCsumField(hdr VirtioNetHdr, frame []byte) error {
	at := int(hdr.CsumStart) + int(hdr.CsumOffset)
	// An odd CsumOffset would put the field across the 16-bit words the checksum sums:
	// no protocol's checksum is there.
	if hdr.Flags&FlagNeedsCsum != 0 && (at+2 > len(frame) || hdr.CsumOffset%2 != 0) {
		return ErrCsumStart
	}
	return nil
}

// completeChecksum stores the checksum hdr asks for, if any, into frame; the field
// holds the partial sum meanwhile. checkCsumField has passed.
func completeChecksum(hdr VirtioNetHdr, frame []byte) {
	if hdr.Flags&FlagNeedsCsum == 0 {
		return
	}
	at := int(hdr.CsumStart) + int(hdr.CsumOffset)
	c := packet.Checksum(frame[hdr.CsumStart:], 0)
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(frame[at:at+2], c)
}

// parseGSO checks a GSO super-frame of frameLen bytes against its header and locates its
// headers, which frame holds: the whole frame, or its first bytes (then a frame too short
// for its headers is ErrMalformed).
func parseGSO(hdr VirtioNetHdr, frame []byte, frameLen int, l *layout) error {
	gso := hdr.GSOType &^ GSOECN
	if gso == GSOUDP || (gso == GSOUDPL4 && hdr.GSOType&GSOECN != 0) {
		return ErrGSOType
	}
	if hdr.GSOSize == 0 {
		return ErrGSOSize
	}
	if len(frame) < ethLen {
		return ErrMalformed
	}
	switch be16(frame[12:14]) {
	case etherTypeIP4:
		if gso == GSOTCPv6 {
			return ErrGSOType
		}
		if len(frame) < ethLen+ipv4MinLen || frame[ethLen]>>4 != 4 {
			return ErrMalformed
		}
		ihl := int(frame[ethLen]&0x0f) * 4
		total := int(be16(frame[ethLen+2 : ethLen+4]))
		if ihl < ipv4MinLen || total < ihl || ethLen+total != frameLen {
			return ErrMalformed
		}
		if be16(frame[ethLen+6:ethLen+8])&(ipv4MF|ipv4FragOff) != 0 {
			return ErrUnsupported
		}
		l.v6 = false
		l.proto = frame[ethLen+9]
		l.l4 = ethLen + ihl
	case etherTypeIP6:
		if gso == GSOTCPv4 {
			return ErrGSOType
		}
		if len(frame) < ethLen+ipv6Len || frame[ethLen]>>4 != 6 {
			return ErrMalformed
		}
		if ethLen+ipv6Len+int(be16(frame[ethLen+4:ethLen+6])) != frameLen {
			return ErrMalformed
		}
		l.v6 = true
		l.proto = frame[ethLen+6]
		if l.proto != protoTCP && l.proto != protoUDP {
			return ErrUnsupported // an extension header, or no transport GSO applies to
		}
		l.l4 = ethLen + ipv6Len
	default:
		return ErrUnsupported
	}
	l.end = frameLen
	if len(frame) > frameLen {
		return ErrMalformed
	}
	csumOffset := udpCsumOffset
	switch l.proto {
	case protoTCP:
		if gso == GSOUDPL4 {
			return ErrGSOType
		}
		if l.l4+tcpMinLen > len(frame) {
			return ErrMalformed
		}
		doff := int(frame[l.l4+12]>>4) * 4
		if doff < tcpMinLen || l.l4+doff > len(frame) {
			return ErrMalformed
		}
		l.hdrEnd = l.l4 + doff
		csumOffset = tcpCsumOffset
	case protoUDP:
		if gso != GSOUDPL4 {
			return ErrGSOType
		}
		if l.l4+udpLen > len(frame) || int(be16(frame[l.l4+4:l.l4+6])) != l.end-l.l4 {
			return ErrMalformed
		}
		l.hdrEnd = l.l4 + udpLen
	default:
		return ErrGSOType
	}
	if hdr.Flags&FlagNeedsCsum != 0 && (int(hdr.CsumStart) != l.l4 || int(hdr.CsumOffset) != csumOffset) {
		return ErrCsumStart
	}
	return nil
}
