//go:build linux

package dataplane

import (
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"syscall"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// tap is a local port: a TAP device whose file descriptor vxdp holds. The device is not
// persistent, so the kernel removes it when the descriptor closes, also when vxdp dies.
type tap struct {
	port  Port
	index int // position in VTEP.ports, the FDB's local-port index
	file  *os.File
	raw   syscall.RawConn
	mac   [6]byte
	net   *network // the VNI the port belongs to
	// vnet: every frame read or written has a virtio_net_hdr in front (IFF_VNET_HDR), and
	// the kernel hands over and takes TSO super-frames (TUNSETOFFLOAD). uso: UDP too.
	vnet, uso bool
	// closed is set before the descriptor closes, so a reader knows the error is ours.
	closed atomic.Bool
	errs   portErrors // TAP read and write errors, for metrics
}

// tapGSOMaxSegs caps the segments of a super-frame the kernel hands a TAP with offloads
// (the device's gso_max_segs): egress cuts one super-frame into at most this many frames
// at once. 64 segments of a 1410-byte MSS fill the 64 KB a super-frame may carry; a
// smaller MSS gives smaller super-frames rather than more segments.
const tapGSOMaxSegs = 64

// tapOffloads are the TUNSETOFFLOAD flags of a TAP with offloads: checksum offload and
// TSO for IPv4 and IPv6; tapUSO adds UDP segmentation where the kernel has it (6.2+).
const (
	tapOffloads = unix.TUN_F_CSUM | unix.TUN_F_TSO4 | unix.TUN_F_TSO6
	tapUSO      = unix.TUN_F_USO4 | unix.TUN_F_USO6
)

// openTAP creates the TAP device of p, moves it into p.Netns under p.Ifname, sets its MTU
// and brings it up; with offload, frames cross it behind a virtio_net_hdr and may be
// super-frames. On error nothing is left behind.
func openTAP(p Port, index int, offload bool) (_ *tap, err error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/net/tun: %w", err)
	}
	flags := uint16(unix.IFF_TAP | unix.IFF_NO_PI)
	if offload {
		flags |= unix.IFF_VNET_HDR
	}
	ifr, err := unix.NewIfreq(p.TAP)
	if err == nil {
		ifr.SetUint16(flags)
		err = unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr)
	}
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("create tap %s: %w", p.TAP, err)
	}
	uso := false
	if offload {
		uso = unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, tapOffloads|tapUSO) == nil
		if !uso {
			if err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, tapOffloads); err != nil {
				unix.Close(fd)
				return nil, fmt.Errorf("enable offloads on tap %s: %w", p.TAP, err)
			}
		}
	}
	// Only now may the descriptor enter Go's poller: before TUNSETIFF the tun driver's poll
	// reports an error without registering a wait queue, and epoll would never wake.
	file := os.NewFile(uintptr(fd), "tap:"+p.TAP)
	defer func() {
		if err != nil {
			file.Close()
		}
	}()
	link, err := netlink.LinkByName(p.TAP)
	if err != nil {
		return nil, fmt.Errorf("find tap %s: %w", p.TAP, err)
	}
	if err := netlink.LinkSetMTU(link, p.MTU); err != nil {
		return nil, fmt.Errorf("set mtu %d on tap %s: %w", p.MTU, p.TAP, err)
	}
	if offload {
		if err := netlink.LinkSetGSOMaxSegs(link, tapGSOMaxSegs); err != nil {
			return nil, fmt.Errorf("set gso_max_segs %d on tap %s: %w", tapGSOMaxSegs, p.TAP, err)
		}
	}
	h := &netlink.Handle{}
	if p.Netns != "" {
		ns, err := netns.GetFromPath(p.Netns)
		if err != nil {
			return nil, fmt.Errorf("open netns %s: %w", p.Netns, err)
		}
		defer ns.Close()
		if err := netlink.LinkSetNsFd(link, int(ns)); err != nil {
			return nil, fmt.Errorf("move tap %s into %s: %w", p.TAP, p.Netns, err)
		}
		if h, err = netlink.NewHandleAt(ns); err != nil {
			return nil, fmt.Errorf("netlink in %s: %w", p.Netns, err)
		}
		defer h.Close()
		if link, err = h.LinkByName(p.TAP); err != nil {
			return nil, fmt.Errorf("find tap %s in %s: %w", p.TAP, p.Netns, err)
		}
	}
	if p.Ifname != "" && p.Ifname != p.TAP {
		if err := h.LinkSetName(link, p.Ifname); err != nil {
			return nil, fmt.Errorf("rename tap %s to %s: %w", p.TAP, p.Ifname, err)
		}
	}
	if err := h.LinkSetUp(link); err != nil {
		return nil, fmt.Errorf("set tap %s up: %w", p.name(), err)
	}
	raw, err := file.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("tap %s: %w", p.TAP, err)
	}
	t := &tap{port: p, index: index, file: file, raw: raw, vnet: offload, uso: uso}
	copy(t.mac[:], link.Attrs().HardwareAddr)
	return t, nil
}

// MAC returns the TAP device's own hardware address.
func (t *tap) MAC() net.HardwareAddr { return t.mac[:] }

// write delivers one frame to the container. The TAP never blocks a writer: when its queue
// is full the kernel drops and counts the frame itself. Going through the os.File (not the
// raw descriptor) makes a write racing with close fail cleanly instead of hitting a reused
// descriptor.
func (t *tap) write(frame []byte) error {
	_, err := t.file.Write(frame)
	return err
}

// close removes the TAP device.
func (t *tap) close() error {
	t.closed.Store(true)
	return t.file.Close()
}

// tapReader reads frames from a TAP in batches: it waits in Go's poller for the first
// frame and then takes what is already queued, up to the batch size, without blocking.
// The read callback is bound once, so a batch allocates nothing.
type tapReader struct {
	t      *tap
	bufs   [][]byte
	sizes  []int
	offset int // headroom left free in front of each frame for the outer headers
	n      int
	err    error
	readFn func(fd uintptr) bool
}

func newTapReader(t *tap, batch, offset, frameSize int) *tapReader {
	r := &tapReader{t: t, bufs: make([][]byte, batch), sizes: make([]int, batch), offset: offset}
	for i := range r.bufs {
		r.bufs[i] = make([]byte, offset+frameSize)
	}
	r.readFn = r.read
	return r
}

// readBatch fills r.bufs[:n] (frames at r.offset, lengths in r.sizes) and returns n.
func (r *tapReader) readBatch() (int, error) {
	r.n, r.err = 0, nil
	if err := r.t.raw.Read(r.readFn); err != nil {
		return 0, err
	}
	return r.n, r.err
}

func (r *tapReader) read(fd uintptr) bool {
	for r.n < len(r.bufs) {
		m, err := unix.Read(int(fd), r.bufs[r.n][r.offset:])
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return r.n > 0 // nothing yet: park in the poller
		case err != nil:
			r.err = fmt.Errorf("read tap %s: %w", r.t.port.TAP, err)
			return true
		}
		r.sizes[r.n] = m
		r.n++
	}
	return true
}
