//go:build linux

package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/vxdp/vxdp/dataplane"
)

// statusTimeout bounds each request of vxdp status to the admin server.
const statusTimeout = 5 * time.Second

// cmdStatus prints a summary of a running vxdp, read from its admin server: /healthz, then
// /metrics twice an interval apart for the rates.
func cmdStatus(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("admin", dataplane.DefaultAdmin, "the admin server's address, host:port")
	interval := fs.Duration("interval", time.Second, "time between the two scrapes the rates come from")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 || *addr == "" || *interval <= 0 {
		fmt.Fprintln(stderr, "usage: vxdp status [-admin host:port] [-interval 1s]")
		return exitUsage
	}
	client := &http.Client{Timeout: statusTimeout}
	base := "http://" + *addr
	health, err := get(client, base+"/healthz")
	if err != nil {
		fmt.Fprintf(stderr, "vxdp status: %v (is vxdp running, with its admin server on %s?)\n", err, *addr)
		return exitFailure
	}
	state := strings.TrimSpace(string(health))
	first, err := scrapeMetrics(client, base)
	if err != nil {
		fmt.Fprintf(stderr, "vxdp status: %v\n", err)
		return exitFailure
	}
	t0 := time.Now()
	time.Sleep(*interval)
	second, err := scrapeMetrics(client, base)
	if err != nil {
		fmt.Fprintf(stderr, "vxdp status: %v\n", err)
		return exitFailure
	}
	printStatus(stdout, *addr, state, first, second, time.Since(t0))
	if state != dataplane.StateRunning.String() {
		return exitFailure
	}
	return exitOK
}

// get returns the body of a GET of url; any status but 200 and 503 (/healthz while not
// running) is an error.
func get(c *http.Client, url string) ([]byte, error) {
	resp, err := c.Get(url)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusServiceUnavailable {
		return nil, fmt.Errorf("get %s: %s", url, resp.Status)
	}
	return b, nil
}

// metrics are the families of one scrape, by name.
type metrics map[string]*dto.MetricFamily

func scrapeMetrics(c *http.Client, base string) (metrics, error) {
	b, err := get(c, base+"/metrics")
	if err != nil {
		return nil, err
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("parse %s/metrics: %w", base, err)
	}
	return mfs, nil
}

// series is one sample of a family: its labels and its value.
type series struct {
	labels map[string]string
	value  float64
}

// all returns the samples of family name (counters and gauges), in exposition order.
func (m metrics) all(name string) []series {
	var out []series
	for _, s := range m[name].GetMetric() {
		labels := map[string]string{}
		for _, l := range s.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		v := s.GetCounter().GetValue()
		if s.Gauge != nil {
			v = s.GetGauge().GetValue()
		}
		out = append(out, series{labels, v})
	}
	return out
}

// get returns the value of the sample of family name whose labels include the pairs kv.
func (m metrics) get(name string, kv ...string) float64 {
next:
	for _, s := range m.all(name) {
		for i := 0; i+1 < len(kv); i += 2 {
			if s.labels[kv[i]] != kv[i+1] {
				continue next
			}
		}
		return s.value
	}
	return 0
}

