package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Defaults of the config file's cluster section.
const (
	// DefaultPrefix is the key prefix of a cluster: versioned, so that a later layout can
	// live beside this one during an upgrade.
	DefaultPrefix = "/vxdp/v1"
	// DefaultLeaseTTL is how long a dead node stays listed: long enough that a busy node
	// or a short etcd election does not drop it, short enough that a dead one goes soon.
	DefaultLeaseTTL = 10 * time.Second
	// MinLeaseTTL is the shortest lease: etcd's own minimum with its default timing
	// (1.5 election timeouts of 1 s) rounded up to whole seconds, etcd's unit.
	MinLeaseTTL = 2 * time.Second
)

const (
	// requestTimeout bounds each etcd request, so a stuck connection is noticed and
	// retried rather than waited on.
	requestTimeout = 5 * time.Second
	// retryMin and retryMax bound the wait between attempts after an etcd error: it
	// doubles from retryMin up to retryMax, the most a node stays unregistered (or a view
	// stale) for after etcd comes back.
	retryMin = 100 * time.Millisecond
	retryMax = 2 * time.Second
	// revokeTimeout bounds the lease's revocation at exit: a node that leaves cleanly is
	// gone from its peers at once, and an unreachable etcd delays the exit by this at most.
	revokeTimeout = 2 * time.Second
)

// Options configure a Node.
type Options struct {
	// Endpoints are etcd's client URLs.
	Endpoints []string
	// Name is this node's name in the cluster.
	Name string
	// Prefix is the key prefix, without a trailing slash.
	Prefix string
	// LeaseTTL is the lease's time to live, a whole number of seconds, at least MinLeaseTTL.
	LeaseTTL time.Duration
	// VTEP is this node's VTEP address, published in its record.
	VTEP netip.Addr
	// VNIs are the VNIs this node carries, published in its record.
	VNIs []uint32
	// Log receives what the node does and every etcd error.
	Log *slog.Logger
	// Apply receives each view of the cluster that differs from the one before: at once
	// after every listing, and after each watch event that changes it. It is called from
	// one goroutine at a time and should not block for long (it delays the next view).
	Apply func(View)
}

// Node is this node's membership of a cluster: its registration on a lease, and its
// watch of everyone's records. Its methods are safe for concurrent use.
type Node struct {
	opts Options
	cli  *clientv3.Client
	log  *slog.Logger

	// mu guards what this node publishes: its VNIs and endpoints.
	mu        sync.Mutex
	vnis      []uint32
	endpoints map[string]Endpoint // by key
	// sync wakes the lease loop to write this node's records again; relist makes the
	// watch loop list the prefix again (after the lease was lost: etcd may have been away).
	sync   chan struct{}
	relist chan struct{}

	members       atomic.Int64
	endpointsSeen atomic.Int64
	leaseID       atomic.Int64 // 0 while unregistered
	registrations atomic.Uint64
	leaseLosses   atomic.Uint64
	etcdErrors    atomic.Uint64
	resyncs       atomic.Uint64
	compactions   atomic.Uint64
	invalid       atomic.Uint64
	revision      atomic.Int64
}

// Status is what a Node counts, for metrics and vxdp status.
type Status struct {
	// Members is the number of nodes in the last view, this one included once registered.
	Members int
	// Endpoints is the number of published container MACs in the last view.
	Endpoints int
	// Registered is true while this node's lease is alive as far as it knows.
	Registered bool
	// LeaseID is the lease's ID, 0 while unregistered.
	LeaseID int64
	// Registrations counts the leases granted (1 after a start, more after lost leases).
	Registrations uint64
	// LeaseLosses counts leases that expired or could not be kept alive.
	LeaseLosses uint64
	// EtcdErrors counts failed etcd requests and broken watches.
	EtcdErrors uint64
	// Resyncs counts listings after the first: a broken watch, a compaction, a lost lease.
	Resyncs uint64
	// Compactions counts watches that ended because their revision was compacted.
	Compactions uint64
	// Invalid counts keys under the prefix that were not records.
	Invalid uint64
	// Revision is the etcd store revision of the last view.
	Revision int64
}

