// Package offload converts between the MTU-sized inner Ethernet frames that cross
// the underlay and the large frames a TAP device opened with IFF_VNET_HDR and
// TUNSETOFFLOAD exchanges with the kernel, each behind a 10-byte struct
// virtio_net_hdr.
//
// Egress (TAP read to underlay): Segment cuts a TSO/USO super-frame of up to 64 KB,
// whose transport checksum holds only the pseudo-header partial sum, into frames
// whose IP packets fit the port MTU, with complete checksums (software GSO).
//
// Ingress (underlay to TAP write): a Coalescer merges consecutive TCP segments (and,
// if the kernel takes USO, UDP datagrams) of one flow into one super-frame with a
// GSO virtio_net_hdr, so one TAP write carries up to 64 KB (software GRO). Per
// flow, frames leave in the order they came in.
//
// Both run per packet: no allocation, no interface call, no lock; every length is
// checked before it is used, and malformed input is an error or passes through
// unchanged, never a panic.
package offload
