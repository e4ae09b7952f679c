package dataplane

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
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
	if !c.KeepPorts || !c.Offload {
		t.Errorf("ports_on_exit and offload defaults: keep %v, offload %v; want both", c.KeepPorts, c.Offload)
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
		for _, n := range c.Networks {
			if n.VNI == 0 || n.VNI >= 1<<24 {
				t.Fatalf("accepted VNI %d", n.VNI)
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
