package offload

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
)

func newTestCoalescer(tb testing.TB, cfg CoalescerConfig, nbufs int) (*Coalescer, [][]byte) {
	tb.Helper()
	bufs := make([][]byte, nbufs)
	for i := range bufs {
		bufs[i] = make([]byte, MinBufLen)
	}
	c, err := NewCoalescer(cfg, bufs)
	if err != nil {
		tb.Fatal(err)
	}
	return c, bufs
}

// TestCoalesceFullRun: 64 MTU segments of one flow become two super-frames, 45
// segments (the most under 64 KB) and 19, with the header the kernel expects, and the
// checksum completed the kernel's way is the correct one.
func TestCoalesceFullRun(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		g := &streamGen{tb: t, choose: rand.New(rand.NewPCG(5, 6)).IntN}
		spec := defaultFlow(0, v6, false)
		g.addFlow(spec, 0)
		f := g.flows[0]
		f.id = 65500 // the IPv4 ID wraps inside the first super-frame
		for range 64 {
			g.frames = append(g.frames, g.segment(f, f.mss, tcpACK))
		}
		c, _ := newTestCoalescer(t, CoalescerConfig{MaxFlows: 4}, 4)
		var out []emitted
		emit := collect(t, &out)
		for _, fr := range g.frames {
			if !c.Add(fr, emit) {
				t.Fatal("a continuing segment was not held")
			}
		}
		if len(out) != 1 {
			t.Fatalf("%d frames emitted before Flush, want the first full super-frame", len(out))
		}
		c.Flush(emit)
		hl := ethLen + spec.ipHdrLen()
		l4 := hl - 32
		perSuper := (maxIPLen - spec.ipHdrLen()) / f.mss
		want := []int{perSuper, 64 - perSuper}
		if len(out) != 2 {
			t.Fatalf("%d frames emitted, want 2", len(out))
		}
		gso := GSOTCPv4
		if v6 {
			gso = GSOTCPv6
		}
		for k, it := range out {
			wantHdr := VirtioNetHdr{Flags: FlagNeedsCsum, GSOType: gso, HdrLen: uint16(hl), GSOSize: uint16(f.mss),
				CsumStart: uint16(l4), CsumOffset: 16}
			if it.hdr != wantHdr {
				t.Fatalf("super-frame %d: header %+v, want %+v", k, it.hdr, wantHdr)
			}
			if len(it.frame) != hl+want[k]*f.mss {
				t.Fatalf("super-frame %d: %d bytes, want %d segments", k, len(it.frame), want[k])
			}
			// The kernel (skb_checksum_help) completes it: the complement of the sum from
			// csum_start, the partial sum in the field included.
			done := append([]byte(nil), it.frame...)
			binary.BigEndian.PutUint16(done[l4+16:], ^naiveFold(naiveSum(done[l4:], 0)))
			checkGopacket(t, done)
		}
		segs, _ := expand(t, out, testMTU)
		checkOrder(t, g.frames, segs)
		for i := range segs {
			if !bytes.Equal(segs[i], g.frames[i]) {
				t.Fatalf("segment %d differs after the round trip", i)
			}
		}
		if st := c.Stats(); st.SuperFrames != 2 || st.Merged != 64 || st.Singles != 0 {
			t.Fatalf("stats %+v", st)
		}
	}
}

