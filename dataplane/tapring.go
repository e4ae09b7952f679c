//go:build linux

package dataplane

import (
	"errors"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"github.com/vxdp/vxdp/internal/uring"
)

// A merger's TAP writes go through an io_uring of its own (tap_io_uring, on by default):
// all the TAP deliveries of a micro-flow, one SQE each (IORING_OP_WRITE, or
// IORING_OP_WRITEV for a super-frame built in place), submitted and waited for with one
// io_uring_enter. 64 small UDP datagrams or IP fragments then cost one syscall, not 64.
// The merger waits for every completion before it recycles the micro-flow, since the
// writes read the UMEM frames the reader hands back to the fill ring next.
//
// Order per TAP. Every write carries RWF_NOWAIT. The kernel then issues each SQE inline,
// in io_uring_enter, in submission order, and a write that cannot be done at once (a TAP
// whose socket is out of send buffer, which with tun's default of INT_MAX does not happen)
// completes with EAGAIN: it is never armed for a poll retry nor punted to an io-wq worker,
// the two ways a later write to the same TAP could overtake it (io-wq runs the work of a
// file that is not a regular file on several threads at once). So the writes of one TAP
// land in the order of the micro-flow without IOSQE_IO_LINK, which would also cancel the
// writes behind a failed one, or IOSQE_IO_DRAIN, which would serialise every TAP. EAGAIN
// is counted as a drop, as tun's own full queue drops. A tun that does not take
// RWF_NOWAIT (no FMODE_NOWAIT) fails such a write with EOPNOTSUPP; every write of that
// batch to it failed alike, so the merger writes them again the old way, in order, and
// keeps to the old way from then on.
//
// A delivery racing with the TAP's close. The merger reads each TAP's descriptor number,
// submits the batch and waits for it under VTEP.mu shared, and a TAP's descriptor closes
// only under VTEP.mu alone (Reload's removePortLocked, teardown), after t.closed is set:
// so a descriptor a batch names cannot close, and its number go to another file, until
// the batch is complete, and a TAP closed before its micro-flow's turn fails the delivery
// with os.ErrClosed, as os.File's Write does today. The other ways were worse: the file's
// RawConn.Control holds one descriptor for the time of a callback, and a batch spans many
// TAPs; registered files (IORING_REGISTER_FILES) give the ring a reference of its own to
// each file, so a write after close would still reach the device, and keep a non-persistent
// one alive, until every merger's ring let it go. The merger takes the lock once per
// micro-flow, as the workers do, and holds it for writes that never block.

// Setup flags. The ring has IORING_SETUP_COOP_TASKRUN, not SINGLE_ISSUER and
// DEFER_TASKRUN: with those the kernel refuses io_uring_enter from every thread but the
// one that set the ring up, so the merger would have to be locked to its OS thread, and a
// locked goroutine that blocks (the merger waits for its next micro-flow all the time)
// costs futex handoffs between threads. Measured on Linux 6.18 (kernel vxlan to vxdp,
// 10k UDP datagrams/s for 3 s, `perf stat -e syscalls:sys_enter_*`): the same one
// io_uring_enter per micro-flow either way, but 23-28k futex calls locked against 12-14k.
// The writes complete inline, so DEFER_TASKRUN has no task work to save anyway.

// tapRingEntries is the least size of a merger's ring: a micro-flow's deliveries are
// usually at most its frames (Config.MicroFlow); a flood to several ports makes more,
// which are submitted in parts of this many.
const tapRingEntries = 64

// tapRing is a merger's io_uring and the state of the batch it writes.
type tapRing struct {
	ring *uring.Ring
	// sent are the indices in the micro-flow's out of the TAP deliveries queued, in order;
	// op the ring's index of each, or -1 if its TAP was closed.
	sent, op []int
	bufs     [][]byte // a super-frame's pieces, for Writev
}

// newRing is uring.New, but for a test that plays a kernel refusing io_uring.
var newRing = uring.New

