// Package fdb is the forwarding database of one VNI: it maps a MAC address to where it lives,
// a local port or a remote VTEP, with source-address learning, ageing and a size cap.
//
// Concurrency contract. Lookup, and Learn of a MAC address already known at the same Target
// (a refresh, the steady state of every packet), take no lock and never allocate: they are a
// few atomic loads, plus one atomic store of the last-seen time when the coarse clock has ticked
// since the previous refresh of that entry. Every other change (a new MAC address, a move, an
// eviction, Static, Delete, Expire, Flush) is serialized by a mutex; those are rare in steady state.
//
// Layout. The table is an open-addressing hash table with linear probing and a fixed number of
// slots (a power of two, at least twice the cap). Each slot is one atomic uint64 holding the
// 48-bit MAC address and a 16-bit tag (the Target and a static flag), so a reader loads a whole
// entry in one instruction and cannot see a MAC address paired with another entry's Target.
// The last-seen times live in a parallel array of atomic uint32: a refresh writes there and
// never dirties the cache lines readers probe. Deletion leaves a tombstone that insertion reuses;
// when tombstones fill a quarter of the slots, the live entries are copied into a fresh slot
// array, which is published with one atomic pointer store. A reader racing with a move sees the
// old or the new Target, both of them right a moment ago; a reader racing with a delete or a
// rebuild finds the entry or misses it, and a miss only floods the frame.
//
// Time. The table has no clock of its own: callers pass now, in seconds of a coarse clock such as
// Clock, to Learn and Expire. Comparisons are modulo 2^32 (int32 differences), so the clock may
// start anywhere and wrap.
package fdb

import (
	"fmt"
	"math/bits"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// DefaultCap is the number of entries a Table holds when Options.Cap is 0, the same as
	// the dataplane's default fdb_max.
	DefaultCap = 4096
	// MaxCap bounds Options.Cap: 2^20 entries is 2^21 slots of 12 bytes, 24 MiB per VNI.
	MaxCap = 1 << 20
	// DefaultAgeing is how long a learned entry lives without traffic when Options.Ageing is 0:
	// 300 s, the Linux bridge's default ageing_time.
	DefaultAgeing = 300 * time.Second
	// MaxAgeing bounds Options.Ageing so that ages fit an int32 of seconds (about 68 years).
	MaxAgeing = (1<<31 - 1) * time.Second

	// evictSample is how many dynamic entries a full table examines to pick the one to evict:
	// the oldest of 16 is older than about 94% of the table (1 - 1/17 on average), at a cost of
	// 16 slot loads instead of a scan of every slot.
	evictSample = 16
)

// Slot words: the MAC address in bits 63-16, the tag in bits 15-0.
const (
	// tagTarget is the Target part of the tag; a word whose Target is None is not an entry.
	tagTarget uint64 = 0x7fff
	// tagStatic marks an entry set by Static: never aged, evicted nor moved by learning.
	tagStatic uint64 = 0x8000
	// slotEmpty ends every probe sequence.
	slotEmpty uint64 = 0
	// slotTombstone is a deleted entry: probes go past it, insertion may reuse it.
	slotTombstone uint64 = 0xffff_ffff_ffff_0000
)

// Options configure a Table. The zero value selects every default.
type Options struct {
	// Cap is the maximum number of entries, static ones included; 0 selects DefaultCap.
	// When a new MAC address arrives at a full table, Learn evicts an old dynamic entry.
	Cap int
	// Ageing is how long a learned entry lives without a Learn refreshing it; 0 selects
	// DefaultAgeing. It is rounded up to whole seconds, the unit of the clock Learn and
	// Expire are given; an entry is expired once now - lastSeen exceeds it.
	Ageing time.Duration
}

// LearnResult says what Learn did.
type LearnResult uint8

// Results of Learn.
const (
	// LearnRefreshed: the MAC address was already there with this Target; its last-seen time
	// was updated, without a lock. A static entry with this Target also reports it.
	LearnRefreshed LearnResult = iota + 1
	// LearnAdded: a new entry.
	LearnAdded
	// LearnMoved: the MAC address was there with another Target and now points at this one.
	LearnMoved
	// LearnEvicted: a new entry, added after evicting an old dynamic one from a full table.
	LearnEvicted
	// LearnRejected: nothing changed, because the Target is not valid, the MAC address is
	// static with another Target, or the table is full of static entries.
	LearnRejected
)

