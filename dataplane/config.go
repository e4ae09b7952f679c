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
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/vxdp/vxdp/dataplane/fdb"
	"github.com/vxdp/vxdp/dataplane/packet"
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
	// RunToCompletion lets a queue's reader process and deliver a micro-flow itself while
	// nothing else of its queue is in flight and the RX ring has no more: the hand-offs to
	// a worker and to the merger buy no parallelism then, only scheduler work. On by
	// default (config field run_to_completion).
	RunToCompletion bool
	// TAPIOUring writes each micro-flow's TAP deliveries with one io_uring_enter per queue
	// instead of one write per frame (config field tap_io_uring; on by default). Where
	// the kernel refuses io_uring, vxdp says so once and writes one frame per syscall.
	TAPIOUring bool
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
	// Header are the outer headers' options: config fields ttl, tos, df and udp_checksum
	// (packet.DefaultHeaderOptions by default). Reloadable but for UDPChecksum.
	Header packet.HeaderOptions
	// SrcPorts is the outer UDP source port range (config field srcport); the zero value
	// is packet.DefaultPortRange.
	SrcPorts packet.PortRange
	// NoLearning stops learning inner source MACs from remote VTEPs (config field
	// learning: false): unicast to a MAC neither static nor local is flooded. Reloadable.
	NoLearning bool
	// Cluster is the cluster section, nil without one: the node then runs on this
	// file's remotes alone.
	Cluster *Cluster
	// API is the path of the API socket the CNI plugin talks to; "" turns it off. Its
	// default is DefaultAPI with a cluster section, off without one.
	API string
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
	// FDB are static entries: MAC addresses behind one of Remotes, never aged or evicted.
	FDB []StaticEntry
	// Neighbours map inner IP addresses to MAC addresses, for NeighSuppress.
	Neighbours []Neighbour
	// NeighSuppress answers ARP requests and IPv6 neighbour solicitations from local ports
	// for an address of Neighbours locally instead of flooding them.
	NeighSuppress bool
}

// StaticEntry is a static FDB entry: MAC lives behind the remote VTEP Remote.
type StaticEntry struct {
	MAC    [6]byte
	Remote netip.Addr
}

// Neighbour is an inner IP address and the MAC address that answers for it.
type Neighbour struct {
	IP  netip.Addr
	MAC [6]byte
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
	Underlay  string `yaml:"underlay"`
	Local     string `yaml:"local"`
	Port      *int   `yaml:"port"`
	FDBMax    *int   `yaml:"fdb_max"`
	FDBAgeing string `yaml:"fdb_ageing"`
	Workers   *int   `yaml:"workers"`
	MicroFlow *int   `yaml:"microflow"`
	Offload   *bool  `yaml:"offload"`
	// RunToCompletion is run_to_completion.
	RunToCompletion *bool         `yaml:"run_to_completion"`
	Admin           *string       `yaml:"admin"`
	Networks        []fileNetwork `yaml:"networks"`

	// PortsOnExit is keep or remove.
	PortsOnExit string `yaml:"ports_on_exit"`

	// How the mergers write to TAPs: io_uring batches (default) or one write per frame.
	TAPIOUring *bool `yaml:"tap_io_uring"`

	// What the VTEP accepts from the underlay and its ports (checks.go).
	VXLANReservedBits string `yaml:"vxlan_reserved_bits"`
	InnerVLAN         string `yaml:"inner_vlan"`

	// The outer headers, named as iproute2's vxlan options.
	TTL         string `yaml:"ttl"`
	TOS         string `yaml:"tos"`
	DF          string `yaml:"df"`
	SrcPort     []int  `yaml:"srcport"`
	UDPChecksum *bool  `yaml:"udp_checksum"`
	Learning    *bool  `yaml:"learning"`

	// Cluster mode and the API socket.
	Cluster *fileCluster `yaml:"cluster"`
	API     *string      `yaml:"api"`
}

type fileNetwork struct {
	VNI           *int64          `yaml:"vni"`
	Remotes       []string        `yaml:"remotes"`
	Ports         []filePort      `yaml:"ports"`
	FDB           []fileFDB       `yaml:"fdb"`
	Neighbours    []fileNeighbour `yaml:"neighbours"`
	NeighSuppress bool            `yaml:"neigh_suppress"`
}

type fileFDB struct {
	MAC    string `yaml:"mac"`
	Remote string `yaml:"remote"`
}

