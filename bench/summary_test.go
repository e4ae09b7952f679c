package bench

import (
	"bytes"
	"encoding/csv"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// testResults builds the results of a made-up run of 3 repetitions on
// native, kernel and vxdp, where vxdp's 64-byte UDP never worked.
func testResults() *Results {
	sweep := []string{"native", "kernel", "vxdp"}
	configs, _ := SelectConfigs(Configs(), sweep)
	plan := Plan{Mode: "test", Configs: configs, Reps: 3, Duration: 2 * time.Second,
		Workloads: []Workload{tcpFlows(1, nil), udpSize(UDPLength, nil), tcpFlows(4, sweep), udpSize(64, sweep)}}
	// Gbit/s by configuration and workload, one value per repetition.
	gbit := map[string]map[string][3]float64{
		"native": {"tcp": {10, 12, 11}, "udp": {4, 4, 4}, "tcp-P4": {20, 20, 20}, "udp-64": {0.1, 0.1, 0.1}},
		"kernel": {"tcp": {5, 6, 4}, "udp": {2, 2, 2}, "tcp-P4": {10, 10, 10}, "udp-64": {0.05, 0.05, 0.05}},
		"vxdp":   {"tcp": {10, 9, 8}, "udp": {3, 3, 3}, "tcp-P4": {15, 15, 15}},
	}
	start := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
	r := &Results{Plan: plan, Meta: Meta{Started: start, Finished: start.Add(90 * time.Second),
		Kernel: "6.18 test", Cores: 2, Iperf3: "iperf 3.12"}}
	at := start
	for rep := 1; rep <= 3; rep++ {
		for _, c := range plan.Configs {
			for _, w := range plan.Workloads {
				if !w.runsOn(c.Name) {
					continue
				}
				at = at.Add(2 * time.Second)
				m := Measurement{Rep: rep, Config: c.Name, Workload: w.Name, Start: at, Seconds: 2,
					CPU:   []CoreCPU{{User: 10, System: 20, Softirq: 30, Idle: 40}, {User: 5, Idle: 95}},
					NetRx: []uint64{2000, 10}, NetTx: []uint64{4, 0}, IRQs: []uint64{600, 400}, IPIs: []uint64{20, 2},
					Net: map[string]int64{"TcpExt.TCPOFOQueue": int64(rep)}}
				v, ok := gbit[c.Name][w.Name]
				if !ok {
					m.Error = "iperf3 client: unable to connect to server"
					m.CPU, m.NetRx, m.NetTx, m.IRQs, m.IPIs, m.Net = nil, nil, nil, nil, nil, nil
				} else {
					m.BitsPerSecond = v[rep-1] * 1e9
					m.Bytes = m.BitsPerSecond / 8 * 2
					if w.UDP {
						m.Packets, m.LostPackets = 1000, 10*rep
						m.PacketsPerSecond = m.BitsPerSecond / 8 / float64(w.Length)
					} else {
						m.Retransmits = rep
					}
				}
				r.Runs = append(r.Runs, m)
			}
			blk := Block{Rep: rep, Config: c.Name, SetupSeconds: 0.1, TeardownSeconds: 0.2}
			if c.UsesVXDP() {
				blk.VXDP = []VXDPCounters{{Side: "B", Counters: map[string]int64{"rx_packets": 100, "delivered": 99}}}
			}
			r.Blocks = append(r.Blocks, blk)
		}
	}
	return r
}

func TestWriteSummary(t *testing.T) {
	r := testResults()
	var b bytes.Buffer
	if err := r.WriteSummary(&b); err != nil {
		t.Fatal(err)
	}
	s := b.String()
	for _, want := range []string{
		"# vxdp benchmark, test plan, 2026-11-22 03:00 UTC",
		"3 repetitions: min–max, coverage 75.0 %",
		// tcp: median 9 of {10, 9, 8}; ratios to kernel {2, 1.5, 2}, to native {1, 0.75, 0.727};
		// 1, 2, 3 retransmits; OFO queue 1, 2, 3. kernel to native: paired {0.5, 0.5, 0.36}, not 5/11. udp: 3 Gbit/s, 1.5× kernel, 0.75× native,
		// 3e9/8/8192 = 45.8 kpps, loss {1, 2, 3} %.
		"| vxdp | 9 (8–10) | 2× | 0.750× | 2 (1–3) | 2 (1–3) | 3 | 1.50× | 0.750× | 45.8 | 2 (1–3) |",
		"| kernel | 5 (4–6) |  | 0.500× | 2 (1–3) | 2 (1–3) | 2 |  | 0.500× | 30.5 | 2 (1–3) |",
		// Flow sweep, Gbit/s then ratio to the kernel.
		"| flows | 1 | 4 |",
		"| native | 11 (10–12) | 20 |",
		"| vxdp | 2× | 1.50× |",
		// Size sweep: vxdp's 64-byte runs all failed.
		"| vxdp | — | 45.8 |",
		// CPU per core of single-flow TCP.
		"| native | 0 | 10.0 | 20.0 | 0.0 | 30.0 | 0.0 | 40.0 | 1000 | 2 | 300 | 10 |",
		"| native | 1 | 5.0 | 0.0 | 0.0 | 0.0 | 0.0 | 95.0 | 5 | 0 | 200 | 1 |",
		// vxdp counters.
		"| rep | configuration | host | delivered | rx_packets | error |",
		"| 2 | vxdp | B | 99 | 100 |  |",
		// Failures.
		"| 3 | vxdp | udp-64 | iperf3 client: unable to connect to server |",
		"|  | vxdp | udp-64 | no successful run |",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("summary lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("summary:\n%s", s)
	}
}

func TestCheck(t *testing.T) {
	r := testResults()
	err := r.Check()
	if !errors.Is(err, ErrMissing) || !strings.Contains(err.Error(), "vxdp/udp-64") {
		t.Errorf("Check = %v, want ErrMissing naming vxdp/udp-64", err)
	}
	if strings.Count(err.Error(), "/") != 1 {
		t.Errorf("Check names more than the one missing pair: %v", err)
	}
	// Drop the workload that failed: everything has numbers.
	r.Plan.Workloads = slices.DeleteFunc(r.Plan.Workloads, func(w Workload) bool { return w.Name == "udp-64" })
	if err := r.Check(); err != nil {
		t.Errorf("Check = %v, want nil", err)
	}
	// A configuration that never ran at all is missing too.
	r.Plan.Configs = append(r.Plan.Configs, Config{Name: "vxdp-both", A: OverlayVXDP, B: OverlayVXDP})
	if err := r.Check(); !errors.Is(err, ErrMissing) || !strings.Contains(err.Error(), "vxdp-both/tcp") {
		t.Errorf("Check = %v, want vxdp-both missing", err)
	}
}

func TestWriteCSV(t *testing.T) {
	r := testResults()
	var b bytes.Buffer
	if err := r.WriteCSV(&b); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&b).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(r.Runs)+1 {
		t.Fatalf("%d rows, want %d runs and a header", len(rows), len(r.Runs))
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	for _, h := range []string{"rep", "config", "workload", "bits_per_second", "cpu0_softirq", "cpu1_idle", "cpu0_net_rx", "cpu1_ipis", "TcpExt.TCPOFOQueue"} {
		if _, ok := col[h]; !ok {
			t.Errorf("no column %s in %v", h, rows[0])
		}
	}
	first := rows[1]
	if first[col["config"]] != "native" || first[col["workload"]] != "tcp" || first[col["bits_per_second"]] != "1e+10" ||
		first[col["cpu0_softirq"]] != "30" || first[col["cpu0_net_rx"]] != "2000" || first[col["TcpExt.TCPOFOQueue"]] != "1" ||
		first[col["protocol"]] != "tcp" || first[col["length"]] != "131072" || first[col["ok"]] != "true" {
		t.Errorf("first row %v", first)
	}
	for _, row := range rows[1:] {
		if row[col["config"]] == "vxdp" && row[col["workload"]] == "udp-64" {
			if row[col["ok"]] != "false" || row[col["bits_per_second"]] != "" || row[col["error"]] == "" {
				t.Errorf("failed run row %v", row)
			}
		}
	}
}

func TestJSONRoundTrip(t *testing.T) {
	r := testResults()
	path := filepath.Join(t.TempDir(), "results.json")
	if err := writeFile(path, r.WriteJSON); err != nil {
		t.Fatal(err)
	}
	got, err := ReadResults(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, r) {
		t.Errorf("read back differs:\n got %+v\nwant %+v", got.Plan, r.Plan)
	}
	if _, err := ReadResults(filepath.Join(t.TempDir(), "none.json")); err == nil {
		t.Error("ReadResults of a missing file: no error")
	}
}

func TestWriteFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	files, err := testResults().WriteFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"results.json", "results.csv", "summary.md", "flows.png", "sizes-kpps.png", "sizes-gbps.png", "cpu-tcp.png", "cpu-udp.png"}
	if !slices.Equal(files, want) {
		t.Errorf("wrote %v, want %v", files, want)
	}
	for _, f := range want {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Error(err)
			continue
		}
		if strings.HasSuffix(f, ".png") && !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) {
			t.Errorf("%s is not a PNG", f)
		}
		if len(b) < 100 {
			t.Errorf("%s has only %d bytes", f, len(b))
		}
	}
}

