//go:build linux

package xsk

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// deliverChunked receives pkt as the kernel does in copy mode with XDP_USE_SG: cut into
// frames from the fill ring, each at most chunk bytes 256 bytes into its frame, every
// descriptor but the last flagged XDP_PKT_CONTD. It reports whether the packet found its
// frames and ring slots.
func (k *fakeKernel) deliverChunked(pkt []byte, chunk int) bool {
	parts := (len(pkt) + chunk - 1) / chunk
	if k.fill.avail(uint32(parts)) < uint32(parts) || k.rx.free(uint32(parts)) < uint32(parts) {
		return false
	}
	for i := range uint32(parts) {
		addr := k.fill.entries[(k.fill.cachedCons+i)&k.fill.mask] + rxHeadroom
		c := copy(k.s.umem[addr:], pkt[:min(chunk, len(pkt))])
		pkt = pkt[c:]
		var opt uint32
		if len(pkt) > 0 {
			opt = unix.XDP_PKT_CONTD
		}
		k.rx.entries[(k.rx.cachedProd+i)&k.rx.mask] = unix.XDPDesc{Addr: addr, Len: uint32(c), Options: opt}
	}
	k.fill.release(uint32(parts))
	k.rx.submit(uint32(parts))
	return true
}

// gather joins the packets of descs (runs of Continued descriptors) and returns them.
func gather(s *Socket, descs []Desc) [][]byte {
	var pkts [][]byte
	var cur []byte
	for _, d := range descs {
		cur = append(cur, s.Frame(d)...)
		if !d.Continued {
			pkts = append(pkts, cur)
			cur = nil
		}
	}
	if cur != nil {
		pkts = append(pkts, append(cur, "<cut>"...)) // a packet without its tail: never equal
	}
	return pkts
}

func TestFakeMultiBufferReceiveWholePackets(t *testing.T) {
	s, k := newFakeSocket(t, 64, 2048, 32, 8)
	s.setMultiBuffer(true)
	chunk := 2048 - rxHeadroom
	// Five packets of 1 to 5 chunks: 15 descriptors.
	var sent [][]byte
	for i := 1; i <= 5; i++ {
		p := pattern(i*chunk-7, byte(i))
		if !k.deliverChunked(p, chunk) {
			t.Fatalf("packet %d: no room", i)
		}
		sent = append(sent, p)
	}
	// Room for 7 descriptors: the first three packets (1+2+3 = 6), not the head of the
	// fourth; then 4 of 4 and 5 of 5 fit only one at a time.
	descs := make([]Desc, 7)
	var got [][]byte
	for _, want := range []int{6, 4, 5} {
		n := s.Receive(descs)
		if n != want {
			t.Fatalf("Receive = %d descriptors, want %d (whole packets only)", n, want)
		}
		if descs[n-1].Continued {
			t.Fatalf("the last descriptor taken is a packet's head")
		}
		got = append(got, gather(s, descs[:n])...)
		s.Fill(descs[:n])
	}
	if n := s.Receive(descs); n != 0 {
		t.Fatalf("Receive = %d after every packet, want 0", n)
	}
	if len(got) != len(sent) {
		t.Fatalf("received %d packets, want %d", len(got), len(sent))
	}
	for i := range sent {
		if !bytes.Equal(got[i], sent[i]) {
			t.Errorf("packet %d (%d bytes) differs once gathered (%d bytes)", i, len(sent[i]), len(got[i]))
		}
	}
	if st := s.ownStats(); st.Received != 15 || st.Filled != 15 || st.FillRefused != 0 {
		t.Errorf("stats %+v, want 15 received and filled", st)
	}
}

