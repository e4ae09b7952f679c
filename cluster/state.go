package cluster

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Key layout under the prefix (default /vxdp/v1). Every key a node writes is on its lease,
// so a node that dies takes all of them along when the lease expires.
//
//	PREFIX/nodes/NODE              {"vtep":"192.168.77.1","vnis":[42]}
//	PREFIX/macs/NODE/VNI/MAC       {"ip":"10.42.0.5"}   (MAC as 02:42:0a:2a:00:05)
const (
	nodesDir = "/nodes/"
	macsDir  = "/macs/"
)

// ErrRecord marks a key or value under the prefix that is not a record of this version of
// the layout; such a key is left out of the state (and counted), never a reason to stop.
var ErrRecord = errors.New("invalid cluster record")

// Member is one node of the cluster as its record in etcd describes it.
type Member struct {
	// Name is the node's name, the last element of its key.
	Name string
	// VTEP is the node's VTEP address on the underlay.
	VTEP netip.Addr
	// VNIs are the VNIs the node carries, sorted, without duplicates.
	VNIs []uint32
}

// Endpoint is one container MAC address that a node publishes: the MAC of a port attached
// to VNI on Node, with its IP address when the port has one.
type Endpoint struct {
	Node string
	VNI  uint32
	MAC  [6]byte
	// IP is the port's address, the zero Addr when it has none.
	IP netip.Addr
}

// memberRecord and endpointRecord are the JSON values of the keys.
type memberRecord struct {
	VTEP string   `json:"vtep"`
	VNIs []uint32 `json:"vnis"`
}

type endpointRecord struct {
	IP string `json:"ip,omitempty"`
}

// NodeKey is the key of node's record under prefix.
func NodeKey(prefix, node string) string { return prefix + nodesDir + node }

// EndpointKey is the key of an endpoint's record under prefix.
func EndpointKey(prefix string, e Endpoint) string {
	return fmt.Sprintf("%s%s%s/%d/%s", prefix, macsDir, e.Node, e.VNI, net.HardwareAddr(e.MAC[:]))
}

// EndpointsKey is the prefix of every endpoint key of node.
func EndpointsKey(prefix, node string) string { return prefix + macsDir + node + "/" }

// EncodeMember returns the value of m's record.
func EncodeMember(m Member) []byte {
	b, _ := json.Marshal(memberRecord{VTEP: m.VTEP.String(), VNIs: m.VNIs})
	return b
}

// EncodeEndpoint returns the value of e's record.
func EncodeEndpoint(e Endpoint) []byte {
	r := endpointRecord{}
	if e.IP.IsValid() {
		r.IP = e.IP.String()
	}
	b, _ := json.Marshal(r)
	return b
}

// validNode reports whether name may be a node's name: 1 to 63 bytes of letters, digits,
// '.', '_' and '-' (a hostname fits), so that it is one element of a key.
func validNode(name string) bool {
	if len(name) == 0 || len(name) > 63 || name == "." || name == ".." {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// ValidNode checks a node name for the config: see validNode.
func ValidNode(name string) error {
	if !validNode(name) {
		return fmt.Errorf("%q is not a node name (1-63 letters, digits, '.', '_', '-')", name)
	}
	return nil
}

// decodeValue decodes a JSON object strictly: unknown fields and trailing data are errors.
func decodeValue(value []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(value))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data")
	}
	return nil
}

// ParseMember parses the record of node name (the key's last element) from value.
func ParseMember(name string, value []byte) (Member, error) {
	if !validNode(name) {
		return Member{}, fmt.Errorf("%w: node name %q", ErrRecord, name)
	}
	var r memberRecord
	if err := decodeValue(value, &r); err != nil {
		return Member{}, fmt.Errorf("%w: node %s: %v", ErrRecord, name, err)
	}
	a, err := netip.ParseAddr(r.VTEP)
	if err != nil || a.Zone() != "" || !a.Unmap().IsGlobalUnicast() {
		return Member{}, fmt.Errorf("%w: node %s: vtep %q is not a unicast address", ErrRecord, name, r.VTEP)
	}
	m := Member{Name: name, VTEP: a.Unmap()}
	for _, vni := range r.VNIs {
		if vni < 1 || vni > 1<<24-1 {
			return Member{}, fmt.Errorf("%w: node %s: vni %d is out of range", ErrRecord, name, vni)
		}
		m.VNIs = append(m.VNIs, vni)
	}
	slices.Sort(m.VNIs)
	m.VNIs = slices.Compact(m.VNIs)
	return m, nil
}

