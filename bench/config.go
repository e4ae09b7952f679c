package bench

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// vxlanOverhead is what the overlay takes off the wire's MTU: the outer IPv4, UDP and
// VXLAN headers and the inner Ethernet header, in bytes.
const vxlanOverhead = 50

// ErrBadPlan reports a configuration or workload list that cannot run: an
// unknown or repeated name, or a field out of range.
var ErrBadPlan = errors.New("bad benchmark plan")

// Overlay names what carries the overlay on one host.
type Overlay string

const (
	// OverlayKernel is the kernel's vxlan + bridge + veth, as Docker's
	// overlay driver builds it.
	OverlayKernel Overlay = "kernel"
	// OverlayVXDP is the vxdp node service.
	OverlayVXDP Overlay = "vxdp"
)

// Steering is the kernel's flow steering set on the receiving host B.
type Steering string

const (
	// SteerNone leaves RPS and RFS off.
	SteerNone Steering = ""
	// SteerRPS writes every core into rps_cpus of each RX queue of the wire
	// end, the vxlan device and the host veth.
	SteerRPS Steering = "rps"
	// SteerRFS does what SteerRPS does and sets rps_flow_cnt of those
	// queues and the machine-wide rps_sock_flow_entries to RFSFlows.
	SteerRFS Steering = "rfs"
)

// RFSFlows is the RFS table size of the second paper: rps_sock_flow_entries
// and every rps_flow_cnt. The paper sized it for its busiest case, 32768
// connections.
const RFSFlows = 32768

// Config is one way of carrying the traffic from container A to container
// B (or from host A to host B, for Native). Every configuration runs on the
// same namespace topology.
type Config struct {
	// Name identifies the configuration in every output: native, kernel,
	// kernel-rfs+, vxdp-w2, ...
	Name string `json:"name"`
	// Description says in a few words what it is, for the summary.
	Description string `json:"description"`
	// Native sends host to host over the wire addresses, with no overlay;
	// A, B, Steering and InContainer are then unused.
	Native bool `json:"native,omitempty"`
	// A and B are the overlays on host A (the sender) and host B (the
	// receiver).
	A Overlay `json:"a,omitempty"`
	B Overlay `json:"b,omitempty"`
	// Steering is the RPS or RFS setting on host B (kernel overlay only).
	Steering Steering `json:"steering,omitempty"`
	// InContainer also applies Steering to container B's eth0: the "+"
	// variants of the second paper.
	InContainer bool `json:"in_container,omitempty"`
	// VXDPYAML is appended verbatim to vxdp's config file on every host
	// that runs vxdp: top-level fields such as "workers: 2".
	VXDPYAML string `json:"vxdp_yaml,omitempty"`
	// Veth gives vxdp a veth port (veth: in its config) instead of a TAP, on every host
	// that runs vxdp: the peer becomes the container's eth0.
	Veth bool `json:"veth,omitempty"`
	// Local puts both containers on host B, switched there by B's overlay (the
	// kernel's bridge, or one vxdp with a port into each): two containers of one node,
	// whose traffic never crosses the wire. A is then unused.
	Local bool `json:"local,omitempty"`
	// VethServer gives container B (the receiver) a veth port and container A a TAP,
	// in a Local configuration run by vxdp: TAP to veth.
	VethServer bool `json:"veth_server,omitempty"`
}

// Reference configurations: what a configuration's ratios compare it with.
const (
	// RefKernel is the kernel's overlay between two hosts.
	RefKernel = "kernel"
	// RefNative is the two hosts without an overlay.
	RefNative = "native"
	// RefBridge is the kernel's bridge between two containers of one node.
	RefBridge = "local-bridge"
)

// Ref names the configuration c is compared with: the kernel's bridge for a Local one,
// the kernel's overlay for any other.
func (c Config) Ref() string {
	if c.Local {
		return RefBridge
	}
	return RefKernel
}

// UsesVXDP reports whether the configuration runs vxdp on either host.
func (c Config) UsesVXDP() bool {
	return !c.Native && (c.A == OverlayVXDP || c.B == OverlayVXDP)
}

