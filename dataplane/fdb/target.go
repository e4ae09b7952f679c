package fdb

import (
	"encoding/binary"
	"strconv"
)

// Target is where a MAC address lives: a local port or a remote VTEP of the VNI, named by an
// index into a table the caller owns (its ports, its remote VTEPs). It fits 15 bits: bit 14 tells
// a remote VTEP from a local port, bits 0-13 hold the index plus one, so the zero value is None.
// Bit 15 is never set in a valid Target; the table uses it inside its slots for the static flag.
type Target uint16

// None is the zero Target: no destination. Lookup returns it on a miss; Learn and Static reject it.
const None Target = 0

const (
	// targetRemote marks a remote VTEP; its absence marks a local port.
	targetRemote Target = 1 << 14
	// targetIndex holds the index plus one, so that index 0 of either kind is not None.
	targetIndex Target = targetRemote - 1
	// MaxIndex is the largest index LocalPort and RemoteVTEP accept (16382): 14 bits minus None.
	MaxIndex = int(targetIndex) - 1
)

// LocalPort returns the Target of local port i, an index into the caller's ports of this VNI.
// It panics if i is outside [0, MaxIndex], like an out-of-range slice index: callers validate
// their port count against MaxIndex once, at configuration time.
func LocalPort(i int) Target {
	if uint(i) > uint(MaxIndex) {
		panic("fdb: local port index out of range")
	}
	return Target(i + 1)
}

// RemoteVTEP returns the Target of remote VTEP i, an index into the caller's remote VTEPs of
// this VNI. It panics if i is outside [0, MaxIndex], as LocalPort does.
func RemoteVTEP(i int) Target {
	if uint(i) > uint(MaxIndex) {
		panic("fdb: remote VTEP index out of range")
	}
	return targetRemote | Target(i+1)
}

// Valid reports whether t was made by LocalPort or RemoteVTEP (None and stray bits are not valid).
func (t Target) Valid() bool {
	return t&^(targetRemote|targetIndex) == 0 && t&targetIndex != 0
}

// IsLocal reports whether t is a local port. None is neither local nor remote.
func (t Target) IsLocal() bool { return t&targetRemote == 0 && t&targetIndex != 0 }

// IsRemote reports whether t is a remote VTEP. None is neither local nor remote.
func (t Target) IsRemote() bool { return t&targetRemote != 0 && t&targetIndex != 0 }

// Index returns the index t was made from, into the caller's ports (IsLocal) or remote VTEPs
// (IsRemote); it returns -1 for None.
func (t Target) Index() int { return int(t&targetIndex) - 1 }

// String formats t as "local:3", "remote:7" or "none", for logs and the /fdb endpoint.
func (t Target) String() string {
	switch {
	case !t.Valid():
		if t == None {
			return "none"
		}
		return "invalid:" + strconv.Itoa(int(t))
	case t.IsLocal():
		return "local:" + strconv.Itoa(t.Index())
	default:
		return "remote:" + strconv.Itoa(t.Index())
	}
}

// MAC is a 48-bit Ethernet address in wire order.
type MAC [6]byte

// MACFrom returns the MAC address in the first six bytes of b, such as frame[0:6] (destination)
// or frame[6:12] (source) of an Ethernet frame. It copies six bytes and never allocates; it
// panics if len(b) < 6, so callers check the frame length first, as they must anyway.
func MACFrom(b []byte) MAC { return MAC(b[:6]) }

// key packs m into the low 48 bits of a uint64, the form the table stores.
func (m MAC) key() uint64 {
	return uint64(binary.BigEndian.Uint32(m[0:4]))<<16 | uint64(binary.BigEndian.Uint16(m[4:6]))
}

// macFromKey is the inverse of MAC.key.
func macFromKey(k uint64) MAC {
	var m MAC
	binary.BigEndian.PutUint32(m[0:4], uint32(k>>16))
	binary.BigEndian.PutUint16(m[4:6], uint16(k))
	return m
}

// String formats m as six colon-separated lowercase hex bytes, as ip-link prints it.
func (m MAC) String() string {
	const hexDigits = "0123456789abcdef"
	var b [17]byte
	for i, v := range m {
		if i > 0 {
			b[3*i-1] = ':'
		}
		b[3*i] = hexDigits[v>>4]
		b[3*i+1] = hexDigits[v&0xf]
	}
	return string(b[:])
}
