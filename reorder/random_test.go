package reorder

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestRandomSchedules runs lines sharing one pool with workers that finish
// in random order (sleeps, yields), batches dropped by workers and by
// producers, and a consumer that mixes Next and TryNext and recycles out of
// order; every line's output must equal the reference's: every batch once,
// in sequence order, with the content its worker wrote.
func TestRandomSchedules(t *testing.T) {
	rounds := 24
	if testing.Short() {
		rounds = 8
	}
	for r := range rounds {
		seed := uint64(r)
		rng := rand.New(rand.NewPCG(seed, 1))
		cfg := schedule{
			seed:    seed,
			depth:   1 + rng.IntN(16),
			workers: 1 + r%8,
			queue:   rng.IntN(8),
			lines:   1 + rng.IntN(3),
			batches: 200 + rng.IntN(600),
			ownChan: r%5 == 4,
		}
		t.Run(fmt.Sprintf("%+v", cfg), func(t *testing.T) { runSchedule(t, cfg) })
	}
}

type schedule struct {
	seed                                  uint64
	depth, workers, queue, lines, batches int
	ownChan                               bool // workers read a plain channel instead of a Pool
}

func runSchedule(t *testing.T, cfg schedule) {
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	refs := make([]*refLine, cfg.lines)
	lines := make([]*Line[item], cfg.lines)
	for i := range lines {
		refs[i] = newRefLine()
		l, err := NewLine(Config[item]{Depth: cfg.depth, Init: initItem})
		if err != nil {
			t.Fatal(err)
		}
		lines[i] = l
	}
	rngs := make([]*rand.Rand, cfg.workers)
	for w := range rngs {
		rngs[w] = rand.New(rand.NewPCG(cfg.seed, uint64(100+w)))
	}
	process := func(w int, it *item) {
		rng := rngs[w] // per-worker scratch, reached through the worker index
		switch rng.IntN(4) {
		case 0:
			time.Sleep(time.Duration(rng.IntN(50)) * time.Microsecond)
		case 1:
			runtime.Gosched()
		}
		if rng.IntN(10) == 0 {
			it.vals = it.vals[:0] // dropped by the worker
		} else {
			fill(it, 1+int(it.seq%itemCap))
		}
		refs[it.line].Done(it.seq, it.vals)
	}

	var submit func(context.Context, *Batch[item]) error
	var stopWorkers func()
	if cfg.ownChan {
		work := make(chan *Batch[item], cfg.queue)
		var wg sync.WaitGroup
		for w := range cfg.workers {
			wg.Go(func() {
				for b := range work {
					process(w, &b.Item)
					b.Done()
				}
			})
		}
		submit = func(ctx context.Context, b *Batch[item]) error {
			select {
			case work <- b:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		stopWorkers = func() { close(work); wg.Wait() }
	} else {
		pool, err := NewPool(cfg.workers, cfg.queue, process)
		if err != nil {
			t.Fatal(err)
		}
		submit = pool.Submit
		stopWorkers = pool.Close
	}

	outs := make([][][]uint64, cfg.lines)
	var producers, consumers sync.WaitGroup
	for li, l := range lines {
		producers.Go(func() {
			rng := rand.New(rand.NewPCG(cfg.seed, uint64(200+li)))
			for i := range cfg.batches {
				b, err := l.Begin(ctx)
				if err != nil {
					t.Errorf("line %d: begin %d: %v", li, i, err)
					return
				}
				if b.Seq() != uint64(i) {
					t.Errorf("line %d: Begin seq %d, want %d", li, b.Seq(), i)
				}
				b.Item.line, b.Item.seq, b.Item.vals = li, b.Seq(), b.Item.vals[:0]
				if rng.IntN(20) == 0 { // dropped by the producer
					refs[li].Done(b.Item.seq, nil)
					b.Done()
					continue
				}
				if err := submit(ctx, b); err != nil {
					t.Errorf("line %d: submit %d: %v", li, i, err)
					return
				}
			}
		})
		consumers.Go(func() {
			rng := rand.New(rand.NewPCG(cfg.seed, uint64(300+li)))
			var held []*Batch[item]
			for i := range cfg.batches {
				// The slot of seq i is that of seq i-depth: it must be
				// recycled, or Begin(i) and so Next(i) never happen.
				for j := 0; j < len(held); {
					if held[j].Seq()+uint64(cfg.depth) <= uint64(i) || rng.IntN(3) == 0 {
						held[j].Recycle()
						held = slices.Delete(held, j, j+1)
						continue
					}
					j++
				}
				b, ok := (*Batch[item])(nil), false
				if rng.IntN(2) == 0 {
					b, ok = l.TryNext()
				}
				if !ok {
					var err error
					if b, err = l.Next(ctx); err != nil {
						t.Errorf("line %d: next %d: %v", li, i, err)
						return
					}
				}
				if b.Seq() != uint64(i) || b.Item.seq != uint64(i) {
					t.Errorf("line %d: release %d got seq %d (item %d)", li, i, b.Seq(), b.Item.seq)
					return
				}
				if !refs[li].IsDone(b.Seq()) {
					t.Errorf("line %d: seq %d released before Done", li, i)
					return
				}
				if b.Waited() < 0 || b.Latency() < b.Waited() {
					t.Errorf("line %d: seq %d: Waited %v Latency %v", li, i, b.Waited(), b.Latency())
				}
				outs[li] = append(outs[li], slices.Clone(b.Item.vals))
				held = append(held, b)
				rng.Shuffle(len(held), func(x, y int) { held[x], held[y] = held[y], held[x] })
			}
			for _, b := range held {
				b.Recycle()
			}
		})
	}
	producers.Wait()
	consumers.Wait()
	stopWorkers()
	for li, l := range lines {
		l.Close()
		want := refs[li].Out()
		if len(want) != cfg.batches {
			t.Errorf("line %d: reference released %d batches, want %d", li, len(want), cfg.batches)
		}
		if !slices.EqualFunc(outs[li], want, slices.Equal[[]uint64]) {
			t.Errorf("line %d: output differs from the reference\n got %v\nwant %v", li, outs[li], want)
		}
		for i, vals := range outs[li] {
			for k, v := range vals {
				if v != uint64(i)*100+uint64(k) {
					t.Fatalf("line %d: release %d value %d = %d", li, i, k, v)
				}
			}
		}
		st := l.Stats()
		if st.Sequenced != uint64(cfg.batches) || st.Released != uint64(cfg.batches) {
			t.Errorf("line %d: Stats %+v, want %d sequenced and released", li, st, cfg.batches)
		}
	}
	checkNoLeak(t, before)
}