// String names r for logs and tests.
func (r LearnResult) String() string {
	switch r {
	case LearnRefreshed:
		return "refreshed"
	case LearnAdded:
		return "added"
	case LearnMoved:
		return "moved"
	case LearnEvicted:
		return "evicted"
	case LearnRejected:
		return "rejected"
	}
	return fmt.Sprintf("LearnResult(%d)", uint8(r))
}

// Stats are cumulative counts of a Table's changes since New.
type Stats struct {
	// Added counts entries created by Learn, including those that evicted another.
	Added uint64
	// Moved counts Learn calls that pointed a known MAC address at another Target.
	Moved uint64
	// Evicted counts dynamic entries removed to make room in a full table.
	Evicted uint64
	// Expired counts entries removed by Expire.
	Expired uint64
	// Flushed counts entries removed by Flush.
	Flushed uint64
	// Deleted counts entries removed by Delete.
	Deleted uint64
	// Rejected counts Learn calls that changed nothing (see LearnRejected).
	Rejected uint64
	// Rebuilds counts copies of the live entries into a fresh slot array to clear tombstones.
	Rebuilds uint64
}

// Entry is one entry of a Table, as Entries reports it.
type Entry struct {
	// MAC is the address.
	MAC MAC
	// To is where it lives.
	To Target
	// LastSeen is the now of the last Learn that added, moved or refreshed the entry; 0 for a
	// static entry.
	LastSeen uint32
	// Static is true for an entry set by Static.
	Static bool
}

// slotTable is one generation of slots. Its fields never change after it is published; the
// contents of words and seen change through atomics, under Table.mu except for refreshes.
type slotTable struct {
	words []atomic.Uint64 // MAC << 16 | tag, or slotEmpty, or slotTombstone
	seen  []atomic.Uint32 // last-seen time of the entry in the same slot
	mask  uint64          // len(words) - 1
	seed0 uint64          // hash key: a table's layout cannot be predicted from outside,
	seed1 uint64          // so crafted source MACs cannot build long probe chains (odd)
}

func newSlotTable(n int) *slotTable {
	return &slotTable{
		words: make([]atomic.Uint64, n),
		seen:  make([]atomic.Uint32, n),
		mask:  uint64(n - 1),
		seed0: rand.Uint64(),
		seed1: rand.Uint64() | 1,
	}
}

// home is the first slot key probes: a keyed multiply-fold hash (not cryptographic, but its key
// is random per slot array and never leaves the process).
func (st *slotTable) home(key uint64) uint64 {
	hi, lo := bits.Mul64(key^st.seed0, st.seed1)
	return (hi ^ lo) & st.mask
}

// find returns the slot holding key and its word. The bound on the loop is defensive: every
// published slot array keeps at least a quarter of its slots empty, so probes end at one.
func (st *slotTable) find(key uint64) (uint64, uint64, bool) {
	i := st.home(key)
	for range len(st.words) {
		w := st.words[i].Load()
		if w == slotEmpty {
			break
		}
		if w>>16 == key && w&tagTarget != 0 {
			return i, w, true
		}
		i = (i + 1) & st.mask
	}
	return 0, 0, false
}

// Table is the FDB of one VNI. Its methods are safe for concurrent use; see the package
// documentation for which of them take a lock.
type Table struct {
	// Read on every Lookup; cur is replaced under mu, the others never change after New.
	cur    atomic.Pointer[slotTable]
	cap    int
	ageing uint32 // seconds

	_ [64]byte // keeps the counters below, written by writers, off the line readers load

	live     atomic.Int64 // entries in cur; written under mu, read by Len
	added    atomic.Uint64
	moved    atomic.Uint64
	evicted  atomic.Uint64
	expired  atomic.Uint64
	flushed  atomic.Uint64
	deleted  atomic.Uint64
	rejected atomic.Uint64 // also bumped without mu, by Learn's lock-free path
	rebuilds atomic.Uint64

	mu sync.Mutex
	// Guarded by mu.
	tombs int    // tombstones in cur
	used  int    // live entries plus tombstones in cur
	hand  uint64 // next slot the eviction sampler examines
}

