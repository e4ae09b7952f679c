//go:build linux

package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/vxdp/vxdp/internal/topo"
)

// TestUDPOrderAcrossWorkers sends a sequence-stamped UDP stream from the container behind
// the kernel's vxlan to the one behind vxdp, with 1 to 4 ingress workers splitting it into
// micro-flows, and checks that it arrives in exactly the order sent.
func TestUDPOrderAcrossWorkers(t *testing.T) {
	needRoot(t)
	for w := 1; w <= 4; w++ {
		t.Run(fmt.Sprintf("workers=%d", w), func(t *testing.T) {
			tp := newTopology(t, fmt.Sprintf("ord%d", w))
			if err := tp.KernelVXLAN(context.Background(), topo.SideA); err != nil {
				t.Fatal(err)
			}
			// Small micro-flows, so that even a modest rate spreads over every worker.
			startVXDPWith(t, tp, topo.SideB, fmt.Sprintf("workers: %d\nmicroflow: 4\n", w))
			// ARP through the tunnel first, so the stream does not start with drops.
			if _, err := tp.ContainerA.Ping(context.Background(), tp.OverlayB.Addr()); err != nil {
				t.Fatal(err)
			}
			// Paced: on the NIC-like wire the receiver runs beside the sender, as on another
			// host, not inside its transmit, so an unpaced sender overruns the receiving
			// socket (UdpRcvbufErrors) as soon as the machine is busy, and what arrives
			// says nothing about order. 50,000 a second in bursts of a millisecond still
			// fills micro-flows of 4 for every worker.
			got, sent := stream{tp: tp, n: 100000, rate: 50000, idle: 2 * time.Second}.run(t)
			if got < sent/10 {
				t.Fatalf("only %d of %d datagrams arrived", got, sent)
			}
			t.Logf("%d of %d datagrams arrived, in order", got, sent)
		})
	}
}

// TestTCPOutOfOrderVersusKernel runs one paced iperf3 TCP flow into the container behind
// vxdp with two workers and checks the receiver queued no more segments out of order than
// the same flow through the kernel's vxlan on both hosts.
func TestTCPOutOfOrderVersusKernel(t *testing.T) {
	needRoot(t)
	// ofo runs the paced flow and returns the segments the receiver queued out of order. The
	// pace is well below what either path carries here, so that normally nothing is lost and
	// what TCP queues out of order was reordered on the way. A run that lost a segment
	// (retransmits) queues everything after the gap out of order and says nothing about
	// reordering, so it is run again, up to three times.
	ofo := func(t *testing.T, tp *topo.Topology) int64 {
		ctx := context.Background()
		var n int64
		for try := 0; try < 3; try++ {
			before, err := tp.ContainerB.Netstat(ctx)
			if err != nil {
				t.Fatal(err)
			}
			res, err := topo.Iperf3{Server: tp.ContainerB, Client: tp.ContainerA, Addr: tp.OverlayB.Addr().String(),
				Bitrate: "300M"}.Run(ctx)
			if err != nil {
				t.Fatal(err)
			}
			after, err := tp.ContainerB.Netstat(ctx)
			if err != nil {
				t.Fatal(err)
			}
			n = after["TcpExt.TCPOFOQueue"] - before["TcpExt.TCPOFOQueue"]
			t.Logf("%.2f Gbit/s, %d retransmits, TCPOFOQueue +%d", res.BitsPerSecond/1e9, res.Retransmits, n)
			if res.Retransmits == 0 {
				break
			}
		}
		return n
	}
	kernel := newTopology(t, "ofok")
	for _, s := range []topo.Side{topo.SideA, topo.SideB} {
		if err := kernel.KernelVXLAN(context.Background(), s); err != nil {
			t.Fatal(err)
		}
	}
	kernelOFO := ofo(t, kernel)

	tp := newTopology(t, "ofov")
	if err := tp.KernelVXLAN(context.Background(), topo.SideA); err != nil {
		t.Fatal(err)
	}
	v := startVXDPWith(t, tp, topo.SideB, "workers: 2\n")
	vxdpOFO := ofo(t, tp)
	if err := v.Stop(); err != nil {
		t.Fatal(err)
	}
	t.Logf("vxdp log:\n%s", v.Log())
	if vxdpOFO > kernelOFO {
		t.Errorf("vxdp with 2 workers: %d segments queued out of order, the kernel's vxlan %d", vxdpOFO, kernelOFO)
	}
}
