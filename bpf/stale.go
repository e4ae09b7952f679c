//go:build linux

package bpf

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// xdpAttachedMulti is IFLA_XDP_ATTACHED's value when programs are attached in
// more than one mode (offload plus driver); netlink/nl stops at HW.
const xdpAttachedMulti = 4

// DetachStale removes an XDP program that an earlier vxdp attached to the
// interface through netlink and left behind when it died. It returns nil when
// no program is attached.
//
// A program vxdp attaches itself (Attach) needs no cleaning: its unpinned
// bpf_link dies with the process. So only netlink attachments can be stale.
// DetachStale refuses, with ErrForeignProgram, to touch a program not named
// ProgramName, and reports ErrLinkHeld when the program is held by a live
// bpf_link, which means another vxdp (or other tool) is running.
func DetachStale(ifindex int) error {
	l, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		return fmt.Errorf("detach stale xdp from ifindex %d: %w", ifindex, err)
	}
	x := l.Attrs().Xdp
	if x == nil || !x.Attached {
		return nil
	}
	var flags int
	switch x.AttachMode {
	case nl.XDP_ATTACHED_DRV:
		flags = unix.XDP_FLAGS_DRV_MODE
	case nl.XDP_ATTACHED_SKB:
		flags = unix.XDP_FLAGS_SKB_MODE
	case nl.XDP_ATTACHED_HW:
		flags = unix.XDP_FLAGS_HW_MODE
	case xdpAttachedMulti:
		return fmt.Errorf("detach stale xdp from ifindex %d: %w: programs attached in several modes", ifindex, ErrForeignProgram)
	default:
		return fmt.Errorf("detach stale xdp from ifindex %d: unknown attach mode %d", ifindex, x.AttachMode)
	}
	name, err := programName(x.ProgId)
	if err != nil {
		return fmt.Errorf("detach stale xdp from ifindex %d: %w", ifindex, err)
	}
	if name != ProgramName {
		return fmt.Errorf("detach stale xdp from ifindex %d: %w: program %q (id %d)", ifindex, ErrForeignProgram, name, x.ProgId)
	}
	if err := netlink.LinkSetXdpFdWithFlags(l, -1, flags); err != nil {
		if errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("detach stale xdp from ifindex %d: %w (id %d)", ifindex, ErrLinkHeld, x.ProgId)
		}
		return fmt.Errorf("detach stale xdp from ifindex %d: %w", ifindex, err)
	}
	return nil
}

// programName returns the kernel name of the program with the given ID.
func programName(id uint32) (string, error) {
	prog, err := ebpf.NewProgramFromID(ebpf.ProgramID(id))
	if err != nil {
		return "", fmt.Errorf("open program %d: %w", id, err)
	}
	info, err := prog.Info()
	prog.Close()
	if err != nil {
		return "", fmt.Errorf("read program %d info: %w", id, err)
	}
	return info.Name, nil
}
