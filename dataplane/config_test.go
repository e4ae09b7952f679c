package dataplane

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vxdp/vxdp/dataplane/packet"
)

const minimalConfig = `
underlay: ethB
local: 192.168.77.2
port: 4789
networks:
  - vni: 42
    remotes: [192.168.77.1]
    ports:
      - tap: vxp0
        netns: /run/netns/cB
        ifname: eth0
        mtu: 1450
`

func TestParseConfigMinimal(t *testing.T) {
	c, err := ParseConfig(strings.NewReader(minimalConfig))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Underlay:  "ethB",
		Local:     netip.MustParseAddr("192.168.77.2"),
		Port:      4789,
		FDBMax:    DefaultFDBMax,
		FDBAgeing: DefaultFDBAgeing,
	}
	if c.Underlay != want.Underlay || c.Local != want.Local || c.Port != want.Port ||
		c.FDBMax != want.FDBMax || c.FDBAgeing != want.FDBAgeing {
		t.Errorf("got %+v, want %+v", c, want)
	}
	if len(c.Networks) != 1 {
		t.Fatalf("networks: got %d, want 1", len(c.Networks))
	}
	n := c.Networks[0]
	if n.VNI != 42 || len(n.Remotes) != 1 || n.Remotes[0] != netip.MustParseAddr("192.168.77.1") {
		t.Errorf("network: got %+v", n)
	}
	if len(n.Ports) != 1 || n.Ports[0] != (Port{TAP: "vxp0", Netns: "/run/netns/cB", Ifname: "eth0", MTU: 1450}) {
		t.Errorf("ports: got %+v", n.Ports)
	}
}

