//go:build linux

package admin

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/vxdp/vxdp/bpf"
	"github.com/vxdp/vxdp/cluster"
	"github.com/vxdp/vxdp/dataplane"
	"github.com/vxdp/vxdp/dataplane/fdb"
	"github.com/vxdp/vxdp/dataplane/packet"
	"github.com/vxdp/vxdp/dataplane/xsk"
)

// snapshot is a fixed Source: the numbers a running dataplane with two queues, two workers,
// two ports and two VNIs would report. The real dataplane needs root and namespaces; the
// integration tests in cmd/vxdp scrape it.
type snapshot struct {
	state   dataplane.State
	stats   dataplane.Stats
	fdb     []dataplane.FDBTable
	cluster ClusterStats
}

// ClusterStats makes the snapshot a node in cluster mode, so that the cluster's metrics are
// linted and checked against the README with the rest.
func (s *snapshot) ClusterStats() ClusterStats { return s.cluster }

func (s *snapshot) State() dataplane.State    { return s.state }
func (s *snapshot) Stats() dataplane.Stats    { st := s.stats; st.State = s.state; return st }
func (s *snapshot) FDB() []dataplane.FDBTable { return s.fdb }

func running() *snapshot {
	s := &snapshot{state: dataplane.StateRunning}
	s.cluster = ClusterStats{InCluster: true, Attachments: 2, Cluster: cluster.Status{
		Members: 3, Endpoints: 4, Registered: true, LeaseID: 7, Registrations: 2, LeaseLosses: 1,
		EtcdErrors: 5, Resyncs: 1, Compactions: 1, Invalid: 0, Revision: 42}}
	c := &s.stats.Counters
	c.RxPackets, c.RxBytes, c.TxPackets, c.TxBytes = 1000, 1_500_000, 900, 1_300_000
	c.Delivered, c.DeliveredBytes, c.FromPorts, c.FromPortsBytes = 990, 1_400_000, 905, 1_250_000
	c.PerWorker = []uint64{7, 9}
	c.GROSuperFrames, c.GROMerged, c.GSOSuperFrames, c.GSOSegments = 10, 400, 3, 90
	c.TAPRingBatches, c.TAPRingFrames = 20, 700
	c.TxInPlace, c.GSOPlaced = 800, 2
	for i := range c.Parse {
		c.Parse[i] = uint64(i)
	}
	for i := range c.Drops {
		c.Drops[i] = uint64(100 + i)
	}
	s.stats.XDP = bpf.Counters{Passed: 50, Redirected: 1000, DropUnknownRemote: 3, DropNoSocket: 4, DropFragment: 5, RedirectFailed: 6}
	for q := range 2 {
		qs := dataplane.QueueStats{Queue: q, Delivered: 495, DeliveredBytes: 700_000,
			Socket: xsk.Stats{Received: 500, Transmitted: 450, Completed: 450, RxRingFull: 2, TxNoRoom: 1, RxKicks: 3, TxKicks: 4}}
		qs.ReorderWait.Counts[0] = 5
		qs.ReorderWait.Counts[3] = 2
		qs.ReorderWait.Counts[len(dataplane.WaitBuckets)] = 1 // beyond every bound
		qs.ReorderWait.Sum = 250 * time.Millisecond
		s.stats.ReorderWait.Counts[0] += 5
		s.stats.ReorderWait.Counts[3] += 2
		s.stats.ReorderWait.Counts[len(dataplane.WaitBuckets)]++
		s.stats.ReorderWait.Sum += qs.ReorderWait.Sum
		s.stats.Queues = append(s.stats.Queues, qs)
	}
	s.stats.Ports = []dataplane.PortStats{
		{Name: "vxp0", VNI: 42, Read: 900, ReadBytes: 1_200_000, WriteErrors: 1,
			Container: &dataplane.ContainerLink{TxDropped: 17, RxDropped: 2}},
		{Name: "vxp1", VNI: 43, Read: 5, ReadBytes: 50_000}, // its namespace is gone: no kernel counters
	}
	s.stats.Networks = []dataplane.NetworkStats{
		{VNI: 42, FDBEntries: 3, FDBCap: 4096, FDB: fdb.Stats{Added: 2, Moved: 1}},
		{VNI: 43, FDBEntries: 1, FDBCap: 4096},
	}
	s.fdb = []dataplane.FDBTable{
		{VNI: 42, Ageing: 300 * time.Second, Entries: []dataplane.FDBEntry{
			{MAC: fdb.MAC{0x02, 0, 0, 0, 0, 1}, Port: "vxp0", Static: true},
			{MAC: fdb.MAC{0x02, 0, 0, 0, 0, 2}, Remote: netip.MustParseAddr("192.168.77.1"), Age: 7 * time.Second},
		}},
		{VNI: 43, Ageing: 300 * time.Second, Entries: []dataplane.FDBEntry{}},
	}
	return s
}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// scrape returns what /metrics serves for src, parsed, and the raw text.
func scrape(t *testing.T, src Source) (map[string]*dto.MetricFamily, []byte) {
	t.Helper()
	rec := httptest.NewRecorder()
	Handler(src, "test", discard()).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("/metrics: %d %s", rec.Code, rec.Body)
	}
	body := rec.Body.Bytes()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, body)
	}
	return mfs, body
}

