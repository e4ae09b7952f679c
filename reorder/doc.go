// Package reorder releases batches in the order they were sequenced, however
// the workers that process them finish.
//
// A Line is one ordered stream, for example the packets of one NIC queue. It
// owns a fixed ring of Config.Depth batches, allocated once by NewLine and
// reused forever: no batch is allocated after that. The life of a batch:
//
//	producer:  b, err := line.Begin(ctx)   // next sequence number; blocks while the line is full
//	           fill b.Item, pool.Submit(ctx, b) (or send b on any channel of yours)
//	worker:    process b.Item in place, b.Done() // a dropped or empty batch is marked done too
//	consumer:  b, err := line.Next(ctx)    // strictly in sequence order, once done
//	           use b.Item, then b.Recycle() // the slot goes back to the producer
//
// Back-pressure: Begin blocks until the batch sequenced Depth batches earlier
// has been recycled, so at most Depth batches of a line are in flight and
// memory stays bounded. Next blocks until the oldest unreleased sequence
// number is done, so a stalled worker delays later batches of its line (never
// other lines) and they come out in order once it finishes. A batch that is
// dropped must still be marked done, empty, or its line stalls.
//
// Workers of several lines may share one Pool (or one channel of yours): a
// Batch knows its Line, so Done needs no line argument.
//
// # Concurrency contract
//
//   - Begin: one producer goroutine per line at a time (it owns the sequence
//     counter). The producer owns the returned batch until it hands it on.
//   - Done: exactly once per batch, from whichever goroutine holds the batch
//     (a worker, or the producer for a batch it drops before submitting). The
//     Item must not be touched by that goroutine after Done.
//   - Next and TryNext: one consumer goroutine per line at a time. The
//     consumer owns the returned batch until it calls Recycle.
//   - Recycle: exactly once per batch returned by Next, by its holder.
//     Batches may be recycled in any order, but slots are reused in sequence
//     order, so holding one back also holds back Begin after Depth batches.
//   - Stats, Depth and Close: any goroutine, any time.
//
// Misuse that would corrupt the order (Done twice, Recycle of a batch that is
// not held) panics, as unlocking an unlocked sync.Mutex does.
//
// # Cost
//
// No lock is taken per batch or per item. A batch moves through its slot with
// one atomic state change per step; a goroutine sleeps on a channel only when
// it actually has to wait (producer on a full line, consumer on an unfinished
// head), and the goroutine that unblocks it sends the wakeup only if it is
// waiting for that very batch. Three clock reads are taken per batch (Begin,
// Done, Next), none per item, for Batch.Waited and Batch.Latency;
// Config.NoClock turns them off.
//
// # Shutdown
//
// Close may be called from any goroutine. Afterwards Begin returns ErrClosed;
// Next and TryNext still return, in order, the batches whose turn has come
// and that are already done, and Next returns ErrClosed once the head is not
// done; goroutines blocked in Begin or Next return ErrClosed at once. Done and
// Recycle keep working, so workers finishing late need no special case.
// A cancelled context makes a blocked Begin, Next or Pool.Submit return the
// context's error instead. The orderly stop of a pipeline is: stop the
// producers (cancel their context), Close the Pool (it finishes the batches
// already queued and waits for its workers), Close the lines, and let each
// consumer drain until Next returns ErrClosed.
package reorder
