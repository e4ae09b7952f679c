//go:build linux

package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/vxdp/vxdp/internal/topo"
)

// startEtcd runs a real etcd server (Debian's etcd-server, 3.4) on the loopback for the
// test, with a data directory and ports of its own, stopped and removed at the end. As
// root (CI, which installs etcd-server from deps/packages) a missing etcd fails the test.
func startEtcd(t *testing.T) *topo.Etcd {
	t.Helper()
	if testing.Short() {
		t.Skip("starts an etcd server")
	}
	if _, err := exec.LookPath(topo.EtcdBinary); err != nil {
		if os.Geteuid() == 0 {
			t.Fatalf("no etcd server on PATH (Debian package etcd-server; make test installs it): %v", err)
		}
		t.Skipf("no etcd server on PATH (Debian package etcd-server): %v", err)
	}
	e, err := topo.StartEtcd(context.Background(), nil, netip.MustParseAddr("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("etcd log:\n%s", e.Log())
		}
		e.Close()
	})
	return e
}

// testLog writes a node's log lines into the test's log.
type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// follower is a Node run by a test, with the views it applied.
type follower struct {
	*Node
	mu    sync.Mutex
	views []View
	stop  context.CancelFunc
	done  chan struct{}
}

func (f *follower) last() View {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.views) == 0 {
		return View{}
	}
	return f.views[len(f.views)-1]
}