// newTapRing sets up a merger's ring for micro-flows of microflow frames, or returns nil
// if tap_io_uring is off or the kernel refuses io_uring, which it logs once per VTEP.
func (v *VTEP) newTapRing(microflow int) *tapRing {
	if !v.cfg.TAPIOUring {
		return nil
	}
	r, err := newRing(uring.Options{Entries: uint32(max(tapRingEntries, microflow))})
	if err != nil {
		v.ringOnce.Do(func() {
			v.log.Warn("io_uring unavailable: TAP writes go one frame per syscall", "err", err, "cause", ringErrCause(err))
		})
		return nil
	}
	return &tapRing{ring: r, sent: make([]int, 0, microflow), op: make([]int, 0, microflow), bufs: make([][]byte, 0, 1+microflow)}
}

// ringErrCause explains why io_uring_setup failed.
func ringErrCause(err error) string {
	switch {
	case errors.Is(err, unix.ENOSYS):
		return "the kernel has no io_uring"
	case errors.Is(err, unix.EPERM):
		return "forbidden: the sysctl kernel.io_uring_disabled, or a seccomp filter (a container runtime's default profile)"
	case errors.Is(err, unix.ENOMEM):
		return "too little lockable memory (RLIMIT_MEMLOCK, which io_uring is charged to before Linux 5.12)"
	case errors.Is(err, unix.EINVAL):
		return "the kernel lacks a setup flag vxdp asks for (IORING_SETUP_SUBMIT_ALL, COOP_TASKRUN: Linux 5.19)"
	}
	return "unknown"
}

// close releases the ring; the merger has stopped.
func (r *tapRing) close() error {
	if r == nil {
		return nil
	}
	return r.ring.Close()
}

// writeRing writes the TAP deliveries out[i], i in q.ring.sent, with one io_uring_enter
// and counts each as delivered does.
func (v *VTEP) writeRing(q *queue, out []delivery) {
	tr, r := q.ring, q.ring.ring
	r.Reset()
	v.mu.RLock() // the descriptors stay open until the batch is done: see the top of this file
	for _, i := range tr.sent {
		d := &out[i]
		if d.t.closed.Load() {
			tr.op = append(tr.op, -1)
			continue
		}
		if d.rest == nil {
			tr.op = append(tr.op, r.Write(d.t.fd, d.pkt, unix.RWF_NOWAIT))
			continue
		}
		tr.bufs = append(append(tr.bufs[:0], d.pkt), d.rest...)
		tr.op = append(tr.op, r.Writev(d.t.fd, tr.bufs, unix.RWF_NOWAIT))
	}
	var err error
	if r.Len() > 0 {
		err = r.Submit()
		q.c.ringBatches.Add(1)
	}
	v.mu.RUnlock()
	nowait := true
	for j, i := range tr.sent {
		d := &out[i]
		werr := os.ErrClosed
		if k := tr.op[j]; k >= 0 {
			var n int
			n, werr = r.Result(k)
			switch {
			case werr == unix.EOPNOTSUPP:
				nowait = false
				v.rewrite(q, d)
				continue
			case werr == nil && n != d.size():
				werr = io.ErrShortWrite
			}
		}
		if werr == nil {
			q.c.ringFrames.Add(uint64(d.frames))
		}
		v.delivered(d.t, werr, d.frames, d.bytes, &q.c)
	}
	tr.sent, tr.op = tr.sent[:0], tr.op[:0]
	clear(tr.bufs[:cap(tr.bufs)]) // no reference to a micro-flow's frames outlives it
	if err != nil || !nowait {
		// The ring failed (it says why), or a TAP cannot take non-blocking io_uring
		// writes: this merger writes the old way from now on.
		why := "a tap refuses non-blocking io_uring writes (RWF_NOWAIT: EOPNOTSUPP)"
		if err != nil {
			why = err.Error()
		}
		v.log.Warn("io_uring TAP writes stopped on a queue: one frame per syscall from now on", "queue", q.index, "why", why)
		tr.close()
		q.ring = nil
	}
}

// rewrite writes delivery d to its TAP the old way: one write(2) or writev(2).
func (v *VTEP) rewrite(q *queue, d *delivery) {
	if d.rest != nil {
		v.delivered(d.t, q.writer.writev(d.t, d.pkt, d.rest), d.frames, d.bytes, &q.c)
		return
	}
	v.deliver(d.t, d.pkt, d.frames, d.bytes, &q.c)
}

// size is the number of bytes the delivery's write carries.
func (d *delivery) size() int {
	n := len(d.pkt)
	for _, b := range d.rest {
		n += len(b)
	}
	return n
}
