//go:build linux

package dataplane

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
)

// TestEventLogOncePerInterval checks that one line per kind goes out per interval, that the
// next one reports how many were held back, and that kinds do not share a limit.
func TestEventLogOncePerInterval(t *testing.T) {
	var l eventLog
	if n, ok := l.allow(eventTAPWrite); !ok || n != 0 {
		t.Fatalf("first event: allow %v, suppressed %d; want a line with none suppressed", ok, n)
	}
	for i := 0; i < 5; i++ {
		if _, ok := l.allow(eventTAPWrite); ok {
			t.Fatalf("event %d within the interval was let through", i+2)
		}
	}
	if _, ok := l.allow(eventTxFull); !ok {
		t.Fatal("another kind's first event was held back")
	}
	l.kinds[eventTAPWrite].next.Store(0) // the interval has passed
	if n, ok := l.allow(eventTAPWrite); !ok || n != 5 {
		t.Fatalf("after the interval: allow %v, suppressed %d; want a line reporting 5", ok, n)
	}
	if _, ok := l.allow(eventTAPWrite); ok {
		t.Fatal("a second line went out within the new interval")
	}
}

// TestEventLogConcurrent checks that of many goroutines hitting the same kind at once,
// exactly one gets the line and every other event is counted.
func TestEventLogConcurrent(t *testing.T) {
	var l eventLog
	var wg sync.WaitGroup
	var mu sync.Mutex
	lines := 0
	const goroutines, each = 8, 1000
	for range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				if _, ok := l.allow(eventTxFull); ok {
					mu.Lock()
					lines++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if got := l.kinds[eventTxFull].suppressed.Load(); lines != 1 || got != goroutines*each-1 {
		t.Fatalf("%d lines and %d suppressed, want 1 and %d (unless the test took over %v)",
			lines, got, goroutines*each-1, eventInterval)
	}
}

// TestTAPWriteFailedLogs checks the log line and the port's error count, and that a
// suppressed event allocates nothing: it runs on the error path of every delivery.
func TestTAPWriteFailedLogs(t *testing.T) {
	var buf bytes.Buffer
	v := &VTEP{log: slog.New(slog.NewTextHandler(&buf, nil))}
	tp := &tap{port: Port{TAP: "vxp7"}}
	werr := errors.New("write /dev/net/tun: input/output error")
	v.tapWriteFailed(tp, werr)
	line := buf.String()
	for _, want := range []string{"tap write failed", "port=vxp7", "input/output error", "suppressed=0"} {
		if !strings.Contains(line, want) {
			t.Errorf("log line %q lacks %q", line, want)
		}
	}
	v.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	if allocs := testing.AllocsPerRun(1000, func() { v.tapWriteFailed(tp, werr) }); allocs != 0 {
		t.Errorf("a suppressed TAP write error allocates %v times", allocs)
	}
	if allocs := testing.AllocsPerRun(1000, func() { v.txFull(tp, 3) }); allocs != 0 {
		t.Errorf("a suppressed TX drop allocates %v times", allocs)
	}
	if got := tp.errs.write.Load(); got != 1+1001 {
		t.Errorf("port counts %d write errors, want %d", got, 1+1001)
	}
}

// TestFrameTooBigLogs checks the size drop's log line, from a port and from a remote, and
// that a suppressed one allocates nothing: it runs on the drop path of every such frame.
func TestFrameTooBigLogs(t *testing.T) {
	var buf bytes.Buffer
	v := &VTEP{log: slog.New(slog.NewTextHandler(&buf, nil))}
	tp := &tap{port: Port{TAP: "vxp7"}}
	v.frameTooBig(DropTooBig, tp, netip.Addr{}, 9015, 9014)
	line := buf.String()
	for _, want := range []string{"frame dropped for its size", "reason=too_big", "port=vxp7", "bytes=9015", "limit=9014", "suppressed=0"} {
		if !strings.Contains(line, want) {
			t.Errorf("log line %q lacks %q", line, want)
		}
	}
	remote := netip.MustParseAddr("192.0.2.9")
	buf.Reset()
	v.frameTooBig(DropInnerTooBig, nil, remote, 9000, 1464)
	if !strings.Contains(buf.String(), "reason=inner_too_big") {
		t.Errorf("a size drop of another reason within the interval was not logged: %q", buf.String())
	}
	if allocs := testing.AllocsPerRun(1000, func() { v.frameTooBig(DropInnerTooBig, nil, remote, 9000, 1464) }); allocs != 0 {
		t.Errorf("a suppressed size drop allocates %v times", allocs)
	}
	v.events.kinds[eventInnerTooBig].next.Store(0) // the interval has passed
	buf.Reset()
	v.frameTooBig(DropInnerTooBig, nil, remote, 9000, 1464)
	line = buf.String()
	for _, want := range []string{"reason=inner_too_big", "remote=192.0.2.9", "bytes=9000", "limit=1464", "suppressed=1001"} {
		if !strings.Contains(line, want) {
			t.Errorf("log line %q lacks %q", line, want)
		}
	}
}
