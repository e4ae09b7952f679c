//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vxdp/vxdp/internal/topo"
)

// Jumbo frames: an underlay MTU of 9000 and an overlay MTU of 8950, as data centre fabrics
// run them. A frame of the wire's MTU spans three UMEM frames of vxdp's AF_XDP sockets.
const (
	jumboWireMTU    = 9000
	jumboOverlayMTU = 8950
)

// newJumboTopology is newTopology with a 9000-byte wire and 8950-byte containers.
func newJumboTopology(t *testing.T, tag string) *topo.Topology {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tp, err := topo.New(ctx, topo.Options{Prefix: topo.Prefix(tag), WireMTU: jumboWireMTU, OverlayMTU: jumboOverlayMTU})
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

func TestJumboKernelVXLANToVXDP(t *testing.T) {
	needRoot(t)
	tp := newJumboTopology(t, "jk")
	if err := tp.KernelVXLAN(context.Background(), topo.SideA); err != nil {
		t.Fatal(err)
	}
	v := startVXDP(t, tp, topo.SideB)
	checkJumbo(t, tp, v)
}

func TestJumboVXDPBothHosts(t *testing.T) {
	needRoot(t)
	tp := newJumboTopology(t, "jv")
	startVXDP(t, tp, topo.SideA)
	v := startVXDP(t, tp, topo.SideB)
	checkJumbo(t, tp, v)
}

// checkJumbo runs the jumbo checks both ways: DF pings of every size up to the overlay's
// MTU, a byte-checked TCP transfer, 8 KB UDP datagrams with DF set; then it checks that
// vxdp on host B ran with multi-buffer sockets and dropped nothing for its size.
func checkJumbo(t *testing.T, tp *topo.Topology, v *topo.VXDP) {
	waitPing(t, tp.ContainerA, tp.OverlayB.Addr(), 5*time.Second)
	for _, s := range []topo.Side{topo.SideA, topo.SideB} {
		t.Run("PingEverySize"+s.String(), func(t *testing.T) {
			pingSweep(t, tp.Container(s), tp.Overlay(s.Other()).Addr().AsSlice(), jumboOverlayMTU-28)
		})
	}
	for _, s := range []topo.Side{topo.SideA, topo.SideB} {
		t.Run("TCPTransfer"+s.String(), func(t *testing.T) { checkTransfer(t, tp, s, 32<<20) })
	}
	for _, s := range []topo.Side{topo.SideA, topo.SideB} {
		t.Run("UDP8K"+s.String(), func(t *testing.T) { udpDF(t, tp, s, 8192, 200) })
	}
	if got := v.Log(); !bytes.Contains([]byte(got), []byte("multibuffer=true")) {
		t.Errorf("vxdp on host B did not say it runs with multi-buffer sockets:\n%s", got)
	}
	if err := v.Stop(); err != nil {
		t.Fatalf("vxdp exit: %v", err)
	}
	for _, reason := range []string{"reason=too_big", "reason=inner_too_big", "reason=tx_too_long"} {
		if bytes.Contains([]byte(v.Log()), []byte(reason)) {
			t.Errorf("vxdp on host B dropped frames for their size (%s):\n%s", reason, v.Log())
		}
	}
}

// pingSweep sends, from inside ns, one ICMP echo request of every payload size from 0 to
// max bytes to dst with DF set (so no router or host on the way may fragment it), a
// window of them at a time, and checks that a reply with the same payload comes back to
// each; requests that got no reply are sent again, up to three times.
func pingSweep(t *testing.T, ns topo.NS, dst net.IP, max int) {
	var fd int
	err := ns.Do(func() (err error) {
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMP)
		return err
	})
	if err != nil {
		t.Fatalf("open raw icmp socket: %v", err)
	}
	defer unix.Close(fd)
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_DO); err != nil {
		t.Fatal(err)
	}
	// Room for a window of jumbo replies at their truesize: SO_RCVBUF is capped at
	// rmem_max, which holds about 25 of them, and a loaded machine reads late.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 16<<20); err != nil {
		t.Fatal(err)
	}
	tv := unix.NsecToTimeval((200 * time.Millisecond).Nanoseconds())
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	to := &unix.SockaddrInet4{}
	copy(to.Addr[:], dst.To4())
	id := uint16(os.Getpid()) ^ 0x5a5a
	pending := make([]int, 0, max+1)
	for size := 0; size <= max; size++ {
		pending = append(pending, size)
	}
	const window = 16
	req := make([]byte, 8+max)
	buf := make([]byte, 65536)
	// replied holds every size whose intact reply came back, whichever window it came in:
	// a reply late for its own window still counts.
	replied := make([]bool, max+1)
	for round := 0; round < 3 && len(pending) > 0; round++ {
		for i := 0; i < len(pending); i += window {
			batch := pending[i:min(i+window, len(pending))]
			for _, size := range batch {
				echoRequest(req[:8+size], id, uint16(size))
				if err := unix.Sendto(fd, req[:8+size], 0, to); err != nil {
					t.Fatalf("send echo request of %d bytes with DF: %v", size, err)
				}
			}
			waiting := len(batch)
			for waiting > 0 {
				n, _, err := unix.Recvfrom(fd, buf, 0)
				if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
					break // 200 ms without a reply: on to the next window
				}
				if err != nil {
					t.Fatal(err)
				}
				size, ok := echoReplyOf(buf[:n], id, dst)
				if !ok || size > max || replied[size] {
					continue
				}
				replied[size] = true
				if slices.Contains(batch, size) {
					waiting--
				}
			}
		}
		lost := pending[:0]
		for _, size := range pending {
			if !replied[size] {
				lost = append(lost, size)
			}
		}
		if round > 0 && len(lost) == len(pending) {
			break // a retry brought nothing back: lost for good
		}
		pending = lost
	}
	if len(pending) > 0 {
		t.Fatalf("%d of %d DF echo sizes got no intact reply after 3 tries, e.g. payloads %v", len(pending), max+1, pending[:min(10, len(pending))])
	}
}

