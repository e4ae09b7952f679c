//go:build linux

package admin

import (
	"runtime"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vxdp/vxdp/dataplane"
	"github.com/vxdp/vxdp/dataplane/packet"
	"github.com/vxdp/vxdp/dataplane/xsk"
)

// namespace prefixes every vxdp metric.
const namespace = "vxdp"

// Collector turns a dataplane.Stats snapshot, taken when Prometheus scrapes, into metrics.
// The dataplane's goroutines only bump plain counters of their own; the summing, the labels
// and the allocations all happen here, once per scrape.
type Collector struct {
	stats   func() dataplane.Stats
	version string
}

// NewCollector returns a Collector that calls stats once per scrape. version labels
// vxdp_build_info.
func NewCollector(stats func() dataplane.Stats, version string) *Collector {
	return &Collector{stats: stats, version: version}
}

func desc(subsystem, name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(namespace, subsystem, name), help, labels, nil)
}

// The metrics. Each is listed, with its labels and meaning, in the README.
var (
	buildInfo = desc("", "build_info", "vxdp's version and the Go version it was built with; always 1.", "version", "goversion")
	up        = desc("", "up", "1 while the dataplane is set up and carrying traffic, 0 while starting or stopping.")

	underlayRxPackets = desc("underlay", "received_packets_total", "VXLAN frames taken from the underlay's AF_XDP sockets.")
	underlayRxBytes   = desc("underlay", "received_bytes_total", "Bytes of the VXLAN frames taken from the underlay, outer headers included.")
	underlayTxPackets = desc("underlay", "sent_packets_total", "VXLAN frames posted to the underlay's AF_XDP TX rings.")
	underlayTxBytes   = desc("underlay", "sent_bytes_total", "Bytes of the VXLAN frames posted to the underlay, outer headers included.")
	underlayLinkUp    = desc("underlay", "link_up", "1 while the underlay NIC is up (administratively and with carrier), 0 while it is down or removed.")
	underlayLinkDowns = desc("underlay", "link_downs_total", "Times the underlay NIC went down (or was removed) since vxdp set it up.")

	portDelivered      = desc("port", "delivered_packets_total", "Inner frames written to local ports (TAPs), all ports together.")
	portDeliveredBytes = desc("port", "delivered_bytes_total", "Bytes of the inner frames written to local ports, Ethernet header included.")
	portRead           = desc("port", "read_packets_total", "Frames read from a local port.", "port")
	portReadBytes      = desc("port", "read_bytes_total", "Bytes of the frames read from a local port, Ethernet header included.", "port")
	portWriteErrors    = desc("port", "write_errors_total", "Failed TAP writes to a local port; each dropped one frame.", "port")
	portReadErrors     = desc("port", "read_errors_total", "Failed TAP reads of a local port; its reader stops at the first.", "port")
	portKernelDrops    = desc("port", "kernel_drops_total", "Frames the kernel dropped at a port's interface on the container's side (TAP or veth peer), since the device was created: from_container before vxdp read them (a full TAP queue), to_container after vxdp delivered them.", "port", "direction")

	parseDrops     = desc("parse", "drops_total", "Frames dropped by the outer or inner header checks, by reason.", "reason")
	dataplaneDrops = desc("dataplane", "drops_total", "Frames dropped by the dataplane after the outer headers parsed, by reason.", "reason")

	xdpRedirected = desc("xdp", "redirected_packets_total", "VXLAN packets the XDP program redirected to an AF_XDP socket.")
	xdpPassed     = desc("xdp", "passed_packets_total", "Packets the XDP program passed to the kernel: everything that is not VXLAN for this VTEP.")
	xdpDrops      = desc("xdp", "drops_total", "VXLAN packets for this VTEP the XDP program dropped, by reason.", "reason")

	queueDelivered      = desc("queue", "delivered_packets_total", "Inner frames the queue's merger wrote to local ports.", "queue")
	queueDeliveredBytes = desc("queue", "delivered_bytes_total", "Bytes of the inner frames the queue's merger wrote to local ports.", "queue")

	xskReceived    = desc("xsk", "received_packets_total", "Frames taken from the AF_XDP socket's RX ring.", "queue")
	xskTransmitted = desc("xsk", "transmitted_packets_total", "Frames posted to the AF_XDP socket's TX ring.", "queue")
	xskCompleted   = desc("xsk", "completed_packets_total", "TX frames the kernel returned through the completion ring.", "queue")
	xskErrors      = desc("xsk", "errors_total", "AF_XDP socket errors and losses, by kind.", "queue", "kind")
	xskFillEmpty   = desc("xsk", "fill_ring_empty_total", "Times the kernel found the AF_XDP fill ring empty.", "queue")
	xskTxEmpty     = desc("xsk", "tx_ring_empty_total", "Times the kernel found the AF_XDP TX ring empty.", "queue")
	xskKicks       = desc("xsk", "kicks_total", "Wakeup syscalls made for a ring of the AF_XDP socket.", "queue", "ring")

	groSuperFrames = desc("offload", "gro_super_frames_total", "Super-frames the workers merged from consecutive inner frames of a flow (offload on).")
	groMerged      = desc("offload", "gro_merged_frames_total", "Inner frames the GRO super-frames carried.")
	gsoSuperFrames = desc("offload", "gso_super_frames_total", "TSO/USO super-frames read from local ports and cut into MTU-sized frames.")
	gsoSegments    = desc("offload", "gso_segments_total", "MTU-sized frames cut from the GSO super-frames.")

	tapRingBatches = desc("tap", "io_uring_batches_total", "Batches of TAP writes the mergers submitted through io_uring (tap_io_uring), one io_uring_enter each per ring's worth.")
	tapRingFrames  = desc("tap", "io_uring_frames_total", "Inner frames the mergers wrote to TAPs through io_uring.")
	egressPlaced   = desc("egress", "scattered_super_frames_total", "GSO super-frames read from local ports scattered: each segment's payload straight into an AF_XDP TX frame, only the headers written after the read.")
	egressInPlace  = desc("egress", "in_place_frames_total", "Frames read from local ports straight into AF_XDP TX frames and sent from there with no copy after the read.")

	neighReplies = desc("neigh", "replies_total", "ARP requests and IPv6 neighbour solicitations from local ports vxdp answered itself (neigh_suppress) instead of flooding them.")

	workerMicroflows = desc("worker", "microflows_total", "Micro-flows an ingress worker processed; worker=\"reader\": those the queue readers ran to completion themselves.", "worker")

	reorderWait = desc("reorder", "wait_seconds", "How long a finished micro-flow waited in the reorder stage for an earlier one of its queue.")

	fdbEntries = desc("fdb", "entries", "FDB entries of a VNI, the local ports' own addresses included.", "vni")
	fdbMax     = desc("fdb", "max_entries", "The most FDB entries a VNI holds (fdb_max).", "vni")
	fdbEvents  = desc("fdb", "events_total", "FDB changes of a VNI, by event.", "vni", "event")
)

