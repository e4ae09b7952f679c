package bpf

import "errors"

var (
	// ErrClosed is returned by every method of a Program after Close.
	ErrClosed = errors.New("xdp program closed")
	// ErrAttached is returned by Attach on a Program that is already attached.
	ErrAttached = errors.New("xdp program already attached")
	// ErrQueueRange is returned for a queue outside [0, MaxQueues).
	ErrQueueRange = errors.New("queue out of range")
	// ErrForeignProgram is returned by DetachStale when the XDP program on the
	// interface is not vxdp's: it is left in place.
	ErrForeignProgram = errors.New("xdp program on interface is not vxdp's")
	// ErrLinkHeld is returned by DetachStale when the program on the interface
	// is held by a live bpf_link, that is by a running process.
	ErrLinkHeld = errors.New("xdp program held by a bpf_link of a running process")
)