func TestPlan(t *testing.T) {
	full := FullPlan(Configs(), nil, nil)
	if err := full.validate(); err != nil {
		t.Fatal(err)
	}
	// 12 configurations × (tcp, udp) + 6 sweep configurations × (4 flow counts + 5 sizes)
	// + 3 local configurations × udp-64 + 8 efficiency configurations × 3 rates, 5 times.
	if want := (12*2 + 6*9 + 3 + 8*3) * 5; full.Runs() != want {
		t.Errorf("full plan: %d runs, want %d", full.Runs(), want)
	}
	quickConfigs, err := SelectConfigs(Configs(), QuickConfigs)
	if err != nil {
		t.Fatal(err)
	}
	// tcp, udp and udp-64 on each of the 8, and TCP at 2 Gbit/s on each of them too.
	quick := QuickPlan(quickConfigs, nil)
	if err := quick.validate(); err != nil {
		t.Fatal(err)
	}
	if got := quick.Runs(); got != 8*4 {
		t.Errorf("quick plan: %d runs, want %d", got, 8*4)
	}
	for _, w := range quick.Workloads {
		for _, c := range quick.Configs {
			if !w.runsOn(c.Name) {
				t.Errorf("quick plan: %s does not run on %s", w.Name, c.Name)
			}
		}
	}
	if o := full.order(1); o[0].Name != "kernel" || o[len(o)-1].Name != "native" {
		t.Errorf("repetition 2 order %v, want kernel first and native last", o)
	}
	var names []string
	for _, w := range full.Workloads {
		names = append(names, w.Name)
	}
	wantNames := []string{"tcp", "udp", "tcp-P2", "tcp-P4", "tcp-P8", "tcp-P16", "udp-64", "udp-256", "udp-1024", "udp-1400", "udp-4096",
		"tcp-2G", "udp-800M", "udp-64-40kpps"}
	if !slices.Equal(names, wantNames) {
		t.Errorf("workloads %v, want %v", names, wantNames)
	}
	// The efficiency rates: 2 Gbit/s of TCP, 0.8 Gbit/s of 8 KB UDP, 40000 datagrams of 64 B a second.
	rates := map[string]float64{}
	for _, w := range full.Workloads {
		rates[w.Name] = w.Rate
	}
	if rates["tcp-2G"] != 2e9 || rates["udp-800M"] != 8e8 || rates["udp-64-40kpps"] != 40000*64*8 || rates["tcp"] != 0 {
		t.Errorf("rates %v", rates)
	}
	for name, p := range map[string]Plan{
		"no reps":       {Configs: Configs(), Workloads: full.Workloads, Duration: time.Second},
		"short":         {Configs: Configs(), Workloads: full.Workloads, Reps: 1, Duration: time.Millisecond},
		"twice":         {Configs: append(Configs(), Configs()[0]), Workloads: full.Workloads, Reps: 1, Duration: time.Second},
		"bad steering":  {Configs: []Config{{Name: "x", A: OverlayKernel, B: OverlayVXDP, Steering: SteerRPS}}, Workloads: full.Workloads, Reps: 1, Duration: time.Second},
		"plus alone":    {Configs: []Config{{Name: "x", A: OverlayKernel, B: OverlayKernel, InContainer: true}}, Workloads: full.Workloads, Reps: 1, Duration: time.Second},
		"bad overlay":   {Configs: []Config{{Name: "x", A: "ovs", B: OverlayKernel}}, Workloads: full.Workloads, Reps: 1, Duration: time.Second},
		"comma name":    {Configs: []Config{{Name: "a,b", Native: true}}, Workloads: full.Workloads, Reps: 1, Duration: time.Second},
		"veth, no vxdp": {Configs: []Config{{Name: "x", A: OverlayKernel, B: OverlayKernel, Veth: true}}, Workloads: full.Workloads, Reps: 1, Duration: time.Second},
		"huge datagram": {Configs: Configs(), Workloads: []Workload{{Name: "u", UDP: true, Length: 70000, Parallel: 1}}, Reps: 1, Duration: time.Second},
		"no flows":      {Configs: Configs(), Workloads: []Workload{{Name: "t", Length: 100}}, Reps: 1, Duration: time.Second},
		"negative rate": {Configs: Configs(), Workloads: []Workload{{Name: "t", Length: 100, Parallel: 1, Rate: -1}}, Reps: 1, Duration: time.Second},
		"local, a on":   {Configs: []Config{{Name: "x", Local: true, A: OverlayKernel, B: OverlayVXDP}}, Workloads: full.Workloads, Reps: 1, Duration: time.Second},
		"local steer":   {Configs: []Config{{Name: "x", Local: true, B: OverlayKernel, Steering: SteerRPS}}, Workloads: full.Workloads, Reps: 1, Duration: time.Second},
		"bridge veth":   {Configs: []Config{{Name: "x", Local: true, B: OverlayKernel, VethServer: true}}, Workloads: full.Workloads, Reps: 1, Duration: time.Second},
		"veth srv, 2h":  {Configs: []Config{{Name: "x", A: OverlayKernel, B: OverlayVXDP, VethServer: true}}, Workloads: full.Workloads, Reps: 1, Duration: time.Second},
	} {
		if err := p.validate(); !errors.Is(err, ErrBadPlan) {
			t.Errorf("%s: validate = %v, want ErrBadPlan", name, err)
		}
	}
}

