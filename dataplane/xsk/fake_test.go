//go:build linux

package xsk

import (
	"bytes"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// fakeKernel plays the kernel's side of a Socket built over plain memory: it takes frames
// from the fill ring to receive into, and sends what the TX ring holds.
type fakeKernel struct {
	s          *Socket
	fill, comp ring[uint64]
	rx, tx     ring[unix.XDPDesc]
	sent       [][]byte       // copies of transmitted frames, if keepSent
	sentDescs  []unix.XDPDesc // their descriptors, if keepSent
	keepSent   bool
	sentN      int
}

// newFakeSocket builds a Socket over Go memory (no fd, no syscalls: the need-wakeup flags
// stay clear) and the fake kernel behind it.
func newFakeSocket(tb testing.TB, numFrames, frameSize, ringSize, txFrames int) (*Socket, *fakeKernel) {
	tb.Helper()
	if err := (Options{Ifindex: 1, NumFrames: numFrames, FrameSize: frameSize, RingSize: ringSize, TxFrames: txFrames}).validate(4096); err != nil {
		tb.Fatal(err)
	}
	words := make([]uint64, numFrames*frameSize/8)
	s := &Socket{fd: -1, txfd: -1, umem: unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), numFrames*frameSize)}
	k := &fakeKernel{s: s}
	rs := uint32(ringSize)
	fill, kfill := ringPair[uint64](tb, rs, 0)
	comp, kcomp := ringPair[uint64](tb, rs, 0)
	rx, krx := ringPair[unix.XDPDesc](tb, rs, 0)
	tx, ktx := ringPair[unix.XDPDesc](tb, rs, 0)
	k.fill, k.comp, k.rx, k.tx = kfill, kcomp, krx, ktx
	s.init(uint32(frameSize), txFrames, fill, comp, rx, tx)
	return s, k
}

// deliver receives pkts as the kernel does in copy mode: each into a frame from the fill
// ring, 256 bytes in, posted on the RX ring. It returns how many found a frame and a slot.
func (k *fakeKernel) deliver(pkts [][]byte) int {
	n := min(k.fill.avail(uint32(len(pkts))), k.rx.free(uint32(len(pkts))))
	for i := range n {
		addr := k.fill.entries[(k.fill.cachedCons+i)&k.fill.mask]
		a := addr + rxHeadroom
		copy(k.s.umem[a:], pkts[i])
		k.rx.entries[(k.rx.cachedProd+i)&k.rx.mask] = unix.XDPDesc{Addr: a, Len: uint32(len(pkts[i]))}
	}
	k.fill.release(n)
	k.rx.submit(n)
	return int(n)
}

// send consumes the TX ring and completes every frame.
func (k *fakeKernel) send() int {
	n := k.tx.avail(k.tx.size())
	n = min(n, k.comp.free(n))
	for i := range n {
		d := k.tx.entries[(k.tx.cachedCons+i)&k.tx.mask]
		if k.keepSent {
			k.sent = append(k.sent, bytes.Clone(k.s.umem[d.Addr:d.Addr+uint64(d.Len)]))
			k.sentDescs = append(k.sentDescs, d)
		}
		k.comp.entries[(k.comp.cachedProd+i)&k.comp.mask] = d.Addr
	}
	k.tx.release(n)
	k.comp.submit(n)
	k.sentN += int(n)
	return int(n)
}

// inFill is how many frames the fill ring holds for the kernel.
func (k *fakeKernel) inFill() int { return int(k.fill.avail(k.fill.size())) }

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*13)
	}
	return b
}

