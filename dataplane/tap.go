//go:build linux

package dataplane

import (
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"sync/atomic"
	"syscall"
	"unsafe"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/vxdp/vxdp/dataplane/offload"
	"github.com/vxdp/vxdp/dataplane/packet"
	"github.com/vxdp/vxdp/dataplane/xsk"
)

// tap is a local port: a TAP device whose file descriptor vxdp holds. With ports_on_exit:
// keep (the default) the device is persistent: it stays when the descriptor closes, also
// when vxdp dies, and the next vxdp takes it over; otherwise the kernel removes it then.
type tap struct {
	port  Port
	index int // position in VTEP.ports, the FDB's local-port index
	file  *os.File
	raw   syscall.RawConn
	// fd is file's descriptor, for the mergers' io_uring batches (tapring.go), which read
	// it only under VTEP.mu shared and only while closed is unset: the file closes under
	// VTEP.mu alone.
	fd  int
	mac [6]byte
	net *network // the VNI the port belongs to
	// vnet: every frame read or written has a virtio_net_hdr in front (IFF_VNET_HDR), and
	// the kernel hands over and takes TSO super-frames (TUNSETOFFLOAD). uso: UDP too.
	vnet, uso bool
	// adopted: the device was there before this vxdp, left by an earlier one.
	adopted bool
	// closed is set before the descriptor closes, so a reader knows the error is ours.
	closed atomic.Bool
	errs   portErrors // TAP read and write errors, for metrics
	// veth is set for a veth port (veth.go): then file and raw are nil, and the frames go
	// through its AF_XDP sockets.
	veth *veth
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

// openTAP opens the TAP device of port p and brings it up in p.Netns under p's name there,
// with p's MTU. A TAP of that name already there (left by a vxdp that stopped or died) is
// taken over as it is, so the container keeps its interface, addresses and routes; a TAP
// named p.TAP in vxdp's own namespace (left by a vxdp that died while setting it up) is
// taken over and moved. Otherwise it creates one. With offload, frames cross it behind a
// virtio_net_hdr and may be super-frames.
//
// A TAP taken over stays persistent and one created is not, until setPersist: so if
// setting up the node fails, what was there stays and nothing new is left behind.
func openTAP(p Port, index int, offload bool) (_ *tap, err error) {
	var target netns.NsHandle = -1 // p.Netns, open while openTAP runs
	if p.Netns != "" {
		if target, err = netns.GetFromPath(p.Netns); err != nil {
			return nil, fmt.Errorf("open netns %s: %w", p.Netns, err)
		}
		defer target.Close()
	}
	// Where does the device stand now? In the target namespace under its final name, in
	// ours under p.TAP, or nowhere.
	inTarget, err := existingTAP(target, p.name())
	if err != nil {
		return nil, fmt.Errorf("port %s: %w", p.TAP, err)
	}
	name, where := p.name(), target
	adopted := inTarget
	if !inTarget {
		name, where = p.TAP, -1
		if adopted, err = existingTAP(-1, p.TAP); err != nil {
			return nil, fmt.Errorf("port %s: %w", p.TAP, err)
		}
	}
	fd, err := tunAttach(where, name, offload)
	if err != nil {
		verb := "create"
		if adopted {
			verb = "take over"
		}
		if errors.Is(err, unix.EBUSY) {
			return nil, fmt.Errorf("%s tap %s: another process holds it (is another vxdp running?): %w", verb, name, err)
		}
		return nil, fmt.Errorf("%s tap %s: %w", verb, name, err)
	}
	// Only now may the descriptor enter Go's poller: before TUNSETIFF the tun driver's poll
	// reports an error without registering a wait queue, and epoll would never wake.
	file := os.NewFile(uintptr(fd), "tap:"+p.TAP)
	defer func() {
		if err != nil {
			if !adopted {
				_ = unix.IoctlSetInt(fd, unix.TUNSETPERSIST, 0) // closing then removes it
			}
			file.Close()
		}
	}()
	if err := unix.IoctlSetInt(fd, unix.TUNSETPERSIST, boolInt(adopted)); err != nil {
		return nil, fmt.Errorf("set persistence of tap %s: %w", name, err)
	}
	uso := false
	if offload {
		uso = unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, tapOffloads|tapUSO) == nil
		if !uso {
			err = unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, tapOffloads)
		}
	} else {
		err = unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, 0) // an adopted TAP may have them
	}
	if err != nil {
		return nil, fmt.Errorf("set offloads of tap %s: %w", name, err)
	}
	h := &netlink.Handle{}
	if inTarget && p.Netns != "" {
		if h, err = netlink.NewHandleAt(target); err != nil {
			return nil, fmt.Errorf("netlink in %s: %w", p.Netns, err)
		}
		defer h.Close()
	}
	link, err := h.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("find tap %s: %w", name, err)
	}
	if err := h.LinkSetMTU(link, p.MTU); err != nil {
		return nil, fmt.Errorf("set mtu %d on tap %s: %w", p.MTU, name, err)
	}
	if offload {
		if err := h.LinkSetGSOMaxSegs(link, tapGSOMaxSegs); err != nil {
			return nil, fmt.Errorf("set gso_max_segs %d on tap %s: %w", tapGSOMaxSegs, name, err)
		}
	}
	if !inTarget && p.Netns != "" {
		if err := netlink.LinkSetNsFd(link, int(target)); err != nil {
			return nil, fmt.Errorf("move tap %s into %s: %w", p.TAP, p.Netns, err)
		}
		if h, err = netlink.NewHandleAt(target); err != nil {
			return nil, fmt.Errorf("netlink in %s: %w", p.Netns, err)
		}
		defer h.Close()
		if link, err = h.LinkByName(p.TAP); err != nil {
			return nil, fmt.Errorf("find tap %s in %s: %w", p.TAP, p.Netns, err)
		}
	}
	if link.Attrs().Name != p.name() {
		if err := h.LinkSetName(link, p.name()); err != nil {
			return nil, fmt.Errorf("rename tap %s to %s: %w", p.TAP, p.name(), err)
		}
	}
	if err := h.LinkSetUp(link); err != nil {
		return nil, fmt.Errorf("set tap %s up: %w", p.name(), err)
	}
	raw, err := file.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("tap %s: %w", p.TAP, err)
	}
	t := &tap{port: p, index: index, file: file, raw: raw, fd: fd, vnet: offload, uso: uso, adopted: adopted}
	copy(t.mac[:], link.Attrs().HardwareAddr)
	return t, nil
}

