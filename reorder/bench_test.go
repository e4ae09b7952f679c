package reorder

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// benchDepth is the line depth of the benchmarks, in batches: a few per
// worker, as a reader would run.
const benchDepth = 64

// pipeline is one line fed by a producer goroutine through a pool; the
// caller is the consumer.
type pipeline struct {
	line   *Line[item]
	pool   *Pool[item]
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func startPipeline(tb testing.TB, workers int, noClock bool) *pipeline {
	l, err := NewLine(Config[item]{Depth: benchDepth, Init: initItem, NoClock: noClock})
	if err != nil {
		tb.Fatal(err)
	}
	pool, err := NewPool(workers, benchDepth, func(_ int, it *item) { fill(it, 4) })
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &pipeline{line: l, pool: pool, cancel: cancel}
	p.wg.Go(func() {
		for {
			b, err := l.Begin(ctx)
			if err != nil {
				return
			}
			b.Item.seq = b.Seq()
			if err := pool.Submit(ctx, b); err != nil {
				b.Done()
				return
			}
		}
	})
	return p
}

// stop follows the documented order: producer, pool, line.
func (p *pipeline) stop() {
	p.cancel()
	p.wg.Wait()
	p.pool.Close()
	p.line.Close()
}

// TestZeroAllocs checks that a batch costs no allocation, alone and through
// a running pipeline (AllocsPerRun counts every goroutine's allocations).
func TestZeroAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates on synchronisation")
	}
	ctx := context.Background()
	l, err := NewLine(Config[item]{Depth: 4, Init: initItem})
	if err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(1000, func() {
		b, _ := l.Begin(ctx)
		b.Item.seq = b.Seq()
		fill(&b.Item, itemCap)
		b.Done()
		r, _ := l.Next(ctx)
		r.Recycle()
	}); n != 0 {
		t.Errorf("one batch in one goroutine: %v allocations, want 0", n)
	}

	for _, workers := range []int{1, 2} {
		p := startPipeline(t, workers, false)
		next := uint64(0)
		n := testing.AllocsPerRun(2000, func() {
			b, err := p.line.Next(ctx)
			if err != nil || b.Seq() != next || len(b.Item.vals) != 4 {
				panic(fmt.Sprintf("pipeline released (%v, %v), want seq %d", b, err, next))
			}
			next++
			b.Recycle()
		})
		p.stop()
		if n != 0 {
			t.Errorf("pipeline with %d workers: %v allocations per batch, want 0", workers, n)
		}
	}
}

// BenchmarkLineSerial is the bare cost of one batch's four steps (Begin,
// Done, Next, Recycle) without any goroutine switch, with and without the
// three clock reads.
func BenchmarkLineSerial(b *testing.B) {
	for _, noClock := range []bool{false, true} {
		b.Run(fmt.Sprintf("noclock=%v", noClock), func(b *testing.B) {
			ctx := context.Background()
			l, err := NewLine(Config[item]{Depth: benchDepth, Init: initItem, NoClock: noClock})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				bt, _ := l.Begin(ctx)
				bt.Done()
				r, _ := l.Next(ctx)
				r.Recycle()
			}
		})
	}
}

// BenchmarkPipeline is ns and allocations per batch through producer,
// pool and consumer goroutines, with a trivial amount of work per batch, so
// that it measures the ordering machinery and the goroutine hand-offs.
func BenchmarkPipeline(b *testing.B) {
	for _, bc := range []struct {
		workers int
		noClock bool
	}{{1, false}, {2, false}, {1, true}, {2, true}} {
		b.Run(fmt.Sprintf("workers=%d/noclock=%v", bc.workers, bc.noClock), func(b *testing.B) {
			ctx := context.Background()
			p := startPipeline(b, bc.workers, bc.noClock)
			var waited time.Duration
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				bt, err := p.line.Next(ctx)
				if err != nil {
					b.Fatal(err)
				}
				waited += bt.Waited()
				bt.Recycle()
			}
			b.StopTimer()
			st := p.line.Stats()
			p.stop()
			b.ReportMetric(float64(waited.Nanoseconds())/float64(b.N), "waited-ns/batch")
			b.ReportMetric(float64(st.ConsumerWaits)/float64(b.N), "consumer-sleeps/batch")
		})
	}
}

// chanBatch and the chanLine benchmark are the textbook alternative, kept
// here to measure what the atomic slot states save: a done channel of
// capacity 1 per batch as the latch, a channel of free batches for the
// back-pressure and a FIFO channel for the order; every step is a channel
// operation, as in wireguard-go.
type chanBatch struct {
	item item
	done chan struct{}
}

func BenchmarkChanLatch(b *testing.B) {
	for _, workers := range []int{1, 2} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			free := make(chan *chanBatch, benchDepth)
			fifo := make(chan *chanBatch, benchDepth)
			work := make(chan *chanBatch, benchDepth)
			for range benchDepth {
				cb := &chanBatch{done: make(chan struct{}, 1)}
				initItem(&cb.item)
				free <- cb
			}
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			wg.Go(func() {
				for seq := uint64(0); ; seq++ {
					var cb *chanBatch
					select {
					case cb = <-free:
					case <-ctx.Done():
						return
					}
					cb.item.seq = seq
					select {
					case fifo <- cb:
					case <-ctx.Done():
						return
					}
					select {
					case work <- cb:
					case <-ctx.Done():
						return
					}
				}
			})
			for range workers {
				wg.Go(func() {
					for {
						select {
						case cb := <-work:
							fill(&cb.item, 4)
							cb.done <- struct{}{}
						case <-ctx.Done():
							return
						}
					}
				})
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				cb := <-fifo
				<-cb.done
				if cb.item.seq != uint64(i) {
					b.Fatalf("seq %d, want %d", cb.item.seq, i)
				}
				free <- cb
			}
			b.StopTimer()
			cancel()
			wg.Wait()
		})
	}
}

// BenchmarkClock is the cost of one of the three clock reads per batch.
func BenchmarkClock(b *testing.B) {
	l, err := NewLine(Config[item]{Depth: 1})
	if err != nil {
		b.Fatal(err)
	}
	var sum int64
	for b.Loop() {
		sum += l.now()
	}
	_ = sum
}
