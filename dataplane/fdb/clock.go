package fdb

import (
	"context"
	"sync/atomic"
	"time"
)

// ClockTick is how often Clock.Run advances the clock: its resolution, and the finest ageing
// time that means anything.
const ClockTick = time.Second

// Clock is a coarse clock in whole seconds for Learn and Expire: Now is one atomic load, cheap
// enough per packet, where time.Now costs a vDSO call. It counts seconds of the monotonic clock
// since NewClock, so wall-clock steps do not age entries; Run advances it, and until Run's
// next tick it lags real time by less than ClockTick. One Clock serves every Table of a node.
type Clock struct {
	now   atomic.Uint32
	start time.Time
}

// NewClock returns a Clock reading 0.
func NewClock() *Clock { return &Clock{start: time.Now()} }

// Now returns the seconds elapsed since NewClock, as of the last tick of Run (or Update).
func (c *Clock) Now() uint32 { return c.now.Load() }

// Update sets the clock from the monotonic time now; Run calls it every ClockTick.
func (c *Clock) Update() { c.now.Store(uint32(time.Since(c.start) / time.Second)) }

// Run advances the clock every ClockTick until ctx is done. Start it once, in its own goroutine.
func (c *Clock) Run(ctx context.Context) {
	tick := time.NewTicker(ClockTick)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			c.Update()
		}
	}
}
