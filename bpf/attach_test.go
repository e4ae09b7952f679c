//go:build linux

package bpf

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// enterNetns moves the test goroutine, locked to its thread, into a fresh
// named network namespace, and back out (deleting the namespace) at cleanup.
// Cleanups registered later (closing programs) run first.
func enterNetns(t *testing.T, suffix string) {
	t.Helper()
	requireRoot(t)
	name := fmt.Sprintf("vxdp-bpf-%d-%s", os.Getpid(), suffix)
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("get netns: %v", err)
	}
	ns, err := netns.NewNamed(name)
	if err != nil {
		// NewNamed may have switched before failing.
		if serr := netns.Set(orig); serr == nil {
			runtime.UnlockOSThread()
		}
		orig.Close()
		_ = netns.DeleteNamed(name)
		t.Fatalf("create netns %s: %v", name, err)
	}
	t.Cleanup(func() {
		// If switching back fails the thread stays locked and dies with
		// the goroutine, so the namespace cannot leak to other goroutines.
		if err := netns.Set(orig); err != nil {
			t.Errorf("return to original netns: %v", err)
		} else {
			runtime.UnlockOSThread()
		}
		orig.Close()
		ns.Close()
		if err := netns.DeleteNamed(name); err != nil {
			t.Errorf("delete netns %s: %v", name, err)
		}
	})
}

// addVeth creates an up veth pair in the current namespace and returns both
// ends.
func addVeth(t *testing.T) (netlink.Link, netlink.Link) {
	t.Helper()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "vx0", MTU: 1500}, PeerName: "vx1"}
	if err := netlink.LinkAdd(veth); err != nil {
		t.Fatalf("add veth: %v", err)
	}
	var ends [2]netlink.Link
	for i, name := range []string{"vx0", "vx1"} {
		l, err := netlink.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := netlink.LinkSetUp(l); err != nil {
			t.Fatalf("set %s up: %v", name, err)
		}
		ends[i] = l
	}
	return ends[0], ends[1]
}

// xdpState reads the XDP attachment of an interface.
func xdpState(t *testing.T, ifindex int) *netlink.LinkXdp {
	t.Helper()
	l, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		t.Fatal(err)
	}
	if x := l.Attrs().Xdp; x != nil {
		return x
	}
	return &netlink.LinkXdp{}
}

func progID(t *testing.T, p *ebpf.Program) uint32 {
	t.Helper()
	info, err := p.Info()
	if err != nil {
		t.Fatal(err)
	}
	id, ok := info.ID()
	if !ok {
		t.Fatal("kernel reports no program ID")
	}
	return uint32(id)
}

