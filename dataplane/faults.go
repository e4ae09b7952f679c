//go:build linux

package dataplane

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Fault injection, for tests only. The fault tests run the vxdp binary with FaultsEnv set
// in its environment; a vxdp started without it (as every deployment is) runs exactly
// the code it would without this file: the worker pool gets v.process itself, not a
// wrapper, so the packet path pays nothing, not even a branch.
//
// The one fault so far stalls an ingress worker: a worker that takes a micro-flow holding
// a frame with StallMarker in it (anywhere: in practice the payload of an inner UDP
// datagram) sleeps for the stall's duration before processing it, as a worker preempted
// or stuck on a slow page would. The test chooses which micro-flows stall by what it
// sends, and so when: a few marked datagrams in a stream (the reorder stage must hold the
// later micro-flows of that queue back, in order, and count their wait), or one marked
// datagram before a burst (a long stall holds the queue's frames until its fill ring runs
// dry; the test ends it by removing a release file once the burst is out, however long
// that took). The marked frames themselves are delivered as usual once the worker wakes.

// FaultsEnv is the environment variable that arms fault injection, read once as the
// dataplane is set up: a comma-separated list of key=value settings.
//
//	stall=DURATION   a worker that takes a micro-flow with StallMarker in it sleeps this long (Go syntax: 300ms)
//	stall_worker=N   only worker N stalls (default: whichever takes the marked micro-flow)
//	release=PATH     a stalled worker wakes early once the file PATH does not exist (checked every 10 ms)
const FaultsEnv = "VXDP_TEST_FAULTS"

// StallMarker marks the frames whose micro-flows a stall fault stalls.
const StallMarker = "vxdp-test-stall"

// faults are the armed faults; the zero value arms none.
type faults struct {
	stall       time.Duration
	stallWorker int    // -1: any worker
	release     string // "": none
}

// releasePoll is how often a stalled worker looks for the release file.
const releasePoll = 10 * time.Millisecond

// parseFaults reads a FaultsEnv value.
func parseFaults(s string) (faults, error) {
	f := faults{stallWorker: -1}
	for _, kv := range strings.Split(s, ",") {
		key, val, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return f, fmt.Errorf("%s: %q is not key=value", FaultsEnv, kv)
		}
		var err error
		switch key {
		case "stall":
			f.stall, err = time.ParseDuration(val)
			if err == nil && f.stall <= 0 {
				err = fmt.Errorf("not positive")
			}
		case "stall_worker":
			f.stallWorker, err = strconv.Atoi(val)
			if err == nil && f.stallWorker < 0 {
				err = fmt.Errorf("negative")
			}
		case "release":
			if f.release = val; val == "" {
				err = fmt.Errorf("empty path")
			}
		default:
			err = fmt.Errorf("unknown setting")
		}
		if err != nil {
			return f, fmt.Errorf("%s: %s=%q: %w", FaultsEnv, key, val, err)
		}
	}
	if f.stall == 0 {
		return f, fmt.Errorf("%s: %q arms no fault (want stall=DURATION)", FaultsEnv, s)
	}
	return f, nil
}

// workerFunc returns the function the worker pool runs on each micro-flow: v.process,
// wrapped in the faults FaultsEnv arms, if it is set.
func (v *VTEP) workerFunc() (func(worker int, mf *microflow), error) {
	env, ok := os.LookupEnv(FaultsEnv)
	if !ok {
		return v.process, nil
	}
	f, err := parseFaults(env)
	if err != nil {
		return nil, err
	}
	if f.stallWorker >= v.cfg.Workers {
		return nil, fmt.Errorf("%s: stall_worker=%d: there are %d workers", FaultsEnv, f.stallWorker, v.cfg.Workers)
	}
	v.log.Warn("fault injection armed: for tests only; the queue readers run nothing to completion", "env", FaultsEnv, "value", env)
	v.faulty = true
	marker := []byte(StallMarker)
	return func(worker int, mf *microflow) {
		if f.stallWorker < 0 || worker == f.stallWorker {
			for _, d := range mf.descs[:mf.n] {
				if bytes.Contains(mf.q.sock.Frame(d), marker) {
					v.log.Warn("fault injection: worker stalls", "worker", worker, "queue", mf.q.index, "for", f.stall.String())
					f.sleep()
					break
				}
			}
		}
		v.process(worker, mf)
	}, nil
}

// sleep stalls for f.stall, or until the release file is gone.
func (f *faults) sleep() {
	if f.release == "" {
		time.Sleep(f.stall)
		return
	}
	for end := time.Now().Add(f.stall); time.Now().Before(end); time.Sleep(releasePoll) {
		if _, err := os.Stat(f.release); errors.Is(err, os.ErrNotExist) {
			return
		}
	}
}
