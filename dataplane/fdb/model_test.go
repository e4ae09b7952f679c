package fdb

import (
	"math/rand/v2"
	"testing"
	"time"
)

// modelEntry is an entry of the reference model.
type modelEntry struct {
	to     Target
	seen   uint32
	static bool
}

// model runs the same operations on a Table and on a map and fails on the first difference.
// The only freedom the table has is which dynamic entry it evicts: the model learns that
// choice from the table and checks that it was a dynamic entry other than the new one.
type model struct {
	t      testing.TB
	tb     *Table
	m      map[MAC]modelEntry
	cap    int
	ageing uint32
	now    uint32
}

func newModel(t testing.TB, capacity int, ageing time.Duration, now uint32) *model {
	return &model{
		t:      t,
		tb:     newTable(t, Options{Cap: capacity, Ageing: ageing}),
		m:      map[MAC]modelEntry{},
		cap:    capacity,
		ageing: uint32(ageing / time.Second),
		now:    now,
	}
}

func (md *model) hasDynamic() bool {
	for _, e := range md.m {
		if !e.static {
			return true
		}
	}
	return false
}

// evicted finds the entry the table evicted and drops it from the model.
func (md *model) evicted(except MAC) {
	md.t.Helper()
	var gone []MAC
	for m, e := range md.m {
		if _, ok := md.tb.Lookup(m); !ok {
			if e.static || m == except {
				md.t.Fatalf("evicted %v (static %v)", m, e.static)
			}
			gone = append(gone, m)
		}
	}
	if len(gone) != 1 {
		md.t.Fatalf("eviction removed %d entries: %v", len(gone), gone)
	}
	delete(md.m, gone[0])
}

func (md *model) learn(m MAC, to Target) {
	md.t.Helper()
	got := md.tb.Learn(m, to, md.now)
	e, ok := md.m[m]
	want := LearnRejected
	switch {
	case !to.Valid():
	case ok && e.to == to:
		want = LearnRefreshed
		if !e.static && int32(md.now-e.seen) > 0 {
			e.seen = md.now
			md.m[m] = e
		}
	case ok && e.static:
	case ok:
		want = LearnMoved
		md.m[m] = modelEntry{to: to, seen: md.now}
	case len(md.m) < md.cap:
		want = LearnAdded
		md.m[m] = modelEntry{to: to, seen: md.now}
	case md.hasDynamic():
		want = LearnEvicted
		md.m[m] = modelEntry{to: to, seen: md.now}
	}
	if got != want {
		md.t.Fatalf("Learn(%v, %v, %d) = %v; model says %v", m, to, md.now, got, want)
	}
	if got == LearnEvicted {
		md.evicted(m)
	}
}

func (md *model) static(m MAC, to Target) {
	md.t.Helper()
	err := md.tb.Static(m, to)
	_, ok := md.m[m]
	switch {
	case !to.Valid():
		if err == nil {
			md.t.Fatalf("Static(%v, %v) accepted an invalid target", m, to)
		}
		return
	case ok || len(md.m) < md.cap:
		md.m[m] = modelEntry{to: to, static: true}
	case md.hasDynamic():
		md.m[m] = modelEntry{to: to, static: true}
		md.evicted(m)
	default:
		if err == nil {
			md.t.Fatalf("Static(%v, %v) on a table full of static entries succeeded", m, to)
		}
		return
	}
	if err != nil {
		md.t.Fatalf("Static(%v, %v): %v", m, to, err)
	}
}

func (md *model) delete(m MAC) {
	md.t.Helper()
	_, ok := md.m[m]
	if got := md.tb.Delete(m); got != ok {
		md.t.Fatalf("Delete(%v) = %v; model says %v", m, got, ok)
	}
	delete(md.m, m)
}

func (md *model) expire() {
	md.t.Helper()
	want := 0
	for m, e := range md.m {
		if !e.static && int32(md.now-e.seen) > int32(md.ageing) {
			delete(md.m, m)
			want++
		}
	}
	if got := md.tb.Expire(md.now); got != want {
		md.t.Fatalf("Expire(%d) = %d; model says %d", md.now, got, want)
	}
}

func (md *model) flush(pred func(Target) bool) {
	md.t.Helper()
	want := 0
	for m, e := range md.m {
		if pred(e.to) {
			delete(md.m, m)
			want++
		}
	}
	if got := md.tb.Flush(pred); got != want {
		md.t.Fatalf("Flush = %d; model says %d", got, want)
	}
}

func (md *model) lookup(m MAC) {
	md.t.Helper()
	e, ok := md.m[m]
	got, gotOK := md.tb.Lookup(m)
	if gotOK != ok || got != e.to {
		md.t.Fatalf("Lookup(%v) = %v, %v; model says %v, %v", m, got, gotOK, e.to, ok)
	}
}