func TestAttachNativeAndClose(t *testing.T) {
	enterNetns(t, "attach")
	vx0, _ := addVeth(t)
	idx := vx0.Attrs().Index

	p := loadProgram(t, nil)
	if err := p.Attach(idx); err != nil {
		t.Fatal(err)
	}
	// veth has native XDP.
	if got := p.Mode(); got != ModeNative {
		t.Errorf("Mode() = %q, want %q", got, ModeNative)
	}
	x := xdpState(t, idx)
	if !x.Attached || x.ProgId != progID(t, p.objs.VxdpRx) {
		t.Fatalf("after Attach: xdp state %+v, want our program %d", x, progID(t, p.objs.VxdpRx))
	}
	if err := p.Attach(idx); !errors.Is(err, ErrAttached) {
		t.Errorf("second Attach: %v, want ErrAttached", err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if x := xdpState(t, idx); x.Attached {
		t.Fatalf("after Close: still attached: %+v", x)
	}
	if got := p.Mode(); got != "" {
		t.Errorf("Mode() after Close = %q", got)
	}
}

// The program declares frags (SEC("xdp.frags")): a veth takes it natively also at an MTU
// whose frames do not fit a page, where it refuses a program without them ("Peer MTU is
// too large to set XDP") and Attach would fall back to generic.
func TestAttachNativeJumbo(t *testing.T) {
	enterNetns(t, "jumbo")
	vx0, vx1 := addVeth(t)
	for _, l := range []netlink.Link{vx0, vx1} {
		if err := netlink.LinkSetMTU(l, 9000); err != nil {
			t.Fatalf("set mtu 9000: %v", err)
		}
	}
	p := loadProgram(t, nil)
	if err := p.Attach(vx0.Attrs().Index); err != nil {
		t.Fatal(err)
	}
	if got := p.Mode(); got != ModeNative {
		t.Errorf("Mode() at MTU 9000 = %q, want %q: does the program still declare frags?", got, ModeNative)
	}
}

// A bridge has no native XDP: Attach falls back to generic.
func TestAttachGenericFallback(t *testing.T) {
	enterNetns(t, "generic")
	if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br0"}}); err != nil {
		t.Fatalf("add bridge: %v", err)
	}
	l, err := netlink.LinkByName("br0")
	if err != nil {
		t.Fatal(err)
	}
	p := loadProgram(t, nil)
	if err := p.Attach(l.Attrs().Index); err != nil {
		t.Fatal(err)
	}
	if got := p.Mode(); got != ModeGeneric {
		t.Errorf("Mode() = %q, want %q", got, ModeGeneric)
	}
	if x := xdpState(t, l.Attrs().Index); !x.Attached || x.AttachMode != 2 /* XDP_ATTACHED_SKB */ {
		t.Errorf("xdp state %+v, want attached in SKB mode", x)
	}
}

func TestAttachMissingInterface(t *testing.T) {
	enterNetns(t, "missing")
	p := loadProgram(t, nil)
	err := p.Attach(4242)
	if err == nil {
		t.Fatal("Attach to a missing interface succeeded")
	}
	if want := "attach xdp to ifindex 4242: "; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error %q does not start with %q", err, want)
	}
	if p.Mode() != "" {
		t.Errorf("Mode() = %q after failed Attach", p.Mode())
	}
}

// Each subtest enters its own namespace: t.Run starts a new goroutine, which
// is not on the thread the parent moved into its namespace.
func TestDetachStale(t *testing.T) {
	t.Run("nothing attached", func(t *testing.T) {
		enterNetns(t, "stale-none")
		vx0, _ := addVeth(t)
		if err := DetachStale(vx0.Attrs().Index); err != nil {
			t.Fatalf("DetachStale with nothing attached: %v", err)
		}
	})

	for _, mode := range []struct {
		name  string
		flags int
		state uint32 // IFLA_XDP_ATTACHED
	}{{"native", unix.XDP_FLAGS_DRV_MODE, 1}, {"generic", unix.XDP_FLAGS_SKB_MODE, 2}} {
		t.Run(mode.name, func(t *testing.T) {
			enterNetns(t, "stale-"+mode.name)
			vx0, _ := addVeth(t)
			idx := vx0.Attrs().Index
			// An earlier vxdp that attached through netlink and died: the
			// attachment outlives the program's file descriptor.
			old, err := Load()
			if err != nil {
				t.Fatal(err)
			}
			if err := netlink.LinkSetXdpFdWithFlags(vx0, old.objs.VxdpRx.FD(), mode.flags); err != nil {
				old.Close()
				t.Fatalf("attach through netlink: %v", err)
			}
			old.Close()
			if x := xdpState(t, idx); !x.Attached || x.AttachMode != mode.state {
				t.Fatalf("netlink attachment: state %+v, want attached in mode %d", x, mode.state)
			}
			if err := DetachStale(idx); err != nil {
				t.Fatalf("DetachStale: %v", err)
			}
			if x := xdpState(t, idx); x.Attached {
				t.Fatalf("still attached after DetachStale: %+v", x)
			}
			if err := DetachStale(idx); err != nil {
				t.Fatalf("second DetachStale: %v", err)
			}
		})
	}

	t.Run("foreign program left alone", func(t *testing.T) {
		enterNetns(t, "stale-foreign")
		vx0, _ := addVeth(t)
		idx := vx0.Attrs().Index
		foreign, err := ebpf.NewProgram(&ebpf.ProgramSpec{
			Name: "foreign", Type: ebpf.XDP, License: "MIT",
			Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, xdpPass), asm.Return()},
		})
		if err != nil {
			t.Fatal(err)
		}
		defer foreign.Close()
		if err := netlink.LinkSetXdpFdWithFlags(vx0, foreign.FD(), unix.XDP_FLAGS_SKB_MODE); err != nil {
			t.Fatal(err)
		}
		if err := DetachStale(idx); !errors.Is(err, ErrForeignProgram) {
			t.Fatalf("DetachStale: %v, want ErrForeignProgram", err)
		}
		if x := xdpState(t, idx); x.ProgId != progID(t, foreign) {
			t.Fatalf("foreign program was touched: %+v", x)
		}
	})

	t.Run("live link reported", func(t *testing.T) {
		enterNetns(t, "stale-link")
		vx0, _ := addVeth(t)
		idx := vx0.Attrs().Index
		p := loadProgram(t, nil)
		if err := p.Attach(idx); err != nil {
			t.Fatal(err)
		}
		if err := DetachStale(idx); !errors.Is(err, ErrLinkHeld) {
			t.Fatalf("DetachStale: %v, want ErrLinkHeld", err)
		}
		if x := xdpState(t, idx); !x.Attached {
			t.Fatal("live link was detached")
		}
	})
}

