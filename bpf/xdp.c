//go:build ignore

// vxdp receive classifier.
//
// Runs at XDP on every underlay NIC queue. VXLAN sent to one of our VTEP
// addresses on the configured UDP port, from an allowed remote VTEP, is
// redirected to the AF_XDP socket of the receiving queue. Everything else
// (ARP, SSH, host traffic, other UDP) goes to the kernel untouched.
//
// The parse is deliberately shallow: it proves only what the decision needs.
// A VXLAN datagram that is too short for its 8-byte VXLAN header is still
// redirected; the userspace parser drops and counts it, which keeps this side
// cheap.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

char __license[] SEC("license") = "Dual MIT/GPL";

// Sizes of the maps. The Go loader mirrors these (MaxQueues, MaxLocals,
// MaxRemotes) and rejects configurations that exceed them.
#define VXDP_MAX_QUEUES 64
#define VXDP_MAX_LOCALS 64
#define VXDP_MAX_REMOTES 16384

// IPv4 frag_off bits, in host order.
#define VXDP_IP_MF 0x2000
#define VXDP_IP_OFFSET 0x1fff

// IPv6 fragment header: the offset bits of frag_off (host order), and the
// most IPv6 extension headers walked before UDP. A longer chain goes to the
// kernel, which has no listener on our port and drops it.
#define VXDP_IP6_OFFSET 0xfff8
#define VXDP_MAX_IP6_EXT 8

// The uapi headers have no VLAN header (it is kernel-internal).
struct vxdp_vlan_hdr {
	__be16 tci;
	__be16 proto;
};

// Nor the IPv6 fragment header.
struct vxdp_frag_hdr {
	__u8 nexthdr;
	__u8 reserved;
	__be16 frag_off;
	__be32 id;
};

// One key type for both address families: IPv6 as is, IPv4 as an
// IPv4-mapped IPv6 address (::ffff:a.b.c.d), so one map serves both.
struct vxdp_addr {
	__u8 b[16];
};

// Runtime configuration, the single entry of the config array.
struct vxdp_config {
	// VXLAN UDP destination port in host byte order; 0 means unconfigured and
	// the program then passes every packet.
	__u16 port;
};

// Why a packet got its verdict; indexes the per-CPU counters.
enum vxdp_reason {
	VXDP_PASSED = 0,
	VXDP_REDIRECTED = 1,
	VXDP_DROP_UNKNOWN_REMOTE = 2,
	VXDP_DROP_NO_SOCKET = 3,
	VXDP_DROP_FRAGMENT = 4,
	VXDP_REDIRECT_FAILED = 5,
	VXDP_DROP_IPV6_EXT = 6,
	VXDP_REASONS = 7,
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct vxdp_config);
} config SEC(".maps");

// Our VTEP addresses (destination set).
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, VXDP_MAX_LOCALS);
	__type(key, struct vxdp_addr);
	__type(value, __u8);
} local_addrs SEC(".maps");

// Allowed remote VTEP addresses (source allowlist).
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, VXDP_MAX_REMOTES);
	__type(key, struct vxdp_addr);
	__type(value, __u8);
} remote_addrs SEC(".maps");

// AF_XDP socket per NIC receive queue.
struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, VXDP_MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, VXDP_REASONS);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

// Never called (the loader links only what programs call): its prototype puts
// enum vxdp_reason into BTF, where bpf2go finds it for the Go side. An array
// map cannot carry it as its key type: the kernel wants a plain 32-bit int.
__attribute__((unused)) __u32 vxdp_reason_btf(enum vxdp_reason r)
{
	return r;
}

static __always_inline int verdict(enum vxdp_reason reason, int action)
{
	__u32 key = reason;
	__u64 *n = bpf_map_lookup_elem(&counters, &key);

	// Per-CPU slot: no other CPU writes it, a plain increment is enough.
	if (n)
		*n += 1;
	return action;
}

static __always_inline void addr_from_v4(struct vxdp_addr *a, __be32 v4)
{
	__builtin_memset(a->b, 0, 10);
	a->b[10] = 0xff;
	a->b[11] = 0xff;
	__builtin_memcpy(&a->b[12], &v4, 4);
}

static __always_inline int is_v4_mapped(const struct vxdp_addr *a)
{
	const __u8 *b = a->b;

	return (b[0] | b[1] | b[2] | b[3] | b[4] | b[5] | b[6] | b[7] | b[8] |
		b[9]) == 0 &&
	       b[10] == 0xff && b[11] == 0xff;
}

