//go:build linux

package dataplane

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/vxdp/vxdp/internal/uring"
)

// ringTestType is the EtherType of the test's frames: IEEE's local experimental one, which
// the kernel's stack drops after the packet socket has seen them.
const ringTestType = 0x88b5

// ringFrame is test frame seq: broadcast, from a fixed MAC, the sequence number after the
// Ethernet header, padded to 60 bytes.
func ringFrame(seq uint32) []byte {
	f := make([]byte, 60)
	copy(f, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 1})
	binary.BigEndian.PutUint16(f[12:], ringTestType)
	binary.BigEndian.PutUint32(f[14:], seq)
	return f
}

// packetSocket returns an AF_PACKET socket that sees the frames written to the device of
// ifindex (they are its received frames), with a receive timeout.
func packetSocket(t *testing.T, ifindex int) int {
	t.Helper()
	proto := int(htons(unix.ETH_P_ALL))
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: uint16(proto), Ifindex: ifindex}); err != nil {
		t.Fatal(err)
	}
	tv := unix.Timeval{Sec: 2}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	return fd
}

// readSeqs reads n test frames from the packet socket and returns their sequence numbers
// in the order the device received them; the kernel's own frames are skipped.
func readSeqs(t *testing.T, fd, n int) []uint32 {
	t.Helper()
	var seqs []uint32
	buf := make([]byte, 2048)
	for len(seqs) < n {
		m, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			t.Fatalf("after %d of %d frames: %v", len(seqs), n, err)
		}
		if m >= 18 && binary.BigEndian.Uint16(buf[12:]) == ringTestType {
			seqs = append(seqs, binary.BigEndian.Uint32(buf[14:]))
		}
	}
	return seqs
}

// TestTapRing writes a micro-flow's deliveries to a real TAP through a merger's ring: more
// than the ring holds (submitted in parts), plain and gathering writes mixed. They arrive
// whole and in order, are counted as delivered and as written through io_uring, and a
// batch allocates nothing. Once the TAP is closed, the deliveries fail cleanly and are
// counted as TAP write drops, without reaching the ring.
func TestTapRing(t *testing.T) {
	enterVethNS(t, "ring")
	tp, err := openTAP(Port{TAP: "vxr0", MTU: 1500}, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			tp.close()
		}
	})
	link, err := netlink.LinkByName("vxr0")
	if err != nil {
		t.Fatal(err)
	}
	ps := packetSocket(t, link.Attrs().Index)
	if _, err := uring.New(uring.Options{Entries: 1}); errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) {
		t.Skipf("io_uring unavailable here: %v", err)
	}
	v := &VTEP{cfg: &Config{TAPIOUring: true}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	q := &queue{writer: newTapWriter()}
	if q.ring = v.newTapRing(16); q.ring == nil {
		t.Fatal("no ring")
	}
	defer q.ring.close()

	const n = 150 // the ring has tapRingEntries (64): three parts
	out := make([]delivery, n)
	for i := range out {
		f := ringFrame(uint32(i))
		out[i] = delivery{t: tp, pkt: f, frames: 1, bytes: uint32(len(f))}
		if i%3 == 1 { // a gathering write, as of a super-frame built in place
			out[i].pkt, out[i].rest = f[:20], [][]byte{f[20:40], f[40:]}
		}
	}
	batch := func() {
		for i := range out {
			q.ring.sent = append(q.ring.sent, i)
		}
		v.writeRing(q, out)
	}
	batch()
	if q.ring == nil {
		t.Fatal("the merger gave up its ring")
	}
	if got := readSeqs(t, ps, n); !inOrder(got, n) {
		t.Errorf("the TAP received %v, want 0 to %d in order", got, n-1)
	}
	if d, f, b, drops := q.c.inPackets.Load(), q.c.ringFrames.Load(), q.c.ringBatches.Load(), q.c.drops[DropTAPWrite].Load(); d != n || f != n || b != 1 || drops != 0 {
		t.Errorf("delivered %d, through io_uring %d frames in %d batches, %d write drops; want %d, %d, 1, 0", d, f, b, drops, n, n)
	}
	if !raceEnabled {
		if allocs := testing.AllocsPerRun(20, batch); allocs != 0 {
			t.Errorf("%v allocations per batch, want 0", allocs)
		}
	}

	if err := tp.close(); err != nil {
		t.Fatal(err)
	}
	closed = true
	before := q.c.ringBatches.Load()
	delivered := q.c.inPackets.Load()
	batch()
	if drops, d := q.c.drops[DropTAPWrite].Load(), q.c.inPackets.Load(); drops != n || d != delivered {
		t.Errorf("after close: %d write drops, %d more delivered; want %d and 0", drops, d-delivered, n)
	}
	if got := tp.errs.write.Load(); got != n {
		t.Errorf("port write errors %d, want %d", got, n)
	}
	if got := q.c.ringBatches.Load(); got != before {
		t.Errorf("a batch of closed TAPs went to the ring (%d batches, want %d)", got, before)
	}
}

