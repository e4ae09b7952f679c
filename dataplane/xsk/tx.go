//go:build linux

package xsk

import (
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Reserve takes up to len(chunks) free TX frames for the caller to build packets in, in
// place, and returns how many it took: chunks[i] becomes the whole TX frame (FrameSize
// bytes of the UMEM) for i below that. A packet that lies within one reserved frame is
// posted by Transmit where it is, without a copy, and its frame goes back to the kernel
// with it; at most one packet per reserved frame. Release gives back reserved frames that
// will not be transmitted. The UMEM stays mapped while frames are reserved, also across
// Close, so writing into them is safe until they are transmitted or released.
func (s *Socket) Reserve(chunks [][]byte) int {
	s.life.RLock()
	defer s.life.RUnlock()
	if s.closed.Load() {
		return 0
	}
	s.txMu.Lock()
	s.reapLocked()
	n := min(len(chunks), len(s.txFree))
	fs := uint64(s.frameSize)
	for i := range n {
		top := len(s.txFree) - 1
		addr := s.txFree[top]
		s.txFree = s.txFree[:top]
		chunks[i] = s.umem[addr : addr+fs : addr+fs]
	}
	s.txMu.Unlock()
	s.rxOut.Add(int64(n))
	return n
}

// Release gives back the reserved TX frames that frames lie in; a frame that is not in a
// reserved TX frame of this socket is passed over, so the leftovers of a Transmit can be
// handed over whole.
func (s *Socket) Release(frames [][]byte) {
	back := 0
	s.txMu.Lock()
	for _, f := range frames {
		if off, ok := s.txOffset(f); ok {
			if len(s.txFree) < cap(s.txFree) {
				s.txFree = append(s.txFree, off&^uint64(s.frameSize-1))
			}
			back++
		}
	}
	s.txMu.Unlock()
	s.handBack(back)
}

// txOffset reports whether f lies within one TX frame of the UMEM, and returns its offset
// in the UMEM. Only reserved frames are written by callers, so that one is reserved.
func (s *Socket) txOffset(f []byte) (uint64, bool) {
	if len(f) == 0 || len(s.umem) == 0 {
		return 0, false
	}
	off := uintptr(unsafe.Pointer(unsafe.SliceData(f))) - uintptr(unsafe.Pointer(unsafe.SliceData(s.umem)))
	fs := uint64(s.frameSize)
	if uint64(off) >= s.rxBase || uint64(off)%fs+uint64(len(f)) > fs {
		return 0, false // not ours (the subtraction wrapped), in the RX part, or across frames
	}
	return uint64(off), true
}

// handBack counts n frames the caller held as returned, and unmaps the UMEM if that was the
// last after Close.
func (s *Socket) handBack(n int) {
	if n == 0 {
		return
	}
	// rxOut is stored before drained is loaded, and Close stores drained before it loads
	// rxOut (both sequentially consistent): at least one of the two sees the UMEM free.
	if s.rxOut.Add(-int64(n)) <= 0 && s.drained.Load() {
		s.releaseUMEM()
	}
}

// Transmit copies each frame into free TX frames of the UMEM, posts them to the TX ring
// together and wakes the kernel once if it asks for it. It first reclaims the frames the
// kernel has completed. A frame longer than FrameSize (with multi-buffer, up to MaxTxLen)
// is cut across several TX frames whose descriptors but the last carry XDP_PKT_CONTD; it
// is still one copy. It returns n: frames[:n] were handled (posted, or dropped and counted
// in Stats.TxTooLong for being empty or longer than MaxTxLen), frames[n:] were not posted
// for lack of free TX frames (counted in Stats.TxNoRoom); the caller may retry or drop
// them. A frame built in a frame from Reserve is posted where it is, with no copy; one that
// is not posted stays reserved (Release it to drop it). Transmit(nil) only reclaims and
// pushes out what an earlier call left in the ring.
// Safe for several goroutines: it takes a mutex once per call.
//
// In copy mode the kernel sends from the TX ring inside the sendto, a bounded number of
// frames per call (32 by default), so Transmit repeats the sendto while the kernel makes
// progress.
func (s *Socket) Transmit(frames [][]byte) int {
	tooLong, n := 0, 0
	s.life.RLock()
	if s.closed.Load() {
		s.life.RUnlock()
		return 0
	}
	s.txMu.Lock()
	s.reapLocked()
	ringRoom := s.tx.free(s.tx.size())
	free := uint32(len(s.txFree)) // free TX frames for the copies
	idx := s.tx.cachedProd
	k, inPlace := uint32(0), 0
	fs := int(s.frameSize)
	for ; n < len(frames); n++ {
		f := frames[n]
		if off, ok := s.txOffset(f); ok { // built in a reserved frame: posted as it is
			if ringRoom-k < 1 {
				break
			}
			s.tx.entries[(idx+k)&s.tx.mask] = unix.XDPDesc{Addr: off, Len: uint32(len(f))}
			k++
			inPlace++
			continue
		}
		if len(f) == 0 || len(f) > int(s.maxTxLen) {
			tooLong++
			continue
		}
		chunks := uint32((len(f) + fs - 1) / fs)
		if ringRoom-k < chunks || free < chunks {
			break
		}
		free -= chunks
		for len(f) > 0 {
			top := len(s.txFree) - 1
			addr := s.txFree[top]
			s.txFree = s.txFree[:top]
			c := copy(s.umem[addr:addr+uint64(fs)], f)
			f = f[c:]
			var opt uint32
			if len(f) > 0 {
				opt = unix.XDP_PKT_CONTD
			}
			s.tx.entries[(idx+k)&s.tx.mask] = unix.XDPDesc{Addr: addr, Len: uint32(c), Options: opt}
			k++
		}
	}
	if k > 0 {
		s.tx.submit(k)
	}
	s.kickTxLocked()
	s.txMu.Unlock()
	s.life.RUnlock()
	s.handBack(inPlace) // the kernel has them now: they come back through completion
	if k > 0 {
		s.txCtr.transmitted.Add(uint64(k))
	}
	if tooLong > 0 {
		s.txCtr.tooLong.Add(uint64(tooLong))
	}
	if rest := len(frames) - n; rest > 0 {
		s.txCtr.noRoom.Add(uint64(rest))
	}
	return n
}

// TxPending returns how many posted frames the kernel has not taken from the TX ring yet;
// 0 after Close. In copy mode the kernel takes them only within a wakeup, and a wakeup that
// finds the device busy (EAGAIN with no progress: a veth whose peer's ring is full stops
// its queue) leaves them there until the next one, which the caller must then make:
// Transmit(nil). The RX socket's poll no longer does it (Socket.txfd).
func (s *Socket) TxPending() int {
	s.life.RLock()
	defer s.life.RUnlock()
	if s.closed.Load() {
		return 0
	}
	s.txMu.Lock()
	defer s.txMu.Unlock()
	return int(s.tx.pending())
}

// TxFree returns how many TX frames are free: neither reserved by the caller nor posted
// and still with the kernel. It first reclaims what the kernel has completed. With nothing
// reserved or in flight it is Options.TxFrames; less then means frames went missing.
func (s *Socket) TxFree() int {
	s.life.RLock()
	defer s.life.RUnlock()
	if s.closed.Load() {
		return 0
	}
	s.txMu.Lock()
	defer s.txMu.Unlock()
	s.reapLocked()
	return len(s.txFree)
}

// reapLocked moves the frames the kernel has completed back to the free list.
func (s *Socket) reapLocked() {
	n := s.comp.avail(s.comp.size())
	if n == 0 {
		return
	}
	idx := s.comp.cachedCons
	mask := uint64(s.frameSize - 1)
	for i := uint32(0); i < n; i++ {
		addr := s.comp.entries[(idx+i)&s.comp.mask] &^ mask
		// The kernel returns what was posted; the checks keep a corrupt entry from
		// handing an RX frame to TX or overflowing the list.
		if addr < s.rxBase && len(s.txFree) < cap(s.txFree) {
			s.txFree = append(s.txFree, addr)
		}
	}
	s.comp.release(n)
	s.txCtr.completed.Add(uint64(n))
}

// maxTxKicks bounds the sendto calls of one Transmit; each one that makes progress sends
// at least one frame, so a full ring needs at most its size.
const maxTxKicks = 1 << 16

// kickTxLocked wakes the kernel to process the TX ring while the kernel asks for it
// (need_wakeup), frames are waiting, and the previous sendto made progress.
func (s *Socket) kickTxLocked() {
	for range maxTxKicks {
		before := atomic.LoadUint32(s.tx.consumer)
		if before == s.tx.cachedProd || !s.tx.needWakeup() {
			return
		}
		s.txCtr.kicks.Add(1)
		e := wake(s.txfd, unix.SYS_SENDTO)
		if e == 0 {
			return
		}
		// EAGAIN after progress is copy mode's "budget spent, call again".
		if e != unix.EAGAIN || atomic.LoadUint32(s.tx.consumer) == before {
			s.kickFailed(e)
			return
		}
	}
}
