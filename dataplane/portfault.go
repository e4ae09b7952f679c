//go:build linux

package dataplane

import (
	"errors"
	"log/slog"

	"golang.org/x/sys/unix"
)

// portGoneCause explains a port whose device the kernel removed under vxdp: EBADFD on a
// TAP's descriptor, ENETDOWN from a veth port's AF_XDP socket (unbound). The kernel does
// that when the container's network namespace is deleted (the container stopped and its
// runtime removed it) or someone deleted the device. vxdp keeps the dead descriptor or
// socket until it closes the port.
const portGoneCause = "the port's device is gone (its network namespace deleted with the container?): " +
	"frames for it are dropped and counted until a reload removes the port or vxdp restarts"

// portGone reports whether err, from a TAP's descriptor, says its device is gone.
func portGone(err error) bool { return errors.Is(err, unix.EBADFD) }

// portErrCause returns a log attribute that explains a port's read or write error, or the
// empty attribute, which log handlers leave out, when there is nothing to add.
func portErrCause(err error) slog.Attr {
	if portGone(err) || errors.Is(err, unix.ENETDOWN) {
		return slog.String("cause", portGoneCause)
	}
	return slog.Attr{}
}