// New returns an empty Table configured by o.
func New(o Options) (*Table, error) {
	if o.Cap == 0 {
		o.Cap = DefaultCap
	}
	if o.Cap < 0 || o.Cap > MaxCap {
		return nil, fmt.Errorf("validate cap %d: not in [1, %d]: %w", o.Cap, MaxCap, ErrInvalidOptions)
	}
	if o.Ageing == 0 {
		o.Ageing = DefaultAgeing
	}
	if o.Ageing < 0 || o.Ageing > MaxAgeing {
		return nil, fmt.Errorf("validate ageing %v: not in (0, %v]: %w", o.Ageing, MaxAgeing, ErrInvalidOptions)
	}
	// Twice the cap, rounded up to a power of two: at most half the slots hold entries, and
	// rebuilds keep tombstones under a quarter, so probes stay short and always end.
	n := 16
	for n < 2*o.Cap {
		n <<= 1
	}
	t := &Table{
		cap:    o.Cap,
		ageing: uint32((o.Ageing + time.Second - 1) / time.Second),
	}
	t.cur.Store(newSlotTable(n))
	return t, nil
}

// Lookup returns where mac lives. It takes no lock and never allocates; on a miss it returns
// None and false, and the caller floods the frame.
func (t *Table) Lookup(mac MAC) (Target, bool) {
	_, w, ok := t.cur.Load().find(mac.key())
	return Target(w & tagTarget), ok
}

// Learn records that frames from mac arrive from to, at time now (seconds of a coarse clock).
// When mac is already known at to, it only updates the last-seen time, without a lock and only
// if now moved on since the last refresh; anything else takes the mutex. Learn never changes
// a static entry. A refresh that races with a rebuild may be lost, so the entry ages from its
// previous refresh: at worst it expires early and is learned again from the next frame. A
// refresh that races with the deletion of its entry may stamp now on the entry that reuses the
// slot, which is about as recent: at worst that entry expires one refresh later. Neither race
// can change a Target, and static entries do not read their last-seen time.
func (t *Table) Learn(mac MAC, to Target, now uint32) LearnResult {
	if !to.Valid() {
		t.rejected.Add(1)
		return LearnRejected
	}
	key := mac.key()
	st := t.cur.Load()
	if i, w, ok := st.find(key); ok {
		if Target(w&tagTarget) == to {
			if w&tagStatic == 0 {
				refresh(&st.seen[i], now)
			}
			return LearnRefreshed
		}
		if w&tagStatic != 0 {
			t.rejected.Add(1)
			return LearnRejected
		}
	}
	t.mu.Lock()
	r := t.learnLocked(key, to, now)
	t.mu.Unlock()
	return r
}

// refresh stores now into seen unless seen already holds it (or a later time): the common case
// is a load, so the cache line is not written on every packet.
func refresh(seen *atomic.Uint32, now uint32) {
	if int32(now-seen.Load()) > 0 {
		seen.Store(now)
	}
}

func (t *Table) learnLocked(key uint64, to Target, now uint32) LearnResult {
	st := t.cur.Load()
	if i, w, ok := st.find(key); ok {
		switch {
		case Target(w&tagTarget) == to:
			if w&tagStatic == 0 {
				refresh(&st.seen[i], now)
			}
			return LearnRefreshed
		case w&tagStatic != 0:
			t.rejected.Add(1)
			return LearnRejected
		}
		// Time first, so that a refresh of the new Target never sees the old entry's time.
		st.seen[i].Store(now)
		st.words[i].Store(key<<16 | uint64(to))
		t.moved.Add(1)
		return LearnMoved
	}
	r := LearnAdded
	if int(t.live.Load()) >= t.cap {
		if !t.evictLocked() {
			t.rejected.Add(1)
			return LearnRejected
		}
		r = LearnEvicted
	}
	t.insertLocked(key<<16|uint64(to), now)
	t.added.Add(1)
	return r
}

