package packet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"
)

// Outer header lengths written by Encap, in bytes: Ethernet without a tag, IP
// without options or extension headers, UDP, VXLAN.
const (
	HeadroomIPv4 = ethHeaderLen + ipv4HeaderLen + udpHeaderLen + vxlanHeaderLen // 50
	HeadroomIPv6 = ethHeaderLen + ipv6HeaderLen + udpHeaderLen + vxlanHeaderLen // 70
	// Headroom is the larger of the two: a buffer with Headroom free bytes in
	// front of the inner frame takes the outer headers of either family.
	Headroom = HeadroomIPv6
)

// ErrInvalidEncap is wrapped by NewEncap's errors.
var ErrInvalidEncap = errors.New("invalid encapsulation parameters")

// maxVNI is the largest 24-bit VNI.
const maxVNI = 1<<24 - 1

// DF is what an Encap writes into the outer IPv4 header's don't-fragment flag, as the
// Linux vxlan device's df option.
type DF uint8

// DF settings.
const (
	// DFUnset sends IPv4 with DF clear (the kernel's default), so that an underlay hop
	// with a smaller MTU fragments rather than drops.
	DFUnset DF = iota
	// DFSet sends IPv4 with DF set.
	DFSet
	// DFInherit copies DF from the inner IPv4 header; clear for other inner frames.
	DFInherit
)

// HeaderOptions are the per-packet choices of the outer IP and UDP headers, the Linux
// vxlan device's ttl, tos, df and udpcsum options. The zero value is not valid (TTL 0
// inherits): DefaultHeaderOptions are the kernel's defaults.
type HeaderOptions struct {
	// TTL is the outer IPv4 TTL or IPv6 hop limit; 0 inherits the inner IP header's (64
	// for a frame that carries no IP).
	TTL uint8
	// TOS is the outer IPv4 TOS byte or IPv6 traffic class; only its DSCP (upper six
	// bits) is used: the ECN field always follows the inner packet's (RFC 6040).
	TOS uint8
	// TOSInherit copies the inner IP header's DSCP instead of TOS (0 for non-IP frames).
	TOSInherit bool
	// DF is the outer IPv4 don't-fragment flag; IPv6 has none.
	DF DF
	// UDPChecksum computes the outer UDP checksum over IPv4 (RFC 7348 lets it be 0, the
	// default); over IPv6 it is always computed.
	UDPChecksum bool
}

// DefaultHeaderOptions are the Linux vxlan device's defaults: TTL 64, TOS 0, DF clear,
// no UDP checksum over IPv4.
var DefaultHeaderOptions = HeaderOptions{TTL: 64}

// inheritTTL, inheritTOS and inheritDF mark the fields an Encap reads from the inner
// header per packet.
const (
	inheritTTL = 1 << iota
	inheritTOS
	inheritDF
)

// ttlNonIP is the outer TTL inherited from a frame that carries no IP, as the kernel's
// vxlan uses the route's hop limit (64 by default).
const ttlNonIP = 64

// Encap writes the outer headers towards one remote VTEP for one VNI. The
// headers are prebuilt once; per packet only the lengths, the UDP source port,
// the ECN field (copied from the inner IP header, RFC 6040 normal mode), the
// fields HeaderOptions inherit, and the IPv4 ID and header checksum or the UDP
// checksum change.
//
// An Encap is safe for concurrent use by several egress workers: the template
// is read-only after NewEncap and the IPv4 ID counter is atomic.
type Encap struct {
	hdr [Headroom]byte // template; UDP source port, lengths, ID, checksums zero
	n   int            // header length: HeadroomIPv4 or HeadroomIPv6
	v6  bool
	// base is, for IPv4, the one's complement sum of the template's IP header
	// (the zeroed fields contribute nothing); for IPv6, the pseudo-header sum of
	// the addresses and protocol, without the length.
	base    uint32
	inherit uint8         // inheritTTL | inheritTOS | inheritDF
	csum4   bool          // an IPv4 UDP checksum (HeaderOptions.UDPChecksum)
	id      atomic.Uint32 // IPv4 identification, low 16 bits used
}

// NewEncap builds the template for frames from srcMAC to the next hop dstMAC,
// from the local VTEP address src to the remote VTEP dst (same family, no
// zone), to UDP port port, in VNI vni (24 bits; 0 is allowed, the receiver's
// policy decides), with IPv4 TTL or IPv6 hop limit ttl. IPv4 frames go out with
// DF clear, as Linux vxlan sends them by default, so an underlay hop with a
// smaller MTU fragments rather than drops; the UDP checksum is 0 (RFC 7348
// section 5). IPv6 frames carry a computed UDP checksum and flow label 0.
func NewEncap(srcMAC, dstMAC [6]byte, src, dst netip.Addr, port uint16, vni uint32, ttl uint8) (*Encap, error) {
	if ttl == 0 {
		return nil, fmt.Errorf("new encap: ttl 0: %w", ErrInvalidEncap)
	}
	return NewEncapOptions(srcMAC, dstMAC, src, dst, port, vni, HeaderOptions{TTL: ttl})
}

