package reorder

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"
)

// MaxDepth bounds Line depth. It is far above any useful value (a line as
// deep as a NIC queue's ring is already plenty); its purpose is to turn a
// unit mistake into an error instead of a huge allocation.
const MaxDepth = 1 << 16

// cacheLinePad separates fields written by different goroutines (producer,
// consumer, workers) so that they do not invalidate each other's cache line.
// 64 bytes is the line size of amd64 and of common arm64 cores.
const cacheLinePad = 64

// Slot states. A slot cycles free -> busy -> done -> held -> free, each step
// made by exactly one party: Begin, Done, Next/TryNext, Recycle.
const (
	stateFree uint32 = iota // recycled, waiting for Begin
	stateBusy               // sequenced, owned by the producer or a worker
	stateDone               // finished, waiting for its turn
	stateHeld               // released in order, owned by the consumer
)

// Batch is one slot of a Line: the batch memory (Item) plus its sequence
// number, state and timestamps. Batches are allocated once by NewLine and
// reused; never copy one. The Item belongs to whoever holds the batch (see
// the package documentation for the hand-offs).
type Batch[T any] struct {
	// Item is the batch memory, kept from one use to the next so that its
	// slices can be reused without allocating.
	Item T

	line  *Line[T]
	seq   uint64
	state atomic.Uint32
	// Nanoseconds since line.epoch (monotonic clock), one clock read per
	// step: begun by Begin, done by Done, released by Next/TryNext.
	begun, done, released int64

	_ [cacheLinePad]byte
}

// Line releases the batches of one ordered stream in sequence order. Create
// it with NewLine; see the package documentation for who may call what.
type Line[T any] struct {
	// Immutable after NewLine.
	slots        []Batch[T]
	epoch        time.Time
	noClock      bool
	closing      chan struct{} // closed by Close
	producerWake chan struct{} // capacity 1: a free slot may be there
	consumerWake chan struct{} // capacity 1: the head may be done

	closed atomic.Bool // set once by Close, before closing is closed

	_ [cacheLinePad]byte

	// Owned by the producer (Begin); read by Recycle and Stats.
	tail          atomic.Uint64 // next sequence number to hand out
	tailIdx       int           // slot of tail
	producerWait  atomic.Uint64 // 1 + sequence number Begin sleeps for, 0 if not asleep
	producerWaits atomic.Uint64

	_ [cacheLinePad]byte

	// Owned by the consumer (Next, TryNext); read by Done and Stats.
	head          atomic.Uint64 // next sequence number to release
	headIdx       int           // slot of head
	consumerWait  atomic.Uint64 // 1 + sequence number Next sleeps for, 0 if not asleep
	consumerWaits atomic.Uint64
	recycled      atomic.Uint64 // batches given back by Recycle; read by Idle

	_ [cacheLinePad]byte
}

// Stats are a line's counters since NewLine. Sequenced minus Released is the
// number of batches in flight (being filled, processed, or done and waiting
// for their turn).
type Stats struct {
	// Sequenced counts batches handed out by Begin.
	Sequenced uint64
	// Released counts batches handed to the consumer by Next and TryNext.
	Released uint64
	// ProducerWaits counts Begin calls that found the line full and had to
	// sleep: back-pressure reaching the producer.
	ProducerWaits uint64
	// ConsumerWaits counts Next calls that found the head batch unfinished
	// and had to sleep: the line was empty or blocked behind a slow batch.
	ConsumerWaits uint64
}

// Config describes a Line. Only Depth is required.
type Config[T any] struct {
	// Depth is the number of batches the line holds, and so the most that
	// may be in flight (sequenced and not yet recycled): Begin blocks beyond
	// it. A few per worker keeps the workers busy; in [1, MaxDepth].
	Depth int
	// Init, if not nil, is called once for each of the Depth batches, before
	// NewLine returns, to prepare its Item (allocate its slices, say).
	Init func(item *T)
	// NoClock skips the three clock reads per batch (Begin, Done, Next);
	// Waited and Latency then return 0. A read of the monotonic clock costs
	// tens of nanoseconds; on the loaded 2-core VM of this project's
	// benchmarks it measured 110-150 ns.
	NoClock bool
}

