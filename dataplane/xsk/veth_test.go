//go:build linux

package xsk

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// smallUMEM keeps the UMEM far smaller than the traffic of the tests, so frames must be
// recycled: 16 TX frames, 48 RX frames for a 32-entry fill ring (16 of them kept aside).
var smallUMEM = Options{NumFrames: 64, FrameSize: 4096, RingSize: 32, TxFrames: 16}

// waitFor polls cond every millisecond until it holds or d passes.
func waitFor(d time.Duration, cond func() bool) bool {
	end := time.Now().Add(d)
	for !cond() {
		if time.Now().After(end) {
			return false
		}
		time.Sleep(time.Millisecond)
	}
	return true
}

// rxCheck is a receiver that checks each test frame against the one its sequence number
// rebuilds, and counts what it saw.
type rxCheck struct {
	src, dst  net.HardwareAddr
	seen      []atomic.Int32 // by sequence number
	total     atomic.Int64
	bad       atomic.Int64
	perSocket []atomic.Int64
}

// run is the RX loop of socket i: Receive, check, Fill; Wait when empty. It returns Wait's
// error, which is ErrClosed after Close.
func (c *rxCheck) run(s *Socket, i int) error {
	descs := make([]Desc, 16)
	want := make([]byte, 2048)
	for {
		n := s.Receive(descs)
		if n == 0 {
			if err := s.Wait(); err != nil {
				return err
			}
			continue
		}
		for _, d := range descs[:n] {
			f := s.Frame(d)
			seq, ok := testSeq(f)
			if !ok {
				continue
			}
			if int(seq) >= len(c.seen) || !bytes.Equal(f, testFrame(want, c.src, c.dst, seq)) {
				c.bad.Add(1)
				continue
			}
			c.seen[seq].Add(1)
			c.perSocket[i].Add(1)
			c.total.Add(1)
		}
		s.Fill(descs[:n])
	}
}

func TestVethReceive(t *testing.T) {
	n := newVethNet(t, 2)
	socks := make([]*Socket, n.queues)
	for q := range socks {
		o := smallUMEM
		o.Queue = q
		socks[q] = n.open(t, o)
		if socks[q].ZeroCopy() {
			t.Logf("queue %d: zero-copy", q)
		}
	}
	t.Logf("xdp native=%v, zero-copy=%v (veth has no zero-copy support)", n.native, socks[0].ZeroCopy())
	const total = 3000 // ~60 times the RX frames of one socket
	c := &rxCheck{src: n.macA, dst: n.macB, seen: make([]atomic.Int32, total), perSocket: make([]atomic.Int64, len(socks))}
	var wg sync.WaitGroup
	errs := make([]error, len(socks))
	for i, s := range socks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.run(s, i)
		}()
	}
	tx := n.packetSocket(t, n.a, false)
	buf := make([]byte, 2048)
	// Windows of 16 frames, each sent once the previous has arrived, so that no RX ring
	// overflows while frames are recycled many times over.
	for seq := uint32(0); seq < total; {
		for end := min(seq+16, total); seq < end; seq++ {
			if _, err := unix.Write(tx, testFrame(buf, n.macA, n.macB, seq)); err != nil {
				t.Fatalf("send frame %d: %v", seq, err)
			}
		}
		if !waitFor(5*time.Second, func() bool { return c.total.Load()+c.bad.Load() >= int64(seq) }) {
			st0, _ := socks[0].Stats()
			st1, _ := socks[1].Stats()
			t.Fatalf("after %d frames sent only %d arrived\nqueue 0: %+v\nqueue 1: %+v", seq, c.total.Load(), st0, st1)
		}
	}
	for _, s := range socks {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}
	wg.Wait()
	for i, err := range errs {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("receiver %d ended with %v, want ErrClosed", i, err)
		}
	}
	if c.bad.Load() != 0 {
		t.Errorf("%d frames arrived altered", c.bad.Load())
	}
	for seq := range c.seen {
		if got := c.seen[seq].Load(); got != 1 {
			t.Fatalf("frame %d arrived %d times", seq, got)
		}
	}
	for q := range socks {
		got := c.perSocket[q].Load()
		t.Logf("queue %d received %d frames", q, got)
		if got == 0 {
			t.Errorf("queue %d received nothing: the frames did not spread over the queues", q)
		}
		st, err := socks[q].Stats()
		if !errors.Is(err, ErrClosed) || st.Received < uint64(got) || st.Filled != st.Received || st.FillRefused != 0 {
			t.Errorf("queue %d stats after close: %+v, %v", q, st, err)
		}
		if !socks[q].umemReleased.Load() {
			t.Errorf("queue %d: UMEM not released by Close", q)
		}
	}
}

