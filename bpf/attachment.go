//go:build linux

package bpf

import (
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// attachment is what every loaded XDP program of vxdp keeps beside its objects: the lock,
// the bpf_link that attaches it, and whether it is closed. Program and PortProgram embed
// it; what names the program in errors ("xdp", "port xdp").
type attachment struct {
	// mu guards everything below and the embedding program's objects.
	mu     sync.Mutex
	link   link.Link
	mode   string
	closed bool
}

// attach attaches prog to the interface through an unpinned bpf_link, natively if the
// driver can and in generic mode otherwise; the program is detached when the process
// exits or crashes.
func (a *attachment) attach(prog *ebpf.Program, ifindex int, what string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return fmt.Errorf("attach %s to ifindex %d: %w", what, ifindex, ErrClosed)
	}
	if a.link != nil {
		return fmt.Errorf("attach %s to ifindex %d: %w", what, ifindex, ErrAttached)
	}
	l, mode, err := attachXDP(prog, ifindex)
	if err != nil {
		return fmt.Errorf("attach %s to ifindex %d: %w", what, ifindex, err)
	}
	a.link, a.mode = l, mode
	return nil
}

// Mode reports how the program is attached: ModeNative, ModeGeneric, or "" when it is not
// attached.
func (a *attachment) Mode() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.mode
}

// registerSocket puts fd, a bound AF_XDP socket, into the XSKMAP xsks under queue, below
// limit, replacing any socket there.
func (a *attachment) registerSocket(xsks *ebpf.Map, queue, limit, fd int, what string) error {
	if queue < 0 || queue >= limit {
		return fmt.Errorf("register %s for queue %d: %w (max %d)", what, queue, ErrQueueRange, limit-1)
	}
	if fd < 0 {
		return fmt.Errorf("register %s for queue %d: negative fd %d", what, queue, fd)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return fmt.Errorf("register %s for queue %d: %w", what, queue, ErrClosed)
	}
	if err := xsks.Put(uint32(queue), uint32(fd)); err != nil {
		return fmt.Errorf("register %s for queue %d: %w", what, queue, err)
	}
	return nil
}

// close detaches the program (if attached) and releases objs. Later calls return nil.
func (a *attachment) close(objs io.Closer, what string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil
	}
	a.closed = true
	var lerr error
	if a.link != nil {
		if err := a.link.Close(); err != nil {
			lerr = fmt.Errorf("detach %s: %w", what, err)
		}
		a.link, a.mode = nil, ""
	}
	if err := objs.Close(); err != nil {
		return errors.Join(lerr, fmt.Errorf("close %s objects: %w", what, err))
	}
	return lerr
}

// attachXDP attaches prog to the interface through an unpinned bpf_link, in native mode
// if the driver supports it and in generic mode otherwise, and says which.
func attachXDP(prog *ebpf.Program, ifindex int) (link.Link, string, error) {
	l, nerr := link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifindex, Flags: link.XDPDriverMode})
	if nerr == nil {
		return l, ModeNative, nil
	}
	l, gerr := link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifindex, Flags: link.XDPGenericMode})
	if gerr != nil {
		return nil, "", errors.Join(fmt.Errorf("native: %w", nerr), fmt.Errorf("generic: %w", gerr))
	}
	return l, ModeGeneric, nil
}
