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

	// ErrNoMultiBuffer is wrapped by Open's error when Options.MultiBuffer is set and the
	// kernel (before Linux 6.6) or the driver cannot bind a socket with XDP_USE_SG.
	ErrNoMultiBuffer = errors.New("af_xdp multi-buffer (XDP_USE_SG) not supported")

	// errNotPollable is Wait's error on a socket built over plain memory, which tests use.
	errNotPollable = errors.New("af_xdp socket is not in the netpoller")
)