// Static sets mac to live at to for good: the entry is never aged, evicted or moved by Learn,
// so a remote VTEP cannot claim the MAC address of a local port. Static overrides any entry of
// mac, static or not. On a full table it evicts a dynamic entry; it returns ErrFull when every
// entry is static, and ErrInvalidTarget when to is not valid. Only Delete and Flush remove it.
func (t *Table) Static(mac MAC, to Target) error {
	if !to.Valid() {
		return fmt.Errorf("set static entry %v to %d: %w", mac, uint16(to), ErrInvalidTarget)
	}
	key := mac.key()
	word := key<<16 | uint64(to) | tagStatic
	t.mu.Lock()
	st := t.cur.Load()
	if i, _, ok := st.find(key); ok {
		st.seen[i].Store(0)
		st.words[i].Store(word)
		t.mu.Unlock()
		return nil
	}
	if int(t.live.Load()) >= t.cap && !t.evictLocked() {
		t.mu.Unlock()
		return fmt.Errorf("set static entry %v: %w", mac, ErrFull)
	}
	t.insertLocked(word, 0)
	t.mu.Unlock()
	return nil
}

// insertLocked stores word, whose MAC address is known to be absent, in the first free slot of
// its probe sequence: a tombstone, or the empty slot that ends the sequence.
func (t *Table) insertLocked(word uint64, seen uint32) {
	st := t.cur.Load()
	i := st.home(word >> 16)
	for {
		w := st.words[i].Load()
		if w == slotTombstone {
			t.tombs--
			break
		}
		if w == slotEmpty {
			if 4*(t.used+1) > 3*len(st.words) {
				// Unreachable while every deletion compacts at a quarter of tombstones
				// (entries stay under half); kept so that an empty slot always remains.
				t.rebuildLocked()
				t.insertLocked(word, seen)
				return
			}
			t.used++
			break
		}
		i = (i + 1) & st.mask
	}
	st.seen[i].Store(seen)
	st.words[i].Store(word)
	t.live.Add(1)
}

// deleteLocked turns slot i of the current slot array into a tombstone.
func (t *Table) deleteLocked(st *slotTable, i uint64) {
	st.words[i].Store(slotTombstone)
	t.live.Add(-1)
	t.tombs++
}

// compactLocked rebuilds once tombstones fill a quarter of the slots. A rebuild copies every
// slot, but it follows at least len/4 deletions, so its cost per deletion is a few slot copies.
func (t *Table) compactLocked() {
	if 4*t.tombs > len(t.cur.Load().words) {
		t.rebuildLocked()
	}
}

// rebuildLocked copies the live entries into a fresh slot array (with a fresh hash key) and
// publishes it. Readers still probing the old array see it as it was when copied, which is a
// consistent, slightly old view; writers only ever touch the new one.
func (t *Table) rebuildLocked() {
	old := t.cur.Load()
	st := newSlotTable(len(old.words))
	live := 0
	for j := range old.words {
		w := old.words[j].Load()
		if w&tagTarget == 0 {
			continue
		}
		i := st.home(w >> 16)
		for st.words[i].Load() != slotEmpty {
			i = (i + 1) & st.mask
		}
		st.seen[i].Store(old.seen[j].Load())
		st.words[i].Store(w)
		live++
	}
	t.used, t.tombs = live, 0
	t.cur.Store(st)
	t.rebuilds.Add(1)
}

// evictLocked removes the oldest of up to evictSample dynamic entries found from the sampling
// hand onward, and reports whether there was one. The hand advances past what it examined, so
// successive evictions sweep the whole table like a clock hand; since slots are in hash order,
// a run of consecutive slots is an unbiased sample of entry ages. An exact oldest would need an
// O(slots) scan per new MAC address, which a flood of random source MACs turns into seconds of
// CPU under the mutex. Ages are compared relative to the first candidate, modulo 2^32.
func (t *Table) evictLocked() bool {
	st := t.cur.Load()
	i := t.hand & st.mask
	best, found := uint64(0), 0
	var ref uint32
	var bestAge int32
	for range len(st.words) {
		w := st.words[i].Load()
		if w&tagTarget != 0 && w&tagStatic == 0 {
			seen := st.seen[i].Load()
			if found == 0 {
				ref = seen
			}
			if age := int32(ref - seen); found == 0 || age > bestAge {
				best, bestAge = i, age
			}
			found++
		}
		i = (i + 1) & st.mask
		if found == evictSample {
			break
		}
	}
	t.hand = i
	if found == 0 {
		return false
	}
	t.deleteLocked(st, best)
	t.evicted.Add(1)
	t.compactLocked()
	return true
}

