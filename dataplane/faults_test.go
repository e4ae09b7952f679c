//go:build linux

package dataplane

import (
	"io"
	"log/slog"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseFaults(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want faults
	}{
		{"stall=300ms", faults{stall: 300 * time.Millisecond, stallWorker: -1}},
		{"stall=2s, stall_worker=1", faults{stall: 2 * time.Second, stallWorker: 1}},
		{"stall=1m,release=/tmp/x", faults{stall: time.Minute, stallWorker: -1, release: "/tmp/x"}},
	} {
		got, err := parseFaults(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("parseFaults(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "stall", "stall=0s", "stall=-1s", "stall=soon", "stall_worker=1",
		"stall=1s,stall_worker=-1", "stall=1s,stall_worker=x", "stall=1s,drop=1", "stall=1s,release="} {
		if f, err := parseFaults(bad); err == nil || !strings.Contains(err.Error(), FaultsEnv) {
			t.Errorf("parseFaults(%q) = %+v, %v; want an error naming %s", bad, f, err, FaultsEnv)
		}
	}
}

// TestWorkerFuncUnarmed checks that without FaultsEnv the worker pool runs v.process itself,
// so fault injection costs the packet path nothing, and that with it the pool gets a wrapper.
func TestWorkerFuncUnarmed(t *testing.T) {
	v := &VTEP{cfg: &Config{Workers: 2}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	t.Setenv(FaultsEnv, "") // restored when the test ends
	os.Unsetenv(FaultsEnv)
	fn, err := v.workerFunc()
	if err != nil {
		t.Fatal(err)
	}
	if reflect.ValueOf(fn).Pointer() != reflect.ValueOf(v.process).Pointer() {
		t.Error("without faults armed, the workers do not run v.process directly")
	}
	os.Setenv(FaultsEnv, "stall=1ms")
	if fn, err = v.workerFunc(); err != nil {
		t.Fatal(err)
	}
	if reflect.ValueOf(fn).Pointer() == reflect.ValueOf(v.process).Pointer() {
		t.Error("with a stall armed, the workers run v.process unwrapped")
	}
	os.Setenv(FaultsEnv, "stall=1ms,stall_worker=2")
	if _, err := v.workerFunc(); err == nil {
		t.Error("stall_worker beyond the workers accepted")
	}
}
