package dataplane

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/vxdp/vxdp/dataplane/fdb"
)

// Defaults of the config file. Each is documented in the README's config reference.
const (
	// DefaultPort is the IANA-assigned VXLAN UDP port (RFC 7348), the kernel's vxlan default.
	DefaultPort = 4789
	// DefaultMTU of a local port: 1500 on the underlay minus 50 bytes of outer IPv4/UDP/VXLAN
	// headers and the inner Ethernet header, the same as Docker's overlay.
	DefaultMTU = 1450
	// DefaultFDBMax is the per-VNI cap on learned MAC addresses; beyond it the oldest is evicted.
	DefaultFDBMax = 4096
	// DefaultFDBAgeing is how long a learned MAC lives without traffic, the Linux bridge's default.
	DefaultFDBAgeing = 300 * time.Second
	// DefaultMicroFlow is how many consecutive frames of a queue make one micro-flow, the
	// unit of work of the ingress workers. See the README for the measurement behind it.
	DefaultMicroFlow = 64
	// MaxMicroFlow bounds a micro-flow by what one queue may hold in flight.
	MaxMicroFlow = 512
	// MaxWorkers bounds the ingress worker pool.
	MaxWorkers = 256
	// MaxVethMTU is the largest MTU of a veth port, in bytes, as of a TAP: the port's XDP
	// program declares frags, so the kernel attaches it natively to a veth whose frames do
	// not fit one page (above 3506), and the port's sockets are multi-buffer beyond one
	// UMEM frame (jumbo.go).
	MaxVethMTU = 9000
	// DefaultAdmin is the admin server's address (metrics, pprof, health, FDB): loopback only,
	// since pprof and the FDB are not for the network. The port is in the 9100-9999 range the
	// Prometheus project keeps for exporters.
	DefaultAdmin = "127.0.0.1:9477"
)

// ErrConfig marks an invalid configuration; the message names the field and the reason.
var ErrConfig = errors.New("invalid config")

// Config is the node's VTEP configuration, as read from the config file.
type Config struct {
	// Underlay is the NIC carrying the VXLAN traffic; each of its RX queues gets an AF_XDP socket.
	Underlay string
	// Local is this node's VTEP address on the underlay.
	Local netip.Addr
	// Port is the VXLAN UDP destination port.
	Port uint16
	// FDBMax caps the learned MAC addresses per VNI.
	FDBMax int
	// FDBAgeing is how long a learned MAC address lives without traffic.
	FDBAgeing time.Duration
	// Workers is the number of ingress worker goroutines (default: the number of CPUs).
	Workers int
	// MicroFlow is the most consecutive frames of one queue a worker takes at once.
	MicroFlow int
	// Offload opens the TAPs with a virtio_net_hdr and TCP/UDP segmentation offloads:
	// the workers coalesce inner segments into super-frames of up to 64 KB (GRO), and
	// egress segments the super-frames containers send (GSO). On by default.
	Offload bool
	// Admin is the admin server's host:port; "" disables it.
	Admin string
	// KeepPorts leaves the TAP devices in place when vxdp exits (config field
	// ports_on_exit: keep, the default), so containers keep their interfaces and
	// addresses across a restart; the next vxdp takes them over. False removes them.
	KeepPorts bool
	// VXLANReservedIgnored are the reserved VXLAN header bits (layout of
	// packet.VXLANReservedAll) a received frame may have set; a frame with any other one set
	// is dropped. 0, the default, drops them all (config field vxlan_reserved_bits).
	VXLANReservedIgnored uint64
	// InnerVLAN accepts inner frames with an 802.1Q/802.1ad tag, from remote VTEPs and from
	// local ports; by default they are dropped (config field inner_vlan).
	InnerVLAN bool
	// Networks are the VNIs this node carries.
	Networks []Network
}

// Network is one VNI: its remote VTEPs and its local ports.
type Network struct {
	// VNI is the 24-bit VXLAN network identifier, 1 to 16777215.
	VNI uint32
	// Remotes are the remote VTEPs of this VNI: the targets of head-end replication for
	// broadcast, multicast and unknown unicast, and the only sources accepted for this VNI.
	Remotes []netip.Addr
	// Ports are the local ports (TAP devices or veth pairs) attached to this VNI.
	Ports []Port
}

