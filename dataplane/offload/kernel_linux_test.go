//go:build linux

package offload

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// TestKernelTAP checks both directions against the real kernel: two network
// namespaces, each with a TAP (IFF_VNET_HDR, TUNSETOFFLOAD), joined by a shuttle in
// this process that does what vxdp does minus VXLAN: read super-frames from one TAP,
// Segment them to MTU frames, coalesce those and write the super-frames into the
// other TAP. TCP streams over IPv4 and IPv6 (and UDP with USO where the kernel has
// it) must arrive intact, the kernel must accept every write and count no checksum
// error, and both TSO reads and coalesced writes must have happened.
func TestKernelTAP(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces and TAP devices")
	}
	pid := os.Getpid()
	nsA := newTestNetns(t, fmt.Sprintf("vxdp-offload-%d-a", pid))
	nsB := newTestNetns(t, fmt.Sprintf("vxdp-offload-%d-b", pid))
	fdA, usoA := openTestTAP(t, nsA, "vxoffa", "192.0.2.1/24", "2001:db8:9::1/64")
	fdB, usoB := openTestTAP(t, nsB, "vxoffb", "192.0.2.2/24", "2001:db8:9::2/64")
	uso := usoA && usoB

	var stop atomic.Bool
	var wg sync.WaitGroup
	// One way merges in place and writes with writev, the other copies into buffers.
	ab, ba := newShuttle(t, fdA, fdB, uso, true), newShuttle(t, fdB, fdA, uso, false)
	for _, s := range []*shuttle{ab, ba} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.run(&stop)
		}()
	}
	t.Cleanup(func() {
		stop.Store(true)
		wg.Wait()
	})

	for _, addr := range []string{"192.0.2.2", "2001:db8:9::2"} {
		t.Run("tcp "+addr, func(t *testing.T) { kernelTCP(t, nsA, nsB, addr) })
	}
	if uso {
		t.Run("udp", func(t *testing.T) { kernelUDP(t, nsA, nsB) })
	} else {
		t.Log("kernel refused TUN_F_USO4|TUN_F_USO6: UDP coalescing not tested")
	}

	stop.Store(true)
	wg.Wait()
	for name, s := range map[string]*shuttle{"a->b": ab, "b->a": ba} {
		t.Logf("%s: %d reads (%d GSO), %d segments, %d writes (super-frames by GSO type %v), coalescer %+v",
			name, s.reads, s.gsoReads, s.segments, s.writes, s.written, s.c.Stats())
		if s.err != nil {
			t.Errorf("%s: %v", name, s.err)
		}
		if s.segErrs != 0 {
			t.Errorf("%s: Segment refused %d frames the kernel read out", name, s.segErrs)
		}
	}
	if ab.gsoReads == 0 || ab.written[GSOTCPv4] == 0 || ab.written[GSOTCPv6] == 0 || (uso && ab.written[GSOUDPL4] == 0) {
		t.Errorf("a->b: %d TSO/USO frames read, super-frames written by GSO type: %v", ab.gsoReads, ab.written)
	}
	for _, ns := range []netns.NsHandle{nsA, nsB} {
		inNetns(t, ns, func() {
			for _, proto := range []string{"Tcp", "Udp"} {
				if n := snmpCounter(t, proto, "InCsumErrors"); n != 0 {
					t.Errorf("%s InCsumErrors = %d", proto, n)
				}
			}
		})
	}
}

// kernelTCP sends 16 MB from a to b and 4 MB back over one connection and checks both
// arrive intact.
func kernelTCP(t *testing.T, nsA, nsB netns.NsHandle, addr string) {
	var ln net.Listener
	inNetns(t, nsB, func() {
		var err error
		if ln, err = net.Listen("tcp", net.JoinHostPort(addr, "0")); err != nil {
			t.Fatal(err)
		}
	})
	defer ln.Close()
	var conn net.Conn
	inNetns(t, nsA, func() {
		var err error
		d := net.Dialer{Timeout: 10 * time.Second}
		if conn, err = d.Dial("tcp", ln.Addr().String()); err != nil {
			t.Fatal(err)
		}
	})
	defer conn.Close()
	peer, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	deadline := time.Now().Add(60 * time.Second)
	conn.SetDeadline(deadline)
	peer.SetDeadline(deadline)

	up := randBytes(rand.New(rand.NewPCG(1, 1)), 16<<20)
	down := randBytes(rand.New(rand.NewPCG(2, 2)), 4<<20)
	var wg sync.WaitGroup
	var upSum, downSum [32]byte
	var upErr, downErr error
	wg.Add(2)
	go func() { defer wg.Done(); upSum, upErr = receive(peer, len(up)) }()
	go func() { defer wg.Done(); downSum, downErr = receive(conn, len(down)) }()
	go func() { _, _ = conn.Write(up) }()
	go func() { _, _ = peer.Write(down) }()
	wg.Wait()
	if upErr != nil || downErr != nil {
		t.Fatalf("receive: %v, %v", upErr, downErr)
	}
	if upSum != sha256.Sum256(up) || downSum != sha256.Sum256(down) {
		t.Fatal("data corrupted on the way")
	}
}