// echoRequest fills b with an ICMP echo request whose payload derives from seq.
func echoRequest(b []byte, id, seq uint16) {
	b[0], b[1] = 8, 0
	binary.BigEndian.PutUint16(b[2:], 0)
	binary.BigEndian.PutUint16(b[4:], id)
	binary.BigEndian.PutUint16(b[6:], seq)
	for i := 8; i < len(b); i++ {
		b[i] = byte(int(seq)*7 + i)
	}
	binary.BigEndian.PutUint16(b[2:], ^onesSum(b))
}

// echoReplyOf checks an IPv4 packet from a raw ICMP socket: an intact echo reply from src
// with identifier id, whose payload is what echoRequest put in request seq and whose
// length matches seq. It returns seq, the payload size.
func echoReplyOf(pkt []byte, id uint16, src net.IP) (int, bool) {
	if len(pkt) < 20 || pkt[0]>>4 != 4 {
		return 0, false
	}
	hl := int(pkt[0]&0xf) * 4
	if len(pkt) < hl+8 || !net.IP(pkt[12:16]).Equal(src) {
		return 0, false
	}
	m := pkt[hl:]
	if m[0] != 0 || m[1] != 0 || onesSum(m) != 0xffff || binary.BigEndian.Uint16(m[4:]) != id {
		return 0, false
	}
	seq := int(binary.BigEndian.Uint16(m[6:]))
	if len(m)-8 != seq {
		return 0, false
	}
	for i := 8; i < len(m); i++ {
		if m[i] != byte(seq*7+i) {
			return 0, false
		}
	}
	return seq, true
}

