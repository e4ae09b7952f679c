package reorder

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"
)

// TestShutdownWhileBlocked runs a full pipeline of two lines on one pool
// and closes it in the documented order while every stage is blocked: a
// producer on a full line, a producer in Submit on a full queue, a consumer
// on a line whose head a worker holds, a consumer on an empty line. Every
// call returns, the done batches drain in order, and no goroutine is left.
func TestShutdownWhileBlocked(t *testing.T) {
	before := runtime.NumGoroutine()
	ctx := context.Background()
	gate := make(chan struct{})
	pool, err := NewPool(1, 1, func(_ int, it *item) {
		if it.line == 0 && it.seq == 0 {
			<-gate // the worker stalls on line 0's head
		}
		fill(it, 1)
	})
	if err != nil {
		t.Fatal(err)
	}
	full, err := NewLine(Config[item]{Depth: 3, Init: initItem})
	if err != nil {
		t.Fatal(err)
	}
	empty, err := NewLine(Config[item]{Depth: 3, Init: initItem})
	if err != nil {
		t.Fatal(err)
	}

	var wg sync.WaitGroup
	errs := make(chan error, 4)
	// Line "full": seq 0 stalls the only worker, seq 1 fills the queue of 1,
	// seq 2 blocks in Submit, and a fourth Begin blocks on the full line.
	var bs []*Batch[item]
	for range 3 {
		b, err := full.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		b.Item.line, b.Item.seq = 0, b.Seq()
		bs = append(bs, b)
	}
	if err := pool.Submit(ctx, bs[0]); err != nil {
		t.Fatal(err)
	}
	if err := pool.Submit(ctx, bs[1]); err != nil { // waits, if need be, for the worker to take seq 0
		t.Fatal(err)
	}
	wg.Go(func() {
		if err := pool.Submit(ctx, bs[2]); err != nil {
			bs[2].Done() // dropped, as the contract asks of a failed Submit
			errs <- err
			return
		}
		errs <- nil
	})
	wg.Go(func() { _, err := full.Begin(ctx); errs <- err })
	wg.Go(func() { _, err := full.Next(ctx); errs <- err }) // head held by the stalled worker
	wg.Go(func() { _, err := empty.Next(ctx); errs <- err })
	// Let everyone block.
	deadline := time.Now().Add(5 * time.Second)
	for full.Stats().ProducerWaits == 0 || full.Stats().ConsumerWaits == 0 || empty.Stats().ConsumerWaits == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the stages never blocked")
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(10 * time.Millisecond)

	// Documented order: producers are stopped (here: blocked ones are
	// released by Close), the pool is closed, then the lines.
	full.Close()
	empty.Close()
	go func() { time.Sleep(20 * time.Millisecond); close(gate) }()
	pool.Close() // returns once the stalled worker and the queue are done
	wg.Wait()
	close(errs)
	var closed, nils int
	for err := range errs {
		switch {
		case err == nil:
			nils++
		case errors.Is(err, ErrClosed):
			closed++
		default:
			t.Errorf("blocked call returned %v, want ErrClosed", err)
		}
	}
	// Submit of seq 2 either got into the queue before Close (and was
	// processed) or returned ErrClosed; the other three calls return ErrClosed.
	if closed+nils != 4 || closed < 3 {
		t.Errorf("%d ErrClosed and %d nil from the 4 blocked calls", closed, nils)
	}
	// The consumer drains what is done, in order, then sees ErrClosed.
	for i := range 3 {
		b, err := full.Next(ctx)
		if err != nil {
			t.Fatalf("drain %d: %v", i, err)
		}
		if b.Seq() != uint64(i) {
			t.Fatalf("drain %d got seq %d", i, b.Seq())
		}
		b.Recycle()
	}
	if _, err := full.Next(ctx); err != ErrClosed {
		t.Errorf("Next after the drain = %v, want ErrClosed", err)
	}
	checkNoLeak(t, before)
}