func TestFakeReceiveFrameFill(t *testing.T) {
	// 8 TX frames, 24 RX frames for a 16-entry fill ring: 8 start aside.
	s, k := newFakeSocket(t, 32, 2048, 16, 8)
	if got := k.inFill(); got != 16 {
		t.Fatalf("fill ring holds %d frames at start, want 16", got)
	}
	if len(s.spare) != 8 {
		t.Fatalf("%d frames aside at start, want 8", len(s.spare))
	}
	descs := make([]Desc, 16)
	total := 0
	for round := range 50 {
		pkts := [][]byte{pattern(60, byte(round)), pattern(1500, byte(round+1)), pattern(2048-rxHeadroom, byte(round+2))}
		if got := k.deliver(pkts); got != len(pkts) {
			t.Fatalf("round %d: delivered %d of %d", round, got, len(pkts))
		}
		n := s.Receive(descs)
		if n != len(pkts) {
			t.Fatalf("round %d: Receive = %d, want %d", round, n, len(pkts))
		}
		for i, d := range descs[:n] {
			if d.Addr < s.rxBase {
				t.Fatalf("received into TX frame %#x", d.Addr)
			}
			f := s.Frame(d)
			if !bytes.Equal(f, pkts[i]) {
				t.Fatalf("round %d packet %d: frame bytes differ", round, i)
			}
			if cap(f) != 2048-rxHeadroom {
				t.Fatalf("frame capacity %d, want to the end of the frame (%d)", cap(f), 2048-rxHeadroom)
			}
		}
		if s.rxOut.Load() != int64(n) {
			t.Fatalf("rxOut = %d, want %d", s.rxOut.Load(), n)
		}
		s.Fill(descs[:n])
		total += n
	}
	st := s.ownStats()
	if st.Received != uint64(total) || st.Filled != uint64(total) || st.FillRefused != 0 {
		t.Errorf("stats %+v, want %d received and filled", st, total)
	}
	// 150 packets through 24 RX frames: recycling works. Every frame is back.
	if got := k.inFill() + len(s.spare); got != 24 || s.rxOut.Load() != 0 {
		t.Errorf("after the run %d frames in fill+aside, %d out; want 24 and 0", got, s.rxOut.Load())
	}
}

func TestFakeFillRefusesFramesNotHeld(t *testing.T) {
	s, k := newFakeSocket(t, 16, 2048, 8, 4)
	k.deliver([][]byte{pattern(100, 1), pattern(100, 2)})
	descs := make([]Desc, 4)
	n := s.Receive(descs)
	if n != 2 {
		t.Fatalf("Receive = %d", n)
	}
	bogus := []Desc{
		{Addr: 0},                               // a TX frame
		{Addr: uint64(len(s.umem)) + 4096},      // outside the UMEM
		{Addr: s.rxBase + 15*2048 + rxHeadroom}, // an RX frame never received (in the fill ring)
	}
	s.Fill(bogus)
	if st := s.ownStats(); st.FillRefused != 3 || st.Filled != 0 {
		t.Fatalf("after bogus Fill: %+v", st)
	}
	s.Fill(descs[:n])
	s.Fill(descs[:n]) // double release
	st := s.ownStats()
	if st.Filled != 2 || st.FillRefused != 5 {
		t.Errorf("after double Fill: filled %d refused %d, want 2 and 5", st.Filled, st.FillRefused)
	}
	if got := k.inFill() + len(s.spare); got != 12 {
		t.Errorf("%d RX frames in fill+aside, want 12", got)
	}
}

func TestFakeFrameBounds(t *testing.T) {
	s, _ := newFakeSocket(t, 8, 2048, 4, 2)
	for _, d := range []Desc{
		{Addr: uint64(len(s.umem)), Len: 1},
		{Addr: 2048 - 10, Len: 20},                  // crosses into the next frame
		{Addr: 1<<64 - 8, Len: 16},                  // wraps
		{Addr: uint64(len(s.umem)) - 100, Len: 200}, // past the end
	} {
		if f := s.Frame(d); f != nil {
			t.Errorf("Frame(%+v) = %d bytes, want nil", d, len(f))
		}
	}
	if f := s.Frame(Desc{Addr: 2048 + 256, Len: 1792}); len(f) != 1792 {
		t.Errorf("Frame of a whole frame = %d bytes", len(f))
	}
}

