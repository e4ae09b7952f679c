//go:build linux

package main

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vxdp/vxdp/internal/topo"
)

// TestReloadOnSIGHUP changes the remotes and ports of a running vxdp through its config
// file and SIGHUP while a paced UDP stream crosses its unchanged port: a second port comes
// and goes, a remote goes (its traffic is then dropped in XDP) and comes back (and its
// traffic flows again), a change that needs a restart is refused, and the stream loses
// nothing and stays in order throughout.
func TestReloadOnSIGHUP(t *testing.T) {
	needRoot(t)
	tp := newTopology(t, "hup")
	ctx := context.Background()
	if err := tp.KernelVXLAN(ctx, topo.SideA); err != nil {
		t.Fatal(err)
	}
	v := startVXDP(t, tp, topo.SideB)
	if _, err := tp.ContainerA.Ping(ctx, tp.OverlayB.Addr()); err != nil {
		t.Fatal(err)
	}
	base := tp.VXDPConfig(topo.SideB, "")
	remoteA := tp.UnderlayA.Addr().String()
	const other = "192.168.77.50" // a remote VTEP that does not exist
	reload := func(t *testing.T, cfg string) {
		t.Helper()
		if err := os.WriteFile(v.Config, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := v.Reload(ctx); err != nil {
			t.Fatal(err)
		}
	}
	withPort := base + `      - tap: vxp1
        mtu: 1400
`
	hasTAP := func(name string) bool {
		out, err := tp.HostB.Run(ctx, "ip", "-o", "link", "show")
		if err != nil {
			t.Fatal(err)
		}
		return strings.Contains(out, " "+name+":")
	}

	// One datagram a millisecond: at this pace nothing is lost on a path that works.
	flow := stream{tp: tp, n: 3000, rate: 1000, idle: 3 * time.Second}.start(t)
	t.Run("PortAdded", func(t *testing.T) {
		reload(t, withPort)
		if !hasTAP("vxp1") {
			t.Fatal("the port added by the reload has no TAP")
		}
	})
	t.Run("RemoteAdded", func(t *testing.T) {
		reload(t, strings.Replace(withPort, "remotes: ["+remoteA+"]", "remotes: ["+remoteA+", "+other+"]", 1))
	})
	t.Run("RestartFieldRefused", func(t *testing.T) {
		if err := os.WriteFile(v.Config, []byte(strings.Replace(withPort, "port: ", "microflow: 8\nport: ", 1)), 0o644); err != nil {
			t.Fatal(err)
		}
		err := v.Reload(ctx)
		if err == nil || !strings.Contains(err.Error(), "[microflow]") {
			t.Fatalf("reload with a new microflow: %v, want a refusal naming it", err)
		}
	})
	t.Run("PortRemoved", func(t *testing.T) {
		reload(t, base)
		if hasTAP("vxp1") {
			t.Fatal("the port removed by the reload still has its TAP")
		}
	})
	got, _, err := flow()
	if err != nil || got != 3000 {
		t.Fatalf("through the reloads the unchanged port received %d of 3000 datagrams (%v)", got, err)
	}

	t.Run("RemoteRemovedAndAdded", func(t *testing.T) {
		reload(t, strings.Replace(base, "remotes: ["+remoteA+"]", "remotes: ["+other+"]", 1))
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if _, err := tp.ContainerA.Ping(pctx, tp.OverlayB.Addr()); err == nil {
			t.Fatalf("host A is no remote of VNI %d any more, and its echo request was answered", tp.VNI)
		}
		reload(t, base)
		if _, err := tp.ContainerA.Ping(ctx, tp.OverlayB.Addr()); err != nil {
			t.Fatalf("host A is a remote again, and no echo reply: %v", err)
		}
	})
}
