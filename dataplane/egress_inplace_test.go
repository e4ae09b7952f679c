//go:build linux

package dataplane

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/vxdp/vxdp/dataplane/fdb"
	"github.com/vxdp/vxdp/dataplane/offload"
	"github.com/vxdp/vxdp/dataplane/packet"
)

// portPipe gives port p a descriptor to read frames from as from its TAP, and returns the
// other end, where the test writes what the container's kernel would hand the TAP: a
// SEQPACKET pair keeps each write one frame, as a TAP does.
func portPipe(t testing.TB, p *tap) (w int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Room for a batch of 64 KB super-frames queued at once.
	if err := unix.SetsockoptInt(fds[1], unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 8<<20); err != nil {
		t.Fatal(err)
	}
	if err := unix.SetNonblock(fds[0], true); err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fds[0]), "port-pipe")
	raw, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	p.file, p.raw = f, raw
	t.Cleanup(func() {
		f.Close()
		unix.Close(fds[1])
	})
	return fds[1]
}

// feed writes each of msgs to w as one frame.
func feed(t testing.TB, w int, msgs ...[]byte) {
	t.Helper()
	for _, m := range msgs {
		if _, err := unix.Write(w, m); err != nil {
			t.Fatal(err)
		}
	}
}

// vnetMsg is frame as a TAP with offloads hands it over: behind its virtio_net_hdr h.
func vnetMsg(h offload.VirtioNetHdr, frame []byte) []byte {
	m := make([]byte, offload.HdrLen+len(frame))
	h.Encode(m)
	copy(m[offload.HdrLen:], frame)
	return m
}

// pump reads and switches batches from r, as runPort does, until want more frames have
// come from the port.
func pump(t testing.TB, en *egressNode, r *tapReader, want uint64) {
	t.Helper()
	want += en.c.outPackets.Load()
	for en.c.outPackets.Load() < want {
		n, err := r.readBatch()
		if err != nil {
			t.Fatal(err)
		}
		en.e.switchBatch(r, n, 1)
	}
}

// wireCapture opens an AF_PACKET socket for IPv4 on dev, the far end of the underlay wire.
func wireCapture(t testing.TB, dev string) int {
	t.Helper()
	l, err := netlink.LinkByName(dev)
	if err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_IP)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: l.Attrs().Index}); err != nil {
		t.Fatal(err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 16<<20); err != nil {
		t.Fatal(err)
	}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 200_000}); err != nil {
		t.Fatal(err)
	}
	return fd
}

// wireInner returns the inner frames of the VXLAN frames fd captured, until the wire is
// quiet for its receive timeout.
func wireInner(t testing.TB, fd int) [][]byte {
	t.Helper()
	var inner [][]byte
	buf := make([]byte, 1<<16)
	for {
		n, err := unix.Read(fd, buf)
		if err != nil {
			return inner
		}
		f := buf[:n]
		const outer = packet.HeadroomIPv4
		if n < outer || binary.BigEndian.Uint16(f[12:]) != 0x0800 || f[14+9] != unix.IPPROTO_UDP ||
			binary.BigEndian.Uint16(f[14+20+2:]) != 4789 {
			continue
		}
		inner = append(inner, bytes.Clone(f[outer:]))
	}
}

// settle checks that no TX frame went missing once the port is quiet: it waits for the
// kernel to complete what was transmitted, lets r give back its spare TX frames (as when
// it waits for the port), and then wants the socket to have want free TX frames, each
// once. A frame given back twice (say, by the reader while the kernel had it too) would
// stand twice in the free list in place of another: all of them are reserved to see.
func settle(t testing.TB, en *egressNode, r *tapReader, want int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		en.sock.TxFree() // reaps the completion ring, which Stats only reads the count of
		st, err := en.sock.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if st.Completed == st.Transmitted {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d TX frames transmitted, %d completed", st.Transmitted, st.Completed)
		}
		time.Sleep(time.Millisecond)
	}
	r.releaseSpare()
	if got := en.sock.TxFree(); got != want {
		t.Fatalf("%d free TX frames, want %d: some went missing", got, want)
	}
	all := make([][]byte, want)
	if got := en.sock.Reserve(all); got != want {
		t.Fatalf("reserved %d of %d free TX frames", got, want)
	}
	seen := map[*byte]bool{}
	for _, f := range all {
		if seen[&f[0]] {
			t.Fatalf("TX frame at %p is free twice", &f[0])
		}
		seen[&f[0]] = true
	}
	en.sock.Release(all)
}