func TestVethTransmit(t *testing.T) {
	n := newVethNet(t, 2)
	socks := make([]*Socket, n.queues)
	for q := range socks {
		o := smallUMEM
		o.Queue = q
		socks[q] = n.open(t, o)
	}
	rxfd := n.packetSocket(t, n.a, true)
	const perSender, senders = 500, 4 // two goroutines per socket; 2000 frames through 16 TX frames each
	const total = perSender * senders
	var seen [total]atomic.Int32
	var got, bad atomic.Int64
	done := make(chan struct{})
	readerDone := make(chan error, 1)
	go func() {
		buf := make([]byte, 4096)
		want := make([]byte, 2048)
		for {
			select {
			case <-done:
				readerDone <- nil
				return
			default:
			}
			k, ok, err := recvPacket(rxfd, buf)
			if err != nil {
				readerDone <- err
				return
			}
			if !ok {
				continue
			}
			seq, ours := testSeq(buf[:k])
			if !ours {
				continue
			}
			if seq >= total || !bytes.Equal(buf[:k], testFrame(want, n.macB, n.macA, seq)) {
				bad.Add(1)
				continue
			}
			seen[seq].Add(1)
			got.Add(1)
		}
	}()
	var sent atomic.Int64
	var wg sync.WaitGroup
	for g := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := socks[g%len(socks)]
			bufs := make([][]byte, 8)
			for i := range bufs {
				bufs[i] = make([]byte, 2048)
			}
			frames := make([][]byte, 0, 8)
			deadline := time.Now().Add(20 * time.Second)
			for seq := uint32(g * perSender); seq < uint32((g+1)*perSender); {
				// Keep at most 64 frames between Transmit and the reader, so that the
				// receiving socket buffer and backlog never overflow.
				for sent.Load()-got.Load()-bad.Load() > 64 && time.Now().Before(deadline) {
					time.Sleep(100 * time.Microsecond)
				}
				frames = frames[:0]
				for i := 0; i < 8 && seq+uint32(i) < uint32((g+1)*perSender); i++ {
					frames = append(frames, testFrame(bufs[i], n.macB, n.macA, seq+uint32(i)))
				}
				k := s.Transmit(frames)
				seq += uint32(k)
				sent.Add(int64(k))
				if k < len(frames) {
					if time.Now().After(deadline) {
						t.Errorf("sender %d stuck at %d", g, seq)
						return
					}
					time.Sleep(50 * time.Microsecond) // no free TX frame: let completions come
				}
			}
		}()
	}
	wg.Wait()
	ok := waitFor(5*time.Second, func() bool { return got.Load()+bad.Load() >= total })
	close(done)
	if err := <-readerDone; err != nil {
		t.Fatalf("read from peer: %v", err)
	}
	if !ok {
		st0, _ := socks[0].Stats()
		st1, _ := socks[1].Stats()
		t.Fatalf("%d of %d frames arrived\nqueue 0: %+v\nqueue 1: %+v", got.Load(), total, st0, st1)
	}
	if bad.Load() != 0 {
		t.Errorf("%d frames arrived altered", bad.Load())
	}
	for seq := range seen {
		if c := seen[seq].Load(); c != 1 {
			t.Fatalf("frame %d arrived %d times", seq, c)
		}
	}
	for q, s := range socks {
		st, err := s.Stats()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("queue %d: %+v", q, st)
		if st.Transmitted != perSender*senders/uint64(len(socks)) || st.TxInvalidDescs != 0 || st.TxTooLong != 0 {
			t.Errorf("queue %d: transmitted %d (want %d), invalid %d", q, st.Transmitted, total/len(socks), st.TxInvalidDescs)
		}
		// Transmit(nil) reaps the last completions: every TX frame comes home.
		if !waitFor(2*time.Second, func() bool { s.Transmit(nil); st, _ = s.Stats(); return st.Completed == st.Transmitted }) {
			t.Errorf("queue %d: %d of %d frames completed", q, st.Completed, st.Transmitted)
		}
	}
}

