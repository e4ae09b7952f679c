//go:build linux

package xsk

import (
	"errors"
	"fmt"
	"math/bits"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/cpu"
	"golang.org/x/sys/unix"
)

// Desc is one received packet, or with Options.MultiBuffer one chunk of it: where it lies
// in the UMEM. Addr is the offset of its first byte (inside the frame, after the kernel's
// headroom) and Len its length in bytes. Continued says the packet goes on in the next
// descriptor (the kernel's XDP_PKT_CONTD): a packet is a run of descriptors with Continued
// set, ended by one without.
type Desc struct {
	Addr      uint64
	Len       uint32
	Continued bool
}

// Socket is one AF_XDP socket bound to one queue of one interface, with its own UMEM.
// See the package documentation for which methods may run concurrently.
type Socket struct {
	// Set by Open, read-only afterwards.
	fd int
	// txfd is a second AF_XDP socket on the same queue and UMEM (XDP_SHARED_UMEM) that
	// holds the TX ring, so that fd has none: in copy mode the kernel's poll of a socket
	// with a TX ring transmits what the ring holds, under the socket's mutex, so every
	// wakeup of Wait in Go's netpoller would do egress's work and contend with its
	// sendto. fd keeps the fill, completion and RX rings and is what the XSKMAP holds.
	// -1 for a socket over plain memory (tests).
	txfd       int
	file       *os.File        // the fd in Go's netpoller; nil for a socket over plain memory (tests)
	rc         syscall.RawConn // file's, to park Wait in the netpoller
	umem       []byte
	umemMapped bool      // umem comes from mmap and is unmapped when released
	maps       [4][]byte // the rings' mappings, unmapped by Close
	frameSize  uint32
	frameShift uint   // log2(frameSize)
	rxBase     uint64 // the TX part is [0, rxBase), the RX part [rxBase, len(umem))
	zeroCopy   bool
	// multiBuffer: bound with XDP_USE_SG, so a packet may span several frames both ways.
	multiBuffer bool
	maxTxLen    uint32             // the longest packet Transmit takes: a frame, or MaxChunks of them
	waitFn      func(uintptr) bool // s.rxReady, bound once so Wait does not allocate

	// life orders teardown against every other method: each holds it shared for one call,
	// Close holds it exclusively while it closes the fd and unmaps the rings.
	life   sync.RWMutex
	closed atomic.Bool
	// deadlineMu orders Wait's deadline (a second ahead) against Close's (in the past), so
	// that Close's is the last one set.
	deadlineMu sync.Mutex
	// drained is set by Close once no call can touch the UMEM any more.
	drained atomic.Bool
	// rxOut counts the frames the caller holds: received and not yet handed back to Fill,
	// or reserved for TX (Reserve) and neither transmitted nor released.
	// The UMEM outlives Close until it drops to zero, so held frames stay readable.
	rxOut        atomic.Int64
	umemReleased atomic.Bool

	_ cpu.CacheLinePad
	// RX side: owned by the one goroutine that calls Receive, Wait and Fill.
	rx    ring[unix.XDPDesc]
	fill  ring[uint64]
	held  []uint64 // bitmap by frame number: frames the caller holds
	spare []uint64 // RX frames handed back that did not fit in the fill ring
	rxErr error    // socket error seen by Wait; sticky
	// rxDropping: Receive is discarding a packet that spans more descriptors than it was
	// given, and its last descriptor has not come off the ring yet.
	rxDropping bool
	rxCtr      rxCounters

	_ cpu.CacheLinePad
	// TX side: guarded by txMu.
	txMu   sync.Mutex
	tx     ring[unix.XDPDesc]
	comp   ring[uint64]
	txFree []uint64 // addresses of the TX frames neither in the TX ring nor in flight
	txCtr  txCounters

	_ cpu.CacheLinePad
	// Failed kicks, from either side; rare.
	kickErrors, lastKickErrno atomic.Uint64
}

// rxCounters are the RX side's statistics, bumped once per batch; Stats reads them.
type rxCounters struct {
	received, filled, fillRefused, kicks, tooLong atomic.Uint64
}

// txCounters are the TX side's statistics, bumped once per batch; Stats reads them.
type txCounters struct {
	transmitted, completed, noRoom, tooLong, kicks atomic.Uint64
}

