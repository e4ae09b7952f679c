//go:build linux

package xsk

import (
	"errors"
	"fmt"
	"net"
)

var (
	// ErrClosed is returned by Wait and Stats once Close has been called. It wraps
	// net.ErrClosed, so errors.Is(err, net.ErrClosed) holds as well.
	ErrClosed = fmt.Errorf("af_xdp socket closed: %w", net.ErrClosed)

	// ErrInvalidOptions is wrapped by the errors Open returns for Options it rejects.
	ErrInvalidOptions = errors.New("invalid af_xdp options")

	// errNotPollable is Wait's error on a socket built over plain memory, which tests use.
	errNotPollable = errors.New("af_xdp socket is not in the netpoller")
)
