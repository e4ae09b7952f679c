//go:build linux

package dataplane

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/vxdp/vxdp/dataplane/offload"
	"github.com/vxdp/vxdp/dataplane/xsk"
)

// A worker never coalesces frames bound for a veth port: each leaves as a plain inner
// frame behind the room, while the same frames bound for a TAP with offloads become one
// super-frame.
func TestWorkerLeavesVethFramesAlone(t *testing.T) {
	g := newGRONode(t, true)
	g.v.ports[0].veth = &veth{} // VNI 42's port is a veth, VNI 43's stays a TAP
	inner := tcpSegments(t, 10)
	for _, tc := range []struct {
		vni  uint32
		want int
	}{{42, len(inner)}, {43, 1}} {
		var frames [][]byte
		for _, s := range inner {
			frames = append(frames, vxlanFrame(t, tc.vni, s))
		}
		out := g.process(frames)
		if len(out) != tc.want {
			t.Fatalf("vni %d: %d deliveries, want %d", tc.vni, len(out), tc.want)
		}
		if tc.vni != 42 {
			continue
		}
		for i, d := range out {
			if d.t != g.v.ports[0] || d.frames != 1 || !bytes.Equal(d.pkt[g.v.room:], inner[i]) {
				t.Errorf("delivery %d: port %s, %d frames, frame equal %v", i, d.t.port.dev(), d.frames, bytes.Equal(d.pkt[g.v.room:], inner[i]))
			}
		}
	}
}

// vethNS is a pair of throwaway namespaces for a veth port: the test goroutine, locked to
// its thread, runs in host (as vxdp does in its own), and container takes the peer.
type vethNS struct {
	host, container string
}

// enterVethNS creates the namespaces, moves the test goroutine into host, and undoes both
// at cleanup.
func enterVethNS(t testing.TB, tag string) vethNS {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces, veth pairs, XDP programs and AF_XDP sockets")
	}
	ns := vethNS{
		host:      fmt.Sprintf("vxdp-dp-%d-%s-h", os.Getpid(), tag),
		container: fmt.Sprintf("vxdp-dp-%d-%s-c", os.Getpid(), tag),
	}
	for _, n := range []string{ns.host, ns.container} {
		if out, err := exec.Command("ip", "netns", "add", n).CombinedOutput(); err != nil {
			t.Fatalf("add netns %s: %v: %s", n, err, out)
		}
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", n).CombinedOutput(); err != nil {
				t.Errorf("delete netns %s: %v: %s", n, err, out)
			}
		})
	}
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	h, err := netns.GetFromName(ns.host)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := netns.Set(h); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// If switching back fails the thread stays locked and dies with the goroutine.
		if err := netns.Set(orig); err != nil {
			t.Errorf("return to own netns: %v", err)
		} else {
			runtime.UnlockOSThread()
		}
		orig.Close()
	})
	return ns
}

func (ns vethNS) path() string { return "/run/netns/" + ns.container }

// inContainer runs fn in the container namespace.
func (ns vethNS) inContainer(t *testing.T, fn func() error) {
	t.Helper()
	h, err := netns.GetFromName(ns.container)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := inNetns(h, fn); err != nil {
		t.Fatal(err)
	}
}

// packetSocket opens an AF_PACKET socket on the container's eth0, with a receive timeout.
func (ns vethNS) packetSocket(t *testing.T) (fd, ifindex int) {
	t.Helper()
	ns.inContainer(t, func() error {
		l, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		ifindex = l.Attrs().Index
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifindex})
	})
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 200_000}); err != nil {
		t.Fatal(err)
	}
	return fd, ifindex
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// markedFrame is a UDP frame from src whose payload carries id, so that the kernel's own
// traffic (IPv6 neighbour discovery of the peer) is told apart.
func markedFrame(t *testing.T, src, dst []byte, id int) []byte {
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: []byte{10, 9, 0, 1}, DstIP: []byte{10, 9, 0, 2}}
	udp := &layers.UDP{SrcPort: 7000, DstPort: 7001}
	if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	return serialize(t, &layers.Ethernet{SrcMAC: src, DstMAC: dst, EthernetType: layers.EthernetTypeIPv4},
		ip, udp, gopacket.Payload(fmt.Sprintf("vxdp veth test %04d", id)))
}

