package cluster

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"testing"
)

const testPrefix = "/vxdp/v1"

// store is a model of etcd's key space: revisions, puts, deletes and transactions, and
// the events a watch would deliver.
type store struct {
	rev    int64
	kvs    map[string]KV
	events []Event
}

func newStore() *store { return &store{rev: 1, kvs: map[string]KV{}} }

// txn applies puts (value non-nil) and deletes (nil) at one new revision, as etcd does with
// one transaction (or one request). A delete of a missing key is no event, as in etcd.
func (st *store) txn(ops []op) {
	rev := st.rev + 1
	changed := false
	for _, o := range ops {
		if o.value == nil {
			if _, ok := st.kvs[o.key]; !ok {
				continue
			}
			delete(st.kvs, o.key)
			st.events = append(st.events, Event{Delete: true, KV: KV{Key: o.key, ModRevision: rev}})
		} else {
			kv := KV{Key: o.key, Value: o.value, ModRevision: rev}
			st.kvs[o.key] = kv
			st.events = append(st.events, Event{KV: kv})
		}
		changed = true
	}
	if changed {
		st.rev = rev
	}
}

func (st *store) list() []KV { return slices.Collect(maps.Values(st.kvs)) }

type op struct {
	key   string
	value []byte // nil: delete
}

// The keys and values the model draws from: valid records, records that change, invalid
// ones, and keys outside the layout.
var (
	modelKeys = []string{
		NodeKey(testPrefix, "a"), NodeKey(testPrefix, "b"), NodeKey(testPrefix, "c"),
		EndpointKey(testPrefix, Endpoint{Node: "a", VNI: 42, MAC: [6]byte{2, 0, 0, 0, 0, 1}}),
		EndpointKey(testPrefix, Endpoint{Node: "b", VNI: 42, MAC: [6]byte{2, 0, 0, 0, 0, 2}}),
		EndpointKey(testPrefix, Endpoint{Node: "c", VNI: 7, MAC: [6]byte{2, 0, 0, 0, 0, 3}}),
		EndpointKey(testPrefix, Endpoint{Node: "d", VNI: 42, MAC: [6]byte{2, 0, 0, 0, 0, 4}}),
		testPrefix + "/nodes/bad name",
		testPrefix + "/macs/a/42/not-a-mac",
		testPrefix + "/other",
		"/elsewhere/nodes/a",
	}
	modelValues = [][]byte{
		[]byte(`{"vtep":"192.168.77.1","vnis":[42]}`),
		[]byte(`{"vtep":"192.168.77.2","vnis":[42,7]}`),
		[]byte(`{"vtep":"192.168.77.3","vnis":[7]}`),
		[]byte(`{"ip":"10.42.0.5"}`),
		[]byte(`{}`),
		[]byte(`{"vtep":"192.168.77.1","vnis":[42],"extra":1}`),
		[]byte(`not json`),
		[]byte(`{"ip":"10.42.0.6"}`),
	}
)

// decodeOps turns fuzz bytes into transactions: each byte is one op (key from the low
// nibble, value or delete from the high one); a byte with both top bits set ends a
// transaction.
func decodeOps(data []byte) [][]op {
	var txns [][]op
	var cur []op
	for _, b := range data {
		if b&0xc0 == 0xc0 {
			txns = append(txns, cur)
			cur = nil
			continue
		}
		o := op{key: modelKeys[int(b&0x0f)%len(modelKeys)]}
		if v := int(b>>4) & 0x3; v != 0 || b&0x08 == 0 {
			o.value = modelValues[(int(b>>4)+int(b&0x7))%len(modelValues)]
		}
		cur = append(cur, o)
	}
	return append(txns, cur)
}

// checkSnapshotPlusEvents builds the store's history from txns, takes a listing after the
// first split transactions, and checks that the listing plus every later event (and the
// earlier ones replayed, which must be ignored) gives the state of a listing of the end.
func checkSnapshotPlusEvents(t *testing.T, txns [][]op, split int) {
	t.Helper()
	st := newStore()
	split = min(split, len(txns))
	for _, ops := range txns[:split] {
		st.txn(ops)
	}
	snap, snapRev, before := st.list(), st.rev, len(st.events)
	for _, ops := range txns[split:] {
		st.txn(ops)
	}
	got := NewState(testPrefix)
	got.Reset(snap, snapRev)
	for i, ev := range st.events {
		changed := got.Apply(ev)
		if i < before && changed {
			t.Fatalf("event %d at revision %d, before the listing's %d, changed the state", i, ev.KV.ModRevision, snapRev)
		}
	}
	want := NewState(testPrefix)
	want.Reset(st.list(), st.rev)
	if !got.View().Equal(want.View()) {
		t.Fatalf("listing at %d plus events gives\n%+v\nlisting at %d gives\n%+v", snapRev, got.View(), st.rev, want.View())
	}
	if got.Revision() != want.Revision() {
		t.Fatalf("revision %d after the events, want %d", got.Revision(), want.Revision())
	}
}

