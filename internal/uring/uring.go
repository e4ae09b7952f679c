//go:build linux

// Package uring is the smallest io_uring vxdp needs: a ring that takes a batch of writes
// (write(2) and writev(2) to file descriptors), submits them with one io_uring_enter and
// waits for all their completions in the same call. It exists so that a stage writing
// many small frames to many descriptors pays one syscall per batch instead of one per
// frame. No SQPOLL, no registered buffers or files, no reads: what is not needed is left
// out.
//
// A Ring belongs to one goroutine at a time. Writes are queued with Write and Writev,
// run with Submit, read back with Result, and forgotten with Reset. The buffers a batch
// names must stay untouched until Submit returns; Submit returns only once every write of
// the batch has completed, so the caller may reuse them right after.
package uring

import (
	"errors"
	"fmt"
	"math"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The kernel's ABI, from include/uapi/linux/io_uring.h (Linux 6.18). Only the names this
// package uses are here.
const (
	setupSubmitAll    = 1 << 7  // IORING_SETUP_SUBMIT_ALL: a failing SQE does not stop the batch (5.18)
	setupCoopTaskrun  = 1 << 8  // IORING_SETUP_COOP_TASKRUN: no IPI to run completions' task work (5.19)
	setupSingleIssuer = 1 << 12 // IORING_SETUP_SINGLE_ISSUER: one task submits (6.0)
	setupDeferTaskrun = 1 << 13 // IORING_SETUP_DEFER_TASKRUN: task work only when the task waits (6.1)

	featSingleMmap = 1 << 0 // IORING_FEAT_SINGLE_MMAP: SQ and CQ rings share one mapping (5.4)

	offSQRing = 0          // IORING_OFF_SQ_RING
	offCQRing = 0x8000000  // IORING_OFF_CQ_RING
	offSQEs   = 0x10000000 // IORING_OFF_SQES

	enterGetEvents = 1 << 0 // IORING_ENTER_GETEVENTS

	opWritev = 2  // IORING_OP_WRITEV
	opWrite  = 23 // IORING_OP_WRITE

	// fileOffset -1 writes at the file's position, as write(2) does; for a pipe or a TAP,
	// which have none, it is the only meaningful value.
	fileOffset = ^uint64(0)

	// noResult marks a write without a completion yet: no -errno is that low.
	noResult = math.MinInt32
)

// params is struct io_uring_params (include/uapi/linux/io_uring.h): what io_uring_setup
// takes and fills in.
type params struct {
	sqEntries    uint32
	cqEntries    uint32
	flags        uint32
	sqThreadCPU  uint32
	sqThreadIdle uint32
	features     uint32
	wqFD         uint32
	resv         [3]uint32
	sqOff        sqringOffsets
	cqOff        cqringOffsets
}

// sqringOffsets is struct io_sqring_offsets (include/uapi/linux/io_uring.h): where the
// submission ring's fields lie in its mapping.
type sqringOffsets struct {
	head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
	userAddr                                                        uint64
}

// cqringOffsets is struct io_cqring_offsets (include/uapi/linux/io_uring.h): where the
// completion ring's fields lie in its mapping.
type cqringOffsets struct {
	head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
	userAddr                                                        uint64
}

// sqe is struct io_uring_sqe (include/uapi/linux/io_uring.h), 64 bytes, with the union
// members a read or write uses: off, addr, len, rw_flags.
type sqe struct {
	opcode      uint8
	flags       uint8
	ioprio      uint16
	fd          int32
	off         uint64
	addr        uint64
	len         uint32
	rwFlags     uint32
	userData    uint64
	bufIndex    uint16
	personality uint16
	spliceFDIn  int32
	addr3       uint64
	pad2        uint64
}

// cqe is struct io_uring_cqe (include/uapi/linux/io_uring.h), 16 bytes without
// IORING_SETUP_CQE32.
type cqe struct {
	userData uint64
	res      int32
	flags    uint32
}

// Options configure a Ring.
type Options struct {
	// Entries is the submission ring's size, rounded up to a power of two by the kernel
	// (1-32768). A batch with more writes is submitted in parts of this many, each waited
	// for before the next.
	Entries uint32
	// SingleIssuer sets IORING_SETUP_SINGLE_ISSUER and IORING_SETUP_DEFER_TASKRUN: the
	// kernel skips some locking and runs completion work only when the ring is waited on.
	// The kernel then refuses (EEXIST) every io_uring_enter from a thread other than the one
	// that called New, so the caller must hold its goroutine on its OS thread
	// (runtime.LockOSThread) before New and for as long as it uses the Ring. Without it the
	// ring uses IORING_SETUP_COOP_TASKRUN and any thread may submit.
	SingleIssuer bool
}

// Ring is an io_uring for batches of writes. See the package doc for its use.
type Ring struct {
	fd int
	// The mappings: the SQ ring (and the CQ ring with IORING_FEAT_SINGLE_MMAP), the CQ
	// ring when it has its own, and the SQE array.
	sqMem, cqMem, sqeMem []byte

	// Pointers into the mappings. The kernel writes sqHead and cqTail, we write sqTail
	// and cqHead; each is read and written with sync/atomic, whose sequential consistency
	// gives the acquire and release the kernel's side expects (io_uring.h's comments:
	// the tail store must follow the SQEs' writes, the head store must follow the CQEs'
	// reads).
	sqHead, sqTail *uint32
	sqMask         uint32
	sqEntries      uint32
	sqes           []sqe
	cqHead, cqTail *uint32
	cqMask         uint32
	cqes           []cqe

	// The batch being built: ops in order, their iovecs in iovs (addressed by index, since
	// iovs may grow), their results once Submit has run.
	ops    []op
	iovs   []unix.Iovec
	res    []int32
	broken error // set when the kernel may still hold a batch's buffers: the Ring is unusable
}

// op is one queued write.
type op struct {
	opcode  uint8
	fd      int32
	buf     *byte  // opWrite: the buffer
	n       uint32 // opWrite: its length; opWritev: the number of iovecs
	iov     int    // opWritev: the first iovec's index in Ring.iovs
	rwFlags uint32
}

// New sets up an io_uring with opts. It fails if the kernel has no io_uring (ENOSYS),
// forbids it (EPERM: the sysctl kernel.io_uring_disabled, a seccomp filter), has too
// little lockable memory for it (ENOMEM: RLIMIT_MEMLOCK before Linux 5.12), or lacks a
// setup flag asked for (EINVAL).
func New(opts Options) (*Ring, error) {
	if opts.Entries == 0 {
		return nil, fmt.Errorf("io_uring setup: zero entries")
	}
	var p params
	p.flags = setupSubmitAll | setupCoopTaskrun
	if opts.SingleIssuer {
		p.flags = setupSubmitAll | setupSingleIssuer | setupDeferTaskrun
	}
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, uintptr(opts.Entries), uintptr(unsafe.Pointer(&p)), 0)
	if errno != 0 {
		return nil, fmt.Errorf("io_uring setup: %w", errno)
	}
	r := &Ring{fd: int(fd)}
	if err := r.mmap(&p); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// mmap maps the rings and the SQE array that io_uring_setup described in p.
func (r *Ring) mmap(p *params) error {
	sqSize := int(p.sqOff.array + p.sqEntries*4)
	cqSize := int(p.cqOff.cqes + p.cqEntries*uint32(unsafe.Sizeof(cqe{})))
	single := p.features&featSingleMmap != 0
	if single {
		sqSize = max(sqSize, cqSize)
	}
	var err error
	if r.sqMem, err = unix.Mmap(r.fd, offSQRing, sqSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		return fmt.Errorf("io_uring mmap sq ring: %w", err)
	}
	cqMem := r.sqMem
	if !single {
		if r.cqMem, err = unix.Mmap(r.fd, offCQRing, cqSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
			return fmt.Errorf("io_uring mmap cq ring: %w", err)
		}
		cqMem = r.cqMem
	}
	sqeSize := int(p.sqEntries) * int(unsafe.Sizeof(sqe{}))
	if r.sqeMem, err = unix.Mmap(r.fd, offSQEs, sqeSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		return fmt.Errorf("io_uring mmap sqes: %w", err)
	}
	sq := unsafe.Pointer(unsafe.SliceData(r.sqMem))
	r.sqHead = (*uint32)(unsafe.Add(sq, p.sqOff.head))
	r.sqTail = (*uint32)(unsafe.Add(sq, p.sqOff.tail))
	r.sqMask = *(*uint32)(unsafe.Add(sq, p.sqOff.ringMask))
	r.sqEntries = *(*uint32)(unsafe.Add(sq, p.sqOff.ringEntries))
	r.sqes = unsafe.Slice((*sqe)(unsafe.Pointer(unsafe.SliceData(r.sqeMem))), p.sqEntries)
	// The SQ ring's array maps ring slots to SQE indices; slot i always names SQE i.
	array := unsafe.Slice((*uint32)(unsafe.Add(sq, p.sqOff.array)), p.sqEntries)
	for i := range array {
		array[i] = uint32(i)
	}
	cq := unsafe.Pointer(unsafe.SliceData(cqMem))
	r.cqHead = (*uint32)(unsafe.Add(cq, p.cqOff.head))
	r.cqTail = (*uint32)(unsafe.Add(cq, p.cqOff.tail))
	r.cqMask = *(*uint32)(unsafe.Add(cq, p.cqOff.ringMask))
	r.cqes = unsafe.Slice((*cqe)(unsafe.Add(cq, p.cqOff.cqes)), p.cqEntries)
	return nil
}

// Close unmaps the rings and closes the ring's descriptor. The Ring must not be in
// Submit.
func (r *Ring) Close() error {
	var errs []error
	for _, m := range [][]byte{r.sqeMem, r.cqMem, r.sqMem} {
		if m != nil {
			if err := unix.Munmap(m); err != nil {
				errs = append(errs, fmt.Errorf("io_uring munmap: %w", err))
			}
		}
	}
	r.sqeMem, r.cqMem, r.sqMem, r.sqes, r.cqes = nil, nil, nil, nil, nil
	if r.fd >= 0 {
		if err := unix.Close(r.fd); err != nil {
			errs = append(errs, fmt.Errorf("io_uring close: %w", err))
		}
		r.fd = -1
	}
	return errors.Join(errs...)
}

// Write queues a write of b to fd and returns its index in the batch, for Result.
// rwFlags are the RWF_* flags of pwritev2(2): unix.RWF_NOWAIT makes a write that would
// block fail with EAGAIN instead of waiting (and one to a file that cannot promise that
// fail with EOPNOTSUPP).
func (r *Ring) Write(fd int, b []byte, rwFlags uint32) int {
	r.ops = append(r.ops, op{opcode: opWrite, fd: int32(fd), buf: unsafe.SliceData(b), n: uint32(len(b)), rwFlags: rwFlags})
	return len(r.ops) - 1
}

// Writev queues a gathering write of bufs, in order, to fd and returns its index in the
// batch, for Result; rwFlags as for Write. bufs itself may be reused once Writev returns;
// the buffers it names may not until Submit has returned.
func (r *Ring) Writev(fd int, bufs [][]byte, rwFlags uint32) int {
	start := len(r.iovs)
	for _, b := range bufs {
		v := unix.Iovec{Base: unsafe.SliceData(b)}
		v.SetLen(len(b))
		r.iovs = append(r.iovs, v)
	}
	r.ops = append(r.ops, op{opcode: opWritev, fd: int32(fd), n: uint32(len(bufs)), iov: start, rwFlags: rwFlags})
	return len(r.ops) - 1
}

// Len returns the number of writes queued since the last Reset.
func (r *Ring) Len() int { return len(r.ops) }

// Submit runs the writes queued since the last Reset and returns when all have completed:
// one io_uring_enter that submits them and waits for them, or one per Options.Entries
// writes. The writes are issued in the order they were queued. An error is the ring's, not
// a write's (those are in Result): then the writes without a result have the error's errno
// as theirs. If the kernel might still be using some of the batch's buffers after such an
// error, the Ring refuses every later Submit.
func (r *Ring) Submit() error {
	if r.broken != nil {
		return r.broken
	}
	r.res = r.res[:0]
	for range r.ops {
		r.res = append(r.res, noResult)
	}
	for start := 0; start < len(r.ops); start += int(r.sqEntries) {
		end := min(len(r.ops), start+int(r.sqEntries))
		if err := r.submit(start, end); err != nil {
			return err
		}
	}
	return nil
}

// submit runs ops[start:end], at most a ring's worth, and waits for all of them.
func (r *Ring) submit(start, end int) error {
	tail := *r.sqTail // only we write it
	for i := start; i < end; i++ {
		o := &r.ops[i]
		s := &r.sqes[tail&r.sqMask]
		*s = sqe{opcode: o.opcode, fd: o.fd, off: fileOffset, len: o.n, rwFlags: o.rwFlags, userData: uint64(i)}
		if o.opcode == opWritev {
			s.addr = uint64(uintptr(unsafe.Pointer(&r.iovs[o.iov])))
			if o.n == 0 {
				s.addr = 0
			}
		} else {
			s.addr = uint64(uintptr(unsafe.Pointer(o.buf)))
		}
		tail++
	}
	atomic.StoreUint32(r.sqTail, tail) // publishes the SQEs written above
	want, got := end-start, 0
	for got < want {
		toSubmit := tail - atomic.LoadUint32(r.sqHead)
		_, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(toSubmit), uintptr(want-got),
			enterGetEvents, 0, 0)
		got += r.reap()
		switch errno {
		case 0, unix.EINTR, unix.EAGAIN, unix.EBUSY:
			// EINTR: a signal (Go's preemption) ended the wait; EAGAIN, EBUSY: the kernel
			// was short of memory for requests or of room for completions. Go on waiting.
			continue
		}
		return r.fail(start, end, tail, got, errno)
	}
	return nil
}

