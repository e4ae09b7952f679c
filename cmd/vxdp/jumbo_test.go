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

// TestJumboEchoWindowKernel checks pingSweep's window against the kernel's own ICMP
// responder, with no vxdp anywhere: the kernel's vxlan on both hosts of the jumbo
// NIC-like wire, container B pings container A in windows as echoWindowLen cuts them,
// over the sizes whose replies cost the most buffer per byte (just past 4 KB and 8 KB
// of skb data, and the largest), and container A must not drop one reply for its ICMP
// socket's send buffer (Icmp OutErrors). For contrast it logs what the same kernel
// answers of 32 of the largest requests sent at once.
func TestJumboEchoWindowKernel(t *testing.T) {
	needRoot(t)
	tp := newJumboTopology(t, "jw")
	for _, s := range []topo.Side{topo.SideA, topo.SideB} {
		if err := tp.KernelVXLAN(context.Background(), s); err != nil {
			t.Fatal(err)
		}
	}
	waitPing(t, tp.ContainerB, tp.OverlayA.Addr(), 5*time.Second)
	outErrors := func() int64 {
		t.Helper()
		c, err := tp.ContainerA.Netstat(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return c["Icmp.OutErrors"]
	}
	max := jumboOverlayMTU - 28
	e := newEchoSocket(t, tp.ContainerB, tp.OverlayA.Addr().AsSlice(), max)
	defer e.close()
	var sizes []int
	for _, from := range []int{3700, 7800, max - 299} {
		for size := from; size < from+300; size++ {
			sizes = append(sizes, size)
		}
	}
	before := outErrors()
	lost := 0
	for pending := sizes; len(pending) > 0; {
		batch := pending[:echoWindowLen(pending)]
		pending = pending[len(batch):]
		lost += len(e.window(t, batch))
	}
	if d := outErrors() - before; d != 0 {
		t.Errorf("container A's kernel dropped %d echo replies (Icmp OutErrors) to windows of at most %d requests and %d bytes; %d of %d requests got no reply", d, echoWindow, echoWindowBytes, lost, len(sizes))
	}
	before = outErrors()
	lost = len(e.window(t, sizes[len(sizes)-echoWindow:]))
	t.Logf("%d requests of %d to %d bytes at once: %d got no reply, Icmp OutErrors in container A +%d", echoWindow, max-echoWindow+1, max, lost, outErrors()-before)
}

// TestEchoWindowLen checks that the windows cut every size once, in order, each within
// echoWindow requests and echoWindowBytes of messages unless it is one request.
func TestEchoWindowLen(t *testing.T) {
	var pending []int
	for size := 0; size <= 65507; size += 7 {
		pending = append(pending, size)
	}
	next := 0
	for len(pending) > 0 {
		n := echoWindowLen(pending)
		if n < 1 || n > echoWindow {
			t.Fatalf("window of %d requests from size %d", n, pending[0])
		}
		sum := 0
		for _, size := range pending[:n] {
			if size != next {
				t.Fatalf("window holds size %d, want %d", size, next)
			}
			next += 7
			sum += 8 + size
		}
		if n > 1 && sum > echoWindowBytes {
			t.Fatalf("window of %d requests from size %d holds %d bytes", n, pending[0], sum)
		}
		if n < echoWindow && n < len(pending) && sum+8+pending[n] <= echoWindowBytes {
			t.Fatalf("window of %d requests from size %d leaves out size %d that fits", n, pending[0], pending[n])
		}
		pending = pending[n:]
	}
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

// A window of echo requests in flight at once: at most echoWindow requests and, unless
// one request alone is larger, at most echoWindowBytes of ICMP messages. A Linux host
// answers an echo request from one socket per CPU whose send buffer holds 2 x 64 KB
// (icmp_sk's sk_sndbuf = 2 * SKB_TRUESIZE(64 KB)), counted in skb truesize, which
// rounds a jumbo reply's 9 KB up to 16 KB: it keeps answering only while its replies
// in flight fit, and drops the others (IcmpOutErrors, IpOutDiscards) without a sound.
// A NIC, or the NIC-like wire, hands a burst of requests to the host in one poll, and
// the host answers them all before the first reply leaves: of 16 or 32 requests of
// 8.9 KB that arrive at once, a Linux host answers as few as 8 (measured with the
// kernel's vxlan on both hosts, no vxdp). 32 KB of messages costs their replies at most
// 64 KB of that buffer plus the skbs' overhead, whatever the sizes.
const (
	echoWindow      = 32
	echoWindowBytes = 32 << 10
)

// pingSweep sends, from inside ns, one ICMP echo request of every payload size from 0 to
// max bytes to dst with DF set (so no router or host on the way may fragment it), a
// window of them at a time (echoWindow), and checks that a reply with the same payload
// comes back to each while its window waits; requests that got no reply are sent
// again, up to three times. A reply that comes after its window gave up counts for
// nothing, in no later window either.
func pingSweep(t *testing.T, ns topo.NS, dst net.IP, max int) {
	e := newEchoSocket(t, ns, dst, max)
	defer e.close()
	pending := make([]int, 0, max+1)
	for size := 0; size <= max; size++ {
		pending = append(pending, size)
	}
	for round := 0; round < 3 && len(pending) > 0; round++ {
		var lost []int
		tried := len(pending)
		for len(pending) > 0 {
			batch := pending[:echoWindowLen(pending)]
			pending = pending[len(batch):]
			lost = append(lost, e.window(t, batch)...)
		}
		pending = lost
		if len(lost) == tried && round > 0 {
			break // a retry brought nothing back: lost for good
		}
	}
	if len(pending) > 0 {
		t.Fatalf("%d of %d DF echo sizes got no intact reply after 3 tries, e.g. payloads %v", len(pending), max+1, pending[:min(10, len(pending))])
	}
}

// echoSocket sends ICMP echo requests with DF set from a raw socket in a namespace to
// one destination, and reads the replies.
type echoSocket struct {
	fd  int
	to  *unix.SockaddrInet4
	dst net.IP
	id  uint16
	req []byte // room for the largest request
	buf []byte // room for any reply
}

// newEchoSocket opens an echoSocket in ns to dst for payloads of up to max bytes; a
// window waits for its replies until none has come for 200 ms.
func newEchoSocket(t *testing.T, ns topo.NS, dst net.IP, max int) *echoSocket {
	t.Helper()
	var fd int
	err := ns.Do(func() (err error) {
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMP)
		return err
	})
	if err != nil {
		t.Fatalf("open raw icmp socket: %v", err)
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_DO); err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 8<<20)
	tv := unix.NsecToTimeval((200 * time.Millisecond).Nanoseconds())
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	to := &unix.SockaddrInet4{}
	copy(to.Addr[:], dst.To4())
	return &echoSocket{
		fd: fd, to: to, dst: dst,
		id:  uint16(os.Getpid()) ^ 0x5a5a,
		req: make([]byte, 8+max),
		buf: make([]byte, 65536),
	}
}

