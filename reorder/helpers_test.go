package reorder

import (
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// item is the batch type of the tests: what a worker produces is derived
// from seq, so the consumer can tell a stale or unfinished batch.
type item struct {
	line int
	seq  uint64
	vals []uint64
}

// itemCap is the capacity given to item.vals once, by initItem.
const itemCap = 8

func initItem(it *item) { it.vals = make([]uint64, 0, itemCap) }

// fill writes n values derived from it.seq, in place.
func fill(it *item, n int) {
	it.vals = it.vals[:0]
	for k := range n {
		it.vals = append(it.vals, it.seq*100+uint64(k))
	}
}

// refLine is the naive reference: done batches in a map under a mutex and a
// next counter; it releases exactly what an ordering line must release.
type refLine struct {
	mu   sync.Mutex
	done map[uint64][]uint64
	seen map[uint64]bool
	next uint64
	out  [][]uint64
}

func newRefLine() *refLine {
	return &refLine{done: map[uint64][]uint64{}, seen: map[uint64]bool{}}
}

// Done records that seq finished with vals (copied).
func (r *refLine) Done(seq uint64, vals []uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen[seq] {
		panic("reference: seq done twice")
	}
	r.seen[seq] = true
	r.done[seq] = slices.Clone(vals)
	for {
		v, ok := r.done[r.next]
		if !ok {
			break
		}
		r.out = append(r.out, v)
		delete(r.done, r.next)
		r.next++
	}
}

// IsDone reports whether Done(seq) has been called.
func (r *refLine) IsDone(seq uint64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen[seq]
}

// Out returns what the reference released, in order.
func (r *refLine) Out() [][]uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.out
}

// checkNoLeak waits up to a few seconds for the goroutine count to fall back
// to before, and fails the test with every goroutine's stack if it does not.
func checkNoLeak(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("goroutine leak: %d goroutines, %d before\n%s", runtime.NumGoroutine(), before, buf)
		}
		time.Sleep(time.Millisecond)
	}
}

// mustPanic fails the test unless f panics with a message containing want.
func mustPanic(t *testing.T, want string, f func()) {
	t.Helper()
	defer func() {
		t.Helper()
		r := recover()
		msg, _ := r.(string)
		if r == nil || !strings.Contains(msg, want) {
			t.Errorf("panic = %v, want one containing %q", r, want)
		}
	}()
	f()
}
