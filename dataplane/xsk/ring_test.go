//go:build linux

package xsk

import (
	"encoding/binary"
	"sync/atomic"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// fakeRingOff lays a fake ring out as the kernel does: producer, consumer and flags on
// cache lines of their own, then the descriptors.
var fakeRingOff = unix.XDPRingOffset{Producer: 0, Consumer: 64, Flags: 128, Desc: 192}

// fakeRingMem returns 8-byte aligned memory standing in for the mapping of a ring of size
// entries of entSize bytes, with both indices set to start.
func fakeRingMem(size uint32, entSize uintptr, start uint32) []byte {
	n := int(fakeRingOff.Desc) + int(size)*int(entSize)
	words := make([]uint64, (n+7)/8)
	mem := unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), len(words)*8)
	binary.NativeEndian.PutUint32(mem[fakeRingOff.Producer:], start)
	binary.NativeEndian.PutUint32(mem[fakeRingOff.Consumer:], start)
	return mem
}

// ringPair returns our view and the kernel's view of one fake ring.
func ringPair[T uint64 | unix.XDPDesc](t testing.TB, size, start uint32) (ours, kernel ring[T]) {
	var zero T
	mem := fakeRingMem(size, unsafe.Sizeof(zero), start)
	ours, err := newRing[T](mem, fakeRingOff, size)
	if err != nil {
		t.Fatalf("newRing: %v", err)
	}
	kernel, _ = newRing[T](mem, fakeRingOff, size)
	return ours, kernel
}

func TestRingProduceWrap(t *testing.T) {
	const size = 8
	// Start just below 2^32 so the free-running indices wrap during the test.
	ours, kern := ringPair[uint64](t, size, 1<<32-13)
	next, want := uint64(0), uint64(0)
	outstanding := uint32(0)
	for round := range 200 {
		free := ours.free(size)
		if free != size-outstanding {
			t.Fatalf("round %d: free = %d, want %d", round, free, size-outstanding)
		}
		k := min(free, uint32(round%5+1))
		for i := range k {
			ours.entries[(ours.cachedProd+i)&ours.mask] = next
			next++
		}
		ours.submit(k)
		outstanding += k
		// The kernel consumes some of them.
		got := kern.avail(uint32(round % 4))
		if want := min(outstanding, uint32(round%4)); got != want {
			t.Fatalf("round %d: kernel avail = %d, want %d", round, got, want)
		}
		for i := range got {
			if v := kern.entries[(kern.cachedCons+i)&kern.mask]; v != want {
				t.Fatalf("round %d: kernel read %d, want %d", round, v, want)
			}
			want++
		}
		kern.release(got)
		outstanding -= got
	}
	if ours.cachedProd >= 1<<32-13 {
		t.Fatalf("producer index %d did not wrap", ours.cachedProd)
	}
	if ours.pending() != outstanding {
		t.Errorf("pending = %d, want %d", ours.pending(), outstanding)
	}
}

func TestRingConsumeWrap(t *testing.T) {
	const size = 16
	ours, kern := ringPair[unix.XDPDesc](t, size, 1<<32-5)
	next, want := uint64(0), uint64(0)
	for round := range 300 {
		k := min(kern.free(size), uint32(round%7))
		for i := range k {
			kern.entries[(kern.cachedProd+i)&kern.mask] = unix.XDPDesc{Addr: next, Len: uint32(next)}
			next++
		}
		kern.submit(k)
		n := ours.avail(uint32(round%6 + 1))
		if n > uint32(round%6+1) {
			t.Fatalf("round %d: avail %d beyond want", round, n)
		}
		for i := range n {
			d := ours.entries[(ours.cachedCons+i)&ours.mask]
			if d.Addr != want || d.Len != uint32(want) {
				t.Fatalf("round %d: read %+v, want addr %d", round, d, want)
			}
			want++
		}
		ours.release(n)
	}
	if want < 200 {
		t.Fatalf("only %d entries went through", want)
	}
}

