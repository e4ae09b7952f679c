package offload

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

func FuzzDecode(f *testing.F) {
	f.Add([]byte{0x01, 0x81, 66, 0, 0xa8, 0x05, 34, 0, 16, 0})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0x02, 5, 0, 1, 2, 3, 4, 5, 6, 7, 8})
	f.Add([]byte{0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrShortHeader) && !errors.Is(err, ErrBadHeader) {
				t.Fatalf("unexpected error %v", err)
			}
			if (len(b) < HdrLen) != errors.Is(err, ErrShortHeader) {
				t.Fatalf("%v for %d bytes", err, len(b))
			}
			return
		}
		out := make([]byte, HdrLen)
		h.Encode(out)
		if !bytes.Equal(out, b[:HdrLen]) {
			t.Fatalf("Encode(Decode(%x)) = %x", b[:HdrLen], out)
		}
	})
}

// fuzzSegmentSeeds returns valid super-frames of every kind, with their headers.
func fuzzSegmentSeeds(tb testing.TB) (hdrs []VirtioNetHdr, frames [][]byte) {
	add := func(h VirtioNetHdr, b []byte) {
		hdrs = append(hdrs, h)
		frames = append(frames, b)
	}
	for _, v6 := range []bool{false, true} {
		for _, udp := range []bool{false, true} {
			s := defaultFlow(0, v6, udp)
			h, b := s.buildSuper(tb, segSpec{seq: 1, flags: tcpACK | tcpPSH | tcpCWR, id: 65530, payload: make([]byte, 5000)}, 1000)
			add(h, b)
			h.GSOType, h.GSOSize = GSONone, 0
			_, b = s.buildSuper(tb, segSpec{flags: tcpACK, payload: []byte("hello")}, 1)
			add(h, b)
		}
	}
	s := defaultFlow(0, false, false)
	s.ipOpts, s.ts = true, false
	add(s.buildSuper(tb, segSpec{flags: tcpACK | tcpFIN, payload: make([]byte, 3001)}, 1460))
	return hdrs, frames
}

func FuzzSegment(f *testing.F) {
	hdrs, frames := fuzzSegmentSeeds(f)
	for i, h := range hdrs {
		hb := make([]byte, HdrLen)
		h.Encode(hb)
		f.Add(hb, frames[i], uint16(1500), uint8(50))
		f.Add(hb, frames[i], uint16(100+i*37), uint8(0))
	}
	out := make([][]byte, 96)
	for i := range out {
		out[i] = make([]byte, 2048)
	}
	sizes := make([]int, len(out))
	f.Fuzz(func(t *testing.T, hb, frame []byte, mtu16 uint16, headroom8 uint8) {
		if len(hb) < HdrLen {
			return
		}
		// Build the header without Decode, so that Segment sees what Decode refuses too.
		hdr := VirtioNetHdr{Flags: hb[0], GSOType: hb[1], HdrLen: binary.LittleEndian.Uint16(hb[2:]),
			GSOSize: binary.LittleEndian.Uint16(hb[4:]), CsumStart: binary.LittleEndian.Uint16(hb[6:]),
			CsumOffset: binary.LittleEndian.Uint16(hb[8:])}
		mtu, headroom := int(mtu16), int(headroom8)
		for i := range out {
			for k := range min(headroom, len(out[i])) {
				out[i][k] = 0xee
			}
		}
		orig := append([]byte(nil), frame...)
		n, err := Segment(hdr, frame, mtu, out, sizes, headroom)
		if !bytes.Equal(orig, frame) {
			t.Fatal("Segment modified its input")
		}
		if err != nil {
			if n != 0 {
				t.Fatalf("%d segments with error %v", n, err)
			}
			return
		}
		if n < 1 || n > len(out) {
			t.Fatalf("%d segments", n)
		}
		for i := range n {
			if sizes[i] < ethLen || headroom+sizes[i] > len(out[i]) {
				t.Fatalf("segment %d: size %d", i, sizes[i])
			}
			if bytes.Count(out[i][:headroom], []byte{0xee}) != headroom {
				t.Fatalf("segment %d: headroom written", i)
			}
		}
		if hdr.GSOType == GSONone {
			s := out[0][headroom : headroom+sizes[0]]
			if sizes[0] != len(frame) || sizes[0]-ethLen > mtu {
				t.Fatalf("single segment of %d bytes for %d", sizes[0], len(frame))
			}
			if hdr.Flags&FlagNeedsCsum == 0 {
				if !bytes.Equal(s, frame) {
					t.Fatal("frame changed")
				}
			} else {
				// The region's sum, the partial sum the field held and the completed
				// field add up to 0xffff: the checksum verifies.
				at := int(hdr.CsumStart) + int(hdr.CsumOffset)
				partial := uint32(binary.BigEndian.Uint16(frame[at:]))
				if naiveFold(naiveSum(s[hdr.CsumStart:], partial)) != 0xffff ||
					!bytes.Equal(s[:at], frame[:at]) || !bytes.Equal(s[at+2:], frame[at+2:]) {
					t.Fatal("completed checksum does not verify")
				}
			}
			return
		}
		var l layout
		if err := parseGSO(hdr, frame, len(frame), &l); err != nil {
			t.Fatalf("Segment accepted what parseGSO refuses: %v", err)
		}
		var payload []byte
		for i := range n {
			s := out[i][headroom : headroom+sizes[i]]
			if sizes[i]-ethLen > mtu {
				t.Fatalf("segment %d: IP packet of %d bytes, mtu %d", i, sizes[i]-ethLen, mtu)
			}
			// Fields that must be copied unchanged: Ethernet; IPv4 version to TOS,
			// flags to protocol, addresses and options, or IPv6 all but the payload
			// length; the ports.
			same := bytes.Equal(s[:ethLen], frame[:ethLen]) && bytes.Equal(s[l.l4:l.l4+4], frame[l.l4:l.l4+4])
			if l.v6 {
				same = same && bytes.Equal(s[ethLen:ethLen+4], frame[ethLen:ethLen+4]) && bytes.Equal(s[ethLen+6:l.l4], frame[ethLen+6:l.l4])
			} else {
				same = same && bytes.Equal(s[ethLen:ethLen+2], frame[ethLen:ethLen+2]) &&
					bytes.Equal(s[ethLen+6:ethLen+10], frame[ethLen+6:ethLen+10]) && bytes.Equal(s[ethLen+12:l.l4], frame[ethLen+12:l.l4])
			}
			if !same {
				t.Fatalf("segment %d: a header field changed that must be copied", i)
			}
			var sl layout
			if err := parseGSO(VirtioNetHdr{GSOType: hdr.GSOType &^ GSOECN, GSOSize: 1}, s, len(s), &sl); err != nil || sl != l2(l, len(s)) {
				t.Fatalf("segment %d does not parse like the super-frame: %v", i, err)
			}
			if !l.v6 && naiveFold(naiveSum(s[ethLen:l.l4], 0)) != 0xffff {
				t.Fatalf("segment %d: IPv4 header checksum", i)
			}
			ps := naiveSum(s[l.l4:], 0) + uint32(l.proto) + uint32(len(s)-l.l4)
			if l.v6 {
				ps = naiveSum(s[ethLen+8:ethLen+40], ps)
			} else {
				ps = naiveSum(s[ethLen+12:ethLen+20], ps)
			}
			if naiveFold(ps) != 0xffff {
				t.Fatalf("segment %d: transport checksum", i)
			}
			payload = append(payload, s[l.hdrEnd:]...)
		}
		if !bytes.Equal(payload, frame[l.hdrEnd:]) {
			t.Fatal("payload not reassembled")
		}
	})
}

