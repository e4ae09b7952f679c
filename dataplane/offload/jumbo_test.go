package offload

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// jumboMTU is an overlay MTU under a 9000-byte underlay: 8950.
const jumboMTU = 8950

// TestCoalesceRoundTripJumbo: clean TCP streams of jumbo segments (MSS up to 8950 less
// the headers) coalesced and segmented again at MTU 8950 come back byte for byte; no
// super-frame carries more than 64 KB, so at most seven full segments.
func TestCoalesceRoundTripJumbo(t *testing.T) {
	rng := rand.New(rand.NewPCG(16, 9000))
	for trial := range 100 {
		g := &streamGen{tb: t, choose: rng.IntN, clean: true}
		spec := defaultFlow(trial, rng.IntN(2) == 0, false)
		spec.ts = rng.IntN(2) == 0
		full := jumboMTU - spec.ipHdrLen()
		mss := full
		if rng.IntN(2) == 0 {
			mss = testMTU + rng.IntN(full-testMTU)
		}
		g.addFlow(spec, mss)
		for range 1 + rng.IntN(60) {
			g.step()
		}
		cfg := CoalescerConfig{MaxFlows: 1 + rng.IntN(4), ReuseBuffers: rng.IntN(2) == 0}
		out := coalesceAll(t, cfg, g.frames, rng.IntN, MinBufLen)
		checkEmitted(t, out)
		for k, it := range out {
			if len(it.frame)-ethLen > maxIPLen {
				t.Fatalf("trial %d: super-frame %d carries %d bytes of IP", trial, k, len(it.frame)-ethLen)
			}
		}
		segs, _ := expand(t, out, jumboMTU)
		if len(segs) != len(g.frames) {
			t.Fatalf("trial %d: %d frames in, %d out", trial, len(g.frames), len(segs))
		}
		for i := range segs {
			if !bytes.Equal(segs[i], g.frames[i]) {
				t.Fatalf("trial %d (%s, mss %d): frame %d differs: %s", trial, familyName(spec), mss, i, describe(segs[i], g.frames))
			}
		}
	}
}

// TestCoalesceInvertsSegmentJumbo: a TSO super-frame cut by Segment at MTU 8950 and
// coalesced again is the same super-frame, header included.
func TestCoalesceInvertsSegmentJumbo(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 8950))
	out, sizes := segOut(64, ethLen+jumboMTU)
	for trial := range 200 {
		spec := defaultFlow(trial, rng.IntN(2) == 0, rng.IntN(3) == 0)
		spec.ts = !spec.udp && rng.IntN(2) == 0
		mss := testMTU + rng.IntN(jumboMTU-spec.ipHdrLen()-testMTU)
		size := mss + 1 + rng.IntN(MaxFrameLen-ethLen-spec.ipHdrLen()-mss)
		hdr, frame := spec.buildSuper(t, segSpec{seq: rng.Uint32(), ack: rng.Uint32(), flags: tcpACK, window: 9,
			id: uint16(rng.Uint32()), tsval: 1, tsecr: 2, payload: randBytes(rng, size)}, mss)
		n, err := Segment(hdr, frame, jumboMTU, out, sizes, 0)
		if err != nil {
			t.Fatalf("trial %d (%s, %d bytes, mss %d): %v", trial, familyName(spec), size, mss, err)
		}
		for i := range n {
			if sizes[i]-ethLen > jumboMTU {
				t.Fatalf("trial %d: segment %d carries %d bytes of IP, more than the MTU", trial, i, sizes[i]-ethLen)
			}
		}
		c, _ := newTestCoalescer(t, CoalescerConfig{MaxFlows: 2, UDP: true}, 2)
		var got []emitted
		emit := collect(t, &got)
		for i := range n {
			c.Add(out[i][:sizes[i]], emit)
		}
		c.Flush(emit)
		if len(got) != 1 {
			t.Fatalf("trial %d (%s, %d bytes, mss %d): %d frames back, want 1", trial, familyName(spec), size, mss, len(got))
		}
		if got[0].hdr != hdr || !bytes.Equal(got[0].frame, frame) {
			t.Fatalf("trial %d (%s, %d bytes, mss %d): header %+v (want %+v), frame equal %v",
				trial, familyName(spec), size, mss, got[0].hdr, hdr, bytes.Equal(got[0].frame, frame))
		}
	}
}

// BenchmarkCoalesceJumbo: a batch of 21 jumbo TCP segments of one flow (what 64 UMEM
// frames of a multi-buffer micro-flow hold), Add each, Flush: 3 super-frames of 7.
func BenchmarkCoalesceJumbo(b *testing.B) {
	g := &streamGen{tb: b, choose: rand.New(rand.NewPCG(1, 2)).IntN}
	spec := defaultFlow(0, false, false)
	g.addFlow(spec, jumboMTU-spec.ipHdrLen())
	total := 0
	for range 21 {
		f := g.segment(g.flows[0], g.flows[0].mss, tcpACK)
		g.frames = append(g.frames, f)
		total += len(f)
	}
	c, _ := newTestCoalescer(b, CoalescerConfig{MaxFlows: 8, ReuseBuffers: true}, 8)
	b.SetBytes(int64(total))
	b.ReportAllocs()
	for b.Loop() {
		coalesceBatch(c, g.frames, discard)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/21, "ns/segment")
}
