package reorder

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"
)

func TestNewLineDepth(t *testing.T) {
	for _, depth := range []int{-1, 0, MaxDepth + 1} {
		if _, err := NewLine(Config[item]{Depth: depth}); err == nil {
			t.Errorf("NewLine(%d) succeeded, want an error", depth)
		}
	}
	inits := 0
	l, err := NewLine(Config[item]{Depth: 5, Init: func(it *item) { inits++; initItem(it) }})
	if err != nil {
		t.Fatal(err)
	}
	if l.Depth() != 5 || inits != 5 {
		t.Errorf("Depth() = %d, init called %d times, want 5 and 5", l.Depth(), inits)
	}
}

// TestOutOfOrderDone finishes batches in reverse order in one goroutine and
// checks that nothing comes out before the head, then everything in order.
func TestOutOfOrderDone(t *testing.T) {
	ctx := context.Background()
	const depth = 6
	l, err := NewLine(Config[item]{Depth: depth, Init: initItem})
	if err != nil {
		t.Fatal(err)
	}
	for round := range 3 {
		var bs []*Batch[item]
		for i := range depth {
			b, err := l.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if want := uint64(round*depth + i); b.Seq() != want {
				t.Fatalf("Begin seq %d, want %d", b.Seq(), want)
			}
			b.Item.seq = b.Seq()
			bs = append(bs, b)
		}
		for i := depth - 1; i >= 0; i-- {
			if i%2 == 0 {
				fill(&bs[i].Item, 3)
			} else {
				bs[i].Item.vals = bs[i].Item.vals[:0] // dropped
			}
			bs[i].Done()
			if i > 0 {
				if b, ok := l.TryNext(); ok {
					t.Fatalf("TryNext released seq %d while seq %d is not done", b.Seq(), bs[0].Seq())
				}
			}
		}
		for i := range depth {
			b, ok := l.TryNext()
			if !ok {
				t.Fatalf("TryNext found nothing, want seq %d", bs[i].Seq())
			}
			if b != bs[i] || b.Item.seq != uint64(round*depth+i) {
				t.Fatalf("released seq %d, want %d", b.Item.seq, round*depth+i)
			}
			if wantLen := 3 * ((i + 1) % 2); len(b.Item.vals) != wantLen {
				t.Errorf("seq %d has %d values, want %d", b.Seq(), len(b.Item.vals), wantLen)
			}
			if b.Waited() < 0 || b.Latency() < b.Waited() {
				t.Errorf("seq %d: Waited %v, Latency %v", b.Seq(), b.Waited(), b.Latency())
			}
			b.Recycle()
		}
		if _, ok := l.TryNext(); ok {
			t.Fatal("TryNext released a batch that was never sequenced")
		}
	}
	st := l.Stats()
	if st != (Stats{Sequenced: 3 * depth, Released: 3 * depth}) {
		t.Errorf("Stats = %+v", st)
	}
}

