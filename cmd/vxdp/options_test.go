//go:build linux

package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/vxdp/vxdp/internal/topo"
)

// kernelVXLANWith rebuilds the kernel's vxlan device of host s (topo.KernelVXLAN) with the
// extra `ip link add ... type vxlan` options args, some of which (srcport, udpcsum) the
// kernel does not change on a live device, and puts it back under the bridge.
func kernelVXLANWith(t *testing.T, tp *topo.Topology, s topo.Side, args ...string) {
	t.Helper()
	ctx := context.Background()
	h := tp.Host(s)
	steps := [][]string{
		{"ip", "link", "del", topo.VXLANIf},
		append([]string{"ip", "link", "add", topo.VXLANIf, "mtu", strconv.Itoa(tp.OverlayMTU), "type", "vxlan",
			"id", strconv.Itoa(int(tp.VNI)), "local", tp.Underlay(s).Addr().String(),
			"dstport", strconv.Itoa(int(tp.Port)), "dev", tp.Wire(s), "learning"}, args...),
		{"ip", "link", "set", topo.VXLANIf, "master", topo.BridgeIf},
		{"ip", "link", "set", topo.VXLANIf, "up"},
		{"bridge", "fdb", "append", "00:00:00:00:00:00", "dev", topo.VXLANIf, "dst", tp.Underlay(s.Other()).Addr().String()},
	}
	for _, args := range steps {
		if out, err := h.Run(ctx, args[0], args[1:]...); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
}

// innerProbe is one UDP datagram a container sends with the given IP TOS byte, TTL and DF;
// its destination port tells it apart on the wire.
type innerProbe struct {
	port     int
	tos, ttl int
	df       bool
}

// innerProbes are the datagrams each side sends: every ECN codepoint under two DSCPs, two
// TTLs, DF set and clear.
func innerProbes() []innerProbe {
	var ps []innerProbe
	port := 21000
	for _, dscp := range []int{0, 46} {
		for ecn := range 4 {
			for _, ttl := range []int{7, 200} {
				for _, df := range []bool{false, true} {
					ps = append(ps, innerProbe{port: port, tos: dscp<<2 | ecn, ttl: ttl, df: df})
					port++
				}
			}
		}
	}
	return ps
}

// sendProbes sends each probe from container ns to dst.
func sendProbes(t *testing.T, ns topo.NS, dst netip.Addr, probes []innerProbe) {
	t.Helper()
	err := ns.Do(func() error {
		for _, p := range probes {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return err
			}
			pmtu := unix.IP_PMTUDISC_DONT
			if p.df {
				pmtu = unix.IP_PMTUDISC_DO
			}
			for _, o := range [][2]int{{unix.IP_TOS, p.tos}, {unix.IP_TTL, p.ttl}, {unix.IP_MTU_DISCOVER, pmtu}} {
				if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, o[0], o[1]); err != nil {
					unix.Close(fd)
					return fmt.Errorf("setsockopt %d: %w", o[0], err)
				}
			}
			to := &unix.SockaddrInet4{Port: p.port, Addr: dst.As4()}
			err = unix.Sendto(fd, []byte("vxdp header options"), 0, to)
			unix.Close(fd)
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// outerSeen is what the wire showed of one probe's VXLAN frame.
type outerSeen struct {
	tos, ttl   uint8
	df         bool
	srcPort    uint16
	udpCsum    uint16
	csumVerify bool
}

// captureProbes captures on host A's wire the VXLAN frames of the probes each side sent,
// by sender (underlay address) and probe port, until it has want of them or 5 s pass. send
// runs once the capture is open.
func captureProbes(t *testing.T, tp *topo.Topology, want int, send func()) map[netip.Addr]map[int]outerSeen {
	t.Helper()
	fd, _ := packetSocket(t, tp.HostA, tp.WireA)
	defer unix.Close(fd)
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 200000})
	send()
	seen := map[netip.Addr]map[int]outerSeen{}
	n := 0
	buf := make([]byte, 65536)
	for deadline := time.Now().Add(5 * time.Second); n < want && time.Now().Before(deadline); {
		size, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			continue
		}
		raw := buf[:size]
		pkt := gopacket.NewPacket(raw, layers.LayerTypeEthernet, gopacket.Default)
		// The first network layer is the outer one (Layer would find an inner IPv4 first
		// behind an outer IPv6).
		ip4, _ := pkt.NetworkLayer().(*layers.IPv4)
		ip6, _ := pkt.NetworkLayer().(*layers.IPv6)
		udp, _ := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP)
		if (ip4 == nil && ip6 == nil) || udp == nil || udp.DstPort != layers.UDPPort(tp.Port) || len(udp.Payload) < 8 {
			continue
		}
		inner := gopacket.NewPacket(udp.Payload[8:], layers.LayerTypeEthernet, gopacket.Default)
		iudp, _ := inner.Layer(layers.LayerTypeUDP).(*layers.UDP)
		if iudp == nil || iudp.DstPort < 21000 || iudp.DstPort >= 21100 {
			continue
		}
		var o outerSeen
		var src, dst net.IP
		var l4 []byte
		if ip4 != nil {
			src, dst = ip4.SrcIP.To4(), ip4.DstIP.To4()
			l4 = raw[14+int(ip4.IHL)*4 : 14+int(ip4.Length)]
			o = outerSeen{tos: ip4.TOS, ttl: ip4.TTL, df: ip4.Flags&layers.IPv4DontFragment != 0}
		} else {
			src, dst = ip6.SrcIP, ip6.DstIP
			l4 = raw[14+40 : 14+40+int(ip6.Length)]
			o = outerSeen{tos: ip6.TrafficClass, ttl: ip6.HopLimit}
		}
		from, _ := netip.AddrFromSlice(src)
		from = from.Unmap()
		if seen[from] == nil {
			seen[from] = map[int]outerSeen{}
		}
		pseudo := unix.IPPROTO_UDP + uint32(len(l4))
		for i := 0; i < len(src); i += 2 {
			pseudo += uint32(binary.BigEndian.Uint16(src[i:])) + uint32(binary.BigEndian.Uint16(dst[i:]))
		}
		if _, dup := seen[from][int(iudp.DstPort)]; !dup {
			n++
		}
		o.srcPort, o.udpCsum = uint16(udp.SrcPort), udp.Checksum
		o.csumVerify = udp.Checksum != 0 && onesSum(l4, pseudo) == 0xffff
		seen[from][int(iudp.DstPort)] = o
	}
	return seen
}