// New checks opts and returns a Node that does nothing until Run. It does not contact etcd:
// a node starts, and forwards, whether etcd is there or not.
func New(opts Options) (*Node, error) {
	if len(opts.Endpoints) == 0 {
		return nil, errors.New("new cluster node: no etcd endpoints")
	}
	if err := ValidNode(opts.Name); err != nil {
		return nil, fmt.Errorf("new cluster node: %w", err)
	}
	if opts.LeaseTTL < MinLeaseTTL || opts.LeaseTTL%time.Second != 0 {
		return nil, fmt.Errorf("new cluster node: lease ttl %v is not a whole number of seconds, at least %v", opts.LeaseTTL, MinLeaseTTL)
	}
	if !opts.VTEP.IsValid() || opts.Apply == nil || opts.Log == nil {
		return nil, errors.New("new cluster node: VTEP, Apply and Log are required")
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: opts.Endpoints,
		// etcd's client logs through zap; every error it returns is logged here instead.
		Logger: zap.NewNop(),
		// Keepalive pings notice a dead connection between requests.
		DialKeepAliveTime:    opts.LeaseTTL / 2,
		DialKeepAliveTimeout: opts.LeaseTTL / 2,
	})
	if err != nil {
		return nil, fmt.Errorf("new etcd client: %w", err)
	}
	n := &Node{
		opts: opts, cli: cli, log: opts.Log.With("cluster", opts.Name),
		vnis: slices.Clone(opts.VNIs), endpoints: map[string]Endpoint{},
		sync: make(chan struct{}, 1), relist: make(chan struct{}, 1),
	}
	slices.Sort(n.vnis)
	n.vnis = slices.Compact(n.vnis)
	return n, nil
}

// Run registers this node and follows the cluster until ctx is done, then revokes the
// lease (the node leaves its peers at once) and closes the etcd client. Errors of etcd
// are logged, counted and retried; Run returns only when ctx is done.
func (n *Node) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); n.runLease(ctx) }()
	go func() { defer wg.Done(); n.runWatch(ctx) }()
	wg.Wait()
	n.cli.Close()
}

// Status returns what the node counts. Safe to call from any goroutine.
func (n *Node) Status() Status {
	id := n.leaseID.Load()
	return Status{
		Members: int(n.members.Load()), Endpoints: int(n.endpointsSeen.Load()),
		Registered: id != 0, LeaseID: id,
		Registrations: n.registrations.Load(), LeaseLosses: n.leaseLosses.Load(),
		EtcdErrors: n.etcdErrors.Load(), Resyncs: n.resyncs.Load(), Compactions: n.compactions.Load(),
		Invalid: n.invalid.Load(), Revision: n.revision.Load(),
	}
}

// Name returns this node's name.
func (n *Node) Name() string { return n.opts.Name }

// SetVNIs changes the VNIs this node's record lists (after a reload).
func (n *Node) SetVNIs(vnis []uint32) {
	vnis = slices.Clone(vnis)
	slices.Sort(vnis)
	vnis = slices.Compact(vnis)
	n.mu.Lock()
	same := slices.Equal(vnis, n.vnis)
	n.vnis = vnis
	n.mu.Unlock()
	if !same {
		wake(n.sync)
	}
}

// Publish adds e (its Node set to this node) to what this node publishes, on its lease.
// It returns once the record is written, or with the error that kept it from etcd; the
// record is written again at every registration either way.
func (n *Node) Publish(ctx context.Context, e Endpoint) error {
	e.Node = n.opts.Name
	key := EndpointKey(n.opts.Prefix, e)
	n.mu.Lock()
	n.endpoints[key] = e
	n.mu.Unlock()
	id := clientv3.LeaseID(n.leaseID.Load())
	if id == 0 {
		return errors.New("publish endpoint: not registered; it will be published on registration")
	}
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	if _, err := n.cli.Put(rctx, key, string(EncodeEndpoint(e)), clientv3.WithLease(id)); err != nil {
		n.etcdError("publish endpoint", err)
		wake(n.sync)
		return fmt.Errorf("publish endpoint: %w", err)
	}
	return nil
}

// Withdraw removes the endpoint of mac on vni from what this node publishes. A record
// etcd did not take the deletion of goes at the next registration, or with the lease.
func (n *Node) Withdraw(ctx context.Context, vni uint32, mac [6]byte) error {
	key := EndpointKey(n.opts.Prefix, Endpoint{Node: n.opts.Name, VNI: vni, MAC: mac})
	n.mu.Lock()
	delete(n.endpoints, key)
	n.mu.Unlock()
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	if _, err := n.cli.Delete(rctx, key); err != nil {
		n.etcdError("withdraw endpoint", err)
		wake(n.sync)
		return fmt.Errorf("withdraw endpoint: %w", err)
	}
	return nil
}

