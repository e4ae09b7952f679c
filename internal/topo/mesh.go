//go:build linux

package topo

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// MaxMeshHosts bounds a Mesh: its namespace roles h0-h8 and c0-c8.
const MaxMeshHosts = 9

// Mesh is a cluster topology: N hosts on one underlay bridge, each with a container
// namespace behind it, and a switch namespace that holds the bridge and an address on it
// for services every host reaches (etcd). Close removes it all.
type Mesh struct {
	// Prefix starts every namespace name: <prefix>-sw, -h0, -h1, ..., -c0, -c1, ...
	Prefix string
	// Switch holds the bridge Bridge and the address Service on it.
	Switch NS
	// Hosts and Containers are the hosts' namespaces and their containers', by index.
	Hosts, Containers []NS
	// Wire is the name of each host's underlay NIC (one end of a veth whose other end is a
	// port of the bridge).
	Wire string
	// Underlay are the hosts' VTEP addresses on Wire; Overlay the containers' addresses.
	Underlay, Overlay []netip.Prefix
	// Service is the switch namespace's address on the bridge.
	Service netip.Prefix
	// VNI, Port and OverlayMTU are as in Topology.
	VNI        uint32
	Port       uint16
	OverlayMTU int
	// NoStaticPorts leaves the container ports out of VXDPClusterConfig: the containers are
	// then attached through the CNI plugin. Callers may set it before starting vxdp.
	NoStaticPorts bool
	// Dir is a directory of the mesh's own for files (API sockets, CNI configs), removed by
	// Close.
	Dir string

	mu   sync.Mutex
	made []NS
}

// API returns the path of vxdp's API socket on host i, in Dir.
func (m *Mesh) API(i int) string { return filepath.Join(m.Dir, fmt.Sprintf("node%d.sock", i)) }

// isMeshRole reports whether r is the suffix of one of a Mesh's namespace names.
func isMeshRole(r string) bool {
	if r == "sw" {
		return true
	}
	return len(r) == 2 && (r[0] == 'h' || r[0] == 'c') && r[1] >= '0' && r[1] < '0'+MaxMeshHosts
}

// meshBridge is the bridge's name in the switch namespace.
const meshBridge = "br0"

// NewMesh creates a mesh of n hosts (1 to MaxMeshHosts) under prefix (empty:
// Prefix("mesh")): the wire of host i has 192.168.78.(i+1)/24, its container will have
// 10.43.0.(i+1)/24, the switch 192.168.78.254/24. The wire is NIC-like, as Topology's
// (segmentation and checksum offloads off). On error it removes what it made.
func NewMesh(ctx context.Context, prefix string, n int) (*Mesh, error) {
	if n < 1 || n > MaxMeshHosts {
		return nil, fmt.Errorf("create mesh: %d hosts; 1 to %d", n, MaxMeshHosts)
	}
	if prefix == "" {
		prefix = Prefix("mesh")
	}
	if err := validNSPrefix(prefix); err != nil {
		return nil, fmt.Errorf("create mesh: %w", err)
	}
	m := &Mesh{Prefix: prefix, Switch: NS{prefix + "-sw"}, Wire: "ethU",
		Service: netip.MustParsePrefix("192.168.78.254/24"), VNI: DefaultVNI, Port: DefaultPort, OverlayMTU: DefaultOverlayMTU}
	for i := range n {
		m.Hosts = append(m.Hosts, NS{fmt.Sprintf("%s-h%d", prefix, i)})
		m.Containers = append(m.Containers, NS{fmt.Sprintf("%s-c%d", prefix, i)})
		m.Underlay = append(m.Underlay, netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 168, 78, byte(i + 1)}), 24))
		m.Overlay = append(m.Overlay, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 43, 0, byte(i + 1)}), 24))
	}
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return nil, fmt.Errorf("create mesh: %w", err)
	}
	m.Dir = dir
	if err := m.build(ctx); err != nil {
		if cerr := m.Close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
		return nil, fmt.Errorf("create mesh %s: %w", prefix, err)
	}
	return m, nil
}

func (m *Mesh) addNS(ctx context.Context, ns NS) error {
	if _, err := os.Stat(ns.Path()); err == nil {
		return fmt.Errorf("create netns %s: %w", ns, os.ErrExist)
	}
	m.mu.Lock()
	m.made = append(m.made, ns) // before it exists, as Topology.build does
	m.mu.Unlock()
	if _, err := run(hostCmd(ctx, "ip", "netns", "add", ns.Name), "the root netns"); err != nil {
		return err
	}
	_, err := ns.ip(ctx, "link", "set", "lo", "up")
	return err
}

