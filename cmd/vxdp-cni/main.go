//go:build linux

// Command vxdp-cni is the CNI plugin of vxdp (CNI spec 1.1: ADD, DEL, CHECK, STATUS, GC,
// VERSION). It is a thin client of the node's vxdp: it runs the IPAM plugin the network
// config names (host-local, typically) in the runtime's environment, and hands the call
// with IPAM's addresses to vxdp over its API socket; vxdp makes the port (a TAP, or a
// veth with "port": "veth") in CNI_NETNS under CNI_IFNAME, configures the addresses and
// routes, and publishes the MAC in the cluster.
//
//	{"cniVersion": "1.1.0", "name": "vxdp-net", "type": "vxdp-cni", "socket": "/run/vxdp/vxdp.sock",
//	 "vni": 42, "mtu": 1450, "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.42.0.0/16"}]]}}
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/vxdp/vxdp/internal/nodeapi"
)

// errNotAvailable is CNI 1.1's error code for "the plugin cannot serve ADD now" (STATUS).
const errNotAvailable = 50

// callTimeout bounds each call to vxdp and to the IPAM plugin.
const callTimeout = 30 * time.Second

// netConf is the network config: CNI's fields and vxdp's.
type netConf struct {
	types.NetConf
	// Socket is vxdp's API socket (default nodeapi.DefaultSocket).
	Socket string `json:"socket"`
	// VNI is the network's VXLAN network identifier; the node's vxdp must carry it.
	VNI uint32 `json:"vni"`
	// MTU of the container's interface (default: vxdp's, 1450).
	MTU int `json:"mtu"`
	// Port is "tap" (default) or "veth".
	Port string `json:"port"`
}

func parseConf(stdin []byte) (*netConf, error) {
	c := &netConf{}
	if err := json.Unmarshal(stdin, c); err != nil {
		return nil, fmt.Errorf("parse network config: %w", err)
	}
	if c.Socket == "" {
		c.Socket = nodeapi.DefaultSocket
	}
	if c.VNI < 1 || c.VNI > 1<<24-1 {
		return nil, fmt.Errorf("network config: vni %d is out of range (1-16777215)", c.VNI)
	}
	if c.Port != "" && c.Port != "tap" && c.Port != "veth" {
		return nil, fmt.Errorf("network config: port %q is neither tap nor veth", c.Port)
	}
	return c, nil
}

func main() {
	skel.PluginMainFuncs(skel.CNIFuncs{Add: cmdAdd, Del: cmdDel, Check: cmdCheck, Status: cmdStatus, GC: cmdGC},
		version.All, "vxdp-cni: CNI plugin of vxdp, the XDP/AF_XDP VXLAN dataplane")
}

// ipamConf returns stdin for the IPAM plugin: as given, or with the newest CNI version
// that the plugin supports, when it does not support the config's (Debian 12's plugins
// stop at 1.0.0). The result is converted back to ours.
func ipamConf(ctx context.Context, c *netConf, stdin []byte) ([]byte, error) {
	path, err := invoke.FindInPath(c.IPAM.Type, filepath.SplitList(os.Getenv("CNI_PATH")))
	if err != nil {
		return nil, fmt.Errorf("find ipam plugin: %w", err)
	}
	info, err := invoke.GetVersionInfo(ctx, path, nil)
	if err != nil {
		return nil, fmt.Errorf("ipam plugin %s version: %w", c.IPAM.Type, err)
	}
	supported := info.SupportedVersions()
	if slices.Contains(supported, c.CNIVersion) {
		return stdin, nil
	}
	best := ""
	for _, v := range supported {
		if gt, err := version.GreaterThan(v, best); best == "" || (err == nil && gt) {
			best = v
		}
	}
	var m map[string]any
	if err := json.Unmarshal(stdin, &m); err != nil {
		return nil, err
	}
	m["cniVersion"] = best
	return json.Marshal(m)
}

func cmdAdd(args *skel.CmdArgs) error {
	c, err := parseConf(args.StdinData)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	req := nodeapi.AddRequest{
		Attachment: nodeapi.Attachment{ContainerID: args.ContainerID, IfName: args.IfName},
		Netns:      args.Netns, VNI: c.VNI, MTU: c.MTU, Veth: c.Port == "veth",
	}
	result := &current.Result{CNIVersion: current.ImplementedSpecVersion}
	var ipamStdin []byte
	if c.IPAM.Type != "" {
		if ipamStdin, err = ipamConf(ctx, c, args.StdinData); err != nil {
			return err
		}
		r, err := invoke.DelegateAdd(ctx, c.IPAM.Type, ipamStdin, nil)
		if err != nil {
			return fmt.Errorf("ipam %s: %w", c.IPAM.Type, err)
		}
		if result, err = current.NewResultFromResult(r); err != nil {
			invoke.DelegateDel(ctx, c.IPAM.Type, ipamStdin, nil)
			return fmt.Errorf("ipam %s result: %w", c.IPAM.Type, err)
		}
		for _, ip := range result.IPs {
			p, _ := netip.AddrFromSlice(ip.Address.IP)
			ones, _ := ip.Address.Mask.Size()
			cfg := nodeapi.IPConfig{Address: netip.PrefixFrom(p.Unmap(), ones)}
			if gw, ok := netip.AddrFromSlice(ip.Gateway); ok {
				cfg.Gateway = gw.Unmap()
			}
			req.IPs = append(req.IPs, cfg)
		}
		for _, r := range result.Routes {
			d, _ := netip.AddrFromSlice(r.Dst.IP)
			ones, _ := r.Dst.Mask.Size()
			route := nodeapi.Route{Dst: netip.PrefixFrom(d.Unmap(), ones)}
			if gw, ok := netip.AddrFromSlice(r.GW); ok {
				route.GW = gw.Unmap()
			}
			req.Routes = append(req.Routes, route)
		}
	}
	resp, err := nodeapi.NewClient(c.Socket).Add(ctx, req)
	if err != nil {
		if ipamStdin != nil {
			invoke.DelegateDel(ctx, c.IPAM.Type, ipamStdin, nil)
		}
		return err
	}
	result.Interfaces = []*current.Interface{{Name: args.IfName, Mac: resp.MAC, Sandbox: args.Netns}}
	for _, ip := range result.IPs {
		ip.Interface = current.Int(0)
	}
	return types.PrintResult(result, c.CNIVersion)
}

