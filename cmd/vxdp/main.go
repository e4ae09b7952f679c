//go:build linux

// Command vxdp is the node service: a VXLAN tunnel endpoint in userspace that takes the
// place of the kernel's vxlan, bridge and veth on a container host.
//
//	vxdp run -config FILE [-check] [-admin ADDR] [-workers N] [-microflow N] [-log-format text|json]
//	vxdp status [-admin ADDR]
//	vxdp version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/vxdp/vxdp/dataplane"
	"github.com/vxdp/vxdp/internal/admin"
	"github.com/vxdp/vxdp/internal/nodeapi"
)

// reloadOnHangup reloads the config on every SIGHUP until ctx ends: load reads the file
// again (with the command line's overrides) and apply applies what may change while
// running (vtep.Reload, with the cluster's remotes merged in). A config that does not load or does not apply is logged and the running one
// stays. The returned channel is closed once no reload is in progress any more.
func reloadOnHangup(ctx context.Context, apply func(*dataplane.Config) error, log *slog.Logger, load func() (*dataplane.Config, error)) <-chan struct{} {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
			}
			cfg, err := load()
			if err != nil {
				log.Error("reload: config not loaded; the running one stays", "err", err)
				continue
			}
			if err := apply(cfg); err != nil {
				log.Error("reload", "err", err)
				continue
			}
			log.Info("reload: done")
		}
	}()
	return done
}

// apiTimeout bounds reading a request's headers on the API socket.
const apiTimeout = 10 * time.Second

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
	case "status":
		return cmdStatus(args[1:], stdout, stderr)
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
  vxdp run -config FILE [-check] [flags]   run the node service until SIGINT or SIGTERM
                                           (vxdp run -h lists the flags)
  vxdp status [-admin ADDR]                summarise a running vxdp from its admin server
  vxdp version                             print the version
`)
}

func cmdRun(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "config file (YAML)")
	check := fs.Bool("check", false, "validate the config and exit")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	over := addOverrides(fs)
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "vxdp run: unexpected argument %q\n", fs.Arg(0))
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
	if err := over.apply(fs, cfg); err != nil {
		fmt.Fprintf(stderr, "vxdp run: %v\n", err)
		return exitUsage
	}
	if *check {
		fmt.Fprintf(stderr, "vxdp: %s: config is valid\n", *path)
		return exitOK
	}
	// The ports the CNI plugin asked a previous vxdp for are taken over with the file's.
	nets := &networks{log: log, file: cfg}
	if cfg.API != "" {
		nets.state = statePath(cfg.API)
	}
	if err := nets.loadAttachments(); err != nil {
		log.Error("load cni attachments", "err", err)
		return exitUsage
	}
	vtep, err := dataplane.New(nets.merged(), log)
	if err != nil {
		log.Error("check node", "err", err)
		return exitUsage
	}
	nets.vtep = vtep
	// The admin server starts before the node is touched, so a taken address fails early,
	// and it stops last, so /healthz and /metrics follow the teardown to its end.
	var srv *admin.Server
	if cfg.Admin != "" {
		var src admin.Source = vtep
		if cfg.Cluster != nil || cfg.API != "" {
			src = nodeSource{vtep, nets}
		}
		if srv, err = admin.Start(cfg.Admin, src, version, log); err != nil {
			log.Error("start admin server", "err", err)
			return exitUsage
		}
		log.Info("admin server listening", "addr", srv.Addr().String())
	}
	var api *http.Server
	if cfg.API != "" {
		l, err := nodeapi.Listen(cfg.API)
		if err != nil {
			log.Error("start api", "err", err)
			return exitUsage
		}
		api = &http.Server{Handler: nodeapi.Handler(nets), ReadHeaderTimeout: apiTimeout}
		go api.Serve(l)
		log.Info("api listening", "socket", cfg.API)
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
	var left <-chan struct{}
	if cfg.Cluster != nil {
		if left, err = startCluster(ctx, nets, cfg); err != nil {
			log.Error("join cluster", "err", err)
			return exitUsage
		}
	}
	reloads := reloadOnHangup(ctx, nets.reloadFile, log, func() (*dataplane.Config, error) {
		cfg, err := dataplane.LoadConfig(*path)
		if err != nil {
			return nil, err
		}
		return cfg, over.apply(fs, cfg)
	})
	err = vtep.Run(ctx)
	<-reloads
	if cfg.Cluster != nil {
		<-left
	}
	if api != nil {
		// Closing the listener removes the socket file.
		sctx, cancel := context.WithTimeout(context.Background(), adminGrace)
		api.Shutdown(sctx)
		cancel()
		if !cfg.KeepPorts {
			// The ports are gone with vxdp: a next one has nothing to take over.
			os.Remove(nets.state)
		}
	}
	c := vtep.Counters()
	log.Info("counters", "rx_packets", c.RxPackets, "tx_packets", c.TxPackets,
		"delivered", c.Delivered, "from_ports", c.FromPorts, "learned", c.Learned,
		"gro_super_frames", c.GROSuperFrames, "gro_merged", c.GROMerged,
		"gso_super_frames", c.GSOSuperFrames, "gso_segments", c.GSOSegments, "neigh_replies", c.NeighReplies,
		"tap_io_uring_batches", c.TAPRingBatches, "tap_io_uring_frames", c.TAPRingFrames,
		"tx_in_place", c.TxInPlace, "gso_scattered", c.GSOPlaced, dropCounters(vtep))
	if srv != nil {
		// Last teardown step: Run has detached XDP, closed the sockets, drained the stages
		// and removed the TAPs; a scrape in flight gets adminGrace to finish.
		sctx, cancel := context.WithTimeout(context.Background(), adminGrace)
		if serr := srv.Shutdown(sctx); serr != nil {
			log.Warn("stop admin server", "err", serr)
		}
		cancel()
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		log.Error("vxdp failed", "err", err)
		return exitFailure
	}
	return exitOK
}
