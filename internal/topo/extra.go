//go:build linux

package topo

import (
	"context"
	"fmt"
	"os"
)

// AddContainer creates a third container namespace, <prefix>-cC, with nothing in it but
// its loopback: a second container behind a host, for a node service with two ports. Close
// removes it with the others, and CleanupStale recognises it. It fails if the namespace
// exists already.
func (t *Topology) AddContainer(ctx context.Context) (NS, error) {
	ns := NS{t.Prefix + "-" + roles[4]}
	if _, err := os.Stat(ns.Path()); err == nil {
		return NS{}, fmt.Errorf("create netns %s: %w", ns, os.ErrExist)
	}
	t.mu.Lock()
	t.made = append(t.made, ns) // before it exists, as build does
	t.mu.Unlock()
	if _, err := run(hostCmd(ctx, "ip", "netns", "add", ns.Name), "the root netns"); err != nil {
		return NS{}, err
	}
	if _, err := ns.ip(ctx, "link", "set", "lo", "up"); err != nil {
		return NS{}, err
	}
	return ns, nil
}
