//go:build linux

package topo

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/vishvananda/netns"
)

// netnsDir is where `ip netns add` bind-mounts named network namespaces, and
// where vxdp's configuration refers to them.
const netnsDir = "/run/netns"

// NS is a named network namespace, as `ip netns` knows it.
type NS struct {
	// Name is the namespace's name: the file under /run/netns.
	Name string
}

// Path returns the namespace's bind-mount path, /run/netns/<name>.
func (n NS) Path() string { return filepath.Join(netnsDir, n.Name) }

// String returns the namespace's name.
func (n NS) String() string { return n.Name }

// Exec returns a command that runs name with args inside the namespace,
// through `ip netns exec`, which also remounts /sys so that sysfs shows the
// namespace's interfaces. The command is killed when ctx is done.
func (n NS) Exec(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// Run runs name with args inside the namespace and returns its combined
// output. A failure names the command, the namespace and the output.
func (n NS) Run(ctx context.Context, name string, args ...string) (string, error) {
	return run(n.Exec(ctx, name, args...), n.Name)
}

// ip runs `ip -n <ns> args...`: it switches only the network namespace, so it
// costs less than going through Exec.
func (n NS) ip(ctx context.Context, args ...string) (string, error) {
	return run(exec.CommandContext(ctx, "ip", append([]string{"-n", n.Name}, args...)...), n.Name)
}

// run runs cmd and returns its combined output, wrapping a failure with the
// command line, the place it ran in, and what it printed.
func run(cmd *exec.Cmd, where string) (string, error) {
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("run %q in %s: %w: %s",
			strings.Join(cmd.Args, " "), where, err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Do runs fn on the calling goroutine's OS thread switched into the
// namespace, then switches the thread back. Sockets and interfaces that fn
// creates belong to the namespace and keep belonging to it afterwards;
// goroutines that fn starts do not run in it.
//
// If the thread cannot be switched back, it stays locked to the goroutine,
// so the Go runtime ends the thread with the goroutine instead of reusing it
// in the wrong namespace.
func (n NS) Do(fn func() error) (err error) {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("get current netns: %w", err)
	}
	defer orig.Close()
	target, err := netns.GetFromPath(n.Path())
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("open netns %s: %w", n.Name, err)
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		// A failed setns leaves the thread where it was.
		runtime.UnlockOSThread()
		return fmt.Errorf("enter netns %s: %w", n.Name, err)
	}
	// Deferred so that a panic in fn switches back too.
	defer func() {
		if rerr := netns.Set(orig); rerr != nil {
			// Deliberately no UnlockOSThread: the thread dies with the goroutine.
			err = errors.Join(err, fmt.Errorf("restore netns after %s: %w", n.Name, rerr))
			return
		}
		runtime.UnlockOSThread()
	}()
	return fn()
}