// TestRedirectToSocket checks the redirect verdict end to end: a VXLAN frame
// sent into one end of a veth arrives, through the attached program, on an
// AF_XDP socket bound to queue 0 of the other end.
func TestRedirectToSocket(t *testing.T) {
	enterNetns(t, "redirect")
	vx0, vx1 := addVeth(t)
	idx := vx0.Attrs().Index

	cfg := testConfig()
	p := loadProgram(t, &cfg)
	if err := p.Attach(idx); err != nil {
		t.Fatal(err)
	}
	xsk := newTestXSK(t, idx)
	if err := p.RegisterSocket(0, xsk.fd); err != nil {
		t.Fatal(err)
	}

	frame := vxlan(t, remoteV4, localV4)
	copy(frame[0:6], vx0.Attrs().HardwareAddr)
	copy(frame[6:12], vx1.Attrs().HardwareAddr)
	stranger := vxlan(t, strangerV4, localV4)
	sendRaw(t, vx1.Attrs().Index, stranger)
	sendRaw(t, vx1.Attrs().Index, frame)

	got := xsk.receive(t, 2*time.Second)
	if !bytes.Equal(got, frame) {
		t.Fatalf("socket received %d bytes %x, want the sent frame (%d bytes)", len(got), got, len(frame))
	}
	c, err := p.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if c.Redirected != 1 || c.DropUnknownRemote != 1 || c.DropNoSocket != 0 || c.RedirectFailed != 0 {
		t.Errorf("counters %+v, want Redirected 1 and DropUnknownRemote 1", c)
	}

	// Without the socket the same frame is dropped under its own reason.
	if err := p.UnregisterSocket(0); err != nil {
		t.Fatal(err)
	}
	sendRaw(t, vx1.Attrs().Index, frame)
	deadline := time.Now().Add(2 * time.Second)
	for {
		c, err = p.Counters()
		if err != nil {
			t.Fatal(err)
		}
		if c.DropNoSocket == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if c.DropNoSocket != 1 || c.Redirected != 1 {
		t.Errorf("after UnregisterSocket: counters %+v, want DropNoSocket 1, Redirected still 1", c)
	}
}

// sendRaw transmits frame on ifindex through an AF_PACKET socket.
func sendRaw(t *testing.T, ifindex int, frame []byte) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("packet socket: %v", err)
	}
	defer unix.Close(fd)
	sa := &unix.SockaddrLinklayer{Ifindex: ifindex, Halen: 6}
	copy(sa.Addr[:], frame[:6])
	if err := unix.Sendto(fd, frame, 0, sa); err != nil {
		t.Fatalf("send frame: %v", err)
	}
}

// testXSK is the least AF_XDP socket that can receive: a UMEM, a fill ring
// stocked once, a completion ring (bind requires it) and an RX ring. The real
// ring code lives elsewhere; this only proves the redirect.
type testXSK struct {
	fd   int
	umem []byte
	rx   []byte
	off  unix.XDPMmapOffsets
}

const (
	testFrameSize = 4096
	testFrames    = 16
)

