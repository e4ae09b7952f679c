//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/vxdp/vxdp/dataplane"
	"github.com/vxdp/vxdp/internal/admin"
	"github.com/vxdp/vxdp/internal/topo"
)

// adminAddr is where the tests put vxdp's admin server: its default, on the loopback of the
// host namespace vxdp runs in, which is private to the topology.
const adminAddr = dataplane.DefaultAdmin

// adminGet does a GET of path on the admin server at addr in namespace ns (topo.NS.HTTPGet),
// within 30 s.
func adminGet(ns topo.NS, addr, path string) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return ns.HTTPGet(ctx, addr, path)
}

// waitRunning polls /healthz until vxdp reports running: StartVXDP returns once the TAP is
// in the container, which is before XDP is attached.
func waitRunning(t *testing.T, ns topo.NS) {
	t.Helper()
	var last string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		code, b, err := adminGet(ns, adminAddr, "/healthz")
		if err == nil && code == http.StatusOK {
			return
		}
		last = fmt.Sprintf("%d %q %v", code, b, err)
	}
	t.Fatalf("/healthz never said running; last: %s", last)
}

// scrapeAdmin returns vxdp's metrics, as served in ns.
func scrapeAdmin(t *testing.T, ns topo.NS) metrics {
	t.Helper()
	code, b, err := adminGet(ns, adminAddr, "/metrics")
	if err != nil || code != http.StatusOK {
		t.Fatalf("/metrics: %d %v", code, err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return mfs
}

// TestAdminServer runs vxdp behind the kernel's vxlan with its admin server and checks the
// endpoints against traffic whose size iperf3 counts on its own.
func TestAdminServer(t *testing.T) {
	needRoot(t)
	tp := newTopology(t, "adm")
	if err := tp.KernelVXLAN(context.Background(), topo.SideA); err != nil {
		t.Fatal(err)
	}
	v := startVXDPWith(t, tp, topo.SideB, "admin: "+adminAddr+"\nworkers: 2\n")
	waitRunning(t, tp.HostB)
	// ARP through the tunnel, so that the counted run starts on a learned path.
	if _, err := tp.ContainerA.Ping(context.Background(), tp.OverlayB.Addr()); err != nil {
		t.Fatal(err)
	}

	t.Run("CountersMatchIperf3", func(t *testing.T) { checkCountersMatchIperf3(t, tp) })
	t.Run("FDB", func(t *testing.T) { checkFDB(t, tp) })
	t.Run("Pprof", func(t *testing.T) {
		code, b, err := adminGet(tp.HostB, adminAddr, "/debug/pprof/profile?seconds=1")
		if err != nil || code != http.StatusOK {
			t.Fatalf("/debug/pprof/profile: %d %v", code, err)
		}
		if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
			t.Fatalf("profile of %d bytes does not start with the gzip magic: % x", len(b), b[:min(len(b), 8)])
		}
	})
	t.Run("KernelDrops", func(t *testing.T) { checkKernelDrops(t, tp, v) })
	t.Run("Status", func(t *testing.T) {
		out, err := tp.HostB.Run(context.Background(), vxdpBinary, "status", "-admin", adminAddr)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("vxdp status:\n%s", out)
		for _, want := range []string{": running", "received from underlay", "delivered to ports",
			"queue", "worker", "drops and errors", fmt.Sprint(tp.VNI)} {
			if !strings.Contains(out, want) {
				t.Errorf("vxdp status lacks %q", want)
			}
		}
	})
	t.Run("StopClosesAdmin", func(t *testing.T) {
		if err := v.Stop(); err != nil {
			t.Fatalf("vxdp exit: %v", err)
		}
		if _, _, err := adminGet(tp.HostB, adminAddr, "/healthz"); err == nil {
			t.Error("the admin server still answers after vxdp exited")
		}
	})
}

// checkCountersMatchIperf3 sends a fixed-rate UDP stream from container A to container B and
// checks that vxdp's counters moved by what iperf3 says it sent, to within 1%: the frames
// the XDP program redirected, received from the underlay, delivered to the port, and their
// bytes. The rate is far below what the path carries, so normally nothing is lost on the way;
// frames the AF_XDP rings lost on a loaded machine are counted by vxdp too, and are taken
// off what it could deliver, so that every datagram is accounted for either way. (What the
// receiving socket drops after delivery is iperf3's loss, not vxdp's.)
func checkCountersMatchIperf3(t *testing.T, tp *topo.Topology) {
	const length = 1000 // UDP payload; the inner frame adds Ethernet, IPv4 and UDP headers
	before := scrapeAdmin(t, tp.HostB)
	res, err := topo.Iperf3{Server: tp.ContainerB, Client: tp.ContainerA, Addr: tp.OverlayB.Addr().String(),
		UDP: true, Bitrate: "40M", Length: length, Duration: 2 * time.Second}.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// The merger may still be writing the last micro-flow when iperf3 reports.
	time.Sleep(200 * time.Millisecond)
	after := scrapeAdmin(t, tp.HostB)
	delta := func(name string) float64 { return sum(after, name) - sum(before, name) }
	sent := float64(res.Packets)
	t.Logf("iperf3: %d datagrams sent, %d lost", res.Packets, res.LostPackets)
	if res.Packets < 1000 {
		t.Fatalf("iperf3 sent only %d datagrams", res.Packets)
	}
	within := func(what string, got, want float64) {
		t.Helper()
		t.Logf("%s: %.0f, iperf3 %.0f", what, got, want)
		if math.Abs(got-want) > want/100 {
			t.Errorf("%s moved by %.0f, iperf3 sent %.0f: off by more than 1%%", what, got, want)
		}
	}
	var ringLost float64
	for _, kind := range []string{"rx_ring_full", "rx_dropped"} {
		for _, q := range after.labelValues("vxdp_xsk_errors_total", "queue") {
			ringLost += after.get("vxdp_xsk_errors_total", "queue", q, "kind", kind) -
				before.get("vxdp_xsk_errors_total", "queue", q, "kind", kind)
		}
	}
	if ringLost > 0 {
		t.Logf("the AF_XDP RX rings lost %.0f frames", ringLost)
	}
	taken := sent - ringLost
	within("vxdp_xdp_redirected_packets_total", delta("vxdp_xdp_redirected_packets_total"), sent)
	within("vxdp_xsk_received_packets_total (all queues)", delta("vxdp_xsk_received_packets_total"), taken)
	within("vxdp_underlay_received_packets_total", delta("vxdp_underlay_received_packets_total"), taken)
	within("vxdp_port_delivered_packets_total", delta("vxdp_port_delivered_packets_total"), taken)
	within("vxdp_port_delivered_bytes_total", delta("vxdp_port_delivered_bytes_total"), taken*(14+20+8+length))
	within("vxdp_queue_delivered_packets_total (all queues)", delta("vxdp_queue_delivered_packets_total"), taken)
	// iperf3's UDP test has a TCP control connection, so frames also went the other way.
	if got := delta("vxdp_port_read_packets_total"); got < 1 || got > sent/100 {
		t.Errorf("vxdp_port_read_packets_total moved by %.0f for a one-way UDP stream with its TCP control connection", got)
	}
	if got := delta("vxdp_worker_microflows_total"); got < 1 {
		t.Errorf("vxdp_worker_microflows_total moved by %.0f", got)
	}
	hb, ha := before["vxdp_reorder_wait_seconds"], after["vxdp_reorder_wait_seconds"]
	if hb == nil || ha == nil {
		t.Fatal("no vxdp_reorder_wait_seconds")
	}
	// The micro-flows a reader ran to completion never waited in the reorder stage.
	pooled := delta("vxdp_worker_microflows_total") -
		(after.get("vxdp_worker_microflows_total", "worker", "reader") - before.get("vxdp_worker_microflows_total", "worker", "reader"))
	if n := ha.GetMetric()[0].GetHistogram().GetSampleCount() - hb.GetMetric()[0].GetHistogram().GetSampleCount(); float64(n) != pooled {
		t.Errorf("the reorder histogram counted %d micro-flows, the pool's workers %.0f", n, pooled)
	}
	for _, s := range after.all("vxdp_dataplane_drops_total") {
		if s.value != 0 {
			t.Logf("dataplane drops %s: %.0f", s.labels["reason"], s.value)
		}
	}
}

// checkFDB checks /fdb: the port's own MAC as a static local entry, and container A's MAC
// learned behind host A's VTEP.
func checkFDB(t *testing.T, tp *topo.Topology) {
	var macA, macB string
	for _, c := range []struct {
		ns  topo.NS
		mac *string
	}{{tp.ContainerA, &macA}, {tp.ContainerB, &macB}} {
		err := c.ns.Do(func() error {
			ifi, err := net.InterfaceByName("eth0")
			if err == nil {
				*c.mac = ifi.HardwareAddr.String()
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	code, b, err := adminGet(tp.HostB, adminAddr, "/fdb")
	if err != nil || code != http.StatusOK {
		t.Fatalf("/fdb: %d %v", code, err)
	}
	var doc admin.FDB
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("decode /fdb: %v\n%s", err, b)
	}
	if len(doc) != 1 || doc[0].VNI != tp.VNI {
		t.Fatalf("/fdb has %d VNIs, want VNI %d alone:\n%s", len(doc), tp.VNI, b)
	}
	var local, remote bool
	for _, e := range doc[0].Entries {
		switch e.MAC {
		case macB:
			local = e.Port == "vxp0" && e.Remote == "" && e.Static
		case macA:
			remote = e.Remote == tp.UnderlayA.Addr().String() && e.Port == "" && !e.Static &&
				e.AgeSeconds >= 0 && e.AgeSeconds < 300
		}
	}
	if !local || !remote {
		t.Errorf("/fdb: want %s static on port vxp0 and %s learned from %s:\n%s", macB, macA, tp.UnderlayA.Addr(), b)
	}
	m := scrapeAdmin(t, tp.HostB)
	if got := m.get("vxdp_fdb_entries", "vni", fmt.Sprint(tp.VNI)); got != float64(len(doc[0].Entries)) {
		t.Errorf("vxdp_fdb_entries %v, /fdb lists %d", got, len(doc[0].Entries))
	}
}

// TestBadConfigExit runs the built binary on configs and flags that are wrong in one field
// and checks that it exits with status 2 and names the field, without needing the node.
func TestBadConfigExit(t *testing.T) {
	bin := vxdpBinary
	if bin == "" { // TestMain builds it only as root; this test needs no privileges
		bin = filepath.Join(t.TempDir(), "vxdp")
		if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
			t.Fatalf("build vxdp: %v\n%s", err, out)
		}
	}
	const good = `underlay: nosuchnic0
local: 192.168.77.2
networks:
  - vni: 42
    remotes: [192.168.77.1]
`
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	goodPath := write("good.yaml", good)
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"valid", []string{"run", "-config", goodPath, "-check"}, exitOK, "config is valid"},
		{"valid with flags", []string{"run", "-config", goodPath, "-check", "-admin", "127.0.0.1:9500", "-workers", "3"}, exitOK, "config is valid"},
		{"admin in file", []string{"run", "-config", write("admin.yaml", "admin: 127.0.0.1\n"+good), "-check"}, exitUsage,
			`admin: "127.0.0.1" is not host:port`},
		{"admin without host", []string{"run", "-config", write("nohost.yaml", "admin: \":9477\"\n"+good), "-check"}, exitUsage,
			"admin: \":9477\" has no host"},
		{"workers in file", []string{"run", "-config", write("workers.yaml", "workers: 0\n"+good), "-check"}, exitUsage,
			"workers: 0 is out of range"},
		{"remote", []string{"run", "-config", write("remote.yaml", strings.Replace(good, "192.168.77.1]", "bogus]", 1)), "-check"}, exitUsage,
			`networks[0].remotes[0]: "bogus" is not an IP address`},
		{"header options", []string{"run", "-config", write("options.yaml", "ttl: inherit\ntos: 0x88\ndf: set\nsrcport: [40000, 40015]\nudp_checksum: true\nlearning: false\n"+good+
			"    fdb: [{mac: \"02:aa:00:00:00:01\", remote: 192.168.77.1}]\n    neighbours: [{ip: 10.42.0.1, mac: \"02:aa:00:00:00:01\"}]\n    neigh_suppress: true\n"), "-check"}, exitOK, "config is valid"},
		{"ttl", []string{"run", "-config", write("ttl.yaml", "ttl: 0\n"+good), "-check"}, exitUsage, `ttl: "0" is neither 1-255 nor inherit`},
		{"srcport", []string{"run", "-config", write("srcport.yaml", "srcport: [2000, 1000]\n"+good), "-check"}, exitUsage, "srcport: [2000, 1000] is not a range"},
		{"static entry", []string{"run", "-config", write("fdb.yaml", good+"    fdb: [{mac: \"02:aa:00:00:00:01\", remote: 192.168.77.9}]\n"), "-check"}, exitUsage,
			"networks[0].fdb[0].remote: 192.168.77.9 is not one of the VNI's remotes"},
		{"neighbour", []string{"run", "-config", write("neigh.yaml", good+"    neighbours: [{ip: 10.42.0.1, mac: \"ff:ff:ff:ff:ff:ff\"}]\n"), "-check"}, exitUsage,
			"networks[0].neighbours[0].mac: ff:ff:ff:ff:ff:ff is not a unicast address"},
		{"admin flag", []string{"run", "-config", goodPath, "-check", "-admin", "localhost:99999"}, exitUsage,
			`-admin: "localhost:99999": port "99999" is not 1-65535`},
		{"workers flag", []string{"run", "-config", goodPath, "-check", "-workers", "1000"}, exitUsage,
			"-workers: 1000 is out of range"},
		{"microflow flag", []string{"run", "-config", goodPath, "-check", "-microflow", "0"}, exitUsage,
			"-microflow: 0 is out of range"},
		// Without -check the config is checked before the node is: the bad field still wins.
		{"admin without check", []string{"run", "-config", write("admin2.yaml", "admin: nohost\n"+good)}, exitUsage,
			`admin: "nohost" is not host:port`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(bin, tc.args...)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			err := cmd.Run()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.code || !strings.Contains(out.String(), tc.want) {
				t.Errorf("vxdp %s: exit %d, output %q; want exit %d and %q",
					strings.Join(tc.args, " "), code, out.String(), tc.code, tc.want)
			}
		})
	}
}