// Open creates an AF_XDP socket, its UMEM and rings, binds it to o.Queue of o.Ifindex in
// zero-copy mode if the driver can and in copy mode otherwise, and gives the RX frames to
// the fill ring. It must run in the network namespace of the interface.
func Open(o Options) (*Socket, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("create af_xdp socket: %w", err)
	}
	s, err := setup(fd, o)
	if err != nil {
		if s != nil && s.file != nil {
			s.file.Close()
		} else {
			unix.Close(fd)
		}
		if s != nil {
			s.unmapAll()
			if s.txfd >= 0 {
				unix.Close(s.txfd)
			}
		}
		return nil, err
	}
	return s, nil
}

// setup registers the UMEM, creates and maps the rings and binds fd. On error it returns
// what it built so far, for Open to unmap.
func setup(fd int, o Options) (*Socket, error) {
	size := o.NumFrames * o.FrameSize
	umem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE)
	if err != nil {
		return nil, fmt.Errorf("map %d-byte umem: %w", size, err)
	}
	s := &Socket{fd: fd, txfd: -1, umem: umem, umemMapped: true}
	reg := unix.XDPUmemReg{
		Addr: uint64(uintptr(unsafe.Pointer(unsafe.SliceData(umem)))),
		Len:  uint64(size),
		Size: uint32(o.FrameSize),
	}
	if err := setsockopt(fd, unix.SOL_XDP, unix.XDP_UMEM_REG, unsafe.Pointer(&reg), unsafe.Sizeof(reg)); err != nil {
		return s, fmt.Errorf("register umem: %w", err)
	}
	for _, r := range []struct {
		opt  int
		name string
	}{
		{unix.XDP_UMEM_FILL_RING, "fill"}, {unix.XDP_UMEM_COMPLETION_RING, "completion"},
		{unix.XDP_RX_RING, "rx"},
	} {
		if err := unix.SetsockoptInt(fd, unix.SOL_XDP, r.opt, o.RingSize); err != nil {
			return s, fmt.Errorf("create %s ring of %d entries: %w", r.name, o.RingSize, err)
		}
	}
	// The TX ring is on a socket of its own (see Socket.txfd), bound after fd.
	if s.txfd, err = unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0); err != nil {
		s.txfd = -1
		return s, fmt.Errorf("create af_xdp tx socket: %w", err)
	}
	if err := unix.SetsockoptInt(s.txfd, unix.SOL_XDP, unix.XDP_TX_RING, o.RingSize); err != nil {
		return s, fmt.Errorf("create tx ring of %d entries: %w", o.RingSize, err)
	}
	off, err := ringOffsets(fd)
	if err != nil {
		return s, err
	}
	txOff, err := ringOffsets(s.txfd)
	if err != nil {
		return s, err
	}
	rs := uint32(o.RingSize)
	const addrSize, descSize = uint64(unsafe.Sizeof(uint64(0))), uint64(unsafe.Sizeof(unix.XDPDesc{}))
	for i, m := range []struct {
		fd    int
		off   unix.XDPRingOffset
		pgoff int64
		ent   uint64
	}{
		{fd, off.Fr, unix.XDP_UMEM_PGOFF_FILL_RING, addrSize},
		{fd, off.Cr, unix.XDP_UMEM_PGOFF_COMPLETION_RING, addrSize},
		{fd, off.Rx, unix.XDP_PGOFF_RX_RING, descSize},
		{s.txfd, txOff.Tx, unix.XDP_PGOFF_TX_RING, descSize},
	} {
		length := int(m.off.Desc + uint64(rs)*m.ent)
		mem, err := unix.Mmap(m.fd, m.pgoff, length, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
		if err != nil {
			return s, fmt.Errorf("map ring at page offset %#x: %w", m.pgoff, err)
		}
		s.maps[i] = mem
	}
	fill, err := newRing[uint64](s.maps[0], off.Fr, rs)
	if err != nil {
		return s, fmt.Errorf("lay out fill ring: %w", err)
	}
	comp, err := newRing[uint64](s.maps[1], off.Cr, rs)
	if err != nil {
		return s, fmt.Errorf("lay out completion ring: %w", err)
	}
	rx, err := newRing[unix.XDPDesc](s.maps[2], off.Rx, rs)
	if err != nil {
		return s, fmt.Errorf("lay out rx ring: %w", err)
	}
	tx, err := newRing[unix.XDPDesc](s.maps[3], off.Tx, rs)
	if err != nil {
		return s, fmt.Errorf("lay out tx ring: %w", err)
	}
	s.init(uint32(o.FrameSize), o.TxFrames, fill, comp, rx, tx)
	s.setMultiBuffer(o.MultiBuffer)

	if s.zeroCopy, err = bind(fd, o); err != nil {
		return s, err
	}
	// The TX socket shares fd's UMEM, queue and completion ring; it takes no flags of its
	// own (the kernel refuses them): mode, need_wakeup and multi-buffer are fd's.
	shared := &unix.SockaddrXDP{Flags: unix.XDP_SHARED_UMEM, Ifindex: uint32(o.Ifindex), QueueID: uint32(o.Queue), SharedUmemFD: uint32(fd)}
	if err := unix.Bind(s.txfd, shared); err != nil {
		return s, fmt.Errorf("bind af_xdp tx socket to ifindex %d queue %d: %w", o.Ifindex, o.Queue, err)
	}
	if err := unix.SetNonblock(s.txfd, true); err != nil {
		return s, fmt.Errorf("make af_xdp tx socket non-blocking: %w", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		return s, fmt.Errorf("make af_xdp socket non-blocking: %w", err)
	}
	// From here the File owns fd (Open's error path closes the File, not the number).
	s.file = os.NewFile(uintptr(fd), fmt.Sprintf("af_xdp:%d:%d", o.Ifindex, o.Queue))
	if err := s.file.SetReadDeadline(time.Time{}); err != nil {
		// Not in the netpoller: Close could not wake Wait.
		return s, fmt.Errorf("poll af_xdp socket: %w", err)
	}
	if s.rc, err = s.file.SyscallConn(); err != nil {
		return s, fmt.Errorf("poll af_xdp socket: %w", err)
	}
	return s, nil
}

// ringOffsets returns where the kernel lays out the rings of fd in their mappings.
func ringOffsets(fd int) (unix.XDPMmapOffsets, error) {
	var off unix.XDPMmapOffsets
	n, err := getsockopt(fd, unix.SOL_XDP, unix.XDP_MMAP_OFFSETS, unsafe.Pointer(&off), unsafe.Sizeof(off))
	if err != nil {
		return off, fmt.Errorf("get ring offsets: %w", err)
	}
	if n != unsafe.Sizeof(off) {
		// Kernels before 5.4 return offsets without the flags word, so no need_wakeup.
		return off, fmt.Errorf("get ring offsets: kernel returned %d bytes, want %d (kernel older than 5.4?)", n, unsafe.Sizeof(off))
	}
	return off, nil
}

// bind binds fd to the queue, zero-copy first unless o.ForceCopy, and reports whether
// zero-copy is in use.
func bind(fd int, o Options) (bool, error) {
	sa := &unix.SockaddrXDP{Ifindex: uint32(o.Ifindex), QueueID: uint32(o.Queue)}
	var sg uint16
	mode := ""
	if o.MultiBuffer {
		sg, mode = unix.XDP_USE_SG, ", multi-buffer"
	}
	var zcErr error
	if !o.ForceCopy {
		sa.Flags = unix.XDP_ZEROCOPY | unix.XDP_USE_NEED_WAKEUP | sg
		zcErr = unix.Bind(fd, sa)
		if zcErr != nil && !zeroCopyUnsupported(zcErr) {
			return false, fmt.Errorf("bind af_xdp socket to ifindex %d queue %d (zero-copy%s): %w", o.Ifindex, o.Queue, mode, zcErr)
		}
	}
	if o.ForceCopy || zcErr != nil {
		sa.Flags = unix.XDP_COPY | unix.XDP_USE_NEED_WAKEUP | sg
		if err := unix.Bind(fd, sa); err != nil {
			err = fmt.Errorf("bind af_xdp socket to ifindex %d queue %d (copy%s): %w", o.Ifindex, o.Queue, mode, err)
			if o.MultiBuffer && (errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP)) {
				// Before Linux 6.6 the flag is unknown (EINVAL); a driver without
				// multi-buffer support refuses it (EOPNOTSUPP).
				err = errors.Join(ErrNoMultiBuffer, err)
			}
			return false, err
		}
	}
	var opts uint32
	if _, err := getsockopt(fd, unix.SOL_XDP, unix.XDP_OPTIONS, unsafe.Pointer(&opts), unsafe.Sizeof(opts)); err != nil {
		return false, fmt.Errorf("get af_xdp options: %w", err)
	}
	return opts&unix.XDP_OPTIONS_ZEROCOPY != 0, nil
}

