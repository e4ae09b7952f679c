//go:build linux

package xsk

import (
	"fmt"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ring is one single-producer single-consumer ring shared with the kernel: the fill and
// completion rings carry UMEM addresses (uint64), the RX and TX rings descriptors.
//
// Indices run free over uint32 and wrap; an entry lives at index&mask. The side that
// produces owns producer, the side that consumes owns consumer. This side's copies,
// cachedProd and cachedCons, follow libbpf: the index we own is published with an atomic
// store once the entries are written (release), the kernel's index is read with an atomic
// load before its entries are touched (acquire), and it is reread only when the cached copy
// cannot satisfy the request, so a batch costs one access to the shared cache line.
// sync/atomic is sequentially consistent, which also orders our producer store before the
// following need-wakeup flag load, as the kernel's protocol requires.
type ring[T uint64 | unix.XDPDesc] struct {
	producer *uint32
	consumer *uint32
	flags    *uint32
	entries  []T
	mask     uint32
	// cachedProd is the producer index: ours when we produce, the last one read otherwise.
	cachedProd uint32
	// cachedCons is the consumer index: ours when we consume, the last one read otherwise.
	cachedCons uint32
}

// newRing lays a ring of size entries over mem (the ring's mapping) at the offsets the
// kernel gave for it, and starts the cached indices from the shared ones.
func newRing[T uint64 | unix.XDPDesc](mem []byte, off unix.XDPRingOffset, size uint32) (ring[T], error) {
	var zero T
	entSize := uint64(unsafe.Sizeof(zero))
	if !isPow2(int(size)) {
		return ring[T]{}, fmt.Errorf("ring size %d is not a power of two", size)
	}
	end := off.Desc + uint64(size)*entSize
	if end < off.Desc || end > uint64(len(mem)) ||
		off.Producer+4 > uint64(len(mem)) || off.Consumer+4 > uint64(len(mem)) || off.Flags+4 > uint64(len(mem)) {
		return ring[T]{}, fmt.Errorf("ring offsets %+v for %d entries exceed the %d-byte mapping", off, size, len(mem))
	}
	base := uintptr(unsafe.Pointer(unsafe.SliceData(mem)))
	if (base+uintptr(off.Producer))%4 != 0 || (base+uintptr(off.Consumer))%4 != 0 ||
		(base+uintptr(off.Flags))%4 != 0 || (base+uintptr(off.Desc))%8 != 0 {
		return ring[T]{}, fmt.Errorf("ring offsets %+v are misaligned", off)
	}
	r := ring[T]{
		producer: (*uint32)(unsafe.Pointer(&mem[off.Producer])),
		consumer: (*uint32)(unsafe.Pointer(&mem[off.Consumer])),
		flags:    (*uint32)(unsafe.Pointer(&mem[off.Flags])),
		entries:  unsafe.Slice((*T)(unsafe.Pointer(&mem[off.Desc])), size),
		mask:     size - 1,
	}
	r.cachedProd = atomic.LoadUint32(r.producer)
	r.cachedCons = atomic.LoadUint32(r.consumer)
	return r, nil
}

// size is the number of entries.
func (r *ring[T]) size() uint32 { return r.mask + 1 }

// free returns how many entries the producer may write at cachedProd, rereading the
// kernel's consumer index only if fewer than want are known to be free.
func (r *ring[T]) free(want uint32) uint32 {
	if n := r.size() - (r.cachedProd - r.cachedCons); n >= want && n <= r.size() {
		return n
	}
	r.cachedCons = atomic.LoadUint32(r.consumer)
	used := r.cachedProd - r.cachedCons
	if used > r.size() {
		// A consumer ahead of the producer is not a state the kernel leaves; claim no
		// room rather than overwrite entries it has not read.
		return 0
	}
	return r.size() - used
}

// submit publishes n entries written from cachedProd on.
func (r *ring[T]) submit(n uint32) {
	r.cachedProd += n
	atomic.StoreUint32(r.producer, r.cachedProd)
}

// avail returns how many entries, at most want, the consumer may read at cachedCons,
// rereading the kernel's producer index only if fewer than want are known.
func (r *ring[T]) avail(want uint32) uint32 {
	n := r.cachedProd - r.cachedCons
	if n < want {
		r.cachedProd = atomic.LoadUint32(r.producer)
		n = r.cachedProd - r.cachedCons
	}
	return min(n, want, r.size())
}

// release hands n entries read from cachedCons on back to the producer.
func (r *ring[T]) release(n uint32) {
	r.cachedCons += n
	atomic.StoreUint32(r.consumer, r.cachedCons)
}

// needWakeup reports whether the kernel asks for a syscall to process this ring
// (XDP_RING_NEED_WAKEUP, meaningful on the fill and TX rings).
func (r *ring[T]) needWakeup() bool {
	return atomic.LoadUint32(r.flags)&unix.XDP_RING_NEED_WAKEUP != 0
}

// pending returns how many produced entries the kernel has not consumed yet.
func (r *ring[T]) pending() uint32 {
	return r.cachedProd - atomic.LoadUint32(r.consumer)
}