func TestFakeMultiBufferTransmit(t *testing.T) {
	s, k := newFakeSocket(t, 64, 2048, 16, 16)
	k.keepSent = true
	s.setMultiBuffer(true)
	if s.MaxTxLen() != 2048*MaxChunks {
		t.Fatalf("MaxTxLen %d, want %d", s.MaxTxLen(), 2048*MaxChunks)
	}
	sizes := []int{60, 2048, 2049, 9014, 4096, 2048*MaxChunks + 1, 0}
	var frames [][]byte
	for i, n := range sizes {
		frames = append(frames, pattern(n, byte(i)))
	}
	// 1+1+2+5+2 = 11 frames of 16; the two too long or empty are dropped.
	if n := s.Transmit(frames); n != len(frames) {
		t.Fatalf("Transmit = %d, want %d", n, len(frames))
	}
	k.send()
	var got [][]byte
	var cur []byte
	for i, d := range k.sentDescs {
		cur = append(cur, k.sent[i]...)
		if d.Options&unix.XDP_PKT_CONTD == 0 {
			got = append(got, cur)
			cur = nil
		}
	}
	want := frames[:5]
	if len(got) != len(want) || cur != nil {
		t.Fatalf("the kernel saw %d packets (%d bytes left open), want %d", len(got), len(cur), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Errorf("packet %d (%d bytes) differs on the TX ring", i, len(want[i]))
		}
	}
	if st := s.ownStats(); st.Transmitted != 11 || st.TxTooLong != 2 || st.Completed != 0 {
		t.Errorf("stats %+v, want 11 frames transmitted, 2 too long", st)
	}
	// 16 TX frames; a packet that needs more than what is free waits whole.
	frames = [][]byte{pattern(2048*8, 1), pattern(2048*8, 2), pattern(2048*8, 3)}
	if n := s.Transmit(frames); n != 2 {
		t.Fatalf("Transmit of three 8-frame packets into 16 free frames = %d, want 2", n)
	}
	if st := s.ownStats(); st.Completed != 11 || st.TxNoRoom != 1 {
		t.Errorf("stats %+v, want 11 completed, 1 without room", st)
	}
}

func TestFakeSingleBufferTransmitTooLong(t *testing.T) {
	s, _ := newFakeSocket(t, 16, 2048, 16, 8)
	if n := s.Transmit([][]byte{pattern(2049, 0), pattern(2048, 1)}); n != 2 {
		t.Fatalf("Transmit = %d, want 2", n)
	}
	if st := s.ownStats(); st.Transmitted != 1 || st.TxTooLong != 1 {
		t.Errorf("stats %+v: without multi-buffer a packet longer than a frame is too long", st)
	}
}

func TestFakeMultiBufferNoAllocs(t *testing.T) {
	s, k := newFakeSocket(t, 64, 2048, 32, 16)
	s.setMultiBuffer(true)
	pkt := pattern(9014, 3)
	descs := make([]Desc, 32)
	frames := [][]byte{pkt}
	allocs := testing.AllocsPerRun(100, func() {
		k.deliverChunked(pkt, 2048-rxHeadroom)
		n := s.Receive(descs)
		s.Fill(descs[:n])
		s.Transmit(frames)
		k.send()
	})
	if allocs != 0 {
		t.Errorf("%v allocations per multi-buffer receive and transmit, want 0", allocs)
	}
}

