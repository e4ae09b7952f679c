package packet

import (
	"fmt"
	"strconv"
	"testing"
)

// mtuInner is a 1464-byte inner TCP frame: over IPv4 its outer IP packet is
// 1500 bytes, a full underlay MTU.
func mtuInner(tb testing.TB) []byte { return buildInner(tb, false, 40000, 5201, 1464-54) }

func outerFrames(tb testing.TB) map[string][]byte {
	inner := mtuInner(tb)
	v4 := defaultSpec(tb, false)
	v4.inner = inner
	v4z := v4
	v4z.zeroUDPCsum = true
	v6 := defaultSpec(tb, true)
	v6.inner = inner
	return map[string][]byte{
		"ipv4-csum0": buildOuter(tb, v4z),
		"ipv4-csum":  buildOuter(tb, v4),
		"ipv6-csum":  buildOuter(tb, v6),
	}
}

func TestZeroAllocs(t *testing.T) {
	frames := outerFrames(t)
	inner := mtuInner(t)
	e4, err := NewEncap(outerSrcMAC, outerDstMAC, outerSrc4, outerDst4, testPort, 5, 64)
	if err != nil {
		t.Fatal(err)
	}
	e6, err := NewEncap(outerSrcMAC, outerDstMAC, outerSrc6, outerDst6, testPort, 5, 64)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, Headroom+len(inner))
	copy(buf[Headroom:], inner)
	var o Outer
	var sink int
	for name, fn := range map[string]func(){
		"ParseOuter": func() {
			for _, f := range frames {
				in, r := ParseOuter(f, testPort, &o)
				sink += len(in) + int(r)
			}
		},
		"ParseOuterReserved": func() {
			for _, f := range frames {
				in, r := ParseOuterReserved(f, testPort, 0, VXLANReservedAll&^0xff, &o)
				sink += len(in) + int(r)
			}
		},
		"IsUDPTo": func() {
			if IsUDPTo(inner, testPort) {
				sink++
			}
		},
		"CheckInner":      func() { sink += int(CheckInner(inner)) },
		"SourcePort":      func() { sink += int(SourcePort(inner)) },
		"Checksum":        func() { sink += int(Checksum(inner, 7)) },
		"PseudoHeaderSum": func() { sink += int(PseudoHeaderSum(outerSrc6, outerDst6, protoUDP, 100)) },
		"String":          func() { sink += len(DropUDPChecksum.String()) },
		"Encap.Write": func() {
			e4.Write(buf[Headroom-HeadroomIPv4:], 50000)
			e6.Write(buf, 50000)
		},
		"Encap.Prepend": func() {
			f, _ := e6.Prepend(buf, Headroom, len(inner), 50000)
			sink += len(f)
		},
	} {
		if n := testing.AllocsPerRun(100, fn); n != 0 {
			t.Errorf("%s: %v allocs per run, want 0", name, n)
		}
	}
	_ = sink
}

func BenchmarkParseOuter(b *testing.B) {
	for _, name := range []string{"ipv4-csum0", "ipv4-csum", "ipv6-csum"} {
		frame := outerFrames(b)[name]
		b.Run(name, func(b *testing.B) {
			var o Outer
			b.SetBytes(int64(len(frame)))
			b.ReportAllocs()
			for b.Loop() {
				if _, r := ParseOuter(frame, testPort, &o); r != DropNone {
					b.Fatal(r)
				}
			}
		})
	}
}

func BenchmarkCheckInner(b *testing.B) {
	inner := mtuInner(b)
	b.ReportAllocs()
	for b.Loop() {
		if CheckInner(inner) != DropNone {
			b.Fatal("drop")
		}
	}
}

func BenchmarkEncapWrite(b *testing.B) {
	inner := mtuInner(b)
	for _, v6 := range []bool{false, true} {
		src, dst, name := outerSrc4, outerDst4, "ipv4"
		if v6 {
			src, dst, name = outerSrc6, outerDst6, "ipv6"
		}
		e, err := NewEncap(outerSrcMAC, outerDstMAC, src, dst, testPort, 5, 64)
		if err != nil {
			b.Fatal(err)
		}
		frame := make([]byte, e.Len()+len(inner))
		copy(frame[e.Len():], inner)
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(frame)))
			b.ReportAllocs()
			for b.Loop() {
				if !e.Write(frame, 50000) {
					b.Fatal("write")
				}
			}
		})
	}
}

func BenchmarkSourcePort(b *testing.B) {
	for _, v6 := range []bool{false, true} {
		inner := buildInner(b, v6, 40000, 5201, 100)
		name := "ipv4-tcp"
		if v6 {
			name = "ipv6-tcp"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			var sink uint16
			for b.Loop() {
				sink += SourcePort(inner)
			}
			_ = sink
		})
		// What egress calls: the default range, and a range of its own.
		for _, r := range []PortRange{DefaultPortRange, {40000, 40015}} {
			b.Run(fmt.Sprintf("%s-range-%d-%d", name, r.Min, r.Max), func(b *testing.B) {
				b.ReportAllocs()
				var sink uint16
				for b.Loop() {
					sink += r.SourcePort(inner)
				}
				_ = sink
			})
		}
	}
}

func BenchmarkChecksum(b *testing.B) {
	data := make([]byte, 9001)
	for i := range data {
		data[i] = byte(i * 13)
	}
	for _, n := range []int{20, 64, 1500, 9000} {
		for _, naive := range []bool{false, true} {
			name := "n=" + strconv.Itoa(n)
			if naive {
				name += "/naive16"
			}
			buf := data[1 : 1+n] // odd start
			b.Run(name, func(b *testing.B) {
				b.SetBytes(int64(n))
				b.ReportAllocs()
				var sink uint16
				for b.Loop() {
					if naive {
						sink += naiveSum(buf, 0)
					} else {
						sink += Checksum(buf, 0)
					}
				}
				_ = sink
			})
		}
	}
}
