package fdb

import (
	"math/rand/v2"
	"testing"
)

// fullTable returns a table of the default cap holding cap random MAC addresses, and those.
func fullTable(b *testing.B) (*Table, []MAC) {
	tb := newTable(b, Options{})
	rng := rand.New(rand.NewPCG(7, 7))
	macs := make([]MAC, 0, tb.Cap())
	for len(macs) < tb.Cap() {
		m := macFromKey(rng.Uint64())
		m[0] &^= 0x80 // the misses below set this bit
		if tb.Learn(m, RemoteVTEP(len(macs)%64), 1) == LearnAdded {
			macs = append(macs, m)
		}
	}
	return tb, macs
}

func BenchmarkLookupHit(b *testing.B) {
	tb, macs := fullTable(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, ok := tb.Lookup(macs[i&(len(macs)-1)]); !ok {
			b.Fatal("miss")
		}
		i++
	}
}

func BenchmarkLookupMiss(b *testing.B) {
	tb, macs := fullTable(b)
	for i := range macs {
		macs[i][0] |= 0x80
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, ok := tb.Lookup(macs[i&(len(macs)-1)]); ok {
			b.Fatal("hit")
		}
		i++
	}
}

// BenchmarkLearnRefresh is the per-packet learning of a known source: the clock ticks every
// 1024 calls, so most calls only load last-seen.
func BenchmarkLearnRefresh(b *testing.B) {
	tb, macs := fullTable(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if tb.Learn(macs[i&(len(macs)-1)], RemoteVTEP(i&(len(macs)-1)%64), uint32(2+i>>10)) != LearnRefreshed {
			b.Fatal("not a refresh")
		}
		i++
	}
}

// BenchmarkLearnEvict is the worst case: every call is a new MAC address into a full table.
func BenchmarkLearnEvict(b *testing.B) {
	tb, _ := fullTable(b)
	b.ReportAllocs()
	i := uint32(0)
	for b.Loop() {
		if tb.Learn(floodMAC(i), LocalPort(1), 2+i>>10) != LearnEvicted {
			b.Fatal("no eviction")
		}
		i++
	}
}

func BenchmarkLookupParallel(b *testing.B) {
	tb, macs := fullTable(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := rand.IntN(len(macs))
		for pb.Next() {
			if _, ok := tb.Lookup(macs[i&(len(macs)-1)]); !ok {
				b.Fatal("miss")
			}
			i++
		}
	})
}

// BenchmarkLearnRefreshParallel has every goroutine refresh the same entries, the worst case for
// the last-seen cache lines.
func BenchmarkLearnRefreshParallel(b *testing.B) {
	tb, macs := fullTable(b)
	b.ReportAllocs()
	var now uint32 = 2
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if tb.Learn(macs[i&(len(macs)-1)], RemoteVTEP(i&(len(macs)-1)%64), now) != LearnRefreshed {
				b.Fatal("not a refresh")
			}
			i++
		}
	})
}
