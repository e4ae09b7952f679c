//go:build linux

package topo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// HTTPGet fetches http://addr+path from inside the namespace, as a process there would:
// vxdp's admin server listens on the loopback of the host namespace it runs in. The
// connection is dialled on a thread switched into n (net/http would dial on a goroutine
// of its own, in whatever namespace its thread is in) and handed to the client; a socket
// stays in the namespace it was made in. ctx bounds the whole request.
func (n NS) HTTPGet(ctx context.Context, addr, path string) (status int, body []byte, err error) {
	var conn net.Conn
	err = n.Do(func() (err error) {
		conn, err = (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, "tcp", addr)
		return err
	})
	if err != nil {
		return 0, nil, fmt.Errorf("dial %s in %s: %w", addr, n, err)
	}
	conns := make(chan net.Conn, 1)
	conns <- conn
	client := &http.Client{Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(context.Context, string, string) (net.Conn, error) {
			select {
			case c := <-conns:
				return c, nil
			default:
				return nil, errors.New("the connection dialled in the namespace is used up")
			}
		},
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		conn.Close()
		return 0, nil, fmt.Errorf("get %s%s in %s: %w", addr, path, n, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		conn.Close()
		return 0, nil, fmt.Errorf("get %s%s in %s: %w", addr, path, n, err)
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, body, fmt.Errorf("read %s%s in %s: %w", addr, path, n, err)
	}
	return resp.StatusCode, body, nil
}