// xskKinds maps the AF_XDP socket's error and loss counters to their kind labels.
var xskKinds = []struct {
	kind  string
	value func(*xsk.Stats) uint64
}{
	{"rx_dropped", func(s *xsk.Stats) uint64 { return s.RxDropped }},
	{"rx_ring_full", func(s *xsk.Stats) uint64 { return s.RxRingFull }},
	{"rx_invalid_descriptors", func(s *xsk.Stats) uint64 { return s.RxInvalidDescs }},
	{"tx_invalid_descriptors", func(s *xsk.Stats) uint64 { return s.TxInvalidDescs }},
	{"fill_refused", func(s *xsk.Stats) uint64 { return s.FillRefused }},
	{"tx_no_room", func(s *xsk.Stats) uint64 { return s.TxNoRoom }},
	{"tx_too_long", func(s *xsk.Stats) uint64 { return s.TxTooLong }},
	{"rx_too_long", func(s *xsk.Stats) uint64 { return s.RxTooLong }},
	{"kick_failed", func(s *xsk.Stats) uint64 { return s.KickErrors }},
}

// fdbEventKinds maps a VNI's FDB change counts to their event labels.
var fdbEventKinds = []struct {
	event string
	value func(*dataplane.NetworkStats) uint64
}{
	{"added", func(n *dataplane.NetworkStats) uint64 { return n.FDB.Added }},
	{"moved", func(n *dataplane.NetworkStats) uint64 { return n.FDB.Moved }},
	{"evicted", func(n *dataplane.NetworkStats) uint64 { return n.FDB.Evicted }},
	{"expired", func(n *dataplane.NetworkStats) uint64 { return n.FDB.Expired }},
	{"flushed", func(n *dataplane.NetworkStats) uint64 { return n.FDB.Flushed }},
	{"deleted", func(n *dataplane.NetworkStats) uint64 { return n.FDB.Deleted }},
	{"rejected", func(n *dataplane.NetworkStats) uint64 { return n.FDB.Rejected }},
}

// Describe sends every metric's description.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		buildInfo, up,
		underlayRxPackets, underlayRxBytes, underlayTxPackets, underlayTxBytes, underlayLinkUp, underlayLinkDowns,
		portDelivered, portDeliveredBytes, portRead, portReadBytes, portWriteErrors, portReadErrors, portKernelDrops,
		parseDrops, dataplaneDrops, xdpRedirected, xdpPassed, xdpDrops,
		queueDelivered, queueDeliveredBytes,
		xskReceived, xskTransmitted, xskCompleted, xskErrors, xskFillEmpty, xskTxEmpty, xskKicks,
		groSuperFrames, groMerged, gsoSuperFrames, gsoSegments, tapRingBatches, tapRingFrames, neighReplies,
		workerMicroflows, reorderWait, fdbEntries, fdbMax, fdbEvents,
	} {
		ch <- d
	}
}

