package dataplane

import (
	"sync/atomic"

	"github.com/vxdp/vxdp/dataplane/packet"
)

// Drop is why the dataplane dropped a frame after the outer headers parsed; the reasons the
// header parser finds are packet.DropReason and are counted beside these.
type Drop uint8

// Dataplane drop reasons. Each is a counter of its own.
const (
	// DropUnknownVNI: the VXLAN header names a VNI this node does not carry.
	DropUnknownVNI Drop = iota
	// DropRemoteNotInVNI: the sender is a known VTEP, but not a remote of this VNI.
	DropRemoteNotInVNI
	// DropInner: the inner frame failed its checks (counted under its packet.DropReason too).
	DropInner
	// DropHairpin: a remote sent a frame for a MAC that lives at another remote.
	DropHairpin
	// DropLocalMAC: a remote sent a frame whose source MAC is one of this node's local ports.
	DropLocalMAC
	// DropNoPort: the frame's VNI has no local port to deliver it to.
	DropNoPort
	// DropTAPWrite: writing the frame to a TAP failed.
	DropTAPWrite
	// DropTooBig: a local port sent a frame larger than its MTU.
	DropTooBig
	// DropRunt: a local port sent a frame shorter than an Ethernet header.
	DropRunt
	// DropNoNeighbour: the next hop toward a remote VTEP has no resolved MAC address yet.
	DropNoNeighbour
	// DropTxFull: the AF_XDP TX ring or its free frames were exhausted.
	DropTxFull
	// DropBadSource: a local port sent a frame whose source MAC is multicast or zero.
	DropBadSource
	// DropBadOffload: a local port sent a virtio_net_hdr or a super-frame that cannot be
	// segmented (unknown flags or GSO type, offsets outside the frame, malformed headers).
	DropBadOffload
	// DropVXLANFromPort: a local port sent UDP to the VXLAN port: no tunnel inside the tunnel.
	DropVXLANFromPort
	// DropVLANFromPort: a local port sent an 802.1Q/802.1ad frame and inner_vlan is drop.
	DropVLANFromPort
	// DropInnerTooBig: a remote sent an inner frame larger than its VNI's ports' MTU + 14.
	DropInnerTooBig
	// DropTxTooLong: an underlay frame longer than the AF_XDP socket transmits (one UMEM
	// frame, or xsk.MaxChunks of them with multi-buffer), which the MTU checks at start
	// rule out.
	DropTxTooLong
	// DropECN: an outer CE mark over an inner IP packet that is Not-ECT (RFC 6040): the
	// congestion the underlay signalled cannot be passed on.
	DropECN
	// DropStaticMAC: a remote sent a frame whose source MAC is a static entry behind another
	// remote VTEP.
	DropStaticMAC
	// DropUnderlayDown: a frame for a remote VTEP read from a port while the underlay is
	// down (runLinkWatch saw it go): the kernel could only drop it.
	DropUnderlayDown
	numDrops
)

var dropNames = [numDrops]string{
	DropUnknownVNI:     "unknown_vni",
	DropRemoteNotInVNI: "remote_not_in_vni",
	DropInner:          "bad_inner",
	DropHairpin:        "hairpin",
	DropLocalMAC:       "local_mac_from_remote",
	DropNoPort:         "no_local_port",
	DropTAPWrite:       "tap_write",
	DropTooBig:         "too_big",
	DropRunt:           "runt",
	DropNoNeighbour:    "no_neighbour",
	DropTxFull:         "tx_full",
	DropBadSource:      "bad_source_mac",
	DropBadOffload:     "bad_offload",
	DropVXLANFromPort:  "vxlan_from_port",
	DropVLANFromPort:   "vlan_from_port",
	DropInnerTooBig:    "inner_too_big",
	DropTxTooLong:      "tx_too_long",
	DropECN:            "ecn_ce_not_ect",
	DropStaticMAC:      "static_mac_from_remote",
	DropUnderlayDown:   "underlay_down",
}

// String returns the reason's metric label.
func (d Drop) String() string {
	if d < numDrops {
		return dropNames[d]
	}
	return "unknown"
}

// Drops lists every dataplane drop reason, for metrics.
func Drops() []Drop {
	all := make([]Drop, numDrops)
	for i := range all {
		all[i] = Drop(i)
	}
	return all
}