// TestCoalesceRoundTrip: random clean TCP streams (IPv4 and IPv6, with and without
// timestamps, random MSS, shorter and PSH segments) coalesced and segmented again
// come back byte for byte, IPv4 IDs included.
func TestCoalesceRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for trial := range 200 {
		g := &streamGen{tb: t, choose: rng.IntN, clean: true}
		spec := defaultFlow(trial, rng.IntN(2) == 0, false)
		spec.ts = rng.IntN(2) == 0
		mss := 0
		if rng.IntN(3) == 0 {
			mss = 1 + rng.IntN(testMTU-spec.ipHdrLen())
		}
		g.addFlow(spec, mss)
		for range 1 + rng.IntN(300) {
			g.step()
		}
		cfg := CoalescerConfig{MaxFlows: 1 + rng.IntN(4), ReuseBuffers: rng.IntN(2) == 0, InPlace: rng.IntN(2) == 0}
		out := coalesceAll(t, cfg, g.frames, rng.IntN, MinBufLen)
		checkEmitted(t, out)
		segs, _ := expand(t, out, testMTU)
		if len(segs) != len(g.frames) {
			t.Fatalf("trial %d: %d frames in, %d out", trial, len(g.frames), len(segs))
		}
		for i := range segs {
			if !bytes.Equal(segs[i], g.frames[i]) {
				t.Fatalf("trial %d (%s): frame %d differs: %s", trial, familyName(spec), i, describe(segs[i], g.frames))
			}
		}
	}
}

// TestCoalesceInvertsSegment: a TSO super-frame segmented by Segment and coalesced
// again is the same super-frame, header included.
func TestCoalesceInvertsSegment(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	out, sizes := segOut(64, 1600)
	for trial := range 300 {
		spec := defaultFlow(trial, rng.IntN(2) == 0, rng.IntN(3) == 0)
		spec.ts = !spec.udp && rng.IntN(2) == 0
		mss := 1 + rng.IntN(testMTU-spec.ipHdrLen())
		size := mss + 1 + rng.IntN(min(63*mss, MaxFrameLen-ethLen-spec.ipHdrLen()-mss))
		if spec.udp {
			size = min(size, 63*mss)
		}
		flags := uint8(tcpACK)
		if rng.IntN(2) == 0 {
			flags |= tcpPSH
		}
		if rng.IntN(4) == 0 {
			flags |= tcpCWR
		}
		hdr, frame := spec.buildSuper(t, segSpec{seq: rng.Uint32(), ack: rng.Uint32(), flags: flags, window: 9,
			id: uint16(rng.Uint32()), tsval: 1, tsecr: 2, payload: randBytes(rng, size)}, mss)
		n, err := Segment(hdr, frame, testMTU, out, sizes, 0)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := newTestCoalescer(t, CoalescerConfig{MaxFlows: 2, UDP: true}, 2)
		var got []emitted
		emit := collect(t, &got)
		for i := range n {
			c.Add(out[i][:sizes[i]], emit)
		}
		c.Flush(emit)
		if len(got) != 1 {
			t.Fatalf("trial %d (%s, %d bytes, mss %d): %d frames emitted, want 1", trial, familyName(spec), size, mss, len(got))
		}
		if got[0].hdr != hdr {
			t.Fatalf("trial %d: header %+v, want %+v", trial, got[0].hdr, hdr)
		}
		if !bytes.Equal(got[0].frame, frame) {
			t.Fatalf("trial %d (%s): super-frame differs: %s", trial, familyName(spec), describe(got[0].frame, [][]byte{frame}))
		}
	}
}

