package offload

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// TestCoalesceECNMarks: segments of one flow whose ECN fields differ are never merged, so a
// CE mark set on one segment (by the underlay, copied in by decapsulation) reaches the
// container on that segment, and no other segment gains or loses one.
func TestCoalesceECNMarks(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		g := &streamGen{tb: t, choose: rand.New(rand.NewPCG(9, 9)).IntN}
		spec := defaultFlow(0, v6, false)
		spec.tos = 0x20 | 2 // ECT(0)
		g.addFlow(spec, 0)
		f := g.flows[0]
		var in [][]byte
		for _, ecn := range []uint8{2, 2, 3, 3, 2, 1, 2} {
			f.spec.tos = 0x20 | ecn
			in = append(in, g.segment(f, f.mss, tcpACK))
		}
		c, _ := newTestCoalescer(t, CoalescerConfig{MaxFlows: 1}, 8)
		var out []emitted
		emit := collect(t, &out)
		for _, fr := range in {
			c.Add(fr, emit)
		}
		c.Flush(emit)
		// Runs of equal ECN merge: 2,2 | 3,3 | 2 | 1 | 2.
		if len(out) != 5 {
			t.Errorf("v6 %v: %d frames emitted, want 5 (runs of equal ECN)", v6, len(out))
		}
		segs, _ := expand(t, out, testMTU)
		if len(segs) != len(in) {
			t.Fatalf("v6 %v: %d segments after expansion, want %d", v6, len(segs), len(in))
		}
		for i := range segs {
			if !bytes.Equal(segs[i], in[i]) {
				t.Fatalf("v6 %v: segment %d differs from what came in (its ECN field was %d)", v6, i, in[i][ethLen+1]&3)
			}
		}
	}
}

// TestSegmentKeepsCE: every segment cut from a super-frame whose IP header carries CE
// carries CE (and the same DSCP), with a valid IPv4 header checksum.
func TestSegmentKeepsCE(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		spec := defaultFlow(0, v6, false)
		spec.tos = 0xb8 | 3 // EF, CE
		h, frame := spec.buildSuper(t, segSpec{seq: 1, ack: 1, flags: tcpACK, window: 512, payload: bytes.Repeat([]byte{7}, 20000)}, 1400)
		out := make([][]byte, 64)
		sizes := make([]int, 64)
		for i := range out {
			out[i] = make([]byte, testMTU+ethLen)
		}
		n, err := Segment(h, frame, testMTU, out, sizes, 0)
		if err != nil || n < 2 {
			t.Fatalf("v6 %v: Segment: %d segments, %v", v6, n, err)
		}
		for i := range n {
			s := out[i][:sizes[i]]
			tos := s[ethLen+1]
			if v6 {
				tos = s[ethLen]<<4 | s[ethLen+1]>>4
			} else if naiveFold(naiveSum(s[ethLen:ethLen+20], 0)) != 0xffff {
				t.Errorf("v6 %v: segment %d: ipv4 header checksum does not verify", v6, i)
			}
			if tos != 0xb8|3 {
				t.Errorf("v6 %v: segment %d: tos %#x, want %#x", v6, i, tos, 0xb8|3)
			}
		}
	}
}
