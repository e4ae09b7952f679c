//go:build linux

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/vxdp/vxdp/internal/topo"
)

// clusterNodes is the demo cluster's size, and clusterTTL its lease: short, so that the
// node loss shows within the demo.
const (
	clusterNodes = 3
	clusterTTL   = 5 * time.Second
)

// clusterDemo is make demo-cluster: three hosts on one underlay bridge with etcd beside
// them, vxdp in cluster mode on each with no static remotes, containers attached with
// cnitool through vxdp-cni and Debian's host-local, a ping mesh and an iperf3 flow, one
// node killed and restarted, and everything removed at the end.
type clusterDemo struct {
	binary, cni, cnitool string
	d                    time.Duration
	mesh                 *topo.Mesh
	etcd                 *topo.Etcd
	vxdp                 []*topo.VXDP
	cniPath              string
	ips                  []netip.Addr
}

func runCluster(ctx context.Context, binary, cni, cnitool string, d time.Duration) (err error) {
	for _, f := range []string{binary, cni, cnitool} {
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("%w (make demo-cluster builds it)", err)
		}
	}
	c := &clusterDemo{binary: binary, cni: cni, cnitool: cnitool, d: d, vxdp: make([]*topo.VXDP, clusterNodes)}
	if c.mesh, err = topo.NewMesh(ctx, topo.Prefix("democ"), clusterNodes); err != nil {
		return err
	}
	defer func() {
		for _, v := range c.vxdp {
			if v != nil {
				v.Stop()
			}
		}
		if c.etcd != nil {
			c.etcd.Close()
		}
		if cerr := c.mesh.Close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
		fmt.Println("removed: vxdp, etcd, the namespaces", c.mesh.Prefix+"-*", "and", c.mesh.Dir)
	}()
	c.mesh.NoStaticPorts = true
	if c.etcd, err = topo.StartEtcd(ctx, &c.mesh.Switch, c.mesh.Service.Addr()); err != nil {
		return err
	}
	fmt.Printf("underlay: bridge in %s; etcd %s (Debian's etcd-server) at %s\n", c.mesh.Switch, etcdVersion(), c.etcd.ClientURL)
	for i := range clusterNodes {
		if err := c.start(ctx, i); err != nil {
			return err
		}
		fmt.Printf("node%d: vxdp on %s, VTEP %s, no static remotes, lease %v, API %s\n",
			i, c.mesh.Hosts[i], c.mesh.Underlay[i].Addr(), clusterTTL, c.mesh.API(i))
	}
	// vxdp-cni and host-local side by side, as CNI_PATH wants them.
	c.cniPath = filepath.Join(c.mesh.Dir, "cni-bin") + ":/usr/lib/cni"
	if err := os.MkdirAll(filepath.Join(c.mesh.Dir, "cni-bin"), 0o755); err != nil {
		return err
	}
	if err := copyFile(cni, filepath.Join(c.mesh.Dir, "cni-bin", "vxdp-cni")); err != nil {
		return err
	}
	for i := range clusterNodes {
		ip, mac, err := c.attach(ctx, i)
		if err != nil {
			return err
		}
		c.ips = append(c.ips, ip)
		fmt.Printf("container %s: cnitool add -> eth0 %s %s (vxdp-cni, host-local)\n", c.mesh.Containers[i], ip, mac)
	}
	if err := c.pingMesh(ctx, 10*time.Second); err != nil {
		return err
	}
	flow := topo.Iperf3{Server: c.mesh.Containers[1], Client: c.mesh.Containers[0], Addr: c.ips[1].String(), Duration: c.d}
	res, err := flow.Run(ctx)
	if err != nil {
		return fmt.Errorf("iperf3 container 0 -> 1: %w", err)
	}
	fmt.Printf("iperf3 TCP container 0 -> 1: %.2f Gbit/s (%d retransmits)\n", res.BitsPerSecond/1e9, res.Retransmits)

	c.vxdp[2].Kill()
	killed := time.Now()
	c.vxdp[2] = nil
	fmt.Printf("node2: vxdp killed with SIGKILL\n")
	for i := range 2 {
		at, err := c.waitLog(ctx, i, clusterTTL+10*time.Second, `msg="cluster: member left"`, "member=node2")
		if err != nil {
			return err
		}
		fmt.Printf("node%d: node2 left its remotes %v after the kill (lease %v)\n", i, at.Sub(killed).Round(10*time.Millisecond), clusterTTL)
	}
	started := time.Now()
	if err := c.start(ctx, 2); err != nil {
		return err
	}
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if _, err := c.mesh.Containers[0].Ping(pctx, c.ips[2]); err != nil {
		return fmt.Errorf("container 0 -> 2 after node2's restart: %w", err)
	}
	fmt.Printf("node2: restarted, took its port over; container 0 reached container 2 %v after the start\n",
		time.Since(started).Round(10*time.Millisecond))
	if err := c.pingMesh(ctx, 10*time.Second); err != nil {
		return err
	}
	for i := range clusterNodes {
		if _, err := c.cnitoolRun(ctx, i, "del"); err != nil {
			return err
		}
	}
	fmt.Println("cnitool del: every container's eth0 removed, addresses released, MACs withdrawn")
	return nil
}