// existingTAP reports whether a TAP device named name exists in namespace ns (-1: the
// calling thread's). A device of that name that is not a TAP is an error: vxdp takes over
// only its own kind of device.
func existingTAP(ns netns.NsHandle, name string) (bool, error) {
	h := &netlink.Handle{}
	if ns != -1 {
		var err error
		if h, err = netlink.NewHandleAt(ns); err != nil {
			return false, fmt.Errorf("netlink: %w", err)
		}
		defer h.Close()
	}
	link, err := h.LinkByName(name)
	if errors.As(err, &netlink.LinkNotFoundError{}) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("look up %s: %w", name, err)
	}
	if t, ok := link.(*netlink.Tuntap); !ok || t.Mode != netlink.TUNTAP_MODE_TAP {
		return false, fmt.Errorf("%s exists and is a %s device, not a TAP", name, link.Type())
	}
	return true, nil
}

// tunAttach opens /dev/net/tun in namespace ns (-1: the calling thread's) and attaches it
// to the TAP named name there, creating the device if there is none. A tun descriptor
// looks devices up in the namespace it was opened in, which is why a TAP inside a
// container is opened from there. It fails with EBUSY if another process holds the device.
func tunAttach(ns netns.NsHandle, name string, vnetHdr bool) (fd int, err error) {
	if ns != -1 {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			return -1, fmt.Errorf("current netns: %w", err)
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			runtime.UnlockOSThread()
			return -1, fmt.Errorf("enter netns: %w", err)
		}
		defer func() {
			if serr := netns.Set(orig); serr != nil {
				// This thread is in the wrong namespace: keep it locked, so Go ends it
				// with the goroutine instead of running other code on it.
				err = errors.Join(err, fmt.Errorf("return to own netns: %w", serr))
				return
			}
			runtime.UnlockOSThread()
		}()
	}
	fd, err = unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open /dev/net/tun: %w", err)
	}
	flags := uint16(unix.IFF_TAP | unix.IFF_NO_PI)
	if vnetHdr {
		flags |= unix.IFF_VNET_HDR
	}
	ifr, err := unix.NewIfreq(name)
	if err == nil {
		ifr.SetUint16(flags)
		err = unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr)
	}
	if err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
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