// value returns the value of the sample of family name whose labels include want.
func value(t *testing.T, mfs map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	t.Helper()
	mf := mfs[name]
	if mf == nil {
		t.Fatalf("no metric %s", name)
	}
next:
	for _, m := range mf.GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if got[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		}
		t.Fatalf("%s%v is neither a counter nor a gauge", name, want)
	}
	t.Fatalf("no sample %s%v", name, want)
	return 0
}

// TestMetricsLint runs promlint over everything /metrics serves, vxdp's metrics and the Go
// and process collectors', and fails on any problem.
func TestMetricsLint(t *testing.T) {
	_, body := scrape(t, running())
	problems, err := promlint.New(bytes.NewReader(body)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	if !bytes.Contains(body, []byte("vxdp_reorder_wait_seconds_bucket")) {
		t.Fatalf("the histogram is missing, so the lint saw less than everything:\n%s", body)
	}
}

// TestMetricsValues checks that each number of the snapshot comes out under its metric and
// labels, and that every drop reason of every layer has its series, zero or not.
func TestMetricsValues(t *testing.T) {
	src := running()
	mfs, _ := scrape(t, src)
	c := src.stats.Counters
	for name, want := range map[string]uint64{
		"vxdp_underlay_received_packets_total":     c.RxPackets,
		"vxdp_underlay_received_bytes_total":       c.RxBytes,
		"vxdp_underlay_sent_packets_total":         c.TxPackets,
		"vxdp_underlay_sent_bytes_total":           c.TxBytes,
		"vxdp_port_delivered_packets_total":        c.Delivered,
		"vxdp_port_delivered_bytes_total":          c.DeliveredBytes,
		"vxdp_xdp_redirected_packets_total":        src.stats.XDP.Redirected,
		"vxdp_xdp_passed_packets_total":            src.stats.XDP.Passed,
		"vxdp_offload_gro_super_frames_total":      c.GROSuperFrames,
		"vxdp_offload_gro_merged_frames_total":     c.GROMerged,
		"vxdp_offload_gso_super_frames_total":      c.GSOSuperFrames,
		"vxdp_offload_gso_segments_total":          c.GSOSegments,
		"vxdp_egress_in_place_frames_total":        c.TxInPlace,
		"vxdp_egress_scattered_super_frames_total": c.GSOPlaced,
		"vxdp_tap_io_uring_batches_total":          c.TAPRingBatches,
		"vxdp_tap_io_uring_frames_total":           c.TAPRingFrames,
	} {
		if got := value(t, mfs, name, nil); got != float64(want) {
			t.Errorf("%s = %v, want %d", name, got, want)
		}
	}
	for _, r := range packet.DropReasons() {
		if r == packet.DropNone {
			continue
		}
		if got := value(t, mfs, "vxdp_parse_drops_total", map[string]string{"reason": r.String()}); got != float64(c.Parse[r]) {
			t.Errorf("parse drop %s = %v, want %d", r, got, c.Parse[r])
		}
	}
	for _, d := range dataplane.Drops() {
		if got := value(t, mfs, "vxdp_dataplane_drops_total", map[string]string{"reason": d.String()}); got != float64(c.Drops[d]) {
			t.Errorf("dataplane drop %s = %v, want %d", d, got, c.Drops[d])
		}
	}
	if got := value(t, mfs, "vxdp_xdp_drops_total", map[string]string{"reason": "fragment"}); got != 5 {
		t.Errorf("xdp fragment drops = %v, want 5", got)
	}
	if got := value(t, mfs, "vxdp_xsk_errors_total", map[string]string{"queue": "1", "kind": "rx_ring_full"}); got != 2 {
		t.Errorf("queue 1 rx_ring_full = %v, want 2", got)
	}
	if got := value(t, mfs, "vxdp_xsk_received_packets_total", map[string]string{"queue": "0"}); got != 500 {
		t.Errorf("queue 0 received = %v, want 500", got)
	}
	if got := value(t, mfs, "vxdp_worker_microflows_total", map[string]string{"worker": "1"}); got != 9 {
		t.Errorf("worker 1 micro-flows = %v, want 9", got)
	}
	if got := value(t, mfs, "vxdp_port_write_errors_total", map[string]string{"port": "vxp0"}); got != 1 {
		t.Errorf("vxp0 write errors = %v, want 1", got)
	}
	if got := value(t, mfs, "vxdp_port_kernel_drops_total", map[string]string{"port": "vxp0", "direction": "from_container"}); got != 17 {
		t.Errorf("vxp0 kernel drops from the container = %v, want 17", got)
	}
	if got := value(t, mfs, "vxdp_port_kernel_drops_total", map[string]string{"port": "vxp0", "direction": "to_container"}); got != 2 {
		t.Errorf("vxp0 kernel drops to the container = %v, want 2", got)
	}
	for _, m := range mfs["vxdp_port_kernel_drops_total"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "port" && l.GetValue() == "vxp1" {
				t.Errorf("vxp1 has kernel drop counters, but they could not be read")
			}
		}
	}
	if got := value(t, mfs, "vxdp_fdb_entries", map[string]string{"vni": "42"}); got != 3 {
		t.Errorf("vni 42 fdb entries = %v, want 3", got)
	}
	if got := value(t, mfs, "vxdp_fdb_events_total", map[string]string{"vni": "42", "event": "moved"}); got != 1 {
		t.Errorf("vni 42 moves = %v, want 1", got)
	}
	if got := value(t, mfs, "vxdp_up", nil); got != 1 {
		t.Errorf("vxdp_up = %v while running", got)
	}
}

