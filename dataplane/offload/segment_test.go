package offload

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"testing"
)

// segOut returns n output buffers of size bytes each, filled with a pattern so
// that writes into the headroom show.
func segOut(n, size int) ([][]byte, []int) {
	out := make([][]byte, n)
	for i := range out {
		out[i] = bytes.Repeat([]byte{0xee}, size)
	}
	return out, make([]int, n)
}

// TestSegmentAgainstGopacket segments super-frames of every kind and size class and
// checks each segment against gopacket's lengths and checksums, and the sequence,
// flag, ID and payload rules.
func TestSegmentAgainstGopacket(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const headroom = 50
	out, sizes := segOut(1200, headroom+ethLen+9000)
	type variant struct {
		name string
		spec flowSpec
	}
	var variants []variant
	for _, v6 := range []bool{false, true} {
		for _, udp := range []bool{false, true} {
			for _, ts := range []bool{false, true} {
				for _, opts := range []bool{false, true} {
					if (udp && ts) || (v6 && opts) {
						continue
					}
					s := defaultFlow(0, v6, udp)
					s.ts, s.ipOpts = ts, opts
					variants = append(variants, variant{name: familyName(s), spec: s})
				}
			}
		}
	}
	for _, v := range variants {
		for _, mtu := range []int{576, 1500, 9000} {
			maxPay := min(MaxFrameLen-ethLen-v.spec.ipHdrLen(), 65507)
			mss := mtu - v.spec.ipHdrLen()
			for _, size := range []int{0, 1, mss - 1, mss, mss + 1, 3 * mss, 10*mss + 7, maxPay, rng.IntN(maxPay + 1)} {
				if size > maxPay || (size == 0 && v.spec.udp) {
					continue
				}
				gso := mss
				if !v.spec.udp && rng.IntN(3) == 0 {
					gso = mss + 100 // larger than the MTU allows: TCP shrinks it
				}
				flags := uint8(tcpACK | tcpPSH | tcpFIN | tcpCWR | tcpECE)
				g := segSpec{seq: rng.Uint32(), ack: rng.Uint32(), flags: flags, window: 1000, id: uint16(rng.Uint32()),
					tsval: 5, tsecr: 6, payload: randBytes(rng, size)}
				hdr, frame := v.spec.buildSuper(t, g, gso)
				orig := append([]byte(nil), frame...)
				n, err := Segment(hdr, frame, mtu, out, sizes, headroom)
				if err != nil {
					t.Fatalf("%s mtu %d size %d: %v", v.name, mtu, size, err)
				}
				if !bytes.Equal(frame, orig) {
					t.Fatalf("%s: Segment modified its input", v.name)
				}
				seg := min(gso, mss)
				wantN := max(1, (size+seg-1)/seg)
				if n != wantN {
					t.Fatalf("%s mtu %d size %d: %d segments, want %d", v.name, mtu, size, n, wantN)
				}
				hl := ethLen + v.spec.ipHdrLen()
				if cn, chl, err := Segments(hdr, frame, mtu); cn != n || chl != hl || err != nil {
					t.Fatalf("%s: Segments = %d, %d, %v; Segment cut %d with %d header bytes", v.name, cn, chl, err, n, hl)
				}
				var payload []byte
				for i := range n {
					if bytes.Count(out[i][:headroom], []byte{0xee}) != headroom {
						t.Fatalf("headroom of segment %d written", i)
					}
					s := out[i][headroom : headroom+sizes[i]]
					if sizes[i]-ethLen > mtu {
						t.Fatalf("segment %d: IP packet of %d bytes over mtu %d", i, sizes[i]-ethLen, mtu)
					}
					checkGopacket(t, s)
					if !bytes.Equal(s[:12], frame[:12]) {
						t.Fatalf("segment %d: MACs changed", i)
					}
					payload = append(payload, s[hl:]...)
					l4 := hl - l4HdrLen(v.spec)
					if !v.spec.v6 {
						if id := binary.BigEndian.Uint16(s[ethLen+4:]); id != g.id+uint16(i) {
							t.Fatalf("segment %d: IPv4 ID %d, want %d", i, id, g.id+uint16(i))
						}
					}
					if v.spec.udp {
						continue
					}
					if sq := binary.BigEndian.Uint32(s[l4+4:]); sq != g.seq+uint32(i*seg) {
						t.Fatalf("segment %d: seq %d, want %d", i, sq, g.seq+uint32(i*seg))
					}
					want := uint8(tcpACK | tcpECE)
					if i == 0 {
						want |= tcpCWR
					}
					if i == n-1 {
						want |= tcpPSH | tcpFIN
					}
					if s[l4+13] != want {
						t.Fatalf("segment %d of %d: flags %#x, want %#x", i, n, s[l4+13], want)
					}
					if !bytes.Equal(s[l4+14:l4+16], frame[l4+14:l4+16]) || !bytes.Equal(s[l4+18:hl], frame[l4+18:hl]) || !bytes.Equal(s[l4+8:l4+12], frame[l4+8:l4+12]) {
						t.Fatalf("segment %d: ack, window or options changed", i)
					}
				}
				if !bytes.Equal(payload, g.payload) {
					t.Fatalf("%s mtu %d size %d: payload not reassembled", v.name, mtu, size)
				}
			}
		}
	}
}

