// Package bench runs the experiments of the two overlay papers in
// /work/shared/papers on network namespaces: throughput of one flow, of 1
// to 16 flows and of UDP datagrams from 64 B to 8 KB, carried host to host
// (native), through the kernel's vxlan + bridge + veth with and without
// RPS/RFS, and through vxdp. It records per-core CPU, softirq and IRQ
// counts, TCP retransmits and out-of-order queueing for every run, and
// writes results.json, results.csv, a summary.md of tables like the papers'
// and PNG plots.
//
// Configurations are interleaved inside each repetition, so drift on a
// shared machine hits all of them alike; the headline of every table is the
// ratio to the kernel (and to native) in the same run. The method is in
// bench/README.md.
package bench
