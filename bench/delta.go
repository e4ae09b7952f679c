package bench

import (
	"fmt"
	"strings"
)

// cpuDelta returns each core's time split between two /proc/stat readings,
// in percent of the core's elapsed ticks. A core missing from either reading
// or with no ticks between them gets all zeros.
func cpuDelta(before, after []cpuTimes) []CoreCPU {
	n := min(len(before), len(after))
	out := make([]CoreCPU, n)
	for i := range n {
		b, a := before[i], after[i]
		total := float64(sub(a.total(), b.total()))
		if total == 0 {
			continue
		}
		pct := func(x, y uint64) float64 { return 100 * float64(sub(x, y)) / total }
		out[i] = CoreCPU{
			User:    pct(a.User+a.Nice, b.User+b.Nice),
			System:  pct(a.System, b.System),
			IRQ:     pct(a.IRQ, b.IRQ),
			Softirq: pct(a.Softirq, b.Softirq),
			Steal:   pct(a.Steal, b.Steal),
			Idle:    pct(a.Idle+a.IOWait, b.Idle+b.IOWait),
		}
	}
	return out
}

// userHZ is the unit of the times in /proc/stat: USER_HZ, 100 on every architecture
// Linux runs on (the kernel exports no other value to userspace).
const userHZ = 100

// busySeconds returns the CPU time all cores spent busy between two /proc/stat
// readings, in seconds: user, nice, system, irq and softirq (guest time is inside
// user). Idle and iowait are no work, and steal is time the hypervisor gave to another
// machine. A core missing from either reading counts for nothing.
func busySeconds(before, after []cpuTimes) float64 {
	var ticks uint64
	for i := range min(len(before), len(after)) {
		b, a := before[i], after[i]
		ticks += sub(a.User+a.Nice+a.System+a.IRQ+a.Softirq, b.User+b.Nice+b.System+b.IRQ+b.Softirq)
	}
	return float64(ticks) / userHZ
}

// countDelta returns after - before per element; a counter that went
// backwards (a CPU that went offline and back) counts as 0.
func countDelta(before, after []uint64) []uint64 {
	n := min(len(before), len(after))
	out := make([]uint64, n)
	for i := range n {
		out[i] = sub(after[i], before[i])
	}
	return out
}

// sub is a - b, or 0 when the counter went backwards.
func sub(a, b uint64) uint64 {
	if a < b {
		return 0
	}
	return a - b
}

// cpuMask returns the rps_cpus bitmap of CPUs 0 to n-1: hexadecimal, in
// comma-separated 32-bit groups, most significant first.
func cpuMask(n int) string {
	if n < 1 {
		n = 1
	}
	var groups []string
	for lo := 0; lo < n; lo += 32 {
		bits := min(n-lo, 32)
		groups = append([]string{fmt.Sprintf("%x", uint64(1)<<bits-1)}, groups...)
	}
	return strings.Join(groups, ",")
}