// tapWriter writes super-frames built in place (offload.CoalescerConfig.InPlace) to TAPs
// with one gathering write each: the header and first frame, then the other frames'
// payloads where they lie in the UMEM, so that the only copy is the kernel's into its skb.
// One per merger (they write one at a time); the write callback is bound once and the
// iovecs are its own, so a write allocates nothing. Like tap.write it goes through the
// file's poller, so a write racing with close fails cleanly.
type tapWriter struct {
	iov     []unix.Iovec
	err     error
	writeFn func(fd uintptr) bool
}

func newTapWriter() *tapWriter {
	w := &tapWriter{iov: make([]unix.Iovec, 0, 1+offload.InPlaceMaxSegments)}
	w.writeFn = w.write
	return w
}

// writev writes pkt followed by the pieces of rest to t as one packet.
func (w *tapWriter) writev(t *tap, pkt []byte, rest [][]byte) error {
	w.iov = append(w.iov[:0], iovec(pkt))
	for _, b := range rest {
		w.iov = append(w.iov, iovec(b))
	}
	w.err = nil
	if err := t.raw.Write(w.writeFn); err != nil {
		return err
	}
	return w.err
}

// iovec describes b for a gathering write.
func iovec(b []byte) unix.Iovec {
	v := unix.Iovec{Base: unsafe.SliceData(b)}
	v.SetLen(len(b))
	return v
}

func (w *tapWriter) write(fd uintptr) bool {
	for {
		_, _, e := unix.Syscall(unix.SYS_WRITEV, fd, uintptr(unsafe.Pointer(unsafe.SliceData(w.iov))), uintptr(len(w.iov)))
		switch e {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false // wait in the poller, as a blocking write would
		case 0:
		default:
			w.err = e
		}
		return true
	}
}

// setPersist makes the device outlive its descriptor (TUNSETPERSIST), so that it stays,
// with the container's addresses and routes on it, when vxdp exits or dies; or not, so
// that the kernel removes it then.
func (t *tap) setPersist(on bool) error {
	if t.veth != nil {
		return nil // a veth port goes with vxdp, whatever ports_on_exit says
	}
	var err error
	cerr := t.raw.Control(func(fd uintptr) {
		err = unix.IoctlSetInt(int(fd), unix.TUNSETPERSIST, boolInt(on))
	})
	if err = errors.Join(cerr, err); err != nil {
		return fmt.Errorf("set persistence of tap %s: %w", t.port.name(), err)
	}
	return nil
}

// close lets the TAP device go: the kernel removes it unless it is persistent.
func (t *tap) close() error {
	t.closed.Store(true)
	if t.veth != nil {
		return t.veth.close()
	}
	return t.file.Close()
}

// tapReader reads frames from a TAP in batches: it waits in Go's poller for the first
// frame and then takes what is already queued, up to the batch size, without blocking.
// The read callback is bound once, so a batch allocates nothing.
//
// With a socket (newTapReader's sock), a read goes straight into a TX frame reserved from
// it, at offset, so that egress can write the outer headers in front and post the frame
// where it lies: the frame is then copied once, by the read. A read longer than what the
// TX frame holds goes on into the heap buffer (readv); it is then moved whole into the
// heap buffer, and the next read of the port goes to the heap straight away, as a stream
// of super-frames or jumbo frames would spill again. When no TX frame is free the read
// goes to the heap, as without a socket: egress never waits for one.
//
// With offloads (newTapReader's mtu), a super-frame after a super-frame is read scattered
// (readScattered): its virtio_net_hdr and headers into the heap buffer, and each segment's
// payload straight into a TX frame of its own, behind room for the outer and inner headers,
// as the last super-frame's layout predicts; offload.SegmentPlaced then only writes the
// headers. A read the prediction does not fit is moved into the heap buffer whole.
type tapReader struct {
	t *tap
	// bufs[i] is where read i of the batch landed: tx[i] if that is not nil (a reserved TX
	// frame, which the caller transmits or hands back with giveBack), else heap[i].
	bufs  [][]byte
	tx    [][]byte
	heap  [][]byte
	sizes []int
	// offset is the headroom left free in front of each frame for the outer headers, and
	// frameSize the longest read, in bytes.
	offset, frameSize int
	sock              *xsk.Socket // nil: reads go to the heap only
	// spare holds reserved TX frames that hold no read, a stack. The reader keeps them while
	// the port is busy and releases them when it waits for the next frame or stops.
	spare [][]byte
	// spilled: the last read did not fit its TX frame, so the next goes to the heap.
	spilled bool
	one     [1][]byte // a list of one frame, for Release
	iov     [2]unix.Iovec
	// Scattered reads of super-frames (mtu > 0 only): placed[i] holds the TX frames read
	// i's payload lies in, nil if it was not scattered, a view of pieces[i]; gsoHdr and
	// gsoSeg are the header length and payload per segment of the port's last
	// super-frame, gsoSegs its segments (0: no prediction).
	mtu                     int
	placed, pieces          [][][]byte
	gsoHdr, gsoSeg, gsoSegs int
	iovs                    []unix.Iovec
	// noScatter counts down the super-frames read whole after egress had to gather one
	// (it went to a local port): a stream toward one would be copied twice.
	noScatter int
	n         int
	err       error
	readFn    func(fd uintptr) bool
}

