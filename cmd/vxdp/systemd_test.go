//go:build linux

package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vxdp/vxdp/internal/topo"
)

// unitFile is the systemd unit the repository ships.
const unitFile = "../../deploy/vxdp.service"

// unitCapabilities returns the capabilities deploy/vxdp.service leaves vxdp
// (CapabilityBoundingSet) and whether it sets NoNewPrivileges.
func unitCapabilities(t *testing.T) (caps []string, noNewPrivs bool) {
	t.Helper()
	f, err := os.Open(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		switch {
		case !ok || strings.HasPrefix(k, "#"):
		case k == "CapabilityBoundingSet":
			caps = append(caps, strings.Fields(v)...)
		case k == "NoNewPrivileges":
			noNewPrivs = v == "yes" || v == "true"
		case k == "User" || k == "DynamicUser" || k == "SecureBits" || k == "AmbientCapabilities" && v != "":
			// The test below reproduces a root service's capability rules only.
			t.Fatalf("%s sets %s: the capability test assumes a root service with a bounding set alone", unitFile, k)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(caps) == 0 {
		t.Fatalf("%s sets no CapabilityBoundingSet", unitFile)
	}
	return caps, noNewPrivs
}

// TestSystemdCapabilities checks the unit's CapabilityBoundingSet against the kernel: vxdp,
// started through setpriv with the same bounding set (which for a root service is what
// systemd applies: a process of uid 0 gets its bounding set as permitted and effective
// capabilities on exec) carries traffic to a container whose TAP it moves into a named
// network namespace; and without any one of those capabilities, it does not.
func TestSystemdCapabilities(t *testing.T) {
	needRoot(t)
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Fatalf("setpriv (util-linux) is not installed: %v", err)
	}
	caps, noNewPrivs := unitCapabilities(t)
	tp := newTopology(t, "cap")
	if err := tp.KernelVXLAN(context.Background(), topo.SideA); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// run starts vxdp on host B with only keep, and reports whether a container pinged the
	// other through it, with vxdp's log.
	run := func(name string, keep []string) (bool, string) {
		var set []string
		for _, c := range keep {
			set = append(set, "+"+strings.ToLower(strings.TrimPrefix(c, "CAP_")))
		}
		args := []string{"--inh-caps=-all", "--bounding-set=-all," + strings.Join(set, ",")}
		if noNewPrivs {
			args = append([]string{"--no-new-privs"}, args...)
		}
		wrapper := filepath.Join(dir, "vxdp-"+name)
		script := fmt.Sprintf("#!/bin/sh\nexec setpriv %s -- %s \"$@\"\n", strings.Join(args, " "), vxdpBinary)
		if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		// A new TAP has a new MAC: forget the old one, or the first pings go astray.
		if _, err := tp.ContainerA.Run(context.Background(), "ip", "neigh", "flush", "all"); err != nil {
			t.Fatal(err)
		}
		v, err := tp.StartVXDP(context.Background(), topo.SideB, wrapper, "")
		if err != nil {
			return false, err.Error()
		}
		defer v.Stop()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for ctx.Err() == nil {
			if _, err := tp.ContainerA.Ping(ctx, tp.OverlayB.Addr()); err == nil {
				return true, v.Log()
			}
			select {
			case <-v.Done():
				return false, v.Log()
			case <-time.After(100 * time.Millisecond):
			}
		}
		return false, v.Log()
	}
	if ok, log := run("all", caps); !ok {
		t.Fatalf("vxdp does not carry traffic with the unit's capabilities %v:\n%s", caps, log)
	}
	for i, c := range caps {
		without := append(append([]string{}, caps[:i]...), caps[i+1:]...)
		ok, log := run("no-"+c, without)
		if ok {
			t.Errorf("vxdp carries traffic without %s: the unit grants more than vxdp needs", c)
			continue
		}
		// The first error vxdp logged says which operation needed the capability.
		for _, l := range strings.Split(log, "\n") {
			if strings.Contains(l, "level=ERROR") {
				t.Logf("without %s: %s", c, l)
				break
			}
		}
	}
}
