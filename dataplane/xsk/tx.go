//go:build linux

package xsk

import (
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Transmit copies each frame into free TX frames of the UMEM, posts them to the TX ring
// together and wakes the kernel once if it asks for it. It first reclaims the frames the
// kernel has completed. A frame longer than FrameSize (with multi-buffer, up to MaxTxLen)
// is cut across several TX frames whose descriptors but the last carry XDP_PKT_CONTD; it
// is still one copy. It returns n: frames[:n] were handled (posted, or dropped and counted
// in Stats.TxTooLong for being empty or longer than MaxTxLen), frames[n:] were not posted
// for lack of free TX frames (counted in Stats.TxNoRoom); the caller may retry or drop
// them. Transmit(nil) only reclaims and pushes out what an earlier call left in the ring.
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
	room := min(uint32(len(s.txFree)), s.tx.free(s.tx.size()))
	idx := s.tx.cachedProd
	k := uint32(0)
	fs := int(s.frameSize)
	for ; n < len(frames); n++ {
		f := frames[n]
		if len(f) == 0 || len(f) > int(s.maxTxLen) {
			tooLong++
			continue
		}
		chunks := uint32((len(f) + fs - 1) / fs)
		if room-k < chunks {
			break
		}
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
		e := wake(s.fd, unix.SYS_SENDTO)
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
