//go:build linux

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vxdp/vxdp/dataplane"
	"github.com/vxdp/vxdp/internal/topo"
)

// The fault tests: the underlay going down and up under traffic, a container's network
// namespace deleted under traffic, an ingress worker stalled on purpose, and a fill ring
// run dry. Each runs vxdp on host B of a topology of its own, behind the kernel's vxlan on
// host A, and checks that vxdp neither crashes nor spins nor deadlocks, says what happened
// in its log (rate-limited), counts what it lost, and carries traffic again afterwards.

// sumSeries adds up every series of metric name in m, whatever its labels.
func sumSeries(m map[string]float64, name string) float64 {
	var sum float64
	for s, v := range m {
		if s == name || strings.HasPrefix(s, name+"{") {
			sum += v
		}
	}
	return sum
}

// sumPrefix adds up every series of m whose key starts with prefix: a metric name with
// its labels' first part, e.g. `vxdp_xsk_errors_total{kind="rx_dropped"` (labels are
// sorted by name).
func sumPrefix(m map[string]float64, prefix string) float64 {
	var sum float64
	for s, v := range m {
		if strings.HasPrefix(s, prefix) {
			sum += v
		}
	}
	return sum
}

// sumDrops adds up the dataplane drop series of the given reasons.
func sumDrops(m map[string]float64, reasons ...string) float64 {
	var sum float64
	for _, r := range reasons {
		sum += m[dpDrop(r)]
	}
	return sum
}

// Dataplane drop reasons by direction: egress reasons are counted by the port readers for
// frames a port sent, ingress reasons by the workers and mergers for frames the underlay
// brought. bad_inner is left out of ingress: those frames are counted under their
// header-check reason too (vxdp_parse_drops_total).
var (
	egressDrops = []string{"runt", "too_big", "bad_source_mac", "bad_offload", "vxlan_from_port", "vlan_from_port",
		"no_neighbour", "tx_full", "underlay_down"}
	ingressDrops = []string{"unknown_vni", "remote_not_in_vni", "hairpin", "local_mac_from_remote", "no_local_port",
		"tap_write", "inner_too_big"}
)

// checkAccounting checks, on metrics scraped once traffic has stopped, that vxdp accounts
// for every frame of a one-port VNI (no flooding to several ports) in each direction:
//
//	egress:  frames read from the ports = VXLAN frames posted to the underlay + egress drops
//	ingress: frames the XDP program redirected = frames taken from the sockets + what the
//	         kernel dropped at the sockets (rx_dropped, rx_ring_full)
//	         frames taken from the sockets = frames delivered + header-check drops + ingress drops
func checkAccounting(t *testing.T, m map[string]float64) {
	t.Helper()
	read, sent := sumSeries(m, "vxdp_port_read_packets_total"), m["vxdp_underlay_sent_packets_total"]
	if eg := sumDrops(m, egressDrops...); read != sent+eg {
		t.Errorf("egress: %v frames read from the port, %v sent to the underlay and %v dropped (counted): %v unaccounted for",
			read, sent, eg, read-sent-eg)
	}
	redirected := m["vxdp_xdp_redirected_packets_total"]
	taken := sumSeries(m, "vxdp_xsk_received_packets_total")
	socketLoss := sumPrefix(m, `vxdp_xsk_errors_total{kind="rx_dropped"`) + sumPrefix(m, `vxdp_xsk_errors_total{kind="rx_ring_full"`)
	if redirected != taken+socketLoss {
		t.Errorf("ingress: the XDP program redirected %v frames, vxdp took %v from its sockets, the kernel dropped %v there: %v unaccounted for",
			redirected, taken, socketLoss, redirected-taken-socketLoss)
	}
	received, delivered := m["vxdp_underlay_received_packets_total"], m["vxdp_port_delivered_packets_total"]
	parse, in := sumSeries(m, "vxdp_parse_drops_total"), sumDrops(m, ingressDrops...)
	if received != taken || received != delivered+parse+in {
		t.Errorf("ingress: %v frames taken from the sockets, %v processed by the workers, %v delivered, %v dropped by the header checks, %v by the dataplane",
			taken, received, delivered, parse, in)
	}
}