// TestVethPort opens a veth port, checks what openVeth made of it, carries frames both
// ways through its AF_XDP socket, and checks that close leaves nothing.
func TestVethPort(t *testing.T) {
	ns := enterVethNS(t, "veth")
	p := Port{Veth: "vxv0", Netns: ns.path(), Ifname: "eth0", MTU: 1400}
	tp, replaced, err := openVeth(p, 0)
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			tp.close()
		}
	})
	if replaced {
		t.Error("openVeth replaced a veth in a fresh namespace")
	}

	// The host end: here, up, with the MTU and the port program, and no IPv6 address.
	host, err := netlink.LinkByName("vxv0")
	if err != nil {
		t.Fatal(err)
	}
	if a := host.Attrs(); a.MTU != 1400 || a.Flags&unix.IFF_UP == 0 || a.Xdp == nil || !a.Xdp.Attached || a.NumRxQueues != vethQueues {
		t.Errorf("host end: mtu %d, flags %v, xdp %+v, %d rx queues", a.MTU, a.Flags, a.Xdp, a.NumRxQueues)
	}
	if addrs, err := netlink.AddrList(host, netlink.FAMILY_ALL); err != nil || len(addrs) != 0 {
		t.Errorf("host end has addresses %v (%v), want none", addrs, err)
	}
	// The peer: in the container as eth0, up, with the MTU, the MAC the FDB gets, and no
	// TX checksum offload.
	var peer netlink.Link
	ns.inContainer(t, func() (err error) {
		peer, err = netlink.LinkByName("eth0")
		return err
	})
	if a := peer.Attrs(); a.MTU != 1400 || a.Flags&unix.IFF_UP == 0 || !bytes.Equal(a.HardwareAddr, tp.mac[:]) {
		t.Errorf("peer: mtu %d, flags %v, mac %v (port has %x)", a.MTU, a.Flags, a.HardwareAddr, tp.mac)
	}
	out, err := exec.Command("ip", "netns", "exec", ns.container, "ethtool", "-k", "eth0").CombinedOutput()
	if err != nil {
		t.Fatalf("ethtool: %v: %s", err, out)
	}
	if !strings.Contains(string(out), "tx-checksumming: off") {
		t.Errorf("the peer's TX checksum offload is on:\n%s", out)
	}

	fd, ifindex := ns.packetSocket(t)
	hostMAC := host.Attrs().HardwareAddr

	t.Run("ContainerToSocket", func(t *testing.T) {
		want := markedFrame(t, tp.mac[:], hostMAC, 1)
		sa := &unix.SockaddrLinklayer{Ifindex: ifindex, Halen: 6}
		if err := unix.Sendto(fd, want, 0, sa); err != nil {
			t.Fatal(err)
		}
		s := tp.veth.socks[0]
		descs := make([]xsk.Desc, 16)
		found := false
		for deadline := time.Now().Add(2 * time.Second); !found && time.Now().Before(deadline); {
			n := s.Receive(descs)
			for _, d := range descs[:n] {
				f := s.FrameWithRoom(d, 70)
				if f != nil && bytes.Equal(f[70:], want) {
					found = true
				}
			}
			s.Fill(descs[:n])
			if n == 0 {
				time.Sleep(5 * time.Millisecond)
			}
		}
		if !found {
			t.Fatal("the frame the container sent did not reach the port's socket")
		}
		if st := tp.veth.stats(); st.XDP.Redirected == 0 || st.XDP.DropNoSocket != 0 || st.Socket.Received == 0 {
			t.Errorf("stats %+v", st)
		}
	})

	t.Run("BatchToContainer", func(t *testing.T) {
		v := &VTEP{log: slog.New(slog.NewTextHandler(io.Discard, nil)), room: offload.HdrLen}
		var c counters
		var b vethBatch
		const n = 20
		for i := range n {
			// Deliveries carry room for a virtio_net_hdr in front, as the workers queue them.
			pkt := append(make([]byte, v.room), markedFrame(t, hostMAC, tp.mac[:], 100+i)...)
			b.pend = append(b.pend, delivery{t: tp, pkt: pkt, frames: 1, bytes: uint32(len(pkt) - v.room)})
		}
		b.flush(v, &c)
		if len(b.pend) != 0 || c.inPackets.Load() != n || c.drops[DropTxFull].Load() != 0 {
			t.Fatalf("after flush: %d pending, %d delivered, %d dropped", len(b.pend), c.inPackets.Load(), c.drops[DropTxFull].Load())
		}
		buf := make([]byte, 2048)
		next := 100
		for deadline := time.Now().Add(2 * time.Second); next < 100+n && time.Now().Before(deadline); {
			m, _, err := unix.Recvfrom(fd, buf, 0)
			if err != nil {
				continue
			}
			if want := markedFrame(t, hostMAC, tp.mac[:], next); bytes.Equal(buf[:m], want) {
				next++
			}
		}
		if next != 100+n {
			t.Fatalf("the container received frames 100..%d in order, want 100..%d", next-1, 100+n-1)
		}
		if tx := tp.veth.stats().Socket.Transmitted; tx != n {
			t.Errorf("socket transmitted %d frames, want %d", tx, n)
		}
	})

	t.Run("BatchNoAllocs", func(t *testing.T) {
		v := &VTEP{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
		var c counters
		var b vethBatch
		frame := markedFrame(t, hostMAC, tp.mac[:], 0)
		other := &tap{veth: tp.veth} // a second port: flush sorts the deliveries by port
		fill := func() {
			for i := range 32 {
				d := delivery{t: tp, pkt: frame, frames: 1}
				if i%3 == 0 {
					d.t = other
				}
				b.pend = append(b.pend, d)
			}
		}
		fill()
		b.flush(v, &c) // grows the slices once
		if a := testing.AllocsPerRun(50, func() { fill(); b.flush(v, &c) }); a != 0 {
			t.Errorf("%.1f allocations per micro-flow of deliveries", a)
		}
	})

	if err := tp.close(); err != nil {
		t.Fatal(err)
	}
	closed = true
	if _, err := netlink.LinkByName("vxv0"); !errors.As(err, &netlink.LinkNotFoundError{}) {
		t.Errorf("host end still there after close: %v", err)
	}
	ns.inContainer(t, func() error {
		if _, err := netlink.LinkByName("eth0"); !errors.As(err, &netlink.LinkNotFoundError{}) {
			t.Errorf("peer still there after close: %v", err)
		}
		return nil
	})
}

