package packet

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
)

// Sum returns the folded 16-bit one's complement sum (RFC 1071) of b read as
// big-endian 16-bit words, plus initial. initial is an unfolded partial sum, such
// as PseudoHeaderSum's result or a previous Sum; an odd final byte counts as
// its high half. The result is not inverted: use Checksum for the field value.
//
// The loop adds 64-bit words with carry (math/bits.Add64), eight per round, and
// folds once at the end; the one's complement sum of 16-bit words equals the
// folded sum of wider words, because 2^16 ≡ 1 modulo 2^16-1.
func Sum(b []byte, initial uint32) uint16 {
	s := uint64(initial)
	var c uint64
	for len(b) >= 64 {
		s, c = bits.Add64(s, binary.BigEndian.Uint64(b[0:8]), c)
		s, c = bits.Add64(s, binary.BigEndian.Uint64(b[8:16]), c)
		s, c = bits.Add64(s, binary.BigEndian.Uint64(b[16:24]), c)
		s, c = bits.Add64(s, binary.BigEndian.Uint64(b[24:32]), c)
		s, c = bits.Add64(s, binary.BigEndian.Uint64(b[32:40]), c)
		s, c = bits.Add64(s, binary.BigEndian.Uint64(b[40:48]), c)
		s, c = bits.Add64(s, binary.BigEndian.Uint64(b[48:56]), c)
		s, c = bits.Add64(s, binary.BigEndian.Uint64(b[56:64]), c)
		b = b[64:]
	}
	for len(b) >= 8 {
		s, c = bits.Add64(s, binary.BigEndian.Uint64(b[0:8]), c)
		b = b[8:]
	}
	if len(b) >= 4 {
		s, c = bits.Add64(s, uint64(binary.BigEndian.Uint32(b[0:4])), c)
		b = b[4:]
	}
	if len(b) >= 2 {
		s, c = bits.Add64(s, uint64(binary.BigEndian.Uint16(b[0:2])), c)
		b = b[2:]
	}
	if len(b) == 1 {
		s, c = bits.Add64(s, uint64(b[0])<<8, c)
	}
	// The end-around carry: 2^64 ≡ 1 modulo 2^16-1.
	s, c = bits.Add64(s, 0, c)
	s += c
	return fold64(s)
}

// fold64 folds a 64-bit one's complement sum to 16 bits.
func fold64(s uint64) uint16 {
	s = (s >> 32) + (s & 0xffffffff) // at most 33 bits
	s = (s >> 32) + (s & 0xffffffff) // at most 32 bits
	return fold32(uint32(s))
}

// fold32 folds a 32-bit one's complement sum to 16 bits.
func fold32(s uint32) uint16 {
	s = (s >> 16) + (s & 0xffff) // at most 17 bits
	s = (s >> 16) + (s & 0xffff) // at most 16 bits
	return uint16(s)
}

// Checksum returns the Internet checksum of b with the partial sum initial: the
// inverted Sum, the value to store in an IPv4, UDP or TCP checksum field (that
// field zeroed while summing). Verifying a received header: Checksum over it,
// field included, is 0 when it is correct.
func Checksum(b []byte, initial uint32) uint16 {
	return ^Sum(b, initial)
}

// PseudoHeaderSum returns the unfolded one's complement sum of the TCP/UDP
// pseudo-header (RFC 768, RFC 793; RFC 8200 section 8.1 for IPv6): source and
// destination address, protocol and upper-layer length. Pass it as initial to
// Checksum over the transport header and payload. src and dst must be of the
// same family; an IPv4 address gives the IPv4 pseudo-header.
func PseudoHeaderSum(src, dst netip.Addr, proto uint8, length int) uint32 {
	if src.Is4() {
		s, d := src.As4(), dst.As4()
		return pseudoSum4(s[:], d[:], proto, uint32(length))
	}
	s, d := src.As16(), dst.As16()
	return pseudoSum6(s[:], d[:], proto, uint32(length))
}

// pseudoSum4 sums the IPv4 pseudo-header from 4-byte addresses. The result
// stays far below 2^32: 4 words of at most 0xffff plus protocol and length.
func pseudoSum4(src, dst []byte, proto uint8, length uint32) uint32 {
	_ = src[3]
	_ = dst[3]
	return uint32(binary.BigEndian.Uint16(src[0:2])) + uint32(binary.BigEndian.Uint16(src[2:4])) +
		uint32(binary.BigEndian.Uint16(dst[0:2])) + uint32(binary.BigEndian.Uint16(dst[2:4])) +
		uint32(proto) + (length >> 16) + (length & 0xffff)
}

// pseudoSum6 sums the IPv6 pseudo-header from 16-byte addresses. 16 words of
// at most 0xffff plus protocol and the 32-bit length stay below 2^21.
func pseudoSum6(src, dst []byte, proto uint8, length uint32) uint32 {
	_ = src[15]
	_ = dst[15]
	var s uint32
	for i := 0; i < 16; i += 2 {
		s += uint32(binary.BigEndian.Uint16(src[i:i+2])) + uint32(binary.BigEndian.Uint16(dst[i:i+2]))
	}
	return s + uint32(proto) + (length >> 16) + (length & 0xffff)
}