// tapReserveChunk is how many TX frames a reader reserves at once when it has no spare
// one: a few, so that a busy port takes the socket's lock once per several reads, and an
// idle one that reads a single frame gives back little.
const tapReserveChunk = 16

// newTapReader returns a reader of batch frames of up to frameSize bytes each, read at
// offset; with sock not nil, into TX frames reserved from it where they fit. With mtu > 0
// (a TAP with offloads, whose port has that MTU) super-frames are read scattered.
func newTapReader(t *tap, batch, offset, frameSize int, sock *xsk.Socket, mtu int) *tapReader {
	r := &tapReader{t: t, bufs: make([][]byte, batch), tx: make([][]byte, batch), heap: make([][]byte, batch),
		sizes: make([]int, batch), offset: offset, frameSize: frameSize, sock: sock}
	for i := range r.heap {
		r.heap[i] = make([]byte, offset+frameSize)
	}
	if sock == nil || offset >= sock.FrameSize() {
		r.sock = nil
	} else if mtu > 0 {
		r.mtu = mtu
		r.placed, r.pieces = make([][][]byte, batch), make([][][]byte, batch)
		for i := range r.pieces {
			r.pieces[i] = make([][]byte, tapGSOMaxSegs)
		}
		r.iovs = make([]unix.Iovec, tapGSOMaxSegs+2)
		// Room for every frame the reader may hold at once: a batch of scattered reads.
		r.spare = make([][]byte, 0, batch*tapGSOMaxSegs+tapReserveChunk)
	} else {
		// Room for every frame the reader may hold at once (a batch) and a chunk more.
		r.spare = make([][]byte, 0, batch+tapReserveChunk)
	}
	r.readFn = r.read
	return r
}

// readBatch fills r.bufs[:n] (frames at r.offset, lengths in r.sizes) and returns n. The
// TX frames of the previous batch must have been transmitted or given back.
func (r *tapReader) readBatch() (int, error) {
	r.n, r.err = 0, nil
	if err := r.t.raw.Read(r.readFn); err != nil {
		r.releaseSpare()
		return 0, err
	}
	if r.err != nil { // the reads before the error are dropped with it
		for i, f := range r.tx[:r.n] {
			if f != nil {
				r.one[0], r.tx[i] = f, nil
				r.sock.Release(r.one[:])
			}
			if r.placed != nil && r.placed[i] != nil {
				r.sock.Release(r.placed[i])
				r.placed[i] = nil
			}
		}
	}
	return r.n, r.err
}

