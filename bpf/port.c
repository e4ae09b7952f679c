//go:build ignore

// vxdp veth port program.
//
// Runs at XDP on the host end of a veth port, whose peer is a container's
// interface. Everything the container sends is vxdp's to switch: ARP, IPv6
// neighbour discovery and data alike. So the program does not parse: every
// frame goes to the AF_XDP socket of the queue it arrived on, and a frame on a
// queue without a socket is dropped and counted (the kernel's stack has no
// business with it: the host end carries no address).

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char __license[] SEC("license") = "Dual MIT/GPL";

// XSKMAP size; the Go loader mirrors it (MaxPortQueues).
#define VXDP_PORT_MAX_QUEUES 64

// What happened to a frame; indexes the per-CPU counters.
enum vxdp_port_reason {
	VXDP_PORT_REDIRECTED = 0,
	VXDP_PORT_NO_SOCKET = 1,
	VXDP_PORT_REASONS = 2,
};

// AF_XDP socket per receive queue of the host end.
struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, VXDP_PORT_MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} port_xsks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, VXDP_PORT_REASONS);
	__type(key, __u32);
	__type(value, __u64);
} port_counters SEC(".maps");

// Never called: puts enum vxdp_port_reason into BTF for bpf2go (see xdp.c).
__attribute__((unused)) __u32 vxdp_port_reason_btf(enum vxdp_port_reason r)
{
	return r;
}

// xdp.frags: a container's frame longer than a page (a port MTU above 3506)
// reaches the program in several buffers; it reads none of them, and the
// port's multi-buffer socket takes the frame whole.
SEC("xdp.frags")
int vxdp_port(struct xdp_md *ctx)
{
	__u32 key = VXDP_PORT_REDIRECTED;
	long rc;
	__u64 *n;

	// The lookup is the helper's own: with no socket in the slot it returns
	// the action in the flags' low bits.
	rc = bpf_redirect_map(&port_xsks, ctx->rx_queue_index, XDP_DROP);
	if (rc != XDP_REDIRECT)
		key = VXDP_PORT_NO_SOCKET;
	n = bpf_map_lookup_elem(&port_counters, &key);
	// Per-CPU slot: no other CPU writes it, a plain increment is enough.
	if (n)
		*n += 1;
	return rc == XDP_REDIRECT ? XDP_REDIRECT : XDP_DROP;
}
