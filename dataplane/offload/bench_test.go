package offload

import (
	"math/rand/v2"
	"testing"
)

// sink keeps emitted lengths alive, so the benchmarks' emit does some work.
var sink int

func discard(_ uint32, vnetHdr, frame []byte, rest [][]byte) {
	sink += len(vnetHdr) + len(frame)
	for _, r := range rest {
		sink += len(r)
	}
}

// mtuSegments returns n MTU-sized TCP segments of one flow (IPv4 or IPv6, with
// timestamps) and their total length.
func mtuSegments(tb testing.TB, n int, v6 bool) ([][]byte, int) {
	g := &streamGen{tb: tb, choose: rand.New(rand.NewPCG(1, 2)).IntN}
	g.addFlow(defaultFlow(0, v6, false), 0)
	total := 0
	for range n {
		b := g.segment(g.flows[0], g.flows[0].mss, tcpACK)
		g.frames = append(g.frames, b)
		total += len(b)
	}
	return g.frames, total
}

// coalesceBatch offers a batch of frames and flushes: one worker's share of a
// micro-flow.
func coalesceBatch(c *Coalescer, frames [][]byte, emit EmitFunc) {
	for _, f := range frames {
		c.Add(f, emit)
	}
	c.Flush(emit)
}

func benchmarkCoalesce(b *testing.B, v6 bool) {
	frames, total := mtuSegments(b, 64, v6)
	c, _ := newTestCoalescer(b, CoalescerConfig{MaxFlows: 8, ReuseBuffers: true}, 8)
	b.SetBytes(int64(total))
	b.ReportAllocs()
	for b.Loop() {
		coalesceBatch(c, frames, discard)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/64, "ns/segment")
}

// BenchmarkCoalesce64: a batch of 64 MTU TCP segments of one flow, Add each, Flush.
func BenchmarkCoalesce64(b *testing.B)   { benchmarkCoalesce(b, false) }
func BenchmarkCoalesce64v6(b *testing.B) { benchmarkCoalesce(b, true) }

// tso64K returns a 64 KB TSO super-frame (IPv4, timestamps, MSS 1448) and its header.
func tso64K(tb testing.TB) (VirtioNetHdr, []byte) {
	spec := defaultFlow(0, false, false)
	mss := testMTU - spec.ipHdrLen()
	return spec.buildSuper(tb, segSpec{seq: 1, ack: 1, flags: tcpACK | tcpPSH, window: 500, id: 1,
		payload: make([]byte, maxIPLen-spec.ipHdrLen())}, mss)
}

// BenchmarkSegment64K: one 64 KB TSO super-frame into 46 MTU segments with complete
// checksums, behind a VXLAN headroom.
func BenchmarkSegment64K(b *testing.B) {
	hdr, frame := tso64K(b)
	out, sizes := segOut(64, 64+ethLen+testMTU)
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Segment(hdr, frame, testMTU, out, sizes, 64); err != nil {
			b.Fatal(err)
		}
	}
}

// TestZeroAllocs: the per-packet paths allocate nothing, the unmergeable and
// malformed cases included.
func TestZeroAllocs(t *testing.T) {
	frames, _ := mtuSegments(t, 64, false)
	c, bufs := newTestCoalescer(t, CoalescerConfig{MaxFlows: 8}, 8)
	if a := testing.AllocsPerRun(100, func() {
		c.Reset(bufs)
		coalesceBatch(c, frames, discard)
	}); a != 0 {
		t.Errorf("Coalescer: %v allocations per batch", a)
	}

	g := &streamGen{tb: t, choose: rand.New(rand.NewPCG(8, 9)).IntN}
	for i := range 10 {
		g.addFlow(defaultFlow(i, i%2 == 0, i%3 == 0), 0)
	}
	for range 500 {
		g.step()
	}
	mixed, _ := newTestCoalescer(t, CoalescerConfig{MaxFlows: 4, UDP: true, ReuseBuffers: true}, 4)
	if a := testing.AllocsPerRun(20, func() { coalesceBatch(mixed, g.frames, discard) }); a != 0 {
		t.Errorf("Coalescer, mixed flows: %v allocations per batch", a)
	}

	hdr, frame := tso64K(t)
	out, sizes := segOut(64, 64+ethLen+testMTU)
	if a := testing.AllocsPerRun(100, func() { _, _ = Segment(hdr, frame, testMTU, out, sizes, 64) }); a != 0 {
		t.Errorf("Segment: %v allocations", a)
	}
	if a := testing.AllocsPerRun(100, func() { _, _ = Segment(hdr, frame[:100], testMTU, out, sizes, 64) }); a != 0 {
		t.Errorf("Segment error path: %v allocations", a)
	}
}