// vxdpGone reports whether err says vxdp is not there: no socket, or nobody on it. DEL
// then has nothing to remove on vxdp's side, and succeeds.
func vxdpGone(err error) bool {
	return errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT)
}

func cmdDel(args *skel.CmdArgs) error {
	c, err := parseConf(args.StdinData)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	err = nodeapi.NewClient(c.Socket).Del(ctx, nodeapi.Attachment{ContainerID: args.ContainerID, IfName: args.IfName})
	if err != nil && !vxdpGone(err) {
		return err
	}
	if c.IPAM.Type != "" {
		ipamStdin, err := ipamConf(ctx, c, args.StdinData)
		if err != nil {
			return err
		}
		if err := invoke.DelegateDel(ctx, c.IPAM.Type, ipamStdin, nil); err != nil {
			return fmt.Errorf("ipam %s: %w", c.IPAM.Type, err)
		}
	}
	return nil
}

func cmdCheck(args *skel.CmdArgs) error {
	c, err := parseConf(args.StdinData)
	if err != nil {
		return err
	}
	if err := version.ParsePrevResult(&c.NetConf); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	req := nodeapi.AddRequest{
		Attachment: nodeapi.Attachment{ContainerID: args.ContainerID, IfName: args.IfName},
		Netns:      args.Netns, VNI: c.VNI,
	}
	if c.PrevResult != nil {
		prev, err := current.NewResultFromResult(c.PrevResult)
		if err != nil {
			return fmt.Errorf("previous result: %w", err)
		}
		for _, ip := range prev.IPs {
			p, _ := netip.AddrFromSlice(ip.Address.IP)
			ones, _ := ip.Address.Mask.Size()
			req.IPs = append(req.IPs, nodeapi.IPConfig{Address: netip.PrefixFrom(p.Unmap(), ones)})
		}
	}
	if c.IPAM.Type != "" {
		ipamStdin, err := ipamConf(ctx, c, args.StdinData)
		if err != nil {
			return err
		}
		if err := invoke.DelegateCheck(ctx, c.IPAM.Type, ipamStdin, nil); err != nil {
			return fmt.Errorf("ipam %s: %w", c.IPAM.Type, err)
		}
	}
	return nodeapi.NewClient(c.Socket).Check(ctx, req)
}

func cmdStatus(args *skel.CmdArgs) error {
	c, err := parseConf(args.StdinData)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	st, err := nodeapi.NewClient(c.Socket).Status(ctx)
	if err != nil {
		return types.NewError(errNotAvailable, "vxdp is not reachable", err.Error())
	}
	if !st.Ready {
		return types.NewError(errNotAvailable, "vxdp cannot add ports now", st.Reason)
	}
	return nil
}

// cmdGC removes vxdp's ports of this network's attachments that are not valid any more,
// and releases their addresses with the IPAM plugin's DEL (one for each, under its
// container ID and interface name: Debian 12's host-local knows no GC).
func cmdGC(args *skel.CmdArgs) error {
	c, err := parseConf(args.StdinData)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	var valid []nodeapi.Attachment
	for _, a := range c.ValidAttachments {
		valid = append(valid, nodeapi.Attachment{ContainerID: a.ContainerID, IfName: a.IfName})
	}
	removed, err := nodeapi.NewClient(c.Socket).GC(ctx, valid)
	if err != nil {
		return err
	}
	if c.IPAM.Type == "" {
		return nil
	}
	ipamStdin, err := ipamConf(ctx, c, args.StdinData)
	if err != nil {
		return err
	}
	path, err := invoke.FindInPath(c.IPAM.Type, filepath.SplitList(os.Getenv("CNI_PATH")))
	if err != nil {
		return err
	}
	var errs []error
	for _, a := range removed {
		err := invoke.ExecPluginWithoutResult(ctx, path, ipamStdin, &invoke.Args{
			Command: "DEL", ContainerID: a.ContainerID, IfName: a.IfName, Path: os.Getenv("CNI_PATH"),
		}, nil)
		if err != nil {
			errs = append(errs, fmt.Errorf("ipam %s: release %s of %s: %w", c.IPAM.Type, a.IfName, a.ContainerID, err))
		}
	}
	return errors.Join(errs...)
}
