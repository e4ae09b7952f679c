//go:build linux

package bench

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/vxdp/vxdp/internal/topo"
)

// snapshot is the machine's CPU, softirq and interrupt counters and one
// namespace's SNMP counters at one moment. The CPU and interrupt counters
// are the whole machine's: both hosts, both containers and iperf3 share its
// cores.
type snapshot struct {
	at       time.Time
	cpu      []cpuTimes
	softirqs map[string][]uint64
	irqs     map[string][]uint64
	net      map[string]int64
	// taskNanos is the root cgroup's CPU time, if ok: every task's run time in ns.
	taskNanos uint64
	taskOK    bool
}

// takeSnapshot reads /proc/stat, /proc/softirqs and /proc/interrupts, and
// /proc/net/netstat and /proc/net/snmp as ns sees them.
func takeSnapshot(ns topo.NS) (snapshot, error) {
	s := snapshot{at: time.Now()}
	text, err := os.ReadFile("/proc/stat")
	if err == nil {
		s.cpu, err = parseStat(string(text))
	}
	if err != nil {
		return s, fmt.Errorf("take snapshot: %w", err)
	}
	if text, err = os.ReadFile("/proc/softirqs"); err == nil {
		s.softirqs, err = parseSoftirqs(string(text))
	}
	if err != nil {
		return s, fmt.Errorf("take snapshot: %w", err)
	}
	if text, err = os.ReadFile("/proc/interrupts"); err == nil {
		s.irqs, err = parseInterrupts(string(text))
	}
	if err != nil {
		return s, fmt.Errorf("take snapshot: %w", err)
	}
	s.taskNanos, s.taskOK = readCgroupCPU()
	s.net, err = readNetCounters(ns)
	if err != nil {
		return s, fmt.Errorf("take snapshot: %w", err)
	}
	return s, nil
}

// readNetCounters reads the SNMP counters of namespace ns. /proc/thread-self
// shows the namespace of the calling thread, which ns.Do switches, so no
// process is forked.
func readNetCounters(ns topo.NS) (map[string]int64, error) {
	var netstat, snmp []byte
	err := ns.Do(func() error {
		var err1, err2 error
		netstat, err1 = os.ReadFile("/proc/thread-self/net/netstat")
		snmp, err2 = os.ReadFile("/proc/thread-self/net/snmp")
		return errors.Join(err1, err2)
	})
	if err != nil {
		return nil, fmt.Errorf("read counters of %s: %w", ns, err)
	}
	m, err := parseNetstat(string(netstat))
	if err != nil {
		return nil, err
	}
	m2, err := parseNetstat(string(snmp))
	if err != nil {
		return nil, err
	}
	for k, v := range m2 {
		m[k] = v
	}
	return m, nil
}

// delta fills run's CPU, softirq, interrupt and SNMP fields with the change
// from before to s.
func (s snapshot) delta(before snapshot, run *Measurement) {
	run.CPU = cpuDelta(before.cpu, s.cpu)
	if before.taskOK && s.taskOK {
		run.BusySeconds, run.BusySource = float64(sub(s.taskNanos, before.taskNanos))/1e9, "cgroup"
	} else {
		run.BusySeconds, run.BusySource = busySeconds(before.cpu, s.cpu), "proc-stat"
	}
	run.NetRx = countDelta(before.softirqs["NET_RX"], s.softirqs["NET_RX"])
	run.NetTx = countDelta(before.softirqs["NET_TX"], s.softirqs["NET_TX"])
	run.IRQs = countDelta(sumRows(before.irqs), sumRows(s.irqs))
	run.IPIs = countDelta(before.irqs["CAL"], s.irqs["CAL"])
	run.Net = make(map[string]int64, len(netCounters))
	for _, k := range netCounters {
		if v, ok := s.net[k]; ok {
			run.Net[k] = v - before.net[k]
		}
	}
}

// Where the root cgroup says how much CPU time every task has had: cgroup v1's cpuacct
// controller in nanoseconds, cgroup v2's cpu.stat in microseconds.
const (
	cgroupV1CPU = "/sys/fs/cgroup/cpuacct/cpuacct.usage"
	cgroupV2CPU = "/sys/fs/cgroup/cpu.stat"
)

// readCgroupCPU returns the root cgroup's CPU time in nanoseconds, and whether either
// file had it.
func readCgroupCPU() (uint64, bool) {
	if b, err := os.ReadFile(cgroupV1CPU); err == nil {
		if n, ok := parseCPUAcct(string(b)); ok {
			return n, true
		}
	}
	if b, err := os.ReadFile(cgroupV2CPU); err == nil {
		if n, ok := parseCPUStat(string(b)); ok {
			return n, true
		}
	}
	return 0, false
}