// zeroCopyUnsupported reports whether a zero-copy bind failed because the driver cannot
// do zero-copy on this queue, as opposed to a failure copy mode would meet as well.
func zeroCopyUnsupported(err error) bool {
	const enotsupp = syscall.Errno(524) // the kernel-internal ENOTSUPP, which some drivers leak
	return errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL) || errors.Is(err, enotsupp)
}

// init partitions the UMEM and gives the RX frames to the fill ring: the first txFrames
// frames are TX's, the rest RX's.
func (s *Socket) init(frameSize uint32, txFrames int, fill, comp ring[uint64], rx, tx ring[unix.XDPDesc]) {
	numFrames := len(s.umem) / int(frameSize)
	s.frameSize = frameSize
	s.frameShift = uint(bits.TrailingZeros32(frameSize))
	s.rxBase = uint64(txFrames) * uint64(frameSize)
	s.fill, s.comp, s.rx, s.tx = fill, comp, rx, tx
	s.setMultiBuffer(false)
	s.waitFn = s.rxReady
	s.held = make([]uint64, (numFrames+63)/64)
	rxFrames := numFrames - txFrames
	s.spare = make([]uint64, 0, rxFrames)
	for f := numFrames - 1; f >= txFrames; f-- {
		s.spare = append(s.spare, uint64(f)*uint64(frameSize))
	}
	s.fill.submit(s.postSpare(s.fill.free(uint32(rxFrames))))
	s.txFree = make([]uint64, 0, txFrames)
	for f := txFrames - 1; f >= 0; f-- {
		s.txFree = append(s.txFree, uint64(f)*uint64(frameSize))
	}
}