// TestCoalesceProperties: interleaved flows with every disturbance the generator
// knows (reordering, pure ACKs, corrupted segments, TTL, ID and timestamp changes,
// CWR, FIN, IP options, ARP, fragments, IPv6 extension headers), more flows than
// MaxFlows, random batches. No super-frame exceeds 64 KB or mixes flows; every frame
// comes out exactly once; related frames keep their order.
func TestCoalesceProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for range 150 {
		g := &streamGen{tb: t, choose: rng.IntN}
		udp := rng.IntN(2) == 0
		for i := range 1 + rng.IntN(12) {
			spec := defaultFlow(i, rng.IntN(2) == 0, udp && rng.IntN(3) == 0)
			spec.ts = !spec.udp && rng.IntN(2) == 0
			if rng.IntN(4) == 0 {
				spec.srcMAC[5] ^= byte(i) // another sender's MAC on the same addresses
			}
			mss := 0
			if rng.IntN(4) == 0 {
				mss = 4 + rng.IntN(testMTU-spec.ipHdrLen()-3)
			}
			g.addFlow(spec, mss)
		}
		for range 1 + rng.IntN(600) {
			g.step()
		}
		cfg := CoalescerConfig{MaxFlows: 1 + rng.IntN(8), UDP: udp, ReuseBuffers: rng.IntN(2) == 0, InPlace: rng.IntN(2) == 0}
		bufLen := MinBufLen
		if rng.IntN(4) == 0 {
			bufLen = HdrLen + 1000 + rng.IntN(20000) // smaller super-frames
		}
		out := coalesceAll(t, cfg, g.frames, rng.IntN, bufLen)
		checkEmitted(t, out)
		for _, it := range out {
			// In place, super-frames take no buffer (checkEmitted bounds them by MaxFrameLen).
			if !cfg.InPlace && len(it.frame)+HdrLen > bufLen && it.hdr.GSOType != GSONone {
				t.Fatalf("super-frame of %d bytes in buffers of %d", len(it.frame), bufLen)
			}
		}
		segs, _ := expand(t, out, testMTU)
		checkOrder(t, g.frames, segs)
	}
}

// TestCoalesceOrderWithinFlow: a frame of a flow in progress that cannot be merged
// leaves after the flow's earlier frames.
func TestCoalesceOrderWithinFlow(t *testing.T) {
	g := &streamGen{tb: t, choose: rand.New(rand.NewPCG(1, 1)).IntN}
	g.addFlow(defaultFlow(0, false, false), 0)
	g.addFlow(defaultFlow(1, true, false), 0)
	a, b := g.flows[0], g.flows[1]
	in := [][]byte{
		g.segment(a, a.mss, tcpACK), // 0 a starts
		g.segment(b, b.mss, tcpACK), // 1 b starts
		g.segment(a, a.mss, tcpACK), // 2 merges into a
		g.segment(a, 0, tcpACK),     // 3 pure ACK of a: a leaves first, then it
		g.segment(b, b.mss, tcpACK), // 4 merges into b
	}
	x := g.segment(a, a.mss, tcpACK)
	y := g.segment(a, a.mss, tcpACK)
	in = append(in, y, x) // 5 y starts a again; 6 x does not continue it: a (y) leaves, x starts
	c, _ := newTestCoalescer(t, CoalescerConfig{MaxFlows: 4}, 8)
	var out []emitted
	emit := collect(t, &out)
	held := make([]bool, len(in))
	for i, f := range in {
		held[i] = c.Add(f, emit)
	}
	if fmt.Sprint(held) != "[true true true false true true true]" {
		t.Fatalf("held = %v", held)
	}
	if len(out) != 3 || out[0].hdr.GSOType != GSOTCPv4 || out[1].hdr.GSOType != GSONone || !bytes.Equal(out[1].frame, in[3]) ||
		out[2].hdr.GSOType != GSONone || !bytes.Equal(out[2].frame, in[5]) {
		t.Fatalf("emitted before Flush: %d frames", len(out))
	}
	c.Flush(emit)
	segs, _ := expand(t, out, testMTU)
	checkOrder(t, in, segs)
}