// onesSum is the folded 16-bit one's complement sum of b.
func onesSum(b []byte) uint16 {
	var s uint32
	for len(b) >= 2 {
		s += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint32(b[0]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}

// udpDF sends n UDP datagrams of size bytes with DF set from the container of side s to
// the other, paced so that no socket buffer overflows, and checks that at least all but
// a few arrive, whole and unchanged (an unfragmented 8 KB datagram is one jumbo frame).
func udpDF(t *testing.T, tp *topo.Topology, s topo.Side, size, n int) {
	var rx *net.UDPConn
	err := tp.Container(s.Other()).Do(func() (err error) {
		rx, err = net.ListenUDP("udp", &net.UDPAddr{IP: tp.Overlay(s.Other()).Addr().AsSlice()})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	rx.SetReadBuffer(8 << 20)
	var tx *net.UDPConn
	err = tp.Container(s).Do(func() (err error) {
		tx, err = net.DialUDP("udp", nil, rx.LocalAddr().(*net.UDPAddr))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	raw, err := tx.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	raw.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_DO)
	})
	if serr != nil {
		t.Fatal(serr)
	}
	payload := func(i int) []byte {
		b := make([]byte, size)
		binary.BigEndian.PutUint32(b, uint32(i))
		for j := 4; j < size; j++ {
			b[j] = byte(i*13 + j)
		}
		return b
	}
	done := make(chan int, 1)
	go func() {
		got := 0
		buf := make([]byte, 65536)
		for {
			rx.SetReadDeadline(time.Now().Add(2 * time.Second))
			m, err := rx.Read(buf)
			if err != nil {
				done <- got
				return
			}
			i := int(binary.BigEndian.Uint32(buf))
			if m == size && i < n && bytes.Equal(buf[:m], payload(i)) {
				got++
			}
		}
	}()
	for i := 0; i < n; i++ {
		if _, err := tx.Write(payload(i)); err != nil {
			t.Fatalf("send datagram %d of %d bytes with DF: %v", i, size, err)
		}
		time.Sleep(200 * time.Microsecond)
	}
	got := <-done
	t.Logf("%d of %d %d-byte datagrams arrived intact", got, n, size)
	if got < n*95/100 {
		t.Fatalf("only %d of %d unfragmented %d-byte datagrams arrived intact", got, n, size)
	}
}

// TestJumboSizeDrops: vxdp's ports at MTU 1450 on a 9000-byte wire, the kernel's side at
// 8950. Every frame too large somewhere is dropped, counted and logged under a reason of
// its own: a 3000-byte echo from the kernel's side fits one UMEM frame but not the port
// (inner_too_big); an 8000-byte one is longer than the single-buffer socket takes (the
// kernel's rx_dropped); a 3000-byte one from a container whose interface was raised
// behind vxdp's back exceeds the port's MTU (too_big).
func TestJumboSizeDrops(t *testing.T) {
	needRoot(t)
	tp := newJumboTopology(t, "js")
	if err := tp.KernelVXLAN(context.Background(), topo.SideA); err != nil {
		t.Fatal(err)
	}
	cfg := strings.Replace(tp.VXDPConfig(topo.SideB, ""), fmt.Sprintf("mtu: %d", jumboOverlayMTU), "mtu: 1450", 1)
	v, err := tp.StartVXDPConfig(context.Background(), topo.SideB, vxdpBinary, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := v.Stop(); err != nil || t.Failed() {
			t.Logf("vxdp: exit %v; log:\n%s", err, v.Log())
		}
	})
	// The container's interface at 8950: what a misconfigured container would have.
	if err := tp.ContainerIf(context.Background(), topo.SideB, "eth0"); err != nil {
		t.Fatal(err)
	}
	waitPing(t, tp.ContainerA, tp.OverlayB.Addr(), 5*time.Second)
	if strings.Contains(v.Log(), "multibuffer=true") {
		t.Fatal("vxdp opened multi-buffer sockets for ports of mtu 1450")
	}
	echo(t, tp.ContainerA, tp.OverlayB.Addr().AsSlice(), 3000)
	echo(t, tp.ContainerA, tp.OverlayB.Addr().AsSlice(), 8000)
	echo(t, tp.ContainerB, tp.OverlayA.Addr().AsSlice(), 3000)
	want := []string{
		`reason=inner_too_big remote=` + tp.UnderlayA.Addr().String() + ` bytes=3042 limit=1464`,
		`reason=too_big port=` + topo.VXDPTapIf,
		`msg="af_xdp sockets dropped frames longer than they take or without a free frame" rx_dropped=`,
	}
	deadline := time.Now().Add(12 * time.Second) // the kernel's drops are looked at every 5 s
	for _, w := range want {
		for !strings.Contains(v.Log(), w) && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		if !strings.Contains(v.Log(), w) {
			t.Errorf("vxdp's log lacks %q", w)
		}
	}
}

// echo sends one ICMP echo request with payload bytes and DF set from inside ns to dst.
func echo(t *testing.T, ns topo.NS, dst net.IP, payload int) {
	t.Helper()
	err := ns.Do(func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMP)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_DO); err != nil {
			return err
		}
		to := &unix.SockaddrInet4{}
		copy(to.Addr[:], dst.To4())
		req := make([]byte, 8+payload)
		echoRequest(req, 0x1616, uint16(payload))
		return unix.Sendto(fd, req, 0, to)
	})
	if err != nil {
		t.Fatalf("send a %d-byte echo from %s: %v", payload, ns, err)
	}
}

// TestJumboNoOffload runs the jumbo checks with offload: false (one inner frame per TAP
// read or write, no GRO or GSO) and micro-flows of one frame, which with multi-buffer
// sockets still take a whole jumbo frame's UMEM frames.
func TestJumboNoOffload(t *testing.T) {
	needRoot(t)
	tp := newJumboTopology(t, "jn")
	if err := tp.KernelVXLAN(context.Background(), topo.SideA); err != nil {
		t.Fatal(err)
	}
	v := startVXDPWith(t, tp, topo.SideB, "offload: false\nmicroflow: 1\n")
	checkJumbo(t, tp, v)
}

// TestJumboVethPort runs the jumbo checks with a veth port: the port's XDP program takes
// frames longer than a page (frags) into multi-buffer sockets, and frames to the container
// leave over several UMEM frames.
func TestJumboVethPort(t *testing.T) {
	needRoot(t)
	tp := newJumboTopology(t, "jw")
	tp.VethPorts = true
	if err := tp.KernelVXLAN(context.Background(), topo.SideA); err != nil {
		t.Fatal(err)
	}
	v := startVXDP(t, tp, topo.SideB)
	checkJumbo(t, tp, v)
}