// NewLine returns a line with cfg.Depth batches allocated up front.
func NewLine[T any](cfg Config[T]) (*Line[T], error) {
	if cfg.Depth < 1 || cfg.Depth > MaxDepth {
		return nil, fmt.Errorf("new line: depth %d outside [1, %d]", cfg.Depth, MaxDepth)
	}
	l := &Line[T]{
		slots:        make([]Batch[T], cfg.Depth),
		epoch:        time.Now(),
		noClock:      cfg.NoClock,
		closing:      make(chan struct{}),
		producerWake: make(chan struct{}, 1),
		consumerWake: make(chan struct{}, 1),
	}
	for i := range l.slots {
		l.slots[i].line = l
		if cfg.Init != nil {
			cfg.Init(&l.slots[i].Item)
		}
	}
	return l, nil
}

// Depth returns the number of batches the line holds.
func (l *Line[T]) Depth() int { return len(l.slots) }

// Begin reserves the next batch in sequence order and returns it to the
// producer, which fills its Item and hands it to a worker (or marks it Done
// itself to drop it). Begin sleeps while the batch sequenced Depth batches
// earlier is not recycled yet. It returns ErrClosed once the line is closed,
// and the context's error if ctx ends while it sleeps. Only one goroutine may
// call Begin at a time.
func (l *Line[T]) Begin(ctx context.Context) (*Batch[T], error) {
	if l.closed.Load() {
		return nil, ErrClosed
	}
	b := &l.slots[l.tailIdx]
	if b.state.Load() != stateFree {
		if err := l.waitFree(ctx, b); err != nil {
			return nil, err
		}
	}
	seq := l.tail.Load()
	b.seq = seq
	b.begun = l.now()
	b.state.Store(stateBusy)
	l.tail.Store(seq + 1)
	l.tailIdx++
	if l.tailIdx == len(l.slots) {
		l.tailIdx = 0
	}
	return b, nil
}

// waitFree sleeps until slot b is recycled. The sleeper announces the
// sequence number it waits for before it looks at the slot again, and
// Recycle stores the state before it looks at the announcement: with
// sequentially consistent atomics one of the two sees the other, so a wakeup
// is never lost. A stale wakeup only costs one more look.
func (l *Line[T]) waitFree(ctx context.Context, b *Batch[T]) error {
	l.producerWaits.Add(1)
	l.producerWait.Store(l.tail.Load() + 1)
	for {
		if b.state.Load() == stateFree {
			l.producerWait.Store(0)
			return nil
		}
		if l.closed.Load() {
			l.producerWait.Store(0)
			return ErrClosed
		}
		select {
		case <-l.producerWake:
		case <-l.closing:
		case <-ctx.Done():
			l.producerWait.Store(0)
			return fmt.Errorf("wait for a free batch: %w", ctx.Err())
		}
	}
}

// Done marks the batch finished: it will be released to the consumer when
// every batch sequenced before it has been. A dropped batch is marked done
// too, with whatever empty Item means to the caller, or the line stalls.
// Done must be called exactly once per Begin, by the goroutine holding the
// batch, which must not touch the Item afterwards. It never blocks.
func (b *Batch[T]) Done() {
	l := b.line
	seq := b.seq // read before the state change: the slot may be reused right after
	b.done = l.now()
	if !b.state.CompareAndSwap(stateBusy, stateDone) {
		panic("reorder: Done on a batch that is not in flight")
	}
	if l.consumerWait.Load() == seq+1 {
		wake(l.consumerWake)
	}
}

// Next returns the next batch in sequence order, sleeping until it is done.
// After Close it still returns the batches that are done and whose turn has
// come, in order, then ErrClosed as soon as the next one is not done. It
// returns the context's error if ctx ends while it sleeps. The consumer owns
// the batch until it calls Recycle. Only one goroutine may call Next or
// TryNext at a time. A consumer that holds Depth batches unrecycled and calls
// Next waits until ctx ends or Close: the next batch needs one of their slots.
func (l *Line[T]) Next(ctx context.Context) (*Batch[T], error) {
	b := &l.slots[l.headIdx]
	if b.state.Load() != stateDone {
		if err := l.waitDone(ctx, b); err != nil {
			return nil, err
		}
	}
	return l.take(b), nil
}