// TestMetricsHistogram checks the reorder wait-time histogram: cumulative buckets in seconds,
// the overflow only in +Inf, the count and sum of both queues.
func TestMetricsHistogram(t *testing.T) {
	mfs, _ := scrape(t, running())
	h := mfs["vxdp_reorder_wait_seconds"].GetMetric()[0].GetHistogram()
	if h.GetSampleCount() != 16 || h.GetSampleSum() != 0.5 {
		t.Errorf("count %d sum %v, want 16 and 0.5", h.GetSampleCount(), h.GetSampleSum())
	}
	// The text format adds the +Inf bucket, which holds the count.
	if len(h.GetBucket()) != len(dataplane.WaitBuckets)+1 {
		t.Fatalf("%d buckets, want %d and +Inf", len(h.GetBucket()), len(dataplane.WaitBuckets))
	}
	if inf := h.GetBucket()[len(dataplane.WaitBuckets)]; !math.IsInf(inf.GetUpperBound(), 1) || inf.GetCumulativeCount() != 16 {
		t.Errorf("last bucket: le %v count %d, want +Inf and 16", inf.GetUpperBound(), inf.GetCumulativeCount())
	}
	for i, b := range h.GetBucket()[:len(dataplane.WaitBuckets)] {
		want := uint64(10)
		if i >= 3 {
			want = 14
		}
		if b.GetUpperBound() != dataplane.WaitBuckets[i].Seconds() || b.GetCumulativeCount() != want {
			t.Errorf("bucket %d: le %v count %d, want le %v count %d", i, b.GetUpperBound(),
				b.GetCumulativeCount(), dataplane.WaitBuckets[i].Seconds(), want)
		}
	}
}

// TestMetricsCoverXDPCounters checks that every counter of the XDP program reaches /metrics:
// each field of bpf.Counters in turn gets a distinctive value that must show up.
func TestMetricsCoverXDPCounters(t *testing.T) {
	typ := reflect.TypeFor[bpf.Counters]()
	for i := range typ.NumField() {
		src := running()
		src.stats.XDP = bpf.Counters{}
		const mark = 987654
		reflect.ValueOf(&src.stats.XDP).Elem().Field(i).SetUint(mark)
		_, body := scrape(t, src)
		if !bytes.Contains(body, []byte(" 987654\n")) {
			t.Errorf("bpf.Counters.%s is not exported as a metric", typ.Field(i).Name)
		}
	}
}

// TestMetricsBeforeRunning checks that a dataplane not yet set up shows up as down, with
// nothing else of its own.
func TestMetricsBeforeRunning(t *testing.T) {
	mfs, _ := scrape(t, &snapshot{state: dataplane.StateStarting})
	if got := value(t, mfs, "vxdp_up", nil); got != 0 {
		t.Errorf("vxdp_up = %v while starting", got)
	}
	for name := range mfs {
		if strings.HasPrefix(name, "vxdp_") && name != "vxdp_up" && name != "vxdp_build_info" {
			t.Errorf("%s served before the dataplane ran", name)
		}
	}
}

