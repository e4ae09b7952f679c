// Package nodeapi is vxdp's API on a unix socket, for the CNI plugin (cmd/vxdp-cni): the
// plugin's ADD, DEL, CHECK, GC and STATUS as JSON over HTTP. The socket is the only
// access control: it is made owner-only (0600 in a 0700 directory), so only root (or
// vxdp's user) reaches it. This package holds the messages, the server's handler and
// listener, and the client; what a call does is the Service's (cmd/vxdp).
package nodeapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// DefaultSocket is where vxdp serves the API unless the config says otherwise.
const DefaultSocket = "/run/vxdp/vxdp.sock"

// Attachment names one CNI attachment: a container's interface.
type Attachment struct {
	ContainerID string `json:"container_id"`
	IfName      string `json:"ifname"`
}

// IPConfig is an address for the container's interface, as IPAM gave it.
type IPConfig struct {
	Address netip.Prefix `json:"address"`
	Gateway netip.Addr   `json:"gateway,omitzero"`
}

// Route is a route in the container, as IPAM gave it (GW zero: on link).
type Route struct {
	Dst netip.Prefix `json:"dst"`
	GW  netip.Addr   `json:"gw,omitzero"`
}

// AddRequest asks for a port in a container's namespace: ADD, and CHECK of what ADD made.
type AddRequest struct {
	Attachment
	// Netns is the path of the container's network namespace (CNI_NETNS).
	Netns string `json:"netns"`
	// VNI is the network the port joins; vxdp must carry it (its config lists it).
	VNI uint32 `json:"vni"`
	// MTU of the port; 0 is vxdp's default.
	MTU int `json:"mtu,omitempty"`
	// Veth asks for a veth pair instead of a TAP.
	Veth bool `json:"veth,omitempty"`
	// IPs and Routes are configured on the interface, in the container.
	IPs    []IPConfig `json:"ips,omitempty"`
	Routes []Route    `json:"routes,omitempty"`
}

// AddResponse describes the interface ADD made.
type AddResponse struct {
	// MAC is the interface's MAC address in the container.
	MAC string `json:"mac"`
	// Device is the name of the device vxdp made (the TAP, or the veth's host end).
	Device string `json:"device"`
}

// GCRequest lists the attachments that are still valid; vxdp removes its other ports.
type GCRequest struct {
	Valid []Attachment `json:"valid"`
}

// GCResponse lists the attachments GC removed, so that the plugin releases their IPAM.
type GCResponse struct {
	Removed []Attachment `json:"removed"`
}

// StatusResponse says whether vxdp can serve an ADD now.
type StatusResponse struct {
	Ready  bool   `json:"ready"`
	Reason string `json:"reason,omitempty"`
}

// Service is what the API's calls do.
type Service interface {
	Add(ctx context.Context, r AddRequest) (AddResponse, error)
	Check(ctx context.Context, r AddRequest) error
	// Del removes the attachment; one that does not exist is no error.
	Del(ctx context.Context, a Attachment) error
	GC(ctx context.Context, valid []Attachment) ([]Attachment, error)
	Status() StatusResponse
}

// errorBody is the body of every failed call.
type errorBody struct {
	Error string `json:"error"`
}

// Handler serves s: POST /v1/add, /v1/check, /v1/del, /v1/gc with JSON bodies, GET /v1/status.
func Handler(s Service) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/add", func(w http.ResponseWriter, r *http.Request) {
		var req AddRequest
		if !decode(w, r, &req) {
			return
		}
		resp, err := s.Add(r.Context(), req)
		reply(w, resp, err)
	})
	mux.HandleFunc("POST /v1/check", func(w http.ResponseWriter, r *http.Request) {
		var req AddRequest
		if !decode(w, r, &req) {
			return
		}
		reply(w, struct{}{}, s.Check(r.Context(), req))
	})
	mux.HandleFunc("POST /v1/del", func(w http.ResponseWriter, r *http.Request) {
		var req Attachment
		if !decode(w, r, &req) {
			return
		}
		reply(w, struct{}{}, s.Del(r.Context(), req))
	})
	mux.HandleFunc("POST /v1/gc", func(w http.ResponseWriter, r *http.Request) {
		var req GCRequest
		if !decode(w, r, &req) {
			return
		}
		removed, err := s.GC(r.Context(), req.Valid)
		reply(w, GCResponse{Removed: removed}, err)
	})
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		reply(w, s.Status(), nil)
	})
	return mux
}