// TestBackPressure: Begin sleeps while depth batches are unrecycled, wakes
// when the batch holding its slot is recycled, and not before.
func TestBackPressure(t *testing.T) {
	before := runtime.NumGoroutine()
	ctx := context.Background()
	l, err := NewLine(Config[item]{Depth: 2, Init: initItem})
	if err != nil {
		t.Fatal(err)
	}
	b0, _ := l.Begin(ctx)
	b1, _ := l.Begin(ctx)
	type result struct {
		b   *Batch[item]
		err error
	}
	got := make(chan result, 1)
	go func() {
		b, err := l.Begin(ctx)
		got <- result{b, err}
	}()
	blocked := func(what string) {
		t.Helper()
		select {
		case r := <-got:
			t.Fatalf("%s: Begin returned (seq %v, %v), want it blocked", what, r.b, r.err)
		case <-time.After(30 * time.Millisecond):
		}
	}
	blocked("2 of 2 in flight")
	if w := l.Stats().ProducerWaits; w != 1 {
		t.Errorf("ProducerWaits = %d, want 1", w)
	}
	b1.Done()
	b0.Done()
	blocked("2 done, none released")
	r0, _ := l.Next(ctx)
	r1, _ := l.Next(ctx)
	blocked("2 released, none recycled")
	r1.Recycle() // seq 1's slot is for seq 3: seq 2 still waits
	blocked("seq 1 recycled, seq 0 held")
	r0.Recycle()
	select {
	case r := <-got:
		if r.err != nil || r.b.Seq() != 2 || r.b != b0 {
			t.Fatalf("Begin after recycle = (%v, %v), want seq 2 in slot 0", r.b, r.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Begin still blocked after the oldest batch was recycled")
	}
	checkNoLeak(t, before)
}

// TestStalledWorker: one batch held by a slow worker delays every later one
// of its line; they come out in order once it finishes, and report the wait.
func TestStalledWorker(t *testing.T) {
	before := runtime.NumGoroutine()
	ctx := context.Background()
	const depth = 8
	gate := make(chan struct{})
	processed := make(chan uint64, depth)
	pool, err := NewPool(4, depth, func(_ int, it *item) {
		if it.seq == 0 {
			<-gate
		}
		fill(it, 2)
		processed <- it.seq
	})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	l, err := NewLine(Config[item]{Depth: depth, Init: initItem})
	if err != nil {
		t.Fatal(err)
	}
	for range depth {
		b, err := l.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		b.Item.seq = b.Seq()
		if err := pool.Submit(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	for range depth - 1 {
		if seq := <-processed; seq == 0 {
			t.Fatal("the stalled batch was processed before its gate opened")
		}
	}
	if b, ok := l.TryNext(); ok {
		t.Fatalf("TryNext released seq %d ahead of the stalled seq 0", b.Seq())
	}
	tctx, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	_, err = l.Next(tctx)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next behind a stalled batch = %v, want a deadline error", err)
	}
	// The others were done before the timeout: Waited must show the stall.
	close(gate)
	for i := range depth {
		b, err := l.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if b.Seq() != uint64(i) || b.Item.seq != uint64(i) || len(b.Item.vals) != 2 || b.Item.vals[1] != uint64(i)*100+1 {
			t.Fatalf("release %d: seq %d item %+v", i, b.Seq(), b.Item)
		}
		if i > 0 && b.Waited() < 30*time.Millisecond {
			t.Errorf("seq %d waited %v behind the stalled batch, want at least 30ms", i, b.Waited())
		}
		if b.Latency() < b.Waited() {
			t.Errorf("seq %d: Latency %v < Waited %v", i, b.Latency(), b.Waited())
		}
		b.Recycle()
	}
	if w := l.Stats().ConsumerWaits; w < 1 {
		t.Errorf("ConsumerWaits = %d, want at least 1 (the timed-out Next)", w)
	}
	pool.Close()
	checkNoLeak(t, before)
}

// TestContextCancel: blocked Begin, Next and Submit return the context's
// error, wrapped, and the line and pool stay usable.
func TestContextCancel(t *testing.T) {
	before := runtime.NumGoroutine()
	l, err := NewLine(Config[item]{Depth: 1, Init: initItem})
	if err != nil {
		t.Fatal(err)
	}
	gate := make(chan struct{})
	pool, err := NewPool(1, 0, func(int, *item) { <-gate })
	if err != nil {
		t.Fatal(err)
	}
	pl, err := NewLine(Config[item]{Depth: 2, Init: initItem})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errs := make(chan error, 3)
	go func() { _, err := l.Next(ctx); errs <- err }()
	b, err := l.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _, err := l.Begin(ctx); errs <- err }()
	p0, _ := pl.Begin(ctx)
	p1, _ := pl.Begin(ctx)
	if err := pool.Submit(ctx, p0); err != nil { // the only worker takes it and waits on gate
		t.Fatal(err)
	}
	go func() { errs <- pool.Submit(ctx, p1) }() // no worker free, no queue: blocks
	time.Sleep(20 * time.Millisecond)
	cancel()
	for range 3 {
		select {
		case err := <-errs:
			if !errors.Is(err, context.Canceled) || err == context.Canceled {
				t.Errorf("blocked call returned %v, want a wrapped context.Canceled", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("blocked call did not return after cancel")
		}
	}
	b.Done()
	r, err := l.Next(context.Background())
	if err != nil || r != b {
		t.Fatalf("Next after cancel = (%v, %v)", r, err)
	}
	r.Recycle()
	if _, err := l.Begin(context.Background()); err != nil {
		t.Fatalf("Begin after cancel: %v", err)
	}
	close(gate)
	if err := pool.Submit(context.Background(), p1); err != nil {
		t.Fatalf("Submit after cancel: %v", err)
	}
	for i := range 2 {
		if r, err := pl.Next(context.Background()); err != nil || r.Seq() != uint64(i) {
			t.Fatalf("pool line release %d = (%v, %v)", i, r, err)
		}
	}
	pool.Close()
	if err := pool.Submit(context.Background(), p1); err != ErrClosed {
		t.Errorf("Submit after Close = %v, want ErrClosed", err)
	}
	checkNoLeak(t, before)
}

// TestClose: blocked callers return ErrClosed, Next drains what is done in
// order first, and Done and Recycle keep working after Close.
func TestClose(t *testing.T) {
	ctx := context.Background()
	l, err := NewLine(Config[item]{Depth: 4, Init: initItem})
	if err != nil {
		t.Fatal(err)
	}
	var bs []*Batch[item]
	for range 4 {
		b, _ := l.Begin(ctx)
		bs = append(bs, b)
	}
	bs[0].Done()
	bs[1].Done()
	bs[3].Done() // seq 2 is still with a worker
	l.Close()
	l.Close()
	if _, err := l.Begin(ctx); err != ErrClosed {
		t.Errorf("Begin after Close = %v, want ErrClosed", err)
	}
	for i := range 2 {
		b, err := l.Next(ctx)
		if err != nil || b.Seq() != uint64(i) {
			t.Fatalf("drain %d after Close = (%v, %v)", i, b, err)
		}
		b.Recycle()
	}
	if _, err := l.Next(ctx); err != ErrClosed {
		t.Errorf("Next with an unfinished head after Close = %v, want ErrClosed", err)
	}
	bs[2].Done() // a late worker
	b, err := l.Next(ctx)
	if err != nil || b.Seq() != 2 {
		t.Fatalf("Next after the late Done = (%v, %v), want seq 2", b, err)
	}
	b.Recycle()
	if b, ok := l.TryNext(); !ok || b.Seq() != 3 {
		t.Fatalf("TryNext after Close = (%v, %v), want seq 3", b, ok)
	}
}

// TestNoClock: without a clock the durations are 0, with one they are not.
func TestNoClock(t *testing.T) {
	ctx := context.Background()
	for _, noClock := range []bool{true, false} {
		l, err := NewLine(Config[item]{Depth: 1, NoClock: noClock})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := l.Begin(ctx)
		time.Sleep(2 * time.Millisecond)
		b.Done()
		time.Sleep(2 * time.Millisecond)
		r, _ := l.Next(ctx)
		waited, latency := r.Waited(), r.Latency()
		r.Recycle()
		if noClock && (waited != 0 || latency != 0) {
			t.Errorf("NoClock: Waited %v, Latency %v, want 0", waited, latency)
		}
		if !noClock && (waited < 2*time.Millisecond || latency < 4*time.Millisecond) {
			t.Errorf("clock: Waited %v, Latency %v, want at least 2ms and 4ms", waited, latency)
		}
	}
}

func TestMisusePanics(t *testing.T) {
	ctx := context.Background()
	l, err := NewLine(Config[item]{Depth: 2, Init: initItem})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := l.Begin(ctx)
	mustPanic(t, "Recycle", b.Recycle)
	b.Done()
	mustPanic(t, "Done", b.Done)
	r, _ := l.Next(ctx)
	mustPanic(t, "Done", r.Done)
	r.Recycle()
	mustPanic(t, "Recycle", r.Recycle)
}

// TestIdle walks batches through every state and checks that the line is idle exactly
// when every batch handed out has been recycled, whatever order the consumer recycles in.
func TestIdle(t *testing.T) {
	ctx := context.Background()
	l, err := NewLine(Config[item]{Depth: 3, Init: initItem})
	if err != nil {
		t.Fatal(err)
	}
	if !l.Idle() {
		t.Fatal("a new line is not idle")
	}
	a, _ := l.Begin(ctx)
	if l.Idle() {
		t.Fatal("idle with a batch begun")
	}
	b, _ := l.Begin(ctx)
	b.Done()
	a.Done()
	if l.Idle() {
		t.Fatal("idle with two batches done, none released")
	}
	ra, _ := l.TryNext()
	rb, _ := l.TryNext()
	rb.Recycle()
	if l.Idle() {
		t.Fatal("idle while the consumer holds a batch")
	}
	ra.Recycle()
	if !l.Idle() {
		t.Fatal("not idle with every batch recycled")
	}
	c, _ := l.Begin(ctx)
	if l.Idle() {
		t.Fatal("idle with a batch begun after a round")
	}
	c.Done()
	rc, _ := l.Next(ctx)
	rc.Recycle()
	if !l.Idle() {
		t.Fatal("not idle after the second round")
	}
}
