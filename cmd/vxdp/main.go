//go:build linux

// Command vxdp is the node service: a VXLAN tunnel endpoint in userspace that takes the
// place of the kernel's vxlan, bridge and veth on a container host.
//
//	vxdp run -config FILE [-check]
//	vxdp version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/vxdp/vxdp/dataplane"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1 // the node service failed while setting up or running
	exitUsage   = 2 // bad command line or config: nothing on the node was touched
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "run":
		return cmdRun(args[1:], stderr)
	case "version":
		fmt.Fprintf(stdout, "vxdp %s\n", version)
		return exitOK
	case "help", "-h", "-help", "--help":
		usage(stdout)
		return exitOK
	default:
		fmt.Fprintf(stderr, "vxdp: unknown command %q\n", args[0])
		usage(stderr)
		return exitUsage
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage:
  vxdp run -config FILE [-check]   run the node service until SIGINT or SIGTERM
  vxdp version                     print the version
`)
}

func cmdRun(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "config file (YAML)")
	check := fs.Bool("check", false, "validate the config and exit")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *path == "" {
		fmt.Fprintln(stderr, "vxdp run: -config is required")
		return exitUsage
	}
	var log *slog.Logger
	switch *logFormat {
	case "text":
		log = slog.New(slog.NewTextHandler(stderr, nil))
	case "json":
		log = slog.New(slog.NewJSONHandler(stderr, nil))
	default:
		fmt.Fprintf(stderr, "vxdp run: -log-format %q: want text or json\n", *logFormat)
		return exitUsage
	}
	cfg, err := dataplane.LoadConfig(*path)
	if err != nil {
		fmt.Fprintf(stderr, "vxdp: %s: %v\n", *path, err)
		return exitUsage
	}
	if *check {
		fmt.Fprintf(stderr, "vxdp: %s: config is valid\n", *path)
		return exitOK
	}
	vtep, err := dataplane.New(cfg, log)
	if err != nil {
		log.Error("check node", "err", err)
		return exitUsage
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		// A second signal while tearing down forces the exit.
		<-ctx.Done()
		stop()
		force := make(chan os.Signal, 1)
		signal.Notify(force, syscall.SIGINT, syscall.SIGTERM)
		<-force
		log.Error("second signal: exiting without teardown")
		os.Exit(exitFailure)
	}()
	err = vtep.Run(ctx)
	c := vtep.Counters()
	log.Info("counters", "rx_packets", c.RxPackets, "tx_packets", c.TxPackets,
		"delivered", c.Delivered, "from_ports", c.FromPorts, "learned", c.Learned,
		"gro_super_frames", c.GROSuperFrames, "gro_merged", c.GROMerged,
		"gso_super_frames", c.GSOSuperFrames, "gso_segments", c.GSOSegments, dropCounters(vtep))
	if err != nil && !errors.Is(err, context.Canceled) {
		log.Error("vxdp failed", "err", err)
		return exitFailure
	}
	return exitOK
}