func (m *Mesh) build(ctx context.Context) error {
	if err := m.addNS(ctx, m.Switch); err != nil {
		return err
	}
	for _, args := range [][]string{
		{"link", "add", meshBridge, "type", "bridge"},
		{"addr", "add", m.Service.String(), "dev", meshBridge},
		{"link", "set", meshBridge, "up"},
	} {
		if _, err := m.Switch.ip(ctx, args...); err != nil {
			return err
		}
	}
	for i, h := range m.Hosts {
		if err := m.addNS(ctx, h); err != nil {
			return err
		}
		if err := m.addNS(ctx, m.Containers[i]); err != nil {
			return err
		}
		port := "p" + strconv.Itoa(i)
		if _, err := h.ip(ctx, "link", "add", m.Wire, "numtxqueues", "2", "numrxqueues", "2",
			"type", "veth", "peer", "name", port, "netns", m.Switch.Name); err != nil {
			return err
		}
		if err := setFeatures(ctx, h, m.Wire, isWireOffload, nil); err != nil {
			return err
		}
		if err := setFeatures(ctx, m.Switch, port, isWireOffload, nil); err != nil {
			return err
		}
		for _, args := range [][]string{
			{"link", "set", port, "master", meshBridge},
			{"link", "set", port, "up"},
		} {
			if _, err := m.Switch.ip(ctx, args...); err != nil {
				return err
			}
		}
		for _, args := range [][]string{
			{"addr", "add", m.Underlay[i].String(), "dev", m.Wire},
			{"link", "set", m.Wire, "up"},
		} {
			if _, err := h.ip(ctx, args...); err != nil {
				return err
			}
		}
	}
	return nil
}

// Close deletes the mesh's namespaces, killing what runs in them (etcd, vxdp, iperf3).
// It is idempotent.
func (m *Mesh) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	for i := len(m.made) - 1; i >= 0; i-- {
		if err := deleteNS(m.made[i]); err != nil {
			errs = append(errs, err)
			continue
		}
		m.made = m.made[:i]
	}
	if m.Dir != "" {
		if err := os.RemoveAll(m.Dir); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("close mesh %s: %w", m.Prefix, errors.Join(errs...))
	}
	return nil
}

// VXDPClusterConfig returns a config for vxdp on host i in a cluster over etcd at
// etcdURL: the wire as the underlay, VNI with a TAP that becomes container i's eth0 (kept
// on exit, so a restarted vxdp takes it over; none with NoStaticPorts), no static
// remotes, node name "node<i>",
// the API socket API(i). extra is appended verbatim (top-level fields).
func (m *Mesh) VXDPClusterConfig(i int, etcdURL string, leaseTTL time.Duration, extra string) string {
	ports := ""
	if !m.NoStaticPorts {
		ports = fmt.Sprintf(`    ports:
      - tap: vxp0
        netns: %s
        ifname: eth0
        mtu: %d
`, m.Containers[i].Path(), m.OverlayMTU)
	}
	return fmt.Sprintf(`underlay: %s
local: %s
port: %d
ports_on_exit: keep
api: %s
cluster:
  etcd: [%s]
  node: node%d
  lease_ttl: %s
networks:
  - vni: %d
%s%s`, m.Wire, m.Underlay[i].Addr(), m.Port, m.API(i), etcdURL, i, leaseTTL, m.VNI, ports, extra)
}

// StartVXDP runs the vxdp binary on host i with config and waits until vxdp says it is
// running; with configure, it then gives container i's eth0 its address.
func (m *Mesh) StartVXDP(ctx context.Context, i int, binary, config string, configure bool) (*VXDP, error) {
	v, err := startVXDPIn(ctx, m.Hosts[i], "h"+strconv.Itoa(i), binary, config, m.Prefix)
	if err != nil {
		return nil, err
	}
	if configure {
		c := m.Containers[i]
		for _, args := range [][]string{
			{"link", "set", "dev", "eth0", "mtu", strconv.Itoa(m.OverlayMTU)},
			{"addr", "replace", m.Overlay[i].String(), "dev", "eth0"},
			{"link", "set", "dev", "eth0", "up"},
		} {
			if _, err := c.ip(ctx, args...); err != nil {
				v.Kill()
				return nil, fmt.Errorf("configure eth0 in %s: %w", c, err)
			}
		}
	}
	return v, nil
}

// startVXDPIn runs the vxdp binary in host with config and waits until it logs that it
// runs, or exits.
func startVXDPIn(ctx context.Context, host NS, name, binary, config, tmpPrefix string) (*VXDP, error) {
	dir, err := os.MkdirTemp("", tmpPrefix+"-vxdp")
	if err != nil {
		return nil, fmt.Errorf("start vxdp: %w", err)
	}
	cfg := filepath.Join(dir, "vxdp-"+name+".yaml")
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start vxdp: %w", err)
	}
	v := &VXDP{Config: cfg, dir: dir, log: &syncBuffer{}, done: make(chan struct{})}
	v.cmd = host.Exec(context.Background(), binary, "run", "-config", cfg)
	v.cmd.Stdout, v.cmd.Stderr = v.log, v.log
	if err := v.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start vxdp in %s: %w", host, err)
	}
	go func() {
		v.err = v.cmd.Wait()
		os.RemoveAll(dir)
		close(v.done)
	}()
	upCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	ready := make(chan error, 1)
	go func() { ready <- v.waitLog(upCtx, vxdpRunning) }()
	select {
	case err = <-ready:
	case <-v.done:
		err = fmt.Errorf("vxdp exited: %v", v.err)
	}
	if err != nil {
		v.Kill()
		return nil, fmt.Errorf("start vxdp in %s: %w\n%s", host, err, v.Log())
	}
	return v, nil
}
