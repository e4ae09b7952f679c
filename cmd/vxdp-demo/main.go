//go:build linux

// Command vxdp-demo shows vxdp at work on one machine: it builds the two-host overlay in
// network namespaces, carries a single iperf3 TCP flow through the kernel's vxlan on both
// hosts, then through vxdp on host B against the kernel's vxlan on host A, prints both, and
// removes everything it made. With -cluster it shows a cluster instead (make demo-cluster):
// three vxdp nodes over etcd, containers attached through the CNI plugin, a node killed
// and restarted.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/vxdp/vxdp/internal/topo"
)

func main() {
	binary := flag.String("vxdp", "bin/vxdp", "the vxdp binary")
	duration := flag.Duration("t", 5*time.Second, "length of each iperf3 run")
	clusterMode := flag.Bool("cluster", false, "the cluster demo: three nodes over etcd, containers attached with cnitool")
	cni := flag.String("cni", "bin/vxdp-cni", "the vxdp-cni plugin (-cluster)")
	cnitool := flag.String("cnitool", "bin/cnitool", "cnitool (-cluster)")
	flag.Parse()
	var err error
	if *clusterMode {
		err = func() error {
			if os.Geteuid() != 0 {
				return errors.New("needs root: it creates network namespaces, XDP programs and TAP devices")
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return runCluster(ctx, *binary, *cni, *cnitool, *duration)
		}()
	} else {
		err = run(*binary, *duration)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "vxdp-demo:", err)
		os.Exit(1)
	}
}

func run(binary string, d time.Duration) (err error) {
	if os.Geteuid() != 0 {
		return errors.New("needs root: it creates network namespaces, XDP programs and TAP devices")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	tp, err := topo.New(ctx, topo.Options{Prefix: topo.Prefix("demo")})
	if err != nil {
		return err
	}
	defer func() {
		if cerr := tp.Close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
		fmt.Println("removed namespaces", tp.Prefix+"-{hA,hB,cA,cB}")
	}()
	fmt.Printf("topology: hosts %s (%s) and %s (%s) on a veth wire that behaves like a NIC (MTU %d, %d queues,\n"+
		"          segmentation and TX checksum offloads off, GRO on, threaded NAPI),\n"+
		"          containers %s (%s) and %s (%s), VNI %d\n",
		tp.HostA, tp.UnderlayA, tp.HostB, tp.UnderlayB, tp.WireMTU, tp.WireQueues,
		tp.ContainerA, tp.OverlayA, tp.ContainerB, tp.OverlayB, tp.VNI)

	flow := topo.Iperf3{Server: tp.ContainerB, Client: tp.ContainerA, Addr: tp.OverlayB.Addr().String(), Duration: d}

	for _, s := range []topo.Side{topo.SideA, topo.SideB} {
		if err := tp.KernelVXLAN(ctx, s); err != nil {
			return err
		}
	}
	kernel, err := flow.Run(ctx)
	if err != nil {
		return fmt.Errorf("through the kernel's vxlan: %w", err)
	}
	fmt.Printf("kernel vxlan -> kernel vxlan: %6.2f Gbit/s  (%d retransmits)\n", kernel.BitsPerSecond/1e9, kernel.Retransmits)

	// Host B's container gets a new interface (vxdp's TAP) with a new MAC address; rebuild
	// host A's side too, so neither its vxlan FDB nor its container's ARP cache holds the
	// old one, as after a container restart.
	for _, s := range []topo.Side{topo.SideA, topo.SideB} {
		if err := tp.RemoveKernelVXLAN(ctx, s); err != nil {
			return err
		}
	}
	if err := tp.KernelVXLAN(ctx, topo.SideA); err != nil {
		return err
	}
	v, err := tp.StartVXDP(ctx, topo.SideB, binary, "")
	if err != nil {
		return err
	}
	defer func() {
		if serr := v.Stop(); serr != nil {
			err = errors.Join(err, fmt.Errorf("stop vxdp: %w", serr))
		}
		fmt.Println("vxdp stopped: XDP detached, TAP removed")
	}()
	res, err := flow.Run(ctx)
	if err != nil {
		return fmt.Errorf("through vxdp: %w\nvxdp log:\n%s", err, v.Log())
	}
	fmt.Printf("kernel vxlan -> vxdp:         %6.2f Gbit/s  (%d retransmits)\n", res.BitsPerSecond/1e9, res.Retransmits)
	fmt.Printf("ratio vxdp / kernel: %.2f (one run on this machine; bench/ gives medians of interleaved runs)\n",
		res.BitsPerSecond/kernel.BitsPerSecond)
	return nil
}