func TestConfigs(t *testing.T) {
	cs := Configs()
	var names []string
	for _, c := range cs {
		if err := c.validate(); err != nil {
			t.Error(err)
		}
		names = append(names, c.Name)
	}
	want := []string{"native", "kernel", "kernel-rps", "kernel-rps+", "kernel-rfs", "kernel-rfs+", "vxdp", "vxdp-send", "vxdp-both",
		"local-bridge", "local-tap", "local-tap-veth"}
	if !slices.Equal(names, want) {
		t.Errorf("configurations %v, want %v", names, want)
	}
	for _, c := range cs {
		wantRef := RefKernel
		if strings.HasPrefix(c.Name, "local-") {
			wantRef = RefBridge
		}
		if c.Ref() != wantRef {
			t.Errorf("%s: reference %s, want %s", c.Name, c.Ref(), wantRef)
		}
	}
	if send, _ := SelectConfigs(cs, []string{"vxdp-send"}); len(send) != 1 || send[0].A != OverlayVXDP || send[0].B != OverlayKernel {
		t.Errorf("vxdp-send = %+v, want vxdp on A (the sender) and the kernel on B", send)
	}
	if tv, _ := SelectConfigs(cs, []string{"local-tap-veth"}); len(tv) != 1 || !tv[0].Local || !tv[0].VethServer || !tv[0].UsesVXDP() {
		t.Errorf("local-tap-veth = %+v", tv)
	}
	if ws, err := SelectWorkloads(FullPlan(Configs(), nil, nil).Workloads, []string{"udp-800M", "tcp-2G"}); err != nil || len(ws) != 2 || ws[0].Name != "tcp-2G" {
		t.Errorf("SelectWorkloads = %v, %v", ws, err)
	}
	if _, err := SelectWorkloads(QuickPlan(Configs(), nil).Workloads, []string{"tcp-3G"}); !errors.Is(err, ErrBadPlan) {
		t.Errorf("SelectWorkloads of an unknown workload: %v", err)
	}
	vs := VariantConfigs("nortc", "run_to_completion: false\n")
	if len(vs) != 3 || vs[0].Name != "vxdp-nortc" || vs[1].Name != "vxdp-send-nortc" || vs[2].Name != "vxdp-both-nortc" ||
		vs[1].A != OverlayVXDP || vs[1].B != OverlayKernel || vs[2].VXDPYAML != "run_to_completion: false\n" {
		t.Errorf("VariantConfigs = %+v", vs)
	}
	for _, c := range vs {
		if err := c.validate(); err != nil {
			t.Error(err)
		}
	}
	w := WorkerConfigs([]int{1, 2})
	if len(w) != 2 || w[1].Name != "vxdp-w2" || w[1].VXDPYAML != "workers: 2\n" || !w[1].UsesVXDP() || w[1].validate() != nil {
		t.Errorf("WorkerConfigs = %+v", w)
	}
	v := VethConfigs()
	if len(v) != 2 || v[0].Name != "vxdp-veth" || v[1].Name != "vxdp-both-veth" || !v[0].Veth || !v[1].Veth ||
		v[0].A != OverlayKernel || v[1].A != OverlayVXDP || v[0].validate() != nil || v[1].validate() != nil {
		t.Errorf("VethConfigs = %+v", v)
	}
	sel, err := SelectConfigs(cs, []string{"vxdp", "native"})
	if err != nil || len(sel) != 2 || sel[0].Name != "native" || sel[1].Name != "vxdp" {
		t.Errorf("SelectConfigs = %v, %v; want native, vxdp in plan order", sel, err)
	}
	if _, err := SelectConfigs(cs, []string{"kernel-ovs"}); !errors.Is(err, ErrBadPlan) {
		t.Errorf("SelectConfigs of an unknown name: %v", err)
	}
}

