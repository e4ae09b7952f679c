//go:build linux

package dataplane

import (
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ifreqData is struct ifreq with its ifr_data member, the SIOCETHTOOL argument; a pointer
// field of its own keeps the data visible to the garbage collector.
type ifreqData struct {
	name [unix.IFNAMSIZ]byte
	data unsafe.Pointer
	_    [24 - unsafe.Sizeof(uintptr(0))]byte
}

// ethtool runs the ethtool command whose struct data points to (its first field the
// command) on interface name, in the calling thread's network namespace. The kernel's
// errno comes back unwrapped, so callers can test for EOPNOTSUPP.
func ethtool(name string, data unsafe.Pointer) error {
	var ifr ifreqData
	if len(name) >= len(ifr.name) {
		return fmt.Errorf("interface name %q is too long", name)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket for ethtool: %w", err)
	}
	defer unix.Close(fd)
	copy(ifr.name[:], name)
	ifr.data = data
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	runtime.KeepAlive(data)
	if errno != 0 {
		return errno
	}
	return nil
}
