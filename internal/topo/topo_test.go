//go:build linux

package topo

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// testTag is the Prefix tag of this package's tests.
const testTag = "topot"

func TestMain(m *testing.M) {
	if os.Geteuid() == 0 {
		// Sweep what an earlier, killed run of these tests left behind.
		if err := CleanupStale(testTag); err != nil {
			fmt.Fprintln(os.Stderr, "clean up stale test namespaces:", err)
		}
	}
	os.Exit(m.Run())
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces and interfaces")
	}
}

// testCtx returns a context that ends before the test's own deadline.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// newTopo creates a topology under a fresh prefix and closes it, checking
// that nothing is left, when the test ends.
func newTopo(t *testing.T, opts Options) *Topology {
	t.Helper()
	if opts.Prefix == "" {
		opts.Prefix = Prefix(testTag)
	}
	tp, err := New(testCtx(t), opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := tp.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if left := namespacesWith(t, tp.Prefix); len(left) > 0 {
			t.Errorf("namespaces left after Close: %v", left)
		}
	})
	return tp
}

// namespacesWith returns the names that `ip netns list` shows starting
// with prefix + "-".
func namespacesWith(t *testing.T, prefix string) []string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v: %s", err, out)
	}
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], prefix+"-") {
			names = append(names, f[0])
		}
	}
	return names
}