// wake sends on a channel of one slot without waiting: a wakeup already pending covers this one.
func wake(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

func (n *Node) etcdError(what string, err error) {
	n.etcdErrors.Add(1)
	n.log.Warn("cluster: "+what, "err", err)
}

// sleep waits d, or until ctx is done; it reports whether ctx is still alive.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// backoff doubles d up to retryMax.
func backoff(d time.Duration) time.Duration { return min(2*d, retryMax) }

// runLease keeps this node registered: a lease, the node's record and its endpoints on
// it, kept alive; a lost lease (etcd away longer than the TTL, a stuck process) is
// replaced by a new one with the records written again. At the end it revokes the lease.
func (n *Node) runLease(ctx context.Context) {
	wait := retryMin
	for ctx.Err() == nil {
		id, err := n.register(ctx)
		if err != nil {
			if ctx.Err() == nil {
				n.etcdError("register", err)
			}
			sleep(ctx, wait)
			wait = backoff(wait)
			continue
		}
		wait = retryMin
		n.leaseID.Store(int64(id))
		n.registrations.Add(1)
		n.log.Info("cluster: registered", "lease", fmt.Sprintf("%x", int64(id)), "ttl", n.opts.LeaseTTL, "vtep", n.opts.VTEP)
		if n.registrations.Load() > 1 {
			// etcd was away or the lease was lost: what the watch saw may have gaps.
			wake(n.relist)
		}
		n.keepAlive(ctx, id)
		n.leaseID.Store(0)
		if ctx.Err() != nil {
			rctx, cancel := context.WithTimeout(context.Background(), revokeTimeout)
			if _, err := n.cli.Revoke(rctx, id); err != nil {
				n.log.Warn("cluster: revoke lease at exit; the node's records stay until it expires", "err", err, "ttl", n.opts.LeaseTTL)
			} else {
				n.log.Info("cluster: left (lease revoked)")
			}
			cancel()
			return
		}
		n.leaseLosses.Add(1)
		n.log.Warn("cluster: lease lost; registering again (forwarding goes on with the last view)")
	}
}

// register grants a lease and writes this node's records on it.
func (n *Node) register(ctx context.Context) (clientv3.LeaseID, error) {
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	g, err := n.cli.Grant(rctx, int64(n.opts.LeaseTTL/time.Second))
	if err != nil {
		return 0, fmt.Errorf("grant lease: %w", err)
	}
	if err := n.writeRecords(ctx, g.ID); err != nil {
		// The lease would hold nothing; let it go rather than wait for it to expire.
		n.cli.Revoke(rctx, g.ID)
		return 0, err
	}
	return g.ID, nil
}

// writeRecords writes this node's record and endpoints on lease id, and deletes the
// endpoint keys of this node that it no longer publishes (withdrawn while etcd was away,
// or left by an earlier run of this node).
func (n *Node) writeRecords(ctx context.Context, id clientv3.LeaseID) error {
	n.mu.Lock()
	m := Member{Name: n.opts.Name, VTEP: n.opts.VTEP, VNIs: n.vnis}
	eps := make(map[string]Endpoint, len(n.endpoints))
	for k, e := range n.endpoints {
		eps[k] = e
	}
	n.mu.Unlock()
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	own, err := n.cli.Get(rctx, EndpointsKey(n.opts.Prefix, n.opts.Name), clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return fmt.Errorf("list own endpoints: %w", err)
	}
	ops := []clientv3.Op{clientv3.OpPut(NodeKey(n.opts.Prefix, n.opts.Name), string(EncodeMember(m)), clientv3.WithLease(id))}
	for _, kv := range own.Kvs {
		if _, ok := eps[string(kv.Key)]; !ok {
			ops = append(ops, clientv3.OpDelete(string(kv.Key)))
		}
	}
	for k, e := range eps {
		ops = append(ops, clientv3.OpPut(k, string(EncodeEndpoint(e)), clientv3.WithLease(id)))
	}
	// One transaction: peers see the node and its endpoints at once. etcd caps a
	// transaction at 128 operations by default; more go in further requests.
	const maxOps = 128
	for len(ops) > 0 {
		k := min(len(ops), maxOps)
		if _, err := n.cli.Txn(rctx).Then(ops[:k]...).Commit(); err != nil {
			return fmt.Errorf("write node record: %w", err)
		}
		ops = ops[k:]
	}
	return nil
}

// keepAlive keeps lease id alive until it is lost or ctx is done, and writes the records
// again whenever SetVNIs, Publish or Withdraw asks.
func (n *Node) keepAlive(ctx context.Context, id clientv3.LeaseID) {
	kctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ka, err := n.cli.KeepAlive(kctx, id)
	if err != nil {
		n.etcdError("keep lease alive", err)
		return
	}
	var retry <-chan time.Time
	for {
		select {
		case _, ok := <-ka:
			// Closed when the lease expired, or went unanswered for its TTL, or ctx ended.
			if !ok {
				return
			}
		case <-n.sync:
			if err := n.writeRecords(ctx, id); err != nil && ctx.Err() == nil {
				n.etcdError("write records", err)
				retry = time.After(retryMax)
			}
		case <-retry:
			retry = nil
			wake(n.sync)
		}
	}
}

// runWatch lists the prefix, hands the view on, and watches from the listing's next
// revision; when the watch breaks (compaction, a lost leader, a lost lease) it lists
// again. The last view stays applied meanwhile.
func (n *Node) runWatch(ctx context.Context) {
	st := NewState(n.opts.Prefix)
	var last View
	first := true
	publish := func() {
		n.invalid.Store(st.Invalid)
		n.revision.Store(st.Revision())
		v := st.View()
		if !first && v.Equal(last) {
			return
		}
		n.logChanges(last, v)
		if st.LastInvalid != nil {
			n.log.Warn("cluster: keys that are not records are left out", "count", st.Invalid, "last", st.LastInvalid)
			st.LastInvalid = nil
		}
		first = false
		last = v
		n.members.Store(int64(len(v.Members)))
		n.endpointsSeen.Store(int64(len(v.Endpoints)))
		n.opts.Apply(v)
	}
	dir := n.opts.Prefix + "/"
	wait := retryMin
	listings := 0
	for ctx.Err() == nil {
		rctx, cancel := context.WithTimeout(ctx, requestTimeout)
		resp, err := n.cli.Get(rctx, dir, clientv3.WithPrefix())
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				n.etcdError("list cluster", err)
			}
			sleep(ctx, wait)
			wait = backoff(wait)
			continue
		}
		wait = retryMin
		if listings++; listings > 1 {
			n.resyncs.Add(1)
		}
		kvs := make([]KV, len(resp.Kvs))
		for i, kv := range resp.Kvs {
			kvs[i] = KV{Key: string(kv.Key), Value: kv.Value, ModRevision: kv.ModRevision}
		}
		st.Reset(kvs, resp.Header.Revision)
		publish()
		n.watch(ctx, dir, st, publish)
	}
}

