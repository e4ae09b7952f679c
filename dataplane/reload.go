//go:build linux

package dataplane

import (
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"

	"github.com/vxdp/vxdp/bpf"
	"github.com/vxdp/vxdp/dataplane/fdb"
	"github.com/vxdp/vxdp/dataplane/packet"
)

// ErrReload marks a config that Reload cannot apply to a running VTEP: it changes a field
// only a restart can change. Nothing was changed.
var ErrReload = errors.New("config change needs a restart")

// Reload applies cfg to the running VTEP: its VNIs, their remote VTEPs, their local
// ports, static FDB entries and neighbours, the outer headers' ttl, tos and df, and
// learning (what the kernel's vxlan changes on a live device). Ports that are in both configs, identical, keep their device, their reader and
// their traffic; remotes that stay keep their resolved next hop. A remote that leaves a
// VNI takes the FDB entries behind it along, and so does a port; a port that leaves is
// removed from the node, whatever ports_on_exit says, and a port that comes is opened (or
// taken over) as at start. Every other field must be as it was, or Reload refuses the
// whole config (ErrReload) and changes nothing.
//
// The dataplane stops for the time the change takes: Reload holds v.mu, which every
// stage takes per batch; in-flight frames wait and none is dropped for it. A port that
// fails to open is left out (the error says which) and the rest of the change stands.
func (v *VTEP) Reload(cfg *Config) error {
	v.reloadMu.Lock()
	defer v.reloadMu.Unlock()
	if err := v.reloadable(cfg); err != nil {
		return err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	// Checked under v.mu: teardown takes it to close the ports, after the state changed.
	if !v.life.ran.Load() || v.State() != StateRunning {
		return fmt.Errorf("reload: vxdp is %s, not running", v.State())
	}
	var errs []error
	old := &Config{Networks: v.networks}
	keep := map[uint32]bool{}
	for _, nc := range cfg.Networks {
		keep[nc.VNI] = true
	}
	// Ports of VNIs that go, and ports that change or go within a VNI that stays.
	for _, onc := range old.Networks {
		nc := findNetwork(cfg, onc.VNI)
		for _, p := range onc.Ports {
			if nc == nil || !slices.Contains(nc.Ports, p) {
				errs = append(errs, v.removePortLocked(v.nets[onc.VNI], p))
			}
		}
		if nc == nil {
			v.removeNetworkLocked(v.nets[onc.VNI])
		}
	}
	bc := bpf.Config{Port: v.cfg.Port, Locals: []netip.Addr{v.cfg.Local}}
	for _, nc := range cfg.Networks {
		n := v.nets[nc.VNI]
		if n == nil {
			table, err := fdb.New(fdb.Options{Cap: v.cfg.FDBMax, Ageing: v.cfg.FDBAgeing})
			if err != nil {
				errs = append(errs, fmt.Errorf("fdb of vni %d: %w", nc.VNI, err))
				continue
			}
			n = &network{vni: nc.VNI, fdb: table}
			v.nets[nc.VNI] = n
			v.log.Info("reload: vni added", "vni", nc.VNI)
		}
		v.setRemotesLocked(n, nc.Remotes)
		var onc *Network
		if o := findNetwork(old, nc.VNI); o != nil {
			onc = o
		}
		for _, p := range nc.Ports {
			if onc != nil && slices.Contains(onc.Ports, p) {
				continue
			}
			if err := v.addPortLocked(n, p); err != nil {
				errs = append(errs, err)
			}
		}
		if err := v.applyEntriesLocked(n, nc); err != nil {
			errs = append(errs, fmt.Errorf("reload: %w", err))
		}
	}
	if v.header != cfg.Header || v.noLearning != cfg.NoLearning {
		v.log.Info("reload: outer headers and learning", "ttl", cfg.Header.TTL, "tos", cfg.Header.TOS,
			"tos_inherit", cfg.Header.TOSInherit, "df", cfg.Header.DF, "learning", !cfg.NoLearning)
	}
	// The templates are rebuilt with the new header by the resolver (resolveAll, below).
	v.header, v.noLearning = cfg.Header, cfg.NoLearning
	for _, r := range v.remotes {
		if !r.gone {
			bc.Remotes = append(bc.Remotes, r.addr)
		}
	}
	if err := v.prog.Configure(bc); err != nil {
		errs = append(errs, fmt.Errorf("configure xdp program: %w", err))
	}
	v.networks = cfg.Networks
	v.resolveAll.Store(true)
	select {
	case v.resolve <- struct{}{}:
	default:
	}
	return errors.Join(errs...)
}

// reloadable checks that cfg differs from the running config only in what Reload applies.
// v.cfg itself never changes: its networks are those vxdp started with; v.networks are
// the current ones.
func (v *VTEP) reloadable(cfg *Config) error {
	a, b := *v.cfg, *cfg
	a.Networks, b.Networks = nil, nil
	// Reloadable: ttl, tos, df and learning, as on the kernel's vxlan. Not: ttl to or from
	// inherit, udp_checksum and srcport ("cannot change TTL_INHERIT flag", "Cannot change
	// UDP_CSUM flag", "Cannot change port range").
	var fields []string
	if a.Header.UDPChecksum != b.Header.UDPChecksum {
		fields = append(fields, "udp_checksum")
	}
	if (a.Header.TTL == 0) != (b.Header.TTL == 0) {
		fields = append(fields, "ttl to or from inherit")
	}
	a.Header, b.Header = packet.HeaderOptions{}, packet.HeaderOptions{}
	a.NoLearning, b.NoLearning = false, false
	if len(fields) == 0 && reflect.DeepEqual(a, b) {
		if needsMultiBuffer(cfg) && !v.multiBuffer {
			return fmt.Errorf("%w: a port mtu of %d needs multi-buffer af_xdp sockets, which vxdp opens at start only when a port needs them (largest port mtu without: %d)",
				ErrReload, maxPortMTU(cfg), singleBufferMTU(cfg))
		}
		return nil
	}
	ta, va, vb := reflect.TypeOf(a), reflect.ValueOf(a), reflect.ValueOf(b)
	for i := range ta.NumField() {
		if !reflect.DeepEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
			name := ta.Field(i).Name
			if f, ok := configFields[name]; ok {
				name = f
			}
			fields = append(fields, name)
		}
	}
	return fmt.Errorf("%w: %v changed; only networks (VNIs, remotes, ports, fdb, neighbours), ttl (but to or from inherit), tos, df and learning reload", ErrReload, fields)
}

