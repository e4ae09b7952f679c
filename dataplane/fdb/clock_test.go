package fdb

import (
	"context"
	"testing"
	"time"
)

func TestClock(t *testing.T) {
	c := NewClock()
	if c.Now() != 0 {
		t.Fatalf("new clock reads %d", c.Now())
	}
	c.start = c.start.Add(-90 * time.Second)
	c.Update()
	if got := c.Now(); got != 90 {
		t.Fatalf("90 s after start the clock reads %d", got)
	}
	if n := testing.AllocsPerRun(100, func() { c.Now() }); n != 0 {
		t.Errorf("Now allocates %v times", n)
	}
}

func TestClockRun(t *testing.T) {
	c := NewClock()
	c.start = c.start.Add(-5 * time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() {
		c.Run(ctx)
		close(stopped)
	}()
	deadline := time.Now().Add(5 * ClockTick)
	for c.Now() < 5 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := c.Now(); got < 5 {
		t.Errorf("Run did not advance the clock: %d", got)
	}
	cancel()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}
