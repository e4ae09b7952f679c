//go:build linux

package main

import (
	"context"
	"testing"

	"github.com/vxdp/vxdp/internal/topo"
)

// TestRunToCompletion checks that at a rate one core keeps up with (pings) the queue
// reader runs the micro-flows to completion itself, counted as worker "reader", and that
// with run_to_completion: false every micro-flow takes the worker pool, and traffic flows
// both ways either way.
func TestRunToCompletion(t *testing.T) {
	needRoot(t)
	for _, tc := range []struct {
		name, extra string
		inline      bool
	}{
		{"default", "", true},
		{"off", "run_to_completion: false\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tp, _ := kernelToVXDP(t, "rtc"+tc.name[:1], tc.extra)
			ctx := context.Background()
			for range 20 {
				if _, err := tp.ContainerA.Ping(ctx, tp.OverlayB.Addr()); err != nil {
					t.Fatal(err)
				}
			}
			checkTransfer(t, tp, topo.SideA, 1<<20)
			m := scrapeAdmin(t, tp.HostB)
			reader := m.get("vxdp_worker_microflows_total", "worker", "reader")
			all := 0.0
			for _, w := range m.labelValues("vxdp_worker_microflows_total", "worker") {
				all += m.get("vxdp_worker_microflows_total", "worker", w)
			}
			t.Logf("micro-flows: %.0f, run to completion by the reader: %.0f", all, reader)
			if tc.inline && reader < 20 {
				t.Errorf("the reader ran %.0f micro-flows to completion after 20 pings; want at least 20", reader)
			}
			if !tc.inline && reader != 0 {
				t.Errorf("run_to_completion: false, yet the reader ran %.0f micro-flows itself", reader)
			}
			if all-reader < 1 && !tc.inline {
				t.Errorf("run_to_completion: false and the workers processed nothing")
			}
		})
	}
}