func (r *tapReader) read(fd uintptr) bool {
	for r.n < len(r.bufs) {
		i := r.n
		if r.placed != nil {
			r.placed[i] = nil
		}
		if k := r.reservePieces(i); k > 0 {
			m, err := r.readScattered(fd, i, k)
			switch {
			case err == unix.EINTR:
				r.giveBackAll(r.placed[i])
				continue
			case err != nil:
				r.giveBackAll(r.placed[i])
				r.placed[i] = nil
			default:
				r.sizes[i] = m
				r.bufs[i], r.tx[i] = r.heap[i], nil
				r.n++
				continue
			}
			if err == unix.EAGAIN {
				if r.n > 0 {
					return true
				}
				r.releaseSpare()
				return false
			}
			r.err = fmt.Errorf("read tap %s: %w", r.t.port.TAP, err)
			r.releaseSpare()
			return true
		}
		f := r.txFrame()
		var m int
		var err error
		switch {
		case f == nil:
			m, err = unix.Read(int(fd), r.heap[i][r.offset:])
		case r.offset+r.frameSize <= len(f): // every read fits the TX frame
			m, err = unix.Read(int(fd), f[r.offset:r.offset+r.frameSize])
		default: // the TX frame, then the heap buffer beyond its length
			m, err = r.readv(fd, f[r.offset:], r.heap[i][len(f):])
		}
		if err != nil && f != nil {
			r.spare = append(r.spare, f) // reserved moments ago: there is room
		}
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			if r.n > 0 {
				return true
			}
			r.releaseSpare() // the port is idle: its TX frames are the socket's again
			return false     // nothing yet: park in the poller
		case err != nil:
			r.err = fmt.Errorf("read tap %s: %w", r.t.port.TAP, err)
			r.releaseSpare()
			return true
		}
		r.sizes[i] = m
		switch {
		case f == nil:
			r.bufs[i], r.tx[i] = r.heap[i], nil
			r.spilled = r.sock != nil && r.offset+m > r.sock.FrameSize()
			if r.spilled {
				r.predict(i, m)
			}
		case r.offset+m <= len(f):
			r.bufs[i], r.tx[i] = f, f
			r.spilled = false
		default: // spilled: the head joins the rest in the heap buffer
			copy(r.heap[i][r.offset:len(f)], f[r.offset:])
			r.spare = append(r.spare, f)
			r.bufs[i], r.tx[i] = r.heap[i], nil
			r.spilled = true
			r.predict(i, m)
		}
		r.n++
	}
	return true
}

// txFrame returns a reserved TX frame for the next read, or nil to read into the heap.
func (r *tapReader) txFrame() []byte {
	if r.sock == nil || r.spilled {
		return nil
	}
	if len(r.spare) == 0 {
		k := min(tapReserveChunk, len(r.bufs)-r.n, cap(r.spare))
		r.spare = r.spare[:r.sock.Reserve(r.spare[:k])]
		if len(r.spare) == 0 {
			return nil // all in flight: the heap, rather than wait
		}
	}
	top := len(r.spare) - 1
	f := r.spare[top]
	r.spare[top] = nil
	r.spare = r.spare[:top]
	return f
}

// giveBack takes back f, a TX frame of r.tx that egress did not transmit, for a later read.
func (r *tapReader) giveBack(f []byte) {
	if len(r.spare) == cap(r.spare) {
		r.one[0] = f
		r.sock.Release(r.one[:])
		return
	}
	r.spare = append(r.spare, f)
}

// giveBackAll is giveBack for each of fs.
func (r *tapReader) giveBackAll(fs [][]byte) {
	for _, f := range fs {
		r.giveBack(f)
	}
}

// predict takes the layout of read i, m bytes in the heap buffer, as the prediction for
// the next read if it is a super-frame whose segments fit TX frames: the next super-frame
// of a TCP stream has the same headers and segment size. Anything else ends the
// prediction.
func (r *tapReader) predict(i, m int) {
	r.gsoSegs = 0
	if r.mtu == 0 || m <= offload.HdrLen {
		return
	}
	if r.noScatter > 0 {
		r.noScatter--
		return
	}
	b := r.heap[i][r.offset : r.offset+m]
	hdr, err := offload.Decode(b[:offload.HdrLen])
	if err != nil || hdr.GSOType == offload.GSONone {
		return
	}
	frame := b[offload.HdrLen:]
	hl, seg, err := offload.PayloadPerSegment(hdr, frame, len(frame), r.mtu)
	if err != nil || r.offset+offload.HdrLen+hl+seg > r.sock.FrameSize() {
		return
	}
	n := (len(frame) - hl + seg - 1) / seg
	if n < 2 || n > tapGSOMaxSegs || r.offset+offload.HdrLen+hl+n*seg > len(r.heap[i]) {
		return
	}
	r.gsoHdr, r.gsoSeg, r.gsoSegs = hl, seg, n
}

// reservePieces takes the TX frames for a scattered read i into r.placed[i] and returns
// how many, or 0 for a read of the usual kind: no super-frame predicted, or too few TX
// frames free. As many pieces as the last super-frame had: a longer one is moved.
func (r *tapReader) reservePieces(i int) int {
	if r.gsoSegs == 0 || !r.spilled {
		return 0
	}
	k := r.gsoSegs
	p := r.pieces[i][:k]
	got := min(k, len(r.spare))
	copy(p, r.spare[len(r.spare)-got:])
	clear(r.spare[len(r.spare)-got:])
	r.spare = r.spare[:len(r.spare)-got]
	if got < k {
		got += r.sock.Reserve(p[got:])
	}
	if got < k {
		r.giveBackAll(p[:got])
		return 0
	}
	r.placed[i] = p
	return k
}