// TestSnapshotPlusEvents: a listing and the events after it give the state of a listing
// taken after them, through node records coming, changing and going, endpoints of members
// and of nodes without a record, invalid records replacing valid ones, and transactions.
func TestSnapshotPlusEvents(t *testing.T) {
	node := func(name, v string) op { return op{key: NodeKey(testPrefix, name), value: []byte(v)} }
	del := func(key string) op { return op{key: key} }
	ep := Endpoint{Node: "a", VNI: 42, MAC: [6]byte{2, 0, 0, 0, 0, 1}, IP: netip.MustParseAddr("10.42.0.1")}
	history := [][]op{
		{node("a", `{"vtep":"192.168.77.1","vnis":[42]}`)},
		{node("b", `{"vtep":"192.168.77.2","vnis":[42,7]}`), {key: EndpointKey(testPrefix, ep), value: EncodeEndpoint(ep)}},
		{node("c", `{"vtep":"192.168.77.3","vnis":[7]}`)},
		{node("a", `{"vtep":"192.168.77.1","vnis":[42,7]}`)}, // a changes its VNIs
		{del(NodeKey(testPrefix, "b"))},                      // b's lease expires...
		{node("b", `{"vtep":"192.168.77.2","vnis":[42]}`)},   // ...and it comes back
		{node("c", `garbage`)},                               // c's record turns invalid
		{del(NodeKey(testPrefix, "a")), del(EndpointKey(testPrefix, ep))},
	}
	for split := range len(history) + 1 {
		t.Run(fmt.Sprint(split), func(t *testing.T) { checkSnapshotPlusEvents(t, history, split) })
	}
}

// FuzzReconcile checks the same property as TestSnapshotPlusEvents on histories drawn
// from the fuzzer's bytes, split at the fuzzer's point.
func FuzzReconcile(f *testing.F) {
	f.Add([]byte{0x00, 0x11, 0xc0, 0x23, 0x08, 0xc0, 0x18}, uint8(1))
	f.Add([]byte{0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0xc0, 0x08, 0x09, 0xc0, 0x37, 0x0a}, uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, split uint8) {
		if len(data) > 256 {
			return
		}
		checkSnapshotPlusEvents(t, decodeOps(data), int(split))
	})
}

// FuzzParseRecord: the parsers take any key and value without panicking, and whatever
// they accept encodes back to a record that parses to the same thing.
func FuzzParseRecord(f *testing.F) {
	f.Add("node-a", []byte(`{"vtep":"192.168.77.1","vnis":[42,7,42]}`))
	f.Add("node-a/42/02:00:00:00:00:01", []byte(`{"ip":"10.42.0.5"}`))
	f.Add("n/1/02:00:00:00:00:01", []byte(`{}`))
	f.Add("x", []byte(`{"vtep":"fe80::1%eth0","vnis":[]}`))
	f.Add("x", []byte(`{"vtep":"::ffff:10.0.0.1","vnis":[16777216]}`))
	f.Fuzz(func(t *testing.T, key string, value []byte) {
		if m, err := ParseMember(key, value); err == nil {
			m2, err := ParseMember(key, EncodeMember(m))
			if err != nil || !equalMember(m, m2) {
				t.Fatalf("member %+v encodes to %s, which parses to %+v, %v", m, EncodeMember(m), m2, err)
			}
		} else if !errors.Is(err, ErrRecord) {
			t.Fatalf("ParseMember error %v does not wrap ErrRecord", err)
		}
		if e, err := ParseEndpoint(key, value); err == nil {
			k := EndpointKey(testPrefix, e)
			if k != testPrefix+macsDir+key {
				t.Fatalf("endpoint %+v has key %q, parsed from %q", e, k, key)
			}
			e2, err := ParseEndpoint(key, EncodeEndpoint(e))
			if err != nil || e2 != e {
				t.Fatalf("endpoint %+v encodes to %s, which parses to %+v, %v", e, EncodeEndpoint(e), e2, err)
			}
		} else if !errors.Is(err, ErrRecord) {
			t.Fatalf("ParseEndpoint error %v does not wrap ErrRecord", err)
		}
	})
}