// checkKernelDrops stops vxdp (SIGSTOP) while container B sends a burst of UDP into its TAP,
// more than the TAP's queue holds: the tun driver drops the rest, which vxdp never sees, and
// vxdp_port_kernel_drops_total{direction="from_container"} must show it, equal to the TAP's
// own tx_dropped as the kernel reports it in the container.
func checkKernelDrops(t *testing.T, tp *topo.Topology, v *topo.VXDP) {
	const burst = 3000 // the TAP's queue holds 500 frames (its txqueuelen)
	fromContainer := func(m metrics) (float64, bool) {
		for _, s := range m.all("vxdp_port_kernel_drops_total") {
			if s.labels["port"] == topo.VXDPTapIf && s.labels["direction"] == "from_container" {
				return s.value, true
			}
		}
		return 0, false
	}
	before, ok := fromContainer(scrapeAdmin(t, tp.HostB))
	if !ok {
		t.Fatalf("no vxdp_port_kernel_drops_total for port %s", topo.VXDPTapIf)
	}
	if err := syscall.Kill(v.PID(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := true
	resume := func() {
		if stopped {
			stopped = false
			if err := syscall.Kill(v.PID(), syscall.SIGCONT); err != nil {
				t.Errorf("resume vxdp: %v", err)
			}
		}
	}
	defer resume()
	err := tp.ContainerB.Do(func() error {
		c, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: tp.OverlayA.Addr().AsSlice(), Port: 9})
		if err != nil {
			return err
		}
		defer c.Close()
		msg := make([]byte, 200)
		for range burst {
			if _, err := c.Write(msg); err != nil {
				return fmt.Errorf("send: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	resume()
	after, ok := fromContainer(scrapeAdmin(t, tp.HostB))
	if !ok {
		t.Fatalf("no vxdp_port_kernel_drops_total for port %s after the burst", topo.VXDPTapIf)
	}
	kernel := float64(linkTxDropped(t, tp.ContainerB, "eth0"))
	t.Logf("burst of %d frames while vxdp was stopped: %.0f dropped by the TAP (kernel: %.0f in all)",
		burst, after-before, kernel)
	if after != kernel {
		t.Errorf("metric says %.0f dropped from the container, the kernel says %.0f", after, kernel)
	}
	if after-before < burst/2 {
		t.Errorf("only %.0f of a %d-frame burst into a stopped vxdp's TAP counted as dropped", after-before, burst)
	}
}
