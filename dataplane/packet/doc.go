// Package packet is the VTEP's packet code (RFC 7348): it checks and strips the
// outer Ethernet/IP/UDP/VXLAN headers of received frames, checks the inner
// frame, writes outer headers from a prebuilt per-destination template, picks
// the outer UDP source port from the inner flow, and computes Internet
// checksums.
//
// Everything here runs per packet: no allocation, no interface call, no
// lock. Parsers return sub-slices of their input and a DropReason that indexes
// per-worker counter arrays.
package packet