// l4HdrLen is the transport header length of a test flow.
func l4HdrLen(s flowSpec) int {
	switch {
	case s.udp:
		return 8
	case s.ts:
		return 32
	}
	return 20
}

func familyName(s flowSpec) string {
	n := "ipv4"
	if s.v6 {
		n = "ipv6"
	}
	if s.ipOpts {
		n += "+options"
	}
	if s.udp {
		return n + "/udp"
	}
	if s.ts {
		return n + "/tcp+timestamps"
	}
	return n + "/tcp"
}

func randBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// TestSegmentNeedsCsum completes the checksum of frames without GSO, as the kernel
// hands them over with CHECKSUM_PARTIAL.
func TestSegmentNeedsCsum(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	out, sizes := segOut(1, 1600)
	for _, v6 := range []bool{false, true} {
		for _, udp := range []bool{false, true} {
			for range 50 {
				s := defaultFlow(1, v6, udp)
				g := segSpec{seq: rng.Uint32(), flags: tcpACK | tcpPSH, id: 9, payload: randBytes(rng, rng.IntN(1400))}
				hdr, frame := s.buildSuper(t, g, 1)
				hdr.GSOType, hdr.GSOSize = GSONone, 0
				n, err := Segment(hdr, frame, testMTU, out, sizes, 0)
				if err != nil || n != 1 || sizes[0] != len(frame) {
					t.Fatalf("Segment = %d, %v (size %d of %d)", n, err, sizes[0], len(frame))
				}
				checkGopacket(t, out[0][:sizes[0]])
				// Everything but the checksum field is copied as is.
				at := int(hdr.CsumStart + hdr.CsumOffset)
				got := out[0][:sizes[0]]
				if !bytes.Equal(got[:at], frame[:at]) || !bytes.Equal(got[at+2:], frame[at+2:]) {
					t.Fatal("bytes other than the checksum changed")
				}
			}
		}
	}
	// Without NEEDS_CSUM the frame is copied untouched, whatever its checksum field holds.
	frame := defaultFlow(1, false, false).build(t, segSpec{flags: tcpACK, payload: []byte("x")})
	frame[50] ^= 0xff
	n, err := Segment(VirtioNetHdr{}, frame, testMTU, out, sizes, 7)
	if err != nil || n != 1 || !bytes.Equal(out[0][7:7+sizes[0]], frame) {
		t.Fatalf("plain frame: %d, %v", n, err)
	}
}

