//go:build linux

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/vxdp/vxdp/internal/admin"
	"github.com/vxdp/vxdp/internal/topo"
)

// fdbOf returns vxdp's /fdb entries of the topology's VNI on host B.
func fdbOf(t *testing.T, tp *topo.Topology) []admin.FDBEntry {
	t.Helper()
	code, b, err := adminGet(tp.HostB, adminAddr, "/fdb")
	if err != nil || code != http.StatusOK {
		t.Fatalf("/fdb: %d %v", code, err)
	}
	var doc admin.FDB
	if err := json.Unmarshal(b, &doc); err != nil || len(doc) != 1 {
		t.Fatalf("decode /fdb: %v\n%s", err, b)
	}
	return doc[0].Entries
}

// TestStaticFDBNoLearning runs vxdp on host B with learning: false and a static entry for
// container A's MAC behind host A (the kernel's vxlan): traffic flows both ways, /fdb shows
// the entry static and learns nothing. Then a SIGHUP reload drops the static entry: the
// traffic to container A is unknown unicast now, flooded to host A, and still arrives, and
// /fdb still learns nothing.
func TestStaticFDBNoLearning(t *testing.T) {
	needRoot(t)
	tp := newTopology(t, "sfdb")
	ctx := context.Background()
	if err := tp.KernelVXLAN(ctx, topo.SideA); err != nil {
		t.Fatal(err)
	}
	macA := ifaceMAC(t, tp.ContainerA, topo.ContainerVethIf).String()
	remoteA := tp.UnderlayA.Addr().String()
	static := fmt.Sprintf("    fdb: [{mac: %q, remote: %s}]\nlearning: false\n", macA, remoteA)
	v := startVXDPWith(t, tp, topo.SideB, static)
	waitRunning(t, tp.HostB)
	waitPing(t, tp.ContainerA, tp.OverlayB.Addr(), 5*time.Second)
	checkTransfer(t, tp, topo.SideA, 1<<20)
	checkTransfer(t, tp, topo.SideB, 1<<20)

	entries := fdbOf(t, tp)
	var sawStatic bool
	for _, e := range entries {
		switch {
		case e.MAC == macA:
			sawStatic = e.Remote == remoteA && e.Static && e.AgeSeconds == 0
		case e.Port == "" || !e.Static:
			t.Errorf("/fdb: %+v: learned with learning: false", e)
		}
	}
	if !sawStatic || len(entries) != 2 {
		t.Fatalf("/fdb: want %s static behind %s and the port's own MAC, got %+v", macA, remoteA, entries)
	}
	m := scrapeAdmin(t, tp.HostB)
	if added := m.get("vxdp_fdb_events_total", "event", "added"); added != 0 {
		t.Errorf("vxdp_fdb_events_total{event=added} %v with learning: false", added)
	}

	// The static entry leaves the config; learning stays off.
	if err := os.WriteFile(v.Config, []byte(tp.VXDPConfig(topo.SideB, "learning: false\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := v.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if entries := fdbOf(t, tp); len(entries) != 1 || !entries[0].Static || entries[0].Port == "" {
		t.Fatalf("/fdb after the reload: want the port's own MAC alone, got %+v", entries)
	}
	checkTransfer(t, tp, topo.SideB, 1<<20)
	checkTransfer(t, tp, topo.SideA, 1<<20)
	if entries := fdbOf(t, tp); len(entries) != 1 {
		t.Errorf("/fdb after traffic with learning: false: %+v", entries)
	}
}