// Port is a local port: a TAP device vxdp creates and, optionally, moves into a container's
// network namespace, or a veth pair whose peer goes there. Exactly one of TAP and Veth is set.
type Port struct {
	// TAP is the name vxdp creates the TAP device under.
	TAP string
	// Veth is the name of the host end of the veth pair vxdp creates; the host end stays in
	// vxdp's network namespace, the peer is the container's interface.
	Veth string
	// Netns is the path of the network namespace the TAP, or the veth's peer, is moved into
	// ("" keeps it in vxdp's).
	Netns string
	// Ifname is the TAP's, or the veth peer's, name inside Netns ("" keeps the TAP's name;
	// required for a veth without Netns).
	Ifname string
	// MTU of the TAP device, or of both ends of the veth.
	MTU int
}

// fileConfig mirrors the YAML file; values are checked and converted by validate.
type fileConfig struct {
	Underlay  string        `yaml:"underlay"`
	Local     string        `yaml:"local"`
	Port      *int          `yaml:"port"`
	FDBMax    *int          `yaml:"fdb_max"`
	FDBAgeing string        `yaml:"fdb_ageing"`
	Workers   *int          `yaml:"workers"`
	MicroFlow *int          `yaml:"microflow"`
	Offload   *bool         `yaml:"offload"`
	Admin     *string       `yaml:"admin"`
	Networks  []fileNetwork `yaml:"networks"`

	// PortsOnExit is keep or remove.
	PortsOnExit string `yaml:"ports_on_exit"`

	// What the VTEP accepts from the underlay and its ports (checks.go).
	VXLANReservedBits string `yaml:"vxlan_reserved_bits"`
	InnerVLAN         string `yaml:"inner_vlan"`
}

type fileNetwork struct {
	VNI     *int64     `yaml:"vni"`
	Remotes []string   `yaml:"remotes"`
	Ports   []filePort `yaml:"ports"`
}

type filePort struct {
	TAP    string `yaml:"tap"`
	Veth   string `yaml:"veth"`
	Netns  string `yaml:"netns"`
	Ifname string `yaml:"ifname"`
	MTU    *int   `yaml:"mtu"`
}

// LoadConfig reads and validates the config file at path.
func LoadConfig(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	defer f.Close()
	return ParseConfig(f)
}

// ParseConfig reads a config file's YAML from r and validates it. Unknown fields and invalid
// values are errors (wrapping ErrConfig) that name the field.
func ParseConfig(r io.Reader) (*Config, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	var fc fileConfig
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&fc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: the file is empty", ErrConfig)
		}
		return nil, fmt.Errorf("%w: %s", ErrConfig, yamlMessage(err))
	}
	return fc.validate()
}

// yamlMessage turns the YAML decoder's wording ("field x not found in type dataplane.filePort")
// into one that names the field without our Go type names.
func yamlMessage(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.TrimPrefix(msg, "unmarshal errors:\n  ")
	if i := strings.Index(msg, " not found in type "); i >= 0 {
		msg = strings.Replace(msg[:i], "field ", "unknown field ", 1)
	}
	return msg
}