func receive(c net.Conn, n int) ([32]byte, error) {
	h := sha256.New()
	if _, err := io.CopyN(h, c, int64(n)); err != nil {
		return [32]byte{}, err
	}
	var s [32]byte
	copy(s[:], h.Sum(nil))
	return s, nil
}

// kernelUDP sends 400 datagrams of 1200 bytes from a to b, ten per send with
// UDP_SEGMENT (so the TAP reads USO super-frames), and checks each arrives.
func kernelUDP(t *testing.T, nsA, nsB netns.NsHandle) {
	var rx, tx *net.UDPConn
	inNetns(t, nsB, func() {
		var err error
		if rx, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP("192.0.2.2")}); err != nil {
			t.Fatal(err)
		}
	})
	defer rx.Close()
	_ = rx.SetReadBuffer(8 << 20)
	inNetns(t, nsA, func() {
		var err error
		if tx, err = net.DialUDP("udp4", nil, rx.LocalAddr().(*net.UDPAddr)); err != nil {
			t.Fatal(err)
		}
	})
	defer tx.Close()
	raw, err := tx.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := raw.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_UDP, unix.UDP_SEGMENT, 1200) }); err != nil || serr != nil {
		t.Fatalf("UDP_SEGMENT: %v %v", err, serr)
	}
	const n, size = 400, 1200
	seen := make([]bool, n)
	done := make(chan int)
	go func() {
		buf := make([]byte, 2000)
		got := 0
		rx.SetReadDeadline(time.Now().Add(20 * time.Second))
		for got < n {
			m, err := rx.Read(buf)
			if err != nil {
				break
			}
			i := int(buf[0])<<8 | int(buf[1])
			if m != size || i >= n || seen[i] || !bytes.Equal(buf[2:m], bytes.Repeat([]byte{byte(i)}, size-2)) {
				t.Errorf("bad datagram of %d bytes, index %d", m, i)
				break
			}
			seen[i] = true
			got++
		}
		done <- got
	}()
	msg := make([]byte, 10*size)
	for k := 0; k < n; k += 10 {
		for j := range 10 {
			d := msg[j*size : (j+1)*size]
			d[0], d[1] = byte((k+j)>>8), byte(k+j)
			for x := 2; x < size; x++ {
				d[x] = byte(k + j)
			}
		}
		if _, err := tx.Write(msg); err != nil {
			t.Fatal(err)
		}
	}
	if got := <-done; got != n {
		t.Fatalf("%d of %d datagrams arrived", got, n)
	}
}

// shuttle moves frames from one TAP to the other through Segment and a Coalescer.
type shuttle struct {
	from, to int
	c        *Coalescer
	rbuf     []byte
	slab     [][]byte // segments of one batch, held by the Coalescer until Flush
	sizes    []int
	scratch  []byte
	emit     EmitFunc
	inPlace  bool // segments offered with room, merged in place (CoalescerConfig.InPlace)

	reads, gsoReads, segments, writes, segErrs int
	written                                    map[uint8]int // super-frames written by GSO type
	err                                        error
}

func newShuttle(t *testing.T, from, to int, udp, inPlace bool) *shuttle {
	s := &shuttle{from: from, to: to, rbuf: make([]byte, MinBufLen), scratch: make([]byte, MinBufLen),
		written: make(map[uint8]int), inPlace: inPlace}
	bufs := make([][]byte, 8)
	for i := range bufs {
		bufs[i] = make([]byte, MinBufLen)
	}
	var err error
	if s.c, err = NewCoalescer(CoalescerConfig{MaxFlows: 8, UDP: udp, ReuseBuffers: true, InPlace: inPlace}, bufs); err != nil {
		t.Fatal(err)
	}
	s.slab = make([][]byte, 2048)
	for i := range s.slab {
		s.slab[i] = make([]byte, HdrLen+ethLen+testMTU)
	}
	s.sizes = make([]int, len(s.slab))
	s.emit = s.write
	return s
}

// write sends one emitted frame: a super-frame in place, a single one through scratch.
func (s *shuttle) write(_ uint32, vnetHdr, frame []byte, rest [][]byte) {
	var pkt []byte
	if rest != nil {
		if _, err := unix.Writev(s.to, append([][]byte{vnetHdr[:HdrLen+len(frame)]}, rest...)); err != nil && s.err == nil {
			s.err = fmt.Errorf("writev a super-frame of %d pieces: %w", 1+len(rest), err)
		}
		s.written[vnetHdr[1]&^GSOECN]++
		s.writes++
		return
	}
	if vnetHdr[1] != GSONone {
		pkt = vnetHdr[:HdrLen+len(frame)] // a super-frame, behind its header
		s.written[vnetHdr[1]&^GSOECN]++
	} else {
		copy(s.scratch, vnetHdr)
		copy(s.scratch[HdrLen:], frame)
		pkt = s.scratch[:HdrLen+len(frame)]
	}
	if _, err := unix.Write(s.to, pkt); err != nil && s.err == nil {
		h, _ := Decode(vnetHdr)
		s.err = fmt.Errorf("write %d bytes with %+v: %w", len(frame), h, err)
	}
	s.writes++
}

