//go:build linux

package dataplane

import (
	"fmt"

	"github.com/vxdp/vxdp/dataplane/packet"
	"github.com/vxdp/vxdp/dataplane/xsk"
)

// Jumbo frames. A UMEM frame is a page (xsk.DefaultFrameSize) and a received frame starts
// xsk.RxHeadroom bytes into it, so one UMEM frame holds an underlay frame of at most 3840
// bytes: a port MTU of 3776 over IPv4 (3756 over IPv6), the 64 (84) bytes of inner
// Ethernet and outer headers taken off. A larger port MTU needs multi-buffer AF_XDP
// sockets (XDP_USE_SG, copy mode since Linux 6.6), where one underlay frame spans several
// UMEM frames, and an XDP program that declares frags, which bpf's does.
//
// Ingress gathers a frame that spans several UMEM frames into one contiguous buffer of
// its micro-flow (xsk.Socket.Gather) before parsing it: the parser, the checks, GRO and
// the TAP write see whole frames only. Gathering costs one copy of each byte of a jumbo
// frame. Reading the frame as a list of chunks in every stage instead would save that
// copy only where the frame goes on uncopied, a TAP write of a single frame (writev
// instead of write): GRO copies each merged frame into its super-frame anyway after
// verifying its checksum byte by byte, and a veth port's Transmit copies into its UMEM;
// and the gathered frame is in cache for those passes. Egress hands Transmit whole
// frames, which it cuts across TX frames as it copies them in: no copy more than before.

// singleBufferRoom is the longest underlay frame, in bytes, that one UMEM frame receives.
const singleBufferRoom = xsk.DefaultFrameSize - xsk.RxHeadroom

// outerOverhead is what a port's MTU grows by on the underlay, in bytes: the inner
// Ethernet header, its tag if tags are accepted, and the outer headers.
func outerOverhead(cfg *Config) int {
	n := 14 + packet.HeadroomIPv4
	if cfg.Local.Is6() {
		n = 14 + packet.HeadroomIPv6
	}
	if cfg.InnerVLAN {
		n += 4
	}
	return n
}

// maxPortMTU returns the largest port MTU of cfg.
func maxPortMTU(cfg *Config) int {
	mtu := 0
	for _, n := range cfg.Networks {
		for _, p := range n.Ports {
			mtu = max(mtu, p.MTU)
		}
	}
	return mtu
}

// singleBufferMTU is the largest port MTU whose frames fit one UMEM frame on the underlay.
func singleBufferMTU(cfg *Config) int { return singleBufferRoom - outerOverhead(cfg) }

// needsMultiBuffer reports whether cfg's ports send or receive underlay frames longer
// than one UMEM frame.
func needsMultiBuffer(cfg *Config) bool { return maxPortMTU(cfg) > singleBufferMTU(cfg) }

// errNoMultiBuffer is the refusal at start of a port MTU the underlay's sockets cannot
// carry: it names the largest port MTU that works there and wraps err, the bind's.
func errNoMultiBuffer(cfg *Config, err error) error {
	return fmt.Errorf("underlay %s cannot carry port mtu %d: its af_xdp sockets take no frame longer than %d bytes "+
		"without multi-buffer (Linux 6.6 or later, or a zero-copy driver with multi-buffer support); "+
		"the largest port mtu it carries is %d: %w",
		cfg.Underlay, maxPortMTU(cfg), singleBufferRoom, singleBufferMTU(cfg), err)
}