func TestFakeTransmit(t *testing.T) {
	s, k := newFakeSocket(t, 16, 2048, 8, 4)
	k.keepSent = true
	frames := [][]byte{pattern(60, 1), pattern(2048, 2), pattern(2049, 3), nil, pattern(1000, 4), pattern(70, 5), pattern(80, 6)}
	// 4 TX frames: the first four valid ones go; the too long and empty ones are handled.
	n := s.Transmit(frames)
	if n != 6 {
		t.Fatalf("Transmit = %d, want 6 (4 posted, 2 dropped, 1 without room)", n)
	}
	st := s.ownStats()
	if st.Transmitted != 4 || st.TxTooLong != 2 || st.TxNoRoom != 1 {
		t.Fatalf("stats %+v", st)
	}
	if got := s.Transmit(frames[6:]); got != 0 {
		t.Fatalf("Transmit with every TX frame in flight = %d", got)
	}
	k.send()
	// Completions are reaped by the next call, which now has room.
	if got := s.Transmit(frames[6:]); got != 1 {
		t.Fatalf("Transmit after completion = %d", got)
	}
	k.send()
	want := [][]byte{frames[0], frames[1], frames[4], frames[5], frames[6]}
	if len(k.sent) != len(want) {
		t.Fatalf("sent %d frames, want %d", len(k.sent), len(want))
	}
	for i := range want {
		if !bytes.Equal(k.sent[i], want[i]) {
			t.Errorf("frame %d differs on the wire", i)
		}
	}
	s.Transmit(nil)
	if st := s.ownStats(); st.Completed != 5 || len(s.txFree) != 4 {
		t.Errorf("completed %d, %d free, want 5 and 4", st.Completed, len(s.txFree))
	}
}