func (s *shuttle) run(stop *atomic.Bool) {
	for !stop.Load() {
		pfd := []unix.PollFd{{Fd: int32(s.from), Events: unix.POLLIN}}
		if n, err := unix.Poll(pfd, 20); n <= 0 || err != nil {
			continue
		}
		used := 0
		for used < len(s.slab)-64 {
			m, err := unix.Read(s.from, s.rbuf)
			if err != nil {
				if !errors.Is(err, unix.EAGAIN) && s.err == nil {
					s.err = fmt.Errorf("read: %w", err)
				}
				break
			}
			s.reads++
			hdr, err := Decode(s.rbuf[:m])
			if err != nil {
				s.segErrs++
				continue
			}
			if hdr.GSOType != GSONone {
				s.gsoReads++
			}
			room := 0
			if s.inPlace {
				room = HdrLen
			}
			k, err := Segment(hdr, s.rbuf[HdrLen:m], testMTU, s.slab[used:], s.sizes[used:], room)
			if err != nil {
				s.segErrs++
				continue
			}
			for i := used; i < used+k; i++ {
				if s.inPlace {
					s.c.AddWithRoom(s.slab[i][:room+s.sizes[i]], 0, s.emit)
				} else {
					s.c.Add(s.slab[i][:s.sizes[i]], s.emit)
				}
			}
			used += k
			s.segments += k
		}
		s.c.Flush(s.emit)
	}
}

// newTestNetns creates a named network namespace, removed at cleanup.
func newTestNetns(t *testing.T, name string) netns.NsHandle {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	ns, err := netns.NewNamed(name)
	if err != nil {
		t.Fatalf("create netns %s: %v", name, err)
	}
	t.Cleanup(func() {
		ns.Close()
		if err := netns.DeleteNamed(name); err != nil {
			t.Errorf("delete netns %s: %v", name, err)
		}
	})
	if err := netns.Set(orig); err != nil {
		runtime.LockOSThread() // never hand this thread back to other goroutines
		t.Fatalf("back to the original netns: %v", err)
	}
	return ns
}

// inNetns runs fn on a thread inside ns.
func inNetns(t *testing.T, ns netns.NsHandle, fn func()) {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer orig.Close()
	if err := netns.Set(ns); err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer func() {
		if err := netns.Set(orig); err != nil {
			return // the thread stays locked and dies with the goroutine
		}
		runtime.UnlockOSThread()
	}()
	fn()
}

// openTestTAP creates TAP name in ns with IFF_VNET_HDR and offloads, addresses and
// MTU 1500, up. It reports whether the kernel accepted USO.
func openTestTAP(t *testing.T, ns netns.NsHandle, name, addr4, addr6 string) (fd int, uso bool) {
	inNetns(t, ns, func() {
		var err error
		fd, err = unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(fd) })
		ifr, err := unix.NewIfreq(name)
		if err != nil {
			t.Fatal(err)
		}
		ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			t.Fatalf("create tap %s: %v", name, err)
		}
		base := unix.TUN_F_CSUM | unix.TUN_F_TSO4 | unix.TUN_F_TSO6
		uso = unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, base|unix.TUN_F_USO4|unix.TUN_F_USO6) == nil
		if !uso {
			if err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, base); err != nil {
				t.Fatalf("TUNSETOFFLOAD on %s: %v", name, err)
			}
		}
		link, err := netlink.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := netlink.LinkSetMTU(link, testMTU); err != nil {
			t.Fatal(err)
		}
		for _, a := range []string{addr4, addr6} {
			nl, err := netlink.ParseAddr(a)
			if err != nil {
				t.Fatal(err)
			}
			nl.Flags = unix.IFA_F_NODAD
			if err := netlink.AddrAdd(link, nl); err != nil {
				t.Fatalf("add %s to %s: %v", a, name, err)
			}
		}
		if err := netlink.LinkSetUp(link); err != nil {
			t.Fatal(err)
		}
	})
	return fd, uso
}

// snmpCounter reads one counter of /proc/net/snmp for the calling thread's netns.
func snmpCounter(t *testing.T, proto, name string) int {
	f, err := os.Open("/proc/thread-self/net/snmp")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var header []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || fields[0] != proto+":" {
			continue
		}
		if header == nil {
			header = fields
			continue
		}
		for i, h := range header {
			if h == name && i < len(fields) {
				n, _ := strconv.Atoi(fields[i])
				return n
			}
		}
	}
	t.Fatalf("no %s %s in /proc/net/snmp", proto, name)
	return 0
}
