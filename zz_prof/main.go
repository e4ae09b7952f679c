package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"time"

	"github.com/vxdp/vxdp/internal/topo"
)

func main() {
	dir := flag.String("dir", "fwd", "fwd: kernel A -> vxdp B (vxdp receives); rev: vxdp B -> kernel A (vxdp sends); both: vxdp on both")
	perfOut := flag.String("perf", "", "perf.data path (empty: no profile)")
	d := flag.Duration("t", 12*time.Second, "")
	flag.Parse()
	ctx := context.Background()
	tp, err := topo.New(ctx, topo.Options{Prefix: topo.Prefix("prof")})
	if err != nil {
		panic(err)
	}
	defer tp.Close()
	if *dir != "both" {
		must(tp.KernelVXLAN(ctx, topo.SideA))
	} else {
		va, err := tp.StartVXDP(ctx, topo.SideA, "bin/vxdp", "")
		must(err)
		defer va.Stop()
	}
	v, err := tp.StartVXDP(ctx, topo.SideB, "bin/vxdp", "")
	must(err)
	defer v.Stop()
	time.Sleep(2 * time.Second)
	f := topo.Iperf3{Server: tp.ContainerB, Client: tp.ContainerA, Addr: tp.OverlayB.Addr().String(), Duration: *d, Reverse: *dir == "rev"}
	done := make(chan struct{})
	if *perfOut != "" {
		go func() {
			time.Sleep(2 * time.Second)
			out, err := exec.Command("perf", "record", "-a", "-g", "-o", *perfOut, "--", "sleep", "8").CombinedOutput()
			fmt.Fprintln(os.Stderr, string(out), err)
			close(done)
		}()
	} else {
		close(done)
	}
	res, err := f.Run(ctx)
	must(err)
	<-done
	fmt.Printf("%s: %.2f Gbit/s, %d retransmits\n", *dir, res.BitsPerSecond/1e9, res.Retransmits)
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}
