//go:build linux

package dataplane

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// A TAP opened with IFF_NAPI hands what vxdp writes to a NAPI instance of its own instead
// of running the container's receive path (IP, TCP, the socket's wakeup) inside the write.
// With that NAPI threaded, the kernel runs it in a thread of its own (napi/<tap>-<id>),
// which the scheduler can put on another core: the merger goes on with the next
// micro-flow while the container's stack takes the last one. Without the thread the NAPI
// runs in the softirq the write raises, on the writer's core, and nothing is gained.

// tapSndBuf bounds what a TAP with NAPI holds between vxdp's writes and its NAPI thread:
// the kernel charges each frame to the tun socket's send buffer until the container's IP
// layer takes it, so a full buffer makes the write wait in Go's poller (EAGAIN, then
// POLLOUT) instead of letting the queue grow without limit. 4 MB is about 64 super-frames
// of 64 KB, a NAPI poll's worth.
const tapSndBuf = 4 << 20

// setThreadedNAPI switches the NAPI instances of the device named name in namespace ns
// (-1: vxdp's own) to threaded mode, through sysfs. /sys shows the devices of the network
// namespace that mounted it, so the switch is written under a sysfs mounted afresh from
// inside ns, in a mount namespace of the calling OS thread alone; that thread is then
// left locked, so that Go ends it with the goroutine rather than run other code in a
// namespace that is not the process's.
func setThreadedNAPI(ns netns.NsHandle, name string) error {
	if strings.ContainsAny(name, "/\x00") || name == "" || name == "." || name == ".." {
		return fmt.Errorf("threaded napi: bad device name %q", name)
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread leaves with its namespaces
		errc <- writeThreaded(ns, name)
	}()
	return <-errc
}

// writeThreaded is setThreadedNAPI's work on its own locked OS thread.
func writeThreaded(ns netns.NsHandle, name string) error {
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("threaded napi: private mount namespace: %w", err)
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("threaded napi: private mounts: %w", err)
	}
	if ns != -1 {
		if err := netns.Set(ns); err != nil {
			return fmt.Errorf("threaded napi: enter netns: %w", err)
		}
	}
	dir, err := os.MkdirTemp("", "vxdp-sysfs-")
	if err != nil {
		return fmt.Errorf("threaded napi: %w", err)
	}
	// The directory is in the host's /tmp (mounts are private, files are not): remove it
	// whatever happens; the mount goes with the thread's mount namespace.
	defer os.Remove(dir)
	if err := unix.Mount("sysfs", dir, "sysfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("threaded napi: mount sysfs: %w", err)
	}
	defer unix.Unmount(dir, unix.MNT_DETACH)
	path := dir + "/class/net/" + name + "/threaded"
	if err := os.WriteFile(path, []byte("1"), 0); err != nil {
		return fmt.Errorf("threaded napi of %s: %w", name, err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("threaded napi of %s: %w", name, err)
	}
	if v := strings.TrimSpace(string(got)); v != "1" && v != "enabled" {
		return fmt.Errorf("threaded napi of %s: reads %q after writing 1: %w", name, v, errors.ErrUnsupported)
	}
	return nil
}
