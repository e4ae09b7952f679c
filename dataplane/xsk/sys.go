//go:build linux

package xsk

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// setsockopt sets a socket option whose value is the size bytes at p. golang.org/x/sys
// has no typed wrapper for the AF_XDP structures.
func setsockopt(fd, level, name int, p unsafe.Pointer, size uintptr) error {
	_, _, e := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), uintptr(level), uintptr(name), uintptr(p), size, 0)
	if e != 0 {
		return e
	}
	return nil
}

// getsockopt reads a socket option into the size bytes at p and returns the length the
// kernel wrote.
func getsockopt(fd, level, name int, p unsafe.Pointer, size uintptr) (uintptr, error) {
	n := uint32(size)
	_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), uintptr(level), uintptr(name), uintptr(p), uintptr(unsafe.Pointer(&n)), 0)
	if e != 0 {
		return 0, e
	}
	return uintptr(n), nil
}

// wake makes the syscall that asks the kernel to process a ring: recvfrom for the fill
// ring, sendto for the TX ring, both with MSG_DONTWAIT (the kernel refuses blocking
// ones) and no buffer. It returns the errno, 0 on success, without building an error
// value, so the hot path does not allocate.
func wake(fd int, trap uintptr) unix.Errno {
	_, _, e := unix.Syscall6(trap, uintptr(fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
	return e
}
