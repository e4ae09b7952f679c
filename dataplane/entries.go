//go:build linux

package dataplane

import (
	"errors"
	"fmt"
	"net"
	"slices"

	"github.com/vxdp/vxdp/dataplane/fdb"
)

// applyEntriesLocked makes network n's static FDB entries, neighbours and neighbour
// suppression those nc configures, whatever they were: a static entry that left the
// config is deleted, a new or changed one set (over a learned entry of the same MAC). It
// is a function of the config alone, so start, SIGHUP and anything that feeds Reload a
// Config apply the same way. nc's remotes are n's already. v.mu is held, or the dataplane
// is not running yet.
func (v *VTEP) applyEntriesLocked(n *network, nc Network) error {
	var errs []error
	for _, mac := range n.static {
		if slices.ContainsFunc(nc.FDB, func(e StaticEntry) bool { return e.MAC == mac }) {
			continue
		}
		// Only while it is still a remote's: a port may have taken the MAC since.
		if to, ok := n.fdb.Lookup(fdb.MACFrom(mac[:])); ok && to.IsRemote() {
			n.fdb.Delete(fdb.MACFrom(mac[:]))
		}
	}
	static := make([][6]byte, 0, len(nc.FDB))
	for _, e := range nc.FDB {
		r := n.remote(e.Remote)
		if r == nil { // ParseConfig checks that it is one of the VNI's remotes
			errs = append(errs, fmt.Errorf("static entry %s of vni %d: %s is not a remote of the vni", net.HardwareAddr(e.MAC[:]), n.vni, e.Remote))
			continue
		}
		if slices.ContainsFunc(n.ports, func(t *tap) bool { return t.mac == e.MAC }) {
			errs = append(errs, fmt.Errorf("static entry %s of vni %d: the MAC of a local port", net.HardwareAddr(e.MAC[:]), n.vni))
			continue
		}
		if err := n.fdb.Static(fdb.MACFrom(e.MAC[:]), fdb.RemoteVTEP(r.index)); err != nil {
			errs = append(errs, fmt.Errorf("static entry of vni %d: %w", n.vni, err))
			continue
		}
		static = append(static, e.MAC)
	}
	n.static = static
	n.neighbours = slices.Clone(nc.Neighbours)
	n.suppress = nc.NeighSuppress
	return errors.Join(errs...)
}
