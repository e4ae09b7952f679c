//go:build linux

package admin

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vxdp/vxdp/cluster"
	"github.com/vxdp/vxdp/dataplane"
)

// ClusterStats is what a node in cluster mode, or with an API socket, counts besides its
// dataplane.
type ClusterStats struct {
	// Cluster is the membership's status; set only in cluster mode (InCluster).
	Cluster   cluster.Status
	InCluster bool
	// Attachments is the number of ports the CNI plugin attached.
	Attachments int
}

// ClusterSource is a Source that also has ClusterStats: Handler serves their metrics too.
type ClusterSource interface {
	ClusterStats() ClusterStats
}

// The cluster's metrics, listed in the README.
var (
	clusterMembers       = desc("cluster", "members", "Nodes in the last view of the cluster, this one included once registered.")
	clusterEndpoints     = desc("cluster", "endpoints", "Container MAC addresses the members publish, in the last view.")
	clusterRegistered    = desc("cluster", "registered", "1 while this node's lease is alive as far as it knows, 0 while it registers (again).")
	clusterRegistrations = desc("cluster", "registrations_total", "Leases this node was granted: 1 after the start, one more for each lost lease.")
	clusterLeaseLosses   = desc("cluster", "lease_losses_total", "Leases lost: expired, or unanswered for their TTL (etcd away, a stuck process).")
	clusterEtcdErrors    = desc("cluster", "etcd_errors_total", "Failed etcd requests and broken watches, each retried.")
	clusterResyncs       = desc("cluster", "resyncs_total", "Listings of the cluster after the first: after a broken watch, a compaction or a lost lease.")
	clusterCompactions   = desc("cluster", "watch_compactions_total", "Watches that ended because etcd had compacted their revision.")
	clusterInvalid       = desc("cluster", "invalid_records_total", "Keys under the prefix that were not records of this layout, left out.")
	clusterRevision      = desc("cluster", "revision", "The etcd store revision of the last view.")
	cniAttachments       = desc("cni", "attachments", "Ports the CNI plugin attached through the API socket.")
)

// clusterCollector sends the ClusterStats of src at each scrape, once the dataplane runs
// (before, as vxdp's other metrics, they would count nothing yet).
type clusterCollector struct {
	src   ClusterSource
	state func() dataplane.State
}

func (c clusterCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{clusterMembers, clusterEndpoints, clusterRegistered, clusterRegistrations,
		clusterLeaseLosses, clusterEtcdErrors, clusterResyncs, clusterCompactions, clusterInvalid, clusterRevision, cniAttachments} {
		ch <- d
	}
}

func (c clusterCollector) Collect(ch chan<- prometheus.Metric) {
	if c.state() == dataplane.StateStarting {
		return
	}
	s := c.src.ClusterStats()
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	gauge(cniAttachments, float64(s.Attachments))
	if !s.InCluster {
		return
	}
	st := s.Cluster
	gauge(clusterMembers, float64(st.Members))
	gauge(clusterEndpoints, float64(st.Endpoints))
	registered := 0.0
	if st.Registered {
		registered = 1
	}
	gauge(clusterRegistered, registered)
	counter(clusterRegistrations, st.Registrations)
	counter(clusterLeaseLosses, st.LeaseLosses)
	counter(clusterEtcdErrors, st.EtcdErrors)
	counter(clusterResyncs, st.Resyncs)
	counter(clusterCompactions, st.Compactions)
	counter(clusterInvalid, st.Invalid)
	gauge(clusterRevision, float64(st.Revision))
}