// TestVethReplacesStale: a veth of the port's name left behind (by a vxdp that died) is
// replaced; a device of that name of another kind is an error, and left alone.
func TestVethReplacesStale(t *testing.T) {
	ns := enterVethNS(t, "stale")
	p := Port{Veth: "vxv0", Netns: ns.path(), Ifname: "eth0", MTU: 1450}
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "vxv0"}, PeerName: "vxv0p"}); err != nil {
		t.Fatal(err)
	}
	tp, replaced, err := openVeth(p, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !replaced {
		t.Error("a veth of the port's name was there, and openVeth did not say it replaced it")
	}
	if _, err := netlink.LinkByName("vxv0p"); err == nil {
		t.Error("the stale veth's peer is still there")
	}
	if err := tp.close(); err != nil {
		t.Fatal(err)
	}

	if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "vxv0"}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := openVeth(p, 0); err == nil || !strings.Contains(err.Error(), "not a veth") {
		t.Errorf("openVeth over a bridge: %v, want an error saying it is not a veth", err)
	}
	if l, err := netlink.LinkByName("vxv0"); err != nil || l.Type() != "bridge" {
		t.Errorf("the bridge was touched: %v, %v", l, err)
	}
}

// TestVethOpenFailsClean: when the peer cannot be made (its name is taken in the
// container), openVeth fails and leaves nothing behind.
func TestVethOpenFailsClean(t *testing.T) {
	ns := enterVethNS(t, "fail")
	ns.inContainer(t, func() error {
		return netlink.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "eth0"}})
	})
	_, _, err := openVeth(Port{Veth: "vxv0", Netns: ns.path(), Ifname: "eth0", MTU: 1450}, 0)
	if err == nil {
		t.Fatal("openVeth succeeded with the peer's name taken")
	}
	if _, lerr := netlink.LinkByName("vxv0"); !errors.As(lerr, &netlink.LinkNotFoundError{}) {
		t.Errorf("host end left behind after %v", err)
	}
}