// NewEncapOptions is NewEncap with the outer headers' options given in full.
func NewEncapOptions(srcMAC, dstMAC [6]byte, src, dst netip.Addr, port uint16, vni uint32, opts HeaderOptions) (*Encap, error) {
	switch {
	case !src.IsValid() || !dst.IsValid():
		return nil, fmt.Errorf("new encap: missing address (src %v, dst %v): %w", src, dst, ErrInvalidEncap)
	case src.Is4() != dst.Is4():
		return nil, fmt.Errorf("new encap: address families differ (src %v, dst %v): %w", src, dst, ErrInvalidEncap)
	case src.Zone() != "" || dst.Zone() != "":
		return nil, fmt.Errorf("new encap: zoned address (src %v, dst %v): %w", src, dst, ErrInvalidEncap)
	case vni > maxVNI:
		return nil, fmt.Errorf("new encap: vni %d above 24 bits: %w", vni, ErrInvalidEncap)
	case port == 0:
		return nil, fmt.Errorf("new encap: udp port 0: %w", ErrInvalidEncap)
	case opts.DF > DFInherit:
		return nil, fmt.Errorf("new encap: df %d: %w", opts.DF, ErrInvalidEncap)
	}
	e := &Encap{v6: src.Is6(), csum4: opts.UDPChecksum}
	ttl, tos := opts.TTL, opts.TOS&^ECNMask
	if ttl == 0 {
		e.inherit |= inheritTTL
	}
	if opts.TOSInherit {
		e.inherit |= inheritTOS
		tos = 0
	}
	h := e.hdr[:]
	copy(h[0:6], dstMAC[:])
	copy(h[6:12], srcMAC[:])
	var udp []byte
	if e.v6 {
		e.n = HeadroomIPv6
		binary.BigEndian.PutUint16(h[12:14], etherTypeIPv6)
		ip := h[ethHeaderLen : ethHeaderLen+ipv6HeaderLen]
		ip[0] = 6<<4 | tos>>4 // version, traffic class; flow label 0
		ip[1] = tos << 4
		ip[6] = protoUDP
		ip[7] = ttl
		s, d := src.As16(), dst.As16()
		copy(ip[8:24], s[:])
		copy(ip[24:40], d[:])
		e.base = pseudoSum6(ip[8:24], ip[24:40], protoUDP, 0)
		udp = h[ethHeaderLen+ipv6HeaderLen:]
	} else {
		e.n = HeadroomIPv4
		binary.BigEndian.PutUint16(h[12:14], etherTypeIPv4)
		ip := h[ethHeaderLen : ethHeaderLen+ipv4HeaderLen]
		ip[0] = 4<<4 | ipv4HeaderLen/4
		ip[1] = tos
		switch opts.DF {
		case DFSet:
			ip[6] = 0x40
		case DFInherit:
			e.inherit |= inheritDF
		}
		ip[8] = ttl
		ip[9] = protoUDP
		s, d := src.As4(), dst.As4()
		copy(ip[12:16], s[:])
		copy(ip[16:20], d[:])
		e.base = uint32(Sum(ip, 0))
		udp = h[ethHeaderLen+ipv4HeaderLen:]
	}
	binary.BigEndian.PutUint16(udp[2:4], port)
	vx := udp[udpHeaderLen:]
	vx[0] = vxlanFlagI
	vx[4], vx[5], vx[6] = byte(vni>>16), byte(vni>>8), byte(vni)
	return e, nil
}

// innerFields returns the TOS byte (or traffic class), TTL (or hop limit) and DF of an
// inner frame's IP header, untagged or behind one tag: 0, 64 and false for a frame
// without IP.
func innerFields(inner []byte) (tos, ttl uint8, df bool) {
	ip, v6 := innerIP(inner)
	switch {
	case ip == nil:
		return 0, ttlNonIP, false
	case v6:
		return ip[0]<<4 | ip[1]>>4, ip[7], false
	}
	return ip[1], ip[8], ip[6]&0x40 != 0
}

// Len returns the length of the outer headers: HeadroomIPv4 or HeadroomIPv6.
func (e *Encap) Len() int { return e.n }

