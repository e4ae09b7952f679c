package reorder

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
)

// Pool is a fixed set of worker goroutines shared by any number of lines
// whose batches have the same type. Producers hand batches over with Submit;
// a worker runs the process function on the batch's Item, then marks it
// Done. Submit may be called from any goroutine; Close from any goroutine
// but a worker's (it waits for them), once or more.
type Pool[T any] struct {
	work    chan *Batch[T]
	process func(worker int, item *T)
	wg      sync.WaitGroup // one per worker goroutine

	// Close flips closed, closes closing, waits until no Submit is between
	// its check of closed and its send, then closes work: no send can reach
	// a closed channel, and every queued batch is still processed.
	closed     atomic.Bool
	closing    chan struct{}
	submitters atomic.Int64
	closeOnce  sync.Once
}

// NewPool starts workers goroutines, each running process on the batches
// submitted to it, then marking them Done. The worker argument, in
// [0, workers), lets process reach per-worker scratch memory without a lock.
// queue is how many submitted batches may wait for a worker before Submit
// blocks; 0 hands each batch straight to an idle worker.
func NewPool[T any](workers, queue int, process func(worker int, item *T)) (*Pool[T], error) {
	if workers < 1 {
		return nil, fmt.Errorf("new pool: %d workers, need at least 1", workers)
	}
	if queue < 0 {
		return nil, fmt.Errorf("new pool: negative queue %d", queue)
	}
	if process == nil {
		return nil, fmt.Errorf("new pool: nil process function")
	}
	p := &Pool[T]{
		work:    make(chan *Batch[T], queue),
		process: process,
		closing: make(chan struct{}),
	}
	p.wg.Add(workers)
	for i := range workers {
		go p.runWorker(i)
	}
	return p, nil
}

// runWorker processes batches until Close has closed the work channel and
// the batches queued before it are done.
func (p *Pool[T]) runWorker(worker int) {
	defer p.wg.Done()
	for b := range p.work {
		p.process(worker, &b.Item)
		b.Done()
	}
}

// Submit hands b to a worker, sleeping while the queue is full. It returns
// ErrClosed after Close, and the context's error if ctx ends while it sleeps.
// On error the caller still holds b and must mark it Done (dropped), or its
// line stalls.
func (p *Pool[T]) Submit(ctx context.Context, b *Batch[T]) error {
	p.submitters.Add(1)
	if p.closed.Load() {
		p.submitters.Add(-1)
		return ErrClosed
	}
	select {
	case p.work <- b:
		p.submitters.Add(-1)
		return nil
	default:
	}
	select {
	case p.work <- b:
		p.submitters.Add(-1)
		return nil
	case <-p.closing:
		p.submitters.Add(-1)
		return ErrClosed
	case <-ctx.Done():
		p.submitters.Add(-1)
		return fmt.Errorf("submit batch: %w", ctx.Err())
	}
}

// Close stops the pool: Submit returns ErrClosed from now on, the workers
// process the batches already queued, and Close returns once every worker
// goroutine has exited.
func (p *Pool[T]) Close() {
	p.closeOnce.Do(func() {
		p.closed.Store(true)
		close(p.closing)
		// A Submit that counted itself before seeing closed is about to
		// send or to see closing; it leaves within a few scheduler rounds.
		for p.submitters.Load() != 0 {
			runtime.Gosched()
		}
		close(p.work)
	})
	p.wg.Wait()
}
