//go:build linux

package topo

import (
	"os"
	"testing"
	"time"
)

func TestParseStatCPU(t *testing.T) {
	// A command name with a space and a parenthesis, as /proc/PID/stat shows it.
	const stat = "4242 (vx (dp) x) S 1 4242 4242 0 -1 4194560 1000 0 0 0 150 75 0 0 20 0 9 0 123 456 789\n"
	got, err := parseStatCPU(stat)
	if err != nil {
		t.Fatal(err)
	}
	if want := 225 * clockTick; got != want {
		t.Errorf("cpu %v, want %v", got, want)
	}
	for _, bad := range []string{"", "1 (x) S 1 2", "1 (x) S 1 2 3 4 5 6 7 8 9 10 eleven 12"} {
		if _, err := parseStatCPU(bad); err == nil {
			t.Errorf("parsed %q", bad)
		}
	}
}

func TestReadProcSelf(t *testing.T) {
	// Burn some CPU so that it shows in whole ticks.
	for end := time.Now().Add(50 * time.Millisecond); time.Now().Before(end); {
	}
	s, err := ReadProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.RSS < 1<<20 || s.FDs < 3 || s.Threads < 1 || s.CPU < clockTick {
		t.Errorf("implausible numbers for this process: %+v", s)
	}
}
