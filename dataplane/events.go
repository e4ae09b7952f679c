//go:build linux

package dataplane

import (
	"net/netip"
	"sync/atomic"
	"time"
)

// eventInterval is the least time between two log lines of one kind of per-packet event. A
// failing TAP or a full TX ring can hit every frame, a million times a second, and a log line
// each would cost more than the frames and drown the log; once a second says the same.
const eventInterval = time.Second

// eventKind is a per-packet event that deserves a log line, now and then.
type eventKind uint8

// Per-packet events, each with its own rate limit.
const (
	eventTAPWrite    eventKind = iota // a TAP write failed
	eventTxFull                       // frames found no room on the AF_XDP TX ring
	eventTooBig                       // a frame from a port larger than its MTU
	eventInnerTooBig                  // an inner frame from a remote larger than its VNI's ports take
	eventTxTooLong                    // an underlay frame longer than the socket transmits
	eventQueueRead                    // the underlay's queues in use could not be read or opened
	numEvents
)

// eventEpoch is the monotonic origin of eventGate's times: a package variable, so that the
// zero eventLog works.
var eventEpoch = time.Now()

// eventLog lets through at most one log line per kind and eventInterval and counts the others,
// which the next line that goes out reports as suppressed. Safe for concurrent use; the check
// is a clock read and two atomics, with no allocation.
type eventLog struct {
	kinds [numEvents]eventGate
}

// eventGate is the rate limit of one kind.
type eventGate struct {
	next       atomic.Int64  // nanoseconds since eventEpoch before which no line goes out
	suppressed atomic.Uint64 // events since the last line that went out
	_          [48]byte      // the kinds are bumped by different goroutines: one cache line each
}

// allow reports whether a line of kind k may go out now and, if so, how many events of that
// kind were suppressed since the previous line. Of goroutines racing for the same slot, one
// wins and the others count as suppressed.
func (l *eventLog) allow(k eventKind) (suppressed uint64, ok bool) {
	g := &l.kinds[k]
	now := int64(time.Since(eventEpoch))
	next := g.next.Load()
	if now < next || !g.next.CompareAndSwap(next, now+int64(eventInterval)) {
		g.suppressed.Add(1)
		return 0, false
	}
	return g.suppressed.Swap(0), true
}

// portErrors count a local port's TAP errors. Bumped only on error paths, by whichever
// goroutine met the error, so one shared atomic per port is cheap enough.
type portErrors struct {
	write atomic.Uint64 // failed writes: each dropped one frame (also counted as DropTAPWrite)
	read  atomic.Uint64 // failed reads: the port's reader stops at the first
}

// tapWriteFailed counts a failed TAP write against its port and logs it, at most once per
// eventInterval. It runs on the error path of a delivery: no allocation unless it logs.
func (v *VTEP) tapWriteFailed(t *tap, err error) {
	t.errs.write.Add(1)
	if n, ok := v.events.allow(eventTAPWrite); ok {
		v.log.Warn("tap write failed; frame dropped", "port", t.port.dev(), "err", err, "suppressed", n, portErrCause(err))
	}
}

// txFull logs frames of port t that found no room on the AF_XDP TX ring (counted as
// DropTxFull by the caller), at most once per eventInterval.
func (v *VTEP) txFull(t *tap, dropped int) {
	if n, ok := v.events.allow(eventTxFull); ok {
		v.log.Warn("af_xdp tx ring full; frames dropped", "port", t.port.dev(), "dropped", dropped, "suppressed", n)
	}
}

// frameTooBig logs a frame of size bytes dropped for being larger than limit (counted
// under d by the caller), at most once per eventInterval and reason, so that a flood of
// one reason hides no other. It came from local port t, or if t is nil from remote VTEP
// remote. No allocation unless it logs.
func (v *VTEP) frameTooBig(d Drop, t *tap, remote netip.Addr, size, limit int) {
	k := eventTooBig
	switch d {
	case DropInnerTooBig:
		k = eventInnerTooBig
	case DropTxTooLong:
		k = eventTxTooLong
	}
	n, ok := v.events.allow(k)
	if !ok {
		return
	}
	if t != nil {
		v.log.Warn("frame dropped for its size", "reason", d.String(), "port", t.port.dev(), "bytes", size, "limit", limit, "suppressed", n)
		return
	}
	v.log.Warn("frame dropped for its size", "reason", d.String(), "remote", remote, "bytes", size, "limit", limit, "suppressed", n)
}
