//go:build linux

package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vxdp/vxdp/internal/topo"
)

// The soak: vxdp carries iperf3 TCP and UDP at full rate, both ways, for soakEnv's
// duration (`make soak`: 5 minutes; `make test`: soakShort), while its resident memory is
// sampled from /proc, and must stay flat.
//
// What "flat" means here. vxdp allocates its memory up front: each queue's UMEM (16 MiB,
// mapped with MAP_POPULATE, so resident from the start), its rings, the reorder lines'
// micro-flows with their GRO buffers, the TAP readers' buffers; the packet path allocates
// nothing (checked with testing.AllocsPerRun in the dataplane's tests). RSS still moves
// after the start, for three bounded reasons: pages of those buffers that the traffic
// touches for the first time (the GRO buffers alone are 4 of 64 KB per reorder slot, some
// 8 MiB for two queues, filled as far as each super-frame reaches), the Go heap's swing
// between two collections (GOGC=100), and pages the runtime frees but returns to the
// kernel only gradually. Most of that happens in the warm-up, the rest is bounded. So:
// after the warm-up (the first fifth of the run, at least 5 s), the largest RSS sample of
// the second half must not exceed the largest of the first half by more than soakSlack.
// On the 2-core development machine 5-minute runs rose 0.7 MiB from half to half (the Go
// heap flat at 13-15 MiB), and 25-second ones 0.6 to 0.8 MiB (the README's Faults section
// has the numbers). At full rate vxdp handles some 100,000 frames and 1,500 to 2,000
// micro-flows a second there: a leak of 64 bytes per frame passes soakSlack within a
// second; one of 64 bytes per micro-flow (tried: a slice kept per micro-flow) rose 4.1 MiB
// from half to half in the 25-second run, just past soakSlack, and would go far beyond it
// in the 5-minute one.
const (
	soakEnv   = "VXDP_SOAK"
	soakShort = 25 * time.Second
	soakSlack = 4 << 20 // bytes
)

// rssSample is one reading of vxdp's /proc numbers during the soak.
type rssSample struct {
	at time.Duration // since the traffic started
	topo.ProcStats
	// heap is the Go heap in use (go_memstats_heap_inuse_bytes) on the samples that
	// scraped /metrics, 0 on the others: it tells the heap's growth from pages of
	// preallocated buffers (GRO, TAP reads) that the traffic touches for the first time.
	heap int64
}