// TryNext is Next without sleeping: it returns the next batch in sequence
// order if it is done, and false otherwise. A consumer can use it to take
// every batch that is ready and flush its output once before sleeping in
// Next.
func (l *Line[T]) TryNext() (*Batch[T], bool) {
	b := &l.slots[l.headIdx]
	if b.state.Load() != stateDone {
		return nil, false
	}
	return l.take(b), true
}

// take hands the done head batch b to the consumer.
func (l *Line[T]) take(b *Batch[T]) *Batch[T] {
	b.released = l.now()
	b.state.Store(stateHeld)
	l.head.Store(l.head.Load() + 1)
	l.headIdx++
	if l.headIdx == len(l.slots) {
		l.headIdx = 0
	}
	return b
}

// waitDone sleeps until the head slot b is done; the handshake with Done is
// the one waitFree has with Recycle.
func (l *Line[T]) waitDone(ctx context.Context, b *Batch[T]) error {
	l.consumerWaits.Add(1)
	l.consumerWait.Store(l.head.Load() + 1)
	for {
		if b.state.Load() == stateDone {
			l.consumerWait.Store(0)
			return nil
		}
		if l.closed.Load() {
			l.consumerWait.Store(0)
			return ErrClosed
		}
		select {
		case <-l.consumerWake:
		case <-l.closing:
		case <-ctx.Done():
			l.consumerWait.Store(0)
			return fmt.Errorf("wait for the next batch: %w", ctx.Err())
		}
	}
}

// Recycle gives a batch returned by Next back to the line, to be reused by
// Begin; the consumer must not touch the Item afterwards. It never blocks.
func (b *Batch[T]) Recycle() {
	l := b.line
	seq := b.seq // read before the state change: the slot may be reused right after
	if !b.state.CompareAndSwap(stateHeld, stateFree) {
		panic("reorder: Recycle on a batch that was not returned by Next")
	}
	l.recycled.Add(1)
	if l.producerWait.Load() == seq+uint64(len(l.slots))+1 {
		wake(l.producerWake)
	}
}

// Idle reports whether every batch Begin handed out has been recycled: nothing of the line
// is being filled, processed, waiting or consumed. Only the producer may rely on the
// answer, and only on a true one, which holds until its next Begin: no one else can put
// a batch in flight. A consumer that has recycled its last batch touches nothing of the
// line's any more but may still be about to sleep in Next. One atomic load each.
func (l *Line[T]) Idle() bool {
	return l.recycled.Load() == l.tail.Load()
}

// Seq returns the batch's sequence number in its line, counted from 0.
func (b *Batch[T]) Seq() uint64 { return b.seq }

// Waited returns how long the batch waited between Done and its release by
// Next or TryNext: blocked behind earlier batches (the cost of reordering),
// or behind a busy consumer. Valid between Next and Recycle; 0 without a
// clock.
func (b *Batch[T]) Waited() time.Duration { return time.Duration(b.released - b.done) }

// Latency returns how long the batch took from Begin to its release by Next
// or TryNext: filling, queueing, processing and waiting for its turn. Valid
// between Next and Recycle; 0 without a clock.
func (b *Batch[T]) Latency() time.Duration { return time.Duration(b.released - b.begun) }

// Stats returns the line's counters. It may be called from any goroutine.
func (l *Line[T]) Stats() Stats {
	return Stats{
		Sequenced:     l.tail.Load(),
		Released:      l.head.Load(),
		ProducerWaits: l.producerWaits.Load(),
		ConsumerWaits: l.consumerWaits.Load(),
	}
}

// Close closes the line: Begin returns ErrClosed from now on, and a Begin or
// Next sleeping now returns ErrClosed (Next after releasing every batch that
// is already done in order). Close may be called from any goroutine, more
// than once.
func (l *Line[T]) Close() {
	if l.closed.CompareAndSwap(false, true) {
		close(l.closing)
	}
}

// now reads the monotonic clock, in nanoseconds since the line was created,
// or returns 0 if the line has no clock.
func (l *Line[T]) now() int64 {
	if l.noClock {
		return 0
	}
	return int64(time.Since(l.epoch))
}

// wake leaves a token in a capacity-1 wakeup channel unless one is there.
func wake(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
