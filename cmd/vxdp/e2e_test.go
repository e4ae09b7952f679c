//go:build linux

package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/vxdp/vxdp/internal/topo"
)

// vxdpBinary is the node service built once for the integration tests.
var vxdpBinary string

func TestMain(m *testing.M) {
	code := func() int {
		if os.Geteuid() == 0 {
			dir, err := os.MkdirTemp("", "vxdp-e2e")
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			defer os.RemoveAll(dir)
			vxdpBinary = filepath.Join(dir, "vxdp")
			out, err := exec.Command("go", "build", "-o", vxdpBinary, ".").CombinedOutput()
			if err != nil {
				fmt.Fprintf(os.Stderr, "build vxdp: %v\n%s", err, out)
				return 1
			}
		}
		return m.Run()
	}()
	os.Exit(code)
}

// needRoot skips a test that needs namespaces when not root; CI runs as root, so there the
// integration tests always run.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces, attaches XDP, creates TAP devices")
	}
	for _, tool := range []string{"ip", "iperf3", "ethtool"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed (make test installs it: deps/install test): %v", tool, err)
		}
	}
}

// newTopology builds the two-host topology and removes it when the test ends.
func newTopology(t *testing.T, tag string) *topo.Topology {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tp, err := topo.New(ctx, topo.Options{Prefix: topo.Prefix(tag)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := tp.Close(); err != nil {
			t.Errorf("remove topology: %v", err)
		}
	})
	return tp
}

// startVXDP runs vxdp on side s; the test's cleanup stops it and, on failure, shows its log.
func startVXDP(t *testing.T, tp *topo.Topology, s topo.Side) *topo.VXDP {
	t.Helper()
	return startVXDPWith(t, tp, s, "")
}

// startVXDPWith is startVXDP with extra top-level config fields.
func startVXDPWith(t *testing.T, tp *topo.Topology, s topo.Side, extra string) *topo.VXDP {
	t.Helper()
	v, err := tp.StartVXDP(context.Background(), s, vxdpBinary, extra)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		err := v.Stop()
		if err != nil || t.Failed() {
			t.Logf("vxdp on host %s: exit %v; log:\n%s", s, err, v.Log())
		}
	})
	return v
}

// kernelToVXDP makes a topology with the kernel's vxlan on host A and vxdp on host B (extra
// appended to its config), and returns once vxdp runs and container A reaches container B
// through it.
func kernelToVXDP(t *testing.T, tag, extra string) (*topo.Topology, *topo.VXDP) {
	t.Helper()
	tp := newTopology(t, tag)
	if err := tp.KernelVXLAN(context.Background(), topo.SideA); err != nil {
		t.Fatal(err)
	}
	v := startVXDPWith(t, tp, topo.SideB, extra)
	waitRunning(t, tp.HostB)
	waitPing(t, tp.ContainerA, tp.OverlayB.Addr(), 5*time.Second)
	return tp, v
}

func TestKernelVXLANToVXDP(t *testing.T) { kernelVXLANToVXDP(t, "e2ek", false) }

func TestVXDPBothHosts(t *testing.T) { vxdpBothHosts(t, "e2ev", false) }

// kernelVXLANToVXDP runs the overlay checks with the kernel's vxlan on host A and vxdp on
// host B, whose port is a TAP, or a veth pair if veth.
func kernelVXLANToVXDP(t *testing.T, tag string, veth bool) {
	needRoot(t)
	tp := newTopology(t, tag)
	tp.VethPorts = veth
	if err := tp.KernelVXLAN(context.Background(), topo.SideA); err != nil {
		t.Fatal(err)
	}
	v := startVXDP(t, tp, topo.SideB)
	checkOverlay(t, tp)
	t.Run("WireFrames", func(t *testing.T) { checkWireFrames(t, tp) })
	t.Run("HostTraffic", func(t *testing.T) { checkHostTraffic(t, tp) })
	t.Run("SIGTERMLeavesNothing", func(t *testing.T) { checkStop(t, tp, v) })
}

// vxdpBothHosts runs the overlay checks with vxdp on both hosts, their ports TAPs, or veth
// pairs if veth.
func vxdpBothHosts(t *testing.T, tag string, veth bool) {
	needRoot(t)
	tp := newTopology(t, tag)
	tp.VethPorts = veth
	startVXDP(t, tp, topo.SideA)
	startVXDP(t, tp, topo.SideB)
	checkOverlay(t, tp)
	if veth {
		return
	}
	// A TAP port's reader reads frames without GSO (the pings, the ACKs) straight into TX
	// frames, and a TCP stream's super-frames scattered into them.
	for _, ns := range []topo.NS{tp.HostA, tp.HostB} {
		m := scrapeAdmin(t, ns)
		inPlace, scattered := m.get("vxdp_egress_in_place_frames_total"), m.get("vxdp_egress_scattered_super_frames_total")
		t.Logf("%s: %v frames sent from the TX frames they were read into, %v of %v super-frames read scattered",
			ns, inPlace, scattered, m.get("vxdp_offload_gso_super_frames_total"))
		if inPlace == 0 || scattered == 0 {
			t.Errorf("%s: %v frames sent from the TX frames they were read into, %v super-frames read scattered; want some of each",
				ns, inPlace, scattered)
		}
	}
}

