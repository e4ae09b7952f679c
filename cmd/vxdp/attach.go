//go:build linux

package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/vxdp/vxdp/cluster"
	"github.com/vxdp/vxdp/dataplane"
	"github.com/vxdp/vxdp/internal/nodeapi"
)

// attachment is a port the CNI plugin asked for: its request and what vxdp made.
type attachment struct {
	nodeapi.AddRequest
	// Device is the TAP's (or the veth host end's) name; MAC the interface's in the container.
	Device string `json:"device"`
	MAC    string `json:"mac"`
}

// port is the dataplane port of a.
func (a *attachment) port() dataplane.Port {
	p := dataplane.Port{Netns: a.Netns, Ifname: a.IfName, MTU: a.MTU}
	if a.Veth {
		p.Veth = a.Device
	} else {
		p.TAP = a.Device
	}
	return p
}

// endpoint is what a publishes in the cluster: its MAC on its VNI, with its first address.
func (a *attachment) endpoint() (cluster.Endpoint, bool) {
	hw, err := net.ParseMAC(a.MAC)
	if err != nil || len(hw) != 6 {
		return cluster.Endpoint{}, false
	}
	e := cluster.Endpoint{VNI: a.VNI, MAC: [6]byte(hw)}
	if len(a.IPs) > 0 {
		e.IP = a.IPs[0].Address.Addr()
	}
	return e, true
}

// deviceName is the name of the device vxdp makes for attachment a: "vxc" and 12 hex
// digits of a hash of the container ID and interface name, within the kernel's 15 bytes
// and the same every time (a restarted vxdp, a repeated DEL).
func deviceName(a nodeapi.Attachment) string {
	h := sha256.Sum256([]byte(a.ContainerID + "/" + a.IfName))
	return "vxc" + hex.EncodeToString(h[:6])
}

// statePath is the file the attachments are kept in, beside the API socket: a restarted
// vxdp takes their ports over and publishes their MACs again.
func statePath(api string) string {
	return strings.TrimSuffix(api, ".sock") + ".attachments.json"
}

// loadAttachments reads the attachments a previous vxdp left; one whose namespace is gone
// (its container went while vxdp was down) is dropped, and logged.
func (n *networks) loadAttachments() error {
	n.cni = map[nodeapi.Attachment]*attachment{}
	if n.state == "" {
		return nil
	}
	b, err := os.ReadFile(n.state)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read attachments: %w", err)
	}
	var all []*attachment
	if err := json.Unmarshal(b, &all); err != nil {
		return fmt.Errorf("read attachments %s: %w", n.state, err)
	}
	for _, a := range all {
		if _, err := os.Stat(a.Netns); err != nil {
			n.log.Info("cni: attachment dropped: its namespace is gone", "container", a.ContainerID, "netns", a.Netns)
			continue
		}
		n.cni[a.Attachment] = a
	}
	return nil
}

// saveLocked writes the attachments to the state file (through a temporary file and a
// rename, so a crash leaves the old or the new). n.mu is held.
func (n *networks) saveLocked() error {
	if n.state == "" {
		return nil
	}
	all := slices.Collect(func(yield func(*attachment) bool) {
		for _, a := range n.cni {
			if !yield(a) {
				return
			}
		}
	})
	slices.SortFunc(all, func(a, b *attachment) int { return strings.Compare(a.Device, b.Device) })
	b, err := json.Marshal(all)
	if err != nil {
		return err
	}
	tmp := n.state + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("save attachments: %w", err)
	}
	if err := os.Rename(tmp, n.state); err != nil {
		return fmt.Errorf("save attachments: %w", err)
	}
	return nil
}

// checkAdd checks an ADD's request before anything is made.
func (n *networks) checkAdd(r *nodeapi.AddRequest) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", nodeapi.ErrBadRequest, fmt.Sprintf(format, args...))
	}
	switch {
	case r.ContainerID == "":
		return bad("no container id")
	case len(r.IfName) == 0 || len(r.IfName) > 15 || strings.ContainsAny(r.IfName, "/: \t\n\x00") || r.IfName == "." || r.IfName == "..":
		return bad("%q is not an interface name", r.IfName)
	case !filepath.IsAbs(r.Netns):
		return bad("netns %q is not an absolute path", r.Netns)
	}
	if r.MTU == 0 {
		r.MTU = dataplane.DefaultMTU
	}
	maxMTU := 9000
	if r.Veth {
		maxMTU = dataplane.MaxVethMTU
	}
	if r.MTU < 68 || r.MTU > maxMTU {
		return bad("mtu %d is out of range (68-%d)", r.MTU, maxMTU)
	}
	if !slices.Contains(vnis(n.file), r.VNI) {
		return bad("vni %d is not one of this node's networks %v", r.VNI, vnis(n.file))
	}
	return nil
}

