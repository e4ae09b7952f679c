//go:build linux

package dataplane

import (
	"errors"
	"log/slog"

	"golang.org/x/sys/unix"
)

// portGoneCause explains EBADFD on a TAP: the kernel unregistered the device under vxdp's
// descriptor, which it does when the container's network namespace is deleted (the
// container stopped and its runtime removed it) or someone deleted the device. The
// descriptor stays open but dead until vxdp closes it.
const portGoneCause = "the port's device is gone (its network namespace deleted with the container?): " +
	"frames for it are dropped and counted as tap_write until a reload removes the port or vxdp restarts"

// portGone reports whether err, from a TAP's descriptor, says its device is gone.
func portGone(err error) bool { return errors.Is(err, unix.EBADFD) }

// portErrCause returns a log attribute that explains a TAP read or write error, or the
// empty attribute, which log handlers leave out, when there is nothing to add.
func portErrCause(err error) slog.Attr {
	if portGone(err) {
		return slog.String("cause", portGoneCause)
	}
	return slog.Attr{}
}