// vnetReader is runPort's reader for a TAP with offloads.
func vnetReader(en *egressNode) *tapReader {
	return newTapReader(en.e.t, tapVnetBatch, packet.Headroom-offload.HdrLen, offload.HdrLen+offload.MaxFrameLen, en.sock, en.e.mtu)
}

// tcpFrame is a TCP frame without GSO, of payload bytes from testInnerSrc to dst, whose
// payload starts with id so that the test tells its frames apart.
func tcpFrame(t testing.TB, dst net.HardwareAddr, id byte, payload int) []byte {
	_, f := tsoFrame(t, payload)
	copy(f[0:6], dst)
	binary.BigEndian.PutUint16(f[14+2:], uint16(len(f)-14)) // a frame of its own
	f[14+20+20] = id
	return f
}

// TestEgressReadInPlace: frames without GSO are read from the port straight into TX frames
// and posted there, the outer headers written in front, and arrive whole and in order; a
// super-frame, too long for a TX frame, goes through the heap and is cut as before, and
// the frame after it too (a spill predicts another) but not the one after that. A
// broadcast frame flooded to the VNI's one remote is sent in place as well. Nothing is
// allocated per batch, and no TX frame is left behind.
func TestEgressReadInPlace(t *testing.T) {
	en := newEgressNode(t)
	w := portPipe(t, en.e.t)
	wire := wireCapture(t, "wire1")
	r := vnetReader(en)
	free := en.sock.TxFree()

	var plain offload.VirtioNetHdr
	h, super := tsoFrame(t, 20000)
	segs := (20000 + 1398 - 1) / 1398
	bcast := net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	p := [][]byte{tcpFrame(t, egressDst, 1, 500), tcpFrame(t, egressDst, 2, 64), tcpFrame(t, egressDst, 3, 1300), tcpFrame(t, bcast, 4, 100)}
	feed(t, w, vnetMsg(plain, p[0]), vnetMsg(h, super), vnetMsg(plain, p[1]), vnetMsg(plain, p[2]), vnetMsg(plain, p[3]))
	pump(t, en, r, 4+uint64(segs))
	if got := en.c.txInPlace.Load(); got != 3 {
		t.Errorf("%d frames sent in place, want 3 (the first, the last two)", got)
	}
	if got := en.c.txPackets.Load(); got != uint64(4+segs) {
		t.Errorf("%d frames transmitted, want %d", got, 4+segs)
	}
	got := wireInner(t, wire)
	if len(got) != 4+segs {
		t.Fatalf("%d VXLAN frames on the wire, want %d", len(got), 4+segs)
	}
	for i, j := range map[int]int{0: 0, 1 + segs: 1, 2 + segs: 2, 3 + segs: 3} {
		if !bytes.Equal(got[i], p[j]) {
			t.Errorf("VXLAN frame %d carries %x, want frame %d %x", i, got[i], j, p[j])
		}
	}
	settle(t, en, r, free)

	// A batch of plain frames, from the read to the transmit, allocates nothing.
	msg := vnetMsg(plain, p[0])
	round := func() {
		feed(t, w, msg, msg, msg)
		pump(t, en, r, 3)
	}
	before := en.c.txInPlace.Load()
	if n := testing.AllocsPerRun(50, round); n != 0 {
		t.Errorf("%.1f allocations per batch", n)
	}
	if got := en.c.txInPlace.Load() - before; got != 51*3 {
		t.Errorf("%d of %d frames sent in place", got, 51*3)
	}
	settle(t, en, r, free)
}