// costResults builds a made-up run of 2 repetitions with the efficiency workload and the
// local configurations: kernel and vxdp-send between the hosts, local-bridge and
// local-tap on one node.
func costResults() *Results {
	configs, _ := SelectConfigs(Configs(), []string{"kernel", "vxdp-send", RefBridge, "local-tap"})
	plan := Plan{Mode: "test", Configs: configs, Reps: 2, Duration: 2 * time.Second,
		Workloads: []Workload{tcpFlows(1, nil), udpSize(64, nil), efficiency(nil)[0]}}
	type run struct{ gbit, busy float64 }
	// By configuration and workload, one value per repetition: Gbit/s received over the
	// 2 s run, busy CPU-seconds.
	runs := map[string]map[string][2]run{
		"kernel":    {"tcp": {{6, 3}, {4, 3}}, "udp-64": {{0.05, 3}, {0.05, 3}}, "tcp-2G": {{2, 1.0}, {2, 1.2}}},
		"vxdp-send": {"tcp": {{3, 3}, {3, 3}}, "udp-64": {{0.1, 3}, {0.1, 3}}, "tcp-2G": {{2, 1.5}, {2, 1.2}}},
		RefBridge:   {"tcp": {{16, 3}, {20, 3}}, "udp-64": {{0.1, 3}, {0.1, 3}}, "tcp-2G": {{2, 0.5}, {2, 0.5}}},
		"local-tap": {"tcp": {{8, 3}, {10, 3}}, "udp-64": {{0.05, 3}, {0.1, 3}}, "tcp-2G": {{1.6, 0.8}, {1.6, 0.4}}},
	}
	start := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	r := &Results{Plan: plan, Meta: Meta{Started: start, Finished: start.Add(time.Minute), Kernel: "6.18 test",
		Cores: 2, Iperf3: "iperf 3.12", Wire: "nic"}}
	for rep := 1; rep <= 2; rep++ {
		for _, c := range plan.Configs {
			for _, w := range plan.Workloads {
				x := runs[c.Name][w.Name][rep-1]
				m := Measurement{Rep: rep, Config: c.Name, Workload: w.Name, Start: start, Seconds: 2,
					CPU: []CoreCPU{{Idle: 50}, {Idle: 50}}, BitsPerSecond: x.gbit * 1e9, Bytes: x.gbit * 1e9 / 8 * 2,
					BusySeconds: x.busy}
				if w.UDP {
					m.PacketsPerSecond = m.BitsPerSecond / 8 / float64(w.Length)
				}
				r.Runs = append(r.Runs, m)
			}
		}
	}
	return r
}