// maxBody bounds a request body: an ADD with a few addresses and routes is under 2 KB.
const maxBody = 1 << 20

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		reply(w, nil, fmt.Errorf("%w: %v", ErrBadRequest, err))
		return false
	}
	return true
}

// ErrBadRequest marks a request the service refuses as malformed (HTTP 400).
var ErrBadRequest = errors.New("bad request")

func reply(w http.ResponseWriter, v any, err error) {
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		code := http.StatusInternalServerError
		if errors.Is(err, ErrBadRequest) {
			code = http.StatusBadRequest
		}
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(errorBody{Error: err.Error()})
		return
	}
	json.NewEncoder(w).Encode(v)
}

// Listen makes the socket at path, owner-only, in a directory it creates (0700) if
// missing. A socket file left by a vxdp that died is replaced; one that a live process
// serves is an error.
func Listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("api socket %s: %w", path, err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("api socket %s: a file that is not a socket is in the way", path)
		}
		c, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			c.Close()
			return nil, fmt.Errorf("api socket %s: another process serves it", path)
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("api socket %s: exists and is not a stale socket: %w", path, err)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("api socket %s: remove stale socket: %w", path, err)
		}
	}
	// The socket is made with the umask's permissions and chmodded after: mask everything
	// but the owner's bits meanwhile, so there is no moment it is open to others.
	old := syscall.Umask(0o077)
	l, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("api socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("api socket %s: %w", path, err)
	}
	return l, nil
}

// Client calls a vxdp's API over its socket.
type Client struct {
	hc *http.Client
}

// NewClient returns a client of the socket at path; it connects at each call.
func NewClient(path string) *Client {
	return &Client{hc: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		},
	}}}
}

func (c *Client) call(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://vxdp"+path, body)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("vxdp api: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return fmt.Errorf("vxdp api: read reply: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e errorBody
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return fmt.Errorf("vxdp: %s", e.Error)
		}
		return fmt.Errorf("vxdp api: %s", resp.Status)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("vxdp api: decode reply: %w", err)
		}
	}
	return nil
}

// Add asks for a port (CNI ADD).
func (c *Client) Add(ctx context.Context, r AddRequest) (AddResponse, error) {
	var resp AddResponse
	err := c.call(ctx, http.MethodPost, "/v1/add", r, &resp)
	return resp, err
}

// Check checks a port ADD made (CNI CHECK).
func (c *Client) Check(ctx context.Context, r AddRequest) error {
	return c.call(ctx, http.MethodPost, "/v1/check", r, nil)
}

// Del removes a port (CNI DEL); a missing one is no error.
func (c *Client) Del(ctx context.Context, a Attachment) error {
	return c.call(ctx, http.MethodPost, "/v1/del", a, nil)
}

// GC removes the ports not in valid and returns them (CNI GC).
func (c *Client) GC(ctx context.Context, valid []Attachment) ([]Attachment, error) {
	var resp GCResponse
	err := c.call(ctx, http.MethodPost, "/v1/gc", GCRequest{Valid: valid}, &resp)
	return resp.Removed, err
}

// Status asks whether vxdp serves ADDs (CNI STATUS).
func (c *Client) Status(ctx context.Context) (StatusResponse, error) {
	var resp StatusResponse
	err := c.call(ctx, http.MethodGet, "/v1/status", nil, &resp)
	return resp, err
}
