package nodeapi

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// recorder is a Service that records what it was asked and answers from its fields.
type recorder struct {
	add    AddRequest
	del    Attachment
	valid  []Attachment
	addErr error
}

func (r *recorder) Add(_ context.Context, req AddRequest) (AddResponse, error) {
	r.add = req
	return AddResponse{MAC: "02:00:00:00:00:01", Device: "vxc0"}, r.addErr
}
func (r *recorder) Check(context.Context, AddRequest) error { return errors.New("no such port") }
func (r *recorder) Del(_ context.Context, a Attachment) error {
	r.del = a
	return nil
}
func (r *recorder) GC(_ context.Context, valid []Attachment) ([]Attachment, error) {
	r.valid = valid
	return []Attachment{{ContainerID: "gone", IfName: "eth0"}}, nil
}
func (r *recorder) Status() StatusResponse { return StatusResponse{Reason: "vxdp is starting"} }

func serve(t *testing.T, s Service) (string, *Client) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "run", "vxdp.sock")
	l, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: Handler(s)}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return path, NewClient(path)
}

// TestSocketOwnerOnly: the socket is 0600 in a 0700 directory, so only its owner reaches it.
func TestSocketOwnerOnly(t *testing.T) {
	path, _ := serve(t, &recorder{})
	for p, want := range map[string]os.FileMode{path: 0o600, filepath.Dir(path): 0o700} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s has mode %v, want %v", p, got, want)
		}
	}
}

// TestListenStaleAndLive: a socket file nobody serves (a vxdp that died) is replaced; one a
// live server holds is refused.
func TestListenStaleAndLive(t *testing.T) {
	path, _ := serve(t, &recorder{})
	if _, err := Listen(path); err == nil || !strings.Contains(err.Error(), "another process") {
		t.Fatalf("listen on a live socket: %v, want a refusal", err)
	}
	stale := filepath.Join(t.TempDir(), "stale.sock")
	l, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	l2, err := Listen(stale)
	if err != nil {
		t.Fatalf("listen over a stale socket: %v", err)
	}
	l2.Close()
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o600)
	if _, err := Listen(file); err == nil {
		t.Fatal("listen over a regular file succeeded")
	}
}

// TestCalls: each call reaches the service with its fields, errors come back with their
// message, and a malformed request is refused before the service sees it.
func TestCalls(t *testing.T) {
	rec := &recorder{}
	path, c := serve(t, rec)
	ctx := context.Background()
	req := AddRequest{Attachment: Attachment{ContainerID: "c1", IfName: "eth0"}, Netns: "/run/netns/x", VNI: 42,
		IPs:    []IPConfig{{Address: netip.MustParsePrefix("10.42.0.5/16"), Gateway: netip.MustParseAddr("10.42.0.1")}},
		Routes: []Route{{Dst: netip.MustParsePrefix("0.0.0.0/0")}}}
	resp, err := c.Add(ctx, req)
	if err != nil || resp.MAC != "02:00:00:00:00:01" {
		t.Fatalf("add: %+v, %v", resp, err)
	}
	if rec.add.IPs[0] != req.IPs[0] || rec.add.Routes[0].GW.IsValid() || rec.add.VNI != 42 {
		t.Fatalf("the service got %+v, want %+v", rec.add, req)
	}
	rec.addErr = errors.New("vni 7 is not one of this node's networks")
	if _, err := c.Add(ctx, req); err == nil || !strings.Contains(err.Error(), "vni 7") {
		t.Fatalf("add error: %v", err)
	}
	if err := c.Check(ctx, req); err == nil || !strings.Contains(err.Error(), "no such port") {
		t.Fatalf("check error: %v", err)
	}
	if err := c.Del(ctx, req.Attachment); err != nil || rec.del != req.Attachment {
		t.Fatalf("del: %v, service got %+v", err, rec.del)
	}
	removed, err := c.GC(ctx, []Attachment{req.Attachment})
	if err != nil || len(removed) != 1 || len(rec.valid) != 1 {
		t.Fatalf("gc: %v, %v; service got %v", removed, err, rec.valid)
	}
	if st, err := c.Status(ctx); err != nil || st.Ready || st.Reason == "" {
		t.Fatalf("status: %+v, %v", st, err)
	}
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", path)
	}}}
	r, err := hc.Post("http://vxdp/v1/add", "application/json", strings.NewReader(`{"container_id": "x", "bogus": 1}`))
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusBadRequest {
		t.Fatalf("a request with an unknown field: %s, want 400", r.Status)
	}
}
