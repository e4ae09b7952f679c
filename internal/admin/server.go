//go:build linux

// Package admin is vxdp's admin HTTP server: Prometheus metrics read from the dataplane's
// counters at scrape time, pprof, a health check and the FDB as JSON. It has its own
// http.Server with a private mux and timeouts, and a private Prometheus registry, so nothing
// another package registers globally ends up on it; by default it listens on loopback only.
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vxdp/vxdp/dataplane"
)

// Server timeouts. Writes may take as long as the longest CPU profile or trace the server
// agrees to take (net/http/pprof refuses a ?seconds= beyond the write timeout), plus slack.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	// MaxProfile is the longest /debug/pprof/profile or /debug/pprof/trace the server takes.
	MaxProfile   = 60 * time.Second
	writeTimeout = MaxProfile + 5*time.Second
	idleTimeout  = 60 * time.Second
	// scrapeTimeout bounds one /metrics request: a scrape reads counters and a few
	// getsockopts, so anything longer means something is stuck.
	scrapeTimeout = 10 * time.Second
)

// Source is what the server reports on; *dataplane.VTEP is one. Its methods are called from
// the server's goroutines, at any point of the dataplane's life.
type Source interface {
	// State is where the dataplane is in its life.
	State() dataplane.State
	// Stats is a snapshot of the dataplane's counters.
	Stats() dataplane.Stats
	// FDB is every VNI's forwarding database.
	FDB() []dataplane.FDBTable
}

// Server is a running admin server.
type Server struct {
	http *http.Server
	ln   net.Listener
	done chan struct{} // closed when serving has stopped
	err  error         // why serving stopped, once done is closed; nil after Shutdown
}

// Start binds addr (host:port) and serves the admin endpoints on it, reporting on src, until
// Shutdown. version labels vxdp_build_info. The address is bound before Start returns, so a
// caller that starts the server before touching the node fails early when it is taken.
func Start(addr string, src Source, version string, log *slog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("admin server: listen on %s: %w", addr, err)
	}
	s := &Server{ln: ln, done: make(chan struct{})}
	s.http = &http.Server{
		Handler:           Handler(src, version, log),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	go func() {
		err := s.http.Serve(ln)
		if !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin server stopped", "err", err)
			s.err = fmt.Errorf("admin server: %w", err)
		}
		close(s.done)
	}()
	return s, nil
}

// Addr returns the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Shutdown stops accepting requests and lets those in flight finish until ctx is done, then
// closes them; it returns once the server has stopped.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.http.Shutdown(ctx)
	if err != nil {
		err = errors.Join(fmt.Errorf("admin server: shut down: %w", err), s.http.Close())
	}
	<-s.done
	return errors.Join(err, s.err)
}

// Handler returns the admin endpoints on a mux of their own:
//
//	/metrics        Prometheus exposition from a private registry
//	/healthz        200 "running" while the dataplane runs, 503 with its state otherwise
//	/fdb            every VNI's FDB as JSON
//	/debug/pprof/   net/http/pprof, mounted explicitly
func Handler(src Source, version string, log *slog.Logger) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		NewCollector(src.Stats, version),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	if cs, ok := src.(ClusterSource); ok {
		reg.MustRegister(clusterCollector{cs, src.State})
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:            slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
		Timeout:             scrapeTimeout,
	}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		st := src.State()
		if st != dataplane.StateRunning {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		fmt.Fprintln(w, st)
	})
	mux.HandleFunc("GET /fdb", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(fdbJSON(src.FDB())); err != nil {
			log.Warn("admin server: write /fdb", "err", err)
		}
	})
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("POST /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprint(w, "vxdp admin: /metrics /healthz /fdb /debug/pprof/\n")
	})
	return mux
}

// FDB is the /fdb document: one element per VNI.
type FDB []FDBNetwork

// FDBNetwork is one VNI's FDB in /fdb.
type FDBNetwork struct {
	// VNI is the network's identifier.
	VNI uint32 `json:"vni"`
	// AgeingSeconds is how long a learned entry lives without traffic.
	AgeingSeconds float64 `json:"ageing_seconds"`
	// Entries are the VNI's MAC addresses, in no particular order.
	Entries []FDBEntry `json:"entries"`
}

// FDBEntry is one MAC address in /fdb: exactly one of Port and Remote is set.
type FDBEntry struct {
	// MAC is the address, as aa:bb:cc:dd:ee:ff.
	MAC string `json:"mac"`
	// Port is the TAP name of the local port the address lives behind.
	Port string `json:"port,omitempty"`
	// Remote is the address of the remote VTEP the address lives behind.
	Remote string `json:"remote,omitempty"`
	// Static is true for an entry that never ages: a local port's own address, or a static
	// entry of the config (networks[].fdb).
	Static bool `json:"static"`
	// AgeSeconds is the time since a frame from the address was last seen (0 when static).
	AgeSeconds float64 `json:"age_seconds"`
}

func fdbJSON(tables []dataplane.FDBTable) FDB {
	out := FDB{}
	for _, t := range tables {
		n := FDBNetwork{VNI: t.VNI, AgeingSeconds: t.Ageing.Seconds(), Entries: []FDBEntry{}}
		for _, e := range t.Entries {
			fe := FDBEntry{MAC: e.MAC.String(), Port: e.Port, Static: e.Static, AgeSeconds: e.Age.Seconds()}
			if e.Remote.IsValid() {
				fe.Remote = e.Remote.String()
			}
			n.Entries = append(n.Entries, fe)
		}
		out = append(out, n)
	}
	return out
}