// Collect takes one snapshot and sends its metrics. Before the dataplane has run, only
// vxdp_build_info and vxdp_up are sent: there is nothing to count yet.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge(buildInfo, 1, c.version, runtime.Version())
	running := 0.0
	if s.State == dataplane.StateRunning {
		running = 1
	}
	gauge(up, running)
	if s.Queues == nil {
		return // not set up yet, or setup failed
	}

	k := &s.Counters
	counter(underlayRxPackets, k.RxPackets)
	counter(underlayRxBytes, k.RxBytes)
	counter(underlayTxPackets, k.TxPackets)
	counter(underlayTxBytes, k.TxBytes)
	linkUp := 1.0
	if s.UnderlayDown {
		linkUp = 0
	}
	gauge(underlayLinkUp, linkUp)
	counter(underlayLinkDowns, s.UnderlayDowns)
	counter(portDelivered, k.Delivered)
	counter(portDeliveredBytes, k.DeliveredBytes)
	counter(groSuperFrames, k.GROSuperFrames)
	counter(groMerged, k.GROMerged)
	counter(gsoSuperFrames, k.GSOSuperFrames)
	counter(gsoSegments, k.GSOSegments)
	counter(tapRingBatches, k.TAPRingBatches)
	counter(tapRingFrames, k.TAPRingFrames)
	counter(neighReplies, k.NeighReplies)
	counter(egressInPlace, k.TxInPlace)
	counter(egressPlaced, k.GSOPlaced)
	for _, p := range s.Ports {
		counter(portRead, p.Read, p.Name)
		counter(portReadBytes, p.ReadBytes, p.Name)
		counter(portWriteErrors, p.WriteErrors, p.Name)
		counter(portReadErrors, p.ReadErrors, p.Name)
		if p.Container != nil {
			counter(portKernelDrops, p.Container.TxDropped, p.Name, "from_container")
			counter(portKernelDrops, p.Container.RxDropped, p.Name, "to_container")
		}
	}
	for _, r := range packet.DropReasons() {
		if r != packet.DropNone {
			counter(parseDrops, k.Parse[r], r.String())
		}
	}
	for _, d := range dataplane.Drops() {
		counter(dataplaneDrops, k.Drops[d], d.String())
	}
	if s.XDPErr == nil { // once the program is closed its counters are gone
		counter(xdpRedirected, s.XDP.Redirected)
		counter(xdpPassed, s.XDP.Passed)
		for _, d := range s.XDP.Drops() {
			counter(xdpDrops, d.Count, d.Reason)
		}
	}
	for i := range s.Queues {
		q := &s.Queues[i]
		ql := strconv.Itoa(q.Queue)
		counter(queueDelivered, q.Delivered, ql)
		counter(queueDeliveredBytes, q.DeliveredBytes, ql)
		counter(xskReceived, q.Socket.Received, ql)
		counter(xskTransmitted, q.Socket.Transmitted, ql)
		counter(xskCompleted, q.Socket.Completed, ql)
		for _, e := range xskKinds {
			counter(xskErrors, e.value(&q.Socket), ql, e.kind)
		}
		counter(xskFillEmpty, q.Socket.FillRingEmpty, ql)
		counter(xskTxEmpty, q.Socket.TxRingEmpty, ql)
		counter(xskKicks, q.Socket.RxKicks, ql, "fill")
		counter(xskKicks, q.Socket.TxKicks, ql, "tx")
	}
	for w, n := range k.PerWorker {
		counter(workerMicroflows, n, strconv.Itoa(w))
	}
	counter(workerMicroflows, k.Inline, "reader")
	ch <- waitHistogram(reorderWait, s.ReorderWait)
	for i := range s.Networks {
		n := &s.Networks[i]
		vni := strconv.FormatUint(uint64(n.VNI), 10)
		gauge(fdbEntries, float64(n.FDBEntries), vni)
		gauge(fdbMax, float64(n.FDBCap), vni)
		for _, e := range fdbEventKinds {
			counter(fdbEvents, e.value(n), vni, e.event)
		}
	}
}

// waitHistogram turns the dataplane's per-bucket wait counts into a Prometheus histogram,
// whose buckets are cumulative and in seconds.
func waitHistogram(d *prometheus.Desc, w dataplane.WaitHistogram) prometheus.Metric {
	buckets := make(map[float64]uint64, len(dataplane.WaitBuckets))
	var cum uint64
	for i, bound := range dataplane.WaitBuckets {
		cum += w.Counts[i]
		buckets[bound.Seconds()] = cum
	}
	return prometheus.MustNewConstHistogram(d, w.Count(), w.Sum.Seconds(), buckets)
}
