package reorder

import (
	"context"
	"errors"
	"slices"
	"testing"
)

// FuzzLine drives one line from one goroutine with a schedule read from the
// input: the first byte picks the depth, each further byte an operation
// (Begin, Done of any batch in flight, possibly dropped, TryNext, Next,
// Recycle of any held batch, Close) and its argument. Blocking calls get an
// already-cancelled context, so a call that would block returns its error
// instead: whether each call blocks, what it returns and the counters are
// checked against a model and the reference line.
func FuzzLine(f *testing.F) {
	f.Add([]byte{3, 0, 0, 0, 7, 2, 13, 2, 2, 4, 0})
	f.Add([]byte{0, 0, 0, 3, 1, 2, 4, 0, 3, 1, 3, 4})
	f.Add([]byte{7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 49, 43, 37, 31, 2, 3, 2, 3, 10, 16, 4, 4, 0, 0, 5, 2, 3, 0})
	f.Add([]byte{1, 0, 0, 0, 1, 3, 5, 0, 1, 2, 2, 3, 3, 4, 10, 4, 0, 0})
	f.Add([]byte{4, 0, 0, 0, 0, 0, 25, 19, 13, 7, 1, 2, 2, 2, 2, 2, 22, 28, 34, 4, 10, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		depth := int(data[0]%8) + 1
		l, err := NewLine(Config[item]{Depth: depth, Init: initItem})
		if err != nil {
			t.Fatal(err)
		}
		ref := newRefLine()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()

		var (
			inflight, held []*Batch[item]
			recycled       = map[uint64]bool{}
			want           Stats // the model's counters
			closed         bool
		)
		ready := func() bool { return want.Released < want.Sequenced && ref.IsDone(want.Released) }
		released := func(b *Batch[item]) {
			t.Helper()
			head := want.Released
			if b.Seq() != head || b.Item.seq != head {
				t.Fatalf("released seq %d (item %d), want %d", b.Seq(), b.Item.seq, head)
			}
			if out := ref.Out(); !slices.Equal(b.Item.vals, out[head]) {
				t.Fatalf("seq %d holds %v, want %v", head, b.Item.vals, out[head])
			}
			if b.Waited() < 0 || b.Latency() < b.Waited() {
				t.Fatalf("seq %d: Waited %v Latency %v", head, b.Waited(), b.Latency())
			}
			want.Released++
			held = append(held, b)
		}
		for _, c := range data[1:] {
			arg := int(c / 6)
			switch c % 6 {
			case 0: // Begin
				free := want.Sequenced < uint64(depth) || recycled[want.Sequenced-uint64(depth)]
				b, err := l.Begin(ctx)
				switch {
				case closed:
					if err != ErrClosed {
						t.Fatalf("Begin after Close = %v, want ErrClosed", err)
					}
				case free:
					if err != nil || b.Seq() != want.Sequenced {
						t.Fatalf("Begin with a free slot = (%v, %v), want seq %d", b, err, want.Sequenced)
					}
					want.Sequenced++
					b.Item.seq, b.Item.vals = b.Seq(), b.Item.vals[:0]
					inflight = append(inflight, b)
				default:
					if !errors.Is(err, context.Canceled) {
						t.Fatalf("Begin on a full line = (%v, %v), want it to block", b, err)
					}
					want.ProducerWaits++
				}
			case 1: // Done, dropped when arg is odd
				if len(inflight) == 0 {
					continue
				}
				i := arg % len(inflight)
				b := inflight[i]
				inflight = slices.Delete(inflight, i, i+1)
				if arg%2 == 1 {
					b.Item.vals = b.Item.vals[:0]
				} else {
					fill(&b.Item, 1+arg%itemCap)
				}
				ref.Done(b.Item.seq, b.Item.vals)
				b.Done()
			case 2: // TryNext
				r := ready()
				b, ok := l.TryNext()
				if ok != r {
					t.Fatalf("TryNext = %v, model says ready %v (head %d)", ok, r, want.Released)
				}
				if ok {
					released(b)
				}
			case 3: // Next
				r := ready()
				b, err := l.Next(ctx)
				switch {
				case r:
					if err != nil {
						t.Fatalf("Next with a done head: %v", err)
					}
					released(b)
				case closed:
					if err != ErrClosed {
						t.Fatalf("Next after Close with an unfinished head = %v, want ErrClosed", err)
					}
					want.ConsumerWaits++
				default:
					if !errors.Is(err, context.Canceled) {
						t.Fatalf("Next with an unfinished head = (%v, %v), want it to block", b, err)
					}
					want.ConsumerWaits++
				}
			case 4: // Recycle
				if len(held) == 0 {
					continue
				}
				i := arg % len(held)
				recycled[held[i].Seq()] = true
				held[i].Recycle()
				held = slices.Delete(held, i, i+1)
			case 5: // Close, now and then
				if arg%4 == 0 {
					l.Close()
					closed = true
				}
			}
		}
		if st := l.Stats(); st != want {
			t.Fatalf("Stats = %+v, model %+v", st, want)
		}
	})
}
