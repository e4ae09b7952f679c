//go:build linux

package xsk

import (
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Receive takes up to len(descs) descriptors from the RX ring without blocking and returns
// how many it stored in descs. The caller then holds those frames: their bytes, from Frame,
// stay valid until it hands them back with Fill. With multi-buffer it takes whole packets
// only (a packet's last descriptor has Continued clear); a packet that spans more
// descriptors than len(descs) is dropped whole and counted in Stats.RxTooLong, so give it
// room for MaxChunks descriptors or more. RX side: one goroutine.
func (s *Socket) Receive(descs []Desc) int {
	s.life.RLock()
	if s.closed.Load() {
		s.life.RUnlock()
		return 0
	}
	if s.rxDropping {
		s.dropRxPacket()
	}
	want := uint32(min(len(descs), int(s.rx.size())))
	n := s.rx.avail(want)
	idx := s.rx.cachedCons
	if s.multiBuffer {
		// The kernel publishes a packet's descriptors together, so only a cut by want
		// leaves a packet's head without its tail: that part stays for the next call.
		full := n == want
		for n > 0 && s.rx.entries[(idx+n-1)&s.rx.mask].Options&unix.XDP_PKT_CONTD != 0 {
			n--
		}
		if n == 0 && full {
			// A packet longer than descs: it would never fit, and taking part of it
			// would let its tail pass for a packet of its own. Dropped whole.
			s.rxDropping = true
			s.dropRxPacket()
		}
	}
	numFrames := uint64(len(s.umem)) >> s.frameShift
	for i := range descs[:n] {
		e := &s.rx.entries[(idx+uint32(i))&s.rx.mask]
		descs[i] = Desc{Addr: e.Addr, Len: e.Len, Continued: e.Options&unix.XDP_PKT_CONTD != 0}
		if f := e.Addr >> s.frameShift; f < numFrames {
			s.held[f/64] |= 1 << (f % 64)
		}
	}
	if n > 0 {
		s.rx.release(n)
		s.rxOut.Add(int64(n))
		s.rxCtr.received.Add(uint64(n))
	}
	s.life.RUnlock()
	return int(n)
}

// dropRxPacket discards the packet at the head of the RX ring, as far as the ring holds it,
// and clears rxDropping once its last descriptor is gone: its frames go back to the fill
// ring without reaching the caller. It counts the packet in Stats.RxTooLong.
func (s *Socket) dropRxPacket() {
	n := s.rx.avail(s.rx.size())
	idx := s.rx.cachedCons
	numFrames := uint64(len(s.umem)) >> s.frameShift
	k := uint32(0)
	for k < n {
		e := s.rx.entries[(idx+k)&s.rx.mask]
		k++
		if f := e.Addr >> s.frameShift; e.Addr >= s.rxBase && f < numFrames && len(s.spare) < cap(s.spare) {
			s.spare = append(s.spare, f<<s.frameShift)
		}
		if e.Options&unix.XDP_PKT_CONTD == 0 {
			s.rxDropping = false
			s.rxCtr.tooLong.Add(1)
			break
		}
	}
	s.rx.release(k)
	// Posted now: a caller that receives nothing hands nothing back, so Fill would not.
	s.fill.submit(s.postSpare(s.fill.free(uint32(len(s.spare)))))
}

// Frame returns the bytes of a received packet inside the UMEM, without copying. Its
// capacity runs to the end of the frame, so the packet may grow in place. It returns nil
// for a Desc that does not lie inside one frame of the UMEM. The slice is valid while the
// caller holds the frame: until Fill hands it back, even across Close. Frame may be
// called from any goroutine.
func (s *Socket) Frame(d Desc) []byte {
	end := d.Addr + uint64(d.Len)
	frameEnd := d.Addr&^uint64(s.frameSize-1) + uint64(s.frameSize)
	if end < d.Addr || end > frameEnd || frameEnd > uint64(len(s.umem)) {
		return nil
	}
	return s.umem[d.Addr:end:frameEnd]
}

// Gather copies the packet that starts at descs[0], spanning the descriptors up to the
// first without Continued, into buf, and returns it (a slice of buf) and how many
// descriptors it took. It returns a nil packet, still saying how many descriptors the
// packet spans, if one of them is not a frame of the UMEM (see Frame), if buf is too
// short, or if descs ends before the packet does. The caller still holds and fills the
// frames. Gather may be called from any goroutine.
func (s *Socket) Gather(descs []Desc, buf []byte) (pkt []byte, took int) {
	n, ok := 0, true
	for took < len(descs) {
		d := descs[took]
		took++
		chunk := s.Frame(d)
		if chunk == nil || n+len(chunk) > len(buf) {
			ok = false
		} else if ok {
			n += copy(buf[n:], chunk)
		}
		if !d.Continued {
			if !ok {
				return nil, took
			}
			return buf[:n:n], took
		}
	}
	return nil, took
}

// FrameWithRoom is Frame with room bytes of the frame in front of the packet: the packet
// is at [room:]. Those bytes are the headroom the kernel leaves before a received packet
// (XDP_PACKET_HEADROOM, 256 bytes); while the caller holds the frame they are its to
// write, to prepend headers in place without copying the packet. It returns nil if room
// is negative or reaches before the frame's start, or where Frame does.
func (s *Socket) FrameWithRoom(d Desc, room int) []byte {
	start := d.Addr - uint64(room)
	if room < 0 || start > d.Addr || start < d.Addr&^uint64(s.frameSize-1) {
		return nil
	}
	f := s.Frame(d)
	if f == nil {
		return nil
	}
	return s.umem[start : d.Addr+uint64(d.Len) : uint64(cap(f))+d.Addr]
}

// Fill hands received frames back: they go to the fill ring for the kernel to receive
// into, or aside until the fill ring has room. Descriptors of frames the caller does not
// hold (never received, or already handed back) are refused and counted in
// Stats.FillRefused, so a double release cannot put one frame in the ring twice. If the
// kernel asks for it (need_wakeup), Fill makes one recvfrom to wake it. After Close, Fill
// only takes the frames back; the last one releases the UMEM. RX side: one goroutine.
func (s *Socket) Fill(descs []Desc) {
	back := s.takeBack(descs)
	s.life.RLock()
	if !s.closed.Load() {
		if k := s.postSpare(s.fill.free(uint32(len(s.spare)))); k > 0 {
			s.fill.submit(k)
			if s.fill.needWakeup() {
				s.kickRx()
			}
		}
	}
	s.life.RUnlock()
	if back == 0 {
		return
	}
	s.rxCtr.filled.Add(uint64(back))
	s.handBack(back)
}

// takeBack clears the held bit of each descriptor's frame and puts the frame aside; it
// returns how many it took and counts the refused ones.
func (s *Socket) takeBack(descs []Desc) int {
	back := 0
	numFrames := uint64(len(s.umem)) >> s.frameShift
	for i := range descs {
		a := descs[i].Addr
		f := a >> s.frameShift
		bit := uint64(1) << (f % 64)
		if a < s.rxBase || f >= numFrames || s.held[f/64]&bit == 0 || len(s.spare) == cap(s.spare) {
			continue
		}
		s.held[f/64] &^= bit
		s.spare = append(s.spare, f<<s.frameShift)
		back++
	}
	if refused := len(descs) - back; refused > 0 {
		s.rxCtr.fillRefused.Add(uint64(refused))
	}
	return back
}

// postSpare writes up to room frames from the aside list into the fill ring from its
// producer index on, and returns how many; the caller submits them.
func (s *Socket) postSpare(room uint32) uint32 {
	k := min(room, uint32(len(s.spare)))
	idx := s.fill.cachedProd
	top := uint32(len(s.spare))
	for i := uint32(0); i < k; i++ {
		s.fill.entries[(idx+i)&s.fill.mask] = s.spare[top-1-i]
	}
	s.spare = s.spare[:top-k]
	return k
}

// kickRx wakes the kernel to process the fill ring (needed in zero-copy mode when the
// driver has run out of fill descriptors).
func (s *Socket) kickRx() {
	s.rxCtr.kicks.Add(1)
	if e := wake(s.fd, unix.SYS_RECVFROM); e != 0 {
		s.kickFailed(e)
	}
}

// waitCheck is how often a blocked Wait checks that the socket is still bound, in
// time. The kernel does not wake pollers when the interface goes away: it sets the
// socket error and unbinds, and then its poll reports nothing at all.
const waitCheck = time.Second

// Wait blocks until the RX ring has a packet, without spinning: the goroutine parks in
// Go's netpoller until the kernel signals the socket readable. It returns nil when a packet
// is there, ErrClosed once Close is called (Close wakes a Wait in progress), or an error
// wrapping ENETDOWN within about a second of the interface going away, which then sticks.
// RX side: one goroutine.
func (s *Socket) Wait() error {
	s.life.RLock()
	if s.closed.Load() {
		s.life.RUnlock()
		return ErrClosed
	}
	if s.rc == nil {
		s.life.RUnlock()
		return errNotPollable
	}
	// In zero-copy mode the driver may sleep until told the fill ring has frames.
	if s.rxErr == nil && s.fill.needWakeup() {
		s.kickRx()
	}
	for s.rxErr == nil && s.armDeadline() {
		err := s.rc.Read(s.waitFn)
		if err == nil || s.closed.Load() {
			break
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			s.rxErr = fmt.Errorf("wait for rx ring: %w", err)
			break
		}
		// recvfrom on an AF_XDP socket fails with ENXIO only once it is unbound.
		if wake(s.fd, unix.SYS_RECVFROM) == unix.ENXIO {
			s.rxErr = fmt.Errorf("wait for rx ring: socket unbound, interface gone: %w", unix.ENETDOWN)
		}
	}
	err := s.rxErr
	s.life.RUnlock()
	if s.closed.Load() {
		return ErrClosed
	}
	return err
}

// armDeadline sets the read deadline of the next waitCheck slice, unless Close has set
// its own (in the past) already; it reports whether Wait may block.
func (s *Socket) armDeadline() bool {
	s.deadlineMu.Lock()
	ok := !s.closed.Load()
	if ok {
		ok = s.file.SetReadDeadline(time.Now().Add(waitCheck)) == nil
	}
	s.deadlineMu.Unlock()
	return ok
}

// rxReady is Wait's readiness test, run by the netpoller's Read first and after each
// wakeup: true once the RX ring has a packet.
func (s *Socket) rxReady(uintptr) bool {
	return s.rx.avail(1) > 0
}
