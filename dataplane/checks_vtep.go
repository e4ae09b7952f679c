//go:build linux

package dataplane

import (
	"sync/atomic"

	"github.com/vxdp/vxdp/bpf"
)

// finalXDP holds the XDP program's counters from the moment Run began to stop: written
// once by Run, read by any goroutine.
type finalXDP struct {
	p atomic.Pointer[bpf.Counters]
}

// innerTooBig reports whether an inner frame from a remote VTEP is larger than any port of
// its VNI takes: the ports' largest MTU plus the Ethernet header (and a tag, when tags are
// accepted and it has one). A VNI is one L2 segment, whose ports normally share an MTU;
// a remote whose frames exceed it is misconfigured or lying, and a TAP would hand the
// container a frame larger than its interface's MTU. A VNI has a handful of ports, so
// the scan costs less than keeping a maximum in step with them.
func (n *network) innerTooBig(inner []byte, vlan bool) bool {
	limit := 0
	for _, t := range n.ports {
		limit = max(limit, t.port.MTU)
	}
	limit += 14
	if vlan && len(inner) >= 14 && isVLAN(inner[12], inner[13]) {
		limit += 4
	}
	return len(n.ports) > 0 && len(inner) > limit
}

// innerLimit is the inner frame length innerTooBig lets through untagged, for the log.
func (n *network) innerLimit() int {
	limit := 0
	for _, t := range n.ports {
		limit = max(limit, t.port.MTU)
	}
	return 14 + limit
}

// keepXDPCounters saves the XDP program's counters as Run begins to stop: teardown closes
// the program, and its per-CPU counters go with it, while the exit log still wants them.
func (v *VTEP) keepXDPCounters() {
	if c, err := v.prog.Counters(); err == nil {
		v.xdpFinal.p.Store(&c)
	}
}

// FinalXDPCounters returns the XDP program's counters as they were when Run began to stop;
// ok is false before then. Safe to call from any goroutine.
func (v *VTEP) FinalXDPCounters() (c bpf.Counters, ok bool) {
	if p := v.xdpFinal.p.Load(); p != nil {
		return *p, true
	}
	return bpf.Counters{}, false
}