// readScattered reads super-frame i into its k pieces (r.placed[i]) as predicted: the
// virtio_net_hdr and headers into the heap buffer, each segment's payload behind
// packet.Headroom and the headers in a TX frame, anything longer into the heap buffer
// after the pieces' place. If the frame is not the super-frame predicted, its bytes are
// moved into the heap buffer, laid out as an ordinary read, and r.placed[i] is nil;
// otherwise r.placed[i] holds the pieces the payload fills, the rest go back to spare.
func (r *tapReader) readScattered(fd uintptr, i, k int) (int, error) {
	pieces, heap := r.placed[i], r.heap[i]
	hl, seg := r.gsoHdr, r.gsoSeg
	head := r.offset + offload.HdrLen + hl // where the first payload byte goes in heap
	at := packet.Headroom + hl             // where each piece's payload goes in its TX frame
	iov := r.iovs[:0]
	iov = append(iov, iovec(heap[r.offset:head]))
	for _, f := range pieces {
		iov = append(iov, iovec(f[at:at+seg]))
	}
	iov = append(iov, iovec(heap[head+k*seg:]))
	m0, _, e := unix.Syscall(unix.SYS_READV, fd, uintptr(unsafe.Pointer(unsafe.SliceData(iov))), uintptr(len(iov)))
	if e != 0 {
		return 0, e
	}
	m := int(m0)
	payload := m - (head - r.offset)
	ok := payload > 0 && payload <= k*seg
	if ok {
		hdr, err := offload.Decode(heap[r.offset : r.offset+offload.HdrLen])
		frame := heap[r.offset+offload.HdrLen : r.offset+m]
		ok = err == nil && hdr.GSOType != offload.GSONone
		if ok {
			h, s, err := offload.PayloadPerSegment(hdr, frame[:hl], len(frame), r.mtu)
			ok = err == nil && h == hl && s == seg
		}
	}
	if !ok { // not as predicted: the usual layout, in the heap
		for j, f := range pieces {
			if n := min(seg, payload-j*seg); n > 0 {
				copy(heap[head+j*seg:], f[at:at+n])
			}
		}
		r.giveBackAll(pieces)
		r.placed[i] = nil
		r.spilled = r.offset+m > r.sock.FrameSize()
		if r.spilled {
			r.predict(i, m)
		} else {
			r.gsoSegs = 0
		}
		return m, nil
	}
	n := (payload + seg - 1) / seg
	r.giveBackAll(pieces[n:])
	r.placed[i] = pieces[:n]
	return m, nil
}

// tapGatherBackoff is how many super-frames a reader reads whole after one read scattered
// had to be gathered: the cost of scattering a stream toward a local port again, once per
// this many super-frames.
const tapGatherBackoff = 64

// gathered tells r that a super-frame it read scattered had to be gathered.
func (r *tapReader) gathered() {
	r.gsoSegs, r.noScatter = 0, tapGatherBackoff
}

// trimSpare releases the spare TX frames beyond what one read takes, once a batch is
// switched: what a batch gave back (the pieces of gathered or dropped super-frames) would
// otherwise stay with the reader while its port is busy.
func (r *tapReader) trimSpare() {
	keep := tapReserveChunk
	if r.mtu > 0 {
		keep = tapGSOMaxSegs
	}
	if len(r.spare) > keep {
		r.sock.Release(r.spare[keep:])
		clear(r.spare[keep:])
		r.spare = r.spare[:keep]
	}
}

// releaseSpare gives the spare TX frames back to the socket.
func (r *tapReader) releaseSpare() {
	if len(r.spare) > 0 {
		r.sock.Release(r.spare)
		clear(r.spare)
		r.spare = r.spare[:0]
	}
}

// readv reads one frame into a, then b if it is longer than a.
func (r *tapReader) readv(fd uintptr, a, b []byte) (int, error) {
	r.iov[0], r.iov[1] = iovec(a), iovec(b)
	m, _, e := unix.Syscall(unix.SYS_READV, fd, uintptr(unsafe.Pointer(&r.iov[0])), uintptr(len(r.iov)))
	if e != 0 {
		return 0, e
	}
	return int(m), nil
}