// TestEgressReadInPlaceNoLeak: a frame read into a TX frame and then dropped (too short, a
// bad source, a remote without a resolved next hop), delivered to another local port, or
// flooded to several remotes (copied, one per remote) gives its TX frame back: once the
// port is quiet the socket has all its TX frames free again.
func TestEgressReadInPlaceNoLeak(t *testing.T) {
	en := newEgressNode(t)
	v, n := en.e.v, en.e.n
	w := portPipe(t, en.e.t)
	// A second remote, a third whose next hop is not resolved, and a second local port.
	r2 := &remote{index: 1, addr: netip.MustParseAddr("192.0.2.3")}
	r3 := &remote{index: 2, addr: netip.MustParseAddr("192.0.2.4")}
	n.remotes, n.encaps = append(n.remotes, r2, r3), append(n.encaps, encapSlot{}, encapSlot{})
	v.remotes = append(v.remotes, r2, r3)
	tmpl, err := packet.NewEncapOptions([6]byte{2, 0, 0, 0, 0x0a, 0}, [6]byte{2, 0, 0, 0, 0x0a, 1}, v.cfg.Local, r2.addr,
		v.cfg.Port, n.vni, packet.DefaultHeaderOptions)
	if err != nil {
		t.Fatal(err)
	}
	n.encaps[1].p.Store(tmpl)
	wire := wireCapture(t, "wire1")
	other := &tap{port: Port{TAP: "p42b", MTU: 1450}, index: 1, net: n, vnet: true}
	otherOut := portPipe(t, other)
	n.ports, v.ports = append(n.ports, other), append(v.ports, other)
	local := net.HardwareAddr{0x02, 0, 0, 0, 0x0c, 0x01}
	behindR3 := net.HardwareAddr{0x02, 0, 0, 0, 0x0c, 0x02}
	n.fdb.Learn(fdb.MACFrom(local), fdb.LocalPort(1), 1)
	n.fdb.Learn(fdb.MACFrom(behindR3), fdb.RemoteVTEP(2), 1)
	r := vnetReader(en)
	free := en.sock.TxFree()

	var plain offload.VirtioNetHdr
	badSrc := tcpFrame(t, egressDst, 2, 100)
	badSrc[6] = 0x01 // multicast source
	bcast := tcpFrame(t, net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 5, 100)
	toLocal := tcpFrame(t, local, 3, 100)
	feed(t, w, vnetMsg(plain, []byte{1, 2, 3}), vnetMsg(plain, badSrc), vnetMsg(plain, toLocal),
		vnetMsg(plain, tcpFrame(t, behindR3, 4, 100)), vnetMsg(plain, bcast))
	pump(t, en, r, 5)
	var c Counters
	c.add(en.c)
	if c.Drops[DropRunt] != 1 || c.Drops[DropBadSource] != 1 || c.Drops[DropNoNeighbour] != 2 {
		t.Errorf("drops %v, want one runt, one bad source, two without a next hop (one unicast, one flooded)", c.Drops)
	}
	if c.TxInPlace != 0 || c.TxPackets != 2 || c.Delivered != 2 {
		t.Errorf("%d sent in place, %d sent, %d delivered locally; want 0, 2 (the flood's copies), 2", c.TxInPlace, c.TxPackets, c.Delivered)
	}
	if got := wireInner(t, wire); len(got) != 2 || !bytes.Equal(got[0], bcast) || !bytes.Equal(got[1], bcast) {
		t.Errorf("%d VXLAN frames on the wire, want 2 copies of the broadcast", len(got))
	}
	buf := make([]byte, 4096)
	for _, want := range [][]byte{toLocal, bcast} {
		m, err := unix.Read(otherOut, buf)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf[offload.HdrLen:m], want) {
			t.Errorf("the other port got %x, want %x", buf[offload.HdrLen:m], want)
		}
	}
	settle(t, en, r, free)
}