// Add makes the port of an ADD: the dataplane opens it in the container's namespace
// (through the reload path), then its addresses and routes are set and its MAC is
// published in the cluster. On error nothing stays.
func (n *networks) Add(ctx context.Context, r nodeapi.AddRequest) (nodeapi.AddResponse, error) {
	if err := n.checkAdd(&r); err != nil {
		return nodeapi.AddResponse{}, err
	}
	n.mu.Lock()
	locked := true
	defer func() {
		if locked {
			n.mu.Unlock()
		}
	}()
	if old, ok := n.cni[r.Attachment]; ok {
		if old.Netns != r.Netns || old.VNI != r.VNI {
			return nodeapi.AddResponse{}, fmt.Errorf("%w: container %s has %s already, in %s", nodeapi.ErrBadRequest, r.ContainerID, r.IfName, old.Netns)
		}
		return nodeapi.AddResponse{MAC: old.MAC, Device: old.Device}, nil
	}
	if s := n.vtep.State(); s != dataplane.StateRunning {
		return nodeapi.AddResponse{}, fmt.Errorf("add: vxdp is %s", s)
	}
	a := &attachment{AddRequest: r, Device: deviceName(r.Attachment)}
	n.cni[r.Attachment] = a
	undo := func(err error) (nodeapi.AddResponse, error) {
		delete(n.cni, r.Attachment)
		if rerr := n.vtep.Reload(n.merged()); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return nodeapi.AddResponse{}, err
	}
	if err := n.vtep.Reload(n.merged()); err != nil {
		return undo(fmt.Errorf("add port %s: %w", a.Device, err))
	}
	mac, err := configureIf(a)
	if err != nil {
		return undo(err)
	}
	a.MAC = mac
	if err := n.saveLocked(); err != nil {
		return undo(err)
	}
	n.log.Info("cni: added", "container", r.ContainerID, "ifname", r.IfName, "port", a.Device, "vni", r.VNI, "mac", mac)
	// Published without n.mu: etcd may take its time, and views and reloads go on meanwhile.
	node := n.node
	locked = false
	n.mu.Unlock()
	if e, ok := a.endpoint(); ok && node != nil {
		if err := node.Publish(ctx, e); err != nil {
			n.log.Warn("cni: mac not published yet; it will be at the next registration", "port", a.Device, "err", err)
		}
	}
	return nodeapi.AddResponse{MAC: mac, Device: a.Device}, nil
}