func TestSummaryCost(t *testing.T) {
	r := costResults()
	var b bytes.Buffer
	if err := r.WriteSummary(&b); err != nil {
		t.Fatal(err)
	}
	s := b.String()
	for _, want := range []string{
		"Wire: nic, a veth pair that behaves like a NIC",
		// Against the kernel: vxdp-send's TCP {3/6, 3/4} = {0.5, 0.75}, median 0.625;
		// 64 B: 0.1/0.05 = 2 both times.
		"| vxdp-send | vxdp on A (sender), kernel vxlan on B | 0.625× | 2× |",
		// Local: local-tap's TCP {8, 10} Gbit/s, against the bridge's {16, 20}: 0.5×;
		// 64 B: {0.05, 0.1} Gbit/s = {97.7, 195} kpps, ratios {0.5, 1}, median 0.75.
		"| local-tap | 9 (8–10) | 0.500× | 146 (97.7–195) | 0.750× |",
		"| local-bridge | 18 (16–20) |  | 195 |  |",
		// Cost: the kernel moved 0.5 GB in each run (2 Gbit/s for 2 s) with 1.0 and 1.2
		// busy CPU-seconds: 2 and 2.4 CPU-s per GB. vxdp-send: 3 and 2.4, ratios 1.5 and 1.
		"| tcp-2G | kernel | 2 Gbit/s | 2 | 100 | 1.10 (1–1.20) | 2.20 (2–2.40) |  |",
		"| tcp-2G | vxdp-send | 2 Gbit/s | 2 | 100 | 1.35 (1.20–1.50) | 2.70 (2.40–3) | 1.25× |",
		// local-tap against the bridge: 0.4 GB with 0.8 and 0.4 CPU-s: 2 and 1 per GB, the
		// bridge's 1 per GB: ratios 2 and 1, median 1.5; it got 80 % of the offered rate.
		"| tcp-2G | local-tap | 2 Gbit/s | 1.60 | 80 | 0.600 (0.400–0.800) | 1.50 (1–2) | 1.50× |",
		// Per-core CPU of the fixed-rate workload.
		"### tcp-2G",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("summary lacks %q", want)
		}
	}
	// The local configurations are compared with the bridge, not in the tables against
	// the kernel's overlay.
	for _, not := range []string{"TAP to TAP through vxdp | 0.500×", "| local-tap | 9 (8–10) | 0.500× | — |"} {
		if strings.Contains(s, not) {
			t.Errorf("summary has %q", not)
		}
	}
	if t.Failed() {
		t.Logf("summary:\n%s", s)
	}
}

