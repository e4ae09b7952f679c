//go:build linux

package main

import (
	"testing"

	"github.com/vxdp/vxdp/internal/nodeapi"
)

func TestParseConf(t *testing.T) {
	c, err := parseConf([]byte(`{"cniVersion": "1.1.0", "name": "vxdp-net", "type": "vxdp-cni", "vni": 42,
 "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.42.0.0/16"}]]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Socket != nodeapi.DefaultSocket || c.VNI != 42 || c.IPAM.Type != "host-local" || c.Port != "" {
		t.Fatalf("parsed %+v", c)
	}
	for _, bad := range []string{`{"vni": 0}`, `{"vni": 16777216}`, `{"vni": 1, "port": "macvlan"}`, `{"vni": "1"}`, `[`} {
		if _, err := parseConf([]byte(bad)); err == nil {
			t.Errorf("parseConf(%s) accepted", bad)
		}
	}
}

// FuzzParseConf: any network config parses or is refused with an error; one that parses
// has a VNI in range, a known port kind and a socket.
func FuzzParseConf(f *testing.F) {
	f.Add(`{"cniVersion": "1.1.0", "name": "n", "type": "vxdp-cni", "socket": "/run/vxdp/vxdp.sock", "vni": 42, "mtu": 1450, "port": "veth", "ipam": {"type": "host-local"}}`)
	f.Add(`{"vni": 1, "prevResult": {"cniVersion": "1.1.0", "ips": [{"address": "10.0.0.1/24"}]}}`)
	f.Add(`{"vni": 1, "cni.dev/valid-attachments": [{"containerID": "x", "ifname": "eth0"}]}`)
	f.Fuzz(func(t *testing.T, conf string) {
		c, err := parseConf([]byte(conf))
		if err != nil {
			return
		}
		if c.VNI < 1 || c.VNI > 1<<24-1 || (c.Port != "" && c.Port != "tap" && c.Port != "veth") || c.Socket == "" {
			t.Fatalf("accepted %+v", c)
		}
	})
}