// jumboFrame builds an Ethernet/IPv4/UDP test frame of size bytes from src to dst whose
// payload derives from seq: testFrame's layout beyond 1514 bytes.
func jumboFrame(n *vethNet, seq uint32, size int) []byte {
	b := testFrame(make([]byte, 2048), n.macA, n.macB, seq)
	f := make([]byte, size)
	copy(f, b[:42+12])
	binary.BigEndian.PutUint16(f[16:], uint16(size-14))
	f[24], f[25] = 0, 0
	var sum uint32
	for i := 14; i < 34; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(f[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(f[24:], ^uint16(sum))
	binary.BigEndian.PutUint16(f[38:], uint16(size-34))
	for i := 54; i < size; i++ {
		f[i] = byte(seq*31 + uint32(i)*7)
	}
	return f
}

// TestVethMultiBuffer sends frames of every length class up to a 9000-byte MTU through a
// real veth with a frags-declaring XDP program into a multi-buffer socket, and back out
// of it, and checks every byte both ways.
func TestVethMultiBuffer(t *testing.T) {
	const mtu = 9000
	n := newVethNetMTU(t, 1, mtu)
	o := smallUMEM
	o.MultiBuffer = true
	s := n.open(t, o)
	if !s.MultiBuffer() {
		t.Fatal("socket not in multi-buffer mode")
	}
	t.Logf("xdp native=%v, zero-copy=%v", n.native, s.ZeroCopy())
	chunk := o.FrameSize - rxHeadroom
	sizes := []int{60, 1514, chunk - 1, chunk, chunk + 1, 2 * chunk, 2*chunk + 1, 8000, 14 + mtu}
	tx := n.packetSocket(t, n.a, false)
	descs := make([]Desc, 32)
	for i, size := range sizes {
		want := jumboFrame(n, uint32(i), size)
		if _, err := unix.Write(tx, want); err != nil {
			t.Fatalf("send %d-byte frame: %v", size, err)
		}
		var got []Desc
		waitFor(2*time.Second, func() bool {
			k := s.Receive(descs)
			got = append(got, descs[:k]...)
			return len(got) > 0
		})
		pkts := gather(s, got)
		s.Fill(got)
		if len(pkts) != 1 || !bytes.Equal(pkts[0], want) {
			st, _ := s.Stats()
			t.Fatalf("%d-byte frame: received %d packets in %d descriptors, equal %v; stats %+v",
				size, len(pkts), len(got), len(pkts) == 1 && bytes.Equal(pkts[0], want), st)
		}
		if wantDescs := (size + chunk - 1) / chunk; len(got) != wantDescs {
			t.Errorf("%d-byte frame in %d descriptors, want %d", size, len(got), wantDescs)
		}
	}

	rx := n.packetSocket(t, n.a, true)
	buf := make([]byte, 16384)
	for i, size := range sizes {
		want := jumboFrame(n, uint32(100+i), size)
		copy(want[0:6], n.macA)
		copy(want[6:12], n.macB)
		if k := s.Transmit([][]byte{want}); k != 1 {
			t.Fatalf("Transmit of a %d-byte frame = %d", size, k)
		}
		var got []byte
		ok := waitFor(2*time.Second, func() bool {
			m, ok, err := recvPacket(rx, buf)
			if err != nil || !ok {
				return false
			}
			got = buf[:m]
			return bytes.Equal(got[6:12], n.macB) && len(got) >= 54 && got[53] == want[53] && binary.BigEndian.Uint16(got[12:]) == unix.ETH_P_IP
		})
		if !ok || !bytes.Equal(got, want) {
			st, _ := s.Stats()
			t.Fatalf("sent a %d-byte frame, the peer received %d bytes (equal %v); stats %+v", size, len(got), bytes.Equal(got, want), st)
		}
	}
	if st, err := s.Stats(); err != nil || st.RxDropped != 0 || st.TxInvalidDescs != 0 || st.RxInvalidDescs != 0 {
		t.Errorf("stats %+v, %v: want no drops and no invalid descriptors", st, err)
	}
}

// TestVethSingleBufferDropsJumbo shows what multi-buffer fixes: without it the socket's
// kernel side drops a frame longer than a frame's room (rx_dropped).
func TestVethSingleBufferDropsJumbo(t *testing.T) {
	n := newVethNetMTU(t, 1, 9000)
	s := n.open(t, smallUMEM)
	tx := n.packetSocket(t, n.a, false)
	if _, err := unix.Write(tx, jumboFrame(n, 1, 8000)); err != nil {
		t.Fatal(err)
	}
	descs := make([]Desc, 16)
	ok := waitFor(2*time.Second, func() bool {
		st, _ := s.Stats()
		return st.RxDropped > 0
	})
	if k := s.Receive(descs); k != 0 || !ok {
		t.Fatalf("an 8000-byte frame: received %d descriptors, rx_dropped seen %v", k, ok)
	}
}

// deliverCut receives pkt as the kernel does with XDP_USE_SG, cut after the byte counts
// cuts gives (each at least 1 and at most a frame's room; the rest goes on in chunks of
// the room): the kernel fills each frame before the next in copy mode, but a zero-copy
// driver may cut anywhere. It reports how many descriptors it posted, 0 if no room.
func (k *fakeKernel) deliverCut(pkt []byte, cuts []int) int {
	var parts [][]byte
	for len(pkt) > 0 {
		n := int(k.s.frameSize) - rxHeadroom
		if len(cuts) > 0 {
			n, cuts = min(cuts[0], n), cuts[1:]
		}
		n = min(max(n, 1), len(pkt))
		parts, pkt = append(parts, pkt[:n]), pkt[n:]
	}
	m := uint32(len(parts))
	if m == 0 || k.fill.avail(m) < m || k.rx.free(m) < m {
		return 0
	}
	for i, p := range parts {
		addr := k.fill.entries[(k.fill.cachedCons+uint32(i))&k.fill.mask] + rxHeadroom
		copy(k.s.umem[addr:], p)
		var opt uint32
		if i < len(parts)-1 {
			opt = unix.XDP_PKT_CONTD
		}
		k.rx.entries[(k.rx.cachedProd+uint32(i))&k.rx.mask] = unix.XDPDesc{Addr: addr, Len: uint32(len(p)), Options: opt}
	}
	k.fill.release(m)
	k.rx.submit(m)
	return len(parts)
}

// FuzzGather: a packet cut into chunks at any boundaries, received and gathered, is the
// packet whole; Receive takes it whole or, given room for fewer descriptors than it spans,
// drops it whole (counted) and takes the next packet as it is, never a tail on its own;
// Gather into a buffer too short gives nothing but still says how many descriptors the
// packet spans; every frame goes back to the fill ring.
func FuzzGather(f *testing.F) {
	f.Add(pattern(9014, 1), []byte{})
	f.Add(pattern(9014, 2), []byte{1, 255, 3})
	f.Add(pattern(1792, 3), []byte{})
	f.Add(pattern(1793, 4), []byte{})
	f.Add(pattern(60, 5), []byte{59})
	f.Add(pattern(4000, 6), []byte{0, 0, 0})
	f.Fuzz(func(t *testing.T, pkt []byte, cutBytes []byte) {
		const frameSize, numFrames, ringSize, txFrames = 2048, 64, 32, 8
		room := frameSize - rxHeadroom
		if len(pkt) == 0 || len(pkt) > MaxChunks*room {
			return
		}
		s, k := newFakeSocket(t, numFrames, frameSize, ringSize, txFrames)
		s.setMultiBuffer(true)
		cuts := make([]int, len(cutBytes))
		for i, c := range cutBytes {
			cuts[i] = int(c)*7 + 1 // 1 to 1786: every boundary reachable
		}
		posted := k.deliverCut(pkt, cuts)
		if posted == 0 || posted >= ringSize {
			return // more chunks than the fill ring or RX ring holds, with a marker behind
		}
		descs := make([]Desc, ringSize)
		n := s.Receive(descs)
		if n != posted {
			t.Fatalf("Receive took %d descriptors, the packet has %d", n, posted)
		}
		got, took := s.Gather(descs[:n], make([]byte, len(pkt)))
		if took != n || !bytes.Equal(got, pkt) {
			t.Fatalf("gathered %d bytes from %d of %d descriptors, equal %v", len(got), took, n, bytes.Equal(got, pkt))
		}
		if short, took := s.Gather(descs[:n], make([]byte, len(pkt)-1)); short != nil || took != n {
			t.Fatalf("gather into a short buffer: %d bytes, took %d of %d", len(short), took, n)
		}
		if n > 1 {
			if cut, _ := s.Gather(descs[:n-1], make([]byte, len(pkt))); cut != nil {
				t.Fatalf("gathered %d bytes of a packet without its last descriptor", len(cut))
			}
		}
		s.Fill(descs[:n])
		if posted > 1 {
			// Again, with room for one descriptor fewer than the packet spans, and a
			// one-frame marker behind it: the packet goes, the marker comes whole.
			marker := pattern(100, 0xaa)
			if k.deliverCut(pkt, cuts) != posted || k.deliverCut(marker, nil) != 1 {
				t.Fatal("no room to deliver again")
			}
			for range 2 {
				if got := s.Receive(descs[:posted-1]); got != 0 && (got != 1 || !bytes.Equal(s.Frame(descs[0]), marker)) {
					t.Fatalf("Receive with room for %d of %d descriptors took %d, not the marker alone", posted-1, posted, got)
				} else if got == 1 {
					s.Fill(descs[:1])
					break
				}
			}
			if st := s.ownStats(); st.RxTooLong != 1 {
				t.Fatalf("RxTooLong %d after a packet longer than Receive's room", st.RxTooLong)
			}
		}
		if st := s.ownStats(); st.FillRefused != 0 || k.inFill()+len(s.spare) != numFrames-txFrames {
			t.Fatalf("stats %+v; %d frames in the fill ring and %d aside, want all %d back", st, k.inFill(), len(s.spare), numFrames-txFrames)
		}
	})
}

// FuzzTransmitChunks: packets of any length, transmitted by a multi-buffer socket, reach
// the TX ring as runs of descriptors that join up to each packet exactly, one frame each
// but the last full; a packet longer than MaxTxLen, or empty, is dropped whole.
func FuzzTransmitChunks(f *testing.F) {
	f.Add(pattern(9014, 1), []byte{0x23, 0x3a, 0, 1})
	f.Add(pattern(4096, 2), []byte{0x08, 0x00, 0x08, 0x01})
	f.Add(pattern(64, 3), []byte{0, 64})
	f.Add(pattern(100, 4), []byte{0x80, 0x01, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte, lens []byte) {
		const frameSize = 2048
		s, k := newFakeSocket(t, 48, frameSize, 32, 32)
		k.keepSent = true
		s.setMultiBuffer(true)
		// Each pair of bytes of lens is a packet length (up to 4 packets: the TX ring
		// fills and drains between them), its bytes data repeated.
		var frames [][]byte
		for i := 0; i+1 < len(lens) && len(data) > 0 && len(frames) < 4; i += 2 {
			n := int(binary.BigEndian.Uint16(lens[i:])) % (frameSize*MaxChunks + 2)
			p := make([]byte, n)
			for j := 0; j < n; j += copy(p[j:], data) {
			}
			if n > 0 {
				p[n-1] ^= byte(i) // packets of one input differ at least in their last byte
			}
			frames = append(frames, p)
		}
		var want [][]byte
		for posted := 0; posted < len(frames); {
			n := s.Transmit(frames[posted:])
			for _, p := range frames[posted : posted+n] {
				if len(p) > 0 && len(p) <= s.MaxTxLen() {
					want = append(want, p)
				}
			}
			posted += n
			if k.send() == 0 && n == 0 {
				t.Fatalf("Transmit makes no progress at packet %d of %d", posted, len(frames))
			}
		}
		k.send()
		var got [][]byte
		var cur []byte
		for i, d := range k.sentDescs {
			if d.Options&unix.XDP_PKT_CONTD != 0 && d.Len != frameSize {
				t.Fatalf("descriptor %d continues a packet but holds %d bytes, not a frame", i, d.Len)
			}
			cur = append(cur, k.sent[i]...)
			if d.Options&unix.XDP_PKT_CONTD == 0 {
				got, cur = append(got, cur), nil
			}
		}
		if cur != nil || len(got) != len(want) {
			t.Fatalf("the TX ring holds %d packets (%d bytes left open), want %d", len(got), len(cur), len(want))
		}
		for i := range want {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("packet %d of %d bytes differs on the TX ring (%d bytes)", i, len(want[i]), len(got[i]))
			}
		}
		if st := s.ownStats(); st.Transmitted != uint64(len(k.sentDescs)) || st.TxTooLong != uint64(len(frames)-len(want)) {
			t.Fatalf("stats %+v for %d descriptors, %d packets dropped", st, len(k.sentDescs), len(frames)-len(want))
		}
	})
}

// BenchmarkGather: the 21 frames of 9014 bytes a multi-buffer micro-flow of 64 UMEM
// frames holds, received over three 4 KiB UMEM frames each, gathered into one buffer:
// the copy a micro-flow pays per jumbo frame before parsing it whole. Reported per frame;
// the 250 KB of chunks stay in L2, as a micro-flow's just-received frames do.
func BenchmarkGather(b *testing.B) {
	const frames = 21
	s, k := newFakeSocket(b, 128, 4096, 64, 8)
	s.setMultiBuffer(true)
	for i := range frames {
		if !k.deliverChunked(pattern(9014, byte(i)), 4096-rxHeadroom) {
			b.Fatal("no room")
		}
	}
	descs := make([]Desc, 64)
	n := s.Receive(descs)
	buf := make([]byte, frames*9014)
	b.SetBytes(frames * 9014)
	b.ReportAllocs()
	for b.Loop() {
		out := buf
		for i := 0; i < n; {
			got, took := s.Gather(descs[i:n], out)
			if len(got) != 9014 {
				b.Fatal("gather failed")
			}
			out, i = out[len(got):], i+took
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/frames, "ns/frame")
}