// TestSoak runs the soak: see above. Throughput is logged, never judged.
func TestSoak(t *testing.T) {
	needRoot(t)
	length := soakShort
	if s := os.Getenv(soakEnv); s != "" {
		var err error
		if length, err = time.ParseDuration(s); err != nil || length < 10*time.Second {
			t.Fatalf("%s=%q: want a duration of at least 10s", soakEnv, s)
		}
	}
	// 25 to 60 samples: one every 1 s for the short run, every 5 s for the 5-minute one.
	interval := min(max(length/25, time.Second), 5*time.Second)
	warmup := max(length/5, 5*time.Second)
	phase := min(30*time.Second, length/4)

	ctx := context.Background()
	tp, v := kernelToVXDP(t, "soak", "")

	// Sample from the first byte of traffic on, and scrape /metrics every fifth sample (as
	// a Prometheus server would) for the Go heap's size.
	start := time.Now()
	var samples []rssSample
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for i := 0; ; i++ {
			p, err := topo.ReadProc(v.PID())
			if err != nil {
				t.Errorf("sample %d: %v", i, err)
				return
			}
			s := rssSample{at: time.Since(start), ProcStats: p}
			if i%5 == 0 {
				code, body, err := adminGet(tp.HostB, adminAddr, "/metrics")
				m, perr := parsePrometheus(string(body))
				if err != nil || code != 200 || perr != nil {
					t.Errorf("sample %d: /metrics: %d %v %v", i, code, err, perr)
					return
				}
				s.heap = int64(m["go_memstats_heap_inuse_bytes"])
			}
			samples = append(samples, s)
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()

	// Phases of two concurrent iperf3 runs, TCP one way and UDP at full rate (-b 0) the
	// other, turning around each phase, so that both of vxdp's directions carry both.
	a, b := tp.OverlayA.Addr().String(), tp.OverlayB.Addr().String()
	for n := 0; time.Since(start) < length-time.Second; n++ {
		d := min(phase, length-time.Since(start))
		tcp := topo.Iperf3{Server: tp.ContainerB, Client: tp.ContainerA, Addr: b, Duration: d}
		udp := topo.Iperf3{Server: tp.ContainerA, Client: tp.ContainerB, Addr: a, Duration: d, UDP: true, Bitrate: "0", Port: 5202}
		if n%2 == 1 {
			tcp.Server, tcp.Client, tcp.Addr = tp.ContainerA, tp.ContainerB, a
			udp.Server, udp.Client, udp.Addr = tp.ContainerB, tp.ContainerA, b
		}
		var tcpRes, udpRes topo.Iperf3Result
		var tcpErr, udpErr error
		var flows sync.WaitGroup
		flows.Add(2)
		go func() { defer flows.Done(); tcpRes, tcpErr = tcp.Run(ctx) }()
		go func() { defer flows.Done(); udpRes, udpErr = udp.Run(ctx) }()
		flows.Wait()
		if tcpErr != nil || udpErr != nil {
			close(stop)
			wg.Wait()
			t.Fatalf("phase %d: TCP %v; UDP %v", n, tcpErr, udpErr)
		}
		t.Logf("phase %d (%v): TCP %s to %s %.2f Gbit/s, %d retransmits; UDP %s to %s %.2f Gbit/s received, %d of %d lost",
			n, d.Round(time.Second), tcp.Client, tcp.Server, tcpRes.BitsPerSecond/1e9, tcpRes.Retransmits,
			udp.Client, udp.Server, udpRes.BitsPerSecond/1e9, udpRes.LostPackets, udpRes.Packets)
	}
	close(stop)
	wg.Wait()
	if t.Failed() {
		return
	}

	flat, report := judgeRSS(samples, warmup, soakSlack)
	t.Logf("vxdp's RSS over %v of traffic, sampled every %v (warm-up: the first %v):\n%s", length, interval, warmup, report)
	if !flat {
		t.Errorf("vxdp's memory is not flat after warm-up: see the samples above")
	}
	if first, last := firstAfter(samples, warmup), samples[len(samples)-1]; last.FDs != first.FDs {
		t.Errorf("open descriptors: %d after warm-up, %d at the end", first.FDs, last.FDs)
	}
	waitPing(t, tp.ContainerA, tp.OverlayB.Addr(), 5*time.Second)
	m := scrapeQuiet(t, tp.HostB)
	mf := sumSeries(m, "vxdp_worker_microflows_total")
	t.Logf("%.0f micro-flows (%.0f a second), %.0f frames taken from the underlay, %.0f read from the port",
		mf, mf/length.Seconds(), m["vxdp_underlay_received_packets_total"], sumSeries(m, "vxdp_port_read_packets_total"))
	checkAccounting(t, m)
	checkStop(t, tp, v)
}

// firstAfter returns the first sample taken after the warm-up.
func firstAfter(samples []rssSample, warmup time.Duration) rssSample {
	for _, s := range samples {
		if s.at >= warmup {
			return s
		}
	}
	return samples[len(samples)-1]
}

// judgeRSS decides whether the samples after warmup are flat: the largest RSS of the second
// half at most slack above the largest of the first. It returns a report of every sample
// and of the decision, for the test log and the issue.
func judgeRSS(samples []rssSample, warmup time.Duration, slack int64) (flat bool, report string) {
	var w strings.Builder
	var after []rssSample
	for _, s := range samples {
		heap := "    -    "
		if s.heap > 0 {
			heap = fmt.Sprintf("%5.1f MiB", mib(s.heap))
		}
		fmt.Fprintf(&w, "  %6.1fs  RSS %6.1f MiB  Go heap %s  %3d fds  %3d threads  %6.2fs cpu\n",
			s.at.Seconds(), mib(s.RSS), heap, s.FDs, s.Threads, s.CPU.Seconds())
		if s.at >= warmup {
			after = append(after, s)
		}
	}
	if len(after) < 4 {
		fmt.Fprintf(&w, "only %d samples after the warm-up: too few to judge", len(after))
		return false, w.String()
	}
	h1, h2 := after[:len(after)/2], after[len(after)/2:]
	max1, max2 := maxRSS(h1), maxRSS(h2)
	// Least-squares slope over the samples after warm-up: reported, not judged (GC makes
	// single samples noisy; the halves' maxima are what the verdict uses).
	var sx, sy, sxx, sxy float64
	for _, s := range after {
		x, y := s.at.Minutes(), mib(s.RSS)
		sx, sy, sxx, sxy = sx+x, sy+y, sxx+x*x, sxy+x*y
	}
	n := float64(len(after))
	slope := (n*sxy - sx*sy) / (n*sxx - sx*sx)
	if math.IsNaN(slope) {
		slope = 0
	}
	flat = max2 <= max1+slack
	fmt.Fprintf(&w, "after warm-up: first half max %.1f MiB (%d samples), second half max %.1f MiB (%d samples): %+.1f MiB, allowed %+.1f MiB; slope %+.2f MiB/min; flat: %v",
		mib(max1), len(h1), mib(max2), len(h2), mib(max2-max1), mib(slack), slope, flat)
	return flat, w.String()
}

func maxRSS(samples []rssSample) int64 {
	var m int64
	for _, s := range samples {
		m = max(m, s.RSS)
	}
	return m
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// TestJudgeRSS checks the soak's verdict on made-up samples: a warm-up that grows, then
// noise within the slack, is flat; a steady climb, or a step in the second half, is not.
func TestJudgeRSS(t *testing.T) {
	const slack = 4 << 20
	series := func(f func(i int) int64) []rssSample {
		var s []rssSample
		for i := 0; i < 60; i++ {
			s = append(s, rssSample{at: time.Duration(i) * 5 * time.Second, ProcStats: topo.ProcStats{RSS: f(i)}})
		}
		return s
	}
	base := int64(60 << 20)
	for _, tc := range []struct {
		name string
		f    func(i int) int64
		flat bool
	}{
		{"warm-up then flat", func(i int) int64 { return base + int64(min(i, 10))<<20 }, true},
		{"noise within the slack", func(i int) int64 { return base + int64(i%4)<<20 }, true},
		{"climbing 0.2 MiB a sample", func(i int) int64 { return base + int64(i)*(1<<20)/5 }, false},
		{"a step in the second half", func(i int) int64 {
			if i > 45 {
				return base + 5<<20
			}
			return base
		}, false},
	} {
		flat, report := judgeRSS(series(tc.f), time.Minute, slack)
		if flat != tc.flat {
			t.Errorf("%s: flat %v, want %v\n%s", tc.name, flat, tc.flat, report)
		}
	}
	if flat, _ := judgeRSS(series(func(int) int64 { return base })[:3], 0, slack); flat {
		t.Error("three samples judged flat")
	}
}
