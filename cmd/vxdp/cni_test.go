//go:build linux

package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/vxdp/vxdp/internal/admin"
)

// hostLocalDir holds Debian's host-local IPAM plugin (containernetworking-plugins).
const hostLocalDir = "/usr/lib/cni"

// cniTools finds cnitool (on PATH, or where make puts it: bin/cnitool) and host-local,
// and builds vxdp-cni into a CNI_PATH directory of the test's own. As root (CI) a missing
// tool fails the test.
func cniTools(t *testing.T) (cnitool, cniPath string) {
	t.Helper()
	cnitool, err := exec.LookPath("cnitool")
	if err != nil {
		cnitool, _ = filepath.Abs("../../bin/cnitool")
		if _, err := os.Stat(cnitool); err != nil {
			t.Fatalf("no cnitool on PATH nor in bin/ (make bin/cnitool installs it; make test does): %v", err)
		}
	}
	if _, err := os.Stat(filepath.Join(hostLocalDir, "host-local")); err != nil {
		t.Fatalf("no host-local IPAM plugin (Debian package containernetworking-plugins; make test installs it): %v", err)
	}
	dir := t.TempDir()
	out, err := exec.Command("go", "build", "-o", filepath.Join(dir, "vxdp-cni"), "../vxdp-cni").CombinedOutput()
	if err != nil {
		t.Fatalf("build vxdp-cni: %v\n%s", err, out)
	}
	return cnitool, dir + ":" + hostLocalDir
}

// cniNode is one node's CNI setup: the network config that points at its vxdp's socket,
// with an address range of its own in a subnet the nodes share.
type cniNode struct {
	confDir, ipamDir string
	ifname           string // "": eth1
}

// cnitool runs cnitool's verb for the network vxdp-net on container namespace ns, for
// interface eth1 (or n.ifname), and returns its output.
func (c *clusterMesh) cnitool(t *testing.T, tool, cniPath string, n cniNode, verb string, ns string) (string, error) {
	t.Helper()
	ifname := "eth1"
	if n.ifname != "" {
		ifname = n.ifname
	}
	cmd := exec.Command(tool, verb, "vxdp-net", ns)
	cmd.Env = append(os.Environ(), "NETCONFPATH="+n.confDir, "CNI_PATH="+cniPath, "CNI_IFNAME="+ifname)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("cnitool %s on %s: %w: %s", verb, ns, err, out)
	}
	return string(out), nil
}