type fileNeighbour struct {
	IP  string `yaml:"ip"`
	MAC string `yaml:"mac"`
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
		return nil, fmt.Errorf("%w: %s", ErrConfig, yamlMessage(err, data))
	}
	return fc.validate()
}

// yamlMessage turns the YAML decoder's wording ("field x not found in type dataplane.filePort",
// "line 3: cannot unmarshal !!int `5000` into []int") into one that names the field without our
// Go type names ("srcport: 5000 is not a list"); data is the file, to find the field by line.
func yamlMessage(err error, data []byte) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.TrimPrefix(msg, "unmarshal errors:\n  ")
	if i := strings.Index(msg, "\n"); i >= 0 {
		msg = msg[:i] // the first error is enough
	}
	if i := strings.Index(msg, " not found in type "); i >= 0 {
		return strings.Replace(msg[:i], "field ", "unknown field ", 1)
	}
	var line int
	var value, goType string
	if n, _ := fmt.Sscanf(msg, "line %d: cannot unmarshal ", &line); n != 1 {
		return msg
	}
	if a, b := strings.Index(msg, "`"), strings.LastIndex(msg, "`"); a >= 0 && b > a {
		value = msg[a+1 : b]
	}
	if i := strings.LastIndex(msg, " into "); i >= 0 {
		goType = msg[i+len(" into "):]
	}
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil {
		return msg
	}
	field := yamlPath(&root, "", line, value)
	if field == "" {
		return msg
	}
	kind := "a mapping"
	switch strings.TrimPrefix(goType, "*") {
	case "bool":
		kind = "true or false"
	case "int", "int64", "uint8", "uint16", "uint32":
		kind = "a number"
	case "string":
		kind = "a string"
	default:
		if strings.HasPrefix(goType, "[]") {
			kind = "a list"
		}
	}
	if value == "" { // a list or a mapping: yaml.v3 names its tag
		got := "a mapping"
		if strings.Contains(msg, "!!seq") {
			got = "a list"
		}
		return fmt.Sprintf("%s: is %s, not %s", field, got, kind)
	}
	return fmt.Sprintf("%s: %s is not %s", field, value, kind)
}