// Write turns frame, Len() bytes of space followed by the inner Ethernet frame,
// into a VXLAN frame: it writes the outer headers into frame[:Len()] with UDP
// source port srcPort. The inner frame must be contiguous with the headers
// because the IPv6 UDP checksum covers it. Write reports false, and leaves
// frame untouched, when frame is shorter than Len() or the result would exceed
// the 16-bit IP or UDP length.
func (e *Encap) Write(frame []byte, srcPort uint16) bool {
	n := e.n
	if len(frame) < n {
		return false
	}
	// The inner IP header's TOS (or traffic class), TTL and DF, for the ECN field and
	// the inherited fields; a frame without IP gives Not-ECT, TOS 0, TTL 64, no DF.
	var tos, ttl uint8
	var df bool
	if in := frame[n:]; len(in) >= ethHeaderLen+ipv4HeaderLen && in[12] == 0x08 && in[13] == 0x00 && in[14]>>4 == 4 {
		// Untagged IPv4, the common case, without a call.
		tos, ttl, df = in[15], in[22], in[20]&0x40 != 0
	} else {
		tos, ttl, df = innerFields(in)
	}
	if e.inherit&inheritTOS == 0 {
		tos &= ECNMask // the template holds the DSCP; RFC 6040 normal mode copies the ECN field
	}
	if e.inherit&inheritTTL == 0 {
		ttl = 0 // the template holds it
	}
	if !e.v6 {
		total := len(frame) - ethHeaderLen
		if total > 0xffff {
			return false
		}
		copy(frame[:HeadroomIPv4], e.hdr[:HeadroomIPv4])
		ip := frame[ethHeaderLen : ethHeaderLen+ipv4HeaderLen]
		id := uint16(e.id.Add(1))
		// What the template holds zero: the lengths, the ID, the ECN field, and what
		// is inherited; each adds to the header's sum as it is.
		sum := e.base + uint32(total) + uint32(id) + uint32(tos) + uint32(ttl)<<8
		ip[1] |= tos
		ip[8] |= ttl
		if df && e.inherit&inheritDF != 0 {
			ip[6] |= 0x40
			sum += 0x4000
		}
		binary.BigEndian.PutUint16(ip[2:4], uint16(total))
		binary.BigEndian.PutUint16(ip[4:6], id)
		binary.BigEndian.PutUint16(ip[10:12], ^fold32(sum))
		udp := frame[ethHeaderLen+ipv4HeaderLen:]
		binary.BigEndian.PutUint16(udp[0:2], srcPort)
		binary.BigEndian.PutUint16(udp[4:6], uint16(total-ipv4HeaderLen))
		if e.csum4 {
			c := Checksum(udp, pseudoSum4(ip[12:16], ip[16:20], protoUDP, uint32(total-ipv4HeaderLen)))
			if c == 0 {
				c = 0xffff // 0 means "no checksum" (RFC 768)
			}
			binary.BigEndian.PutUint16(udp[6:8], c)
		}
		return true
	}
	payload := len(frame) - ethHeaderLen - ipv6HeaderLen
	if payload > 0xffff {
		return false
	}
	copy(frame[:HeadroomIPv6], e.hdr[:HeadroomIPv6])
	ip := frame[ethHeaderLen : ethHeaderLen+ipv6HeaderLen]
	ip[0] |= tos >> 4
	ip[1] |= tos << 4
	ip[7] |= ttl
	binary.BigEndian.PutUint16(ip[4:6], uint16(payload))
	udp := frame[ethHeaderLen+ipv6HeaderLen:]
	binary.BigEndian.PutUint16(udp[0:2], srcPort)
	binary.BigEndian.PutUint16(udp[4:6], uint16(payload))
	c := Checksum(udp, e.base+uint32(payload))
	if c == 0 {
		// 0 means "no checksum"; a computed 0 is sent as its other form (RFC 768).
		c = 0xffff
	}
	binary.BigEndian.PutUint16(udp[6:8], c)
	return true
}

// Prepend encapsulates the inner frame buf[off:off+innerLen], which has at
// least Len() bytes of headroom in front of it, and returns the whole VXLAN
// frame, a sub-slice of buf. It reports false when the headroom or buf is too
// short or the frame too long.
func (e *Encap) Prepend(buf []byte, off, innerLen int, srcPort uint16) ([]byte, bool) {
	if off < e.n || innerLen < 0 || innerLen > len(buf)-off {
		return nil, false
	}
	frame := buf[off-e.n : off+innerLen]
	if !e.Write(frame, srcPort) {
		return nil, false
	}
	return frame, true
}