// etcdVersion returns the etcd server's version line, for the demo's output.
func etcdVersion() string {
	out, err := exec.Command(topo.EtcdBinary, "--version").Output()
	if err != nil {
		return "?"
	}
	first, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimPrefix(first, "etcd Version: ")
}

func (c *clusterDemo) start(ctx context.Context, i int) error {
	v, err := c.mesh.StartVXDP(ctx, i, c.binary, c.mesh.VXDPClusterConfig(i, c.etcd.ClientURL, clusterTTL, ""), false)
	if err != nil {
		return err
	}
	c.vxdp[i] = v
	return nil
}

// netConfDir writes node i's CNI network config (its vxdp's socket; a host-local range of
// its own in the subnet the nodes share) and returns its directory.
func (c *clusterDemo) netConfDir(i int) (string, error) {
	dir := filepath.Join(c.mesh.Dir, fmt.Sprintf("net.d-%d", i))
	conf := fmt.Sprintf(`{"cniVersion": "1.1.0", "name": "vxdp-net", "type": "vxdp-cni", "socket": %q,
 "vni": %d, "mtu": %d, "ipam": {"type": "host-local", "dataDir": %q,
 "ranges": [[{"subnet": "10.42.0.0/16", "rangeStart": "10.42.%d.2", "rangeEnd": "10.42.%d.254"}]]}}`,
		c.mesh.API(i), c.mesh.VNI, c.mesh.OverlayMTU, filepath.Join(c.mesh.Dir, fmt.Sprintf("ipam-%d", i)), i+1, i+1)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	return dir, os.WriteFile(filepath.Join(dir, "vxdp-net.conf"), []byte(conf), 0o644)
}

func (c *clusterDemo) cnitoolRun(ctx context.Context, i int, verb string) (string, error) {
	dir, err := c.netConfDir(i)
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, c.cnitool, verb, "vxdp-net", c.mesh.Containers[i].Path())
	cmd.Env = append(os.Environ(), "NETCONFPATH="+dir, "CNI_PATH="+c.cniPath, "CNI_IFNAME=eth0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("cnitool %s on %s: %w: %s", verb, c.mesh.Containers[i], err, out)
	}
	return string(out), nil
}

func (c *clusterDemo) attach(ctx context.Context, i int) (netip.Addr, string, error) {
	out, err := c.cnitoolRun(ctx, i, "add")
	if err != nil {
		return netip.Addr{}, "", err
	}
	var r current.Result
	if err := json.Unmarshal([]byte(out), &r); err != nil || len(r.IPs) == 0 || len(r.Interfaces) == 0 {
		return netip.Addr{}, "", fmt.Errorf("cnitool add on %s: result %q: %v", c.mesh.Containers[i], out, err)
	}
	ip, _ := netip.AddrFromSlice(r.IPs[0].Address.IP)
	return ip.Unmap(), r.Interfaces[0].Mac, nil
}

func (c *clusterDemo) pingMesh(ctx context.Context, d time.Duration) error {
	var rtts []string
	for i := range clusterNodes {
		for j := range clusterNodes {
			if i == j {
				continue
			}
			pctx, cancel := context.WithTimeout(ctx, d)
			rtt, err := c.mesh.Containers[i].Ping(pctx, c.ips[j])
			cancel()
			if err != nil {
				return fmt.Errorf("ping container %d -> %d: %w", i, j, err)
			}
			rtts = append(rtts, fmt.Sprintf("%d->%d %v", i, j, rtt.Round(time.Microsecond)))
		}
	}
	fmt.Println("ping mesh:", strings.Join(rtts, ", "))
	return nil
}

// waitLog waits until vxdp on host i has logged a line with every one of texts, and
// returns the line's time.
func (c *clusterDemo) waitLog(ctx context.Context, i int, d time.Duration, texts ...string) (time.Time, error) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		for _, l := range strings.Split(c.vxdp[i].Log(), "\n") {
			all := true
			for _, s := range texts {
				all = all && strings.Contains(l, s)
			}
			if all {
				f, _, _ := strings.Cut(strings.TrimPrefix(l, "time="), " ")
				return time.Parse(time.RFC3339Nano, f)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Time{}, fmt.Errorf("node%d logged no line with %q within %v", i, texts, d)
}

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o755)
}
