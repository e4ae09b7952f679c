//go:build linux

package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vxdp/vxdp/internal/topo"
)

// The veth port (veth: in the config) end to end: the same overlay checks as with TAPs.

func TestKernelVXLANToVXDPVeth(t *testing.T) { kernelVXLANToVXDP(t, "e2ekv", true) }

func TestVXDPBothHostsVeth(t *testing.T) { vxdpBothHosts(t, "e2evv", true) }

// newVethTopology is newTopology with vxdp's ports made veth pairs.
func newVethTopology(t *testing.T, tag string) *topo.Topology {
	t.Helper()
	tp := newTopology(t, tag)
	tp.VethPorts = true
	return tp
}

// TestVethAfterCrash kills vxdp, which leaves its veth pair behind (a veth is not tied to a
// descriptor, unlike a TAP), and checks that the next vxdp replaces it and carries traffic,
// and that a SIGTERM then leaves nothing.
func TestVethAfterCrash(t *testing.T) {
	needRoot(t)
	tp := newVethTopology(t, "e2evk")
	if err := tp.KernelVXLAN(context.Background(), topo.SideA); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	v, err := tp.StartVXDP(ctx, topo.SideB, vxdpBinary, "")
	if err != nil {
		t.Fatal(err)
	}
	v.Kill()
	out, err := tp.HostB.Run(ctx, "ip", "-d", "link", "show", "dev", topo.VXDPVethIf)
	if err != nil {
		t.Fatalf("the veth did not outlive SIGKILL, unlike what this test assumes: %v", err)
	}
	if strings.Contains(out, "prog/xdp") {
		t.Errorf("XDP still attached to %s after the process died:\n%s", topo.VXDPVethIf, out)
	}
	// The container's eth0 is the old peer until vxdp replaces the pair: wait for vxdp to
	// run, then configure the new one (an orchestrator would, as after any new interface).
	v, err = tp.RestartVXDP(ctx, topo.SideB, vxdpBinary, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := v.Stop(); err != nil || t.Failed() {
			t.Logf("vxdp on host B: exit %v; log:\n%s", err, v.Log())
		}
	})
	if !strings.Contains(v.Log(), "removed stale veth") {
		t.Errorf("vxdp did not say it removed the stale veth:\n%s", v.Log())
	}
	if err := tp.ContainerIf(ctx, topo.SideB, "eth0"); err != nil {
		t.Fatal(err)
	}
	t.Run("Ping", func(t *testing.T) {
		if _, err := tp.ContainerA.Ping(ctx, tp.OverlayB.Addr()); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("SIGTERMLeavesNothing", func(t *testing.T) { checkStop(t, tp, v) })
}

// TestLocalPortKinds runs one vxdp with two ports of one VNI on host B, one into each
// container, and the overlay checks between them: traffic switched from port to port on
// the node, never on the wire. TAP to veth covers the super-frames a TAP sends being cut
// for a veth, and veth to TAP a plain virtio_net_hdr in front of what a veth sends.
func TestLocalPortKinds(t *testing.T) {
	needRoot(t)
	for _, tc := range []struct {
		name, a, b string // the port of container A and of container B
	}{
		{"TAPAndVeth", "veth: vxv1", "tap: vxp0"},
		{"VethAndVeth", "veth: vxv1", "veth: vxv0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tp := newTopology(t, "e2elk")
			for _, offload := range []bool{true, false} {
				t.Run(fmt.Sprintf("Offload=%v", offload), func(t *testing.T) {
					config := fmt.Sprintf(`underlay: %s
local: %s
ports_on_exit: remove
offload: %v
admin: ""
networks:
  - vni: %d
    ports:
      - %s
        netns: %s
        ifname: eth0
        mtu: %d
      - %s
        netns: %s
        ifname: eth0
        mtu: %d
`, tp.WireB, tp.UnderlayB.Addr(), offload, tp.VNI,
						tc.a, tp.ContainerA.Path(), tp.OverlayMTU, tc.b, tp.ContainerB.Path(), tp.OverlayMTU)
					v, err := tp.StartVXDPConfig(context.Background(), topo.SideB, vxdpBinary, config)
					if err != nil {
						t.Fatal(err)
					}
					defer func() {
						if err := v.Stop(); err != nil || t.Failed() {
							t.Logf("vxdp: exit %v; log:\n%s", err, v.Log())
						}
						for _, ns := range []topo.NS{tp.HostB, tp.ContainerA, tp.ContainerB} {
							if out, _ := ns.Run(context.Background(), "ip", "-o", "link", "show"); strings.Contains(out, "eth0") ||
								strings.Contains(out, "vxv") || strings.Contains(out, "vxp") {
								t.Errorf("a port is left in %s:\n%s", ns, out)
							}
						}
					}()
					ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
					defer cancel()
					for _, s := range []topo.Side{topo.SideA, topo.SideB} {
						if err := tp.ContainerIf(ctx, s, "eth0"); err != nil {
							t.Fatal(err)
						}
					}
					checkOverlay(t, tp)
				})
			}
		})
	}
}