func mustRun(t *testing.T, ns NS, name string, args ...string) string {
	t.Helper()
	out, err := ns.Run(testCtx(t), name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestKernelOverlay(t *testing.T) {
	requireRoot(t)
	ctx := testCtx(t)
	tp := newTopo(t, Options{})
	for _, s := range []Side{SideA, SideB} {
		if err := tp.KernelVXLAN(ctx, s); err != nil {
			t.Fatal(err)
		}
	}

	// A second call fails and leaves the first overlay standing.
	if err := tp.KernelVXLAN(ctx, SideA); !errors.Is(err, os.ErrExist) {
		t.Errorf("second KernelVXLAN = %v, want ErrExist", err)
	}

	if _, err := tp.HostA.Ping(ctx, tp.UnderlayB.Addr()); err != nil {
		t.Errorf("wire: %v", err)
	}
	if _, err := tp.ContainerA.Ping(ctx, tp.OverlayB.Addr()); err != nil {
		t.Errorf("overlay A to B: %v", err)
	}
	if _, err := tp.ContainerB.Ping(ctx, tp.OverlayA.Addr()); err != nil {
		t.Errorf("overlay B to A: %v", err)
	}

	for _, s := range []Side{SideA, SideB} {
		h, wire := tp.Host(s), tp.Wire(s)
		fs, err := Features(ctx, h, wire)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"tcp-segmentation-offload", "generic-segmentation-offload",
			"tx-udp-segmentation", "tx-checksum-ip-generic"} {
			if on, ok := fs[name]; !ok || on {
				t.Errorf("%s %s: %s present=%v on=%v, want present and off", h, wire, name, ok, on)
			}
		}
		if !fs["generic-receive-offload"] {
			t.Errorf("%s %s: GRO off, want on (the NIC-like wire)", h, wire)
		}
		queues := strings.Fields(mustRun(t, h, "ls", "/sys/class/net/"+wire+"/queues"))
		if strings.Join(queues, " ") != "rx-0 rx-1 tx-0 tx-1" {
			t.Errorf("%s %s queues = %v, want rx-0 rx-1 tx-0 tx-1", h, wire, queues)
		}
		if link := mustRun(t, h, "ip", "link", "show", wire); !strings.Contains(link, "mtu 1500 ") {
			t.Errorf("%s %s: want mtu 1500: %s", h, wire, link)
		}

		vx := mustRun(t, h, "ip", "-d", "link", "show", VXLANIf)
		for _, want := range []string{"mtu 1450 ", "master " + BridgeIf, "vxlan id 42 ",
			"local " + tp.Underlay(s).Addr().String(), "dev " + wire, "dstport 4789"} {
			if !strings.Contains(vx, want) {
				t.Errorf("%s %s: want %q in %s", h, VXLANIf, want, vx)
			}
		}
		if strings.Contains(vx, "nolearning") {
			t.Errorf("%s %s: learning is off: %s", h, VXLANIf, vx)
		}
		fdb := mustRun(t, h, "bridge", "fdb", "show", "dev", VXLANIf)
		if want := "00:00:00:00:00:00 dst " + tp.Underlay(s.Other()).Addr().String(); !strings.Contains(fdb, want) {
			t.Errorf("%s fdb: want %q in %s", h, want, fdb)
		}
		eth := mustRun(t, tp.Container(s), "ip", "addr", "show", ContainerVethIf)
		for _, want := range []string{"mtu 1450 ", "state UP", "inet " + tp.Overlay(s).String()} {
			if !strings.Contains(eth, want) {
				t.Errorf("%s %s: want %q in %s", tp.Container(s), ContainerVethIf, want, eth)
			}
		}
	}
}

// TestWireFrames checks what the default wire carries: with a TCP stream
// over the kernel overlay, every VXLAN frame host A sends on the wire fits
// the wire MTU and its inner TCP checksum is complete, as behind a real NIC.
// The capture is on the sender's end: the receiving end's GRO merges frames
// before a packet socket sees them, as a NIC's driver does.
func TestWireFrames(t *testing.T) {
	requireRoot(t)
	ctx := testCtx(t)
	tp := newTopo(t, Options{})
	for _, s := range []Side{SideA, SideB} {
		if err := tp.KernelVXLAN(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	capFD := openCapture(t, tp.HostA, tp.WireA)

	const streamBytes = 1 << 20
	var ln net.Listener
	if err := tp.ContainerB.Do(func() (err error) {
		ln, err = net.Listen("tcp", netip.AddrPortFrom(tp.OverlayB.Addr(), 0).String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	received := make(chan int64, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			received <- -1
			return
		}
		defer c.Close()
		n, _ := io.Copy(io.Discard, c)
		received <- n
	}()
	var conn net.Conn
	if err := tp.ContainerA.Do(func() (err error) {
		var d net.Dialer
		conn, err = d.DialContext(ctx, "tcp", ln.Addr().String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(make([]byte, streamBytes)); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	if n := <-received; n != streamBytes {
		t.Fatalf("received %d bytes, want %d", n, streamBytes)
	}

	frames, maxLen, checked := 0, 0, 0
	buf := make([]byte, 1<<16)
	for {
		n, from, err := unix.Recvfrom(capFD, buf, unix.MSG_DONTWAIT|unix.MSG_TRUNC)
		if errors.Is(err, unix.EAGAIN) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); !ok || ll.Pkttype != unix.PACKET_OUTGOING {
			continue // what host A received, after its GRO
		}
		inner, ok := vxlanInnerTCP(buf[:min(n, len(buf))])
		if !ok {
			continue
		}
		frames++
		maxLen = max(maxLen, n)
		if len(inner.payload) > 0 {
			checked++
			if !inner.checksumOK() {
				t.Errorf("frame %d: inner TCP checksum incomplete", frames)
			}
		}
	}
	if checked < 20 {
		t.Fatalf("captured %d VXLAN frames, %d with data: too few to judge", frames, checked)
	}
	if maxLen > 14+tp.WireMTU {
		t.Errorf("largest VXLAN frame on the wire: %d bytes, want at most %d", maxLen, 14+tp.WireMTU)
	}
	t.Logf("%d VXLAN frames captured, %d data segments checked, largest %d bytes", frames, checked, maxLen)
}

// openCapture opens a packet socket on ifname in ns with a buffer large
// enough for the whole test stream's frames.
func openCapture(t *testing.T, ns NS, ifname string) int {
	t.Helper()
	fd := -1
	err := ns.Do(func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		proto := int(htons(unix.ETH_P_ALL))
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
		if err != nil {
			return err
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 16<<20); err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index})
	})
	if fd >= 0 {
		t.Cleanup(func() { unix.Close(fd) })
	}
	if err != nil {
		t.Fatalf("open capture on %s: %v", ifname, err)
	}
	return fd
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// tcpSegment is an inner IPv4 TCP segment found in a captured frame.
type tcpSegment struct {
	src, dst [4]byte
	tcp      []byte // header and payload
	payload  []byte
}

// checksumOK verifies the TCP checksum over the IPv4 pseudo-header.
func (s tcpSegment) checksumOK() bool {
	b := make([]byte, 0, 12+len(s.tcp))
	b = append(b, s.src[:]...)
	b = append(b, s.dst[:]...)
	b = append(b, 0, unix.IPPROTO_TCP)
	b = binary.BigEndian.AppendUint16(b, uint16(len(s.tcp)))
	b = append(b, s.tcp...)
	return inetChecksum(b) == 0
}

// vxlanInnerTCP finds the TCP segment inside an Ethernet/IPv4/UDP:4789/VXLAN
// frame carrying Ethernet/IPv4/TCP.
func vxlanInnerTCP(f []byte) (tcpSegment, bool) {
	ipv4 := func(b []byte, proto byte) ([]byte, [4]byte, [4]byte, bool) {
		if len(b) < 14+20 || binary.BigEndian.Uint16(b[12:]) != unix.ETH_P_IP {
			return nil, [4]byte{}, [4]byte{}, false
		}
		ip := b[14:]
		ihl := int(ip[0]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(ip[2:]))
		if ip[0]>>4 != 4 || ihl < 20 || total < ihl || total > len(ip) || ip[9] != proto {
			return nil, [4]byte{}, [4]byte{}, false
		}
		return ip[ihl:total], [4]byte(ip[12:16]), [4]byte(ip[16:20]), true
	}
	udp, _, _, ok := ipv4(f, unix.IPPROTO_UDP)
	if !ok || len(udp) < 8+8 || binary.BigEndian.Uint16(udp[2:]) != DefaultPort {
		return tcpSegment{}, false
	}
	tcp, src, dst, ok := ipv4(udp[16:], unix.IPPROTO_TCP)
	if !ok || len(tcp) < 20 || int(tcp[12]>>4)*4 > len(tcp) {
		return tcpSegment{}, false
	}
	return tcpSegment{src: src, dst: dst, tcp: tcp, payload: tcp[int(tcp[12]>>4)*4:]}, true
}

func TestContainerIf(t *testing.T) {
	requireRoot(t)
	ctx := testCtx(t)
	tp := newTopo(t, Options{})
	if err := tp.KernelVXLAN(ctx, SideA); err != nil {
		t.Fatal(err)
	}
	if err := tp.RemoveKernelVXLAN(ctx, SideA); err != nil {
		t.Fatal(err)
	}
	for _, ifname := range []string{VXLANIf, BridgeIf, HostVethIf} {
		if _, err := tp.HostA.Run(ctx, "ip", "link", "show", ifname); err == nil {
			t.Errorf("%s still in %s after RemoveKernelVXLAN", ifname, tp.HostA)
		}
	}
	if _, err := tp.ContainerA.Run(ctx, "ip", "link", "show", ContainerVethIf); err == nil {
		t.Errorf("%s still in %s after RemoveKernelVXLAN", ContainerVethIf, tp.ContainerA)
	}

	// Stand in for vxdp: a TAP shows up in the container namespace a little
	// later, as vxdp would create it and move it there.
	made := make(chan error, 1)
	go func() {
		time.Sleep(100 * time.Millisecond)
		_, err := tp.ContainerA.Run(ctx, "ip", "tuntap", "add", "dev", "tap0", "mode", "tap")
		made <- err
	}()
	if err := tp.ContainerIf(ctx, SideA, "tap0"); err != nil {
		t.Fatal(err)
	}
	if err := <-made; err != nil {
		t.Fatal(err)
	}
	// Again: it must be harmless.
	if err := tp.ContainerIf(ctx, SideA, "tap0"); err != nil {
		t.Fatalf("second ContainerIf: %v", err)
	}
	tap := mustRun(t, tp.ContainerA, "ip", "addr", "show", "tap0")
	for _, want := range []string{"mtu 1450 ", ",UP", "inet 10.42.0.1/24"} {
		if !strings.Contains(tap, want) {
			t.Errorf("tap0: want %q in %s", want, tap)
		}
	}

	short, cancel := context.WithTimeout(ctx, 150*time.Millisecond)
	defer cancel()
	if err := tp.ContainerIf(short, SideB, "absent0"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("ContainerIf on a missing interface = %v, want deadline exceeded", err)
	}
}

func TestCloseIdempotent(t *testing.T) {
	requireRoot(t)
	tp, err := New(testCtx(t), Options{Prefix: Prefix(testTag)})
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()
	if got := namespacesWith(t, tp.Prefix); len(got) != 4 {
		t.Fatalf("namespaces after New: %v, want 4", got)
	}
	// A straggler process in a namespace must not keep it alive.
	sleeper := tp.HostA.Exec(context.Background(), "sleep", "60")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- sleeper.Wait() }()
	if err := tp.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if left := namespacesWith(t, tp.Prefix); len(left) > 0 {
		t.Errorf("namespaces left after Close: %v", left)
	}
	if err := tp.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	select {
	case <-waited:
	case <-time.After(5 * time.Second):
		sleeper.Process.Kill()
		t.Error("process in the namespace survived Close")
	}
}

func TestNewFailureLeavesNothing(t *testing.T) {
	requireRoot(t)
	ctx := testCtx(t)

	t.Run("bad options", func(t *testing.T) {
		for name, o := range badOptions() {
			if o.Prefix == "" {
				o.Prefix = Prefix(testTag)
			}
			tp, err := New(ctx, o)
			if !errors.Is(err, ErrBadOption) {
				if tp != nil {
					tp.Close()
				}
				t.Errorf("%s: New = %v, want ErrBadOption", name, err)
			}
			if left := namespacesWith(t, o.Prefix); len(left) > 0 {
				t.Errorf("%s: left %v", name, left)
			}
		}
	})

	t.Run("namespace exists", func(t *testing.T) {
		prefix := Prefix(testTag)
		taken := NS{prefix + "-cB"}
		if out, err := exec.Command("ip", "netns", "add", taken.Name).CombinedOutput(); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		t.Cleanup(func() { deleteNS(taken) })
		if tp, err := New(ctx, Options{Prefix: prefix}); err == nil {
			tp.Close()
			t.Fatal("New succeeded over an existing namespace")
		} else {
			t.Logf("New: %v", err)
		}
		// Only the namespace New did not make may remain.
		if left := namespacesWith(t, prefix); len(left) != 1 || left[0] != taken.Name {
			t.Errorf("namespaces after failed New: %v, want only %s", left, taken.Name)
		}
	})

	t.Run("context ends midway", func(t *testing.T) {
		// Wherever the context runs out, New either completes or leaves
		// nothing behind.
		failed := 0
		for _, ms := range []int{0, 1, 2, 4, 7, 10, 15, 20, 30, 45} {
			d := time.Duration(ms) * time.Millisecond
			prefix := Prefix(testTag)
			short, cancel := context.WithTimeout(ctx, d)
			tp, err := New(short, Options{Prefix: prefix})
			cancel()
			if err == nil {
				if err := tp.Close(); err != nil {
					t.Error(err)
				}
			} else {
				failed++
			}
			if left := namespacesWith(t, prefix); len(left) > 0 {
				t.Errorf("deadline %v: New = %v, left %v", d, err, left)
			}
		}
		if failed == 0 {
			t.Error("no deadline made New fail: the case was not exercised")
		}
		t.Logf("New failed under %d of the deadlines", failed)
	})
}

func TestConcurrentTopologies(t *testing.T) {
	requireRoot(t)
	ctx := testCtx(t)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		tops []*Topology
	)
	errs := make(chan error, 2)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tp, err := New(ctx, Options{Prefix: Prefix(testTag)})
			if err != nil {
				errs <- err
				return
			}
			mu.Lock()
			tops = append(tops, tp)
			mu.Unlock()
			for _, s := range []Side{SideA, SideB} {
				if err := tp.KernelVXLAN(ctx, s); err != nil {
					errs <- err
					return
				}
			}
			if _, err := tp.ContainerA.Ping(ctx, tp.OverlayB.Addr()); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for _, tp := range tops {
		t.Cleanup(func() {
			if err := tp.Close(); err != nil {
				t.Error(err)
			}
		})
	}
	for err := range errs {
		t.Error(err)
	}
	if len(tops) == 2 && tops[0].Prefix == tops[1].Prefix {
		t.Errorf("both topologies got prefix %s", tops[0].Prefix)
	}
}

func TestDo(t *testing.T) {
	requireRoot(t)
	tp := newTopo(t, Options{})
	want, err := netns.GetFromPath(tp.HostA.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer want.Close()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()

	sentinel := errors.New("from fn")
	var inside bool
	err = tp.HostA.Do(func() error {
		cur, err := netns.Get()
		if err != nil {
			return err
		}
		defer cur.Close()
		inside = cur.Equal(want)
		// The wire end is visible from here and only from here.
		if _, err := net.InterfaceByName(tp.WireA); err != nil {
			return err
		}
		return sentinel
	})
	if !errors.Is(err, sentinel) {
		t.Fatalf("Do = %v, want fn's error", err)
	}
	if !inside {
		t.Error("fn did not run in the namespace")
	}
	// Same goroutine, likely the same thread: it must be back home.
	cur, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer cur.Close()
	if !cur.Equal(orig) {
		t.Error("thread not restored to its namespace after Do")
	}
	if _, err := net.InterfaceByName(tp.WireA); err == nil {
		t.Errorf("%s visible outside its namespace after Do", tp.WireA)
	}
	if err := (NS{"no-such-ns-" + strconv.Itoa(os.Getpid())}).Do(func() error { return nil }); err == nil {
		t.Error("Do into a missing namespace succeeded")
	}
}

func TestTuning(t *testing.T) {
	requireRoot(t)
	ctx := testCtx(t)
	tp := newTopo(t, Options{})
	readQueues := func(file string) []string {
		out := mustRun(t, tp.HostA, "sh", "-c", "cat /sys/class/net/"+tp.WireA+"/queues/rx-*/"+file)
		return strings.Fields(out)
	}
	if err := SetRPS(ctx, tp.HostA, tp.WireA, "1"); err != nil {
		t.Fatal(err)
	}
	for _, v := range readQueues("rps_cpus") {
		if n, err := strconv.ParseUint(strings.ReplaceAll(v, ",", ""), 16, 64); err != nil || n != 1 {
			t.Errorf("rps_cpus = %q, want 1", v)
		}
	}
	if got := len(readQueues("rps_cpus")); got != tp.WireQueues {
		t.Errorf("%d rx queues read, want %d", got, tp.WireQueues)
	}
	if err := SetRFS(ctx, tp.HostA, tp.WireA, 2048); err != nil {
		t.Fatal(err)
	}
	for _, v := range readQueues("rps_flow_cnt") {
		if v != "2048" {
			t.Errorf("rps_flow_cnt = %q, want 2048", v)
		}
	}
	if err := SetRPS(ctx, tp.HostA, tp.WireA, "1; rm -rf /"); !errors.Is(err, ErrBadOption) {
		t.Errorf("SetRPS with a bad mask = %v, want ErrBadOption", err)
	}
	if err := SetRPS(ctx, tp.HostA, "absent0", "1"); err == nil {
		t.Error("SetRPS on a missing interface succeeded")
	}

	prev, err := SetSockFlowEntries(32768)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := SetSockFlowEntries(prev); err != nil {
			t.Error(err)
		}
	})
	if got, err := SockFlowEntries(); err != nil || got != 32768 {
		t.Errorf("SockFlowEntries = %d, %v; want 32768", got, err)
	}
}

func TestCleanup(t *testing.T) {
	requireRoot(t)
	const tag = "topostale"
	// A process that has exited gives a PID that no process holds.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	stale := fmt.Sprintf("vx%s-%d-0-hA", tag, dead.Process.Pid)
	live := Prefix(tag) + "-hA" // ours, alive
	other := Prefix(testTag)
	for _, name := range []string{stale, live, other + "-hA", other + "-cB"} {
		if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		t.Cleanup(func() { deleteNS(NS{name}) })
	}
	if err := CleanupStale(tag); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(NS{stale}.Path()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale namespace %s survived CleanupStale", stale)
	}
	if _, err := os.Stat(NS{live}.Path()); err != nil {
		t.Errorf("live namespace %s removed by CleanupStale: %v", live, err)
	}
	if err := Cleanup(other); err != nil {
		t.Fatal(err)
	}
	if left := namespacesWith(t, other); len(left) > 0 {
		t.Errorf("Cleanup(%s) left %v", other, left)
	}
	if _, err := os.Stat(NS{live}.Path()); err != nil {
		t.Errorf("Cleanup(%s) removed %s: %v", other, live, err)
	}
}

func TestWireOffloadsOn(t *testing.T) {
	requireRoot(t)
	tp := newTopo(t, Options{WireKind: WireOffloaded, WireQueues: 1})
	fs, err := Features(testCtx(t), tp.HostB, tp.WireB)
	if err != nil {
		t.Fatal(err)
	}
	if !fs["tcp-segmentation-offload"] || !fs["generic-segmentation-offload"] {
		t.Errorf("WireOffloaded, but TSO=%v GSO=%v", fs["tcp-segmentation-offload"], fs["generic-segmentation-offload"])
	}
	if queues := mustRun(t, tp.HostB, "ls", "/sys/class/net/"+tp.WireB+"/queues"); strings.Join(strings.Fields(queues), " ") != "rx-0 tx-0" {
		t.Errorf("queues = %q, want one of each", queues)
	}
}

// TestWireKinds checks each end of the NIC-like wire (the default) and of
// the plain one: segmentation and TX checksum offloads off on both, GRO,
// threaded NAPI and a NIC's qdisc on the NIC-like wire only.
func TestWireKinds(t *testing.T) {
	requireRoot(t)
	for _, kind := range []WireKind{"", WirePlain} {
		nic := kind == ""
		tp := newTopo(t, Options{WireKind: kind})
		if nic && tp.WireKind != WireNIC {
			t.Errorf("default WireKind = %q, want %q", tp.WireKind, WireNIC)
		}
		ctx := testCtx(t)
		for _, s := range []Side{SideA, SideB} {
			fs, err := Features(ctx, tp.Host(s), tp.Wire(s))
			if err != nil {
				t.Fatal(err)
			}
			for _, name := range []string{"tcp-segmentation-offload", "generic-segmentation-offload",
				"tx-udp-segmentation", "tx-udp_tnl-segmentation", "tx-checksumming"} {
				if fs[name] {
					t.Errorf("%s wire, %s: %s on", tp.WireKind, tp.Wire(s), name)
				}
			}
			if fs["generic-receive-offload"] != nic {
				t.Errorf("%s wire, %s: GRO %v, want %v", tp.WireKind, tp.Wire(s), fs["generic-receive-offload"], nic)
			}
			threaded, err := ThreadedNAPI(ctx, tp.Host(s), tp.Wire(s))
			if err != nil {
				t.Fatal(err)
			}
			if threaded != nic {
				t.Errorf("%s wire, %s: threaded NAPI %v, want %v", tp.WireKind, tp.Wire(s), threaded, nic)
			}
			qdiscs, err := run(exec.CommandContext(ctx, "tc", "-n", tp.Host(s).Name, "qdisc", "show", "dev", tp.Wire(s)), tp.Host(s).Name)
			if err != nil {
				t.Fatal(err)
			}
			if nic && (!strings.Contains(qdiscs, "qdisc mq 1: root") || strings.Count(qdiscs, "qdisc pfifo_fast") != tp.WireQueues) {
				t.Errorf("nic wire, %s: qdiscs\n%s\nwant mq with a pfifo_fast on each of the %d TX queues", tp.Wire(s), qdiscs, tp.WireQueues)
			}
			if !nic && !strings.Contains(qdiscs, "noqueue") {
				t.Errorf("plain wire, %s: qdiscs\n%s\nwant the veth's own noqueue", tp.Wire(s), qdiscs)
			}
		}
	}
}

// TestLocalBridge checks the kernel's path between two containers of one node: both reach
// each other over the bridge on host B, and RemoveKernelVXLAN takes all of it away.
func TestLocalBridge(t *testing.T) {
	requireRoot(t)
	ctx := testCtx(t)
	tp := newTopo(t, Options{})
	if err := tp.LocalBridge(ctx, SideB); err != nil {
		t.Fatal(err)
	}
	if err := tp.LocalBridge(ctx, SideB); !errors.Is(err, os.ErrExist) {
		t.Errorf("second LocalBridge = %v, want ErrExist", err)
	}
	if _, err := tp.ContainerA.Ping(ctx, tp.OverlayB.Addr()); err != nil {
		t.Errorf("container A to B over host B's bridge: %v", err)
	}
	if master := mustRun(t, tp.HostB, "ip", "-o", "link", "show", "master", BridgeIf); !strings.Contains(master, HostVethIf+"@") ||
		!strings.Contains(master, LocalVethIf+"@") {
		t.Errorf("bridge ports: %s, want %s and %s", master, HostVethIf, LocalVethIf)
	}
	if err := tp.RemoveKernelVXLAN(ctx, SideB); err != nil {
		t.Fatal(err)
	}
	for _, ns := range []NS{tp.HostB, tp.ContainerA, tp.ContainerB} {
		if out := mustRun(t, ns, "ip", "-o", "link", "show"); strings.Contains(out, "veth") || strings.Contains(out, "eth0") ||
			strings.Contains(out, BridgeIf) {
			t.Errorf("left in %s after RemoveKernelVXLAN:\n%s", ns, out)
		}
	}
}