// yamlPath returns the path (networks[0].ports[1].mtu) of the value at line whose text is value
// within node, or of the mapping entry at line if no value matches; "" if neither is there.
func yamlPath(node *yaml.Node, path string, line int, value string) string {
	switch node.Kind {
	case yaml.DocumentNode:
		for _, c := range node.Content {
			if p := yamlPath(c, path, line, value); p != "" {
				return p
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(node.Content); i += 2 {
			k, v := node.Content[i], node.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			if sub := yamlPath(v, p, line, value); sub != "" {
				return sub
			}
			if k.Line == line && v.Kind != yaml.ScalarNode {
				return p // a list or mapping where a value was expected, or the reverse
			}
		}
	case yaml.SequenceNode:
		for j, c := range node.Content {
			if sub := yamlPath(c, fmt.Sprintf("%s[%d]", path, j), line, value); sub != "" {
				return sub
			}
		}
	case yaml.ScalarNode:
		if node.Line == line && node.Value == value {
			return path
		}
	}
	return ""
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

		RunToCompletion: true,
	}
	if fc.Offload != nil {
		c.Offload = *fc.Offload
	}
	if fc.RunToCompletion != nil {
		c.RunToCompletion = *fc.RunToCompletion
	}
	c.TAPIOUring = fc.TAPIOUring == nil || *fc.TAPIOUring
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
	if err := fc.validateHeader(c); err != nil {
		return nil, err
	}
	if fc.Cluster != nil {
		if c.Cluster, err = fc.Cluster.validate(); err != nil {
			return nil, err
		}
		c.API = DefaultAPI
	}
	if fc.API != nil {
		if *fc.API != "" && (!strings.HasPrefix(*fc.API, "/") || strings.HasSuffix(*fc.API, "/") || len(*fc.API) > 100) {
			return nil, fieldError("api", "%q is not an absolute path of at most 100 bytes (a unix socket's limit)", *fc.API)
		}
		c.API = *fc.API
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
		if err := fn.validateEntries(at, &n); err != nil {
			return nil, err
		}
		// In a cluster the remotes come from the other members.
		if len(n.Remotes) == 0 && len(n.Ports) == 0 && c.Cluster == nil {
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

// validateHeader checks the outer header fields into c.Header, c.SrcPorts and c.NoLearning.
func (fc *fileConfig) validateHeader(c *Config) error {
	c.Header = packet.DefaultHeaderOptions
	c.SrcPorts = packet.DefaultPortRange
	switch fc.TTL {
	case "":
	case "inherit":
		c.Header.TTL = 0
	default:
		n, err := strconv.ParseUint(fc.TTL, 10, 8)
		if err != nil || n == 0 {
			return fieldError("ttl", "%q is neither 1-255 nor inherit", fc.TTL)
		}
		c.Header.TTL = uint8(n)
	}
	switch fc.TOS {
	case "":
	case "inherit":
		c.Header.TOSInherit = true
	default:
		n, err := strconv.ParseUint(fc.TOS, 0, 8)
		if err != nil {
			return fieldError("tos", "%q is neither 0-255 nor inherit", fc.TOS)
		}
		c.Header.TOS = uint8(n)
	}
	switch fc.DF {
	case "", "unset":
	case "set":
		c.Header.DF = packet.DFSet
	case "inherit":
		c.Header.DF = packet.DFInherit
	default:
		return fieldError("df", "%q is none of unset, set, inherit", fc.DF)
	}
	if fc.SrcPort != nil {
		r := fc.SrcPort
		if len(r) != 2 {
			return fieldError("srcport", "%v is not a range [MIN, MAX]", r)
		}
		if r[0] < 1 || r[0] > 65535 || r[1] < 1 || r[1] > 65535 || r[0] > r[1] {
			return fieldError("srcport", "[%d, %d] is not a range of UDP ports (1-65535, MIN <= MAX)", r[0], r[1])
		}
		c.SrcPorts = packet.PortRange{Min: uint16(r[0]), Max: uint16(r[1])}
	}
	if fc.UDPChecksum != nil {
		c.Header.UDPChecksum = *fc.UDPChecksum
	}
	if fc.Learning != nil {
		c.NoLearning = !*fc.Learning
	}
	return nil
}

// validateEntries checks the static FDB entries and the neighbours of network n (field at),
// whose remotes are checked already.
func (fn *fileNetwork) validateEntries(at string, n *Network) error {
	n.NeighSuppress = fn.NeighSuppress
	macs := map[[6]byte]bool{}
	for j, fe := range fn.FDB {
		field := fmt.Sprintf("%s.fdb[%d]", at, j)
		mac, err := unicastMAC(fe.MAC)
		if err != nil {
			return fieldError(field+".mac", "%v", err)
		}
		if macs[mac] {
			return fieldError(field+".mac", "%s appears twice", fe.MAC)
		}
		macs[mac] = true
		a, err := netip.ParseAddr(fe.Remote)
		if err != nil || a.Zone() != "" {
			return fieldError(field+".remote", "%q is not an IP address", fe.Remote)
		}
		if a = a.Unmap(); !slices.Contains(n.Remotes, a) {
			return fieldError(field+".remote", "%s is not one of the VNI's remotes", a)
		}
		n.FDB = append(n.FDB, StaticEntry{MAC: mac, Remote: a})
	}
	ips := map[netip.Addr]bool{}
	for j, fe := range fn.Neighbours {
		field := fmt.Sprintf("%s.neighbours[%d]", at, j)
		a, err := netip.ParseAddr(fe.IP)
		if err != nil || a.Zone() != "" {
			return fieldError(field+".ip", "%q is not an IP address", fe.IP)
		}
		a = a.Unmap()
		if a.IsMulticast() || a.IsUnspecified() || (a.Is4() && a == netip.AddrFrom4([4]byte{255, 255, 255, 255})) {
			return fieldError(field+".ip", "%s is not a unicast address", a)
		}
		if ips[a] {
			return fieldError(field+".ip", "%s appears twice", a)
		}
		ips[a] = true
		mac, err := unicastMAC(fe.MAC)
		if err != nil {
			return fieldError(field+".mac", "%v", err)
		}
		n.Neighbours = append(n.Neighbours, Neighbour{IP: a, MAC: mac})
	}
	return nil
}

// unicastMAC parses a 6-byte unicast MAC address that is not zero.
func unicastMAC(s string) ([6]byte, error) {
	hw, err := net.ParseMAC(s)
	if err != nil || len(hw) != 6 {
		return [6]byte{}, fmt.Errorf("%q is not a MAC address (e.g. 02:aa:00:00:00:01)", s)
	}
	mac := [6]byte(hw)
	if mac[0]&1 != 0 || mac == [6]byte{} {
		return mac, fmt.Errorf("%s is not a unicast address", hw)
	}
	return mac, nil
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
