//go:build linux

package xsk

import (
	"fmt"
	"math/bits"
	"os"
)

const (
	// DefaultNumFrames is the UMEM size in frames when Options.NumFrames is 0: 16 MiB
	// at the default frame size, enough for full fill and TX rings of DefaultRingSize.
	DefaultNumFrames = 4096
	// DefaultFrameSize is the frame (UMEM chunk) size in bytes when Options.FrameSize is 0:
	// one page, so a frame never straddles two pages.
	DefaultFrameSize = 4096
	// DefaultRingSize is the number of descriptors of each ring when Options.RingSize is 0.
	DefaultRingSize = 2048

	// minFrameSize is the kernel's smallest chunk size (XDP_UMEM_MIN_CHUNK_SIZE), in bytes.
	minFrameSize = 2048
	// maxNumFrames bounds the UMEM at 4 GiB of 4 KiB frames; the kernel counts its pages in a u32.
	maxNumFrames = 1 << 20
	// maxRingSize bounds each ring's descriptor count; far beyond any useful batch depth.
	maxRingSize = 1 << 18
	// MaxChunks is the most frames one packet may span with Options.MultiBuffer, both ways:
	// the kernel builds a copy-mode packet of at most MAX_SKB_FRAGS (17) buffers, and 16
	// frames of 4 KiB carry 64 KiB, beyond any MTU.
	MaxChunks = 16
	// RxHeadroom is where the kernel puts a received packet (or chunk) inside its frame, in
	// bytes: XDP_PACKET_HEADROOM, plus the UMEM headroom, which is 0 here. A frame of
	// FrameSize bytes thus receives at most FrameSize-RxHeadroom bytes of a packet.
	RxHeadroom = 256
	rxHeadroom = RxHeadroom
)

// Options configures Open. The zero value of each size field selects its default.
type Options struct {
	// Ifindex is the index of the interface to bind to, in the network namespace of the
	// calling thread.
	Ifindex int
	// Queue is the interface's queue to bind to; the socket receives what the XDP program
	// redirects on that RX queue and transmits on that TX queue.
	Queue int
	// NumFrames is the UMEM size in frames; 0 means DefaultNumFrames.
	NumFrames int
	// FrameSize is the size of one frame in bytes, a power of two from 2048 to the page
	// size; 0 means DefaultFrameSize. A received packet starts 256 bytes into its frame,
	// so at most FrameSize-256 bytes are received; Transmit takes up to FrameSize bytes.
	FrameSize int
	// RingSize is the number of descriptors in each of the fill, completion, RX and TX
	// rings, a power of two; 0 means DefaultRingSize.
	RingSize int
	// TxFrames is how many of the NumFrames frames are kept for Transmit; the others
	// receive. 0 means NumFrames/2, capped at RingSize. It must be less than NumFrames and
	// at most RingSize (the completion ring holds every frame in flight). RX frames beyond
	// RingSize are kept aside by Fill and posted as the fill ring drains.
	TxFrames int
	// ForceCopy binds in copy mode (XDP_COPY) without trying zero-copy first.
	ForceCopy bool
	// MultiBuffer binds with XDP_USE_SG: a packet longer than a frame is received into
	// several frames (Desc.Continued links them) and Transmit takes packets up to
	// MaxChunks frames long, cutting them across frames. Copy mode has it since Linux 6.6,
	// zero-copy where the driver supports it; Open fails with ErrNoMultiBuffer otherwise.
	// The XDP program that redirects to the socket must declare frags (xdp.frags) for a
	// driver to hand it packets longer than a page.
	MultiBuffer bool
}

// withDefaults returns o with every zero size replaced by its default, then validated.
func (o Options) withDefaults() (Options, error) {
	if o.NumFrames == 0 {
		o.NumFrames = DefaultNumFrames
	}
	if o.FrameSize == 0 {
		o.FrameSize = DefaultFrameSize
	}
	if o.RingSize == 0 {
		o.RingSize = DefaultRingSize
	}
	if o.TxFrames == 0 {
		o.TxFrames = min(o.NumFrames/2, o.RingSize)
	}
	return o, o.validate(os.Getpagesize())
}

// validate checks o once defaults are applied; pageSize bounds FrameSize.
func (o Options) validate(pageSize int) error {
	switch {
	case o.Ifindex < 1:
		return fmt.Errorf("%w: ifindex %d is not positive", ErrInvalidOptions, o.Ifindex)
	case o.Queue < 0 || uint64(o.Queue) > 1<<32-1:
		return fmt.Errorf("%w: queue %d out of range", ErrInvalidOptions, o.Queue)
	case !isPow2(o.FrameSize) || o.FrameSize < minFrameSize || o.FrameSize > pageSize:
		return fmt.Errorf("%w: frame size %d is not a power of two from %d to the page size %d",
			ErrInvalidOptions, o.FrameSize, minFrameSize, pageSize)
	case !isPow2(o.RingSize) || o.RingSize > maxRingSize:
		return fmt.Errorf("%w: ring size %d is not a power of two up to %d", ErrInvalidOptions, o.RingSize, maxRingSize)
	case o.NumFrames < 2 || o.NumFrames > maxNumFrames:
		return fmt.Errorf("%w: %d frames is outside 2..%d", ErrInvalidOptions, o.NumFrames, maxNumFrames)
	case o.TxFrames < 1 || o.TxFrames >= o.NumFrames:
		return fmt.Errorf("%w: %d TX frames leaves no RX or TX frame out of %d", ErrInvalidOptions, o.TxFrames, o.NumFrames)
	case o.TxFrames > o.RingSize:
		return fmt.Errorf("%w: %d TX frames exceed the ring size %d", ErrInvalidOptions, o.TxFrames, o.RingSize)
	}
	return nil
}

// isPow2 reports whether n is a positive power of two.
func isPow2(n int) bool {
	return n > 0 && bits.OnesCount64(uint64(n)) == 1
}