// waitFor polls f's last view until ok holds, for at most d; it returns how long it took.
func (f *follower) waitFor(t *testing.T, d time.Duration, what string, ok func(View) bool) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		if ok(f.last()) {
			return time.Since(start)
		}
		if time.Since(start) > d {
			t.Fatalf("%s: %s not seen within %v; last view %+v", f.Name(), what, d, f.last())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop ends the node's Run (which revokes its lease) and waits for it.
func (f *follower) Stop() {
	f.stop()
	<-f.done
}

func runNode(t *testing.T, e *topo.Etcd, name, vtep string, ttl time.Duration, vnis ...uint32) *follower {
	t.Helper()
	f := &follower{done: make(chan struct{})}
	n, err := New(Options{
		Endpoints: []string{e.ClientURL}, Name: name, Prefix: DefaultPrefix, LeaseTTL: ttl,
		VTEP: netip.MustParseAddr(vtep), VNIs: vnis,
		Log: slog.New(slog.NewTextHandler(testLog{t}, nil)),
		Apply: func(v View) {
			f.mu.Lock()
			f.views = append(f.views, v)
			f.mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	f.Node = n
	ctx, cancel := context.WithCancel(context.Background())
	f.stop = cancel
	go func() { defer close(f.done); n.Run(ctx) }()
	t.Cleanup(f.Stop)
	return f
}

func members(n int) func(View) bool {
	return func(v View) bool { return len(v.Members) == n }
}

func hasMember(name string, want bool) func(View) bool {
	return func(v View) bool {
		for _, m := range v.Members {
			if m.Name == name {
				return want
			}
		}
		return !want
	}
}

// rawClient is an etcd client of the test's own, for what no Node does: a node that dies.
func rawClient(t *testing.T, e *topo.Etcd) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{e.ClientURL}, Logger: zap.NewNop(), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// TestNodesFollowEachOther: three nodes against a real etcd see each other with their
// VNIs, each VNI's remotes are the others that carry it, an endpoint one publishes reaches
// the others and goes when withdrawn, and a node that stops leaves the others at once.
func TestNodesFollowEachOther(t *testing.T) {
	e := startEtcd(t)
	a := runNode(t, e, "a", "192.168.77.1", 3*time.Second, 42, 7)
	b := runNode(t, e, "b", "192.168.77.2", 3*time.Second, 42)
	c := runNode(t, e, "c", "192.168.77.3", 3*time.Second, 7)
	for _, f := range []*follower{a, b, c} {
		f.waitFor(t, 10*time.Second, "3 members", members(3))
	}
	r := a.last().Remotes(netip.MustParseAddr("192.168.77.1"), []uint32{42, 7})
	if fmt.Sprint(r[42]) != "[192.168.77.2]" || fmt.Sprint(r[7]) != "[192.168.77.3]" {
		t.Fatalf("a's remotes %v, want 42: [192.168.77.2], 7: [192.168.77.3]", r)
	}

	ctx := context.Background()
	mac := [6]byte{2, 0x42, 0, 0, 0, 1}
	if err := a.Publish(ctx, Endpoint{VNI: 42, MAC: mac, IP: netip.MustParseAddr("10.42.0.1")}); err != nil {
		t.Fatal(err)
	}
	want := Endpoint{Node: "a", VNI: 42, MAC: mac, IP: netip.MustParseAddr("10.42.0.1")}
	b.waitFor(t, 5*time.Second, "a's endpoint", func(v View) bool { return len(v.Endpoints) == 1 && v.Endpoints[0] == want })
	if err := a.Withdraw(ctx, 42, mac); err != nil {
		t.Fatal(err)
	}
	b.waitFor(t, 5*time.Second, "no endpoint", func(v View) bool { return len(v.Endpoints) == 0 })

	a.SetVNIs([]uint32{42})
	c.waitFor(t, 5*time.Second, "a's new VNIs", func(v View) bool {
		return len(v.Members) == 3 && fmt.Sprint(v.Members[0].VNIs) == "[42]"
	})

	c.Stop()
	took := a.waitFor(t, 2*time.Second, "c gone", hasMember("c", false))
	t.Logf("a node that stops cleanly left its peers' view in %v", took)
}

// TestDeadNodeExpires: a node that stops keeping its lease alive (a kill -9) leaves its
// peers' view when the lease expires, with its endpoints; the time is measured.
func TestDeadNodeExpires(t *testing.T) {
	e := startEtcd(t)
	a := runNode(t, e, "a", "192.168.77.1", 3*time.Second, 42)
	cli := rawClient(t, e)
	ctx := context.Background()
	const ttl = 2
	g, err := cli.Grant(ctx, ttl)
	if err != nil {
		t.Fatal(err)
	}
	dead := Member{Name: "dead", VTEP: netip.MustParseAddr("192.168.77.9"), VNIs: []uint32{42}}
	ep := Endpoint{Node: "dead", VNI: 42, MAC: [6]byte{2, 0, 0, 0, 0, 9}}
	if _, err := cli.Txn(ctx).Then(
		clientv3.OpPut(NodeKey(DefaultPrefix, "dead"), string(EncodeMember(dead)), clientv3.WithLease(g.ID)),
		clientv3.OpPut(EndpointKey(DefaultPrefix, ep), string(EncodeEndpoint(ep)), clientv3.WithLease(g.ID)),
	).Commit(); err != nil {
		t.Fatal(err)
	}
	written := time.Now()
	a.waitFor(t, 5*time.Second, "the dead node", func(v View) bool { return len(v.Members) == 2 && len(v.Endpoints) == 1 })
	a.waitFor(t, ttl*time.Second+3*time.Second, "the dead node gone", func(v View) bool {
		return len(v.Members) == 1 && len(v.Endpoints) == 0
	})
	t.Logf("a lease of %d s not kept alive: its node left the view %v after its last write", ttl, time.Since(written).Round(10*time.Millisecond))
}

// TestEtcdOutage: etcd stopped for longer than the lease's TTL. The nodes keep their last
// view throughout (it is never emptied), lose their leases, register again when etcd is
// back, and converge on the full view, with a node that joined after etcd came back.
func TestEtcdOutage(t *testing.T) {
	e := startEtcd(t)
	a := runNode(t, e, "a", "192.168.77.1", 2*time.Second, 42)
	b := runNode(t, e, "b", "192.168.77.2", 2*time.Second, 42)
	for _, f := range []*follower{a, b} {
		f.waitFor(t, 10*time.Second, "2 members", members(2))
	}
	a.mu.Lock()
	before := len(a.views)
	a.mu.Unlock()
	e.Stop()
	time.Sleep(5 * time.Second) // more than the TTL: the clients give their leases up
	if !members(2)(a.last()) || !members(2)(b.last()) {
		t.Fatalf("etcd away: views changed to a: %+v, b: %+v", a.last(), b.last())
	}
	if s := a.Status(); s.Registered || s.LeaseLosses == 0 {
		t.Fatalf("etcd away for longer than the lease: status %+v, want unregistered after a lost lease", s)
	}
	// The attempt to register again fails once its request times out.
	a.waitFor(t, requestTimeout+time.Second, "an etcd error counted", func(View) bool { return a.Status().EtcdErrors > 0 })
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	c := runNode(t, e, "c", "192.168.77.3", 2*time.Second, 42)
	for _, f := range []*follower{a, b, c} {
		f.waitFor(t, 15*time.Second, "3 members", members(3))
	}
	for _, f := range []*follower{a, b} {
		f.waitFor(t, 10*time.Second, "registered again", func(View) bool { s := f.Status(); return s.Registered && s.Registrations >= 2 })
	}
	a.mu.Lock()
	for _, v := range a.views[before:] {
		if len(v.Members) < 2 {
			t.Errorf("through the outage a applied a view of %d members: %+v", len(v.Members), v)
		}
	}
	a.mu.Unlock()
	// Their old leases expire now too (etcd restored them on restart): that must not take
	// the records written on the new ones.
	time.Sleep(3 * time.Second)
	for _, f := range []*follower{a, b, c} {
		f.waitFor(t, time.Second, "3 members after the old leases expired", members(3))
	}
}

// TestWatchCompacted: a watch from a revision etcd has compacted ends at once, counted, so
// that the caller lists again (runWatch) instead of missing what the compaction took.
func TestWatchCompacted(t *testing.T) {
	e := startEtcd(t)
	cli := rawClient(t, e)
	ctx := context.Background()
	var rev int64
	for i := range 5 {
		r, err := cli.Put(ctx, NodeKey(DefaultPrefix, "x"), fmt.Sprintf(`{"vtep":"10.0.0.%d","vnis":[1]}`, i+1))
		if err != nil {
			t.Fatal(err)
		}
		rev = r.Header.Revision
	}
	if _, err := cli.Compact(ctx, rev); err != nil {
		t.Fatal(err)
	}
	n, err := New(Options{Endpoints: []string{e.ClientURL}, Name: "a", Prefix: DefaultPrefix, LeaseTTL: 3 * time.Second,
		VTEP: netip.MustParseAddr("10.0.0.9"), Log: slog.New(slog.NewTextHandler(testLog{t}, nil)), Apply: func(View) {}})
	if err != nil {
		t.Fatal(err)
	}
	defer n.cli.Close()
	st := NewState(DefaultPrefix)
	st.Reset(nil, 1) // a listing long gone
	done := make(chan struct{})
	go func() { n.watch(ctx, DefaultPrefix+"/", st, func() {}); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the watch from a compacted revision did not end")
	}
	if s := n.Status(); s.Compactions != 1 {
		t.Fatalf("status %+v, want one compaction", s)
	}
}

// TestStartWithoutEtcd: a node started while etcd is down waits for it without applying
// any view (the file's remotes stand), and registers and follows once it is up.
func TestStartWithoutEtcd(t *testing.T) {
	e := startEtcd(t)
	e.Stop()
	a := runNode(t, e, "a", "192.168.77.1", 2*time.Second, 42)
	time.Sleep(time.Second)
	a.mu.Lock()
	applied := len(a.views)
	a.mu.Unlock()
	if applied != 0 || a.Status().Registered {
		t.Fatalf("etcd down: %d views applied, status %+v; want none, unregistered", applied, a.Status())
	}
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	b := runNode(t, e, "b", "192.168.77.2", 2*time.Second, 42)
	for _, f := range []*follower{a, b} {
		f.waitFor(t, 15*time.Second, "2 members", members(2))
	}
}