// TestEgressReadFallback: with every TX frame reserved elsewhere the reader reads into the
// heap instead of waiting, and the frames are dropped as tx_full (Transmit finds no TX
// frame to copy them into either); once frames are free again, reads go to them.
func TestEgressReadFallback(t *testing.T) {
	en := newEgressNode(t)
	w := portPipe(t, en.e.t)
	r := vnetReader(en)
	free := en.sock.TxFree()
	held := make([][]byte, free)
	if got := en.sock.Reserve(held); got != free {
		t.Fatalf("reserved %d of %d TX frames", got, free)
	}
	var plain offload.VirtioNetHdr
	msg := vnetMsg(plain, tcpFrame(t, egressDst, 1, 200))
	feed(t, w, msg, msg, msg)
	pump(t, en, r, 3)
	if got := en.c.drops[DropTxFull].Load(); got != 3 || en.c.txInPlace.Load() != 0 {
		t.Errorf("%d dropped as tx_full, %d sent in place; want 3 and 0", got, en.c.txInPlace.Load())
	}
	en.sock.Release(held)
	feed(t, w, msg, msg, msg)
	pump(t, en, r, 3)
	if got := en.c.txInPlace.Load(); got != 3 || en.c.txPackets.Load() != 3 {
		t.Errorf("%d sent in place, %d sent, once TX frames are free; want 3 and 3", got, en.c.txPackets.Load())
	}
	settle(t, en, r, free)
}

// TestEgressReadInPlaceJumbo: at port MTU 8950 (a multi-buffer socket) a jumbo frame does
// not fit one TX frame: it spills into the heap and Transmit cuts it across TX frames as
// before, and so do the segments of a super-frame; small frames still go in place.
func TestEgressReadInPlaceJumbo(t *testing.T) {
	en := newEgressNodeMTU(t, 9000, 8950)
	w := portPipe(t, en.e.t)
	wire := wireCapture(t, "wire1")
	r := vnetReader(en)
	free := en.sock.TxFree()
	var plain offload.VirtioNetHdr
	h, super := tsoFrameMSS(t, 3*jumboMSS, jumboMSS)
	small, jumbo := tcpFrame(t, egressDst, 1, 300), tcpFrame(t, egressDst, 2, 8000)
	feed(t, w, vnetMsg(plain, small), vnetMsg(plain, jumbo), vnetMsg(h, super), vnetMsg(plain, small), vnetMsg(plain, small))
	pump(t, en, r, 4+3)
	if got := en.c.txInPlace.Load(); got != 2 {
		t.Errorf("%d frames sent in place, want 2 (the first and the last)", got)
	}
	got := wireInner(t, wire)
	if len(got) != 4+3 {
		t.Fatalf("%d VXLAN frames on the wire, want %d", len(got), 4+3)
	}
	if !bytes.Equal(got[1], jumbo) {
		t.Errorf("the jumbo frame arrived as %d bytes, want %d intact", len(got[1]), len(jumbo))
	}
	for _, i := range []int{0, 5, 6} {
		if !bytes.Equal(got[i], small) {
			t.Errorf("VXLAN frame %d is not the small frame", i)
		}
	}
	settle(t, en, r, free)
}

// TestEgressReadInPlacePlain: a TAP without offloads, whose largest read fits a TX frame,
// reads every frame there; one longer than the port's MTU is dropped and its TX frame
// given back.
func TestEgressReadInPlacePlain(t *testing.T) {
	en := newEgressNode(t)
	en.e.t.vnet, en.e.v.room = false, 0
	w := portPipe(t, en.e.t)
	wire := wireCapture(t, "wire1")
	r := newTapReader(en.e.t, batchSize, packet.Headroom, 14+en.e.mtu+1, en.sock, 0)
	free := en.sock.TxFree()
	f := tcpFrame(t, egressDst, 1, 1000)
	feed(t, w, f, tcpFrame(t, egressDst, 2, 1500), f)
	pump(t, en, r, 3)
	if got := en.c.txInPlace.Load(); got != 2 || en.c.drops[DropTooBig].Load() != 1 {
		t.Errorf("%d frames sent in place, %d too big; want 2 and 1", got, en.c.drops[DropTooBig].Load())
	}
	if got := wireInner(t, wire); len(got) != 2 || !bytes.Equal(got[0], f) || !bytes.Equal(got[1], f) {
		t.Errorf("%d VXLAN frames on the wire, want 2 carrying the frame", len(got))
	}
	settle(t, en, r, free)
}

