package bench

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testdata files are this machine's /proc files (Linux 6.18, 2 CPUs), saved
// once.
func readTestdata(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParseStat(t *testing.T) {
	cpus, err := parseStat(readTestdata(t, "stat.txt"))
	if err != nil {
		t.Fatal(err)
	}
	want := []cpuTimes{
		{User: 39689, System: 5556, Idle: 104573, IOWait: 263, Softirq: 60, Steal: 352},
		{User: 38785, System: 5417, Idle: 105722, IOWait: 106, Softirq: 76, Steal: 298},
	}
	if len(cpus) != len(want) {
		t.Fatalf("parsed %d CPUs, want %d", len(cpus), len(want))
	}
	for i := range want {
		if cpus[i] != want[i] {
			t.Errorf("cpu%d = %+v, want %+v", i, cpus[i], want[i])
		}
	}
	if got := cpus[0].total(); got != 39689+5556+104573+263+60+352 {
		t.Errorf("cpu0 total = %d", got)
	}
}

func TestParseStatGaps(t *testing.T) {
	// CPU 1 offline: no line; CPU 2 fills index 2.
	cpus, err := parseStat("cpu 1 2 3 4 5 6 7 8\ncpu0 1 0 0 9 0 0 0 0 0 0\ncpu2 5 0 0 1 0 0 0 0\nintr 5\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(cpus) != 3 || cpus[0].User != 1 || cpus[1] != (cpuTimes{}) || cpus[2].User != 5 || cpus[2].Idle != 1 {
		t.Errorf("parsed %+v", cpus)
	}
}

func TestParseStatErrors(t *testing.T) {
	for name, text := range map[string]string{
		"empty":        "",
		"no cpu lines": "cpu 1 2 3 4 5 6 7 8\nintr 1\n",
		"short line":   "cpu0 1 2 3\n",
		"not a number": "cpu0 1 2 x 4 5 6 7 8\n",
		"bad cpu":      "cpuX 1 2 3 4 5 6 7 8\n",
		"huge cpu":     "cpu99999999 1 2 3 4 5 6 7 8\n",
	} {
		if _, err := parseStat(text); !errors.Is(err, errProcFormat) {
			t.Errorf("%s: err = %v, want errProcFormat", name, err)
		}
	}
}

func TestParseSoftirqs(t *testing.T) {
	rows, err := parseSoftirqs(readTestdata(t, "softirqs.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if got := rows["NET_RX"]; len(got) != 2 || got[0] != 121942 || got[1] != 8960 {
		t.Errorf("NET_RX = %v, want [121942 8960]", got)
	}
	if got := rows["NET_TX"]; len(got) != 2 || got[0] != 525 || got[1] != 712 {
		t.Errorf("NET_TX = %v, want [525 712]", got)
	}
	if len(rows) != 10 {
		t.Errorf("parsed %d softirq rows, want 10", len(rows))
	}
	if _, err := parseSoftirqs("CPU0\nTIMER: 1\n"); !errors.Is(err, errProcFormat) {
		t.Errorf("no NET_RX: err = %v", err)
	}
}

func TestParseInterrupts(t *testing.T) {
	rows, err := parseInterrupts(readTestdata(t, "interrupts.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if got := rows["LOC"]; len(got) != 2 || got[0] != 1437930 || got[1] != 1567532 {
		t.Errorf("LOC = %v", got)
	}
	if got := rows["CAL"]; len(got) != 2 || got[0] != 109819 || got[1] != 78793 {
		t.Errorf("CAL = %v", got)
	}
	if got := rows["36"]; len(got) != 2 || got[1] != 61163 {
		t.Errorf("IRQ 36 = %v", got)
	}
	if _, ok := rows["ERR"]; ok {
		t.Error("ERR, which has one count for all CPUs, parsed as a per-CPU row")
	}
	if got := sumRows(rows); len(got) != 2 || got[0] != 1711915 || got[1] != 1848235 {
		t.Errorf("total = %v, want [1711915 1848235]", got)
	}
	for name, text := range map[string]string{
		"empty":      "",
		"bad header": "foo bar\n 1: 2 3\n",
		"no rows":    "CPU0 CPU1\n",
	} {
		if _, err := parseInterrupts(text); !errors.Is(err, errProcFormat) {
			t.Errorf("%s: err = %v, want errProcFormat", name, err)
		}
	}
}

func TestParseNetstat(t *testing.T) {
	m, err := parseNetstat(readTestdata(t, "netstat.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]int64{"TcpExt.TCPOFOQueue": 0, "TcpExt.DelayedACKs": 8} {
		if got, ok := m[k]; !ok || got != want {
			t.Errorf("%s = %d (present %v), want %d", k, got, ok, want)
		}
	}
	snmp, err := parseNetstat(readTestdata(t, "snmp.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if got := snmp["Tcp.MaxConn"]; got != -1 {
		t.Errorf("Tcp.MaxConn = %d, want -1", got)
	}
	if got := snmp["Udp.InDatagrams"]; got != 29 {
		t.Errorf("Udp.InDatagrams = %d, want 29", got)
	}
	for _, k := range netCounters {
		if _, ok := m[k]; !ok {
			if _, ok := snmp[k]; !ok {
				t.Errorf("netCounters has %s, which neither file on this kernel has", k)
			}
		}
	}
	for name, text := range map[string]string{
		"empty":          "",
		"prefix differs": "Tcp: A B\nUdp: 1 2\n",
		"count differs":  "Tcp: A B\nTcp: 1\n",
		"not a number":   "Tcp: A\nTcp: x\n",
		"odd lines":      "Tcp: A\n",
	} {
		if _, err := parseNetstat(text); !errors.Is(err, errProcFormat) {
			t.Errorf("%s: err = %v, want errProcFormat", name, err)
		}
	}
}

// vxdpLog is the tail of a real vxdp log (text handler).
const vxdpLog = `time=2026-11-22T02:51:38.998Z level=INFO msg="vxdp running" underlay=ethB queues=2
time=2026-11-22T02:51:40.123Z level=INFO msg=counters rx_packets=1130322 tx_packets=63381 delivered=1130322 from_ports=63381 learned=3
`

func TestParseVXDPCounters(t *testing.T) {
	m, ok := parseVXDPCounters(vxdpLog)
	if !ok {
		t.Fatal("no counters found")
	}
	want := map[string]int64{"rx_packets": 1130322, "tx_packets": 63381, "delivered": 1130322, "from_ports": 63381, "learned": 3}
	if len(m) != len(want) {
		t.Errorf("counters = %v, want %v", m, want)
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %d, want %d", k, m[k], v)
		}
	}
	// The last counters line wins.
	m, _ = parseVXDPCounters(vxdpLog + "msg=counters rx_packets=7\n")
	if m["rx_packets"] != 7 || len(m) != 1 {
		t.Errorf("last line: %v", m)
	}
	if _, ok := parseVXDPCounters("level=INFO msg=\"vxdp running\"\n"); ok {
		t.Error("found counters in a log without them")
	}
}

func TestDeltas(t *testing.T) {
	before := []cpuTimes{{User: 100, System: 100, Idle: 100}, {Idle: 50}}
	after := []cpuTimes{{User: 110, Nice: 10, System: 120, Idle: 140, IOWait: 10, Softirq: 10}, {Idle: 50}}
	got := cpuDelta(before, after)
	want := CoreCPU{User: 20, System: 20, Softirq: 10, Idle: 50}
	if len(got) != 2 || got[0] != want || got[1] != (CoreCPU{}) {
		t.Errorf("cpuDelta = %+v, want [%+v {}]", got, want)
	}
	if got[0].Busy() != 50 {
		t.Errorf("Busy = %v, want 50", got[0].Busy())
	}
	// Core 0: 10 user + 10 nice + 20 system + 10 softirq ticks; idle and iowait are not
	// work; core 1 did nothing. 50 ticks of USER_HZ (100) are 0.5 s.
	if got := busySeconds(before, after); got != 0.5 {
		t.Errorf("busySeconds = %v, want 0.5", got)
	}
	stolen := []cpuTimes{{User: 100, IRQ: 5, Steal: 500}}
	if got := busySeconds([]cpuTimes{{User: 90, IRQ: 0, Steal: 0}}, stolen); got != 0.15 {
		t.Errorf("busySeconds with steal = %v, want 0.15 (10 user + 5 irq ticks, steal left out)", got)
	}
	if got := busySeconds(after, before); got != 0 {
		t.Errorf("busySeconds of counters going backwards = %v, want 0", got)
	}
	if d := countDelta([]uint64{5, 9, 1}, []uint64{8, 3}); len(d) != 2 || d[0] != 3 || d[1] != 0 {
		t.Errorf("countDelta = %v, want [3 0]", d)
	}
}

func TestCPUMask(t *testing.T) {
	for n, want := range map[int]string{0: "1", 1: "1", 2: "3", 4: "f", 6: "3f", 32: "ffffffff", 33: "1,ffffffff", 72: "ff,ffffffff,ffffffff"} {
		if got := cpuMask(n); got != want {
			t.Errorf("cpuMask(%d) = %q, want %q", n, got, want)
		}
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add(readTestdata(f, "stat.txt"))
	f.Add("cpu0 1 2 3 4 5 6 7 8\ncpu3 1 2 3 4 5 6 7 8 9 10\n")
	f.Add("cpu-1 1 2 3 4 5 6 7 8\n")
	f.Fuzz(func(t *testing.T, text string) {
		cpus, err := parseStat(text)
		if err != nil {
			return
		}
		if len(cpus) == 0 || len(cpus) > maxCPUs {
			t.Fatalf("%d CPUs without an error", len(cpus))
		}
		if !strings.Contains(text, "cpu") {
			t.Fatal("CPUs parsed from text without a cpu line")
		}
	})
}

func FuzzParseSoftirqs(f *testing.F) {
	f.Add(readTestdata(f, "softirqs.txt"))
	f.Add(readTestdata(f, "interrupts.txt"))
	f.Add("CPU0\nNET_RX: 1\n")
	f.Fuzz(func(t *testing.T, text string) {
		rows, err := parseSoftirqs(text)
		if err != nil {
			return
		}
		cpus := len(strings.Fields(strings.Split(text, "\n")[0]))
		for label, counts := range rows {
			if len(counts) != cpus {
				t.Fatalf("row %q has %d counts for %d CPUs", label, len(counts), cpus)
			}
		}
	})
}

func FuzzParseInterrupts(f *testing.F) {
	f.Add(readTestdata(f, "interrupts.txt"))
	f.Add("CPU0 CPU1\nERR: 0\nLOC: 1 2 Local\n")
	f.Fuzz(func(t *testing.T, text string) {
		rows, err := parseInterrupts(text)
		if err != nil {
			return
		}
		if len(rows) == 0 {
			t.Fatal("no rows without an error")
		}
		sum := sumRows(rows)
		for _, counts := range rows {
			if len(counts) != len(sum) {
				t.Fatalf("rows of %d and %d CPUs", len(counts), len(sum))
			}
		}
	})
}

func FuzzParseNetstat(f *testing.F) {
	f.Add(readTestdata(f, "netstat.txt"))
	f.Add(readTestdata(f, "snmp.txt"))
	f.Add("Tcp: A B\nTcp: 1 -2\n")
	f.Fuzz(func(t *testing.T, text string) {
		m, err := parseNetstat(text)
		if err != nil {
			return
		}
		for k := range m {
			prefix, name, ok := strings.Cut(k, ".")
			if !ok || prefix == "" || !strings.Contains(text, prefix+":") || !strings.Contains(text, name) {
				t.Fatalf("counter %q not backed by the input", k)
			}
		}
	})
}

func FuzzParseVXDPCounters(f *testing.F) {
	f.Add(vxdpLog)
	f.Add("msg=counters a=1 b=x =3 c=\n")
	f.Fuzz(func(t *testing.T, log string) {
		m, ok := parseVXDPCounters(log)
		if ok && !strings.Contains(log, "msg=counters") {
			t.Fatal("counters found without a msg=counters field")
		}
		for k := range m {
			if k == "" || !strings.Contains(log, k+"=") {
				t.Fatalf("counter %q not backed by the input", k)
			}
		}
	})
}

// TestCgroupCPU reads the root cgroup's CPU time in both cgroup versions' formats.
func TestCgroupCPU(t *testing.T) {
	if n, ok := parseCPUAcct("22590973394344\n"); !ok || n != 22590973394344 {
		t.Errorf("cpuacct.usage: %d %v", n, ok)
	}
	if _, ok := parseCPUAcct("lots\n"); ok {
		t.Error("cpuacct.usage: accepted a word")
	}
	stat := "usage_usec 123456789\nuser_usec 100\nsystem_usec 23\n"
	if n, ok := parseCPUStat(stat); !ok || n != 123456789000 {
		t.Errorf("cpu.stat: %d %v", n, ok)
	}
	if _, ok := parseCPUStat("user_usec 100\n"); ok {
		t.Error("cpu.stat without usage_usec accepted")
	}
}
