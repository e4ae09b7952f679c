package bench

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/vxdp/vxdp/internal/topo"
)

// fragDrainMax bounds the wait for IP fragments a block left waiting for reassembly: the
// kernel's default net.ipv4.ipfrag_time (30 s), after which it drops them, and a margin.
// The benchmark's namespaces have fragTime instead, so the wait is a few seconds.
const fragDrainMax = 35 * time.Second

// fragTime is the ipfrag_time (and ip6frag_time) of the benchmark's namespaces, in
// seconds, in place of the kernel's 30: how long an incomplete datagram waits for its
// missing fragments. The fragments of one datagram arrive within microseconds of each
// other here, so 3 s changes no reassembly that can still succeed; it only lets a lossy
// block's leftovers expire in 3 s instead of 30 before the next block (drainFragments),
// which took 26 s after each such block, two thirds of the quick plan's time.
const fragTime = 3

// setFragTime sets ipfrag_time and ip6frag_time to fragTime in every namespace of the
// topology: they are per-namespace settings, gone with the namespaces.
func (b *bencher) setFragTime(ctx context.Context) error {
	script := fmt.Sprintf("echo %d > /proc/sys/net/ipv4/ipfrag_time && echo %d > /proc/sys/net/ipv6/ip6frag_time", fragTime, fragTime)
	for _, ns := range []topo.NS{b.tp.HostA, b.tp.HostB, b.tp.ContainerA, b.tp.ContainerB} {
		if _, err := ns.Run(ctx, "sh", "-c", script); err != nil {
			return fmt.Errorf("set fragment timeout in %s: %w", ns, err)
		}
	}
	return nil
}

// fragPoll is how often drainFragments looks again.
const fragPoll = 500 * time.Millisecond

// drainFragments waits until no namespace of the topology holds IPv4 or IPv6 fragments
// waiting for reassembly, for at most fragDrainMax, and returns how long it waited. A lossy
// run of fragmented UDP (the 8 KB datagrams) leaves incomplete datagrams in the receiver's
// namespace for ipfrag_time, up to ipfrag_high_thresh of memory; while they are there the
// kernel drops every new fragment, so the next block's fragmented UDP would move nothing,
// whatever carries it. The namespaces live for the whole run, so a block must not inherit
// them.
func (b *bencher) drainFragments(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	for {
		held := 0
		for _, ns := range []topo.NS{b.tp.HostA, b.tp.HostB, b.tp.ContainerA, b.tp.ContainerB} {
			out, err := ns.Run(ctx, "cat", "/proc/net/sockstat", "/proc/net/sockstat6")
			if err != nil {
				return time.Since(start), fmt.Errorf("read fragments in %s: %w", ns, err)
			}
			n, err := parseFragInuse(out)
			if err != nil {
				return time.Since(start), fmt.Errorf("read fragments in %s: %w", ns, err)
			}
			held += n
		}
		waited := time.Since(start)
		if held == 0 {
			return waited, nil
		}
		if waited >= fragDrainMax {
			return waited, fmt.Errorf("%d IP fragments still wait for reassembly after %v", held, waited.Round(time.Second))
		}
		select {
		case <-ctx.Done():
			return waited, ctx.Err()
		case <-time.After(fragPoll):
		}
	}
}

// parseFragInuse sums the "inuse" counts of the FRAG (IPv4) and FRAG6 (IPv6) lines of
// /proc/net/sockstat and sockstat6: the datagrams waiting for reassembly.
func parseFragInuse(text string) (int, error) {
	sum, seen := 0, false
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || (f[0] != "FRAG:" && f[0] != "FRAG6:") {
			continue
		}
		if f[1] != "inuse" {
			return 0, fmt.Errorf("parse sockstat: %w: %q", errProcFormat, line)
		}
		n, err := strconv.Atoi(f[2])
		if err != nil || n < 0 {
			return 0, fmt.Errorf("parse sockstat: %w: %q", errProcFormat, line)
		}
		sum += n
		seen = true
	}
	if !seen {
		return 0, fmt.Errorf("parse sockstat: %w: no FRAG line", errProcFormat)
	}
	return sum, nil
}