// watch follows the prefix from the state's next revision until the watch breaks, a
// relist is asked for, or ctx is done.
func (n *Node) watch(ctx context.Context, dir string, st *State, publish func()) {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wch := n.cli.Watch(wctx, dir, clientv3.WithPrefix(), clientv3.WithRev(st.Revision()+1))
	for {
		select {
		case <-n.relist:
			return
		case wr, ok := <-wch:
			if !ok {
				return
			}
			if wr.CompactRevision != 0 {
				n.compactions.Add(1)
				n.log.Info("cluster: watch revision compacted; listing again", "compacted", wr.CompactRevision)
				return
			}
			if err := wr.Err(); err != nil {
				if ctx.Err() == nil {
					n.etcdError("watch cluster", err)
					sleep(ctx, retryMin)
				}
				return
			}
			changed := false
			for _, ev := range wr.Events {
				e := Event{Delete: ev.Type == clientv3.EventTypeDelete,
					KV: KV{Key: string(ev.Kv.Key), Value: ev.Kv.Value, ModRevision: ev.Kv.ModRevision}}
				changed = st.Apply(e) || changed
			}
			if changed {
				publish()
			}
		}
	}
}

// logChanges logs the members that joined, changed or left between two views, and the
// endpoints that came or went.
func (n *Node) logChanges(old, cur View) {
	byName := map[string]Member{}
	for _, m := range old.Members {
		byName[m.Name] = m
	}
	for _, m := range cur.Members {
		o, ok := byName[m.Name]
		switch {
		case !ok:
			n.log.Info("cluster: member joined", "member", m.Name, "vtep", m.VTEP, "vnis", m.VNIs)
		case !equalMember(o, m):
			n.log.Info("cluster: member changed", "member", m.Name, "vtep", m.VTEP, "vnis", m.VNIs)
		}
		delete(byName, m.Name)
	}
	for _, m := range byName {
		n.log.Info("cluster: member left", "member", m.Name, "vtep", m.VTEP)
	}
	for _, e := range old.Endpoints {
		if _, ok := slices.BinarySearchFunc(cur.Endpoints, e, compareEndpoints); !ok {
			n.log.Info("cluster: endpoint removed", "member", e.Node, "vni", e.VNI, "mac", net.HardwareAddr(e.MAC[:]).String())
		}
	}
	for _, e := range cur.Endpoints {
		if _, ok := slices.BinarySearchFunc(old.Endpoints, e, compareEndpoints); !ok {
			n.log.Info("cluster: endpoint added", "member", e.Node, "vni", e.VNI, "mac", net.HardwareAddr(e.MAC[:]).String(), "ip", e.IP)
		}
	}
}