func TestCoalesceChecksums(t *testing.T) {
	g := &streamGen{tb: t, choose: rand.New(rand.NewPCG(2, 2)).IntN}
	g.addFlow(defaultFlow(0, false, false), 0)
	f := g.flows[0]
	bad := func(b []byte) []byte { b[len(b)-3] ^= 1; return b }
	badIP := func(b []byte) []byte { b[ethLen+10] ^= 1; return b }
	in := [][]byte{
		bad(g.segment(f, f.mss, tcpACK)), // first of a flow, bad: leaves alone when the next comes
		g.segment(f, f.mss, tcpACK),      // starts again
		g.segment(f, f.mss, tcpACK),      // merges
		bad(g.segment(f, f.mss, tcpACK)), // bad: closes the flow, leaves alone
		g.segment(f, f.mss, tcpACK),      // starts again
		badIP(g.segment(f, f.mss, tcpACK)),
	}
	c, _ := newTestCoalescer(t, CoalescerConfig{MaxFlows: 1}, 4)
	var out []emitted
	emit := collect(t, &out)
	for _, fr := range in {
		c.Add(fr, emit)
	}
	c.Flush(emit)
	kinds := ""
	for _, it := range out {
		kinds += fmt.Sprint(it.hdr.GSOType, " ")
	}
	if kinds != "0 1 0 0 0 " {
		t.Fatalf("emitted GSO types %q", kinds)
	}
	if st := c.Stats(); st.BadChecksum != 3 {
		t.Fatalf("stats %+v", st)
	}
	segs, _ := expand(t, out, testMTU)
	checkOrder(t, in, segs)
}

// TestCoalesceNoBuffer: when the buffers run out, frames pass unmerged, in order.
func TestCoalesceNoBuffer(t *testing.T) {
	g := &streamGen{tb: t, choose: rand.New(rand.NewPCG(3, 3)).IntN}
	g.addFlow(defaultFlow(0, false, false), 0)
	f := g.flows[0]
	for range 100 {
		g.frames = append(g.frames, g.segment(f, f.mss, tcpACK))
	}
	c, _ := newTestCoalescer(t, CoalescerConfig{MaxFlows: 2}, 1)
	var out []emitted
	emit := collect(t, &out)
	for _, fr := range g.frames {
		c.Add(fr, emit)
	}
	c.Flush(emit)
	// One super-frame of 45, then nothing left: the other 55 frames one by one.
	if st := c.Stats(); st.SuperFrames != 1 || st.Singles != 55 || st.NoBuffer != 54 {
		t.Fatalf("stats %+v", st)
	}
	segs, _ := expand(t, out, testMTU)
	checkOrder(t, g.frames, segs)
}

func TestCoalesceUDP(t *testing.T) {
	for _, on := range []bool{false, true} {
		g := &streamGen{tb: t, choose: rand.New(rand.NewPCG(4, 4)).IntN}
		g.addFlow(defaultFlow(0, true, true), 200)
		f := g.flows[0]
		for range 100 {
			g.stepUDPSize(f, 200)
		}
		g.stepUDPSize(f, 50)
		c, _ := newTestCoalescer(t, CoalescerConfig{MaxFlows: 2, UDP: on}, 4)
		var out []emitted
		emit := collect(t, &out)
		for _, fr := range g.frames {
			c.Add(fr, emit)
		}
		c.Flush(emit)
		if !on {
			if len(out) != len(g.frames) {
				t.Fatalf("UDP off: %d frames emitted for %d", len(out), len(g.frames))
			}
			continue
		}
		// At most 64 datagrams per super-frame: 64, then 36 and the short last one.
		if len(out) != 2 || out[0].hdr.GSOType != GSOUDPL4 || len(out[0].frame) != ethLen+48+64*200 ||
			len(out[1].frame) != ethLen+48+36*200+50 || out[1].hdr.GSOSize != 200 || out[1].hdr.CsumOffset != 6 {
			t.Fatalf("UDP: %d frames emitted", len(out))
		}
		checkEmitted(t, out)
		segs, _ := expand(t, out, testMTU)
		checkOrder(t, g.frames, segs)
		for i := range segs {
			if !bytes.Equal(segs[i], g.frames[i]) {
				t.Fatalf("datagram %d differs", i)
			}
		}
	}
}

// stepUDPSize appends a datagram of n bytes to f.
func (g *streamGen) stepUDPSize(f *genFlow, n int) {
	s := segSpec{id: f.id, payload: g.payload(n)}
	f.id++
	g.frames = append(g.frames, f.spec.build(g.tb, s))
}