func (fc *fileConfig) validate() (*Config, error) {
	c := &Config{
		Underlay:  fc.Underlay,
		Port:      DefaultPort,
		FDBMax:    DefaultFDBMax,
		FDBAgeing: DefaultFDBAgeing,
		Workers:   runtime.NumCPU(),
		MicroFlow: DefaultMicroFlow,
		Admin:     DefaultAdmin,
		Offload:   true,
	}
	if fc.Offload != nil {
		c.Offload = *fc.Offload
	}
	if err := checkIfname("underlay", fc.Underlay, true); err != nil {
		return nil, err
	}
	if fc.Local == "" {
		return nil, fieldError("local", "is required: this node's VTEP address on the underlay")
	}
	local, err := netip.ParseAddr(fc.Local)
	if err != nil || local.Zone() != "" {
		return nil, fieldError("local", "%q is not an IP address", fc.Local)
	}
	c.Local = local.Unmap()
	if !c.Local.IsGlobalUnicast() {
		return nil, fieldError("local", "%s is not a unicast address", c.Local)
	}
	if fc.Port != nil {
		if *fc.Port < 1 || *fc.Port > 65535 {
			return nil, fieldError("port", "%d is not a UDP port (1-65535)", *fc.Port)
		}
		c.Port = uint16(*fc.Port)
	}
	if fc.FDBMax != nil {
		if *fc.FDBMax < 1 || *fc.FDBMax > 1<<20 {
			return nil, fieldError("fdb_max", "%d is out of range (1-1048576)", *fc.FDBMax)
		}
		c.FDBMax = *fc.FDBMax
	}
	if fc.FDBAgeing != "" {
		d, err := time.ParseDuration(fc.FDBAgeing)
		if err != nil || d < time.Second {
			return nil, fieldError("fdb_ageing", "%q is not a duration of at least 1s (e.g. 300s)", fc.FDBAgeing)
		}
		c.FDBAgeing = d
	}
	if fc.Workers != nil {
		if *fc.Workers < 1 || *fc.Workers > MaxWorkers {
			return nil, fieldError("workers", "%d is out of range (1-%d)", *fc.Workers, MaxWorkers)
		}
		c.Workers = *fc.Workers
	}
	if fc.MicroFlow != nil {
		if *fc.MicroFlow < 1 || *fc.MicroFlow > MaxMicroFlow {
			return nil, fieldError("microflow", "%d is out of range (1-%d)", *fc.MicroFlow, MaxMicroFlow)
		}
		c.MicroFlow = *fc.MicroFlow
	}
	switch fc.PortsOnExit {
	case "", "keep":
		c.KeepPorts = true
	case "remove":
	default:
		return nil, fieldError("ports_on_exit", "%q is neither keep nor remove", fc.PortsOnExit)
	}
	if fc.Admin != nil {
		if err := CheckAdmin(*fc.Admin); err != nil {
			return nil, fieldError("admin", "%v", err)
		}
		c.Admin = *fc.Admin
	}
	if err := fc.validateChecks(c); err != nil {
		return nil, err
	}
	if len(fc.Networks) == 0 {
		return nil, fieldError("networks", "is required: at least one VNI")
	}
	vnis := map[uint32]bool{}
	taps := map[string]bool{}
	inNetns := map[string]bool{}
	for i, fn := range fc.Networks {
		at := fmt.Sprintf("networks[%d]", i)
		if fn.VNI == nil {
			return nil, fieldError(at+".vni", "is required")
		}
		if *fn.VNI < 1 || *fn.VNI > 1<<24-1 {
			return nil, fieldError(at+".vni", "%d is out of range (1-16777215)", *fn.VNI)
		}
		n := Network{VNI: uint32(*fn.VNI)}
		if vnis[n.VNI] {
			return nil, fieldError(at+".vni", "%d appears twice", n.VNI)
		}
		vnis[n.VNI] = true
		seen := map[netip.Addr]bool{}
		for j, s := range fn.Remotes {
			field := fmt.Sprintf("%s.remotes[%d]", at, j)
			a, err := netip.ParseAddr(s)
			if err != nil || a.Zone() != "" {
				return nil, fieldError(field, "%q is not an IP address", s)
			}
			a = a.Unmap()
			switch {
			case a.Is4() != c.Local.Is4():
				return nil, fieldError(field, "%s is not of the same address family as local %s", a, c.Local)
			case a == c.Local:
				return nil, fieldError(field, "%s is this node's own VTEP address", a)
			case !a.IsGlobalUnicast():
				return nil, fieldError(field, "%s is not a unicast address", a)
			case seen[a]:
				return nil, fieldError(field, "%s appears twice", a)
			}
			seen[a] = true
			n.Remotes = append(n.Remotes, a)
		}
		for j, fp := range fn.Ports {
			field := fmt.Sprintf("%s.ports[%d]", at, j)
			p := Port{TAP: fp.TAP, Veth: fp.Veth, Netns: fp.Netns, Ifname: fp.Ifname, MTU: DefaultMTU}
			kind, maxMTU := ".tap", 9000
			switch {
			case p.TAP != "" && p.Veth != "":
				return nil, fieldError(field, "has both tap and veth: a port is one or the other")
			case p.TAP == "" && p.Veth == "":
				return nil, fieldError(field+".tap", "is required, or veth: the name of the device vxdp creates")
			case p.Veth != "":
				kind, maxMTU = ".veth", MaxVethMTU
			}
			if err := checkIfname(field+kind, p.dev(), true); err != nil {
				return nil, err
			}
			if taps[p.dev()] {
				return nil, fieldError(field+kind, "%q appears twice", p.dev())
			}
			taps[p.dev()] = true
			if err := checkIfname(field+".ifname", p.Ifname, false); err != nil {
				return nil, err
			}
			if p.Netns != "" && !strings.HasPrefix(p.Netns, "/") {
				return nil, fieldError(field+".netns", "%q is not an absolute path (e.g. /run/netns/NAME)", p.Netns)
			}
			key := p.Netns + "\x00" + p.name()
			if inNetns[key] {
				return nil, fieldError(field+".ifname", "%q is used twice in the same network namespace", p.name())
			}
			inNetns[key] = true
			if p.Veth != "" {
				// The host end stays in vxdp's namespace, beside the peer if there is no netns.
				if p.Netns == "" && p.Ifname == "" {
					return nil, fieldError(field+".ifname", "is required for a veth without netns: its peer needs a name of its own")
				}
				host := "\x00" + p.Veth
				if inNetns[host] {
					return nil, fieldError(field+".veth", "%q is used twice in vxdp's network namespace", p.Veth)
				}
				inNetns[host] = true
			}
			if fp.MTU != nil {
				if *fp.MTU < 68 || *fp.MTU > maxMTU {
					return nil, fieldError(field+".mtu", "%d is out of range (68-%d)", *fp.MTU, maxMTU)
				}
				p.MTU = *fp.MTU
			}
			n.Ports = append(n.Ports, p)
		}
		if len(n.Remotes) == 0 && len(n.Ports) == 0 {
			return nil, fieldError(at, "VNI %d has neither remotes nor ports", n.VNI)
		}
		c.Networks = append(c.Networks, n)
	}
	if len(taps) > fdb.MaxIndex+1 {
		return nil, fieldError("networks", "%d ports in all; at most %d", len(taps), fdb.MaxIndex+1)
	}
	if remotes := c.remotes(); len(remotes) > fdb.MaxIndex+1 {
		return nil, fieldError("networks", "%d distinct remotes in all; at most %d", len(remotes), fdb.MaxIndex+1)
	}
	return c, nil
}