func TestCPUPerGB(t *testing.T) {
	for _, tc := range []struct {
		busy, bytes, want float64
	}{
		{busy: 2, bytes: 1e9, want: 2},
		{busy: 1.5, bytes: 0.5e9, want: 3},
		{busy: 0, bytes: 1e9, want: math.NaN()},
		{busy: 1, bytes: 0, want: math.NaN()},
	} {
		got := Measurement{BusySeconds: tc.busy, Bytes: tc.bytes}.CPUPerGB()
		if got != tc.want && !(math.IsNaN(got) && math.IsNaN(tc.want)) {
			t.Errorf("%v CPU-s over %v bytes: %v CPU-s per GB, want %v", tc.busy, tc.bytes, got, tc.want)
		}
	}
}

func TestOffered(t *testing.T) {
	for _, w := range efficiency(nil) {
		want := map[string]string{"tcp-2G": "2 Gbit/s", "udp-800M": "0.800 Gbit/s", "udp-64-40kpps": "40 kpps"}[w.Name]
		if got := offered(w); got != want {
			t.Errorf("offered(%s) = %q, want %q", w.Name, got, want)
		}
	}
}

// TestSummaryMTU: a run at another MTU (the jumbo variant) says so, and the texts that
// name the overlay's MTU follow it.
func TestSummaryMTU(t *testing.T) {
	r := costResults()
	r.Meta.MTU = 9000
	var b bytes.Buffer
	if err := r.WriteSummary(&b); err != nil {
		t.Fatal(err)
	}
	if s := b.String(); !strings.Contains(s, "MTU: 9000 on the wire, 8950 in the overlay.") {
		t.Errorf("summary of a 9000-byte run does not say so:\n%s", s)
	}
	r.Meta.MTU = 0
	b.Reset()
	if err := r.WriteSummary(&b); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "MTU:") {
		t.Error("a 1500-byte run names its MTU as a variant")
	}
}