// validate checks that the fields agree with each other.
func (c Config) validate() error {
	if c.Name == "" || strings.ContainsAny(c.Name, ", \t\n\"") {
		return fmt.Errorf("%w: configuration name %q", ErrBadPlan, c.Name)
	}
	if c.Native {
		return nil
	}
	if c.Local {
		if c.B != OverlayKernel && c.B != OverlayVXDP {
			return fmt.Errorf("%w: configuration %s: overlay %q", ErrBadPlan, c.Name, c.B)
		}
		if c.A != "" || c.Steering != SteerNone || c.Veth {
			return fmt.Errorf("%w: configuration %s: a local configuration has only host B's overlay and its ports", ErrBadPlan, c.Name)
		}
		if c.VethServer && c.B != OverlayVXDP {
			return fmt.Errorf("%w: configuration %s: a veth port without vxdp", ErrBadPlan, c.Name)
		}
		return nil
	}
	if c.VethServer {
		return fmt.Errorf("%w: configuration %s: veth_server outside a local configuration", ErrBadPlan, c.Name)
	}
	for _, o := range []Overlay{c.A, c.B} {
		if o != OverlayKernel && o != OverlayVXDP {
			return fmt.Errorf("%w: configuration %s: overlay %q", ErrBadPlan, c.Name, o)
		}
	}
	switch c.Steering {
	case SteerNone, SteerRPS, SteerRFS:
	default:
		return fmt.Errorf("%w: configuration %s: steering %q", ErrBadPlan, c.Name, c.Steering)
	}
	if c.Steering != SteerNone && c.B != OverlayKernel {
		return fmt.Errorf("%w: configuration %s: steering needs the kernel overlay on host B", ErrBadPlan, c.Name)
	}
	if c.InContainer && c.Steering == SteerNone {
		return fmt.Errorf("%w: configuration %s: in-container steering without steering", ErrBadPlan, c.Name)
	}
	if c.Veth && !c.UsesVXDP() {
		return fmt.Errorf("%w: configuration %s: veth ports without vxdp", ErrBadPlan, c.Name)
	}
	return nil
}

// Configs returns the standard configurations, in the order they run in
// each repetition (rotated by one every repetition).
func Configs() []Config {
	k := func(name, desc string, s Steering, plus bool) Config {
		return Config{Name: name, Description: desc, A: OverlayKernel, B: OverlayKernel, Steering: s, InContainer: plus}
	}
	return []Config{
		{Name: "native", Description: "host A to host B over the wire addresses, no overlay", Native: true},
		k("kernel", "kernel vxlan + bridge + veth on both hosts", SteerNone, false),
		k("kernel-rps", "kernel, RPS on all cores on B's wire, vxlan and host veth", SteerRPS, false),
		k("kernel-rps+", "kernel-rps, and RPS on container B's eth0", SteerRPS, true),
		k("kernel-rfs", "kernel-rps with RFS (32768 flows) on the same devices", SteerRFS, false),
		k("kernel-rfs+", "kernel-rfs, and RFS on container B's eth0", SteerRFS, true),
		{Name: "vxdp", Description: "vxdp on B (receiver), kernel vxlan on A", A: OverlayKernel, B: OverlayVXDP},
		{Name: "vxdp-send", Description: "vxdp on A (sender), kernel vxlan on B", A: OverlayVXDP, B: OverlayKernel},
		{Name: "vxdp-both", Description: "vxdp on both hosts", A: OverlayVXDP, B: OverlayVXDP},
		{Name: RefBridge, Description: "two containers on host B, two veths on the kernel's bridge", Local: true, B: OverlayKernel},
		{Name: "local-tap", Description: "two containers on host B, TAP to TAP through vxdp", Local: true, B: OverlayVXDP},
		{Name: "local-tap-veth", Description: "two containers on host B, TAP (sender) to veth (receiver) through vxdp",
			Local: true, B: OverlayVXDP, VethServer: true},
	}
}

// QuickConfigs names the configurations of the quick plan when none are asked for: the
// references, vxdp in every direction, and the local switching.
var QuickConfigs = []string{"native", "kernel", "vxdp", "vxdp-send", "vxdp-both", RefBridge, "local-tap", "local-tap-veth"}

// LocalConfigs names the standard configurations of two containers on one node.
var LocalConfigs = []string{RefBridge, "local-tap", "local-tap-veth"}

// WorkerConfigs returns one configuration per worker count: vxdp on B (the
// kernel's vxlan on A) with "workers: n" in its config, named vxdp-w<n>.
// They need vxdp's parallel ingress pipeline; a vxdp without the workers
// field refuses the config and the configuration is recorded as failed.
func WorkerConfigs(workers []int) []Config {
	return vxdpVariants("w", "workers", "%d workers", workers)
}