// configureIf gives the container's interface of a its addresses and routes, and
// returns its MAC.
func configureIf(a *attachment) (string, error) {
	ns, err := netns.GetFromPath(a.Netns)
	if err != nil {
		return "", fmt.Errorf("open netns %s: %w", a.Netns, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return "", fmt.Errorf("netlink in %s: %w", a.Netns, err)
	}
	defer h.Close()
	link, err := h.LinkByName(a.IfName)
	if err != nil {
		return "", fmt.Errorf("find %s in %s: %w", a.IfName, a.Netns, err)
	}
	for _, ip := range a.IPs {
		addr := &netlink.Addr{IPNet: ipNet(ip.Address)}
		if err := h.AddrReplace(link, addr); err != nil {
			return "", fmt.Errorf("add address %s to %s in %s: %w", ip.Address, a.IfName, a.Netns, err)
		}
	}
	if err := h.LinkSetUp(link); err != nil {
		return "", fmt.Errorf("set %s up in %s: %w", a.IfName, a.Netns, err)
	}
	for _, r := range a.Routes {
		route := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: ipNet(r.Dst)}
		if r.GW.IsValid() {
			route.Gw = r.GW.AsSlice()
		}
		if err := h.RouteReplace(route); err != nil {
			return "", fmt.Errorf("add route %s to %s in %s: %w", r.Dst, a.IfName, a.Netns, err)
		}
	}
	return link.Attrs().HardwareAddr.String(), nil
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// Check checks that the port of an ADD is there as ADD left it: known, its interface in
// the container with its MAC and addresses.
func (n *networks) Check(_ context.Context, r nodeapi.AddRequest) error {
	n.mu.Lock()
	a, ok := n.cni[r.Attachment]
	n.mu.Unlock()
	if !ok {
		return fmt.Errorf("check: vxdp has no %s of container %s", r.IfName, r.ContainerID)
	}
	ns, err := netns.GetFromPath(a.Netns)
	if err != nil {
		return fmt.Errorf("check: open netns %s: %w", a.Netns, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("check: netlink in %s: %w", a.Netns, err)
	}
	defer h.Close()
	link, err := h.LinkByName(a.IfName)
	if err != nil {
		return fmt.Errorf("check: find %s in %s: %w", a.IfName, a.Netns, err)
	}
	if mac := link.Attrs().HardwareAddr.String(); mac != a.MAC {
		return fmt.Errorf("check: %s has mac %s, not %s", a.IfName, mac, a.MAC)
	}
	addrs, err := h.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("check: addresses of %s: %w", a.IfName, err)
	}
	for _, ip := range r.IPs {
		if !slices.ContainsFunc(addrs, func(x netlink.Addr) bool { return x.IPNet.String() == ipNet(ip.Address).String() }) {
			return fmt.Errorf("check: %s has no address %s", a.IfName, ip.Address)
		}
	}
	return nil
}

// Del removes the port of an attachment and withdraws its MAC; an unknown attachment is
// no error (DEL is idempotent).
func (n *networks) Del(ctx context.Context, key nodeapi.Attachment) error {
	n.mu.Lock()
	a, err := n.delLocked(key)
	node := n.node
	n.mu.Unlock()
	n.withdraw(ctx, node, a)
	return err
}

// withdraw withdraws the MAC of a removed attachment (nil: none) from the cluster, without
// n.mu. A failure is logged: the record goes at the next registration, or with the lease.
func (n *networks) withdraw(ctx context.Context, node *cluster.Node, a *attachment) {
	if a == nil || node == nil {
		return
	}
	if e, ok := a.endpoint(); ok {
		if err := node.Withdraw(ctx, e.VNI, e.MAC); err != nil {
			n.log.Warn("cni: mac not withdrawn yet", "port", a.Device, "err", err)
		}
	}
}

// delLocked removes the attachment key and returns it (nil if there was none). n.mu is held.
func (n *networks) delLocked(key nodeapi.Attachment) (*attachment, error) {
	a, ok := n.cni[key]
	if !ok {
		return nil, nil
	}
	delete(n.cni, key)
	var errs []error
	if n.vtep.State() == dataplane.StateRunning {
		if err := n.vtep.Reload(n.merged()); err != nil {
			errs = append(errs, fmt.Errorf("del port %s: %w", a.Device, err))
		}
	}
	if err := n.saveLocked(); err != nil {
		errs = append(errs, err)
	}
	n.log.Info("cni: deleted", "container", key.ContainerID, "ifname", key.IfName, "port", a.Device)
	return a, errors.Join(errs...)
}

// GC removes every attachment not in valid and returns them.
func (n *networks) GC(ctx context.Context, valid []nodeapi.Attachment) ([]nodeapi.Attachment, error) {
	n.mu.Lock()
	var removed []nodeapi.Attachment
	var gone []*attachment
	var errs []error
	for key := range n.cni {
		if !slices.Contains(valid, key) {
			removed = append(removed, key)
		}
	}
	for _, key := range removed {
		a, err := n.delLocked(key)
		gone = append(gone, a)
		errs = append(errs, err)
	}
	node := n.node
	n.mu.Unlock()
	for _, a := range gone {
		n.withdraw(ctx, node, a)
	}
	return removed, errors.Join(errs...)
}

// Status says whether an ADD can be served now.
func (n *networks) Status() nodeapi.StatusResponse {
	if s := n.vtep.State(); s != dataplane.StateRunning {
		return nodeapi.StatusResponse{Reason: "vxdp is " + s.String()}
	}
	return nodeapi.StatusResponse{Ready: true}
}