// scrapeQuiet scrapes vxdp's metrics in ns once two scrapes 300 ms apart agree on the
// frames taken and sent: what the rings and stages held has been counted.
func scrapeQuiet(t *testing.T, ns topo.NS) map[string]float64 {
	t.Helper()
	settled := func(m map[string]float64) [2]float64 {
		return [2]float64{sumSeries(m, "vxdp_xsk_received_packets_total") + m["vxdp_port_delivered_packets_total"],
			sumSeries(m, "vxdp_port_read_packets_total") + m["vxdp_underlay_sent_packets_total"]}
	}
	m, _ := scrape(t, ns, adminAddr)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		time.Sleep(300 * time.Millisecond)
		next, _ := scrape(t, ns, adminAddr)
		if settled(next) == settled(m) {
			return next
		}
		m = next
	}
	t.Fatal("vxdp's counters did not settle within 10 s of the traffic's end")
	return nil
}

// waitPing pings to from ns until a reply comes, for up to d.
func waitPing(t *testing.T, ns topo.NS, to netip.Addr, d time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if _, err := ns.Ping(ctx, to); err != nil {
		t.Fatalf("no echo reply from %s in %s within %v: %v", to, ns, d, err)
	}
	return time.Since(start)
}

// readProc reads vxdp's /proc numbers; the process must be alive.
func readProc(t *testing.T, v *topo.VXDP) topo.ProcStats {
	t.Helper()
	select {
	case <-v.Done():
		t.Fatalf("vxdp exited:\n%s", v.Log())
	default:
	}
	p, err := topo.ReadProc(v.PID())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// logLines returns the lines of log that contain text.
func logLines(log, text string) []string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, text) {
			out = append(out, l)
		}
	}
	return out
}

// logTime returns the time of a line of vxdp's text log.
func logTime(t *testing.T, line string) time.Time {
	t.Helper()
	f, _, _ := strings.Cut(strings.TrimPrefix(line, "time="), " ")
	at, err := time.Parse(time.RFC3339Nano, f)
	if err != nil {
		t.Fatalf("log line without a time: %s", line)
	}
	return at
}

