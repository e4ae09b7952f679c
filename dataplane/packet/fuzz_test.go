package packet

import (
	"bytes"
	"testing"

	"github.com/google/gopacket/layers"
)

// outerSeeds returns real frames for the fuzz corpora: both families, tags,
// options, zero and computed checksums, padding, and a few near-misses.
func outerSeeds(f *testing.F) [][]byte {
	ra := layers.IPv4Option{OptionType: 0x94, OptionLength: 4, OptionData: []byte{0, 0}}
	var seeds [][]byte
	for _, v6 := range []bool{false, true} {
		for i, mod := range []func(*outerSpec){
			func(*outerSpec) {},
			func(s *outerSpec) { s.zeroUDPCsum = true },
			func(s *outerSpec) { s.tpid, s.vlanTCI = 0x8100, 100 },
			func(s *outerSpec) { s.tpid, s.pad = 0x88a8, 6 },
			func(s *outerSpec) { s.options = []layers.IPv4Option{ra} },
			func(s *outerSpec) { s.inner = buildInner(f, true, 5, 6, 20) },
			func(s *outerSpec) { s.inner = nil },
			func(s *outerSpec) { s.vni = 0 },
		} {
			s := defaultSpec(f, v6)
			mod(&s)
			frame := buildOuter(f, s)
			seeds = append(seeds, frame)
			if i == 0 {
				bad := append([]byte(nil), frame...)
				bad[len(bad)-1] ^= 1 // UDP checksum
				seeds = append(seeds, bad, frame[:60], frame[:14])
			}
		}
	}
	e4, _ := NewEncap(outerSrcMAC, outerDstMAC, outerSrc4, outerDst4, testPort, 42, 64)
	e6, _ := NewEncap(outerSrcMAC, outerDstMAC, outerSrc6, outerDst6, testPort, 42, 64)
	inner := buildInner(f, false, 1, 2, 30)
	seeds = append(seeds, encapFrame(f, e4, inner, 50000), encapFrame(f, e6, inner, 50001))
	return seeds
}

func FuzzParseOuter(f *testing.F) {
	for i, s := range outerSeeds(f) {
		f.Add(s, uint8(i%4), i%2 == 0)
	}
	f.Fuzz(func(t *testing.T, frame []byte, pol uint8, fix bool) {
		if fix {
			// Mutations rarely keep checksums right; fixing them lets
			// the fuzzer reach the checks behind them.
			refix(frame)
		}
		p := Policy(pol) & (AllowVXLANReserved | AllowVNIZero)
		var o Outer
		inner, r := ParseOuterPolicy(frame, testPort, p, &o)
		if r >= NumDropReasons || r.Inner() {
			t.Fatalf("reason %d out of ParseOuter's range", r)
		}
		if r != DropNone {
			if inner != nil {
				t.Fatalf("drop %v with an inner frame", r)
			}
			return
		}
		if o.InnerOffset < HeadroomIPv4 || o.InnerOffset+len(inner) > len(frame) {
			t.Fatalf("inner [%d:+%d] outside frame of %d", o.InnerOffset, len(inner), len(frame))
		}
		if len(inner) > 0 && &inner[0] != &frame[o.InnerOffset] {
			t.Fatal("inner is not the frame's bytes at InnerOffset")
		}
		if cap(frame)-cap(inner) != o.InnerOffset {
			t.Fatal("inner does not share the frame's backing array")
		}
		if o.InnerSumOK != (o.UDPChecksum != 0) {
			t.Fatalf("InnerSumOK %v with UDP checksum %#04x", o.InnerSumOK, o.UDPChecksum)
		}
		if o.InnerSumOK && o.InnerSum != Sum(inner, 0) {
			t.Fatalf("InnerSum %#04x, the inner frame sums to %#04x", o.InnerSum, Sum(inner, 0))
		}
		e, err := NewEncap(o.SrcMAC, o.DstMAC, o.Src, o.Dst, testPort, o.VNI, max(o.TTL, 1))
		if err != nil {
			t.Fatalf("NewEncap from accepted outer %+v: %v", o, err)
		}
		again := encapFrame(t, e, inner, o.SrcPort)
		var o2 Outer
		inner2, r2 := ParseOuterPolicy(again, testPort, p, &o2)
		if r2 != DropNone || !bytes.Equal(inner, inner2) {
			t.Fatalf("re-encapsulated: drop %v, inner equal %v", r2, bytes.Equal(inner, inner2))
		}
		if o2.Src != o.Src || o2.Dst != o.Dst || o2.VNI != o.VNI || o2.SrcPort != o.SrcPort || o2.SrcMAC != o.SrcMAC {
			t.Fatalf("re-encapsulated outer %+v, was %+v", o2, o)
		}
	})
}

func FuzzCheckInner(f *testing.F) {
	a := buildInner(f, false, 1, 2, 40)
	b := buildInner(f, true, 3, 4, 0)
	for _, s := range [][]byte{a, b, tagInner(a, 0x8100), tagInner(b, 0x88a8), a[:20], b[:30], a[:14], nil} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, inner []byte) {
		strict := CheckInner(inner)
		relaxed := CheckInnerPolicy(inner, AllowInnerVLAN)
		for _, r := range []DropReason{strict, relaxed} {
			if r != DropNone && (!r.Inner() || r >= NumDropReasons) {
				t.Fatalf("reason %v out of CheckInner's range", r)
			}
		}
		if strict != DropInnerVLAN && strict != relaxed {
			t.Fatalf("untagged frame: strict %v, relaxed %v", strict, relaxed)
		}
		if relaxed == DropNone && (inner[6]&1 != 0 || bytes.Equal(inner[6:12], make([]byte, 6))) {
			t.Fatalf("accepted source MAC %x", inner[6:12])
		}
		if p := SourcePort(inner); p < SourcePortMin {
			t.Fatalf("SourcePort %d", p)
		}
	})
}

func FuzzChecksum(f *testing.F) {
	f.Add([]byte{}, uint32(0), uint8(0))
	f.Add([]byte{0xff}, uint32(0xffffffff), uint8(1))
	f.Add(bytes.Repeat([]byte{0xff}, 100), uint32(1), uint8(3))
	f.Add(buildInner(f, false, 1, 2, 100), uint32(0x1234), uint8(7))
	f.Fuzz(func(t *testing.T, b []byte, initial uint32, off uint8) {
		if len(b) > 0 {
			b = b[int(off)%len(b):]
		}
		if got, want := Sum(b, initial), naiveSum(b, initial); got != want {
			t.Fatalf("Sum %#x, naive %#x", got, want)
		}
	})
}
