package bench

import (
	"errors"
	"fmt"
	"github.com/vxdp/vxdp/internal/topo"
	"slices"
	"strconv"
	"strings"
)

// errProcFormat reports /proc text of a shape the parsers do not know.
var errProcFormat = errors.New("unexpected /proc format")

// maxCPUs bounds the CPU numbers the parsers accept, so that a corrupt line
// cannot make them allocate without limit.
const maxCPUs = 8192

// cpuTimes is one core's time from /proc/stat, in clock ticks (USER_HZ).
// User includes guest time, as the kernel counts it.
type cpuTimes struct {
	User, Nice, System, Idle, IOWait, IRQ, Softirq, Steal uint64
}

// total is the core's whole time: every state but guest, which User holds.
func (c cpuTimes) total() uint64 {
	return c.User + c.Nice + c.System + c.Idle + c.IOWait + c.IRQ + c.Softirq + c.Steal
}

// parseStat reads the per-core "cpuN" lines of /proc/stat. The result is
// indexed by CPU number; a CPU that has no line (offline) is left zero. The
// aggregate "cpu" line and every other line are skipped.
func parseStat(text string) ([]cpuTimes, error) {
	var cpus []cpuTimes
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], "cpu") || f[0] == "cpu" {
			continue
		}
		n, err := strconv.Atoi(f[0][3:])
		if err != nil || n < 0 || n >= maxCPUs {
			return nil, fmt.Errorf("parse /proc/stat: %w: %q", errProcFormat, f[0])
		}
		// user nice system idle iowait irq softirq steal [guest guest_nice]
		if len(f) < 9 {
			return nil, fmt.Errorf("parse /proc/stat: %w: %d fields in %q", errProcFormat, len(f), line)
		}
		var v [8]uint64
		for i := range v {
			if v[i], err = strconv.ParseUint(f[i+1], 10, 64); err != nil {
				return nil, fmt.Errorf("parse /proc/stat: %w: %q", errProcFormat, line)
			}
		}
		for len(cpus) <= n {
			cpus = append(cpus, cpuTimes{})
		}
		cpus[n] = cpuTimes{User: v[0], Nice: v[1], System: v[2], Idle: v[3],
			IOWait: v[4], IRQ: v[5], Softirq: v[6], Steal: v[7]}
	}
	if len(cpus) == 0 {
		return nil, fmt.Errorf("parse /proc/stat: %w: no cpuN lines", errProcFormat)
	}
	return cpus, nil
}

// parsePerCPUTable reads a table of per-CPU counters with a header of CPU
// names, the shape of /proc/softirqs and /proc/interrupts: each row is
// "label:" then one count per CPU, then for interrupts a free-text
// description. Rows with fewer counts than CPUs (ERR, MIS) are skipped. The
// result maps each label to its counts, in header order.
func parsePerCPUTable(text, file string) (map[string][]uint64, error) {
	lines := strings.Split(text, "\n")
	header := strings.Fields(lines[0])
	if len(header) == 0 || len(header) > maxCPUs {
		return nil, fmt.Errorf("parse %s: %w: header %q", file, errProcFormat, lines[0])
	}
	for _, h := range header {
		if !strings.HasPrefix(h, "CPU") {
			return nil, fmt.Errorf("parse %s: %w: header %q", file, errProcFormat, lines[0])
		}
	}
	rows := make(map[string][]uint64)
	for _, line := range lines[1:] {
		label, rest, ok := strings.Cut(line, ":")
		label = strings.TrimSpace(label)
		if !ok || label == "" {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < len(header) {
			continue
		}
		counts := make([]uint64, len(header))
		valid := true
		for i := range counts {
			v, err := strconv.ParseUint(f[i], 10, 64)
			if err != nil {
				valid = false
				break
			}
			counts[i] = v
		}
		if valid {
			rows[label] = counts
		}
	}
	return rows, nil
}

// parseSoftirqs reads /proc/softirqs into a map from softirq name (NET_RX,
// NET_TX, ...) to per-CPU counts.
func parseSoftirqs(text string) (map[string][]uint64, error) {
	rows, err := parsePerCPUTable(text, "/proc/softirqs")
	if err != nil {
		return nil, err
	}
	if _, ok := rows["NET_RX"]; !ok {
		return nil, fmt.Errorf("parse /proc/softirqs: %w: no NET_RX row", errProcFormat)
	}
	return rows, nil
}

// parseInterrupts reads /proc/interrupts into a map from IRQ number or name
// (LOC, CAL, ...) to per-CPU counts.
func parseInterrupts(text string) (map[string][]uint64, error) {
	rows, err := parsePerCPUTable(text, "/proc/interrupts")
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("parse /proc/interrupts: %w: no rows", errProcFormat)
	}
	return rows, nil
}

// sumRows adds up the per-CPU counts of every row: the total per CPU.
func sumRows(rows map[string][]uint64) []uint64 {
	var sum []uint64
	for _, counts := range rows {
		for len(sum) < len(counts) {
			sum = append(sum, 0)
		}
		for i, c := range counts {
			sum[i] += c
		}
	}
	return sum
}

// parseNetstat parses /proc/net/netstat or /proc/net/snmp text into "Prefix.Name" keys
// (TcpExt.TCPOFOQueue); topo.ParseNetstat does the work, shared with the integration tests.
func parseNetstat(text string) (map[string]int64, error) {
	m, err := topo.ParseNetstat(text)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errProcFormat, err)
	}
	return m, nil
}

// parseVXDPCounters finds the last "msg=counters" line that vxdp's text log
// handler wrote on exit and returns its integer attributes (rx_packets,
// tx_packets, delivered, ...). Attributes that are not integers (time,
// level) are skipped; ok is false when there is no such line.
func parseVXDPCounters(log string) (counters map[string]int64, ok bool) {
	lines := strings.Split(log, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		f := strings.Fields(lines[i])
		if !slices.Contains(f, "msg=counters") {
			continue
		}
		counters = make(map[string]int64)
		for _, kv := range f {
			k, v, found := strings.Cut(kv, "=")
			if !found || k == "" {
				continue
			}
			if x, err := strconv.ParseInt(v, 10, 64); err == nil {
				counters[k] = x
			}
		}
		return counters, true
	}
	return nil, false
}

// netCounters are the receiver's SNMP counters every run records, from
// /proc/net/netstat and /proc/net/snmp of its namespace: out-of-order
// queueing and drops of TCP, UDP receive and buffer errors, and reassembly
// of the fragmented 8 KB datagrams.
var netCounters = []string{
	"TcpExt.TCPOFOQueue",
	"TcpExt.TCPOFODrop",
	"TcpExt.TCPOFOMerge",
	"TcpExt.TCPRcvQDrop",
	"Udp.InDatagrams",
	"Udp.InErrors",
	"Udp.RcvbufErrors",
	"Ip.ReasmReqds",
	"Ip.ReasmOKs",
	"Ip.ReasmFails",
}

// parseCPUAcct reads cpuacct.usage: one number, nanoseconds.
func parseCPUAcct(text string) (uint64, bool) {
	n, err := strconv.ParseUint(strings.TrimSpace(text), 10, 64)
	return n, err == nil
}

// parseCPUStat reads the usage_usec line of a cgroup v2 cpu.stat, in nanoseconds.
func parseCPUStat(text string) (uint64, bool) {
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == "usage_usec" {
			n, err := strconv.ParseUint(f[1], 10, 64)
			return n * 1000, err == nil
		}
	}
	return 0, false
}
