// Package cluster makes a vxdp node one member of a cluster over etcd v3. A node registers
// its record (VTEP address, VNIs) and the container MAC addresses it serves on a lease it
// keeps alive, lists and watches everyone else's, and hands each new view of the cluster to
// a callback, which turns it into the change a SIGHUP reload applies (the remote VTEPs of
// each VNI). The dataplane knows nothing of etcd; this package knows nothing of the
// dataplane.
//
// The reconciliation is pure (State: a listing, then watch events) and the etcd side (Node)
// only feeds it: list the prefix, reconcile from the snapshot, watch from the next revision,
// list again when the watch fails or its revision was compacted. Losing etcd or the lease
// never empties the view: the last one stays applied until etcd says otherwise.
package cluster