// TestClusterMetrics checks the cluster's numbers under their metrics.
func TestClusterMetrics(t *testing.T) {
	mfs, _ := scrape(t, running())
	for name, want := range map[string]float64{
		"vxdp_cluster_members": 3, "vxdp_cluster_endpoints": 4, "vxdp_cluster_registered": 1,
		"vxdp_cluster_registrations_total": 2, "vxdp_cluster_lease_losses_total": 1, "vxdp_cluster_etcd_errors_total": 5,
		"vxdp_cluster_resyncs_total": 1, "vxdp_cluster_watch_compactions_total": 1, "vxdp_cluster_revision": 42,
		"vxdp_cni_attachments": 2,
	} {
		m := mfs[name].GetMetric()
		if len(m) != 1 {
			t.Errorf("%s: %d samples, want 1", name, len(m))
			continue
		}
		got := m[0].GetCounter().GetValue() + m[0].GetGauge().GetValue()
		if got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}

// TestMetricsInREADME checks that the README's metric reference names every vxdp metric.
func TestMetricsInREADME(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	mfs, _ := scrape(t, running())
	for name := range mfs {
		if strings.HasPrefix(name, "vxdp_") && !regexp.MustCompile("`"+name+"`").Match(readme) {
			t.Errorf("README.md does not document %s", name)
		}
	}
}

func TestHealthz(t *testing.T) {
	for _, tc := range []struct {
		state dataplane.State
		code  int
	}{
		{dataplane.StateStarting, http.StatusServiceUnavailable},
		{dataplane.StateRunning, http.StatusOK},
		{dataplane.StateStopping, http.StatusServiceUnavailable},
	} {
		rec := httptest.NewRecorder()
		Handler(&snapshot{state: tc.state}, "test", discard()).ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
		if rec.Code != tc.code || strings.TrimSpace(rec.Body.String()) != tc.state.String() {
			t.Errorf("%v: %d %q, want %d %q", tc.state, rec.Code, rec.Body, tc.code, tc.state)
		}
	}
}

func TestFDBJSON(t *testing.T) {
	rec := httptest.NewRecorder()
	Handler(running(), "test", discard()).ServeHTTP(rec, httptest.NewRequest("GET", "/fdb", nil))
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("/fdb: %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	var got FDB
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatalf("decode /fdb: %v\n%s", err, rec.Body)
	}
	want := FDB{
		{VNI: 42, AgeingSeconds: 300, Entries: []FDBEntry{
			{MAC: "02:00:00:00:00:01", Port: "vxp0", Static: true},
			{MAC: "02:00:00:00:00:02", Remote: "192.168.77.1", AgeSeconds: 7},
		}},
		{VNI: 43, AgeingSeconds: 300, Entries: []FDBEntry{}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("/fdb:\n%s\nwant %+v", rec.Body, want)
	}
}

// TestServer runs the real server on a loopback port: the endpoints answer, pprof produces a
// gzipped profile, unknown paths are 404, the address cannot be taken twice, and Shutdown
// closes the port.
func TestServer(t *testing.T) {
	s, err := Start("127.0.0.1:0", running(), "test", discard())
	if err != nil {
		t.Fatal(err)
	}
	addr := s.Addr().String()
	defer s.Shutdown(context.Background())
	get := func(path string) (int, []byte) {
		t.Helper()
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, b
	}
	if code, _ := get("/healthz"); code != http.StatusOK {
		t.Errorf("/healthz: %d", code)
	}
	if code, b := get("/metrics"); code != http.StatusOK || !bytes.Contains(b, []byte("vxdp_up 1")) {
		t.Errorf("/metrics: %d\n%s", code, b)
	}
	if code, b := get("/debug/pprof/"); code != http.StatusOK || !bytes.Contains(b, []byte("goroutine")) {
		t.Errorf("/debug/pprof/: %d", code)
	}
	code, b := get("/debug/pprof/profile?seconds=1")
	if code != http.StatusOK || len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		t.Fatalf("/debug/pprof/profile: %d, %d bytes, want a gzipped profile", code, len(b))
	}
	if _, err := gzip.NewReader(bytes.NewReader(b)); err != nil {
		t.Errorf("profile: %v", err)
	}
	if code, _ := get("/nothing"); code != http.StatusNotFound {
		t.Errorf("/nothing: %d, want 404", code)
	}
	if _, err := Start(addr, running(), "test", discard()); err == nil {
		t.Errorf("a second server started on %s", addr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Errorf("%s still accepts connections after Shutdown", addr)
	}
}