// xdp.frags: the program takes frames spread over several buffers (jumbo
// frames on a veth or a multi-buffer driver), so native XDP stays possible at
// any MTU. It reads the outer headers only (at most 14 + 4 + 40 + 8 * 8 + 8
// bytes), which lie in the first buffer, up to a page; a header beyond
// data_end sends the frame to the kernel as before.
SEC("xdp.frags")
int vxdp_rx(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct vxdp_addr src, dst;
	const struct vxdp_config *cfg;
	struct udphdr *udp;
	__u32 zero = 0, queue;
	__be16 proto;
	void *l3;
	long rc;

	if ((void *)(eth + 1) > end)
		return verdict(VXDP_PASSED, XDP_PASS);
	proto = eth->h_proto;
	l3 = eth + 1;

	// At most one tag; a second one (QinQ) leaves a VLAN ethertype that
	// matches nothing below and goes to the kernel.
	if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD)) {
		struct vxdp_vlan_hdr *vh = l3;

		if ((void *)(vh + 1) > end)
			return verdict(VXDP_PASSED, XDP_PASS);
		proto = vh->proto;
		l3 = vh + 1;
	}

	cfg = bpf_map_lookup_elem(&config, &zero);
	if (!cfg || cfg->port == 0)
		return verdict(VXDP_PASSED, XDP_PASS);

	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = l3;
		__u32 ihl;
		__u16 frag;

		if ((void *)(ip + 1) > end || ip->version != 4 ||
		    ip->protocol != IPPROTO_UDP)
			return verdict(VXDP_PASSED, XDP_PASS);
		ihl = ip->ihl * 4;
		if (ihl < sizeof(*ip))
			return verdict(VXDP_PASSED, XDP_PASS);
		frag = bpf_ntohs(ip->frag_off);
		if (frag & VXDP_IP_OFFSET)
			// A non-first fragment carries no UDP header, so it cannot
			// be tied to our port. The kernel gets it; if its first
			// fragment was ours (dropped below) reassembly times out.
			return verdict(VXDP_PASSED, XDP_PASS);
		udp = (void *)ip + ihl;
		if ((void *)(udp + 1) > end || udp->dest != bpf_htons(cfg->port))
			return verdict(VXDP_PASSED, XDP_PASS);
		addr_from_v4(&dst, ip->daddr);
		if (!bpf_map_lookup_elem(&local_addrs, &dst))
			return verdict(VXDP_PASSED, XDP_PASS);
		// The first fragment of a datagram to our VXLAN port: vxdp owns
		// the port and does not reassemble, the kernel has no listener.
		if (frag & VXDP_IP_MF)
			return verdict(VXDP_DROP_FRAGMENT, XDP_DROP);
		addr_from_v4(&src, ip->saddr);
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = l3;
		int ext = 0, first_fragment = 0;
		void *l4;
		__u8 next;

		if ((void *)(ip6 + 1) > end || ip6->version != 6)
			return verdict(VXDP_PASSED, XDP_PASS);
		// Walk the extension headers to find out whether this is UDP to
		// our port: vxdp takes none (DESIGN: no chains on the fast path),
		// but one sent to our VXLAN port is ours to drop and count.
		next = ip6->nexthdr;
		l4 = ip6 + 1;
		for (int i = 0; i < VXDP_MAX_IP6_EXT && next != IPPROTO_UDP; i++) {
			struct ipv6_opt_hdr *h = l4;

			if ((void *)(h + 1) > end)
				return verdict(VXDP_PASSED, XDP_PASS);
			switch (next) {
			case IPPROTO_HOPOPTS:
			case IPPROTO_ROUTING:
			case IPPROTO_DSTOPTS:
				l4 += (h->hdrlen + 1) * 8;
				break;
			case IPPROTO_AH:
				l4 += (h->hdrlen + 2) * 4;
				break;
			case IPPROTO_FRAGMENT: {
				struct vxdp_frag_hdr *fh = l4;

				if ((void *)(fh + 1) > end ||
				    (bpf_ntohs(fh->frag_off) & VXDP_IP6_OFFSET))
					// Truncated, or a non-first fragment: no
					// UDP header to tie it to our port.
					return verdict(VXDP_PASSED, XDP_PASS);
				first_fragment = 1;
				l4 = fh + 1;
				break;
			}
			default: // ESP, no next header, anything else
				return verdict(VXDP_PASSED, XDP_PASS);
			}
			next = h->nexthdr;
			ext = 1;
		}
		if (next != IPPROTO_UDP)
			return verdict(VXDP_PASSED, XDP_PASS);
		udp = l4;
		if ((void *)(udp + 1) > end || udp->dest != bpf_htons(cfg->port))
			return verdict(VXDP_PASSED, XDP_PASS);
		__builtin_memcpy(dst.b, &ip6->daddr, sizeof(dst.b));
		if (!bpf_map_lookup_elem(&local_addrs, &dst))
			return verdict(VXDP_PASSED, XDP_PASS);
		// Ours, but not in a form vxdp takes: counted here, where it is
		// known, rather than passed to a kernel that would drop it unseen.
		if (first_fragment)
			return verdict(VXDP_DROP_FRAGMENT, XDP_DROP);
		if (ext)
			return verdict(VXDP_DROP_IPV6_EXT, XDP_DROP);
		__builtin_memcpy(src.b, &ip6->saddr, sizeof(src.b));
		// An IPv4-mapped source never appears on an IPv6 wire; without
		// this check it would match an IPv4 entry of the allowlist.
		if (is_v4_mapped(&src))
			return verdict(VXDP_DROP_UNKNOWN_REMOTE, XDP_DROP);
	} else {
		return verdict(VXDP_PASSED, XDP_PASS);
	}

	if (!bpf_map_lookup_elem(&remote_addrs, &src))
		return verdict(VXDP_DROP_UNKNOWN_REMOTE, XDP_DROP);

	queue = ctx->rx_queue_index;
	if (!bpf_map_lookup_elem(&xsks, &queue))
		return verdict(VXDP_DROP_NO_SOCKET, XDP_DROP);

	// The flags' low bits are the action returned when the lookup fails
	// (the socket was removed since the check above). Failures later in
	// the kernel (a full RX ring) are not visible here; the socket's own
	// XDP_STATISTICS count those.
	rc = bpf_redirect_map(&xsks, queue, XDP_DROP);
	if (rc != XDP_REDIRECT)
		return verdict(VXDP_REDIRECT_FAILED, XDP_DROP);
	return verdict(VXDP_REDIRECTED, XDP_REDIRECT);
}