// labelValues returns the values label takes in family name, in exposition order.
func (m metrics) labelValues(name, label string) []string {
	var out []string
	for _, s := range m.all(name) {
		if v, ok := s.labels[label]; ok && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

func printStatus(w io.Writer, addr, state string, a, b metrics, dt time.Duration) {
	sec := dt.Seconds()
	rate := func(name string, kv ...string) float64 { return (b.get(name, kv...) - a.get(name, kv...)) / sec }
	version := "?"
	if s := b.all("vxdp_build_info"); len(s) > 0 {
		version = s[0].labels["version"]
	}
	fmt.Fprintf(w, "vxdp %s at %s: %s (rates over %.1fs)\n", version, addr, state, sec)
	if b["vxdp_underlay_received_packets_total"] == nil {
		return // not set up: nothing else to show
	}
	if b["vxdp_cluster_members"] != nil {
		lease := "registered"
		if b.get("vxdp_cluster_registered") == 0 {
			lease = "NOT registered (registering)"
		}
		fmt.Fprintf(w, "cluster: %.0f members, %s, %.0f endpoints, revision %.0f; lease losses %.0f, etcd errors %.0f, resyncs %.0f\n",
			b.get("vxdp_cluster_members"), lease, b.get("vxdp_cluster_endpoints"), b.get("vxdp_cluster_revision"),
			b.get("vxdp_cluster_lease_losses_total"), b.get("vxdp_cluster_etcd_errors_total"), b.get("vxdp_cluster_resyncs_total"))
	}
	if b["vxdp_cni_attachments"] != nil {
		fmt.Fprintf(w, "cni: %.0f attachments\n", b.get("vxdp_cni_attachments"))
	}

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\ttraffic\tpackets\tbytes\tpackets/s\tbits/s\t")
	for _, d := range []struct{ what, base string }{
		{"received from underlay", "vxdp_underlay_received"},
		{"delivered to ports", "vxdp_port_delivered"},
		{"read from ports", "vxdp_port_read"},
		{"sent to underlay", "vxdp_underlay_sent"},
	} {
		pk, by := d.base+"_packets_total", d.base+"_bytes_total"
		fmt.Fprintf(tw, "\t%s\t%.0f\t%.0f\t%.1f\t%s\t\n", d.what, sum(b, pk), sum(b, by),
			(sum(b, pk)-sum(a, pk))/sec, si((sum(b, by)-sum(a, by))*8/sec))
	}
	tw.Flush()

	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "queue\treceived\treceived/s\tdelivered\tdelivered/s\tsent\tsent/s\t")
	for _, q := range b.labelValues("vxdp_xsk_received_packets_total", "queue") {
		fmt.Fprintf(tw, "%s\t%.0f\t%.1f\t%.0f\t%.1f\t%.0f\t%.1f\t\n", q,
			b.get("vxdp_xsk_received_packets_total", "queue", q), rate("vxdp_xsk_received_packets_total", "queue", q),
			b.get("vxdp_queue_delivered_packets_total", "queue", q), rate("vxdp_queue_delivered_packets_total", "queue", q),
			b.get("vxdp_xsk_transmitted_packets_total", "queue", q), rate("vxdp_xsk_transmitted_packets_total", "queue", q))
	}
	tw.Flush()

	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "worker\tmicro-flows\tmicro-flows/s\t")
	for _, wk := range b.labelValues("vxdp_worker_microflows_total", "worker") {
		fmt.Fprintf(tw, "%s\t%.0f\t%.1f\t\n", wk, b.get("vxdp_worker_microflows_total", "worker", wk),
			rate("vxdp_worker_microflows_total", "worker", wk))
	}
	tw.Flush()
	if h := b["vxdp_reorder_wait_seconds"].GetMetric(); len(h) == 1 && h[0].GetHistogram().GetSampleCount() > 0 {
		hist := h[0].GetHistogram()
		fmt.Fprintf(w, "reorder wait: %d micro-flows, mean %v\n", hist.GetSampleCount(),
			time.Duration(hist.GetSampleSum()/float64(hist.GetSampleCount())*1e9).Round(time.Microsecond/10))
	}

	fmt.Fprintln(w)
	fmt.Fprintln(w, "drops and errors (non-zero):")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	n := 0
	for _, f := range []struct{ what, name string }{
		{"xdp", "vxdp_xdp_drops_total"},
		{"parse", "vxdp_parse_drops_total"},
		{"dataplane", "vxdp_dataplane_drops_total"},
		{"af_xdp", "vxdp_xsk_errors_total"},
		{"tap write", "vxdp_port_write_errors_total"},
		{"tap read", "vxdp_port_read_errors_total"},
		{"kernel", "vxdp_port_kernel_drops_total"},
	} {
		for _, s := range b.all(f.name) {
			if s.value == 0 {
				continue
			}
			var where []string
			for _, l := range []string{"queue", "port", "reason", "kind", "direction"} {
				if v, ok := s.labels[l]; ok {
					if l == "queue" {
						v = "queue " + v
					}
					where = append(where, v)
				}
			}
			fmt.Fprintf(tw, "  %s\t%s\t%.0f\n", f.what, strings.Join(where, " "), s.value)
			n++
		}
	}
	tw.Flush()
	if n == 0 {
		fmt.Fprintln(w, "  none")
	}

	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "vni\tfdb entries\tmax\tadded\tmoved\tevicted\texpired\t")
	for _, vni := range b.labelValues("vxdp_fdb_entries", "vni") {
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t\n", vni,
			b.get("vxdp_fdb_entries", "vni", vni), b.get("vxdp_fdb_max_entries", "vni", vni),
			b.get("vxdp_fdb_events_total", "vni", vni, "event", "added"),
			b.get("vxdp_fdb_events_total", "vni", vni, "event", "moved"),
			b.get("vxdp_fdb_events_total", "vni", vni, "event", "evicted"),
			b.get("vxdp_fdb_events_total", "vni", vni, "event", "expired"))
	}
	tw.Flush()
}

// sum adds up every sample of family name.
func sum(m metrics, name string) float64 {
	var t float64
	for _, s := range m.all(name) {
		t += s.value
	}
	return t
}

// si formats v with an SI prefix: 1.23G, 456.0M, 12.0k, 7.
func si(v float64) string {
	for _, p := range []struct {
		f float64
		s string
	}{{1e9, "G"}, {1e6, "M"}, {1e3, "k"}} {
		if v >= p.f {
			return strconv.FormatFloat(v/p.f, 'f', 2, 64) + p.s
		}
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}
