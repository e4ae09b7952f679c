//go:build linux

package main

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/vxdp/vxdp/internal/topo"
)

// containerIf is what the container sees of its interface: vxdp must leave all of it alone
// across a restart.
type containerIf struct {
	index int
	mac   string
	addrs string
}

// readContainerIf reads eth0 of the container on side s.
func readContainerIf(t *testing.T, tp *topo.Topology, s topo.Side) containerIf {
	t.Helper()
	var c containerIf
	err := tp.Container(s).Do(func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		addrs, err := ifi.Addrs()
		if err != nil {
			return err
		}
		var as []string
		for _, a := range addrs {
			as = append(as, a.String())
		}
		c = containerIf{index: ifi.Index, mac: ifi.HardwareAddr.String(), addrs: strings.Join(as, ",")}
		return nil
	})
	if err != nil {
		t.Fatalf("container %s eth0: %v", s, err)
	}
	return c
}

// restartVXDP starts vxdp again on side s without touching the container, and stops it when
// the test ends.
func restartVXDP(t *testing.T, tp *topo.Topology, s topo.Side) *topo.VXDP {
	t.Helper()
	v, err := tp.RestartVXDP(context.Background(), s, vxdpBinary, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := v.Stop(); err != nil || t.Failed() {
			t.Logf("vxdp on host %s: exit %v; log:\n%s", s, err, v.Log())
		}
	})
	if !strings.Contains(v.Log(), `msg="took over tap"`) {
		t.Errorf("the restarted vxdp did not take over the TAP:\n%s", v.Log())
	}
	return v
}

// TestRestartKeepsContainer stops vxdp (with ports_on_exit: keep, its default) cleanly, then
// kills it with SIGKILL in the middle of a TCP flow, and starts it again each time without
// touching the container: the container's eth0 stays the same device with the same MAC and
// addresses throughout, and traffic flows again, the interrupted flow included.
func TestRestartKeepsContainer(t *testing.T) {
	needRoot(t)
	tp := newTopology(t, "rst")
	tp.KeepPorts = true
	ctx := context.Background()
	if err := tp.KernelVXLAN(ctx, topo.SideA); err != nil {
		t.Fatal(err)
	}
	v := startVXDP(t, tp, topo.SideB)
	if _, err := tp.ContainerA.Ping(ctx, tp.OverlayB.Addr()); err != nil {
		t.Fatal(err)
	}
	want := readContainerIf(t, tp, topo.SideB)

	t.Run("SIGTERM", func(t *testing.T) {
		if err := v.Stop(); err != nil {
			t.Fatalf("vxdp exit: %v\n%s", err, v.Log())
		}
		if got := readContainerIf(t, tp, topo.SideB); got != want {
			t.Fatalf("after SIGTERM, container eth0 is %+v, was %+v", got, want)
		}
		v = restartVXDP(t, tp, topo.SideB)
		if _, err := tp.ContainerA.Ping(ctx, tp.OverlayB.Addr()); err != nil {
			t.Fatalf("no echo reply after the restart: %v", err)
		}
		checkTransfer(t, tp, topo.SideA, 1<<20)
	})

	t.Run("SIGKILLUnderTraffic", func(t *testing.T) {
		// A TCP flow long enough to span the kill and the restart: TCP retransmits
		// through the gap and the flow must complete.
		flow := make(chan error, 1)
		go func() {
			_, err := topo.Iperf3{Server: tp.ContainerB, Client: tp.ContainerA, Addr: tp.OverlayB.Addr().String(),
				Duration: 8 * time.Second}.Run(ctx)
			flow <- err
		}()
		time.Sleep(2 * time.Second)
		v.Kill()
		if got := readContainerIf(t, tp, topo.SideB); got != want {
			t.Fatalf("after SIGKILL, container eth0 is %+v, was %+v", got, want)
		}
		out, err := tp.HostB.Run(ctx, "ip", "-d", "link", "show", "dev", tp.WireB)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(out, "prog/xdp") {
			t.Errorf("vxdp died and its XDP program is still attached to %s:\n%s", tp.WireB, out)
		}
		restartVXDP(t, tp, topo.SideB)
		if err := <-flow; err != nil {
			t.Fatalf("the TCP flow across the kill and restart: %v", err)
		}
		if got := readContainerIf(t, tp, topo.SideB); got != want {
			t.Fatalf("after the restart, container eth0 is %+v, was %+v", got, want)
		}
		checkTransfer(t, tp, topo.SideB, 1<<20)
	})
}
