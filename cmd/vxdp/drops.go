//go:build linux

package main

import (
	"log/slog"

	"github.com/vxdp/vxdp/dataplane"
	"github.com/vxdp/vxdp/dataplane/packet"
)

// dropCounters returns every drop counter of v that is not zero, as integer attributes of
// the exit log's counters line: parse_drop_REASON (the header checks, packet.DropReason),
// dataplane_drop_REASON (dataplane.Drop), xdp_drop_REASON (the XDP program's, as Run began
// to stop) and fdb_evicted (learned addresses pushed out of a full FDB, all VNIs). They
// come as one group with an empty key, which slog's handlers write inline, so the line
// stays key=value integers for whatever parses it (the benchmarks, the integration tests).
func dropCounters(v *dataplane.VTEP) slog.Attr {
	s := v.Stats()
	var attrs []any
	for _, r := range packet.DropReasons() {
		if n := s.Counters.Parse[r]; n != 0 && r != packet.DropNone {
			attrs = append(attrs, slog.Uint64("parse_drop_"+r.String(), n))
		}
	}
	for _, d := range dataplane.Drops() {
		if n := s.Counters.Drops[d]; n != 0 {
			attrs = append(attrs, slog.Uint64("dataplane_drop_"+d.String(), n))
		}
	}
	if x, ok := v.FinalXDPCounters(); ok {
		for _, d := range x.Drops() {
			if d.Count != 0 {
				attrs = append(attrs, slog.Uint64("xdp_drop_"+d.Reason, d.Count))
			}
		}
	}
	var evicted uint64
	for _, n := range s.Networks {
		evicted += n.FDB.Evicted
	}
	if evicted != 0 {
		attrs = append(attrs, slog.Uint64("fdb_evicted", evicted))
	}
	return slog.Group("", attrs...)
}
