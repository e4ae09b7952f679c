//go:build linux

package xsk

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// nsSeq numbers the namespaces of one test binary, so that names stay unique.
var nsSeq atomic.Int32

// vethNet is a throwaway network namespace holding a veth pair a <-> b, each end with
// `queues` RX and TX queues, and an XDP program on b that redirects every packet to the
// AF_XDP socket registered under its RX queue in xsks (XDP_PASS if none).
type vethNet struct {
	name   string
	queues int
	a, b   int // ifindexes of the two ends
	macA   net.HardwareAddr
	macB   net.HardwareAddr
	xsks   *ebpf.Map
	xdp    link.Link
	native bool // XDP attached in driver (native) mode rather than generic
}

// requireRoot skips the test when not root: the tests need namespaces, veth and XDP.
func requireRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("needs root: creates network namespaces, veth pairs, XDP programs and AF_XDP sockets")
	}
}

// run runs a command and fails the test on error.
func run(tb testing.TB, name string, args ...string) {
	tb.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		tb.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// newVethNet builds the namespace, the veth pair and the XDP program; t.Cleanup undoes it
// all, even on failure.
func newVethNet(tb testing.TB, queues int) *vethNet {
	tb.Helper()
	return newVethNetMTU(tb, queues, 0)
}

// newVethNetMTU is newVethNet with both ends at mtu (0 leaves the default) and, for an mtu,
// an XDP program that declares frags (BPF_F_XDP_HAS_FRAGS, what SEC("xdp.frags") sets), so
// that native XDP on the veth takes frames longer than a page.
func newVethNetMTU(tb testing.TB, queues, mtu int) *vethNet {
	tb.Helper()
	requireRoot(tb)
	if _, err := exec.LookPath("ip"); err != nil {
		tb.Fatalf("the xsk tests need iproute2's ip: %v", err)
	}
	n := &vethNet{name: fmt.Sprintf("vxdp-xsk-%d-%d", os.Getpid(), nsSeq.Add(1)), queues: queues}
	run(tb, "ip", "netns", "add", n.name)
	tb.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", n.name).CombinedOutput(); err != nil {
			tb.Errorf("delete netns %s: %v\n%s", n.name, err, out)
		}
	})
	// No IPv6: its router solicitations would be extra frames on the wire.
	run(tb, "ip", "netns", "exec", n.name, "sysctl", "-qw",
		"net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
	q := fmt.Sprint(queues)
	run(tb, "ip", "-n", n.name, "link", "add", "name", "veth-a", "numtxqueues", q, "numrxqueues", q,
		"type", "veth", "peer", "name", "veth-b", "numtxqueues", q, "numrxqueues", q)
	run(tb, "ip", "-n", n.name, "link", "set", "dev", "veth-a", "up")
	run(tb, "ip", "-n", n.name, "link", "set", "dev", "veth-b", "up")
	var progFlags uint32
	if mtu > 0 {
		for _, dev := range []string{"veth-a", "veth-b"} {
			run(tb, "ip", "-n", n.name, "link", "set", "dev", dev, "mtu", fmt.Sprint(mtu))
		}
		progFlags = unix.BPF_F_XDP_HAS_FRAGS
	}

	xsks, err := ebpf.NewMap(&ebpf.MapSpec{
		Name: "xsks", Type: ebpf.XSKMap, KeySize: 4, ValueSize: 4, MaxEntries: uint32(queues),
	})
	if err != nil {
		tb.Fatalf("create xskmap: %v", err)
	}
	tb.Cleanup(func() { xsks.Close() })
	n.xsks = xsks
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:    "redirect_xsk",
		Type:    ebpf.XDP,
		Flags:   progFlags,
		License: "GPL",
		Instructions: asm.Instructions{
			// return bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);
			asm.LoadMem(asm.R2, asm.R1, 16, asm.Word), // struct xdp_md: rx_queue_index at 16
			asm.LoadMapPtr(asm.R1, xsks.FD()),
			asm.Mov.Imm(asm.R3, 2), // XDP_PASS when the slot is empty
			asm.FnRedirectMap.Call(),
			asm.Return(),
		},
	})
	if err != nil {
		tb.Fatalf("load xdp program: %v", err)
	}
	tb.Cleanup(func() { prog.Close() })

	n.in(tb, func() error {
		for _, e := range []struct {
			name string
			idx  *int
			mac  *net.HardwareAddr
		}{{"veth-a", &n.a, &n.macA}, {"veth-b", &n.b, &n.macB}} {
			ifi, err := net.InterfaceByName(e.name)
			if err != nil {
				return err
			}
			*e.idx, *e.mac = ifi.Index, ifi.HardwareAddr
		}
		l, err := link.AttachXDP(link.XDPOptions{Program: prog, Interface: n.b, Flags: link.XDPDriverMode})
		if err == nil {
			n.native = true
		} else {
			l, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: n.b, Flags: link.XDPGenericMode})
		}
		if err != nil {
			return fmt.Errorf("attach xdp to b: %w", err)
		}
		n.xdp = l
		return nil
	})
	tb.Cleanup(func() { n.xdp.Close() })
	return n
}