// TestCoalesceCWR: CWR may open a super-frame (GSO_ECN marks it) but not continue one.
func TestCoalesceCWR(t *testing.T) {
	g := &streamGen{tb: t, choose: rand.New(rand.NewPCG(5, 5)).IntN}
	g.addFlow(defaultFlow(0, false, false), 0)
	f := g.flows[0]
	in := [][]byte{
		g.segment(f, f.mss, tcpACK|tcpCWR|tcpECE),
		g.segment(f, f.mss, tcpACK|tcpECE),
		g.segment(f, f.mss, tcpACK|tcpECE|tcpCWR),
		g.segment(f, f.mss, tcpACK|tcpECE),
	}
	c, _ := newTestCoalescer(t, CoalescerConfig{MaxFlows: 1}, 4)
	var out []emitted
	emit := collect(t, &out)
	for _, fr := range in {
		c.Add(fr, emit)
	}
	c.Flush(emit)
	if len(out) != 2 || out[0].hdr.GSOType != GSOTCPv4|GSOECN || out[1].hdr.GSOType != GSOTCPv4|GSOECN {
		t.Fatalf("emitted %d frames", len(out))
	}
	segs, _ := expand(t, out, testMTU)
	for i := range segs {
		if !bytes.Equal(segs[i], in[i]) {
			t.Fatalf("segment %d differs", i)
		}
	}
}

// TestCoalescePadding: Ethernet padding after a short IP packet is not payload.
func TestCoalescePadding(t *testing.T) {
	spec := defaultFlow(0, false, false)
	spec.ts = false
	g := &streamGen{tb: t, choose: rand.New(rand.NewPCG(6, 6)).IntN}
	g.addFlow(spec, 2)
	f := g.flows[0]
	var in, padded [][]byte
	for range 3 {
		b := g.segment(f, 2, tcpACK)
		in = append(in, b)
		padded = append(padded, append(append([]byte(nil), b...), 0, 0, 0, 0)) // 56 -> 60 bytes
	}
	c, _ := newTestCoalescer(t, CoalescerConfig{MaxFlows: 1}, 1)
	var out []emitted
	emit := collect(t, &out)
	for _, fr := range padded {
		c.Add(fr, emit)
	}
	c.Flush(emit)
	if len(out) != 1 || len(out[0].frame) != 54+6 {
		t.Fatalf("emitted %d frames", len(out))
	}
	segs, _ := expand(t, out, testMTU)
	for i := range segs {
		if !bytes.Equal(segs[i], in[i]) {
			t.Fatalf("segment %d differs", i)
		}
	}
}

func TestNewCoalescerErrors(t *testing.T) {
	for _, n := range []int{0, -1, MaxFlowsLimit + 1} {
		if _, err := NewCoalescer(CoalescerConfig{MaxFlows: n}, nil); !errors.Is(err, ErrMaxFlows) {
			t.Errorf("MaxFlows %d accepted", n)
		}
	}
}