func inOrder(seqs []uint32, n int) bool {
	if len(seqs) != n {
		return false
	}
	for i, s := range seqs {
		if s != uint32(i) {
			return false
		}
	}
	return true
}

// TestTapRingOff: with tap_io_uring false a merger has no ring.
func TestTapRingOff(t *testing.T) {
	v := &VTEP{cfg: &Config{TAPIOUring: false}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if r := v.newTapRing(64); r != nil {
		r.close()
		t.Error("a ring with tap_io_uring false")
	}
}

// Where the kernel refuses io_uring, every queue's merger writes the old way, and the log
// says so once, with the reason.
func TestTapRingUnavailable(t *testing.T) {
	newRing = func(uring.Options) (*uring.Ring, error) {
		return nil, fmt.Errorf("io_uring setup: %w", unix.EPERM)
	}
	t.Cleanup(func() { newRing = uring.New })
	var buf bytes.Buffer
	v := &VTEP{cfg: &Config{TAPIOUring: true}, log: slog.New(slog.NewTextHandler(&buf, nil))}
	for range 3 { // three queues
		if r := v.newTapRing(64); r != nil {
			t.Fatal("a ring where io_uring setup failed")
		}
	}
	if n := strings.Count(buf.String(), "io_uring unavailable"); n != 1 || !strings.Contains(buf.String(), "kernel.io_uring_disabled") {
		t.Errorf("%d log lines, want 1 giving the cause:\n%s", n, buf.String())
	}
}

// A TAP that refuses non-blocking io_uring writes (EOPNOTSUPP, as a tun without
// FMODE_NOWAIT would): the batch's deliveries are written again the old way, in order, and
// the merger keeps to the old way. A tmpfs file plays the TAP.
func TestTapRingNoNowait(t *testing.T) {
	f, err := os.CreateTemp("/dev/shm", "vxdp-ring-*")
	if err != nil {
		t.Skipf("no tmpfs at /dev/shm: %v", err)
	}
	t.Cleanup(func() { f.Close(); os.Remove(f.Name()) })
	v := &VTEP{cfg: &Config{TAPIOUring: true}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	q := &queue{writer: newTapWriter()}
	if q.ring = v.newTapRing(16); q.ring == nil {
		t.Skip("io_uring unavailable here")
	}
	probe := q.ring.ring
	probe.Write(int(f.Fd()), nil, unix.RWF_NOWAIT)
	if err := probe.Submit(); err != nil {
		t.Fatal(err)
	}
	if _, err := probe.Result(0); err != unix.EOPNOTSUPP {
		q.ring.close()
		t.Skipf("tmpfs takes RWF_NOWAIT here (%v): no file to play a tun without it", err)
	}
	raw, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	tp := &tap{file: f, raw: raw, fd: int(f.Fd())}
	var out []delivery
	for _, s := range []string{"one ", "two ", "three"} {
		out = append(out, delivery{t: tp, pkt: []byte(s), frames: 1, bytes: uint32(len(s))})
	}
	out[1].pkt, out[1].rest = []byte("t"), [][]byte{[]byte("wo ")}
	for i := range out {
		q.ring.sent = append(q.ring.sent, i)
	}
	v.writeRing(q, out)
	if q.ring != nil {
		t.Error("the merger kept its ring")
	}
	b, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != "one two three" || q.c.inPackets.Load() != 3 || q.c.ringFrames.Load() != 0 || q.c.drops[DropTAPWrite].Load() != 0 {
		t.Errorf("file %q, delivered %d, through io_uring %d, drops %d; want all three in order the old way",
			b, q.c.inPackets.Load(), q.c.ringFrames.Load(), q.c.drops[DropTAPWrite].Load())
	}
}
