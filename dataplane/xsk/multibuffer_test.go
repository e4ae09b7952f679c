//go:build linux

package xsk

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// deliverChunked receives pkt as the kernel does in copy mode with XDP_USE_SG: cut into
// frames from the fill ring, each at most chunk bytes 256 bytes into its frame, every
// descriptor but the last flagged XDP_PKT_CONTD. It reports whether the packet found its
// frames and ring slots.
func (k *fakeKernel) deliverChunked(pkt []byte, chunk int) bool {
	parts := (len(pkt) + chunk - 1) / chunk
	if k.fill.avail(uint32(parts)) < uint32(parts) || k.rx.free(uint32(parts)) < uint32(parts) {
		return false
	}
	for i := range uint32(parts) {
		addr := k.fill.entries[(k.fill.cachedCons+i)&k.fill.mask] + rxHeadroom
		c := copy(k.s.umem[addr:], pkt[:min(chunk, len(pkt))])
		pkt = pkt[c:]
		var opt uint32
		if len(pkt) > 0 {
			opt = unix.XDP_PKT_CONTD
		}
		k.rx.entries[(k.rx.cachedProd+i)&k.rx.mask] = unix.XDPDesc{Addr: addr, Len: uint32(c), Options: opt}
	}
	k.fill.release(uint32(parts))
	k.rx.submit(uint32(parts))
	return true
}

// gather joins the packets of descs (runs of Continued descriptors) and returns them.
func gather(s *Socket, descs []Desc) [][]byte {
	var pkts [][]byte
	var cur []byte
	for _, d := range descs {
		cur = append(cur, s.Frame(d)...)
		if !d.Continued {
			pkts = append(pkts, cur)
			cur = nil
		}
	}
	if cur != nil {
		pkts = append(pkts, append(cur, "<cut>"...)) // a packet without its tail: never equal
	}
	return pkts
}

func TestFakeMultiBufferReceiveWholePackets(t *testing.T) {
	s, k := newFakeSocket(t, 64, 2048, 32, 8)
	s.setMultiBuffer(true)
	chunk := 2048 - rxHeadroom
	// Five packets of 1 to 5 chunks: 15 descriptors.
	var sent [][]byte
	for i := 1; i <= 5; i++ {
		p := pattern(i*chunk-7, byte(i))
		if !k.deliverChunked(p, chunk) {
			t.Fatalf("packet %d: no room", i)
		}
		sent = append(sent, p)
	}
	// Room for 7 descriptors: the first three packets (1+2+3 = 6), not the head of the
	// fourth; then 4 of 4 and 5 of 5 fit only one at a time.
	descs := make([]Desc, 7)
	var got [][]byte
	for _, want := range []int{6, 4, 5} {
		n := s.Receive(descs)
		if n != want {
			t.Fatalf("Receive = %d descriptors, want %d (whole packets only)", n, want)
		}
		if descs[n-1].Continued {
			t.Fatalf("the last descriptor taken is a packet's head")
		}
		got = append(got, gather(s, descs[:n])...)
		s.Fill(descs[:n])
	}
	if n := s.Receive(descs); n != 0 {
		t.Fatalf("Receive = %d after every packet, want 0", n)
	}
	if len(got) != len(sent) {
		t.Fatalf("received %d packets, want %d", len(got), len(sent))
	}
	for i := range sent {
		if !bytes.Equal(got[i], sent[i]) {
			t.Errorf("packet %d (%d bytes) differs once gathered (%d bytes)", i, len(sent[i]), len(got[i]))
		}
	}
	if st := s.ownStats(); st.Received != 15 || st.Filled != 15 || st.FillRefused != 0 {
		t.Errorf("stats %+v, want 15 received and filled", st)
	}
}