// checkOverlay runs ICMP, a byte-checked TCP transfer and an iperf3 flow both ways between
// the containers.
func checkOverlay(t *testing.T, tp *topo.Topology) {
	for _, s := range []topo.Side{topo.SideA, topo.SideB} {
		from, to := tp.Container(s), tp.Overlay(s.Other()).Addr()
		t.Run("Ping"+s.String(), func(t *testing.T) {
			// The first echo also resolves the peer's MAC with ARP through the tunnel.
			for i := 0; i < 3; i++ {
				rtt, err := from.Ping(context.Background(), to)
				if err != nil {
					t.Fatalf("ping %s from %s: %v", to, from, err)
				}
				t.Logf("echo reply from %s in %v", to, rtt)
			}
		})
	}
	for _, s := range []topo.Side{topo.SideA, topo.SideB} {
		t.Run("TCPTransfer"+s.String(), func(t *testing.T) { checkTransfer(t, tp, s, 8<<20) })
	}
	for _, reverse := range []bool{false, true} {
		t.Run(fmt.Sprintf("Iperf3Reverse=%v", reverse), func(t *testing.T) {
			bps := iperf3(t, tp.Container(topo.SideB), tp.Container(topo.SideA), tp.Overlay(topo.SideB).Addr().String(), reverse)
			t.Logf("iperf3 single TCP flow: %.2f Gbit/s", bps/1e9)
		})
	}
}

// checkTransfer sends size random bytes over TCP from the container of side s to the other
// and checks that exactly those bytes arrive.
func checkTransfer(t *testing.T, tp *topo.Topology, s topo.Side, size int) {
	t.Helper()
	transfer(t, tp.Container(s), tp.Container(s.Other()), tp.Overlay(s.Other()).Addr(), size)
}

