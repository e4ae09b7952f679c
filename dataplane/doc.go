// Package dataplane is the VTEP: it reads VXLAN from the underlay NIC's AF_XDP sockets,
// decapsulates it and delivers the inner frames to local ports (TAP devices in containers'
// network namespaces), and encapsulates what those ports send toward remote VTEPs.
//
// Per VNI it keeps an FDB (MAC address to local port or remote VTEP, learned, aged and
// capped) and floods broadcast, multicast and unknown unicast by head-end replication.
package dataplane