func TestSegmentErrors(t *testing.T) {
	spec := defaultFlow(0, false, false)
	good, frame := spec.buildSuper(t, segSpec{flags: tcpACK, payload: make([]byte, 4000)}, 1448)
	_, udpFrame := defaultFlow(0, true, true).buildSuper(t, segSpec{payload: make([]byte, 3000)}, 1000)
	udpHdr := VirtioNetHdr{Flags: FlagNeedsCsum, GSOType: GSOUDPL4, GSOSize: 1000, CsumStart: 54, CsumOffset: 6}
	out, sizes := segOut(8, 1600)
	mod := func(f func(h *VirtioNetHdr, b []byte) []byte) (VirtioNetHdr, []byte) {
		h, b := good, append([]byte(nil), frame...)
		return h, f(&h, b)
	}
	type tc struct {
		name  string
		hdr   VirtioNetHdr
		frame []byte
		mtu   int
		out   [][]byte
		want  error
	}
	var cases []tc
	add := func(name string, want error, f func(h *VirtioNetHdr, b []byte) []byte) {
		h, b := mod(f)
		cases = append(cases, tc{name, h, b, testMTU, out, want})
	}
	add("bad flags", ErrBadHeader, func(h *VirtioNetHdr, b []byte) []byte { h.Flags = 0x10; return b })
	add("ufo", ErrGSOType, func(h *VirtioNetHdr, b []byte) []byte { h.GSOType = GSOUDP; return b })
	add("tcpv6 on ipv4", ErrGSOType, func(h *VirtioNetHdr, b []byte) []byte { h.GSOType = GSOTCPv6; return b })
	add("uso on tcp", ErrGSOType, func(h *VirtioNetHdr, b []byte) []byte { h.GSOType = GSOUDPL4; return b })
	add("gso size 0", ErrGSOSize, func(h *VirtioNetHdr, b []byte) []byte { h.GSOSize = 0; return b })
	add("csum start", ErrCsumStart, func(h *VirtioNetHdr, b []byte) []byte { h.CsumStart = 30; return b })
	add("csum offset", ErrCsumStart, func(h *VirtioNetHdr, b []byte) []byte { h.CsumOffset = 6; return b })
	add("truncated", ErrMalformed, func(h *VirtioNetHdr, b []byte) []byte { return b[:len(b)-1] })
	add("trailing bytes", ErrMalformed, func(h *VirtioNetHdr, b []byte) []byte { return append(b, 0) })
	add("short ethernet", ErrMalformed, func(h *VirtioNetHdr, b []byte) []byte { return b[:10] })
	add("short ip", ErrMalformed, func(h *VirtioNetHdr, b []byte) []byte { return b[:30] })
	add("ihl 4", ErrMalformed, func(h *VirtioNetHdr, b []byte) []byte { b[ethLen] = 0x44; return b })
	add("ipv4 version 6", ErrMalformed, func(h *VirtioNetHdr, b []byte) []byte { b[ethLen] = 0x65; return b })
	add("fragment", ErrUnsupported, func(h *VirtioNetHdr, b []byte) []byte { b[ethLen+6] |= 0x20; return b })
	add("vlan", ErrUnsupported, func(h *VirtioNetHdr, b []byte) []byte { b[12], b[13] = 0x81, 0; return b })
	add("icmp", ErrGSOType, func(h *VirtioNetHdr, b []byte) []byte { b[ethLen+9] = 1; return b })
	add("tcp doff 4", ErrMalformed, func(h *VirtioNetHdr, b []byte) []byte { b[34+12] = 0x40; return b })
	add("tcp doff past end", ErrMalformed, func(h *VirtioNetHdr, b []byte) []byte {
		b[34+12] = 0xf0
		b = b[:34+40]
		binary.BigEndian.PutUint16(b[ethLen+2:], 60)
		return b
	})
	add("too many segments", ErrTooManySegments, func(h *VirtioNetHdr, b []byte) []byte { h.GSOSize = 100; return b })
	add("mtu below headers", ErrMTU, func(h *VirtioNetHdr, b []byte) []byte { return b })
	cases[len(cases)-1].mtu = 40
	add("short out buffer", ErrShortBuffer, func(h *VirtioNetHdr, b []byte) []byte { return b })
	cases[len(cases)-1].out = [][]byte{make([]byte, 1600), make([]byte, 1600), make([]byte, 100)}
	add("no out buffers", ErrTooManySegments, func(h *VirtioNetHdr, b []byte) []byte { return b })
	cases[len(cases)-1].out = nil

	cases = append(cases,
		tc{"uso larger than mtu", udpHdr, udpFrame, 900, out, ErrMTU},
		tc{"uso udp length", udpHdr, func() []byte {
			b := append([]byte(nil), udpFrame...)
			b[54+5]++
			return b
		}(), testMTU, out, ErrMalformed},
		tc{"uso ecn", VirtioNetHdr{Flags: FlagNeedsCsum, GSOType: GSOUDPL4 | GSOECN, GSOSize: 1000, CsumStart: 54, CsumOffset: 6}, udpFrame, testMTU, out, ErrGSOType},
		tc{"ipv6 extension header", udpHdr, func() []byte {
			b := append([]byte(nil), udpFrame...)
			b[ethLen+6] = 60
			return b
		}(), testMTU, out, ErrUnsupported},
		tc{"none: needs csum past end", VirtioNetHdr{Flags: FlagNeedsCsum, CsumStart: 60, CsumOffset: 16}, frame[:70], testMTU, out, ErrCsumStart},
		tc{"none: over mtu", VirtioNetHdr{}, frame[:1600], testMTU, out, ErrMTU},
		tc{"none: runt", VirtioNetHdr{}, frame[:13], testMTU, out, ErrMalformed},
		tc{"none: short out", VirtioNetHdr{}, frame[:1000], testMTU, [][]byte{make([]byte, 999)}, ErrShortBuffer},
	)
	for _, c := range cases {
		n, err := Segment(c.hdr, c.frame, c.mtu, c.out, sizes, 0)
		if !errors.Is(err, c.want) || n != 0 {
			t.Errorf("%s: Segment = %d, %v, want %v", c.name, n, err, c.want)
		}
		// Segments finds the same fault in a super-frame; it writes nothing, so it has
		// no buffer to complain about, and a frame without GSO is one frame to it.
		if c.hdr.GSOType != GSONone && !errors.Is(c.want, ErrShortBuffer) && !errors.Is(c.want, ErrTooManySegments) {
			if n, _, err := Segments(c.hdr, c.frame, c.mtu); !errors.Is(err, c.want) || n != 0 {
				t.Errorf("%s: Segments = %d, %v, want %v", c.name, n, err, c.want)
			}
		}
	}
	if _, err := Segment(good, frame, testMTU, out, sizes, -1); !errors.Is(err, ErrShortBuffer) {
		t.Errorf("negative headroom: %v", err)
	}
	if _, err := Segment(good, frame, testMTU, out, sizes[:2], 0); !errors.Is(err, ErrTooManySegments) {
		t.Errorf("short sizes: %v", err)
	}
	if n, err := Segment(good, frame, testMTU, out, sizes, 0); n != 3 || err != nil {
		t.Errorf("good frame: %d, %v", n, err)
	}
}