// remotes returns every distinct remote VTEP of the config, in order of appearance.
func (c *Config) remotes() []netip.Addr {
	seen := map[netip.Addr]bool{}
	var all []netip.Addr
	for _, n := range c.Networks {
		for _, a := range n.Remotes {
			if !seen[a] {
				seen[a] = true
				all = append(all, a)
			}
		}
	}
	return all
}

// name is the port's interface name in its network namespace: the TAP's or the veth peer's.
func (p Port) name() string {
	if p.Ifname != "" {
		return p.Ifname
	}
	return p.dev()
}

// dev is the name of the device vxdp creates for the port: the TAP, or the veth's host end.
func (p Port) dev() string {
	if p.Veth != "" {
		return p.Veth
	}
	return p.TAP
}

// checkIfname checks a Linux interface name: 1-15 bytes, no '/', ':' or white space.
func checkIfname(field, name string, required bool) error {
	if name == "" {
		if required {
			return fieldError(field, "is required")
		}
		return nil
	}
	if len(name) > 15 || name == "." || name == ".." || strings.ContainsAny(name, "/: \t\n") {
		return fieldError(field, "%q is not a valid interface name (1-15 bytes, no '/', ':' or spaces)", name)
	}
	return nil
}

func fieldError(field, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrConfig, field, fmt.Sprintf(format, args...))
}

// CheckAdmin checks an admin server address: "" (disabled) or host:port with an IP address
// or "localhost" as the host and a port of 1-65535. An empty host, which would listen on
// every address, must be spelled 0.0.0.0 or [::] so that exposing pprof is a choice.
func CheckAdmin(addr string) error {
	if addr == "" {
		return nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port (e.g. %s)", addr, DefaultAdmin)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q: port %q is not 1-65535", addr, port)
	}
	if host == "" {
		return fmt.Errorf("%q has no host: write 0.0.0.0 or [::] to listen on every address", addr)
	}
	if a, err := netip.ParseAddr(host); host != "localhost" && (err != nil || a.Zone() != "") {
		return fmt.Errorf("%q: host %q is not an IP address or localhost", addr, host)
	}
	return nil
}