// BenchmarkEgressReadTSO measures a port's TSO super-frames of 45 segments (a batch of 2)
// from the read to the AF_XDP transmit, read scattered into TX frames, against reads into
// the heap that are cut into TX frames. Both include the test's writes into the pipe.
func BenchmarkEgressReadTSO(b *testing.B) {
	for _, scattered := range []bool{true, false} {
		name := "heap"
		if scattered {
			name = "scattered"
		}
		b.Run(name, func(b *testing.B) {
			en := newEgressNode(b)
			w := portPipe(b, en.e.t)
			mtu := en.e.mtu
			if !scattered {
				mtu = 0
			}
			r := newTapReader(en.e.t, tapVnetBatch, packet.Headroom-offload.HdrLen, offload.HdrLen+offload.MaxFrameLen, en.sock, mtu)
			h, super := tsoFrame(b, 45*1398)
			msg := vnetMsg(h, super)
			b.ReportAllocs()
			b.SetBytes(int64(2 * len(super)))
			for b.Loop() {
				feed(b, w, msg, msg)
				pump(b, en, r, 2*45)
			}
		})
	}
}

// BenchmarkEgressRead measures a port's frames without GSO (1.4 KB, a batch of 8) from the
// read to the AF_XDP transmit, read into TX frames and posted in place, against reads into
// the heap that Transmit copies. Both include the test's writes into the port's pipe.
func BenchmarkEgressRead(b *testing.B) {
	for _, inPlace := range []bool{true, false} {
		name := "heap"
		if inPlace {
			name = "tx-frame"
		}
		b.Run(name, func(b *testing.B) {
			en := newEgressNode(b)
			w := portPipe(b, en.e.t)
			r := vnetReader(en)
			if !inPlace {
				r = newTapReader(en.e.t, tapVnetBatch, packet.Headroom-offload.HdrLen, offload.HdrLen+offload.MaxFrameLen, nil, 0)
			}
			msg := vnetMsg(offload.VirtioNetHdr{}, tcpFrame(b, egressDst, 1, 1400-54))
			batch := [][]byte{msg, msg, msg, msg, msg, msg, msg, msg}
			b.ReportAllocs()
			b.SetBytes(int64(len(batch) * len(msg)))
			for b.Loop() {
				feed(b, w, batch...)
				pump(b, en, r, uint64(len(batch)))
			}
		})
	}
}

// segmentsOf returns the frames Segment cuts super, behind h, into at the port's MTU.
func segmentsOf(t testing.TB, en *egressNode, h offload.VirtioNetHdr, super []byte) [][]byte {
	out := make([][]byte, tapGSOMaxSegs)
	for i := range out {
		out[i] = make([]byte, 14+en.e.mtu)
	}
	sizes := make([]int, len(out))
	n, err := offload.Segment(h, super, en.e.mtu, out, sizes, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		out[i] = out[i][:sizes[i]]
	}
	return out[:n]
}