// Expire removes the dynamic entries not refreshed for longer than the ageing time, that is with
// now - lastSeen > Ageing, and returns how many it removed. It scans every slot under the mutex
// (a few microseconds per thousand slots): call it from one background goroutine every few
// seconds, with the clock Learn is given.
func (t *Table) Expire(now uint32) int {
	t.mu.Lock()
	st := t.cur.Load()
	n := 0
	for i := range st.words {
		w := st.words[i].Load()
		if w&tagTarget == 0 || w&tagStatic != 0 {
			continue
		}
		if int32(now-st.seen[i].Load()) > int32(t.ageing) {
			t.deleteLocked(st, uint64(i))
			n++
		}
	}
	t.expired.Add(uint64(n))
	t.compactLocked()
	t.mu.Unlock()
	return n
}

// Flush removes every entry, static ones included, whose Target satisfies pred, such as the
// entries of a local port or remote VTEP that went away, and returns how many it removed. pred
// runs under the table's mutex: it must not call the Table.
func (t *Table) Flush(pred func(Target) bool) int {
	t.mu.Lock()
	st := t.cur.Load()
	n := 0
	for i := range st.words {
		w := st.words[i].Load()
		if w&tagTarget != 0 && pred(Target(w&tagTarget)) {
			t.deleteLocked(st, uint64(i))
			n++
		}
	}
	t.flushed.Add(uint64(n))
	t.compactLocked()
	t.mu.Unlock()
	return n
}

// Delete removes the entry of mac, static or not, and reports whether there was one.
func (t *Table) Delete(mac MAC) bool {
	t.mu.Lock()
	st := t.cur.Load()
	i, _, ok := st.find(mac.key())
	if ok {
		t.deleteLocked(st, i)
		t.deleted.Add(1)
		t.compactLocked()
	}
	t.mu.Unlock()
	return ok
}

// Len returns the number of entries, static ones included. It never exceeds the cap.
func (t *Table) Len() int { return int(t.live.Load()) }

// Cap returns the maximum number of entries.
func (t *Table) Cap() int { return t.cap }

// Ageing returns the ageing time, in whole seconds.
func (t *Table) Ageing() time.Duration { return time.Duration(t.ageing) * time.Second }

// Entries calls fn for each entry of a snapshot taken under the mutex, in no particular order,
// until fn returns false. fn runs without the lock and may call the Table. It allocates the
// snapshot: it is for the /fdb endpoint, debugging and tests, not for the packet path.
func (t *Table) Entries(fn func(e Entry) bool) {
	t.mu.Lock()
	st := t.cur.Load()
	snap := make([]Entry, 0, t.live.Load())
	for i := range st.words {
		w := st.words[i].Load()
		if w&tagTarget == 0 {
			continue
		}
		e := Entry{MAC: macFromKey(w >> 16), To: Target(w & tagTarget), Static: w&tagStatic != 0}
		if !e.Static {
			e.LastSeen = st.seen[i].Load()
		}
		snap = append(snap, e)
	}
	t.mu.Unlock()
	for _, e := range snap {
		if !fn(e) {
			return
		}
	}
}

// Stats returns the table's counters. Each is read atomically; together they are not a
// snapshot of one instant.
func (t *Table) Stats() Stats {
	return Stats{
		Added:    t.added.Load(),
		Moved:    t.moved.Load(),
		Evicted:  t.evicted.Load(),
		Expired:  t.expired.Load(),
		Flushed:  t.flushed.Load(),
		Deleted:  t.deleted.Load(),
		Rejected: t.rejected.Load(),
		Rebuilds: t.rebuilds.Load(),
	}
}