// linkTxDropped returns the TX drops the kernel counted on interface dev in ns.
func linkTxDropped(t *testing.T, ns topo.NS, dev string) int64 {
	t.Helper()
	out, err := ns.Run(context.Background(), "ip", "-j", "-s", "link", "show", "dev", dev)
	if err != nil {
		t.Fatal(err)
	}
	var links []struct {
		Stats struct {
			TX struct {
				Dropped int64 `json:"dropped"`
			} `json:"tx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
		t.Fatalf("ip -j -s link show dev %s: %v\n%s", dev, err, out)
	}
	return links[0].Stats.TX.Dropped
}

// Log lines of the underlay's state (dataplane/linkwatch.go).
const (
	logUnderlayDown = "underlay down:"
	logUnderlayUp   = "underlay up again"
)

// TestFaultUnderlayDownUp takes host B's wire end (vxdp's underlay) down for a few seconds
// and up again in the middle of a TCP flow that crosses vxdp both ways, then flaps it.
// vxdp keeps running without spinning, keeps its sockets and XDP program, logs each
// outage once (and a flapping link at most once a second, ending on the state it is in),
// exports the state, and carries traffic again without a restart; every frame it read
// from its port during the outage was sent or counted as dropped.
func TestFaultUnderlayDownUp(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	tp, v := kernelToVXDP(t, "fltl", "workers: 2\n")
	link := func(state string) {
		t.Helper()
		if _, err := tp.HostB.Run(ctx, "ip", "link", "set", "dev", tp.WireB, state); err != nil {
			t.Fatal(err)
		}
	}
	xdpOn := func() string {
		out, err := tp.HostB.Run(ctx, "ip", "-d", "link", "show", "dev", tp.WireB)
		if err != nil {
			t.Fatal(err)
		}
		return regexp.MustCompile(`prog/xdp id \d+`).FindString(out)
	}
	prog := xdpOn()
	if prog == "" {
		t.Fatalf("no XDP program on %s", tp.WireB)
	}

	// Container B sends to A through vxdp's egress; A's ACKs come back through its ingress.
	// The flow spans the outage: TCP retransmits across the gap and must complete.
	const outage = 3 * time.Second
	flow := make(chan error, 1)
	var flowRes topo.Iperf3Result
	go func() {
		var err error
		flowRes, err = topo.Iperf3{Server: tp.ContainerA, Client: tp.ContainerB, Addr: tp.OverlayA.Addr().String(),
			Duration: 3*time.Second + outage + 4*time.Second}.Run(ctx)
		flow <- err
	}()
	time.Sleep(3 * time.Second)
	dropsA := linkTxDropped(t, tp.HostA, tp.WireA)
	// And a datagram a millisecond from B to A during the outage, which TCP's backing off
	// would not send: more than the TX ring takes, so egress must drop and count.
	stopTrickle := make(chan struct{})
	trickled := udpTrickle(t, tp.ContainerB, net.JoinHostPort(tp.OverlayA.Addr().String(), "9"), stopTrickle)
	before := readProc(t, v)
	link("down")
	time.Sleep(outage)
	during := readProc(t, v)
	down, _ := scrape(t, tp.HostB, adminAddr)
	close(stopTrickle)
	t.Logf("%d datagrams sent from container B during the outage", <-trickled)
	link("up")
	resumed := waitPing(t, tp.ContainerA, tp.OverlayB.Addr(), 10*time.Second)
	waitPing(t, tp.ContainerB, tp.OverlayA.Addr(), 10*time.Second)
	if err := <-flow; err != nil {
		t.Fatalf("the TCP flow across the outage: %v", err)
	}
	t.Logf("ping through vxdp %v after the link came up; the flow across the outage: %.2f Gbit/s, %d retransmits",
		resumed.Round(time.Millisecond), flowRes.BitsPerSecond/1e9, flowRes.Retransmits)

	t.Run("NoSpin", func(t *testing.T) {
		// Spinning on a dead socket would take a core: the whole outage in CPU time. An
		// idle vxdp takes next to nothing; half the outage leaves room for a loaded machine.
		cpu := during.CPU - before.CPU
		t.Logf("vxdp used %v of CPU during the %v outage", cpu, outage)
		if cpu > outage/2 {
			t.Errorf("vxdp used %v of CPU in a %v outage: it spins", cpu, outage)
		}
		if during.Threads > before.Threads+2 || during.FDs != before.FDs {
			t.Errorf("during the outage: %d threads and %d fds, before %d and %d", during.Threads, during.FDs, before.Threads, before.FDs)
		}
	})
	t.Run("SocketsAndXDPStay", func(t *testing.T) {
		if got := xdpOn(); got != prog {
			t.Errorf("XDP program after the outage: %q, before %q", got, prog)
		}
		if down["vxdp_underlay_link_up"] != 0 || down["vxdp_underlay_link_downs_total"] != 1 {
			t.Errorf("while down: vxdp_underlay_link_up %v, vxdp_underlay_link_downs_total %v; want 0 and 1",
				down["vxdp_underlay_link_up"], down["vxdp_underlay_link_downs_total"])
		}
		// The same sockets take the traffic: a byte-checked transfer each way.
		checkTransfer(t, tp, topo.SideA, 1<<20)
		checkTransfer(t, tp, topo.SideB, 1<<20)
	})
	t.Run("LoggedOnce", func(t *testing.T) {
		log := v.Log()
		downs, ups := logLines(log, logUnderlayDown), logLines(log, logUnderlayUp)
		if len(downs) != 1 || len(ups) != 1 {
			t.Fatalf("%d lines say the underlay went down and %d that it came up, want 1 each:\n%s", len(downs), len(ups), log)
		}
		if !strings.Contains(ups[0], "down_for=") || !strings.Contains(ups[0], "egress_dropped=") || strings.Contains(ups[0], "egress_dropped=0 ") {
			t.Errorf("the line about the underlay coming back does not say how long it was down and what egress dropped meanwhile: %s", ups[0])
		}
		t.Logf("%s\n%s", downs[0], ups[0])
	})
	t.Run("Flapping", func(t *testing.T) {
		// Ten outages in a row, as fast as ip can: at most a line a second, and the last
		// says the state the link is in.
		const flaps = 10
		mark := len(v.Log())
		start := time.Now()
		for range flaps {
			link("down")
			link("up")
		}
		flapping := time.Since(start)
		time.Sleep(2500 * time.Millisecond) // the line that sums the flapping up is due within a second
		lines := logLines(v.Log()[mark:], "underlay ")
		t.Logf("%d outages in %v: %d log lines:\n%s", flaps, flapping.Round(time.Millisecond), len(lines), strings.Join(lines, "\n"))
		// The kernel reports the carrier coming back up to a second after `ip link set up`
		// (linkwatch), so the flapping lasts a little longer than the commands.
		if len(lines) == 0 {
			t.Fatal("nothing logged about a flapping link")
		}
		for i := 1; i < len(lines); i++ {
			if gap := logTime(t, lines[i]).Sub(logTime(t, lines[i-1])); gap < time.Second-10*time.Millisecond {
				t.Errorf("two lines about the link %v apart, want at least a second: %s", gap, lines[i])
			}
		}
		if last := lines[len(lines)-1]; !strings.Contains(last, logUnderlayUp) {
			t.Errorf("the last line about the flapping link does not say it is up again: %s", last)
		}
		if n := strings.Count(strings.Join(lines, "\n"), "suppressed=0"); n == len(lines) {
			t.Errorf("%d outages in %d lines, none of which says it sums up several", flaps, len(lines))
		}
		m, _ := scrape(t, tp.HostB, adminAddr)
		if m["vxdp_underlay_link_up"] != 1 || m["vxdp_underlay_link_downs_total"] != 1+flaps {
			t.Errorf("after flapping: vxdp_underlay_link_up %v, vxdp_underlay_link_downs_total %v; want 1 and %d",
				m["vxdp_underlay_link_up"], m["vxdp_underlay_link_downs_total"], 1+flaps)
		}
		waitPing(t, tp.ContainerA, tp.OverlayB.Addr(), 10*time.Second)
	})
	t.Run("Counted", func(t *testing.T) {
		m := scrapeQuiet(t, tp.HostB)
		checkAccounting(t, m)
		// Where the outage's frames went: host A's kernel dropped what its vxlan sent into a
		// wire without carrier; vxdp dropped what container B sent while the underlay was
		// down (underlay_down), and counted the kicks the kernel refused.
		t.Logf("lost: host A's wire end dropped %d frames; vxdp: underlay_down %v, tx_full %v, no_neighbour %v, kicks refused %v, TX ring full %v times",
			linkTxDropped(t, tp.HostA, tp.WireA)-dropsA, m[dpDrop("underlay_down")], m[dpDrop("tx_full")], m[dpDrop("no_neighbour")],
			sumPrefix(m, `vxdp_xsk_errors_total{kind="kick_failed"`), sumPrefix(m, `vxdp_xsk_errors_total{kind="tx_no_room"`))
	})
	t.Run("SIGTERM", func(t *testing.T) { checkStop(t, tp, v) })
}

// goroutines returns the number of goroutines vxdp's admin server reports in ns.
func goroutines(t *testing.T, ns topo.NS) int {
	t.Helper()
	code, b, err := adminGet(ns, adminAddr, "/debug/pprof/goroutine?debug=1")
	if err != nil || code != http.StatusOK {
		t.Fatalf("goroutine profile: %d %v", code, err)
	}
	first, _, _ := strings.Cut(string(b), "\n")
	n, err := strconv.Atoi(strings.TrimPrefix(first, "goroutine profile: total "))
	if err != nil {
		t.Fatalf("goroutine profile starts %q", first)
	}
	return n
}

// resources samples vxdp's goroutines and open descriptors a few times and returns the
// least of each: a scrape or a resolver pass holds one or two for a moment.
func resources(t *testing.T, tp *topo.Topology, v *topo.VXDP) (gs, fds int) {
	t.Helper()
	gs, fds = 1<<30, 1<<30
	for range 5 {
		gs = min(gs, goroutines(t, tp.HostB))
		fds = min(fds, readProc(t, v).FDs)
		time.Sleep(100 * time.Millisecond)
	}
	return gs, fds
}

// udpTrickle sends a 100-byte datagram from ns to addr every millisecond until stop is
// closed; sends that fail (no route, ICMP errors) are ignored.
func udpTrickle(t *testing.T, ns topo.NS, addr string, stop <-chan struct{}) <-chan int {
	t.Helper()
	var c net.Conn
	if err := ns.Do(func() (err error) { c, err = net.Dial("udp", addr); return err }); err != nil {
		t.Fatal(err)
	}
	sent := make(chan int, 1)
	go func() {
		defer c.Close()
		n := 0
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		payload := make([]byte, 100)
		for {
			select {
			case <-stop:
				sent <- n
				return
			case <-tick.C:
				if _, err := c.Write(payload); err == nil {
					n++
				}
			}
		}
	}()
	return sent
}

// portKind is what the container-deletion test needs to know of a kind of local port.
type portKind struct {
	name       string // the config's key: tap or veth
	dead, live string // the device names of the port whose container goes and of the other
	writeDrop  string // the drop reason of frames for a port whose device is gone
	writeLog   string // what the rate-limited log line about them says
}

// portKinds are TAPs, whose descriptor turns dead (EBADFD) when the kernel removes the
// device, and veth pairs, whose host end goes with the peer and whose AF_XDP sockets the
// kernel then unbinds: writes to it find the TX ring full, once the frames posted to the
// dead ring have filled it.
var portKinds = []portKind{
	{name: "tap", dead: "vxp0", live: "vxp1", writeDrop: "tap_write", writeLog: "tap write failed"},
	{name: "veth", dead: "vxv0", live: "vxv1", writeDrop: "tx_full", writeLog: "af_xdp tx ring full"},
}

// TestFaultContainerDeleted deletes the network namespace of a container behind vxdp while
// traffic runs to it and to a second container on the same VNI, the way a container
// runtime does: its processes killed, then `ip netns del`; with TAP ports and with veth
// ports. vxdp keeps running and serving the other port, the underlay host's own traffic
// and its admin server; it counts the dead port's errors and says so once (then at most
// once a second); it does not leak the port reader's goroutine or descriptors, nor grow
// them; a reload without the port closes it; and SIGTERM stops vxdp cleanly.
func TestFaultContainerDeleted(t *testing.T) {
	needRoot(t)
	for _, k := range portKinds {
		t.Run(k.name, func(t *testing.T) { containerDeleted(t, k) })
	}
}

func containerDeleted(t *testing.T, k portKind) {
	ctx := context.Background()
	tp := newTopology(t, "fltc")
	if err := tp.KernelVXLAN(ctx, topo.SideA); err != nil {
		t.Fatal(err)
	}
	cC, err := tp.AddContainer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	overlayC := netip.MustParsePrefix("10.42.0.3/24")
	port := func(dev string, ns topo.NS) string {
		return fmt.Sprintf("      - %s: %s\n        netns: %s\n        ifname: eth0\n        mtu: %d\n", k.name, dev, ns.Path(), tp.OverlayMTU)
	}
	config := fmt.Sprintf("underlay: %s\nlocal: %s\nports_on_exit: remove\nworkers: 2\nnetworks:\n  - vni: %d\n    remotes: [%s]\n    ports:\n%s%s",
		tp.WireB, tp.UnderlayB.Addr(), tp.VNI, tp.UnderlayA.Addr(), port(k.dead, tp.ContainerB), port(k.live, cC))
	v, err := tp.StartVXDPConfig(ctx, topo.SideB, vxdpBinary, config)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := v.Stop(); err != nil || t.Failed() {
			t.Logf("vxdp on host B: exit %v; log:\n%s", err, v.Log())
		}
	})
	if err := tp.ContainerIf(ctx, topo.SideB, "eth0"); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"addr", "add", overlayC.String(), "dev", "eth0"}, {"link", "set", "dev", "eth0", "up"}} {
		if _, err := cC.Run(ctx, "ip", args...); err != nil {
			t.Fatal(err)
		}
	}
	waitRunning(t, tp.HostB)
	waitPing(t, tp.ContainerA, tp.OverlayB.Addr(), 5*time.Second)
	waitPing(t, tp.ContainerA, overlayC.Addr(), 5*time.Second)

	// A TCP flow into each container; the one into C must not notice B's end. A trickle of
	// UDP toward B goes on after B is gone, for vxdp to fail to write.
	const flowTime = 12 * time.Second
	flowC := make(chan error, 1)
	go func() {
		_, err := topo.Iperf3{Server: cC, Client: tp.ContainerA, Addr: overlayC.Addr().String(), Port: 5202,
			Duration: flowTime}.Run(ctx)
		flowC <- err
	}()
	flowB := make(chan error, 1)
	go func() {
		_, err := topo.Iperf3{Server: tp.ContainerB, Client: tp.ContainerA, Addr: tp.OverlayB.Addr().String(),
			Duration: flowTime}.Run(ctx)
		flowB <- err
	}()
	stopTrickle := make(chan struct{})
	trickled := udpTrickle(t, tp.ContainerA, net.JoinHostPort(tp.OverlayB.Addr().String(), "9"), stopTrickle)
	time.Sleep(3 * time.Second)
	gs0, fds0 := resources(t, tp, v)

	// The container runtime's part: kill what runs in the container, delete its namespace.
	out, err := exec.Command("ip", "netns", "pids", tp.ContainerB.Name).Output()
	if err != nil {
		t.Fatalf("ip netns pids %s: %v", tp.ContainerB, err)
	}
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil {
			if p, err := os.FindProcess(pid); err == nil {
				p.Kill()
			}
		}
	}
	if out, err := exec.Command("ip", "netns", "del", tp.ContainerB.Name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns del %s: %v: %s", tp.ContainerB, err, out)
	}
	deleted := time.Now()
	// The kernel destroys the namespace, and the TAP in it, once its last user is gone.
	for !strings.Contains(v.Log(), "port reader stopped") {
		if time.Since(deleted) > 10*time.Second {
			t.Fatalf("vxdp did not notice that its port's namespace was deleted:\n%s", v.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("vxdp noticed the port's end %v after the namespace was deleted", time.Since(deleted).Round(time.Millisecond))
	<-flowB // it ends with its server, one way or another
	time.Sleep(3 * time.Second)
	gs1, fds1 := resources(t, tp, v)

	t.Run("OtherPortServed", func(t *testing.T) {
		if err := <-flowC; err != nil {
			t.Fatalf("the flow into the other container: %v", err)
		}
		waitPing(t, tp.ContainerA, overlayC.Addr(), 5*time.Second)
		res, err := topo.Iperf3{Server: cC, Client: tp.ContainerA, Addr: overlayC.Addr().String(), Port: 5202,
			Duration: 2 * time.Second}.Run(ctx)
		if err != nil {
			t.Fatalf("a new flow into the other container: %v", err)
		}
		t.Logf("into the other container after the deletion: %.2f Gbit/s", res.BitsPerSecond/1e9)
	})
	t.Run("HostAndAdminServed", func(t *testing.T) {
		host := topo.Iperf3{Server: tp.HostB, Client: tp.HostA, Addr: tp.UnderlayB.Addr().String(), Duration: 2 * time.Second}
		if _, err := host.Run(ctx); err != nil {
			t.Errorf("host traffic on the underlay: %v", err)
		}
		if code, b, err := adminGet(tp.HostB, adminAddr, "/healthz"); err != nil || code != http.StatusOK {
			t.Errorf("/healthz: %d %q %v", code, b, err)
		}
	})
	close(stopTrickle)
	t.Logf("%d datagrams sent toward the deleted container", <-trickled)
	t.Run("Counted", func(t *testing.T) {
		m, _ := scrape(t, tp.HostB, adminAddr)
		series := func(name, dev string) float64 { return m[name+`{port="`+dev+`"}`] }
		werr, rerr := series("vxdp_port_write_errors_total", k.dead), series("vxdp_port_read_errors_total", k.dead)
		if werr == 0 || rerr != 1 {
			t.Errorf("the deleted container's port: %v write errors, %v read errors; want some and 1", werr, rerr)
		}
		if m[dpDrop(k.writeDrop)] < werr {
			t.Errorf("%v frames dropped as %s, fewer than the %v failed writes", m[dpDrop(k.writeDrop)], k.writeDrop, werr)
		}
		if w, r := series("vxdp_port_write_errors_total", k.live), series("vxdp_port_read_errors_total", k.live); w != 0 || r != 0 {
			t.Errorf("the other port: %v write errors, %v read errors", w, r)
		}
		t.Logf("the deleted container's port: %v failed writes (%v frames dropped as %s), %v failed read", werr, m[dpDrop(k.writeDrop)], k.writeDrop, rerr)
	})
	t.Run("LoggedOnce", func(t *testing.T) {
		log := v.Log()
		stopped := logLines(log, "port reader stopped")
		if len(stopped) != 1 || !strings.Contains(stopped[0], "port="+k.dead) || !strings.Contains(stopped[0], "namespace") {
			t.Errorf("%d lines say a port reader stopped, want one naming %s and its deleted namespace:\n%s", len(stopped), k.dead, strings.Join(stopped, "\n"))
		}
		writes := logLines(log, k.writeLog)
		if limit := int(time.Since(deleted)/time.Second) + 1; len(writes) == 0 || len(writes) > limit {
			t.Errorf("%d lines %q in %v, want 1 to %d", len(writes), k.writeLog, time.Since(deleted).Round(time.Second), limit)
		}
	})
	t.Run("NoLeak", func(t *testing.T) {
		gs2, fds2 := resources(t, tp, v)
		t.Logf("goroutines %d before the deletion, %d after, %d later; descriptors %d, %d, %d", gs0, gs1, gs2, fds0, fds1, fds2)
		// The dead port's reader is gone; its descriptor stays open until vxdp stops.
		if gs1 >= gs0 || gs2 > gs1 {
			t.Errorf("goroutines: %d before the deletion, %d after, %d later: want fewer after (the port reader ended), then no more", gs0, gs1, gs2)
		}
		if fds1 > fds0 || fds2 > fds1 {
			t.Errorf("descriptors: %d before the deletion, %d after, %d later: want no more", fds0, fds1, fds2)
		}
	})
	t.Run("ReloadRemovesDeadPort", func(t *testing.T) {
		// What the operator (or the orchestrator) does next: the port leaves the config,
		// and a reload closes its dead descriptor; the other port carries on.
		gs, fds := resources(t, tp, v)
		if err := os.WriteFile(v.Config, []byte(strings.Replace(config, port(k.dead, tp.ContainerB), "", 1)), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := v.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		gs2, fds2 := resources(t, tp, v)
		t.Logf("after the reload: goroutines %d (were %d), descriptors %d (were %d)", gs2, gs, fds2, fds)
		if fds2 >= fds || gs2 > gs {
			t.Errorf("after the reload removed the dead port: %d goroutines and %d descriptors, before %d and %d", gs2, fds2, gs, fds)
		}
		if m, _ := scrape(t, tp.HostB, adminAddr); sumPrefix(m, `vxdp_port_read_packets_total{port="`+k.dead+`"}`) != 0 ||
			sumPrefix(m, `vxdp_port_read_packets_total{port="`+k.live+`"}`) == 0 {
			t.Errorf("after the reload, /metrics does not show the remaining port alone")
		}
		waitPing(t, tp.ContainerA, overlayC.Addr(), 5*time.Second)
	})
	t.Run("SIGTERM", func(t *testing.T) {
		if err := v.Stop(); err != nil {
			t.Fatalf("vxdp exit: %v", err)
		}
		for _, ns := range []topo.NS{tp.HostB, cC} {
			if out, _ := ns.Run(ctx, "ip", "-o", "link", "show"); strings.Contains(out, k.live) || strings.Contains(out, "eth0") {
				t.Errorf("a port is left in %s:\n%s", ns, out)
			}
		}
	})
}

// logStalls is what vxdp logs each time the stall fault stalls a worker (faults.go).
const logStalls = "fault injection: worker stalls"

// TestFaultWorkerStall stalls ingress worker 0 for 300 ms on each micro-flow that carries
// a marked datagram of a sequence-stamped UDP stream (VXDP_TEST_FAULTS), with two workers
// and micro-flows of 4 frames. The other worker goes on with the queue's later micro-flows;
// the reorder stage must hold them back, deliver the whole stream in order, count their
// wait in its histogram (above 100 ms, once per stall at least), and neither deadlock nor
// lose track of a frame.
func TestFaultWorkerStall(t *testing.T) {
	needRoot(t)
	const stall = 300 * time.Millisecond
	t.Setenv(dataplane.FaultsEnv, fmt.Sprintf("stall=%v,stall_worker=0", stall))
	tp, v := kernelToVXDP(t, "flts", "workers: 2\nmicroflow: 4\n")
	before, _ := scrape(t, tp.HostB, adminAddr)

	// 5000 datagrams a second for 4 s, every 1000th marked: about half the 20 marks land on
	// worker 0. A stall backs up 1500 frames, within what a queue holds.
	got, sent := stream{tp: tp, n: 20000, rate: 5000, idle: 2*time.Second + stall,
		mark: func(i int) bool { return i%1000 == 500 }}.run(t)
	stalls := len(logLines(v.Log(), logStalls))
	t.Logf("%d of %d datagrams arrived, in order, across %d stalls of %v", got, sent, stalls, stall)
	if stalls == 0 {
		t.Fatalf("the stall fault never fired:\n%s", v.Log())
	}

	// The stalls show in the histogram: waits beyond its last bound, 100 ms.
	after := scrapeQuiet(t, tp.HostB)
	long := func(m map[string]float64) float64 {
		return m["vxdp_reorder_wait_seconds_count"] - m[`vxdp_reorder_wait_seconds_bucket{le="0.1"}`]
	}
	waits := after["vxdp_reorder_wait_seconds_count"] - before["vxdp_reorder_wait_seconds_count"]
	longWaits := long(after) - long(before)
	t.Logf("%v micro-flows waited in the reorder stage, %v of them over 100 ms, %.2f s in all", waits, longWaits,
		after["vxdp_reorder_wait_seconds_sum"]-before["vxdp_reorder_wait_seconds_sum"])
	if longWaits < float64(stalls) {
		t.Errorf("%d stalls of %v, and only %v micro-flows waited over 100 ms for their turn", stalls, stall, longWaits)
	}
	checkAccounting(t, after)

	// No deadlock: an unmarked stream still flows, and vxdp stops on SIGTERM.
	got, sent = stream{tp: tp, n: 5000, rate: 5000, idle: 2 * time.Second}.run(t)
	if got == 0 {
		t.Fatalf("after the stalls, none of %d datagrams arrived", sent)
	}
	checkStop(t, tp, v)
}

// TestFaultFillRingStarved stalls a worker on a marked datagram and sends a burst of ten
// times what the queue's UMEM holds in the same flow behind it, then ends the stall: the
// worker's micro-flow holds up its queue's reorder line, the reader stops handing frames
// back, and the kernel finds the fill ring empty and drops. The kernel's counters of that
// (fill ring empty, rx_dropped) rise and reach /metrics, every frame is accounted for,
// nothing deadlocks, and once the stall ends the queue carries traffic again, in order.
func TestFaultFillRingStarved(t *testing.T) {
	needRoot(t)
	// The stall lasts until the test removes the release file, once the whole burst is out
	// however long sending it takes; stall only bounds it.
	const stall = time.Minute
	release := filepath.Join(t.TempDir(), "stall")
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(dataplane.FaultsEnv, fmt.Sprintf("stall=%v,release=%s", stall, release))
	// One frame per micro-flow: the reorder line then holds exactly the queue's in-flight
	// frames (1024 slots of one) when the stall fills it, and the fill ring runs dry as the RX
	// ring fills. With 64-frame micro-flows the line's 16 slots fill with whatever the ring
	// held at each read: a fast reader on a quiet machine takes a few frames at a time, the
	// line holds a few hundred, and the RX ring fills first (rx_ring_full, fill ring not empty).
	tp, v := kernelToVXDP(t, "fltf", "workers: 2\nmicroflow: 1\n")
	t.Cleanup(func() { os.Remove(release) }) // a failed test releases the stall before stopping vxdp
	before := scrapeQuiet(t, tp.HostB)

	// rxFrames is what one queue's UMEM has for receiving (dataplane's umemFrames less its
	// txFrames): at most that many frames of the burst can wait for the stalled worker.
	const rxFrames = 3072
	const burst = 10 * rxFrames
	var released time.Time
	got, sent := stream{tp: tp, n: burst + 1, idle: 2 * time.Second, mark: func(i int) bool { return i == 0 },
		sent: func() {
			time.Sleep(100 * time.Millisecond) // the last datagrams are on their way
			if err := os.Remove(release); err != nil {
				t.Error(err)
			}
			released = time.Now()
		}}.run(t)
	stalls := logLines(v.Log(), logStalls)
	if len(stalls) != 1 {
		t.Fatalf("%d stalls, want 1:\n%s", len(stalls), v.Log())
	}
	stalled := released.Sub(logTime(t, stalls[0])).Round(time.Millisecond)
	during := scrapeQuiet(t, tp.HostB)
	delta := func(m map[string]float64, prefix string) float64 {
		return sumPrefix(m, prefix) - sumPrefix(before, prefix)
	}
	redirected := delta(during, "vxdp_xdp_redirected_packets_total")
	fillEmpty := delta(during, "vxdp_xsk_fill_ring_empty_total")
	rxDropped := delta(during, `vxdp_xsk_errors_total{kind="rx_dropped"`)
	ringFull := delta(during, `vxdp_xsk_errors_total{kind="rx_ring_full"`)
	t.Logf("burst: %d datagrams sent during a %v stall, %v reached vxdp's XDP program, %d arrived in order; the kernel found the fill ring empty %v times, dropped %v (rx_dropped) and %v (rx_ring_full)",
		sent, stalled, redirected, got, fillEmpty, rxDropped, ringFull)
	if fillEmpty == 0 || rxDropped == 0 {
		t.Errorf("the fill ring ran dry under a burst of %d during a %v stall, yet /metrics shows %v fill-ring-empty and %v rx_dropped",
			sent, stalled, fillEmpty, rxDropped)
	}
	// At most the queue's RX frames (and the marked one in the stalled worker) were held
	// for the stall, and every frame of the burst that reached XDP was either held and
	// delivered or dropped and counted; otherTraffic allows for the few frames besides the
	// burst that XDP redirected meanwhile (ARP, neighbour discovery).
	const otherTraffic = 16
	if got > rxFrames+1 {
		t.Errorf("%d datagrams of the burst arrived: more than the queue's %d RX frames were held", got, rxFrames)
	}
	if burstIn, lost := min(redirected, float64(sent)), rxDropped+ringFull; lost+float64(got)+otherTraffic < burstIn {
		t.Errorf("%v frames of the burst reached the stalled queue, %d arrived and only %v were dropped: frames unaccounted for", burstIn, got, lost)
	}
	checkAccounting(t, during)

	// The pressure is over: the queue carries a stream again, in order.
	got, sent = stream{tp: tp, n: 5000, rate: 5000, idle: 2 * time.Second}.run(t)
	t.Logf("after the stall: %d of %d datagrams arrived, in order", got, sent)
	if got < sent/2 {
		t.Errorf("after the stall, %d of %d datagrams arrived", got, sent)
	}
	waitPing(t, tp.ContainerA, tp.OverlayB.Addr(), 5*time.Second)
	checkAccounting(t, scrapeQuiet(t, tp.HostB))
	checkStop(t, tp, v)
	if l := logLines(v.Log(), `msg="vxdp stopping"`); len(l) != 1 || strings.Contains(l[0], "fill_ring_empty=0") {
		t.Errorf("the exit log does not report the fill ring running empty: %q", l)
	}
}
