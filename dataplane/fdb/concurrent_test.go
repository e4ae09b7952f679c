package fdb

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// allowedTargets are the only two targets the concurrent test ever associates with m.
func allowedTargets(m MAC) (Target, Target) {
	return LocalPort(int(m[5] & 7)), RemoteVTEP(int(m[5] >> 3 & 7))
}

// floodMAC is the i-th address of the flood, distinct from the pool's (which start 0x02).
func floodMAC(i uint32) MAC { return MAC{0x06, 0, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)} }

// TestConcurrent runs readers against writers that learn, move, refresh, flood (evictions and
// rebuilds), expire, flush, delete and set static entries, and checks that a reader never sees a
// Target that was never associated with the MAC address it looked up. Run it with -race.
func TestConcurrent(t *testing.T) {
	iterations := 20_000
	if testing.Short() {
		iterations = 5_000
	}
	tb := newTable(t, Options{Cap: 128, Ageing: 2 * time.Second})
	var clock atomic.Uint32
	var flooded atomic.Uint32
	pool := make([]MAC, 256)
	for i := range pool {
		pool[i] = MAC{0x02, byte(i), byte(i * 7), byte(i * 13), byte(i >> 3), byte(i)}
	}

	var done atomic.Bool
	var readers, writers sync.WaitGroup
	var hits, lookups atomic.Uint64
	check := func(m MAC, to Target, ok bool) {
		a, b := allowedTargets(m)
		if ok && to != a && to != b || !ok && to != None {
			t.Errorf("Lookup(%v) = %v, %v; only %v and %v were ever associated with it", m, to, ok, a, b)
		}
	}
	for r := range 2 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			rng := rand.New(rand.NewPCG(uint64(r), 1))
			var n, h uint64
			for !done.Load() {
				m := pool[rng.IntN(len(pool))]
				if r == 1 && n%2 == 0 {
					m = floodMAC(flooded.Load() - uint32(rng.IntN(64)))
				}
				to, ok := tb.Lookup(m)
				check(m, to, ok)
				n++
				if ok {
					h++
				}
			}
			lookups.Add(n)
			hits.Add(h)
		}()
	}

	writer := func(seed uint64, fn func(rng *rand.Rand, i int)) {
		writers.Add(1)
		go func() {
			defer writers.Done()
			rng := rand.New(rand.NewPCG(seed, 2))
			for i := range iterations {
				fn(rng, i)
			}
		}()
	}
	// Learns pool addresses at one of their two targets: adds, moves, refreshes.
	writer(1, func(rng *rand.Rand, _ int) {
		m := pool[rng.IntN(len(pool))]
		a, b := allowedTargets(m)
		if rng.IntN(4) == 0 {
			a = b
		}
		tb.Learn(m, a, clock.Load())
	})
	// Floods new addresses into the full table: evictions and rebuilds.
	writer(2, func(rng *rand.Rand, _ int) {
		m := floodMAC(flooded.Add(1))
		a, _ := allowedTargets(m)
		tb.Learn(m, a, clock.Load())
	})
	// Advances the clock and removes entries every way there is, for as long as the learners run.
	var learnersDone atomic.Bool
	var janitor sync.WaitGroup
	janitor.Add(1)
	go func() {
		defer janitor.Done()
		rng := rand.New(rand.NewPCG(3, 2))
		for step := 0; step < 200 || !learnersDone.Load(); step++ {
			clock.Add(1)
			// Addresses last seen long ago, so that Expire has work even when the flood
			// evicts everything else before it ages.
			for range 4 {
				m := floodMAC(1<<31 | rng.Uint32())
				a, _ := allowedTargets(m)
				tb.Learn(m, a, clock.Load()-10)
			}
			tb.Expire(clock.Load())
			m := pool[rng.IntN(len(pool))]
			a, b := allowedTargets(m)
			switch rng.IntN(3) {
			case 0:
				tb.Static(m, a)
			case 1:
				tb.Delete(m)
			case 2:
				tb.Flush(func(to Target) bool { return to.Index() == b.Index() })
			}
		}
	}()
	writers.Wait()
	learnersDone.Store(true)
	janitor.Wait()
	done.Store(true)
	readers.Wait()

	s := tb.Stats()
	t.Logf("%d lookups, %d hits, %+v", lookups.Load(), hits.Load(), s)
	if hits.Load() == 0 || s.Rebuilds == 0 || s.Evicted == 0 || s.Moved == 0 || s.Expired == 0 || s.Flushed == 0 || s.Deleted == 0 {
		t.Errorf("not every path ran: %d hits, %+v", hits.Load(), s)
	}
	n := 0
	tb.Entries(func(e Entry) bool {
		n++
		got, ok := tb.Lookup(e.MAC)
		check(e.MAC, got, ok)
		if !ok || got != e.To {
			t.Errorf("Lookup(%v) = %v, %v; Entries says %v", e.MAC, got, ok, e.To)
		}
		return true
	})
	if n != tb.Len() || n > tb.Cap() {
		t.Errorf("Entries gave %d entries, Len %d, cap %d", n, tb.Len(), tb.Cap())
	}
}