func TestVethCloseUnblocksWait(t *testing.T) {
	n := newVethNet(t, 1)
	s := n.open(t, Options{Queue: 0, NumFrames: 64, RingSize: 32})
	errc := make(chan error, 1)
	go func() { errc <- s.Wait() }()
	select {
	case err := <-errc:
		t.Fatalf("Wait returned %v with no traffic", err)
	case <-time.After(100 * time.Millisecond):
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) || !errors.Is(err, net.ErrClosed) {
			t.Errorf("Wait after Close = %v, want ErrClosed", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Close did not wake Wait")
	}
	// Everything after Close returns at once, without panicking.
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	if err := s.Wait(); !errors.Is(err, ErrClosed) {
		t.Errorf("Wait after Close = %v", err)
	}
	descs := make([]Desc, 4)
	if s.Receive(descs) != 0 || s.Transmit([][]byte{make([]byte, 60)}) != 0 {
		t.Error("Receive or Transmit did something after Close")
	}
	s.Fill([]Desc{{Addr: 1 << 20}})
	if _, err := s.Stats(); !errors.Is(err, ErrClosed) {
		t.Errorf("Stats after Close = %v", err)
	}
	if !s.umemReleased.Load() {
		t.Error("UMEM still mapped after Close with no frame held")
	}
}

func TestVethHeldFrameSurvivesClose(t *testing.T) {
	n := newVethNet(t, 1)
	s := n.open(t, Options{Queue: 0, NumFrames: 64, RingSize: 32})
	tx := n.packetSocket(t, n.a, false)
	buf := make([]byte, 2048)
	want := bytes.Clone(testFrame(buf, n.macA, n.macB, 7))
	if _, err := unix.Write(tx, want); err != nil {
		t.Fatal(err)
	}
	if err := s.Wait(); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	descs := make([]Desc, 4)
	k := s.Receive(descs)
	if k != 1 {
		t.Fatalf("Receive = %d", k)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s.umemReleased.Load() {
		t.Fatal("UMEM released while a frame is held")
	}
	if got := s.Frame(descs[0]); !bytes.Equal(got, want) {
		t.Fatal("held frame unreadable or changed after Close")
	}
	s.Fill(descs[:k])
	if !s.umemReleased.Load() {
		t.Fatal("UMEM not released when the last held frame came back")
	}
}

func TestVethWaitReportsDeviceGone(t *testing.T) {
	n := newVethNet(t, 1)
	s := n.open(t, Options{Queue: 0, NumFrames: 64, RingSize: 32})
	errc := make(chan error, 1)
	go func() { errc <- s.Wait() }()
	time.Sleep(50 * time.Millisecond)
	run(t, "ip", "-n", n.name, "link", "del", "dev", "veth-b")
	select {
	case err := <-errc:
		if err == nil || errors.Is(err, ErrClosed) {
			t.Fatalf("Wait after the device went = %v, want the socket's error", err)
		}
		t.Logf("Wait: %v", err)
		if err2 := s.Wait(); err2 == nil {
			t.Error("socket error did not stick")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Wait still blocked after the device went")
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close after the device went: %v", err)
	}
}

func TestVethBindModes(t *testing.T) {
	n := newVethNet(t, 2)
	s := n.open(t, Options{Queue: 0, NumFrames: 64, RingSize: 32, ForceCopy: true})
	if s.ZeroCopy() {
		t.Error("ForceCopy socket reports zero-copy")
	}
	// veth has no zero-copy: the default tries it and falls back to copy mode.
	d := n.open(t, Options{Queue: 1, NumFrames: 64, RingSize: 32})
	if d.ZeroCopy() {
		t.Error("veth socket reports zero-copy")
	}
	// A queue that already has a socket is an error, not a fallback; a failed Open leaves
	// no descriptor behind.
	fdsBefore := openFDs(t)
	n.in(t, func() error {
		s2, err := Open(Options{Ifindex: n.b, Queue: 0, NumFrames: 64, RingSize: 32})
		if err == nil {
			s2.Close()
			t.Error("second socket on a busy queue opened")
		} else if !errors.Is(err, unix.EBUSY) {
			t.Errorf("second socket on a busy queue: %v, want EBUSY", err)
		}
		if _, err := Open(Options{Ifindex: 1 << 20, NumFrames: 64, RingSize: 32}); !errors.Is(err, unix.ENODEV) {
			t.Errorf("Open on a missing interface: %v, want ENODEV", err)
		}
		return nil
	})
	if after := openFDs(t); after != fdsBefore {
		t.Errorf("%d open descriptors after failed Opens, %d before", after, fdsBefore)
	}
}

// openFDs counts the process's open file descriptors.
func openFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// loop is a closed circuit for the allocation test and the benchmark: a socket on queue 0
// of veth-a transmits, which lands on RX queue 0 of veth-b, whose XDP program hands it to
// the socket there.
type loop struct {
	tx, rx *Socket
	frames [][]byte
	descs  []Desc
}

func newLoop(tb testing.TB, size int) *loop {
	n := newVethNet(tb, 1)
	l := &loop{rx: n.open(tb, Options{Queue: 0, NumFrames: 512, RingSize: 256, TxFrames: 128})}
	n.in(tb, func() error {
		var err error
		l.tx, err = Open(Options{Ifindex: n.a, Queue: 0, NumFrames: 512, RingSize: 256, TxFrames: 256})
		return err
	})
	tb.Cleanup(func() { l.tx.Close() })
	l.frames = make([][]byte, 64)
	for i := range l.frames {
		f := testFrame(make([]byte, 2048), n.macA, n.macB, uint32(i))
		l.frames[i] = f[:size]
	}
	l.descs = make([]Desc, 64)
	return l
}

// round transmits one batch and receives it back; it returns false if the RX socket was
// closed under it (the watchdog).
func (l *loop) round() bool {
	sent := l.tx.Transmit(l.frames)
	for got := 0; got < sent; {
		k := l.rx.Receive(l.descs)
		if k == 0 {
			if l.rx.Wait() != nil {
				return false
			}
			continue
		}
		got += k
		l.rx.Fill(l.descs[:k])
	}
	return true
}

func TestVethNoAllocs(t *testing.T) {
	l := newLoop(t, 1500)
	watchdog := time.AfterFunc(20*time.Second, func() { l.rx.Close() })
	defer watchdog.Stop()
	l.round() // warm up: the netpoller's first wait
	var lost bool
	allocs := testing.AllocsPerRun(200, func() {
		if !l.round() {
			lost = true
		}
	})
	if lost {
		t.Fatal("frames lost: watchdog closed the socket")
	}
	if allocs != 0 {
		t.Errorf("Transmit + Wait/Receive/Fill: %v allocs per batch of 64, want 0", allocs)
	}
	st, _ := l.tx.Stats()
	t.Logf("tx side: %+v", st)
}

// BenchmarkVethLoop measures a full circuit through the kernel per packet (batches of 64):
// Transmit on one veth end (copy mode: the frames are sent inside the sendto), XDP redirect
// on the other, Wait/Receive/Fill there.
func BenchmarkVethLoop(b *testing.B) {
	for _, size := range []int{64, 1500} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			l := newLoop(b, size)
			watchdog := time.AfterFunc(time.Minute, func() { l.rx.Close() })
			defer watchdog.Stop()
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i += len(l.frames) {
				if !l.round() {
					b.Fatal("frames lost: watchdog closed the socket")
				}
			}
		})
	}
}

// BenchmarkVethTransmit measures Transmit alone per packet (batches of 64): copy into the
// UMEM, post, and the copy-mode sendto that hands the frames to veth; the peer drops them.
func BenchmarkVethTransmit(b *testing.B) {
	n := newVethNet(b, 1)
	s := n.open(b, Options{Queue: 0, NumFrames: 512, RingSize: 256, TxFrames: 256})
	frames := make([][]byte, 64)
	for i := range frames {
		frames[i] = testFrame(make([]byte, 2048), n.macB, n.macA, uint32(i))[:64]
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; {
		i += s.Transmit(frames)
	}
	b.StopTimer()
	st, _ := s.Stats()
	b.ReportMetric(float64(st.TxNoRoom)/float64(b.N), "noroom/op")
}
