// Package bpf holds vxdp's XDP receive classifier and its typed loader.
//
// The C program (xdp.c) runs on every receive queue of the underlay NIC. It
// redirects VXLAN addressed to one of our VTEP addresses on the configured UDP
// port, sent by an allowed remote VTEP, to the AF_XDP socket registered for
// that queue, and passes everything else (ARP, SSH, other host traffic) to the
// kernel untouched. VXLAN from an unknown remote, VXLAN arriving on a queue
// without a socket, and fragmented VXLAN are dropped, each under its own
// counter.
//
// A second, smaller program (port.c, PortProgram) runs on the host end of each
// veth port: it redirects every frame the container sends to the AF_XDP socket
// of its receive queue, and drops and counts frames on a queue without one.
//
// The compiled objects and their bpf2go bindings (xdp_bpfel.go, xdp_bpfel.o,
// port_bpfel.go, port_bpfel.o) are committed, so building needs no clang; run
// `go generate` in this directory after editing xdp.c or port.c.
//
// The program is attached through a bpf_link that is never pinned: the link
// lives as long as the file descriptor held by the process, so a crashed vxdp
// leaves no XDP program behind and the NIC goes back to plain kernel
// processing. Programs attached the old way (netlink), for example by an older
// vxdp, survive their process; DetachStale removes those.
package bpf