func TestParseMember(t *testing.T) {
	m, err := ParseMember("node-a", []byte(`{"vtep":"::ffff:192.168.77.1","vnis":[42,7,42]}`))
	if err != nil {
		t.Fatal(err)
	}
	if m.VTEP != netip.MustParseAddr("192.168.77.1") || !slices.Equal(m.VNIs, []uint32{7, 42}) {
		t.Fatalf("parsed %+v, want VTEP 192.168.77.1 and VNIs [7 42]", m)
	}
	for _, tc := range []struct{ name, value string }{
		{"node a", `{"vtep":"192.168.77.1","vnis":[42]}`},
		{"a", `{"vtep":"192.168.77.1","vnis":[0]}`},
		{"a", `{"vtep":"192.168.77.1","vnis":[16777216]}`},
		{"a", `{"vtep":"224.0.0.1","vnis":[42]}`},
		{"a", `{"vtep":"fe80::1%eth0","vnis":[42]}`},
		{"a", `{"vtep":"192.168.77.1","vnis":[42],"x":1}`},
		{"a", `{"vtep":"192.168.77.1"} {}`},
		{"..", `{"vtep":"192.168.77.1"}`},
	} {
		if _, err := ParseMember(tc.name, []byte(tc.value)); !errors.Is(err, ErrRecord) {
			t.Errorf("ParseMember(%q, %s) = %v, want ErrRecord", tc.name, tc.value, err)
		}
	}
}

func TestParseEndpoint(t *testing.T) {
	e, err := ParseEndpoint("node-a/42/02:42:0a:2a:00:05", []byte(`{"ip":"10.42.0.5"}`))
	if err != nil || e.VNI != 42 || e.Node != "node-a" || e.IP != netip.MustParseAddr("10.42.0.5") {
		t.Fatalf("parsed %+v, %v", e, err)
	}
	for _, key := range []string{"a/42/ff:ff:ff:ff:ff:ff", "a/42/01:00:5e:00:00:01", "a/42/00:00:00:00:00:00",
		"a/042/02:00:00:00:00:01", "a/0/02:00:00:00:00:01", "a/42/02:00:00:00:00:0A", "a/42", "a b/42/02:00:00:00:00:01"} {
		if _, err := ParseEndpoint(key, []byte(`{}`)); !errors.Is(err, ErrRecord) {
			t.Errorf("ParseEndpoint(%q) = %v, want ErrRecord", key, err)
		}
	}
}

// TestRemotes: each VNI's remotes are the other members that carry it, without this node's
// own VTEP (also under another name) nor the other address family.
func TestRemotes(t *testing.T) {
	a := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	v := View{Members: []Member{
		{Name: "self", VTEP: a("10.0.0.1"), VNIs: []uint32{1, 2}},
		{Name: "old-self", VTEP: a("10.0.0.1"), VNIs: []uint32{1}},
		{Name: "b", VTEP: a("10.0.0.3"), VNIs: []uint32{1}},
		{Name: "c", VTEP: a("10.0.0.2"), VNIs: []uint32{1, 2}},
		{Name: "d", VTEP: a("fd00::4"), VNIs: []uint32{1}},
		{Name: "e", VTEP: a("10.0.0.5"), VNIs: []uint32{3}},
	}}
	got := v.Remotes(a("10.0.0.1"), []uint32{1, 2, 4})
	want := map[uint32][]netip.Addr{1: {a("10.0.0.2"), a("10.0.0.3")}, 2: {a("10.0.0.2")}, 4: nil}
	if !maps.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("remotes %v, want %v", got, want)
	}
}

// TestViewLeavesOutOrphanEndpoints: an endpoint whose node has no record is not in the view
// until the record comes.
func TestViewLeavesOutOrphanEndpoints(t *testing.T) {
	s := NewState(testPrefix)
	e := Endpoint{Node: "b", VNI: 42, MAC: [6]byte{2, 0, 0, 0, 0, 2}}
	s.Reset([]KV{{Key: EndpointKey(testPrefix, e), Value: EncodeEndpoint(e), ModRevision: 2}}, 2)
	if n := len(s.View().Endpoints); n != 0 {
		t.Fatalf("%d endpoints in the view without their node's record", n)
	}
	m := Member{Name: "b", VTEP: netip.MustParseAddr("10.0.0.2"), VNIs: []uint32{42}}
	if !s.Apply(Event{KV: KV{Key: NodeKey(testPrefix, "b"), Value: EncodeMember(m), ModRevision: 3}}) {
		t.Fatal("the node's record changed nothing")
	}
	if v := s.View(); len(v.Endpoints) != 1 || v.Endpoints[0] != e {
		t.Fatalf("view %+v, want the endpoint of b", v)
	}
}