// ParseEndpoint parses an endpoint's record from the part of its key after the macs
// directory (NODE/VNI/MAC) and its value.
func ParseEndpoint(rest string, value []byte) (Endpoint, error) {
	parts := strings.Split(rest, "/")
	if len(parts) != 3 || !validNode(parts[0]) {
		return Endpoint{}, fmt.Errorf("%w: endpoint key %q", ErrRecord, rest)
	}
	vni, err := strconv.ParseUint(parts[1], 10, 32)
	if err != nil || vni < 1 || vni > 1<<24-1 || strconv.FormatUint(vni, 10) != parts[1] {
		return Endpoint{}, fmt.Errorf("%w: endpoint key %q: vni", ErrRecord, rest)
	}
	hw, err := net.ParseMAC(parts[2])
	if err != nil || len(hw) != 6 || hw.String() != parts[2] {
		return Endpoint{}, fmt.Errorf("%w: endpoint key %q: mac", ErrRecord, rest)
	}
	// A container's MAC is unicast and not zero: anything else would become a static FDB
	// entry that swallows broadcast or multicast.
	if hw[0]&1 != 0 || [6]byte(hw) == ([6]byte{}) {
		return Endpoint{}, fmt.Errorf("%w: endpoint key %q: %s is not a unicast mac", ErrRecord, rest, hw)
	}
	e := Endpoint{Node: parts[0], VNI: uint32(vni), MAC: [6]byte(hw)}
	var r endpointRecord
	if err := decodeValue(value, &r); err != nil {
		return Endpoint{}, fmt.Errorf("%w: endpoint %s: %v", ErrRecord, rest, err)
	}
	if r.IP != "" {
		a, err := netip.ParseAddr(r.IP)
		if err != nil || a.Zone() != "" {
			return Endpoint{}, fmt.Errorf("%w: endpoint %s: ip %q", ErrRecord, rest, r.IP)
		}
		e.IP = a.Unmap()
	}
	return e, nil
}

// KV is one key of a listing or of a watch event, as etcd returns it.
type KV struct {
	Key   string
	Value []byte
	// ModRevision is the store revision of the key's last change (of the deletion, for a
	// delete event).
	ModRevision int64
}

// Event is one change the watch delivers: a put of KV, or its deletion.
type Event struct {
	Delete bool
	KV     KV
}

// State is the cluster as the keys under the prefix describe it: the members and the
// endpoints they publish. It is pure: Reset loads a listing, Apply one watch event, and a
// listing at revision R followed by the events after R gives the same state as a listing
// taken after them (TestSnapshotPlusEvents, FuzzReconcile). Not safe for concurrent use.
type State struct {
	prefix string
	// listRev is the revision of the listing the state started from: the watch begins
	// after it. rev is the revision the state reflects: listRev, then the last event's.
	listRev   int64
	rev       int64
	members   map[string]Member
	endpoints map[string]Endpoint // by key
	// Invalid counts the keys under the prefix that were not records, since New.
	Invalid uint64
	// LastInvalid describes the last of them, for a log line.
	LastInvalid error
}

// NewState returns an empty state of the keys under prefix.
func NewState(prefix string) *State {
	return &State{prefix: prefix, members: map[string]Member{}, endpoints: map[string]Endpoint{}}
}

// Revision returns the store revision the state reflects.
func (s *State) Revision() int64 { return s.rev }

// Reset replaces the state with a listing of the prefix taken at store revision rev.
func (s *State) Reset(kvs []KV, rev int64) {
	clear(s.members)
	clear(s.endpoints)
	for _, kv := range kvs {
		s.put(kv)
	}
	s.listRev, s.rev = rev, rev
}

