//go:build linux

package main

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vxdp/vxdp/cluster"
	"github.com/vxdp/vxdp/dataplane"
	"github.com/vxdp/vxdp/internal/admin"
	"github.com/vxdp/vxdp/internal/nodeapi"
)

// networks merges the three sources of the running networks, the config file, the
// cluster's view and the CNI plugin's attachments, and applies the result with the reload
// that SIGHUP uses: a VNI's remotes are those of the file and those of the other members
// that carry the VNI; its ports are the file's and the attachments'.
type networks struct {
	vtep  *dataplane.VTEP // set once, before any source applies
	log   *slog.Logger
	state string // the attachments' file, "" without an API socket

	// mu makes the sources apply one at a time, each on the others' latest.
	mu   sync.Mutex
	file *dataplane.Config
	view cluster.View
	cni  map[nodeapi.Attachment]*attachment
	node *cluster.Node // nil without a cluster section
}

// merged returns the file's config with the cluster's remotes and the attachments' ports
// added to each VNI.
func (n *networks) merged() *dataplane.Config {
	cfg := *n.file
	cfg.Networks = slices.Clone(cfg.Networks)
	remotes := n.view.Remotes(cfg.Local, vnis(&cfg))
	vtepOf := map[string]netip.Addr{}
	for _, m := range n.view.Members {
		vtepOf[m.Name] = m.VTEP
	}
	for i := range cfg.Networks {
		nc := &cfg.Networks[i]
		all := slices.Concat(nc.Remotes, remotes[nc.VNI])
		slices.SortFunc(all, netip.Addr.Compare)
		nc.Remotes = slices.Compact(all)
		// The containers other members published: static entries behind their VTEPs, so
		// no flood-and-learn is needed for them, and neighbours for neigh_suppress. The
		// file's entries win a clash, and the first member (the view is sorted) another.
		nc.FDB, nc.Neighbours = slices.Clone(nc.FDB), slices.Clone(nc.Neighbours)
		for _, e := range n.view.Endpoints {
			r, ok := vtepOf[e.Node]
			if e.VNI != nc.VNI || !ok || r == cfg.Local || !slices.Contains(nc.Remotes, r) ||
				slices.ContainsFunc(nc.FDB, func(s dataplane.StaticEntry) bool { return s.MAC == e.MAC }) {
				continue
			}
			nc.FDB = append(nc.FDB, dataplane.StaticEntry{MAC: e.MAC, Remote: r})
			if e.IP.IsValid() && !slices.ContainsFunc(nc.Neighbours, func(nb dataplane.Neighbour) bool { return nb.IP == e.IP }) {
				nc.Neighbours = append(nc.Neighbours, dataplane.Neighbour{IP: e.IP, MAC: e.MAC})
			}
		}
		var ports []dataplane.Port
		for _, a := range n.cni {
			if a.VNI == nc.VNI {
				ports = append(ports, a.port())
			}
		}
		// Sorted, so that the same attachments give the same config every time.
		slices.SortFunc(ports, func(a, b dataplane.Port) int { return strings.Compare(a.TAP+a.Veth, b.TAP+b.Veth) })
		nc.Ports = slices.Concat(nc.Ports, ports)
	}
	return &cfg
}

// reloadFile applies a config file read again (SIGHUP).
func (n *networks) reloadFile(cfg *dataplane.Config) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	old := n.file
	n.file = cfg
	if err := n.vtep.Reload(n.merged()); err != nil {
		n.file = old
		return err
	}
	if n.node != nil {
		n.node.SetVNIs(vnis(cfg))
	}
	return nil
}

// applyView applies a new view of the cluster.
func (n *networks) applyView(v cluster.View) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.view = v
	if n.vtep.State() != dataplane.StateRunning {
		return // stopping: nothing to apply to
	}
	if err := n.vtep.Reload(n.merged()); err != nil {
		n.log.Error("cluster: apply the view", "err", err)
	}
}

// vnis returns the VNIs of cfg.
func vnis(cfg *dataplane.Config) []uint32 {
	out := make([]uint32, len(cfg.Networks))
	for i, nc := range cfg.Networks {
		out[i] = nc.VNI
	}
	return out
}

// runningPoll is how often startCluster looks whether the dataplane runs yet.
const runningPoll = 20 * time.Millisecond

// startCluster joins the cluster once the dataplane carries traffic (peers send to a
// node as soon as it is listed) and follows it until ctx is done; the returned channel is
// closed when the node has left (its lease revoked, or given up on).
func startCluster(ctx context.Context, n *networks, cfg *dataplane.Config) (<-chan struct{}, error) {
	c := cfg.Cluster
	node, err := cluster.New(cluster.Options{
		Endpoints: c.Etcd, Name: c.Node, Prefix: c.Prefix, LeaseTTL: c.LeaseTTL,
		VTEP: cfg.Local, VNIs: vnis(cfg), Log: n.log, Apply: n.applyView,
	})
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	n.node = node
	// The attachments a previous vxdp left are published at registration.
	for _, a := range n.cni {
		if e, ok := a.endpoint(); ok {
			node.Publish(ctx, e)
		}
	}
	n.mu.Unlock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(runningPoll)
		defer tick.Stop()
		for n.vtep.State() != dataplane.StateRunning {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if n.vtep.State() >= dataplane.StateStopping {
				return
			}
		}
		node.Run(ctx)
	}()
	return done, nil
}

// nodeSource is the admin server's source in cluster mode or with an API socket: the
// dataplane, and the cluster's and the CNI attachments' numbers.
type nodeSource struct {
	*dataplane.VTEP
	nets *networks
}

// ClusterStats implements admin.ClusterSource.
func (s nodeSource) ClusterStats() admin.ClusterStats {
	n := s.nets
	n.mu.Lock()
	defer n.mu.Unlock()
	st := admin.ClusterStats{Attachments: len(n.cni)}
	if n.node != nil {
		st.Cluster, st.InCluster = n.node.Status(), true
	}
	return st
}