func TestFakeMultiBufferTransmit(t *testing.T) {
	s, k := newFakeSocket(t, 64, 2048, 16, 16)
	k.keepSent = true
	s.setMultiBuffer(true)
	if s.MaxTxLen() != 2048*MaxChunks {
		t.Fatalf("MaxTxLen %d, want %d", s.MaxTxLen(), 2048*MaxChunks)
	}
	sizes := []int{60, 2048, 2049, 9014, 4096, 2048*MaxChunks + 1, 0}
	var frames [][]byte
	for i, n := range sizes {
		frames = append(frames, pattern(n, byte(i)))
	}
	// 1+1+2+5+2 = 11 frames of 16; the two too long or empty are dropped.
	if n := s.Transmit(frames); n != len(frames) {
		t.Fatalf("Transmit = %d, want %d", n, len(frames))
	}
	k.send()
	var got [][]byte
	var cur []byte
	for i, d := range k.sentDescs {
		cur = append(cur, k.sent[i]...)
		if d.Options&unix.XDP_PKT_CONTD == 0 {
			got = append(got, cur)
			cur = nil
		}
	}
	want := frames[:5]
	if len(got) != len(want) || cur != nil {
		t.Fatalf("the kernel saw %d packets (%d bytes left open), want %d", len(got), len(cur), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Errorf("packet %d (%d bytes) differs on the TX ring", i, len(want[i]))
		}
	}
	if st := s.ownStats(); st.Transmitted != 11 || st.TxTooLong != 2 || st.Completed != 0 {
		t.Errorf("stats %+v, want 11 frames transmitted, 2 too long", st)
	}
	// 16 TX frames; a packet that needs more than what is free waits whole.
	frames = [][]byte{pattern(2048*8, 1), pattern(2048*8, 2), pattern(2048*8, 3)}
	if n := s.Transmit(frames); n != 2 {
		t.Fatalf("Transmit of three 8-frame packets into 16 free frames = %d, want 2", n)
	}
	if st := s.ownStats(); st.Completed != 11 || st.TxNoRoom != 1 {
		t.Errorf("stats %+v, want 11 completed, 1 without room", st)
	}
}

func TestFakeSingleBufferTransmitTooLong(t *testing.T) {
	s, _ := newFakeSocket(t, 16, 2048, 16, 8)
	if n := s.Transmit([][]byte{pattern(2049, 0), pattern(2048, 1)}); n != 2 {
		t.Fatalf("Transmit = %d, want 2", n)
	}
	if st := s.ownStats(); st.Transmitted != 1 || st.TxTooLong != 1 {
		t.Errorf("stats %+v: without multi-buffer a packet longer than a frame is too long", st)
	}
}

func TestFakeMultiBufferNoAllocs(t *testing.T) {
	s, k := newFakeSocket(t, 64, 2048, 32, 16)
	s.setMultiBuffer(true)
	pkt := pattern(9014, 3)
	descs := make([]Desc, 32)
	frames := [][]byte{pkt}
	allocs := testing.AllocsPerRun(100, func() {
		k.deliverChunked(pkt, 2048-rxHeadroom)
		n := s.Receive(descs)
		s.Fill(descs[:n])
		s.Transmit(frames)
		k.send()
	})
	if allocs != 0 {
		t.Errorf("%v allocations per multi-buffer receive and transmit, want 0", allocs)
	}
}