func TestRingCachesKernelIndex(t *testing.T) {
	ours, kern := ringPair[uint64](t, 8, 0)
	ours.submit(8) // ring full from our side
	if f := ours.free(1); f != 0 {
		t.Fatalf("free on a full ring = %d", f)
	}
	kern.avail(8)
	kern.release(3)
	// Asking for no more than the cached count must not reread the shared index...
	if f := ours.free(0); f != 0 {
		t.Errorf("free(0) reread the consumer: %d", f)
	}
	// ...asking for more must.
	if f := ours.free(1); f != 3 {
		t.Errorf("free(1) = %d, want 3", f)
	}
	// A consumer index ahead of the producer (never left by the kernel) gives no room.
	atomic.StoreUint32(kern.consumer, ours.cachedProd+5)
	if f := ours.free(4); f != 0 {
		t.Errorf("free with a corrupt consumer = %d, want 0", f)
	}
}

func TestRingConsumerClampsCorruptProducer(t *testing.T) {
	ours, kern := ringPair[unix.XDPDesc](t, 8, 0)
	atomic.StoreUint32(kern.producer, 1000)
	if n := ours.avail(64); n != 8 {
		t.Errorf("avail with producer 1000 entries ahead = %d, want the ring size 8", n)
	}
}

func TestRingNeedWakeup(t *testing.T) {
	ours, kern := ringPair[uint64](t, 4, 0)
	if ours.needWakeup() {
		t.Fatal("needWakeup with flags 0")
	}
	atomic.StoreUint32(kern.flags, unix.XDP_RING_NEED_WAKEUP)
	if !ours.needWakeup() {
		t.Fatal("needWakeup false with XDP_RING_NEED_WAKEUP set")
	}
}

func TestNewRingRejectsBadLayout(t *testing.T) {
	mem := fakeRingMem(8, 8, 0)
	if _, err := newRing[uint64](mem, fakeRingOff, 6); err == nil {
		t.Error("size 6 accepted")
	}
	if _, err := newRing[uint64](mem, fakeRingOff, 16); err == nil {
		t.Error("16 entries accepted in memory for 8")
	}
	if _, err := newRing[unix.XDPDesc](mem, fakeRingOff, 8); err == nil {
		t.Error("8 descriptors accepted in memory for 8 addresses")
	}
	bad := fakeRingOff
	bad.Desc = 196
	if _, err := newRing[uint64](mem, bad, 4); err == nil {
		t.Error("misaligned descriptors accepted")
	}
	bad = fakeRingOff
	bad.Flags = 1 << 40
	if _, err := newRing[uint64](mem, bad, 4); err == nil {
		t.Error("flags offset outside the mapping accepted")
	}
}

// FuzzRing drives a producer and a consumer view of one ring with a byte script and
// checks them against a plain FIFO: same values, same order, free+used = size.
func FuzzRing(f *testing.F) {
	f.Add(uint32(0), []byte{0x05, 0x06, 0x11, 0x22, 0x33})
	f.Add(uint32(1<<32-3), []byte{0xff, 0xfe, 0x01, 0x02, 0x80, 0x81, 0x40})
	f.Add(uint32(1<<31), []byte{0x1c, 0x1d, 0x1c, 0x1d, 0x1c, 0x1d})
	f.Fuzz(func(t *testing.T, start uint32, script []byte) {
		const size = 8
		prod, cons := ringPair[uint64](t, size, start)
		var fifo []uint64
		next := uint64(1)
		for _, b := range script {
			k := uint32(b>>1) % (size + 2)
			if b&1 == 0 {
				// free may answer from its cache, but never claims room that is not
				// there, and is exact when it cannot satisfy k.
				free := prod.free(k)
				room := size - uint32(len(fifo))
				if free > room || (free < k && free != room) {
					t.Fatalf("free(%d) = %d with room %d", k, free, room)
				}
				k = min(k, free)
				for i := range k {
					prod.entries[(prod.cachedProd+i)&prod.mask] = next
					fifo = append(fifo, next)
					next++
				}
				prod.submit(k)
				continue
			}
			n := cons.avail(k)
			if n != min(k, uint32(len(fifo))) {
				t.Fatalf("avail(%d) = %d with %d queued", k, n, len(fifo))
			}
			for i := range n {
				if v := cons.entries[(cons.cachedCons+i)&cons.mask]; v != fifo[i] {
					t.Fatalf("read %d, want %d", v, fifo[i])
				}
			}
			fifo = fifo[n:]
			cons.release(n)
		}
	})
}