// MicroFlowConfigs returns one configuration per micro-flow size, "vxdp-b<n>": vxdp on B with
// "microflow: n" and its default worker count, the sender keeping the kernel's vxlan.
func MicroFlowConfigs(sizes []int) []Config {
	return vxdpVariants("b", "microflow", "micro-flows of %d frames", sizes)
}

// NoOffloadConfigs returns vxdp and vxdp-both with "offload: false": TAPs without a
// virtio_net_hdr, so every inner frame is its own TAP read or write. They measure what
// the offloads (GRO on ingress, GSO on egress) are worth.
func NoOffloadConfigs() []Config {
	return []Config{
		{Name: "vxdp-nooffload", Description: "vxdp on B with offload: false, kernel vxlan on A",
			A: OverlayKernel, B: OverlayVXDP, VXDPYAML: "offload: false\n"},
		{Name: "vxdp-both-nooffload", Description: "vxdp on both hosts with offload: false",
			A: OverlayVXDP, B: OverlayVXDP, VXDPYAML: "offload: false\n"},
	}
}

// VariantConfigs returns vxdp in each direction with yaml appended to its config on every
// host that runs it: vxdp-<name> (vxdp receives), vxdp-send-<name> (vxdp sends) and
// vxdp-both-<name>. They measure what a config field is worth against the same
// directions with the defaults, in one run: `-variant nortc="run_to_completion: false"`.
func VariantConfigs(name, yaml string) []Config {
	what := strings.ReplaceAll(strings.TrimSpace(yaml), "\n", ", ")
	return []Config{
		{Name: "vxdp-" + name, Description: "vxdp on B with " + what + ", kernel vxlan on A",
			A: OverlayKernel, B: OverlayVXDP, VXDPYAML: yaml},
		{Name: "vxdp-send-" + name, Description: "vxdp on A with " + what + ", kernel vxlan on B",
			A: OverlayVXDP, B: OverlayKernel, VXDPYAML: yaml},
		{Name: "vxdp-both-" + name, Description: "vxdp on both hosts with " + what,
			A: OverlayVXDP, B: OverlayVXDP, VXDPYAML: yaml},
	}
}

// VethConfigs returns vxdp and vxdp-both with veth ports instead of TAPs: the container's
// frames cross an AF_XDP socket on the host end of a veth pair, in batches, where a TAP
// costs a syscall per frame or super-frame. They measure which port kind carries more.
func VethConfigs() []Config {
	return []Config{
		{Name: "vxdp-veth", Description: "vxdp on B with a veth port (AF_XDP) instead of a TAP, kernel vxlan on A",
			A: OverlayKernel, B: OverlayVXDP, Veth: true},
		{Name: "vxdp-both-veth", Description: "vxdp on both hosts, veth ports instead of TAPs",
			A: OverlayVXDP, B: OverlayVXDP, Veth: true},
	}
}

// vxdpVariants returns "vxdp-<tag><n>" for each value n: vxdp on B with "<field>: n".
func vxdpVariants(tag, field, what string, values []int) []Config {
	var cs []Config
	for _, n := range values {
		cs = append(cs, Config{
			Name:        "vxdp-" + tag + strconv.Itoa(n),
			Description: fmt.Sprintf("vxdp on B with "+what+", kernel vxlan on A", n),
			A:           OverlayKernel, B: OverlayVXDP,
			VXDPYAML: fmt.Sprintf("%s: %d\n", field, n),
		})
	}
	return cs
}

// SelectConfigs returns the configurations of all that names lists, in the
// order of all. An unknown name is an error.
func SelectConfigs(all []Config, names []string) ([]Config, error) {
	return selectNamed(all, names, "configuration", func(c Config) string { return c.Name })
}

// selectNamed returns the elements of all whose name (by name) names lists, in the order
// of all; a name no element has is an error that calls it a what.
func selectNamed[T any](all []T, names []string, what string, name func(T) string) ([]T, error) {
	for _, n := range names {
		if !slices.ContainsFunc(all, func(e T) bool { return name(e) == n }) {
			return nil, fmt.Errorf("%w: unknown %s %q", ErrBadPlan, what, n)
		}
	}
	var out []T
	for _, e := range all {
		if slices.Contains(names, name(e)) {
			out = append(out, e)
		}
	}
	return out, nil
}