func TestFakeHeldFramesOutliveClose(t *testing.T) {
	s, k := newFakeSocket(t, 16, 2048, 8, 4)
	k.deliver([][]byte{pattern(100, 9)})
	descs := make([]Desc, 4)
	if s.Receive(descs) != 1 {
		t.Fatal("nothing received")
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if s.umemReleased.Load() {
		t.Fatal("UMEM released while the caller holds a frame")
	}
	if !bytes.Equal(s.Frame(descs[0]), pattern(100, 9)) {
		t.Fatal("held frame changed after Close")
	}
	if s.Receive(descs) != 0 || s.Transmit([][]byte{{1}}) != 0 {
		t.Fatal("Receive or Transmit worked after Close")
	}
	if _, err := s.Stats(); !errors.Is(err, ErrClosed) || !errors.Is(err, net.ErrClosed) {
		t.Errorf("Stats after Close: %v", err)
	}
	if err := s.Wait(); !errors.Is(err, ErrClosed) {
		t.Errorf("Wait after Close: %v", err)
	}
	s.Fill(descs[:1])
	if !s.umemReleased.Load() {
		t.Fatal("UMEM not released once the last frame came back")
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestFakeNoAllocs(t *testing.T) {
	s, k := newFakeSocket(t, 256, 2048, 128, 64)
	descs := make([]Desc, 64)
	pkts := make([][]byte, 64)
	for i := range pkts {
		pkts[i] = pattern(64+i*20, byte(i))
	}
	if a := testing.AllocsPerRun(200, func() {
		k.deliver(pkts)
		n := s.Receive(descs)
		for i := range descs[:n] {
			_ = s.Frame(descs[i])
		}
		s.Fill(descs[:n])
	}); a != 0 {
		t.Errorf("Receive/Frame/Fill: %v allocs per batch of 64", a)
	}
	if a := testing.AllocsPerRun(200, func() {
		s.Transmit(pkts)
		k.send()
	}); a != 0 {
		t.Errorf("Transmit: %v allocs per batch of 64", a)
	}
}

// BenchmarkFakeReceiveFill measures the socket layer alone on the RX side, against a fake
// kernel, per packet (batches of 64).
func BenchmarkFakeReceiveFill(b *testing.B) {
	s, k := newFakeSocket(b, 256, 2048, 128, 64)
	descs := make([]Desc, 64)
	pkts := make([][]byte, 64)
	for i := range pkts {
		pkts[i] = pattern(64, byte(i))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += 64 {
		k.deliver(pkts)
		n := s.Receive(descs)
		s.Fill(descs[:n])
	}
}

// BenchmarkFakeTransmit measures Transmit alone (copying 64-byte frames) against a fake
// kernel, per packet (batches of 64).
func BenchmarkFakeTransmit(b *testing.B) {
	s, k := newFakeSocket(b, 256, 2048, 128, 64)
	pkts := make([][]byte, 64)
	for i := range pkts {
		pkts[i] = pattern(64, byte(i))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += 64 {
		s.Transmit(pkts)
		k.send()
	}
}

// FuzzFillFrame drives the RX side with a byte script (deliveries, receives, valid and
// arbitrary hand-backs, arbitrary Frame calls) and checks frame ownership after each step:
// every RX frame is in exactly one place (fill ring, RX ring, aside, or held by the
// caller), Fill takes back exactly the frames held, and Frame never reaches outside one
// frame of the UMEM.
func FuzzFillFrame(f *testing.F) {
	f.Add([]byte{0x08, 0x19, 0x22, 0x08, 0x19, 0x03, 0, 0, 0, 0, 0, 0, 0x21, 0x00})
	f.Add([]byte{0x38, 0x39, 0x3a, 0x3b, 0x3c, 0x3d, 0x3e, 0x3f})
	f.Add([]byte{0x78, 0x79, 0x0b, 0x00, 0x09, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, script []byte) {
		const numFrames, frameSize, txFrames = 16, 2048, 4
		s, k := newFakeSocket(t, numFrames, frameSize, 4, txFrames)
		pkt := pattern(100, 7)
		var held []Desc
		descs := make([]Desc, 8)
		next8 := func(i *int) uint64 {
			var v uint64
			for j := 0; j < 8 && *i < len(script); j++ {
				v = v<<8 | uint64(script[*i])
				*i++
			}
			return v
		}
		for i := 0; i < len(script); {
			b := script[i]
			i++
			n := int(b>>3) % 9
			switch b & 7 {
			case 0:
				pkts := make([][]byte, n)
				for j := range pkts {
					pkts[j] = pkt
				}
				k.deliver(pkts)
			case 1:
				got := s.Receive(descs[:n])
				held = append(held, descs[:got]...)
			case 2:
				n = min(n, len(held))
				before := s.ownStats()
				s.Fill(held[:n])
				held = held[n:]
				if st := s.ownStats(); st.Filled-before.Filled != uint64(n) || st.FillRefused != before.FillRefused {
					t.Fatalf("Fill of %d held frames: filled %d, refused %d", n, st.Filled-before.Filled, st.FillRefused-before.FillRefused)
				}
			case 3:
				d := Desc{Addr: next8(&i), Len: uint32(b)}
				want := -1
				for j, h := range held {
					if h.Addr/frameSize == d.Addr/frameSize && d.Addr >= txFrames*frameSize {
						want = j
					}
				}
				before := s.ownStats()
				s.Fill([]Desc{d})
				accepted := s.ownStats().Filled - before.Filled
				if (want >= 0) != (accepted == 1) {
					t.Fatalf("Fill(%+v): accepted %d, held by the caller: %v", d, accepted, want >= 0)
				}
				if want >= 0 {
					held = append(held[:want], held[want+1:]...)
				}
			case 4:
				d := Desc{Addr: next8(&i), Len: uint32(next8(&i))}
				if fr := s.Frame(d); fr != nil {
					start := uintptr(unsafe.Pointer(unsafe.SliceData(fr))) - uintptr(unsafe.Pointer(unsafe.SliceData(s.umem)))
					if start/frameSize != (start+uintptr(cap(fr))-1)/frameSize || start+uintptr(cap(fr)) > uintptr(len(s.umem)) {
						t.Fatalf("Frame(%+v) reaches outside one frame: offset %d cap %d", d, start, cap(fr))
					}
				}
			default:
				s.Transmit(nil)
			}
			// Every RX frame in exactly one place.
			where := make(map[uint64]int)
			for j := k.fill.cachedCons; j != atomic.LoadUint32(k.fill.producer); j++ {
				where[k.fill.entries[j&k.fill.mask]/frameSize]++
			}
			for j := s.rx.cachedCons; j != atomic.LoadUint32(s.rx.producer); j++ {
				where[s.rx.entries[j&s.rx.mask].Addr/frameSize]++
			}
			for _, a := range s.spare {
				where[a/frameSize]++
			}
			for _, h := range held {
				where[h.Addr/frameSize]++
			}
			if len(where) != numFrames-txFrames {
				t.Fatalf("%d distinct RX frames accounted for, want %d", len(where), numFrames-txFrames)
			}
			for fr, c := range where {
				if c != 1 || fr < txFrames || fr >= numFrames {
					t.Fatalf("frame %d in %d places", fr, c)
				}
			}
			if s.rxOut.Load() != int64(len(held)) {
				t.Fatalf("rxOut %d, caller holds %d", s.rxOut.Load(), len(held))
			}
		}
	})
}

func TestFakeFrameWithRoom(t *testing.T) {
	s, k := newFakeSocket(t, 16, 2048, 8, 4)
	pkt := pattern(300, 5)
	k.deliver([][]byte{pkt})
	descs := make([]Desc, 1)
	if s.Receive(descs) != 1 {
		t.Fatal("nothing received")
	}
	d := descs[0]
	for _, room := range []int{0, 70, rxHeadroom} {
		f := s.FrameWithRoom(d, room)
		if len(f) != room+len(pkt) || !bytes.Equal(f[room:], pkt) {
			t.Fatalf("room %d: %d bytes, packet at [room:] equal: %v", room, len(f), f != nil && bytes.Equal(f[room:], pkt))
		}
		if cap(f) != room+cap(s.Frame(d)) {
			t.Errorf("room %d: capacity %d, want to the end of the frame (%d)", room, cap(f), room+cap(s.Frame(d)))
		}
		// The room lies in the packet's own frame, right in front of it.
		if &f[room] != &s.Frame(d)[0] {
			t.Errorf("room %d: packet not at [room:] of the same memory", room)
		}
	}
	for _, room := range []int{-1, rxHeadroom + 1, 1 << 40} {
		if f := s.FrameWithRoom(d, room); f != nil {
			t.Errorf("room %d reaching outside the frame: got %d bytes", room, len(f))
		}
	}
	if f := s.FrameWithRoom(Desc{Addr: uint64(len(s.umem)) + 256, Len: 1}, 10); f != nil {
		t.Errorf("FrameWithRoom outside the UMEM: %d bytes", len(f))
	}
	s.Fill(descs)
}

// TestFakeReserveInPlace: frames built in reserved TX frames go out where they are (no
// copy: the descriptor points into the reserved frame, at the packet's offset), mixed in
// order with copied ones; reserved frames that are not sent come back with Release and are
// handed out again; reserved frames keep the UMEM mapped across Close.
func TestFakeReserveInPlace(t *testing.T) {
	s, k := newFakeSocket(t, 16, 2048, 8, 4)
	k.keepSent = true
	chunks := make([][]byte, 8)
	if n := s.Reserve(chunks[:3]); n != 3 {
		t.Fatalf("Reserve(3) = %d with 4 free TX frames", n)
	}
	a := chunks[0][100:160]
	copy(a, pattern(60, 1))
	b := chunks[1][0:2048]
	copy(b, pattern(2048, 2))
	copied := pattern(70, 3)
	// One free TX frame left: the copy takes it, the in-place ones need none.
	if n := s.Transmit([][]byte{a, copied, b}); n != 3 {
		t.Fatalf("Transmit = %d, want 3", n)
	}
	if s.Transmit([][]byte{pattern(10, 4)}) != 0 {
		t.Fatal("a copy found a free TX frame while one is still reserved")
	}
	s.Release(chunks[2:3])
	k.send()
	want := [][]byte{pattern(60, 1), copied, pattern(2048, 2)}
	for i := range want {
		if !bytes.Equal(k.sent[i], want[i]) {
			t.Errorf("frame %d differs on the wire", i)
		}
	}
	if d := k.sentDescs[0]; d.Addr%2048 != 100 || d.Len != 60 {
		t.Errorf("in-place frame posted as %+v, want offset 100 into its frame, 60 bytes", d)
	}
	if n := s.TxFree(); n != 4 || s.rxOut.Load() != 0 {
		t.Fatalf("%d free TX frames, %d held, want 4 and 0", n, s.rxOut.Load())
	}
	// Across frames, or outside the TX part, is not in place.
	if _, ok := s.txOffset(s.umem[2000:2100]); ok {
		t.Error("a slice across two TX frames taken as in place")
	}
	if _, ok := s.txOffset(s.umem[s.rxBase : s.rxBase+10]); ok {
		t.Error("an RX frame taken as a TX frame")
	}
	if _, ok := s.txOffset(pattern(10, 5)); ok {
		t.Error("Go memory taken as a TX frame")
	}

	if s.Reserve(chunks[:1]) != 1 {
		t.Fatal("Reserve after release")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s.umemReleased.Load() {
		t.Fatal("UMEM released while a TX frame is reserved")
	}
	if s.Transmit(chunks[:1]) != 0 {
		t.Fatal("Transmit after Close")
	}
	s.Release(chunks[:1])
	if !s.umemReleased.Load() {
		t.Fatal("UMEM not released once the reserved frame came back")
	}
}