// counters belong to one goroutine (a queue reader or a port reader), which alone adds to
// them; a collector sums them all when asked. Uncontended atomics keep the race detector
// and readers honest at the cost of a plain add.
type counters struct {
	rxPackets, rxBytes atomic.Uint64 // VXLAN frames taken from the underlay
	txPackets, txBytes atomic.Uint64 // VXLAN frames posted to the underlay
	inPackets          atomic.Uint64 // inner frames delivered to local ports
	inBytes            atomic.Uint64 // their bytes
	outPackets         atomic.Uint64 // frames read from local ports
	outBytes           atomic.Uint64 // their bytes
	learned            atomic.Uint64 // FDB entries added or moved
	microflows         atomic.Uint64 // micro-flows processed (worker, or reader run to completion)
	reorderWaitNanos   atomic.Uint64 // time done micro-flows waited for their turn (merger)
	groSuper           atomic.Uint64 // GRO super-frames built (worker)
	groMerged          atomic.Uint64 // inner frames merged into them (worker)
	gsoSuper           atomic.Uint64 // super-frames read from ports and cut (port reader)
	gsoSegments        atomic.Uint64 // the frames cut from them (port reader)
	neighReplies       atomic.Uint64 // ARP requests and solicitations answered (port reader)
	ringBatches        atomic.Uint64 // io_uring batches of TAP writes submitted (merger)
	ringFrames         atomic.Uint64 // inner frames written to TAPs through them (merger)
	txInPlace          atomic.Uint64 // frames read from ports into TX frames and queued there (port reader)
	gsoPlaced          atomic.Uint64 // super-frames read scattered into TX frames (port reader)
	parse              [packet.NumDropReasons]atomic.Uint64
	drops              [numDrops]atomic.Uint64
	_                  [64]byte // keep neighbouring goroutines' counters off this cache line
}

// Counters is a snapshot of the dataplane's counters, summed over its goroutines.
type Counters struct {
	RxPackets, RxBytes uint64 // VXLAN frames received from the underlay
	TxPackets, TxBytes uint64 // VXLAN frames sent to the underlay
	Delivered          uint64 // inner frames written to local ports
	DeliveredBytes     uint64 // their bytes
	FromPorts          uint64 // frames read from local ports
	FromPortsBytes     uint64 // their bytes
	Learned            uint64 // FDB entries added or moved
	// MicroFlows counts micro-flows processed by the workers.
	MicroFlows uint64
	// PerWorker counts the micro-flows each ingress worker processed.
	PerWorker []uint64
	// Inline counts the micro-flows the queue readers ran to completion themselves
	// (run_to_completion); MicroFlows includes them.
	Inline uint64
	// ReorderWait is the total time, in nanoseconds, that finished micro-flows waited in
	// the reorder stage for an earlier one.
	ReorderWait uint64
	// GROSuperFrames counts the super-frames the workers built from inner frames
	// (offloads on), and GROMerged the inner frames they carried.
	GROSuperFrames, GROMerged uint64
	// GSOSuperFrames counts the super-frames read from local ports and cut into
	// MTU-sized frames for the underlay, and GSOSegments those frames.
	GSOSuperFrames, GSOSegments uint64
	// NeighReplies counts the ARP requests and IPv6 neighbour solicitations from local
	// ports that vxdp answered itself (neigh_suppress) instead of flooding them.
	NeighReplies uint64
	// TAPRingBatches counts the mergers' io_uring batches of TAP writes (tap_io_uring), one
	// per micro-flow with TAP deliveries, and TAPRingFrames the inner frames they wrote.
	TAPRingBatches, TAPRingFrames uint64
	// TxInPlace counts the frames read from local ports straight into AF_XDP TX frames and
	// queued to be sent from there, the outer headers written in front: no copy after the
	// read.
	TxInPlace uint64
	// GSOPlaced counts the GSO super-frames read from local ports scattered: each
	// segment's payload straight into an AF_XDP TX frame, where only the headers were then
	// written (also counted in GSOSuperFrames).
	GSOPlaced uint64
	// Parse counts frames dropped by the outer or inner header checks, by packet.DropReason.
	Parse [packet.NumDropReasons]uint64
	// Drops counts frames dropped by the dataplane, by Drop.
	Drops [numDrops]uint64
}

func (c *Counters) add(o *counters) {
	c.RxPackets += o.rxPackets.Load()
	c.RxBytes += o.rxBytes.Load()
	c.TxPackets += o.txPackets.Load()
	c.TxBytes += o.txBytes.Load()
	c.Delivered += o.inPackets.Load()
	c.DeliveredBytes += o.inBytes.Load()
	c.FromPorts += o.outPackets.Load()
	c.FromPortsBytes += o.outBytes.Load()
	c.Learned += o.learned.Load()
	c.MicroFlows += o.microflows.Load()
	c.ReorderWait += o.reorderWaitNanos.Load()
	c.GROSuperFrames += o.groSuper.Load()
	c.GROMerged += o.groMerged.Load()
	c.NeighReplies += o.neighReplies.Load()
	c.TxInPlace += o.txInPlace.Load()
	c.GSOPlaced += o.gsoPlaced.Load()
	c.GSOSuperFrames += o.gsoSuper.Load()
	c.GSOSegments += o.gsoSegments.Load()
	c.TAPRingBatches += o.ringBatches.Load()
	c.TAPRingFrames += o.ringFrames.Load()
	for i := range o.parse {
		c.Parse[i] += o.parse[i].Load()
	}
	for i := range o.drops {
		c.Drops[i] += o.drops[i].Load()
	}
}