// check compares the whole table with the model.
func (md *model) check() {
	md.t.Helper()
	if md.tb.Len() != len(md.m) || md.tb.Len() > md.cap {
		md.t.Fatalf("Len = %d; model has %d, cap %d", md.tb.Len(), len(md.m), md.cap)
	}
	n := 0
	md.tb.Entries(func(e Entry) bool {
		n++
		w, ok := md.m[e.MAC]
		if !ok || e.To != w.to || e.Static != w.static || (!e.Static && e.LastSeen != w.seen) {
			md.t.Fatalf("entry %+v; model has %+v (%v)", e, w, ok)
		}
		return true
	})
	if n != len(md.m) {
		md.t.Fatalf("Entries gave %d entries; model has %d", n, len(md.m))
	}
	for m, e := range md.m {
		if got, ok := md.tb.Lookup(m); !ok || got != e.to {
			md.t.Fatalf("Lookup(%v) = %v, %v; model has %v", m, got, ok, e.to)
		}
	}
	st := md.tb.cur.Load()
	if 4*md.tb.tombs > len(st.words) || 4*md.tb.used > 3*len(st.words) {
		md.t.Fatalf("%d tombstones, %d slots used of %d", md.tb.tombs, md.tb.used, len(st.words))
	}
}

// poolMAC maps a small number to one of 64 MAC addresses, including all-zeros and all-ones, so
// that operations hit the same addresses often.
func poolMAC(b byte) MAC {
	switch b % 64 {
	case 0:
		return MAC{}
	case 1:
		return MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	}
	return MAC{0x02, 0, 0, 0, b % 64, 0x10}
}

// poolTarget maps a byte to one of 16 targets, or to an invalid one for 0xff and 0xfe.
func poolTarget(b byte) Target {
	switch {
	case b == 0xff:
		return None
	case b == 0xfe:
		return Target(0x8000 | 1)
	case b&1 == 0:
		return LocalPort(int(b>>1) % 8)
	}
	return RemoteVTEP(int(b>>1) % 8)
}

// step applies one operation chosen by op, with arguments a and b.
func (md *model) step(op, a, b byte) {
	switch op % 10 {
	case 0, 1, 2, 3:
		md.learn(poolMAC(a), poolTarget(b))
	case 4:
		md.static(poolMAC(a), poolTarget(b))
	case 5:
		md.delete(poolMAC(a))
	case 6:
		md.now += uint32(b % 16)
		md.expire()
	case 7:
		local, index := b&1 == 0, int(b>>1)%8
		md.flush(func(to Target) bool { return to.IsLocal() == local && to.Index() == index })
	case 8:
		md.now += uint32(b % 4)
		md.lookup(poolMAC(a))
	case 9:
		md.check()
	}
}

// TestModelRandom drives a small table, with tombstones, rebuilds, evictions and a clock that
// wraps, through many random operations against the model.
func TestModelRandom(t *testing.T) {
	for seed := range uint64(4) {
		md := newModel(t, 16+int(seed)*8, 20*time.Second, 0xffff_f000)
		rng := rand.New(rand.NewPCG(seed, 99))
		for i := range 50_000 {
			md.step(byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32()))
			if i%1000 == 0 {
				md.check()
			}
		}
		md.check()
		s := md.tb.Stats()
		if s.Evicted == 0 || s.Rebuilds == 0 || s.Moved == 0 || s.Expired == 0 || s.Flushed == 0 {
			t.Errorf("seed %d did not exercise every path: %+v", seed, s)
		}
	}
}

// FuzzModel reads operations, three bytes each, and runs them against the model.
func FuzzModel(f *testing.F) {
	f.Add([]byte{0, 2, 4, 0, 3, 4, 8, 2, 0, 9, 0, 0})
	f.Add([]byte{0, 2, 4, 4, 2, 6, 0, 2, 5, 5, 2, 0, 9, 0, 0})
	f.Add([]byte{6, 0, 15, 6, 0, 15, 0, 0, 0xff, 0, 1, 0xfe, 7, 0, 8, 9, 0, 0})
	seq := make([]byte, 0, 3*200)
	for i := range 200 {
		seq = append(seq, byte(i*7), byte(i*13), byte(i*31))
	}
	f.Add(seq)
	f.Fuzz(func(t *testing.T, ops []byte) {
		md := newModel(t, 8, 20*time.Second, 0xffff_fff0)
		for len(ops) >= 3 {
			md.step(ops[0], ops[1], ops[2])
			ops = ops[3:]
		}
		md.check()
	})
}
