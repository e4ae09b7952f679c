//go:build linux

package dataplane

import (
	"context"
	"net"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/vxdp/vxdp/dataplane/packet"
)

// runResolver keeps the outer header templates in step with the kernel's routes and
// neighbour table: every neighbourPeriod, and at once when egress meets an unresolved
// next hop.
func (v *VTEP) runResolver(ctx context.Context) {
	tick := time.NewTicker(neighbourPeriod)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-v.resolve:
			// A burst of misses asks once; ARP takes a moment, so look again shortly.
			time.AfterFunc(50*time.Millisecond, func() {
				select {
				case v.resolve <- struct{}{}:
				default:
				}
			})
		}
		v.resolveNeighbours()
	}
}

// resolveNeighbours looks up each remote VTEP's next hop and its MAC address. A next hop the
// kernel has no usable entry for is handed to the kernel to resolve (NTF_USE: the kernel
// sends the ARP or neighbour solicitation itself); a stale entry is refreshed the same way,
// since our frames bypass the kernel and would never confirm it.
//
// The netlink calls run without v.mu, so a Reload never waits on them; the templates are
// stored under it.
func (v *VTEP) resolveNeighbours() {
	v.mu.RLock()
	remotes := make([]*remote, 0, len(v.remotes))
	for _, r := range v.remotes {
		if !r.gone {
			remotes = append(remotes, r)
		}
	}
	v.mu.RUnlock()
	all := v.resolveAll.Swap(false)
	for _, r := range remotes {
		mac, ok := v.neighbour(r.addr)
		if !ok || (mac == r.mac && !all) {
			continue // keep the last known MAC while the kernel re-resolves
		}
		r.mac = mac
		v.storeEncaps(r, mac)
	}
}

// storeEncaps builds the outer header templates toward r through the next hop mac, in
// every VNI that has r, and stores those that changed.
func (v *VTEP) storeEncaps(r *remote, mac [6]byte) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	for _, n := range v.nets {
		for i, nr := range n.remotes {
			if nr != r {
				continue
			}
			tmpl, err := packet.NewEncapOptions(v.srcMAC, mac, v.cfg.Local, r.addr, v.cfg.Port, n.vni, v.header)
			if err != nil {
				v.log.Error("build outer header", "remote", r.addr, "vni", n.vni, "err", err)
				continue
			}
			n.encaps[i].p.Store(tmpl)
			v.log.Info("next hop resolved", "remote", r.addr, "vni", n.vni, "mac", net.HardwareAddr(mac[:]).String())
		}
	}
}

// neighbour returns the MAC of the next hop toward a, asking the kernel to resolve or
// refresh it when needed.
func (v *VTEP) neighbour(a netip.Addr) (mac [6]byte, ok bool) {
	ifindex := v.underlay.Attrs().Index
	hop := a
	routes, err := netlink.RouteGet(a.AsSlice())
	if err == nil && len(routes) > 0 {
		if gw, ok := netip.AddrFromSlice(routes[0].Gw); ok && routes[0].Gw != nil {
			hop = gw.Unmap()
		}
		if routes[0].LinkIndex != ifindex {
			v.log.Warn("remote VTEP is not routed through the underlay", "remote", a, "underlay", v.cfg.Underlay)
		}
	}
	family := netlink.FAMILY_V4
	if hop.Is6() {
		family = netlink.FAMILY_V6
	}
	neighs, err := netlink.NeighList(ifindex, family)
	if err != nil {
		v.log.Warn("list neighbours", "err", err)
		return mac, false
	}
	state := -1
	for _, nb := range neighs {
		if ip, ok := netip.AddrFromSlice(nb.IP); ok && ip.Unmap() == hop && len(nb.HardwareAddr) == 6 {
			state = nb.State
			copy(mac[:], nb.HardwareAddr)
		}
	}
	usable := netlink.NUD_REACHABLE | netlink.NUD_STALE | netlink.NUD_DELAY | netlink.NUD_PROBE |
		netlink.NUD_PERMANENT | netlink.NUD_NOARP
	if state < 0 || state&netlink.NUD_REACHABLE == 0 && state&(netlink.NUD_PERMANENT|netlink.NUD_NOARP) == 0 {
		err := netlink.NeighSet(&netlink.Neigh{
			LinkIndex: ifindex, Family: family, IP: hop.AsSlice(),
			State: netlink.NUD_NONE, Flags: netlink.NTF_USE,
		})
		if err != nil && err != unix.EEXIST {
			v.log.Warn("ask kernel to resolve next hop", "hop", hop, "err", err)
		}
	}
	return mac, state >= 0 && state&usable != 0
}