// in runs f on a fresh OS thread moved into the namespace. The goroutine exits with the
// thread still locked, so the runtime discards the thread instead of reusing it elsewhere.
func (n *vethNet) in(tb testing.TB, f func() error) {
	tb.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		h, err := netns.GetFromName(n.name)
		if err != nil {
			errc <- fmt.Errorf("open netns %s: %w", n.name, err)
			return
		}
		err = netns.Set(h)
		h.Close()
		if err != nil {
			errc <- fmt.Errorf("enter netns %s: %w", n.name, err)
			return
		}
		errc <- f()
	}()
	if err := <-errc; err != nil {
		tb.Fatal(err)
	}
}

// open opens a socket on queue q of b and registers it in the XSKMAP.
func (n *vethNet) open(tb testing.TB, o Options) *Socket {
	tb.Helper()
	o.Ifindex = n.b
	var s *Socket
	n.in(tb, func() error {
		var err error
		s, err = Open(o)
		return err
	})
	tb.Cleanup(func() { s.Close() })
	if err := n.xsks.Update(uint32(o.Queue), uint32(s.FD()), ebpf.UpdateAny); err != nil {
		tb.Fatalf("register socket of queue %d: %v", o.Queue, err)
	}
	return s
}

// packetSocket opens an AF_PACKET socket on ifindex (in the namespace) that receives
// every protocol if recv, and only sends otherwise. It times reads out after 50 ms.
func (n *vethNet) packetSocket(tb testing.TB, ifindex int, recv bool) int {
	tb.Helper()
	fd := -1
	n.in(tb, func() error {
		proto := uint16(0)
		if recv {
			proto = htons(unix.ETH_P_ALL)
		}
		var err error
		if fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(proto)); err != nil {
			return fmt.Errorf("create packet socket: %w", err)
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: proto, Ifindex: ifindex}); err != nil {
			unix.Close(fd)
			return fmt.Errorf("bind packet socket: %w", err)
		}
		return nil
	})
	tb.Cleanup(func() { unix.Close(fd) })
	tv := unix.NsecToTimeval((50 * time.Millisecond).Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		tb.Fatalf("set packet socket timeout: %v", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20); err != nil {
		tb.Fatalf("size packet socket buffer: %v", err)
	}
	return fd
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// testPort is the UDP destination port of the test frames.
const testPort = 9999

// testMagic starts the UDP payload of every test frame.
var testMagic = [8]byte{'v', 'x', 'd', 'p', 'x', 's', 'k', '1'}

// testFrame builds the Ethernet/IPv4/UDP frame number seq from src to dst: its length
// (64 to 1514 bytes), UDP source port and payload all derive from seq, so a receiver can
// rebuild it and compare every byte.
func testFrame(buf []byte, src, dst net.HardwareAddr, seq uint32) []byte {
	const ethLen, ipLen, udpLen = 14, 20, 8
	size := 64 + int(seq*97%1451)
	b := buf[:size]
	copy(b[0:6], dst)
	copy(b[6:12], src)
	binary.BigEndian.PutUint16(b[12:], unix.ETH_P_IP)
	ip := b[ethLen:]
	ip[0], ip[1] = 0x45, 0
	binary.BigEndian.PutUint16(ip[2:], uint16(size-ethLen))
	binary.BigEndian.PutUint16(ip[4:], uint16(seq))
	ip[6], ip[7], ip[8], ip[9] = 0x40, 0, 64, unix.IPPROTO_UDP
	ip[10], ip[11] = 0, 0
	copy(ip[12:16], []byte{10, 99, 0, 1})
	copy(ip[16:20], []byte{10, 99, 0, 2})
	var sum uint32
	for i := 0; i < ipLen; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
	udp := ip[ipLen:]
	binary.BigEndian.PutUint16(udp[0:], uint16(20000+seq%4096))
	binary.BigEndian.PutUint16(udp[2:], testPort)
	binary.BigEndian.PutUint16(udp[4:], uint16(size-ethLen-ipLen))
	binary.BigEndian.PutUint16(udp[6:], 0)
	pay := udp[udpLen:]
	copy(pay, testMagic[:])
	binary.BigEndian.PutUint32(pay[8:], seq)
	for i := 12; i < len(pay); i++ {
		pay[i] = byte(seq*31 + uint32(i)*7)
	}
	return b
}

// testSeq returns the sequence number of a test frame, or false for any other frame.
func testSeq(f []byte) (uint32, bool) {
	const payOff = 14 + 20 + 8
	if len(f) < payOff+12 || binary.BigEndian.Uint16(f[12:]) != unix.ETH_P_IP || f[23] != unix.IPPROTO_UDP ||
		binary.BigEndian.Uint16(f[36:]) != testPort || [8]byte(f[payOff:payOff+8]) != testMagic {
		return 0, false
	}
	return binary.BigEndian.Uint32(f[payOff+8:]), true
}

// recvPacket reads one frame from an AF_PACKET socket into buf; ok is false on timeout.
func recvPacket(fd int, buf []byte) (int, bool, error) {
	n, _, err := unix.Recvfrom(fd, buf, 0)
	if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	return n, true, nil
}