// TestCNI attaches containers through the CNI plugin with cnitool and Debian's host-local,
// on two vxdp nodes in cluster mode: ADD makes eth1 in the container with host-local's
// address, and the containers reach each other over it; the MAC is published and the other
// node learns it from etcd; CHECK and STATUS pass; DEL removes the port, withdraws the MAC
// everywhere and releases the address, and a second DEL succeeds; a vxdp killed and
// restarted takes its CNI port over and republishes it; a container added while a node is
// down is known to that node when it is back; "port": "veth" makes a veth pair that carries
// traffic and goes with DEL; GC removes every port not valid.
func TestCNI(t *testing.T) {
	c := newClusterMesh(t, "cni", 2)
	tool, cniPath := cniTools(t)
	var addAt func(t *testing.T, i, container int) (netip.Addr, string)
	var nodes []cniNode
	// Node 0 and 1 attach TAPs as eth1; node 0's veth network (index 2) attaches eth2.
	for i := range 3 {
		node, port := i, "tap"
		n := cniNode{confDir: filepath.Join(c.Dir, fmt.Sprintf("net%d", i)), ipamDir: filepath.Join(c.Dir, fmt.Sprintf("ipam%d", i))}
		if i == 2 {
			node, port, n.ifname = 0, "veth", "eth2"
		}
		conf := fmt.Sprintf(`{"cniVersion": "1.1.0", "name": "vxdp-net", "type": "vxdp-cni", "socket": %q,
 "vni": %d, "mtu": 1450, "port": %q, "ipam": {"type": "host-local", "dataDir": %q,
 "ranges": [[{"subnet": "10.44.0.0/24", "rangeStart": "10.44.0.%d", "rangeEnd": "10.44.0.%d"}]]}}`,
			c.API(node), c.VNI, port, n.ipamDir, 10+10*i, 19+10*i)
		if err := os.MkdirAll(n.confDir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(n.confDir, "vxdp-net.conf"), []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, n)
	}
	add := func(t *testing.T, i int) (netip.Addr, string) {
		t.Helper()
		return addAt(t, i, i)
	}
	addAt = func(t *testing.T, i, container int) (netip.Addr, string) {
		t.Helper()
		out, err := c.cnitool(t, tool, cniPath, nodes[i], "add", c.Containers[container].Path())
		if err != nil {
			t.Fatal(err)
		}
		var r current.Result
		if err := json.Unmarshal([]byte(out), &r); err != nil || len(r.IPs) != 1 || len(r.Interfaces) != 1 {
			t.Fatalf("cnitool add on node %d: result %q (%v), want one interface with one address", i, out, err)
		}
		if r.Interfaces[0].Name != cmp.Or(nodes[i].ifname, "eth1") || r.Interfaces[0].Sandbox != c.Containers[container].Path() || r.Interfaces[0].Mac == "" {
			t.Fatalf("cnitool add on node %d: interface %+v", i, r.Interfaces[0])
		}
		a, _ := netip.AddrFromSlice(r.IPs[0].Address.IP)
		return a.Unmap(), r.Interfaces[0].Mac
	}
	ctx := context.Background()
	ip0, mac0 := add(t, 0)
	ip1, mac1 := add(t, 1)
	t.Logf("node0: eth1 %s %s; node1: eth1 %s %s", ip0, mac0, ip1, mac1)

	t.Run("AddReaches", func(t *testing.T) {
		out, err := c.Containers[0].Run(ctx, "ip", "-o", "addr", "show", "dev", "eth1")
		if err != nil || !strings.Contains(out, ip0.String()+"/24") {
			t.Fatalf("eth1 in container 0: %s %v, want %s/24", out, err, ip0)
		}
		waitPing(t, c.Containers[0], ip1, 10*time.Second)
		waitPing(t, c.Containers[1], ip0, 10*time.Second)
	})
	t.Run("MACPublished", func(t *testing.T) {
		c.waitLog(t, 1, 5*time.Second, `msg="cluster: endpoint added"`, "member=node0", "mac="+mac0, "ip="+ip0.String())
		c.waitLog(t, 0, 5*time.Second, `msg="cluster: endpoint added"`, "member=node1", "mac="+mac1, "ip="+ip1.String())
		// Installed as static entries behind the publishing node's VTEP.
		if !c.staticEntry(t, 1, mac0, c.Underlay[0].Addr(), true) || !c.staticEntry(t, 0, mac1, c.Underlay[1].Addr(), true) {
			t.Fatalf("the published MACs are not static entries on the peers")
		}
	})
	t.Run("CheckAndStatus", func(t *testing.T) {
		for _, verb := range []string{"check", "status"} {
			if _, err := c.cnitool(t, tool, cniPath, nodes[0], verb, c.Containers[0].Path()); err != nil {
				t.Fatal(err)
			}
		}
	})
	t.Run("RestartTakesOver", func(t *testing.T) {
		c.vxdp[0].Kill()
		c.waitLog(t, 1, clusterTTL+5*time.Second, `msg="cluster: endpoint removed"`, "member=node0", "mac="+mac0)
		c.start(t, 0, false)
		waitPing(t, c.Containers[1], ip0, 10*time.Second)
		c.waitLog(t, 1, 5*time.Second, `msg="cluster: endpoint added"`, "member=node0", "mac="+mac0)
		if n := len(logLines(c.vxdp[1].Log(), `msg="cluster: endpoint added" cluster=node1 member=node0`)); n != 2 {
			t.Fatalf("node1 saw node0's endpoint added %d times, want 2 (at ADD and after the restart)", n)
		}
	})
	t.Run("DelWithdraws", func(t *testing.T) {
		if _, err := c.cnitool(t, tool, cniPath, nodes[0], "del", c.Containers[0].Path()); err != nil {
			t.Fatal(err)
		}
		// The kill removed it once; the DEL's withdrawal is the second.
		deadline := time.Now().Add(5 * time.Second)
		for len(logLines(c.vxdp[1].Log(), `msg="cluster: endpoint removed" cluster=node1 member=node0`)) < 2 {
			if time.Now().After(deadline) {
				t.Fatal("node1 did not see node0's endpoint withdrawn after DEL")
			}
			time.Sleep(20 * time.Millisecond)
		}
		if c.staticEntry(t, 1, mac0, c.Underlay[0].Addr(), false) {
			t.Fatalf("node1 keeps %s static after the DEL withdrew it", mac0)
		}
		if out, err := c.Containers[0].Run(ctx, "ip", "link", "show", "dev", "eth1"); err == nil {
			t.Fatalf("eth1 still in container 0 after DEL: %s", out)
		}
		if _, err := os.Stat(filepath.Join(nodes[0].ipamDir, "vxdp-net", ip0.String())); !os.IsNotExist(err) {
			t.Fatalf("host-local still holds %s after DEL: %v", ip0, err)
		}
		if _, err := c.cnitool(t, tool, cniPath, nodes[0], "del", c.Containers[0].Path()); err != nil {
			t.Fatalf("a second DEL: %v", err)
		}
	})
	t.Run("AddWhileNodeDown", func(t *testing.T) {
		c.vxdp[1].Kill()
		ip, mac := add(t, 0)
		c.start(t, 1, false)
		// The restarted node1 has it from its first listing.
		c.waitLog(t, 1, 5*time.Second, `msg="cluster: endpoint added"`, "member=node0", "mac="+mac, "ip="+ip.String())
		waitPing(t, c.Containers[1], ip, 10*time.Second)
	})
	t.Run("VethPort", func(t *testing.T) {
		ip, mac := addAt(t, 2, 0)
		out, err := c.Containers[0].Run(ctx, "ip", "-d", "-o", "link", "show", "dev", "eth2")
		if err != nil || !strings.Contains(out, "veth") || !strings.Contains(out, mac) {
			t.Fatalf("eth2 in container 0: %s %v, want a veth with %s", out, err, mac)
		}
		waitPing(t, c.Containers[1], ip, 10*time.Second)
		if _, err := c.cnitool(t, tool, cniPath, nodes[2], "del", c.Containers[0].Path()); err != nil {
			t.Fatal(err)
		}
		if out, err := c.Containers[0].Run(ctx, "ip", "link", "show", "dev", "eth2"); err == nil {
			t.Fatalf("eth2 still in container 0 after DEL: %s", out)
		}
	})
	t.Run("GCRemovesInvalid", func(t *testing.T) {
		// cnitool's GC passes no valid attachments: every port of the network goes.
		if _, err := c.cnitool(t, tool, cniPath, nodes[1], "gc", c.Containers[1].Path()); err != nil {
			t.Fatal(err)
		}
		if out, err := c.Containers[1].Run(ctx, "ip", "link", "show", "dev", "eth1"); err == nil {
			t.Fatalf("eth1 still in container 1 after GC: %s", out)
		}
		if _, err := os.Stat(filepath.Join(nodes[1].ipamDir, "vxdp-net", ip1.String())); !os.IsNotExist(err) {
			t.Fatalf("host-local still holds %s after GC: %v", ip1, err)
		}
		c.waitLog(t, 0, 5*time.Second, `msg="cluster: endpoint removed"`, "member=node1", "mac="+mac1)
		// The static ports stay.
		c.pingMesh(t, 5*time.Second)
	})
}

// staticEntry reports whether node i's /fdb holds mac as a static entry behind remote,
// waiting up to 5 s for that to be want (a view applies asynchronously).
func (c *clusterMesh) staticEntry(t *testing.T, i int, mac string, remote netip.Addr, want bool) bool {
	t.Helper()
	found := false
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		code, b, err := adminGet(c.Hosts[i], adminAddr, "/fdb")
		if err != nil || code != http.StatusOK {
			t.Fatalf("/fdb of node %d: %d %v", i, code, err)
		}
		var doc admin.FDB
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatalf("decode /fdb: %v\n%s", err, b)
		}
		found = false
		for _, v := range doc {
			for _, e := range v.Entries {
				if e.MAC == mac && e.Static && e.Remote == remote.String() {
					found = true
				}
			}
		}
		if found == want || time.Now().After(deadline) {
			return found
		}
	}
}
