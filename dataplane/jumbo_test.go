//go:build linux

package dataplane

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vxdp/vxdp/dataplane/xsk"
)

func jumboConfig(local string, vlan bool, mtus ...int) *Config {
	cfg := &Config{Underlay: "eth9", Local: netip.MustParseAddr(local), InnerVLAN: vlan}
	n := Network{VNI: 42}
	for _, m := range mtus {
		n.Ports = append(n.Ports, Port{TAP: "t", MTU: m})
	}
	cfg.Networks = []Network{n}
	return cfg
}

// The largest port MTU without multi-buffer: what a 4 KiB UMEM frame receives (3840
// bytes behind the kernel's 256 bytes of headroom) less the inner Ethernet header, its
// tag if tags are accepted, and the outer headers.
func TestSingleBufferMTU(t *testing.T) {
	for _, c := range []struct {
		local string
		vlan  bool
		want  int
	}{
		{"192.0.2.1", false, 3840 - 14 - 50},
		{"2001:db8::1", false, 3840 - 14 - 70},
		{"192.0.2.1", true, 3840 - 18 - 50},
	} {
		cfg := jumboConfig(c.local, c.vlan, 1450)
		if got := singleBufferMTU(cfg); got != c.want {
			t.Errorf("local %s, inner_vlan %v: %d, want %d", c.local, c.vlan, got, c.want)
		}
		if needsMultiBuffer(jumboConfig(c.local, c.vlan, 1450, c.want)) {
			t.Errorf("local %s: a port mtu of %d needs multi-buffer", c.local, c.want)
		}
		if !needsMultiBuffer(jumboConfig(c.local, c.vlan, c.want+1, 1450)) {
			t.Errorf("local %s: a port mtu of %d does not need multi-buffer", c.local, c.want+1)
		}
	}
}

// A kernel without multi-buffer AF_XDP refuses a jumbo config at start with an error that
// names the largest port MTU the underlay carries, and keeps the bind's error.
func TestErrNoMultiBuffer(t *testing.T) {
	bind := errors.Join(xsk.ErrNoMultiBuffer, unix.EINVAL)
	err := errNoMultiBuffer(jumboConfig("192.0.2.1", false, 1450, 8950), bind)
	for _, want := range []string{"underlay eth9", "port mtu 8950", "largest port mtu it carries is 3776", "Linux 6.6"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if !errors.Is(err, xsk.ErrNoMultiBuffer) || !errors.Is(err, unix.EINVAL) {
		t.Errorf("error %v does not wrap the bind's", err)
	}
}

// A reload that raises a port MTU beyond one UMEM frame needs sockets opened otherwise:
// refused with ErrReload unless vxdp started with multi-buffer sockets.
func TestReloadNeedsMultiBuffer(t *testing.T) {
	v := &VTEP{cfg: jumboConfig("192.0.2.1", false, 1450)}
	err := v.reloadable(jumboConfig("192.0.2.1", false, 1450, 8950))
	if !errors.Is(err, ErrReload) || !strings.Contains(err.Error(), "3776") {
		t.Errorf("reload to mtu 8950 on single-buffer sockets: %v, want ErrReload naming 3776", err)
	}
	if err := v.reloadable(jumboConfig("192.0.2.1", false, 3776)); err != nil {
		t.Errorf("reload to mtu 3776: %v", err)
	}
	v.multiBuffer = true
	if err := v.reloadable(jumboConfig("192.0.2.1", false, 8950)); err != nil {
		t.Errorf("reload to mtu 8950 on multi-buffer sockets: %v", err)
	}
}
