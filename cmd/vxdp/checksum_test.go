//go:build linux

package main

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vxdp/vxdp/internal/topo"
)

// TestChecksumOffloadWarning makes host A's kernel vxlan send outer UDP checksums
// (udpcsum) and leave them to offload on its wire end (TX checksumming on, as a veth in a VM
// or nested containers does): every frame reaches vxdp with a partial checksum and is
// dropped, a total loss. vxdp must say so in its log, naming the remote, the counter and the
// fix; the fix it names (ethtool -K <dev> tx off on the sending end) must bring the traffic
// back.
func TestChecksumOffloadWarning(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	tp, v := kernelToVXDP(t, "csum", "")
	hA, remote := tp.HostA, tp.UnderlayA.Addr().String()

	// The vxlan device again, with outer UDP checksums, and checksum offload on the wire.
	if _, err := hA.Run(ctx, "ip", "link", "del", topo.VXLANIf); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"ip", "link", "add", topo.VXLANIf, "mtu", strconv.Itoa(tp.OverlayMTU), "type", "vxlan",
			"id", strconv.FormatUint(uint64(tp.VNI), 10), "local", remote,
			"dstport", strconv.Itoa(int(tp.Port)), "dev", tp.WireA, "learning", "udpcsum"},
		{"ip", "link", "set", topo.VXLANIf, "master", topo.BridgeIf},
		{"ip", "link", "set", topo.VXLANIf, "up"},
		{"bridge", "fdb", "append", "00:00:00:00:00:00", "dev", topo.VXLANIf, "dst", tp.UnderlayB.Addr().String()},
		{"ethtool", "-K", tp.WireA, "tx", "on"},
	} {
		if out, err := hA.Run(ctx, args[0], args[1:]...); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}

	// Pings go unanswered: their frames fail the checksum at vxdp.
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(v.Log(), "fail their outer UDP checksum") {
		if time.Now().After(deadline) {
			t.Fatalf("no warning in vxdp's log 15 s into a total loss; log:\n%s", v.Log())
		}
		pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		if _, err := tp.ContainerA.Ping(pctx, tp.OverlayB.Addr()); err == nil {
			t.Fatal("an echo reply came through frames with partial checksums")
		}
		cancel()
	}
	line := logLines(v.Log(), "fail their outer UDP checksum")[0]
	t.Log(line)
	for _, want := range []string{"remote=" + remote, `reason=\"udp_checksum\"`, "ethtool -K <dev> tx off"} {
		if !strings.Contains(line, want) {
			t.Errorf("the warning does not say %s: %s", want, line)
		}
	}
	m, _ := scrape(t, tp.HostB, adminAddr)
	if n := m[parseDrop("udp_checksum")]; n < checksumMinFailures {
		t.Errorf("%s = %v", parseDrop("udp_checksum"), n)
	}

	// The fix the warning names.
	if out, err := hA.Run(ctx, "ethtool", "-K", tp.WireA, "tx", "off"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	waitPing(t, tp.ContainerA, tp.OverlayB.Addr(), 5*time.Second)
}

// checksumMinFailures mirrors the dataplane's threshold for the warning (checksumwatch.go).
const checksumMinFailures = 8
