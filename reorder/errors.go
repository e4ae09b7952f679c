package reorder

import "errors"

// ErrClosed is returned by Begin, Next and Pool.Submit after Close.
var ErrClosed = errors.New("reorder: closed")