// TestCoalesceWithRoom: AddWithRoom emits what Add emits, but every frame, single ones
// included, comes out adjacent to its header, the room written only for singles.
func TestCoalesceWithRoom(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for trial := range 50 {
		g := &streamGen{tb: t, choose: rng.IntN}
		for i := range 1 + rng.IntN(4) {
			g.addFlow(defaultFlow(i, rng.IntN(2) == 0, rng.IntN(3) == 0), 0)
		}
		for range 1 + rng.IntN(200) {
			g.step()
		}
		cfg := CoalescerConfig{MaxFlows: 1 + rng.IntN(4), UDP: true, ReuseBuffers: true}
		want := coalesceAll(t, cfg, g.frames, func(int) int { return 63 }, MinBufLen)

		const fill = 0xaa
		roomed := make([][]byte, len(g.frames))
		for i, fr := range g.frames {
			roomed[i] = append(bytes.Repeat([]byte{fill}, HdrLen), fr...)
		}
		c, _ := newTestCoalescer(t, cfg, cfg.MaxFlows)
		var got []emitted
		inner := collect(t, &got)
		emit := func(tag uint32, vnetHdr, frame []byte, rest [][]byte) {
			if cap(vnetHdr) < HdrLen+len(frame) || &vnetHdr[:HdrLen+1][HdrLen] != &frame[0] {
				t.Fatalf("trial %d: header (GSO type %d) not adjacent to its frame", trial, vnetHdr[1])
			}
			if tag != 7 {
				t.Fatalf("trial %d: emitted with tag %d, offered with 7", trial, tag)
			}
			inner(tag, vnetHdr, frame, rest)
		}
		for i := 0; i < len(roomed); {
			for n := 64; n > 0 && i < len(roomed); n, i = n-1, i+1 {
				c.AddWithRoom(roomed[i], 7, emit)
			}
			c.Flush(emit)
		}
		if len(got) != len(want) {
			t.Fatalf("trial %d: %d frames emitted with room, %d without", trial, len(got), len(want))
		}
		for k := range got {
			if got[k].hdr != want[k].hdr || !bytes.Equal(got[k].frame, want[k].frame) {
				t.Fatalf("trial %d: emitted frame %d differs with room", trial, k)
			}
		}
		merged := 0
		for _, r := range roomed {
			if bytes.Equal(r[:HdrLen], bytes.Repeat([]byte{fill}, HdrLen)) {
				merged++ // went out inside a super-frame: its room untouched
			} else if !bytes.Equal(r[:HdrLen], make([]byte, HdrLen)) {
				t.Fatalf("trial %d: room holds % x, want zeros or untouched", trial, r[:HdrLen])
			}
		}
		if st := c.Stats(); uint64(merged) != st.Merged {
			t.Fatalf("trial %d: %d rooms untouched, %d frames merged", trial, merged, st.Merged)
		}
	}
}

// TestCoalesceTagsApart: the same segments offered under two tags, interleaved, never
// merge across tags, and each tag's frames come back whole, in order, with their tag.
func TestCoalesceTagsApart(t *testing.T) {
	g := &streamGen{tb: t, choose: rand.New(rand.NewPCG(13, 14)).IntN}
	g.addFlow(defaultFlow(0, false, false), 0)
	f := g.flows[0]
	for range 20 {
		g.frames = append(g.frames, g.segment(f, f.mss, tcpACK))
	}
	c, _ := newTestCoalescer(t, CoalescerConfig{MaxFlows: 4}, 8)
	byTag := map[uint32][]emitted{}
	emit := func(tag uint32, vnetHdr, frame []byte, rest [][]byte) {
		collect(t, new([]emitted))(tag, vnetHdr, frame, rest)
		h, _ := Decode(vnetHdr)
		byTag[tag] = append(byTag[tag], emitted{h, flatten(frame, rest)})
	}
	for _, fr := range g.frames {
		for _, tag := range []uint32{1, 2} {
			c.AddWithRoom(append(make([]byte, HdrLen), fr...), tag, emit)
		}
	}
	c.Flush(emit)
	if len(byTag) != 2 {
		t.Fatalf("emitted under tags %v, want 1 and 2", byTag)
	}
	for tag, out := range byTag {
		if len(out) != 1 || out[0].hdr.GSOType != GSOTCPv4 {
			t.Fatalf("tag %d: %d frames emitted, want one super-frame", tag, len(out))
		}
		segs, _ := expand(t, out, testMTU)
		if len(segs) != len(g.frames) {
			t.Fatalf("tag %d: %d segments back, %d offered", tag, len(segs), len(g.frames))
		}
		for i := range segs {
			if !bytes.Equal(segs[i], g.frames[i]) {
				t.Fatalf("tag %d: segment %d differs", tag, i)
			}
		}
	}
}
