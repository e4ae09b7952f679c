//go:build linux

// Package xsk is vxdp's AF_XDP socket layer: one UMEM per socket, the fill, completion,
// RX and TX rings mapped over golang.org/x/sys/unix (the TX ring on a second socket that
// shares the UMEM, so that polling for RX never transmits), and a batch API with no allocation
// and no lock per packet.
//
// The kernel's semantics (Documentation/networking/af_xdp.rst) shape the design:
//
//   - Each ring is single-producer single-consumer and shared with the kernel. The index
//     this side owns is published with an atomic store, the kernel's index is read with an
//     atomic load, and both are cached as libbpf does so that the shared cache line is
//     touched once per batch, not once per packet.
//   - The socket binds with XDP_USE_NEED_WAKEUP: a syscall (recvfrom for the fill ring,
//     sendto for the TX ring) is made only when the kernel flags the ring as needing one.
//     Errors from those kicks are counted in Stats, never returned or panicked on.
//   - Zero-copy is tried first and copy mode taken when the driver cannot do it (veth
//     cannot); ZeroCopy reports the outcome.
//   - With Options.MultiBuffer the socket binds with XDP_USE_SG (copy mode since Linux 6.6):
//     a packet longer than a frame spans several, its descriptors chained by XDP_PKT_CONTD
//     (Desc.Continued). Receive hands out whole packets only, Gather joins one into a
//     buffer, and Transmit cuts a long packet across TX frames as it copies it in.
//
// Frame ownership. The UMEM is split in two. The RX part cycles fill ring -> RX ring ->
// caller -> Fill -> fill ring; a frame goes back to the fill ring only when the caller
// hands it back, and until then its bytes stay valid, even across Close. The TX part
// cycles free list -> TX ring -> completion ring -> free list inside Transmit, which
// copies the caller's bytes in; or the caller takes a TX frame with Reserve, builds a
// packet in it, and owns it until Transmit posts it where it lies or Release gives it back.
//
// Concurrency. Receive, Wait and Fill form the RX side and are called by one goroutine.
// Transmit may be called by several goroutines; it takes a mutex once per batch. Stats,
// Close, FD, ZeroCopy and Frame are safe from any goroutine.
//
// The caller registers the socket's FD in an XSKMAP under its queue index (package bpf does
// that for vxdp); without it the socket receives nothing.
package xsk