// Apply applies one watch event. Events at or before the listing's revision are already in
// the state and are ignored; so are keys outside the prefix. It reports
// whether the event changed the state.
func (s *State) Apply(ev Event) bool {
	if ev.KV.ModRevision <= s.listRev {
		// A watch started after the listing never sends these.
		return false
	}
	// Events of one transaction share a revision; all of them are applied.
	s.rev = max(s.rev, ev.KV.ModRevision)
	if ev.Delete {
		return s.delete(ev.KV.Key)
	}
	return s.put(ev.KV)
}

// put stores kv's record, or forgets the key if kv is not a valid record (a later put may
// have made a valid key invalid). It reports whether the state changed.
func (s *State) put(kv KV) bool {
	rest, ok := strings.CutPrefix(kv.Key, s.prefix)
	if !ok {
		return false
	}
	var err error
	switch {
	case strings.HasPrefix(rest, nodesDir):
		var m Member
		name := rest[len(nodesDir):]
		if m, err = ParseMember(name, kv.Value); err == nil {
			old, had := s.members[name]
			s.members[name] = m
			return !had || !equalMember(old, m)
		}
	case strings.HasPrefix(rest, macsDir):
		var e Endpoint
		if e, err = ParseEndpoint(rest[len(macsDir):], kv.Value); err == nil {
			old, had := s.endpoints[kv.Key]
			s.endpoints[kv.Key] = e
			return !had || old != e
		}
	default:
		err = fmt.Errorf("%w: key %q", ErrRecord, kv.Key)
	}
	s.Invalid++
	s.LastInvalid = err
	return s.delete(kv.Key)
}

// delete forgets key; it reports whether the state changed.
func (s *State) delete(key string) bool {
	rest, ok := strings.CutPrefix(key, s.prefix)
	if !ok {
		return false
	}
	if name, ok := strings.CutPrefix(rest, nodesDir); ok {
		if _, had := s.members[name]; had {
			delete(s.members, name)
			return true
		}
		return false
	}
	if _, had := s.endpoints[key]; had {
		delete(s.endpoints, key)
		return true
	}
	return false
}

func equalMember(a, b Member) bool {
	return a.Name == b.Name && a.VTEP == b.VTEP && slices.Equal(a.VNIs, b.VNIs)
}

// View returns the members, sorted by name, and the endpoints whose node is a member,
// sorted by node, VNI and MAC. An endpoint whose node has no record (yet, or any more) is
// left out: it has no VTEP to point at.
func (s *State) View() View {
	v := View{}
	for _, m := range s.members {
		v.Members = append(v.Members, m)
	}
	slices.SortFunc(v.Members, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	for _, e := range s.endpoints {
		if _, ok := s.members[e.Node]; ok {
			v.Endpoints = append(v.Endpoints, e)
		}
	}
	slices.SortFunc(v.Endpoints, compareEndpoints)
	return v
}

func compareEndpoints(a, b Endpoint) int {
	if c := strings.Compare(a.Node, b.Node); c != 0 {
		return c
	}
	if a.VNI != b.VNI {
		if a.VNI < b.VNI {
			return -1
		}
		return 1
	}
	return bytes.Compare(a.MAC[:], b.MAC[:])
}

// View is the cluster at one revision, as the dataplane is to see it.
type View struct {
	Members   []Member
	Endpoints []Endpoint
}

// Equal reports whether v and w describe the same cluster.
func (v View) Equal(w View) bool {
	return slices.EqualFunc(v.Members, w.Members, equalMember) && slices.Equal(v.Endpoints, w.Endpoints)
}

// Remotes returns, for each VNI in vnis, the VTEP addresses of the other members that carry
// it: sorted, without duplicates, without local (this node's own VTEP, also under another
// name: a record this node left under an earlier name) and without addresses of the other
// family than local's, which the dataplane cannot reach.
func (v View) Remotes(local netip.Addr, vnis []uint32) map[uint32][]netip.Addr {
	out := make(map[uint32][]netip.Addr, len(vnis))
	for _, vni := range vnis {
		var addrs []netip.Addr
		for _, m := range v.Members {
			if m.VTEP == local || m.VTEP.Is4() != local.Is4() {
				continue
			}
			if _, ok := slices.BinarySearch(m.VNIs, vni); ok {
				addrs = append(addrs, m.VTEP)
			}
		}
		slices.SortFunc(addrs, netip.Addr.Compare)
		out[vni] = slices.Compact(addrs)
	}
	return out
}