// jumboFrame builds an Ethernet/IPv4/UDP test frame of size bytes from src to dst whose
// payload derives from seq: testFrame's layout beyond 1514 bytes.
func jumboFrame(n *vethNet, seq uint32, size int) []byte {
	b := testFrame(make([]byte, 2048), n.macA, n.macB, seq)
	f := make([]byte, size)
	copy(f, b[:42+12])
	binary.BigEndian.PutUint16(f[16:], uint16(size-14))
	f[24], f[25] = 0, 0
	var sum uint32
	for i := 14; i < 34; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(f[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(f[24:], ^uint16(sum))
	binary.BigEndian.PutUint16(f[38:], uint16(size-34))
	for i := 54; i < size; i++ {
		f[i] = byte(seq*31 + uint32(i)*7)
	}
	return f
}

// TestVethMultiBuffer sends frames of every length class up to a 9000-byte MTU through a
// real veth with a frags-declaring XDP program into a multi-buffer socket, and back out
// of it, and checks every byte both ways.
func TestVethMultiBuffer(t *testing.T) {
	const mtu = 9000
	n := newVethNetMTU(t, 1, mtu)
	o := smallUMEM
	o.MultiBuffer = true
	s := n.open(t, o)
	if !s.MultiBuffer() {
		t.Fatal("socket not in multi-buffer mode")
	}
	t.Logf("xdp native=%v, zero-copy=%v", n.native, s.ZeroCopy())
	chunk := o.FrameSize - rxHeadroom
	sizes := []int{60, 1514, chunk - 1, chunk, chunk + 1, 2 * chunk, 2*chunk + 1, 8000, 14 + mtu}
	tx := n.packetSocket(t, n.a, false)
	descs := make([]Desc, 32)
	for i, size := range sizes {
		want := jumboFrame(n, uint32(i), size)
		if _, err := unix.Write(tx, want); err != nil {
			t.Fatalf("send %d-byte frame: %v", size, err)
		}
		var got []Desc
		waitFor(2*time.Second, func() bool {
			k := s.Receive(descs)
			got = append(got, descs[:k]...)
			return len(got) > 0
		})
		pkts := gather(s, got)
		s.Fill(got)
		if len(pkts) != 1 || !bytes.Equal(pkts[0], want) {
			st, _ := s.Stats()
			t.Fatalf("%d-byte frame: received %d packets in %d descriptors, equal %v; stats %+v",
				size, len(pkts), len(got), len(pkts) == 1 && bytes.Equal(pkts[0], want), st)
		}
		if wantDescs := (size + chunk - 1) / chunk; len(got) != wantDescs {
			t.Errorf("%d-byte frame in %d descriptors, want %d", size, len(got), wantDescs)
		}
	}

	rx := n.packetSocket(t, n.a, true)
	buf := make([]byte, 16384)
	for i, size := range sizes {
		want := jumboFrame(n, uint32(100+i), size)
		copy(want[0:6], n.macA)
		copy(want[6:12], n.macB)
		if k := s.Transmit([][]byte{want}); k != 1 {
			t.Fatalf("Transmit of a %d-byte frame = %d", size, k)
		}
		var got []byte
		ok := waitFor(2*time.Second, func() bool {
			m, ok, err := recvPacket(rx, buf)
			if err != nil || !ok {
				return false
			}
			got = buf[:m]
			return bytes.Equal(got[6:12], n.macB) && len(got) >= 54 && got[53] == want[53] && binary.BigEndian.Uint16(got[12:]) == unix.ETH_P_IP
		})
		if !ok || !bytes.Equal(got, want) {
			st, _ := s.Stats()
			t.Fatalf("sent a %d-byte frame, the peer received %d bytes (equal %v); stats %+v", size, len(got), bytes.Equal(got, want), st)
		}
	}
	if st, err := s.Stats(); err != nil || st.RxDropped != 0 || st.TxInvalidDescs != 0 || st.RxInvalidDescs != 0 {
		t.Errorf("stats %+v, %v: want no drops and no invalid descriptors", st, err)
	}
}

// TestVethSingleBufferDropsJumbo shows what multi-buffer fixes: without it the socket's
// kernel side drops a frame longer than a frame's room (rx_dropped).
func TestVethSingleBufferDropsJumbo(t *testing.T) {
	n := newVethNetMTU(t, 1, 9000)
	s := n.open(t, smallUMEM)
	tx := n.packetSocket(t, n.a, false)
	if _, err := unix.Write(tx, jumboFrame(n, 1, 8000)); err != nil {
		t.Fatal(err)
	}
	descs := make([]Desc, 16)
	ok := waitFor(2*time.Second, func() bool {
		st, _ := s.Stats()
		return st.RxDropped > 0
	})
	if k := s.Receive(descs); k != 0 || !ok {
		t.Fatalf("an 8000-byte frame: received %d descriptors, rx_dropped seen %v", k, ok)
	}
}