func newTestXSK(t *testing.T, ifindex int) *testXSK {
	t.Helper()
	fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("AF_XDP socket: %v", err)
	}
	x := &testXSK{fd: fd}
	t.Cleanup(func() {
		unix.Close(fd)
		for _, m := range [][]byte{x.rx, x.umem} {
			if m != nil {
				_ = unix.Munmap(m)
			}
		}
	})
	x.umem, err = unix.Mmap(-1, 0, testFrames*testFrameSize, unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatalf("mmap umem: %v", err)
	}
	reg := unix.XDPUmemReg{
		Addr: uint64(uintptr(unsafe.Pointer(&x.umem[0]))),
		Len:  uint64(len(x.umem)),
		Size: testFrameSize,
	}
	if err := setsockopt(fd, unix.XDP_UMEM_REG, unsafe.Pointer(&reg), unsafe.Sizeof(reg)); err != nil {
		t.Fatalf("XDP_UMEM_REG: %v", err)
	}
	for _, opt := range []int{unix.XDP_UMEM_FILL_RING, unix.XDP_UMEM_COMPLETION_RING, unix.XDP_RX_RING} {
		if err := unix.SetsockoptInt(fd, unix.SOL_XDP, opt, testFrames); err != nil {
			t.Fatalf("ring size option %d: %v", opt, err)
		}
	}
	size := uint32(unsafe.Sizeof(x.off))
	if _, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_XDP, unix.XDP_MMAP_OFFSETS,
		uintptr(unsafe.Pointer(&x.off)), uintptr(unsafe.Pointer(&size)), 0); e != 0 {
		t.Fatalf("XDP_MMAP_OFFSETS: %v", e)
	}

	fill, err := unix.Mmap(fd, unix.XDP_UMEM_PGOFF_FILL_RING, int(x.off.Fr.Desc)+testFrames*8,
		unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		t.Fatalf("mmap fill ring: %v", err)
	}
	defer unix.Munmap(fill)
	for i := range testFrames {
		*(*uint64)(unsafe.Pointer(&fill[x.off.Fr.Desc+uint64(i)*8])) = uint64(i * testFrameSize)
	}
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&fill[x.off.Fr.Producer])), testFrames)

	x.rx, err = unix.Mmap(fd, unix.XDP_PGOFF_RX_RING, int(x.off.Rx.Desc)+testFrames*int(unsafe.Sizeof(unix.XDPDesc{})),
		unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		t.Fatalf("mmap rx ring: %v", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrXDP{Flags: unix.XDP_COPY, Ifindex: uint32(ifindex), QueueID: 0}); err != nil {
		t.Fatalf("bind AF_XDP socket: %v", err)
	}
	return x
}

// receive waits for the first RX descriptor and returns a copy of its frame.
func (x *testXSK) receive(t *testing.T, timeout time.Duration) []byte {
	t.Helper()
	prod := (*uint32)(unsafe.Pointer(&x.rx[x.off.Rx.Producer]))
	fds := []unix.PollFd{{Fd: int32(x.fd), Events: unix.POLLIN}}
	deadline := time.Now().Add(timeout)
	for atomic.LoadUint32(prod) == 0 {
		left := time.Until(deadline)
		if left <= 0 {
			var st unix.XDPStatistics
			size := uint32(unsafe.Sizeof(st))
			unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(x.fd), unix.SOL_XDP, unix.XDP_STATISTICS,
				uintptr(unsafe.Pointer(&st)), uintptr(unsafe.Pointer(&size)), 0)
			t.Fatalf("nothing received on the AF_XDP socket in %v (socket stats %+v)", timeout, st)
		}
		if _, err := unix.Poll(fds, int(left.Milliseconds())+1); err != nil && !errors.Is(err, unix.EINTR) {
			t.Fatalf("poll: %v", err)
		}
	}
	d := *(*unix.XDPDesc)(unsafe.Pointer(&x.rx[x.off.Rx.Desc]))
	return append([]byte(nil), x.umem[d.Addr:d.Addr+uint64(d.Len)]...)
}

func setsockopt(fd, opt int, p unsafe.Pointer, n uintptr) error {
	if _, _, e := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.SOL_XDP, uintptr(opt), uintptr(p), n, 0); e != 0 {
		return e
	}
	return nil
}
