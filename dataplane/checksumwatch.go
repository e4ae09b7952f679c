//go:build linux

package dataplane

import (
	"context"
	"net/netip"
	"time"
)

// A sender that leaves its outer UDP checksums to offload puts frames on the wire whose
// checksum field holds only the pseudo-header's partial sum: a veth underlay with TX
// checksumming on, as in a VM or nested containers, hands them on as they are. The kernel's
// vxlan keeps working there (its skb carries the partial-checksum state); AF_XDP carries no
// such state, so every checksummed frame fails the check, is counted under udp_checksum and
// dropped, and the remote's traffic stops entirely. runChecksumWatch says so in the log.

const (
	// checksumWindow is the period over which a remote's checksum failures are weighed
	// against its frames that passed.
	checksumWindow = 3 * time.Second
	// checksumMinFailures is how many failures in a window it takes to warn: a stray corrupt
	// frame is counted, not reported.
	checksumMinFailures = 8
	// checksumWarnEvery is the least time between two warnings about one remote while its
	// frames keep failing.
	checksumWarnEvery = time.Minute
)

// remoteTally counts, for one worker and one remote VTEP, the frames that passed the outer
// checks and those dropped for their UDP checksum. A worker writes its own tallies while it
// holds v.mu shared (it does for every micro-flow); runChecksumWatch reads them while it
// holds v.mu alone, so plain integers do: nothing is added per frame but an increment.
type remoteTally struct {
	passed, badSum uint64
}

// tally returns w's tally of remote index i, growing the slice the first time a remote is
// met (a reload can add remotes).
func (w *worker) tally(i int) *remoteTally {
	if i >= len(w.tallies) {
		w.tallies = append(w.tallies, make([]remoteTally, i+1-len(w.tallies))...)
	}
	return &w.tallies[i]
}

// badChecksum counts a frame from src dropped for its UDP checksum against its remote. It
// runs on the drop path under v.mu shared; src not being a remote (any more) is not counted.
func (w *worker) badChecksum(src netip.Addr) {
	for _, r := range w.v.remotes {
		if r.addr == src {
			w.tally(r.index).badSum++
			return
		}
	}
}

// runChecksumWatch warns, at most once per checksumWarnEvery and remote, when most of the
// frames from a remote VTEP failed their UDP checksum over the last checksumWindow.
func (v *VTEP) runChecksumWatch(ctx context.Context) {
	tick := time.NewTicker(checksumWindow)
	defer tick.Stop()
	var last []remoteTally // the sums at the previous tick, by remote index
	var warned []time.Time // when each remote was last warned about
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			sums, addrs := v.sumTallies()
			for i, s := range sums {
				var prev remoteTally
				if i < len(last) {
					prev = last[i]
				}
				bad, passed := s.badSum-prev.badSum, s.passed-prev.passed
				if bad < checksumMinFailures || bad <= passed {
					continue
				}
				if i >= len(warned) {
					warned = append(warned, make([]time.Time, i+1-len(warned))...)
				}
				if now.Sub(warned[i]) < checksumWarnEvery {
					continue
				}
				warned[i] = now
				v.log.Warn("most VXLAN frames from a remote VTEP fail their outer UDP checksum and are dropped: "+
					"its sender likely leaves UDP checksums to offload (checksum offload on the sending side); "+
					"on a veth underlay turn it off on the sending end: ethtool -K <dev> tx off",
					"remote", addrs[i], "failed", bad, "passed", passed, "window", checksumWindow,
					"counter", `vxdp_parse_drops_total{reason="udp_checksum"}`)
			}
			last = sums
		}
	}
}

// sumTallies sums the tallies of the workers and of the readers' inline workers by remote index, with the remotes' addresses.
func (v *VTEP) sumTallies() ([]remoteTally, []netip.Addr) {
	v.mu.Lock() // alone: the workers write their tallies under v.mu shared
	defer v.mu.Unlock()
	sums := make([]remoteTally, len(v.remotes))
	addrs := make([]netip.Addr, len(v.remotes))
	for i, r := range v.remotes {
		addrs[i] = r.addr
	}
	add := func(w *worker) {
		for j, t := range w.tallies {
			if j < len(sums) {
				sums[j].passed += t.passed
				sums[j].badSum += t.badSum
			}
		}
	}
	for i := range v.workers {
		add(&v.workers[i])
	}
	for _, q := range v.queues {
		if q.inline != nil {
			add(q.inline)
		}
	}
	return sums, addrs
}