// transfer sends size random bytes over TCP from namespace from to to, listening on addr
// there, and checks that exactly those bytes arrive.
func transfer(t *testing.T, from, to topo.NS, addr netip.Addr, size int) {
	t.Helper()
	data := make([]byte, size)
	rand.Read(data)
	want := sha256.Sum256(data)
	var ln net.Listener
	err := to.Do(func() (err error) {
		ln, err = net.Listen("tcp", net.JoinHostPort(addr.String(), "0"))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		b, _ := io.ReadAll(c)
		got <- b
	}()
	var conn net.Conn
	err = from.Do(func() (err error) {
		conn, err = net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := conn.Write(data); err != nil {
		t.Fatalf("send: %v", err)
	}
	conn.Close()
	b := <-got
	if len(b) != size || sha256.Sum256(b) != want {
		t.Fatalf("received %d bytes (want %d), content equal: %v", len(b), size, bytes.Equal(b, data))
	}
}

// iperf3 runs one 3-second iperf3 TCP flow from client to the server in server's namespace
// (reverse: the server sends) and returns the received bits per second.
func iperf3(t *testing.T, server, client topo.NS, addr string, reverse bool) float64 {
	t.Helper()
	res, err := topo.Iperf3{Server: server, Client: client, Addr: addr, Reverse: reverse}.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return res.BitsPerSecond
}

// checkWireFrames captures what vxdp (host B) puts on the wire, as host A receives it, while
// the container behind B sends UDP datagrams of 16 inner flows, and checks every field.
func checkWireFrames(t *testing.T, tp *topo.Topology) {
	var fd int
	err := tp.HostA.Do(func() error {
		ifi, err := net.InterfaceByName(tp.WireA)
		if err != nil {
			return err
		}
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return fmt.Errorf("open packet socket: %w", err)
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index})
	})
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 1})

	const flows = 16
	dst := tp.Overlay(topo.SideA).Addr().String()
	err = tp.ContainerB.Do(func() error {
		for i := 0; i < flows; i++ {
			c, err := net.Dial("udp", net.JoinHostPort(dst, fmt.Sprint(20000+i)))
			if err != nil {
				return err
			}
			c.Write([]byte("vxdp wire check"))
			c.Close()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	srcPorts := map[uint16]bool{}
	innerPorts := map[uint16]bool{}
	buf := make([]byte, 65536)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && len(innerPorts) < flows; {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			continue
		}
		pkt := gopacket.NewPacket(buf[:n], layers.LayerTypeEthernet, gopacket.Default)
		ip4, _ := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		udp, _ := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP)
		if ip4 == nil || udp == nil || ip4.SrcIP.String() != tp.UnderlayB.Addr().String() || udp.DstPort != layers.UDPPort(tp.Port) {
			continue
		}
		raw := buf[:n]
		vx := raw[14+int(ip4.IHL)*4+8:]
		inner := gopacket.NewPacket(vx[8:], layers.LayerTypeEthernet, gopacket.Default)
		iudp, _ := inner.Layer(layers.LayerTypeUDP).(*layers.UDP)
		if iudp == nil || iudp.DstPort < 20000 || iudp.DstPort >= 20000+flows {
			continue // ARP and other inner traffic
		}
		if vx[0] != 0x08 {
			t.Errorf("VXLAN flags %#x, want 0x08 (I only)", vx[0])
		}
		if vx[1] != 0 || vx[2] != 0 || vx[3] != 0 || vx[7] != 0 {
			t.Errorf("VXLAN reserved bits set: % x", vx[:8])
		}
		if vni := binary.BigEndian.Uint32(vx[4:8]) >> 8; vni != tp.VNI {
			t.Errorf("VNI %d, want %d", vni, tp.VNI)
		}
		if ip4.TTL != 64 {
			t.Errorf("outer TTL %d, want 64", ip4.TTL)
		}
		if ip4.Protocol != layers.IPProtocolUDP || ip4.DstIP.String() != tp.UnderlayA.Addr().String() {
			t.Errorf("outer IP %v -> %v proto %v", ip4.SrcIP, ip4.DstIP, ip4.Protocol)
		}
		if sum := ipv4HeaderSum(raw[14 : 14+int(ip4.IHL)*4]); sum != 0xffff {
			t.Errorf("outer IPv4 header checksum does not verify (sum %#x)", sum)
		}
		if int(ip4.Length) != n-14 || int(udp.Length) != n-14-int(ip4.IHL)*4 {
			t.Errorf("lengths: IP %d UDP %d for a %d-byte frame", ip4.Length, udp.Length, n)
		}
		if udp.Checksum != 0 {
			t.Errorf("outer UDP checksum %#x, want 0", udp.Checksum)
		}
		if udp.SrcPort < 49152 {
			t.Errorf("outer UDP source port %d is outside 49152-65535", udp.SrcPort)
		}
		srcPorts[uint16(udp.SrcPort)] = true
		innerPorts[uint16(iudp.DstPort)] = true
	}
	if len(innerPorts) != flows {
		t.Fatalf("captured %d of %d inner flows on the wire", len(innerPorts), flows)
	}
	if len(srcPorts) < flows/2 {
		t.Errorf("%d inner flows used only %d outer source ports: the source port does not follow the inner flow", flows, len(srcPorts))
	}
}

// checkHostTraffic checks that the host's own TCP over the underlay is untouched by XDP.
func checkHostTraffic(t *testing.T, tp *topo.Topology) {
	bps := iperf3(t, tp.HostB, tp.HostA, tp.UnderlayB.Addr().String(), false)
	t.Logf("host-to-host TCP while vxdp runs: %.2f Gbit/s", bps/1e9)
	bps = iperf3(t, tp.HostB, tp.HostA, tp.UnderlayB.Addr().String(), true)
	t.Logf("host-to-host TCP, reverse: %.2f Gbit/s", bps/1e9)
}

// checkStop stops vxdp with SIGTERM and checks that it left no XDP program and no port (TAP
// or veth).
func checkStop(t *testing.T, tp *topo.Topology, v *topo.VXDP) {
	if err := v.Stop(); err != nil {
		t.Fatalf("vxdp exit: %v\n%s", err, v.Log())
	}
	ctx := context.Background()
	out, err := tp.HostB.Run(ctx, "ip", "-d", "link", "show", "dev", tp.WireB)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "xdp") {
		t.Errorf("an XDP program is still attached to %s:\n%s", tp.WireB, out)
	}
	for _, ns := range []topo.NS{tp.HostB, tp.ContainerB} {
		out, err := ns.Run(ctx, "ip", "-o", "link", "show")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(out, topo.VXDPTapIf) || strings.Contains(out, topo.VXDPVethIf) || strings.Contains(out, "eth0") || strings.Contains(out, " tun ") {
			t.Errorf("a port is left in %s:\n%s", ns, out)
		}
	}
}

func ipv4HeaderSum(h []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(h); i += 2 {
		s += uint32(h[i])<<8 | uint32(h[i+1])
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