// onesSum is the one's complement sum of b with initial added.
func onesSum(b []byte, initial uint32) uint16 {
	s := initial
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

// TestHeaderOptionsAgainstKernel compares the defaults first, then configures the kernel's
// vxlan on host A and vxdp on host B with the same ttl, tos, df, srcport and udp_checksum, has both containers send the
// same datagrams (every ECN codepoint, two DSCPs, two TTLs, DF set and clear) and compares
// the outer headers the two write on the wire: TOS (DSCP and ECN), TTL, DF, the source
// port in its range, and a UDP checksum that verifies. Then it reloads vxdp (SIGHUP) and
// changes the kernel's device live to ttl, tos and df inherit, and compares again.
//
// One difference is expected: for an inner CE packet RFC 6040's normal mode, which vxdp
// follows, copies CE to the outer header; Linux writes ECT(0) there (RFC 3168's full
// functionality mode). Either way the decapsulator's inner packet leaves with CE.
func TestHeaderOptionsAgainstKernel(t *testing.T) {
	needRoot(t)
	tp := newTopology(t, "hdro")
	ctx := context.Background()
	if err := tp.KernelVXLAN(ctx, topo.SideA); err != nil {
		t.Fatal(err)
	}
	v := startVXDPWith(t, tp, topo.SideB, "")
	waitRunning(t, tp.HostB)
	waitPing(t, tp.ContainerA, tp.OverlayB.Addr(), 5*time.Second)
	// restart gives vxdp the config extra, after the kernel's device was rebuilt: its
	// new TAP has a new MAC, which container A must ask for again.
	restart := func(extra string) {
		if err := v.Stop(); err != nil {
			t.Fatal(err)
		}
		v = startVXDPWith(t, tp, topo.SideB, extra)
		waitRunning(t, tp.HostB)
		if out, err := tp.ContainerA.Run(ctx, "ip", "neigh", "flush", "all"); err != nil {
			t.Fatalf("flush neighbours: %v: %s", err, out)
		}
		waitPing(t, tp.ContainerA, tp.OverlayB.Addr(), 5*time.Second)
	}

	probes := innerProbes()
	compare := func(stage string, check func(p innerProbe, k, x outerSeen)) {
		seen := captureProbes(t, tp, 2*len(probes), func() {
			sendProbes(t, tp.ContainerA, tp.OverlayB.Addr(), probes)
			sendProbes(t, tp.ContainerB, tp.OverlayA.Addr(), probes)
		})
		kernel, vxdp := seen[tp.UnderlayA.Addr()], seen[tp.UnderlayB.Addr()]
		if len(kernel) != len(probes) || len(vxdp) != len(probes) {
			t.Fatalf("%s: captured %d of the kernel's and %d of vxdp's %d probes", stage, len(kernel), len(vxdp), len(probes))
		}
		for _, p := range probes {
			check(p, kernel[p.port], vxdp[p.port])
		}
	}
	// srcport [40000, 40015] (the kernel's 40000 40016) and udp_checksum: true.
	portsAndSums := func(stage string, p innerProbe, k, x outerSeen) {
		if k.srcPort < 40000 || k.srcPort >= 40016 || x.srcPort < 40000 || x.srcPort > 40015 {
			t.Errorf("%s: probe %+v: source ports kernel %d, vxdp %d, want 40000-40015", stage, p, k.srcPort, x.srcPort)
		}
		if !k.csumVerify || !x.csumVerify {
			t.Errorf("%s: probe %+v: udp checksums kernel %#x (verifies %v), vxdp %#x (verifies %v)", stage, p, k.udpCsum, k.csumVerify, x.udpCsum, x.csumVerify)
		}
	}
	// ECN: vxdp's outer ECN is the inner's; the kernel's too, but for CE (see above).
	ecnOK := func(stage string, p innerProbe, k, x outerSeen) {
		in := uint8(p.tos) & 3
		if x.tos&3 != in {
			t.Errorf("%s: probe %+v: vxdp outer ECN %d, want the inner's %d", stage, p, x.tos&3, in)
		}
		wantK := in
		if in == 3 {
			wantK = 2
		}
		if k.tos&3 != wantK {
			t.Errorf("%s: probe %+v: kernel outer ECN %d, want %d", stage, p, k.tos&3, wantK)
		}
	}
	kernelSums := 0
	compare("defaults", func(p innerProbe, k, x outerSeen) {
		ecnOK("defaults", p, k, x)
		if k.ttl != 64 || x.ttl != 64 || k.df || x.df || k.tos&^3 != 0 || x.tos&^3 != 0 {
			t.Errorf("defaults: probe %+v: kernel ttl %d df %v tos %#x; vxdp ttl %d df %v tos %#x; want 64, unset, 0",
				p, k.ttl, k.df, k.tos, x.ttl, x.df, x.tos)
		}
		if x.srcPort < 49152 || x.udpCsum != 0 {
			t.Errorf("defaults: probe %+v: vxdp source port %d, udp checksum %#x; want 49152-65535 and 0", p, x.srcPort, x.udpCsum)
		}
		if k.csumVerify {
			kernelSums++
		}
	})
	t.Logf("defaults: the kernel's vxlan sent %d of %d probes with a UDP checksum (vxdp: none, udp_checksum: false)", kernelSums, len(probes))

	kernelVXLANWith(t, tp, topo.SideA, "ttl", "3", "tos", "0x88", "df", "set", "srcport", "40000", "40016", "udpcsum")
	const fixed = "srcport: [40000, 40015]\nudp_checksum: true\n"
	restart(fixed + "ttl: 3\ntos: 0x88\ndf: set\n")
	compare("ttl 3, tos 0x88, df set", func(p innerProbe, k, x outerSeen) {
		ecnOK("fixed", p, k, x)
		portsAndSums("fixed", p, k, x)
		if k.ttl != 3 || x.ttl != 3 || !k.df || !x.df || k.tos&^3 != 0x88 || x.tos&^3 != 0x88 {
			t.Errorf("fixed: probe %+v: kernel ttl %d df %v tos %#x; vxdp ttl %d df %v tos %#x; want 3, set, 0x88",
				p, k.ttl, k.df, k.tos, x.ttl, x.df, x.tos)
		}
	})

	// Live: ttl, tos and df change on the kernel's device and with SIGHUP on vxdp.
	for _, args := range [][]string{{"ttl", "9"}, {"tos", "inherit"}, {"df", "inherit"}} {
		cmd := append([]string{"link", "set", topo.VXLANIf, "type", "vxlan"}, args...)
		if out, err := tp.HostA.Run(ctx, "ip", cmd...); err != nil {
			t.Fatalf("ip %v: %v: %s", cmd, err, out)
		}
	}
	reload := func(extra string) error {
		if err := os.WriteFile(v.Config, []byte(tp.VXDPConfig(topo.SideB, fixed+extra)), 0o644); err != nil {
			t.Fatal(err)
		}
		return v.Reload(ctx)
	}
	if err := reload("ttl: 9\ntos: inherit\ndf: inherit\n"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // the resolver rebuilds the templates at once; give it a moment
	inherit := func(stage string, ttl func(p innerProbe) uint8) func(p innerProbe, k, x outerSeen) {
		return func(p innerProbe, k, x outerSeen) {
			ecnOK(stage, p, k, x)
			portsAndSums(stage, p, k, x)
			if x.ttl != ttl(p) || x.df != p.df || x.tos&^3 != uint8(p.tos)&^3 {
				t.Errorf("%s: probe %+v: vxdp ttl %d df %v tos %#x", stage, p, x.ttl, x.df, x.tos)
			}
			if k.ttl != x.ttl || k.df != x.df || k.tos&^3 != x.tos&^3 {
				t.Errorf("%s: probe %+v: kernel ttl %d df %v dscp %#x, vxdp ttl %d df %v dscp %#x",
					stage, p, k.ttl, k.df, k.tos>>2, x.ttl, x.df, x.tos>>2)
			}
		}
	}
	compare("ttl 9, tos and df inherit (reloaded)", inherit("reloaded", func(innerProbe) uint8 { return 9 }))

	// ttl inherit: neither the kernel nor vxdp switches to it live.
	if out, err := tp.HostA.Run(ctx, "ip", "link", "set", topo.VXLANIf, "type", "vxlan", "ttl", "inherit"); err == nil {
		t.Errorf("the kernel switched to ttl inherit on a live device: %s", out)
	}
	if err := reload("ttl: inherit\n"); err == nil || !strings.Contains(err.Error(), "restart") {
		t.Errorf("reload to ttl inherit: %v, want a refusal that asks for a restart", err)
	}
	kernelVXLANWith(t, tp, topo.SideA, "ttl", "inherit", "tos", "inherit", "df", "inherit", "srcport", "40000", "40016", "udpcsum")
	restart(fixed + "ttl: inherit\ntos: inherit\ndf: inherit\n")
	compare("ttl, tos and df inherit", inherit("inherit", func(p innerProbe) uint8 { return uint8(p.ttl) }))
}

// TestHeaderOptionsAgainstKernelIPv6 is TestHeaderOptionsAgainstKernel over an IPv6
// underlay: the kernel's vxlan and vxdp with ttl 3, tos 0x88 and srcport write the same
// hop limit, traffic class (DSCP, and the inner ECN but for CE) and source port range, and
// a UDP checksum that verifies (IPv6 always carries one); then with ttl and tos inherit.
func TestHeaderOptionsAgainstKernelIPv6(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	tp, err := topo.New(ctx, topo.Options{Prefix: topo.Prefix("hdr6"),
		UnderlayA: netip.MustParsePrefix("fd77::1/64"), UnderlayB: netip.MustParsePrefix("fd77::2/64"), OverlayMTU: 1430})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := tp.Close(); err != nil {
			t.Errorf("remove topology: %v", err)
		}
	})
	// The wire addresses must have finished duplicate address detection before either
	// VTEP sends from them.
	for _, s := range []topo.Side{topo.SideA, topo.SideB} {
		for deadline := time.Now().Add(5 * time.Second); ; {
			out, err := tp.Host(s).Run(ctx, "ip", "-6", "addr", "show", "dev", tp.Wire(s), "tentative")
			if err == nil && !strings.Contains(out, "inet6") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("address on %s still tentative: %s %v", tp.Wire(s), out, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if err := tp.KernelVXLAN(ctx, topo.SideA); err != nil {
		t.Fatal(err)
	}
	kernelVXLANWith(t, tp, topo.SideA, "ttl", "3", "tos", "0x88", "srcport", "40000", "40016")
	v := startVXDPWith(t, tp, topo.SideB, "srcport: [40000, 40015]\nttl: 3\ntos: 0x88\n")
	waitRunning(t, tp.HostB)
	waitPing(t, tp.ContainerA, tp.OverlayB.Addr(), 5*time.Second)

	probes := innerProbes()
	compare := func(stage string, ttl, dscp func(p innerProbe) uint8) {
		seen := captureProbes(t, tp, 2*len(probes), func() {
			sendProbes(t, tp.ContainerA, tp.OverlayB.Addr(), probes)
			sendProbes(t, tp.ContainerB, tp.OverlayA.Addr(), probes)
		})
		kernel, vxdp := seen[tp.UnderlayA.Addr()], seen[tp.UnderlayB.Addr()]
		if len(kernel) != len(probes) || len(vxdp) != len(probes) {
			t.Fatalf("%s: captured %d of the kernel's and %d of vxdp's %d probes", stage, len(kernel), len(vxdp), len(probes))
		}
		for _, p := range probes {
			k, x := kernel[p.port], vxdp[p.port]
			ecn := uint8(p.tos) & 3
			wantK := ecn
			if ecn == 3 {
				wantK = 2 // Linux: ECT(0) for an inner CE; RFC 6040 normal mode: CE
			}
			if x.ttl != ttl(p) || k.ttl != ttl(p) || x.tos != dscp(p)|ecn || k.tos != dscp(p)|wantK {
				t.Errorf("%s: probe %+v: kernel hop limit %d class %#x, vxdp %d %#x; want %d and %#x (kernel %#x)",
					stage, p, k.ttl, k.tos, x.ttl, x.tos, ttl(p), dscp(p)|ecn, dscp(p)|wantK)
			}
			if k.srcPort < 40000 || k.srcPort >= 40016 || x.srcPort < 40000 || x.srcPort > 40015 || !k.csumVerify || !x.csumVerify {
				t.Errorf("%s: probe %+v: kernel port %d checksum %v, vxdp port %d checksum %v", stage, p, k.srcPort, k.csumVerify, x.srcPort, x.csumVerify)
			}
		}
	}
	compare("ttl 3, tos 0x88", func(innerProbe) uint8 { return 3 }, func(innerProbe) uint8 { return 0x88 })

	for _, args := range [][]string{{"tos", "inherit"}, {"ttl", "9"}} {
		cmd := append([]string{"link", "set", topo.VXLANIf, "type", "vxlan"}, args...)
		if out, err := tp.HostA.Run(ctx, "ip", cmd...); err != nil {
			t.Fatalf("ip %v: %v: %s", cmd, err, out)
		}
	}
	if err := os.WriteFile(v.Config, []byte(tp.VXDPConfig(topo.SideB, "srcport: [40000, 40015]\nttl: 9\ntos: inherit\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := v.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	compare("ttl 9, tos inherit", func(innerProbe) uint8 { return 9 }, func(p innerProbe) uint8 { return uint8(p.tos) &^ 3 })
}