// setMultiBuffer sets what Options.MultiBuffer decides once the rings are laid out.
func (s *Socket) setMultiBuffer(on bool) {
	s.multiBuffer = on
	s.maxTxLen = s.frameSize
	if on {
		s.maxTxLen = s.frameSize * MaxChunks
	}
}

// MultiBuffer reports whether the socket was bound with XDP_USE_SG: a packet may then span
// several frames (see Desc.Continued) and Transmit takes packets up to MaxTxLen.
func (s *Socket) MultiBuffer() bool { return s.multiBuffer }

// MaxTxLen returns the longest packet Transmit takes, in bytes: FrameSize, or with
// multi-buffer MaxChunks frames.
func (s *Socket) MaxTxLen() int { return int(s.maxTxLen) }

// FD returns the socket's file descriptor, for registration in an XSKMAP. It stays valid
// until Close.
func (s *Socket) FD() int { return s.fd }

// ZeroCopy reports whether the socket is bound in zero-copy mode (XDP_ZEROCOPY) rather
// than copy mode.
func (s *Socket) ZeroCopy() bool { return s.zeroCopy }

// FrameSize returns the size of a UMEM frame in bytes: the longest frame Transmit takes.
func (s *Socket) FrameSize() int { return int(s.frameSize) }

// Close wakes a Wait in progress (it returns ErrClosed), waits for the calls in progress
// on other goroutines, closes the socket and unmaps the rings. The UMEM is unmapped too,
// unless the caller still holds received frames: then the Fill that hands the last of them
// back unmaps it, so their bytes stay readable until then. After Close every method
// returns at once: Receive and Transmit with 0, Wait and Stats with ErrClosed. Close is
// idempotent; calls after the first return nil.
func (s *Socket) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	var errs []error
	if s.file != nil {
		// A deadline in the past wakes a Wait parked in the netpoller, and makes one about
		// to park return at once; either way it sees closed and releases life.
		s.deadlineMu.Lock()
		if err := s.file.SetReadDeadline(time.Unix(1, 0)); err != nil {
			errs = append(errs, fmt.Errorf("wake af_xdp waiter: %w", err))
		}
		s.deadlineMu.Unlock()
	}
	s.life.Lock()
	if s.txfd >= 0 {
		if err := unix.Close(s.txfd); err != nil {
			errs = append(errs, fmt.Errorf("close af_xdp tx socket: %w", err))
		}
	}
	if s.file != nil {
		if err := s.file.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close af_xdp socket: %w", err))
		}
	}
	for i, m := range s.maps {
		if m != nil {
			if err := unix.Munmap(m); err != nil {
				errs = append(errs, fmt.Errorf("unmap ring: %w", err))
			}
			s.maps[i] = nil
		}
	}
	s.drained.Store(true)
	s.life.Unlock()
	if s.rxOut.Load() <= 0 {
		if err := s.releaseUMEM(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// releaseUMEM unmaps the UMEM once, after Close has drained and the caller holds no frame.
func (s *Socket) releaseUMEM() error {
	if !s.umemReleased.CompareAndSwap(false, true) || !s.umemMapped {
		return nil
	}
	if err := unix.Munmap(s.umem); err != nil {
		return fmt.Errorf("unmap umem: %w", err)
	}
	return nil
}

// unmapAll undoes the mappings of a socket that failed to open.
func (s *Socket) unmapAll() {
	for _, m := range s.maps {
		if m != nil {
			unix.Munmap(m)
		}
	}
	if s.umemMapped {
		unix.Munmap(s.umem)
	}
}

// Stats is a snapshot of a socket's counters: the kernel's (XDP_STATISTICS) and the
// socket layer's own. All are totals since Open.
type Stats struct {
	// RxDropped counts packets the kernel dropped for this socket for reasons other than
	// the two below, such as a packet longer than a frame.
	RxDropped uint64
	// RxInvalidDescs counts invalid descriptors the kernel found on the RX side.
	RxInvalidDescs uint64
	// TxInvalidDescs counts invalid descriptors the kernel found on the TX ring.
	TxInvalidDescs uint64
	// RxRingFull counts packets dropped because the RX ring was full.
	RxRingFull uint64
	// FillRingEmpty counts the times the kernel found the fill ring empty.
	FillRingEmpty uint64
	// TxRingEmpty counts the times the kernel found the TX ring empty.
	TxRingEmpty uint64

	// Received counts descriptors Receive took from the RX ring (with multi-buffer, one
	// per chunk).
	Received uint64
	// Filled counts frames Fill took back (posted to the fill ring or kept aside).
	Filled uint64
	// FillRefused counts descriptors Fill refused: not a frame the caller held.
	FillRefused uint64
	// RxTooLong counts packets Receive dropped for spanning more descriptors than the
	// caller gave it room for (multi-buffer only).
	RxTooLong uint64
	// Transmitted counts frames Transmit posted to the TX ring: one per packet, or with
	// multi-buffer as many as a long packet spans.
	Transmitted uint64
	// Completed counts TX frames the kernel returned through the completion ring.
	Completed uint64
	// TxNoRoom counts frames Transmit could not post: no free TX frame or no ring room.
	TxNoRoom uint64
	// TxTooLong counts frames Transmit dropped for being empty or longer than MaxTxLen.
	TxTooLong uint64
	// RxKicks and TxKicks count the wakeup syscalls made for the fill and TX rings.
	RxKicks, TxKicks uint64
	// KickErrors counts wakeup syscalls that failed (EAGAIN with no progress, EBUSY,
	// ENOBUFS, ENETDOWN, ...). They are not fatal: the next kick retries.
	KickErrors uint64
	// LastKickErrno is the errno of the latest failed kick, 0 if none failed.
	LastKickErrno syscall.Errno
}

// Stats returns the socket's statistics. After Close it returns the socket layer's own
// counters with ErrClosed.
func (s *Socket) Stats() (Stats, error) {
	var ks unix.XDPStatistics
	s.life.RLock()
	if s.closed.Load() {
		s.life.RUnlock()
		return s.ownStats(), ErrClosed
	}
	_, err := getsockopt(s.fd, unix.SOL_XDP, unix.XDP_STATISTICS, unsafe.Pointer(&ks), unsafe.Sizeof(ks))
	var tks unix.XDPStatistics // the TX ring's, on the TX socket
	if err == nil && s.txfd >= 0 {
		_, err = getsockopt(s.txfd, unix.SOL_XDP, unix.XDP_STATISTICS, unsafe.Pointer(&tks), unsafe.Sizeof(tks))
	}
	s.life.RUnlock()
	st := s.ownStats()
	if err != nil {
		return st, fmt.Errorf("get af_xdp statistics: %w", err)
	}
	st.RxDropped = ks.Rx_dropped
	st.RxInvalidDescs = ks.Rx_invalid_descs
	st.TxInvalidDescs = tks.Tx_invalid_descs
	st.RxRingFull = ks.Rx_ring_full
	st.FillRingEmpty = ks.Rx_fill_ring_empty_descs
	st.TxRingEmpty = tks.Tx_ring_empty_descs
	return st, nil
}

// ownStats reads the socket layer's counters.
func (s *Socket) ownStats() Stats {
	rc, tc := &s.rxCtr, &s.txCtr
	return Stats{
		Received:      rc.received.Load(),
		Filled:        rc.filled.Load(),
		FillRefused:   rc.fillRefused.Load(),
		RxTooLong:     rc.tooLong.Load(),
		RxKicks:       rc.kicks.Load(),
		Transmitted:   tc.transmitted.Load(),
		Completed:     tc.completed.Load(),
		TxNoRoom:      tc.noRoom.Load(),
		TxTooLong:     tc.tooLong.Load(),
		TxKicks:       tc.kicks.Load(),
		KickErrors:    s.kickErrors.Load(),
		LastKickErrno: syscall.Errno(s.lastKickErrno.Load()),
	}
}

// kickFailed counts a failed wakeup syscall.
func (s *Socket) kickFailed(e unix.Errno) {
	s.kickErrors.Add(1)
	s.lastKickErrno.Store(uint64(e))
}