// TestEgressReadScattered: a super-frame after a super-frame of the same layout is read
// scattered, each segment's payload straight into a TX frame, and its segments arrive as
// Segment cuts them; a super-frame longer than predicted, or with another segment size, is
// moved into the heap and cut as before, and a shorter one takes fewer TX frames. No TX
// frame is left behind.
func TestEgressReadScattered(t *testing.T) {
	en := newEgressNode(t)
	w := portPipe(t, en.e.t)
	wire := wireCapture(t, "wire1")
	r := vnetReader(en)
	free := en.sock.TxFree()
	type super struct {
		payload, mss int
		placed       bool // read scattered
	}
	supers := []super{{20000, 1398, false}, {20000, 1398, true}, {20000, 1398, true}, {30000, 1398, false},
		{10000, 1398, true}, {10000, 1000, false}, {10000, 1000, true}}
	var want [][]byte
	placed := uint64(0)
	for i, s := range supers {
		h, f := tsoFrameMSS(t, s.payload, s.mss)
		f[len(f)-1] = byte(i) // tell the super-frames apart
		feed(t, w, vnetMsg(h, f))
		want = append(want, segmentsOf(t, en, h, f)...)
		if s.placed {
			placed++
		}
	}
	pump(t, en, r, uint64(len(want)))
	if got := en.c.gsoPlaced.Load(); got != placed {
		t.Errorf("%d super-frames read scattered, want %d", got, placed)
	}
	if got := en.c.txPackets.Load(); got != uint64(len(want)) {
		t.Errorf("%d frames transmitted, want %d", got, len(want))
	}
	got := wireInner(t, wire)
	if len(got) != len(want) {
		t.Fatalf("%d VXLAN frames on the wire, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("VXLAN frame %d differs from what Segment cuts", i)
		}
	}
	settle(t, en, r, free)

	// Scattered reads, from the read to the transmit, allocate nothing.
	h, f := tsoFrameMSS(t, 10000, 1000)
	msg := vnetMsg(h, f)
	segs := uint64(len(segmentsOf(t, en, h, f)))
	round := func() {
		feed(t, w, msg, msg)
		pump(t, en, r, 2*segs)
	}
	before := en.c.gsoPlaced.Load()
	if n := testing.AllocsPerRun(50, round); n != 0 {
		t.Errorf("%.1f allocations per batch", n)
	}
	if got := en.c.gsoPlaced.Load() - before; got != 51*2 {
		t.Errorf("%d of %d super-frames read scattered", got, 51*2)
	}
	settle(t, en, r, free)
}

// TestEgressReadScatteredGather: a super-frame read scattered that goes to another local
// port, or is flooded to it and to the remote, is gathered whole again first, and the
// port's next super-frames are read whole; no TX frame is left behind.
func TestEgressReadScatteredGather(t *testing.T) {
	en := newEgressNode(t)
	v, n := en.e.v, en.e.n
	w := portPipe(t, en.e.t)
	wire := wireCapture(t, "wire1")
	other := &tap{port: Port{TAP: "p42b", MTU: 1450}, index: 1, net: n, vnet: true}
	otherOut := portPipe(t, other)
	n.ports, v.ports = append(n.ports, other), append(v.ports, other)
	local, unknown := net.HardwareAddr{0x02, 0, 0, 0, 0x0c, 0x01}, net.HardwareAddr{0x02, 0, 0, 0, 0x0c, 0x09}
	n.fdb.Learn(fdb.MACFrom(local), fdb.LocalPort(1), 1)
	r := vnetReader(en)
	free := en.sock.TxFree()

	h, first := tsoFrame(t, 20000)
	_, toLocal := tsoFrame(t, 20000)
	copy(toLocal[0:6], local)
	toLocal[len(toLocal)-1] = 1
	_, flooded := tsoFrame(t, 20000)
	copy(flooded[0:6], unknown)
	flooded[len(flooded)-1] = 2
	segs := len(segmentsOf(t, en, h, first))
	buf := make([]byte, 1<<17)
	for _, want := range [][]byte{toLocal, flooded} {
		r.noScatter = 0
		feed(t, w, vnetMsg(h, first), vnetMsg(h, want))
		pump(t, en, r, uint64(2*segs))
		if r.noScatter != tapGatherBackoff {
			t.Errorf("not gathered: %d super-frames to read whole, want %d", r.noScatter, tapGatherBackoff)
		}
		m, err := unix.Read(otherOut, buf)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf[offload.HdrLen:m], want) {
			t.Errorf("the other port got %d bytes, not the %d-byte super-frame whole", m-offload.HdrLen, len(want))
		}
	}
	if got := en.c.gsoPlaced.Load(); got != 0 {
		t.Errorf("%d super-frames sent from where they were read scattered, want 0 (all gathered)", got)
	}
	got := wireInner(t, wire)
	wantWire := append(segmentsOf(t, en, h, first), segmentsOf(t, en, h, first)...)
	wantWire = append(wantWire, segmentsOf(t, en, h, flooded)...)
	if len(got) != len(wantWire) {
		t.Fatalf("%d VXLAN frames on the wire, want %d", len(got), len(wantWire))
	}
	for i := range wantWire {
		if !bytes.Equal(got[i], wantWire[i]) {
			t.Fatalf("VXLAN frame %d differs from what Segment cuts", i)
		}
	}
	settle(t, en, r, free)
}