// configFields names Config's fields as the config file does, for reloadable's refusal.
var configFields = map[string]string{
	"Underlay": "underlay", "Local": "local", "Port": "port", "FDBMax": "fdb_max", "FDBAgeing": "fdb_ageing",
	"Workers": "workers", "MicroFlow": "microflow", "Offload": "offload", "Admin": "admin",
	"RunToCompletion": "run_to_completion",
	"KeepPorts":       "ports_on_exit", "VXLANReservedIgnored": "vxlan_reserved_bits", "InnerVLAN": "inner_vlan",
	"SrcPorts": "srcport", "TAPIOUring": "tap_io_uring",
}

// findNetwork returns the VNI vni of cfg, or nil.
func findNetwork(cfg *Config, vni uint32) *Network {
	for i := range cfg.Networks {
		if cfg.Networks[i].VNI == vni {
			return &cfg.Networks[i]
		}
	}
	return nil
}

// setRemotesLocked gives n the remote VTEPs addrs: a remote that stays keeps its outer
// header template, one that is new to vxdp gets a new index (indexes are never reused, so
// no FDB entry can point at the wrong remote), and the FDB entries behind a remote that
// leaves n are flushed. v.mu is held.
func (v *VTEP) setRemotesLocked(n *network, addrs []netip.Addr) {
	var remotes []*remote
	encaps := make([]encapSlot, len(addrs))
	for i, a := range addrs {
		r := v.remoteByAddr(a)
		if r == nil {
			r = &remote{index: len(v.remotes), addr: a}
			v.remotes = append(v.remotes, r)
			v.log.Info("reload: remote added", "remote", a)
		}
		r.gone = false
		if j := slices.Index(n.remotes, r); j >= 0 {
			encaps[i].p.Store(n.encaps[j].p.Load())
		}
		remotes = append(remotes, r)
	}
	for _, r := range n.remotes {
		if !slices.Contains(remotes, r) {
			idx := r.index
			flushed := n.fdb.Flush(func(t fdb.Target) bool { return t.IsRemote() && t.Index() == idx })
			v.log.Info("reload: remote left vni", "remote", r.addr, "vni", n.vni, "fdb_flushed", flushed)
		}
	}
	n.remotes, n.encaps = remotes, encaps
	// A remote no VNI has any more is no longer resolved nor accepted.
	for _, r := range v.remotes {
		r.gone = !v.inUseLocked(r)
	}
}