// TestSegmentGSOWithoutNeedsCsum: a GSO frame without FlagNeedsCsum still gets complete
// checksums (Segment computes them from scratch).
func TestSegmentGSOWithoutNeedsCsum(t *testing.T) {
	hdr, frame := defaultFlow(0, true, false).buildSuper(t, segSpec{flags: tcpACK, payload: make([]byte, 5000)}, 1000)
	hdr.Flags, hdr.CsumStart, hdr.CsumOffset = 0, 0, 0
	out, sizes := segOut(8, 1600)
	n, err := Segment(hdr, frame, testMTU, out, sizes, 0)
	if err != nil || n != 5 {
		t.Fatalf("Segment = %d, %v", n, err)
	}
	for i := range n {
		checkGopacket(t, out[i][:sizes[i]])
	}
}

// TestCompleteChecksum: in place, CompleteChecksum gives what Segment gives in a copy,
// and refuses what Segment refuses for a frame without GSO, plus any GSO frame.
func TestCompleteChecksum(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	out, sizes := segOut(1, 1600)
	for _, v6 := range []bool{false, true} {
		for _, udp := range []bool{false, true} {
			for range 20 {
				s := defaultFlow(2, v6, udp)
				g := segSpec{seq: rng.Uint32(), flags: tcpACK, id: 3, payload: randBytes(rng, rng.IntN(1400))}
				hdr, frame := s.buildSuper(t, g, 1)
				hdr.GSOType, hdr.GSOSize = GSONone, 0
				if _, err := Segment(hdr, frame, testMTU, out, sizes, 0); err != nil {
					t.Fatal(err)
				}
				if err := CompleteChecksum(hdr, frame, testMTU); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(frame, out[0][:sizes[0]]) {
					t.Fatal("CompleteChecksum and Segment disagree")
				}
				checkGopacket(t, frame)
			}
		}
	}
	frame := defaultFlow(1, false, false).build(t, segSpec{flags: tcpACK, payload: make([]byte, 100)})
	for _, tc := range []struct {
		name  string
		hdr   VirtioNetHdr
		frame []byte
		mtu   int
		want  error
	}{
		{"gso", VirtioNetHdr{GSOType: GSOTCPv4, GSOSize: 100}, frame, testMTU, ErrGSOType},
		{"unknown flag", VirtioNetHdr{Flags: 0x80}, frame, testMTU, ErrBadHeader},
		{"short", VirtioNetHdr{}, frame[:10], testMTU, ErrMalformed},
		{"mtu", VirtioNetHdr{}, frame, len(frame) - ethLen - 1, ErrMTU},
		{"field outside", VirtioNetHdr{Flags: FlagNeedsCsum, CsumStart: uint16(len(frame) - 1)}, frame, testMTU, ErrCsumStart},
		{"odd offset", VirtioNetHdr{Flags: FlagNeedsCsum, CsumStart: 34, CsumOffset: 15}, frame, testMTU, ErrCsumStart},
	} {
		if err := CompleteChecksum(tc.hdr, tc.frame, tc.mtu); err != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

// TestSegmentPlaced: a super-frame whose payload a scattering read put in place, piece by
// piece behind room for the headers, comes out as Segment cuts it, for TCP and UDP over
// IPv4 and IPv6, with and without timestamps, at sizes up to the largest; the head may
// hold more than the headers. PayloadPerSegment gives the layout, and a head too short
// for the headers is refused.
func TestSegmentPlaced(t *testing.T) {
	const headroom = 70
	rng := rand.New(rand.NewPCG(3, 4))
	want, wantSizes := segOut(64, headroom+ethLen+1500)
	got, gotSizes := segOut(64, headroom+ethLen+1500)
	for _, v6 := range []bool{false, true} {
		for _, udp := range []bool{false, true} {
			for _, ts := range []bool{false, true} {
				if udp && ts {
					continue
				}
				s := defaultFlow(0, v6, udp)
				s.ts = ts
				mss := 1500 - s.ipHdrLen()
				maxPay := min(MaxFrameLen-ethLen-s.ipHdrLen(), 63*mss)
				for _, size := range []int{1, mss, mss + 1, 10*mss + 7, maxPay, rng.IntN(maxPay) + 1} {
					g := segSpec{seq: rng.Uint32(), flags: tcpACK | tcpPSH, window: 1000, id: 9, payload: randBytes(rng, size)}
					h, frame := s.buildSuper(t, g, mss)
					n, err := Segment(h, frame, 1500, want, wantSizes, headroom)
					if err != nil {
						t.Fatal(err)
					}
					hl, seg, err := PayloadPerSegment(h, frame[:min(len(frame), 200)], len(frame), 1500)
					if err != nil || hl != ethLen+s.ipHdrLen() || seg != mss {
						t.Fatalf("%s: PayloadPerSegment = %d, %d, %v; want %d, %d", familyName(s), hl, seg, err, ethLen+s.ipHdrLen(), mss)
					}
					for i := range n { // the scattering read's work
						clear(got[i])
						copy(got[i][headroom+hl:], frame[hl+i*seg:min(len(frame), hl+(i+1)*seg)])
					}
					m, err := SegmentPlaced(h, frame[:min(len(frame), hl+rng.IntN(40))], len(frame), 1500, got, gotSizes, headroom)
					if err != nil || m != n {
						t.Fatalf("%s, %d bytes: SegmentPlaced = %d, %v; Segment cut %d", familyName(s), size, m, err, n)
					}
					for i := range n {
						if !bytes.Equal(got[i][headroom:headroom+gotSizes[i]], want[i][headroom:headroom+wantSizes[i]]) {
							t.Fatalf("%s, %d bytes: segment %d differs from Segment's", familyName(s), size, i)
						}
					}
					if _, err := SegmentPlaced(h, frame[:hl-1], len(frame), 1500, got, gotSizes, headroom); err != ErrMalformed {
						t.Errorf("%s: a head short of the headers: %v, want ErrMalformed", familyName(s), err)
					}
				}
			}
		}
	}
	if _, err := SegmentPlaced(VirtioNetHdr{}, make([]byte, 60), 60, 1500, got, gotSizes, headroom); err != ErrGSOType {
		t.Errorf("a frame without GSO: %v, want ErrGSOType", err)
	}
}