func (e *echoSocket) close() { unix.Close(e.fd) }

// window sends one echo request of each payload size in batch at once, waits for their
// replies, and returns the sizes that got no intact one. A late reply to an earlier
// window counts for nothing: it must not end this one's wait early.
func (e *echoSocket) window(t *testing.T, batch []int) (lost []int) {
	t.Helper()
	got := make(map[int]bool, len(batch))
	for _, size := range batch {
		got[size] = false
	}
	for _, size := range batch {
		echoRequest(e.req[:8+size], e.id, uint16(size))
		if err := unix.Sendto(e.fd, e.req[:8+size], 0, e.to); err != nil {
			t.Fatalf("send echo request of %d bytes with DF: %v", size, err)
		}
	}
	for replies := 0; replies < len(batch); {
		n, _, err := unix.Recvfrom(e.fd, e.buf, 0)
		if errors.Is(err, unix.EINTR) {
			// A signal (the Go runtime's preemption, a child's exit) interrupts a socket
			// call with SO_RCVTIMEO set whatever SA_RESTART says (signal(7)): not a timeout.
			continue
		}
		if errors.Is(err, unix.EAGAIN) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		size, ok := echoReplyOf(e.buf[:n], e.id, e.dst)
		if had, in := got[size]; ok && in && !had {
			got[size] = true
			replies++
		}
	}
	for _, size := range batch {
		if !got[size] {
			lost = append(lost, size)
		}
	}
	return lost
}

// echoWindowLen returns how many of the sizes in pending, from the first, make the next
// window of echo requests: at most echoWindow, and at most echoWindowBytes of ICMP
// messages unless the first alone is larger.
func echoWindowLen(pending []int) int {
	n, sum := 0, 0
	for n < len(pending) && n < echoWindow && (n == 0 || sum+8+pending[n] <= echoWindowBytes) {
		sum += 8 + pending[n]
		n++
	}
	return n
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
	binary.BigEndian.PutUint16(b[2:], ^onesSum(b, 0))
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
	if m[0] != 0 || m[1] != 0 || onesSum(m, 0) != 0xffff || binary.BigEndian.Uint16(m[4:]) != id {
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
