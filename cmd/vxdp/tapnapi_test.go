//go:build linux

package main

import (
	"context"
	"testing"
	"time"

	"github.com/vxdp/vxdp/internal/topo"
)

// TestTAPNAPI runs vxdp with tap_napi: the TAP it creates gets a threaded NAPI (a kernel
// thread of its own, read back in the container's sysfs) and carries traffic both ways;
// and a TAP without one, left by a vxdp that ran without tap_napi, is threaded by the
// next vxdp that takes it over, from inside the container's namespace.
func TestTAPNAPI(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	threaded := func(t *testing.T, tp *topo.Topology, want bool) {
		t.Helper()
		got, err := topo.ThreadedNAPI(ctx, tp.ContainerB, "eth0")
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("container eth0's NAPI threaded: %v, want %v", got, want)
		}
	}
	t.Run("created", func(t *testing.T) {
		tp, _ := kernelToVXDP(t, "tnapc", "tap_napi: true\n")
		threaded(t, tp, true)
		checkTransfer(t, tp, topo.SideA, 4<<20)
		checkTransfer(t, tp, topo.SideB, 4<<20)
	})
	t.Run("takenOver", func(t *testing.T) {
		tp := newTopology(t, "tnapt")
		tp.KeepPorts = true
		if err := tp.KernelVXLAN(ctx, topo.SideA); err != nil {
			t.Fatal(err)
		}
		v := startVXDP(t, tp, topo.SideB)
		waitRunning(t, tp.HostB)
		threaded(t, tp, false)
		if err := v.Stop(); err != nil {
			t.Fatalf("vxdp exit: %v\n%s", err, v.Log())
		}
		v, err := tp.RestartVXDP(ctx, topo.SideB, vxdpBinary, "tap_napi: true\n")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := v.Stop(); err != nil || t.Failed() {
				t.Logf("vxdp on host B: exit %v; log:\n%s", err, v.Log())
			}
		})
		waitRunning(t, tp.HostB)
		waitPing(t, tp.ContainerA, tp.OverlayB.Addr(), 5*time.Second)
		threaded(t, tp, true)
		checkTransfer(t, tp, topo.SideA, 4<<20)
	})
}

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
