//go:build linux

package topo

import (
	"context"
	"fmt"
	"sort"
	"strings"
)

// feature is one line of `ethtool -k`: whether the feature is on, and
// whether the driver lets it change.
type feature struct {
	on    bool
	fixed bool
}

// parseFeatures reads the output of `ethtool -k <if>`: a header line, then
// "name: on|off", possibly followed by "[fixed]" or "[requested on]", with
// sub-features indented under their group. Lines of any other shape are
// skipped.
func parseFeatures(out string) map[string]feature {
	fs := make(map[string]feature)
	for _, line := range strings.Split(out, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ": ")
		if !ok || name == "" || strings.ContainsAny(name, " \t") {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		var f feature
		switch fields[0] {
		case "on":
			f.on = true
		case "off":
		default:
			continue
		}
		f.fixed = strings.Contains(rest, "[fixed]")
		fs[name] = f
	}
	return fs
}

// Features returns the offload features of ifname in ns, as `ethtool -k`
// names them, each mapped to whether it is on.
func Features(ctx context.Context, ns NS, ifname string) (map[string]bool, error) {
	fs, err := features(ctx, ns, ifname)
	if err != nil {
		return nil, err
	}
	on := make(map[string]bool, len(fs))
	for name, f := range fs {
		on[name] = f.on
	}
	return on, nil
}

func features(ctx context.Context, ns NS, ifname string) (map[string]feature, error) {
	if err := validIfName(ifname); err != nil {
		return nil, fmt.Errorf("read features: %w", err)
	}
	out, err := ns.Run(ctx, "ethtool", "-k", ifname)
	if err != nil {
		return nil, fmt.Errorf("read features of %s: %w", ifname, err)
	}
	fs := parseFeatures(out)
	if len(fs) == 0 {
		return nil, fmt.Errorf("read features of %s: no features in ethtool output %q", ifname, out)
	}
	return fs, nil
}

// wireOffloads lists the features that let a veth carry frames no NIC would
// put on a wire: segmentation (TSO, GSO, USO, tunnel GSO), and TX checksum
// offload, which on a veth hands the peer packets whose checksums are never
// finished. Every "*-segmentation" feature counts as well, whatever the
// kernel version calls it. The NIC-like wire turns these off.
var wireOffloads = map[string]bool{
	"tcp-segmentation-offload":     true,
	"generic-segmentation-offload": true,
	"tx-gso-partial":               true,
	"tx-gso-list":                  true,
	"large-receive-offload":        true,
	"rx-gro-hw":                    true,
	"rx-gro-list":                  true,
	"rx-udp-gro-forwarding":        true,
	"tx-checksumming":              true,
	"tx-checksum-ipv4":             true,
	"tx-checksum-ip-generic":       true,
	"tx-checksum-ipv6":             true,
	"tx-checksum-sctp":             true,
	"tx-checksum-fcoe-crc":         true,
}

// groFeature is GRO as ethtool names it. On a veth it also decides whether
// the receiving end has a NAPI context of its own.
const groFeature = "generic-receive-offload"

// nicFeatures are turned on at both ends of the NIC-like wire: GRO, as every
// NIC driver does it.
var nicFeatures = []string{groFeature}

func isWireOffload(name string) bool {
	return wireOffloads[name] || strings.HasSuffix(name, "-segmentation")
}

// isPlainOffload is what the plain veth wire turns off: the wire offloads
// and GRO, which leaves the veth without NAPI.
func isPlainOffload(name string) bool {
	return isWireOffload(name) || name == groFeature
}

// setFeatures turns off, on ifname in ns, every feature that off selects
// and the kernel exposes and lets change, turns on those of on, then checks
// that they took.
func setFeatures(ctx context.Context, ns NS, ifname string, off func(string) bool, on []string) error {
	fs, err := features(ctx, ns, ifname)
	if err != nil {
		return err
	}
	want := map[string]bool{}
	for name, f := range fs {
		if f.on && !f.fixed && off(name) {
			want[name] = false
		}
	}
	for _, name := range on {
		f, ok := fs[name]
		if !ok || (f.fixed && !f.on) {
			return fmt.Errorf("turn on %s of %s: the device does not offer it", name, ifname)
		}
		if !f.on {
			want[name] = true
		}
	}
	if len(want) == 0 {
		return nil
	}
	names := make([]string, 0, len(want))
	for name := range want {
		names = append(names, name)
	}
	sort.Strings(names) // a stable command line, for error messages
	args := []string{"-K", ifname}
	for _, name := range names {
		args = append(args, name, onOff(want[name]))
	}
	if _, err := ns.Run(ctx, "ethtool", args...); err != nil {
		return fmt.Errorf("set offloads of %s: %w", ifname, err)
	}
	fs, err = features(ctx, ns, ifname)
	if err != nil {
		return err
	}
	var wrong []string
	for _, name := range names {
		if fs[name].on != want[name] {
			wrong = append(wrong, name+" "+onOff(fs[name].on))
		}
	}
	if len(wrong) > 0 {
		return fmt.Errorf("set offloads of %s: still %s", ifname, strings.Join(wrong, ", "))
	}
	return nil
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}