// l2 is the layout l of a super-frame as a segment of length n has it.
func l2(l layout, n int) layout {
	l.end = n
	return l
}

// byteChooser turns fuzz bytes into choices: one byte for n <= 256, two above; 0
// once the bytes run out.
func byteChooser(data []byte) func(n int) int {
	return func(n int) int {
		if len(data) == 0 || n <= 1 {
			return 0
		}
		v := int(data[0])
		data = data[1:]
		if n > 256 && len(data) > 0 {
			v = v<<8 | int(data[0])
			data = data[1:]
		}
		return v % n
	}
}

// FuzzCoalesceSegment derives interleaved flows, their disturbances, the
// Coalescer's configuration and the batch sizes from the fuzzer's bytes, and checks
// the round trip: every frame comes back byte for byte, related frames in order, no
// super-frame over 64 KB or mixing flows.
func FuzzCoalesceSegment(f *testing.F) {
	addCoalesceSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) { coalesceSegment(t, data, testMTU) })
}

// FuzzCoalesceSegmentJumbo is FuzzCoalesceSegment at the overlay MTU of a 9000-byte
// underlay: segments of up to 8950 bytes of IP, at most seven to a super-frame.
func FuzzCoalesceSegmentJumbo(f *testing.F) {
	addCoalesceSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) { coalesceSegment(t, data, jumboMTU) })
}

func addCoalesceSeeds(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{1, 0, 0, 1, 200, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20})
	f.Add(bytes.Repeat([]byte{3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9}, 20))
	f.Add(bytes.Repeat([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255}, 10))
}

// coalesceSegment builds random flows from data with segments of up to mtu bytes of IP,
// coalesces them and segments the super-frames again at mtu: every frame comes back,
// related frames in order.
func coalesceSegment(t *testing.T, data []byte, mtu int) {
	choose := byteChooser(data)
	g := &streamGen{tb: t, choose: choose}
	cfg := CoalescerConfig{MaxFlows: 1 + choose(6), UDP: choose(2) == 0, ReuseBuffers: choose(2) == 0, InPlace: choose(2) == 0}
	for i := range 1 + choose(6) {
		spec := defaultFlow(i, choose(2) == 0, cfg.UDP && choose(3) == 0)
		spec.ts = !spec.udp && choose(2) == 0
		mss := mtu - spec.ipHdrLen()
		if choose(2) == 0 {
			mss = 4 + choose(mtu-spec.ipHdrLen()-3)
		}
		g.addFlow(spec, mss)
	}
	for range 1 + choose(200) {
		g.step()
	}
	bufLen := MinBufLen
	if choose(4) == 0 {
		bufLen = HdrLen + 100 + choose(30000)
	}
	out := coalesceAll(t, cfg, g.frames, choose, bufLen)
	checkEmitted(t, out)
	segs, _ := expand(t, out, mtu)
	checkOrder(t, g.frames, segs)
}
