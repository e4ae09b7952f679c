//go:build linux

package main

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestTAPIOUring runs vxdp behind the kernel's vxlan with tap_io_uring on (the default) and
// off. On, every frame the queues' mergers delivered to the TAP went through io_uring
// batches; off, none did, and the traffic flows all the same.
func TestTAPIOUring(t *testing.T) {
	needRoot(t)
	for _, tc := range []struct {
		name, tag, extra string
		on               bool
	}{
		{"On", "uron", "", true},
		{"Off", "urof", "tap_io_uring: false\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tp, v := kernelToVXDP(t, tc.tag, tc.extra)
			const pings = 20
			for range pings {
				if _, err := tp.ContainerA.Ping(context.Background(), tp.OverlayB.Addr()); err != nil {
					t.Fatal(err)
				}
			}
			time.Sleep(200 * time.Millisecond) // the merger may still be counting the last reply's micro-flow
			m := scrapeAdmin(t, tp.HostB)
			frames := sum(m, "vxdp_tap_io_uring_frames_total")
			batches := sum(m, "vxdp_tap_io_uring_batches_total")
			delivered := sum(m, "vxdp_queue_delivered_packets_total")
			t.Logf("delivered %v, through io_uring %v frames in %v batches", delivered, frames, batches)
			if delivered < pings {
				t.Errorf("the queues delivered %v frames, want at least the %d echo requests", delivered, pings)
			}
			if tc.on && (frames != delivered || batches < 1 || batches > frames) {
				t.Errorf("tap_io_uring on: %v frames in %v batches through io_uring, want all %v delivered", frames, batches, delivered)
			}
			if !tc.on && (frames != 0 || batches != 0) {
				t.Errorf("tap_io_uring off: %v frames in %v batches through io_uring, want none", frames, batches)
			}
			if want := "tap_io_uring=" + map[bool]string{true: "true", false: "false"}[tc.on]; !strings.Contains(v.Log(), want) {
				t.Errorf("the log's start line lacks %s", want)
			}
		})
	}
}
