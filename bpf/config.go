package bpf

import "net/netip"

// Map sizes, mirrored from xdp.c (VXDP_MAX_*); a test checks they agree.
const (
	// MaxQueues is the number of XSKMAP slots: the highest NIC receive queue
	// index that can get a socket is MaxQueues-1.
	MaxQueues = 64
	// MaxLocals bounds the set of local VTEP addresses.
	MaxLocals = 64
	// MaxRemotes bounds the allowlist of remote VTEP addresses.
	MaxRemotes = 16384
)

// ProgramName is the kernel name of the XDP program, used by DetachStale to
// recognise a program left by an earlier vxdp.
const ProgramName = "vxdp_rx"

// Config is what the XDP program needs to know. Configure may be called again
// (on reload); it replaces both address sets.
type Config struct {
	// Port is the VXLAN UDP destination port, for example 4789. Must not be 0.
	Port uint16
	// Locals are our VTEP addresses: VXLAN is taken only when sent to one of
	// them. IPv4 and IPv6 may be mixed; at most MaxLocals.
	Locals []netip.Addr
	// Remotes is the allowlist of remote VTEP addresses: VXLAN from any other
	// source is dropped in XDP. At most MaxRemotes.
	Remotes []netip.Addr
}

// Counters are the XDP program's verdict counters, summed over all CPUs.
// Every packet the program sees is counted exactly once.
type Counters struct {
	// Passed counts packets handed to the kernel: anything that is not VXLAN
	// to us (ARP, SSH, other host traffic, truncated or unparsed headers,
	// IPv6 with ESP or more than 8 extension headers, non-first fragments,
	// which carry no port to tell whose they are).
	Passed uint64
	// Redirected counts VXLAN packets redirected to an AF_XDP socket. A
	// packet the kernel then fails to queue (RX ring full) is still counted
	// here; the socket's XDP_STATISTICS count those.
	Redirected uint64
	// DropUnknownRemote counts VXLAN to us from a source not in Remotes (or,
	// on IPv6, from an IPv4-mapped source).
	DropUnknownRemote uint64
	// DropNoSocket counts VXLAN to us that arrived on a queue with no
	// registered socket.
	DropNoSocket uint64
	// DropFragment counts first IPv4 or IPv6 fragments of UDP datagrams to
	// our address and port: vxdp owns the port and does not reassemble.
	DropFragment uint64
	// RedirectFailed counts VXLAN whose socket vanished between the lookup
	// and the redirect (a race with UnregisterSocket); they are dropped.
	RedirectFailed uint64
	// DropIPv6Ext counts IPv6 UDP to our address and port behind extension
	// headers (hop-by-hop, routing, destination options, AH): vxdp takes
	// VXLAN only right behind the IPv6 header.
	DropIPv6Ext uint64
}

// Drop is one drop counter of Counters, named by its reason.
type Drop struct {
	// Reason names why the packets were dropped, in snake_case, fit for a metric label:
	// unknown_remote, no_socket, fragment, redirect_failed, ipv6_ext.
	Reason string
	// Count is the counter's value.
	Count uint64
}

// Drops returns every drop counter of c (all but Passed and Redirected) with its reason,
// in a fixed order.
func (c *Counters) Drops() []Drop {
	return []Drop{
		{"unknown_remote", c.DropUnknownRemote},
		{"no_socket", c.DropNoSocket},
		{"fragment", c.DropFragment},
		{"redirect_failed", c.RedirectFailed},
		{"ipv6_ext", c.DropIPv6Ext},
	}
}