// remoteByAddr returns the remote VTEP with address a, gone or not, or nil.
func (v *VTEP) remoteByAddr(a netip.Addr) *remote {
	for _, r := range v.remotes {
		if r.addr == a {
			return r
		}
	}
	return nil
}

// inUseLocked reports whether some VNI has r among its remotes. v.mu is held.
func (v *VTEP) inUseLocked(r *remote) bool {
	for _, n := range v.nets {
		if slices.Contains(n.remotes, r) {
			return true
		}
	}
	return false
}

// addPortLocked opens port p in network n, starts its reader and makes its MAC static in
// n's FDB. v.mu is held.
func (v *VTEP) addPortLocked(n *network, p Port) error {
	t, err := v.openPort(p, len(v.ports))
	if err != nil {
		return fmt.Errorf("reload: add port %s: %w", p.dev(), err)
	}
	t.net = n
	if err := n.fdb.Static(fdb.MACFrom(t.mac[:]), fdb.LocalPort(t.index)); err != nil {
		t.setPersist(false)
		t.close()
		return fmt.Errorf("reload: add port %s: fdb of vni %d: %w", p.dev(), n.vni, err)
	}
	if err := t.setPersist(v.cfg.KeepPorts); err != nil {
		v.log.Warn("reload: port added, but its persistence is unset", "port", p.dev(), "err", err)
	}
	v.ports = append(v.ports, t)
	v.portCnt = append(v.portCnt, &counters{})
	n.ports = append(n.ports, t)
	v.writers.Add(1)
	go func() { defer v.writers.Done(); v.runPort(t, v.portCnt[t.index]) }()
	v.log.Info("reload: port added", "port", p.dev(), "vni", n.vni, "adopted", t.adopted)
	return nil
}

// removePortLocked closes port p of network n and removes its device, its FDB entries and
// its place in n; its slot in v.ports stays, empty, so that no index changes. Its counters
// stay in the totals. v.mu is held.
func (v *VTEP) removePortLocked(n *network, p Port) error {
	i := slices.IndexFunc(n.ports, func(t *tap) bool { return t.port == p })
	if i < 0 {
		return nil
	}
	t := n.ports[i]
	idx := t.index
	flushed := n.fdb.Flush(func(to fdb.Target) bool { return to.IsLocal() && to.Index() == idx })
	n.ports = slices.Delete(slices.Clone(n.ports), i, i+1)
	v.ports[idx] = nil
	var errs []error
	// A TAP whose device is gone already (its container's namespace deleted) has nothing
	// to unpersist: removing it is what the reload is for, not an error.
	if err := t.setPersist(false); err != nil && !portGone(err) {
		errs = append(errs, err)
	}
	if err := t.close(); err != nil {
		errs = append(errs, fmt.Errorf("reload: close port %s: %w", p.dev(), err))
	}
	v.log.Info("reload: port removed", "port", p.dev(), "vni", n.vni, "fdb_flushed", flushed)
	return errors.Join(errs...)
}

// removeNetworkLocked forgets VNI n, whose ports are gone already. v.mu is held.
func (v *VTEP) removeNetworkLocked(n *network) {
	delete(v.nets, n.vni)
	n.remotes, n.encaps = nil, nil
	v.log.Info("reload: vni removed", "vni", n.vni)
}
