package packet

import (
	"encoding/binary"
	"testing"
)

func TestSourcePortSpread(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		seen := make(map[uint16]int)
		for p := 0; p < 1000; p++ {
			inner := buildInner(t, v6, uint16(20000+p), 443, 0)
			sp := SourcePort(inner)
			if sp < SourcePortMin || sp > SourcePortMax {
				t.Fatalf("port %d out of range", sp)
			}
			seen[sp]++
		}
		// 1000 keys into 16384 ports: about 970 distinct if the hash is uniform.
		if len(seen) < 900 {
			t.Errorf("v6 %v: %d distinct ports for 1000 flows", v6, len(seen))
		}
	}
}

func TestSourcePortFlow(t *testing.T) {
	a := buildInner(t, false, 1234, 80, 10)
	b := buildInner(t, false, 1234, 80, 900) // same flow, other payload and lengths
	if SourcePort(a) != SourcePort(b) {
		t.Error("same flow, different ports")
	}
	c := append([]byte(nil), a...)
	c[14+8]-- // TTL: not part of the flow
	if SourcePort(a) != SourcePort(c) {
		t.Error("TTL changed the port")
	}
	differs := func(name string, f func([]byte)) {
		t.Helper()
		// Several variants, since two flows may collide by chance (1 in 16384).
		same := 0
		for i := 1; i <= 4; i++ {
			g := append([]byte(nil), a...)
			for j := 0; j < i; j++ {
				f(g)
			}
			if SourcePort(g) == SourcePort(a) {
				same++
			}
		}
		if same > 1 {
			t.Errorf("%s: port unchanged in %d of 4 variants", name, same)
		}
	}
	differs("inner dst MAC", func(g []byte) { g[5]++ })
	differs("inner src MAC", func(g []byte) { g[11]++ })
	differs("inner src IP first byte", func(g []byte) { g[14+12]++ })
	differs("inner dst IP", func(g []byte) { g[14+19]++ })
	differs("protocol", func(g []byte) { g[14+9] += 3 })
	differs("src port", func(g []byte) { g[34+1]++ })
	differs("dst port", func(g []byte) { g[34+3]++ })

	// Every fragment of a datagram gets the port of the first.
	first := append([]byte(nil), a...)
	first[14+6] = 0x20 // MF
	later := append([]byte(nil), a...)
	later[14+7] = 0x10 // offset
	later[34]++        // ports are payload bytes in a later fragment
	if SourcePort(first) != SourcePort(later) {
		t.Error("fragments of one datagram take different ports")
	}

	// IPv6 ports count too.
	v6 := buildInner(t, true, 1, 2, 0)
	v6b := append([]byte(nil), v6...)
	binary.BigEndian.PutUint16(v6b[54:], 3)
	v6c := append([]byte(nil), v6...)
	binary.BigEndian.PutUint16(v6c[54:], 4)
	if SourcePort(v6) == SourcePort(v6b) && SourcePort(v6) == SourcePort(v6c) {
		t.Error("IPv6 source port ignored")
	}
	// A tag does not hide the flow.
	ta := tagInner(a, 0x8100)
	tb := append([]byte(nil), ta...)
	binary.BigEndian.PutUint16(tb[38:], 999)
	tc := append([]byte(nil), ta...)
	binary.BigEndian.PutUint16(tc[38:], 998)
	if SourcePort(ta) == SourcePort(tb) && SourcePort(ta) == SourcePort(tc) {
		t.Error("tagged frame hashed without its ports")
	}
}

func TestSourcePortShort(t *testing.T) {
	f := buildInner(t, true, 1, 2, 0)
	for n := 0; n <= len(f); n++ {
		if p := SourcePort(f[:n]); p < SourcePortMin {
			t.Fatalf("n %d: port %d", n, p)
		}
	}
}