func TestParseConfigDefaults(t *testing.T) {
	c, err := ParseConfig(strings.NewReader(`
underlay: eth0
local: "fd00::2"
fdb_max: 10
fdb_ageing: 30s
networks:
  - vni: 7
    ports: [{tap: t0}]
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Port != DefaultPort || c.FDBMax != 10 || c.FDBAgeing != 30*time.Second {
		t.Errorf("got port %d fdb_max %d fdb_ageing %v", c.Port, c.FDBMax, c.FDBAgeing)
	}
	if p := c.Networks[0].Ports[0]; p.MTU != DefaultMTU || p.name() != "t0" {
		t.Errorf("port defaults: got %+v", p)
	}
	if !c.KeepPorts || !c.Offload || !c.TAPIOUring || !c.RunToCompletion {
		t.Errorf("ports_on_exit, offload, tap_io_uring and run_to_completion defaults: keep %v, offload %v, io_uring %v, run to completion %v; want all",
			c.KeepPorts, c.Offload, c.TAPIOUring, c.RunToCompletion)
	}
	off, err := ParseConfig(strings.NewReader("run_to_completion: false\n" + minimalConfig))
	if err != nil || off.RunToCompletion {
		t.Errorf("run_to_completion: false: got %+v, %v", off, err)
	}
	for _, tc := range []struct {
		yaml string
		keep bool
	}{{"ports_on_exit: keep\n", true}, {"ports_on_exit: remove\n", false}} {
		c, err := ParseConfig(strings.NewReader(minimalConfig + tc.yaml))
		if err != nil || c.KeepPorts != tc.keep {
			t.Errorf("%q: keep %v, %v", tc.yaml, c != nil && c.KeepPorts, err)
		}
	}
	for _, tc := range []struct {
		yaml string
		on   bool
	}{{"tap_io_uring: true\n", true}, {"tap_io_uring: false\n", false}} {
		c, err := ParseConfig(strings.NewReader(tc.yaml + minimalConfig))
		if err != nil || c.TAPIOUring != tc.on {
			t.Errorf("%q: tap_io_uring %v, %v", tc.yaml, c != nil && c.TAPIOUring, err)
		}
	}
	if _, err := ParseConfig(strings.NewReader("tap_io_uring: sometimes\n" + minimalConfig)); !errors.Is(err, ErrConfig) {
		t.Errorf("tap_io_uring: sometimes: %v, want ErrConfig", err)
	}
}

func TestParseConfigErrors(t *testing.T) {
	replace := func(old, new string) string { return strings.Replace(minimalConfig, old, new, 1) }
	cases := []struct {
		name, yaml, want string
	}{
		{"empty", "", "empty"},
		{"unknown top field", minimalConfig + "colour: blue\n", "unknown field colour"},
		{"unknown port field", replace("mtu: 1450", "mtu: 1450\n        speed: 10"), "unknown field speed"},
		{"no underlay", replace("underlay: ethB", ""), "underlay: is required"},
		{"long underlay", replace("underlay: ethB", "underlay: abcdefghijklmnop"), "underlay:"},
		{"no local", replace("local: 192.168.77.2", ""), "local: is required"},
		{"bad local", replace("local: 192.168.77.2", "local: 192.168.77"), "local:"},
		{"multicast local", replace("local: 192.168.77.2", "local: 239.1.1.1"), "local: 239.1.1.1 is not a unicast"},
		{"port zero", replace("port: 4789", "port: 0"), "port: 0"},
		{"port big", replace("port: 4789", "port: 70000"), "port: 70000"},
		{"port text", replace("port: 4789", "port: vxlan"), "vxlan"},
		{"no networks", strings.Split(minimalConfig, "networks:")[0], "networks: is required"},
		{"vni zero", replace("vni: 42", "vni: 0"), "networks[0].vni: 0 is out of range"},
		{"vni big", replace("vni: 42", "vni: 16777216"), "networks[0].vni: 16777216 is out of range"},
		{"no vni", replace("- vni: 42\n    remotes", "- remotes"), "networks[0].vni: is required"},
		{"bad remote", replace("[192.168.77.1]", "[192.168.77.1, bogus]"), "networks[0].remotes[1]: \"bogus\""},
		{"remote is local", replace("[192.168.77.1]", "[192.168.77.2]"), "networks[0].remotes[0]: 192.168.77.2 is this node's own"},
		{"remote family", replace("[192.168.77.1]", "[\"fd00::1\"]"), "networks[0].remotes[0]: fd00::1 is not of the same address family"},
		{"remote twice", replace("[192.168.77.1]", "[192.168.77.1, 192.168.77.1]"), "networks[0].remotes[1]: 192.168.77.1 appears twice"},
		{"no tap", replace("- tap: vxp0\n        netns", "- netns"), "networks[0].ports[0].tap: is required"},
		{"bad ifname", replace("ifname: eth0", "ifname: eth/0"), "networks[0].ports[0].ifname:"},
		{"relative netns", replace("netns: /run/netns/cB", "netns: cB"), "networks[0].ports[0].netns:"},
		{"mtu small", replace("mtu: 1450", "mtu: 20"), "networks[0].ports[0].mtu: 20 is out of range"},
		{"dup vni", minimalConfig + "  - vni: 42\n    remotes: [192.168.77.3]\n", "networks[1].vni: 42 appears twice"},
		{"dup tap", minimalConfig + "  - vni: 43\n    ports: [{tap: vxp0}]\n", "networks[1].ports[0].tap: \"vxp0\" appears twice"},
		{"dup name in netns", minimalConfig + "  - vni: 43\n    ports: [{tap: vxp1, netns: /run/netns/cB, ifname: eth0}]\n", "networks[1].ports[0].ifname: \"eth0\" is used twice"},
		{"tap and veth", replace("- tap: vxp0", "- tap: vxp0\n        veth: vxv0"), "networks[0].ports[0]: has both tap and veth"},
		{"bad veth", replace("- tap: vxp0", "- veth: vxv0/1"), "networks[0].ports[0].veth: \"vxv0/1\" is not a valid interface name"},
		{"veth mtu", strings.Replace(replace("- tap: vxp0", "- veth: vxv0"), "mtu: 1450", "mtu: 9001", 1), "networks[0].ports[0].mtu: 9001 is out of range (68-9000)"},
		{"veth without netns or ifname", replace("- tap: vxp0\n        netns: /run/netns/cB\n        ifname: eth0", "- veth: vxv0"), "networks[0].ports[0].ifname: is required for a veth without netns"},
		{"veth named as its peer", replace("- tap: vxp0\n        netns: /run/netns/cB\n        ifname: eth0", "- veth: vxv0\n        ifname: vxv0"), "networks[0].ports[0].veth: \"vxv0\" is used twice in vxdp's network namespace"},
		{"veth named as a tap", minimalConfig + "  - vni: 43\n    ports: [{veth: vxp0, netns: /run/netns/cA}]\n", "networks[1].ports[0].veth: \"vxp0\" appears twice"},
		{"veth named as a peer", minimalConfig + "  - vni: 43\n    ports: [{veth: vxv0, ifname: vxv1}, {veth: vxv1, netns: /run/netns/cA}]\n", "networks[1].ports[1].veth: \"vxv1\" is used twice in vxdp's network namespace"},
		{"empty vni", minimalConfig + "  - vni: 43\n", "networks[1]: VNI 43 has neither remotes nor ports"},
		{"bad ageing", replace("port: 4789", "port: 4789\nfdb_ageing: 10ms"), "fdb_ageing:"},
		{"ports on exit", replace("port: 4789", "port: 4789\nports_on_exit: delete"), "ports_on_exit: \"delete\" is neither keep nor remove"},
		{"admin no port", replace("port: 4789", "port: 4789\nadmin: 127.0.0.1"), "admin: \"127.0.0.1\" is not host:port"},
		{"admin port zero", replace("port: 4789", "port: 4789\nadmin: 127.0.0.1:0"), "admin: \"127.0.0.1:0\": port \"0\" is not 1-65535"},
		{"admin no host", replace("port: 4789", "port: 4789\nadmin: \":9477\""), "admin: \":9477\" has no host"},
		{"admin host name", replace("port: 4789", "port: 4789\nadmin: metrics.example:9477"), "admin: \"metrics.example:9477\": host"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig(strings.NewReader(tc.yaml))
			if err == nil {
				t.Fatalf("no error, want one containing %q", tc.want)
			}
			if !errors.Is(err, ErrConfig) {
				t.Errorf("error %q does not wrap ErrConfig", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

// FuzzParseConfig checks that no input panics the config parser and that every error it
// returns is a config error, never a crash or an unwrapped failure.
func FuzzParseConfig(f *testing.F) {
	f.Add(minimalConfig)
	f.Add("underlay: eth0\nlocal: \"fd00::2\"\nnetworks:\n  - vni: 7\n    ports: [{tap: t0}]\n")
	f.Add("underlay: [a]\n")
	f.Add("networks: {vni: 1}\n")
	f.Add("local: 1.2.3.4\nport: -1\n")
	f.Add("run_to_completion: false\n" + minimalConfig)
	f.Add("run_to_completion: maybe\n" + minimalConfig)
	f.Add("underlay: eth0\nlocal: 192.168.77.2\ncluster: {etcd: [\"http://10.0.0.1:2379\"], node: a, lease_ttl: 3s}\nnetworks: [{vni: 1}]\n")
	f.Add("ttl: inherit\ntos: 0x88\ndf: set\nsrcport: [1000, 2000]\nudp_checksum: true\nlearning: false\ntap_io_uring: false\n" + minimalConfig +
		"    fdb: [{mac: \"02:aa:00:00:00:01\", remote: 192.168.77.1}]\n" +
		"    neighbours: [{ip: 10.42.0.1, mac: \"02:aa:00:00:00:01\"}, {ip: \"fd42::1\", mac: \"02:aa:00:00:00:02\"}]\n" +
		"    neigh_suppress: true\n")
	f.Fuzz(func(t *testing.T, yaml string) {
		c, err := ParseConfig(strings.NewReader(yaml))
		if err != nil {
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("error %q does not wrap ErrConfig", err)
			}
			return
		}
		if c.Underlay == "" || !c.Local.IsValid() || c.Port == 0 || len(c.Networks) == 0 {
			t.Fatalf("accepted an incomplete config: %+v", c)
		}
		if c.SrcPorts.Min == 0 || c.SrcPorts.Min > c.SrcPorts.Max || c.Header.DF > packet.DFInherit {
			t.Fatalf("accepted srcport %v, df %d", c.SrcPorts, c.Header.DF)
		}
		for _, n := range c.Networks {
			if n.VNI == 0 || n.VNI >= 1<<24 {
				t.Fatalf("accepted VNI %d", n.VNI)
			}
			macs := map[[6]byte]bool{}
			for _, e := range n.FDB {
				if e.MAC[0]&1 != 0 || e.MAC == [6]byte{} || macs[e.MAC] || !slices.Contains(n.Remotes, e.Remote) {
					t.Fatalf("accepted static entry %+v", e)
				}
				macs[e.MAC] = true
			}
			ips := map[netip.Addr]bool{}
			for _, nb := range n.Neighbours {
				if nb.MAC[0]&1 != 0 || nb.MAC == [6]byte{} || ips[nb.IP] || !nb.IP.IsValid() || nb.IP.IsMulticast() {
					t.Fatalf("accepted neighbour %+v", nb)
				}
				ips[nb.IP] = true
			}
			for _, p := range n.Ports {
				if (p.TAP == "") == (p.Veth == "") || p.MTU < 68 || (p.Veth != "" && p.MTU > MaxVethMTU) {
					t.Fatalf("accepted port %+v", p)
				}
			}
		}
	})
}

// TestParseConfigAdmin checks the admin field: its default, an explicit address, and the empty
// string that disables the admin server.
func TestParseConfigAdmin(t *testing.T) {
	for _, tc := range []struct{ line, want string }{
		{"", DefaultAdmin},
		{"admin:\n", DefaultAdmin}, // null: the default, as for every other field
		{"admin: \"\"\n", ""},
		{"admin: \"[::1]:9100\"\n", "[::1]:9100"},
		{"admin: localhost:9100\n", "localhost:9100"},
		{"admin: 0.0.0.0:9477\n", "0.0.0.0:9477"},
	} {
		c, err := ParseConfig(strings.NewReader(tc.line + minimalConfig))
		if err != nil {
			t.Errorf("%q: %v", tc.line, err)
			continue
		}
		if c.Admin != tc.want {
			t.Errorf("%q: admin %q, want %q", tc.line, c.Admin, tc.want)
		}
	}
}

func TestParseConfigVeth(t *testing.T) {
	c, err := ParseConfig(strings.NewReader(minimalConfig + `  - vni: 43
    ports:
      - veth: vxv0
        netns: /run/netns/cA
        mtu: 3506
      - veth: vxv1
        ifname: vxv1c
`))
	if err != nil {
		t.Fatal(err)
	}
	want := []Port{
		{Veth: "vxv0", Netns: "/run/netns/cA", MTU: 3506},
		{Veth: "vxv1", Ifname: "vxv1c", MTU: DefaultMTU},
	}
	got := c.Networks[1].Ports
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("ports %+v, want %+v", got, want)
	}
	// The peer is named as the host end unless ifname says otherwise; the device vxdp
	// creates is the host end.
	if got[0].name() != "vxv0" || got[0].dev() != "vxv0" || got[1].name() != "vxv1c" || got[1].dev() != "vxv1" {
		t.Errorf("names: %q/%q, %q/%q", got[0].name(), got[0].dev(), got[1].name(), got[1].dev())
	}
	if tp := c.Networks[0].Ports[0]; tp.dev() != "vxp0" || tp.name() != "eth0" {
		t.Errorf("tap port names: %q/%q", tp.dev(), tp.name())
	}
}

// TestParseConfigOptions checks the fields named after iproute2's vxlan options, their
// defaults, and the per-network static entries and neighbours.
func TestParseConfigOptions(t *testing.T) {
	c, err := ParseConfig(strings.NewReader(minimalConfig))
	if err != nil {
		t.Fatal(err)
	}
	if c.Header != packet.DefaultHeaderOptions || c.SrcPorts != packet.DefaultPortRange || c.NoLearning {
		t.Errorf("defaults: header %+v srcport %v nolearning %v", c.Header, c.SrcPorts, c.NoLearning)
	}
	n := c.Networks[0]
	if len(n.FDB) != 0 || len(n.Neighbours) != 0 || n.NeighSuppress {
		t.Errorf("network defaults: %+v", n)
	}
	for _, tc := range []struct {
		yaml   string
		header packet.HeaderOptions
		ports  packet.PortRange
		nolrn  bool
	}{
		{"ttl: 3\ntos: 0x88\ndf: set\nudp_checksum: true\n", packet.HeaderOptions{TTL: 3, TOS: 0x88, DF: packet.DFSet, UDPChecksum: true}, packet.DefaultPortRange, false},
		{"ttl: inherit\ntos: inherit\ndf: inherit\n", packet.HeaderOptions{TOSInherit: true, DF: packet.DFInherit}, packet.DefaultPortRange, false},
		{"ttl: 255\ntos: 184\ndf: unset\nudp_checksum: false\n", packet.HeaderOptions{TTL: 255, TOS: 184}, packet.DefaultPortRange, false},
		{"srcport: [1000, 2000]\nlearning: false\n", packet.DefaultHeaderOptions, packet.PortRange{Min: 1000, Max: 2000}, true},
		{"srcport: [7, 7]\nlearning: true\n", packet.DefaultHeaderOptions, packet.PortRange{Min: 7, Max: 7}, false},
	} {
		c, err := ParseConfig(strings.NewReader(tc.yaml + minimalConfig))
		if err != nil {
			t.Errorf("%q: %v", tc.yaml, err)
			continue
		}
		if c.Header != tc.header || c.SrcPorts != tc.ports || c.NoLearning != tc.nolrn {
			t.Errorf("%q: header %+v srcport %v nolearning %v", tc.yaml, c.Header, c.SrcPorts, c.NoLearning)
		}
	}
	c, err = ParseConfig(strings.NewReader(minimalConfig + `    fdb:
      - {mac: "02:aa:00:00:00:01", remote: 192.168.77.1}
      - {mac: "02:AA:00:00:00:02", remote: "::ffff:192.168.77.1"}
    neighbours:
      - {ip: 10.42.0.1, mac: "02:aa:00:00:00:01"}
      - {ip: "fd42::1", mac: "02:aa:00:00:00:01"}
    neigh_suppress: true
`))
	if err != nil {
		t.Fatal(err)
	}
	n = c.Networks[0]
	r := netip.MustParseAddr("192.168.77.1")
	mac1, mac2 := [6]byte{2, 0xaa, 0, 0, 0, 1}, [6]byte{2, 0xaa, 0, 0, 0, 2}
	if len(n.FDB) != 2 || n.FDB[0] != (StaticEntry{mac1, r}) || n.FDB[1] != (StaticEntry{mac2, r}) {
		t.Errorf("fdb %+v", n.FDB)
	}
	if len(n.Neighbours) != 2 || n.Neighbours[0] != (Neighbour{netip.MustParseAddr("10.42.0.1"), mac1}) ||
		n.Neighbours[1] != (Neighbour{netip.MustParseAddr("fd42::1"), mac1}) || !n.NeighSuppress {
		t.Errorf("neighbours %+v suppress %v", n.Neighbours, n.NeighSuppress)
	}
}

func TestParseConfigOptionErrors(t *testing.T) {
	net0 := func(s string) string { return minimalConfig + s }
	cases := []struct{ yaml, want string }{
		{"ttl: 0\n" + minimalConfig, `ttl: "0" is neither 1-255 nor inherit`},
		{"ttl: 256\n" + minimalConfig, `ttl: "256"`},
		{"ttl: auto\n" + minimalConfig, `ttl: "auto"`},
		{"tos: 256\n" + minimalConfig, `tos: "256" is neither 0-255 nor inherit`},
		{"tos: -1\n" + minimalConfig, `tos: "-1"`},
		{"df: yes\n" + minimalConfig, `df: "yes" is none of unset, set, inherit`},
		{"srcport: [1]\n" + minimalConfig, "srcport: [1] is not a range"},
		{"srcport: [2000, 1000]\n" + minimalConfig, "srcport: [2000, 1000] is not a range of UDP ports"},
		{"srcport: [0, 10]\n" + minimalConfig, "srcport: [0, 10]"},
		{"srcport: [1, 65536]\n" + minimalConfig, "srcport: [1, 65536]"},
		{"srcport: 5000\n" + minimalConfig, "srcport: 5000 is not a list"},
		{"udp_checksum: maybe\n" + minimalConfig, "maybe"},
		{"learning: 2\n" + minimalConfig, "learning: 2 is not true or false"},
		{net0("    neigh_suppress: sometimes\n"), "networks[0].neigh_suppress: sometimes is not true or false"},
		{net0("    fdb: {mac: \"02:aa:00:00:00:01\"}\n"), "networks[0].fdb"},
		{net0("    fdb: [{mac: [1, 2], remote: 192.168.77.1}]\n"), "networks[0].fdb[0].mac"},
		{strings.Replace(minimalConfig, "mtu: 1450", "mtu: big", 1), "networks[0].ports[0].mtu: big is not a number"},
		{net0("    fdb: [{mac: \"02:aa:00:00:00:01\", remote: 192.168.77.9}]\n"), "networks[0].fdb[0].remote: 192.168.77.9 is not one of the VNI's remotes"},
		{net0("    fdb: [{mac: \"02:aa:00:00:00:01\", remote: nowhere}]\n"), `networks[0].fdb[0].remote: "nowhere" is not an IP address`},
		{net0("    fdb: [{mac: \"01:aa:00:00:00:01\", remote: 192.168.77.1}]\n"), "networks[0].fdb[0].mac: 01:aa:00:00:00:01 is not a unicast address"},
		{net0("    fdb: [{mac: \"00:00:00:00:00:00\", remote: 192.168.77.1}]\n"), "networks[0].fdb[0].mac: 00:00:00:00:00:00 is not a unicast"},
		{net0("    fdb: [{mac: \"02:aa\", remote: 192.168.77.1}]\n"), `networks[0].fdb[0].mac: "02:aa" is not a MAC address`},
		{net0("    fdb: [{mac: \"02:aa:00:00:00:01\", remote: 192.168.77.1}, {mac: \"02:aa:00:00:00:01\", remote: 192.168.77.1}]\n"), "networks[0].fdb[1].mac: 02:aa:00:00:00:01 appears twice"},
		{net0("    fdb: [{mac: \"02:aa:00:00:00:01\"}]\n"), `networks[0].fdb[0].remote: "" is not an IP address`},
		{net0("    neighbours: [{ip: 10.0.0.1, mac: \"ff:ff:ff:ff:ff:ff\"}]\n"), "networks[0].neighbours[0].mac: ff:ff:ff:ff:ff:ff is not a unicast address"},
		{net0("    neighbours: [{ip: 224.0.0.1, mac: \"02:aa:00:00:00:01\"}]\n"), "networks[0].neighbours[0].ip: 224.0.0.1 is not a unicast address"},
		{net0("    neighbours: [{ip: 10.0.0.1, mac: \"02:aa:00:00:00:01\"}, {ip: 10.0.0.1, mac: \"02:aa:00:00:00:02\"}]\n"), "networks[0].neighbours[1].ip: 10.0.0.1 appears twice"},
		{net0("    neighbours: [{ip: 10.0.0, mac: \"02:aa:00:00:00:01\"}]\n"), `networks[0].neighbours[0].ip: "10.0.0" is not an IP address`},
		{net0("    neighbours: [{ip: 10.0.0.1, mac: \"02:aa:00:00:00:01\", ttl: 3}]\n"), "unknown field ttl"},
		{net0("    neigh_suppress: sometimes\n"), "sometimes"},
	}
	for _, tc := range cases {
		_, err := ParseConfig(strings.NewReader(tc.yaml))
		if err == nil || !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one containing %q", tc.yaml, err, tc.want)
		}
	}
}

// TestParseConfigCluster checks the cluster section: its defaults, a VNI without remotes
// or ports (its remotes come from etcd), and the errors that name its fields.
func TestParseConfigCluster(t *testing.T) {
	c, err := ParseConfig(strings.NewReader(`
underlay: eth0
local: 192.168.77.2
cluster:
  etcd: [http://10.0.0.1:2379, http://etcd.example:2379]
  node: node-b
networks:
  - vni: 42
`))
	if err != nil {
		t.Fatal(err)
	}
	want := Cluster{Etcd: []string{"http://10.0.0.1:2379", "http://etcd.example:2379"}, Node: "node-b",
		Prefix: DefaultClusterPrefix, LeaseTTL: DefaultLeaseTTL}
	if c.Cluster == nil || c.Cluster.Node != want.Node || c.Cluster.Prefix != want.Prefix ||
		c.Cluster.LeaseTTL != want.LeaseTTL || len(c.Cluster.Etcd) != 2 {
		t.Fatalf("cluster %+v, want %+v", c.Cluster, want)
	}
	c, err = ParseConfig(strings.NewReader("underlay: eth0\nlocal: 192.168.77.2\ncluster: {etcd: [\"http://[::1]:2379\"], prefix: /a/b, lease_ttl: 3s}\nnetworks: [{vni: 1}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.API != DefaultAPI {
		t.Fatalf("api %q in cluster mode, want the default %q", c.API, DefaultAPI)
	}
	if c.Cluster.Prefix != "/a/b" || c.Cluster.LeaseTTL != 3*time.Second || c.Cluster.Node == "" {
		t.Fatalf("cluster %+v, want prefix /a/b, lease_ttl 3s and the hostname as node", c.Cluster)
	}
	for _, tc := range []struct{ cluster, field string }{
		{"{}", "cluster.etcd"},
		{"{etcd: [10.0.0.1:2379]}", "cluster.etcd[0]"},
		{"{etcd: [\"https://10.0.0.1:2379\"]}", "cluster.etcd[0]"},
		{"{etcd: [\"http://10.0.0.1\"]}", "cluster.etcd[0]"},
		{"{etcd: [\"http://10.0.0.1:2379\"], node: \"a/b\"}", "cluster.node"},
		{"{etcd: [\"http://10.0.0.1:2379\"], prefix: vxdp}", "cluster.prefix"},
		{"{etcd: [\"http://10.0.0.1:2379\"], prefix: /vxdp/}", "cluster.prefix"},
		{"{etcd: [\"http://10.0.0.1:2379\"], lease_ttl: 1s}", "cluster.lease_ttl"},
		{"{etcd: [\"http://10.0.0.1:2379\"], lease_ttl: 2500ms}", "cluster.lease_ttl"},
		{"{etcd: [\"http://10.0.0.1:2379\"], leasettl: 3s}", "leasettl"},
	} {
		_, err := ParseConfig(strings.NewReader("underlay: eth0\nlocal: 192.168.77.2\ncluster: " + tc.cluster + "\nnetworks: [{vni: 1}]\n"))
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("cluster %s: %v, want a config error naming %s", tc.cluster, err, tc.field)
		}
	}
	if c, err := ParseConfig(strings.NewReader("underlay: eth0\nlocal: 192.168.77.2\napi: /tmp/x.sock\nnetworks: [{vni: 1, remotes: [192.168.77.1]}]\n")); err != nil || c.API != "/tmp/x.sock" {
		t.Errorf("api: /tmp/x.sock gives %v, %v", c, err)
	}
	if _, err := ParseConfig(strings.NewReader("underlay: eth0\nlocal: 192.168.77.2\napi: x.sock\nnetworks: [{vni: 1, remotes: [192.168.77.1]}]\n")); !errors.Is(err, ErrConfig) {
		t.Errorf("api: x.sock accepted: %v", err)
	}
	if _, err := ParseConfig(strings.NewReader("underlay: eth0\nlocal: 192.168.77.2\nnetworks: [{vni: 1}]\n")); err == nil {
		t.Error("a VNI with neither remotes nor ports accepted without a cluster")
	}
}