// reap takes every completion the CQ holds into r.res and returns how many there were.
func (r *Ring) reap() int {
	head := *r.cqHead // only we write it
	tail := atomic.LoadUint32(r.cqTail)
	n := 0
	for ; head != tail; head++ {
		c := &r.cqes[head&r.cqMask]
		if i := c.userData; i < uint64(len(r.res)) {
			r.res[i] = c.res
		}
		n++
	}
	atomic.StoreUint32(r.cqHead, head) // frees the slots read above
	return n
}

// fail handles an io_uring_enter that failed with errno while ops[start:end] were
// submitted up to tail and got of them had completed: the SQEs the kernel has not taken
// are withdrawn, and the writes without a result get -errno. If the kernel took some
// that have not completed, their buffers may still be read: the Ring is broken from then
// on.
func (r *Ring) fail(start, end int, tail uint32, got int, errno unix.Errno) error {
	err := fmt.Errorf("io_uring enter: %w", errno)
	head := atomic.LoadUint32(r.sqHead)
	taken := end - start - int(tail-head)
	atomic.StoreUint32(r.sqTail, head) // withdraws the rest: the kernel takes SQEs only in io_uring_enter
	for i := start; i < len(r.ops); i++ {
		if r.res[i] == noResult {
			r.res[i] = -int32(errno)
		}
	}
	if taken > got {
		r.broken = fmt.Errorf("io_uring: unusable after a failed wait with writes in flight: %w", err)
	}
	return err
}

// Result returns what write i of the batch Submit ran wrote, or its error as a
// unix.Errno.
func (r *Ring) Result(i int) (int, error) {
	res := r.res[i]
	if res < 0 {
		return 0, unix.Errno(-res)
	}
	return int(res), nil
}

// Reset forgets the batch: the next Write is the first of a new one.
func (r *Ring) Reset() {
	clear(r.ops) // drops the references to the buffers
	clear(r.iovs)
	r.ops, r.iovs, r.res = r.ops[:0], r.iovs[:0], r.res[:0]
}
