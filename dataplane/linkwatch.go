//go:build linux

package dataplane

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// What the kernel does when the underlay goes down and up (ip link set dev ethB down/up),
// checked on Linux 6.18 with a veth underlay, and why vxdp needs no rebinding:
//
//   - The AF_XDP sockets stay bound: the kernel unbinds them only when the device is
//     unregistered (NETDEV_UNREGISTER), never on down. Their UMEM, rings and XSKMAP
//     entries stay; frames received before the down stay valid.
//   - The XDP program stays attached through its bpf_link; a driver that tears down its
//     XDP queues on close (veth does) sets them up again on open, with the same program.
//   - While down, nothing arrives, and the TX path cannot drain: sendto on the socket fails
//     (counted as a failed kick), or the kernel completes a posted frame unsent, one per
//     wakeup (Linux 6.18's copy mode: NET_XMIT_DROP, EBUSY). So egress does not post what
//     the ports send while runLinkWatch has the underlay down: it drops it, counted as
//     underlay_down. Frames posted before the down go out once it is up, or are dropped
//     by the kernel.
//   - The kernel flushes the device's routes and neighbours; the resolver keeps the next
//     hops' last MACs, so the outer headers stay valid, and asks the kernel again once the
//     routes are back.
//
// So traffic resumes by itself once the device is up. runLinkWatch only makes the fault
// visible: a log line when the underlay goes down and when it comes back (with how long it
// was down and what egress dropped meanwhile), at most one per eventInterval, and the
// state and the number of outages for the metrics. Only removing the device (or moving it
// to another namespace) ends the sockets for good; that is logged as an error, and vxdp
// must be restarted on the new device.

// linkState is the underlay's state as runLinkWatch last saw it; read by Stats.
type linkState struct {
	down  atomic.Bool   // down (administratively, or no carrier), or removed
	downs atomic.Uint64 // times it went down since setup
}

// linkRecvBuf is the size of the buffer one read of link notifications takes, in bytes:
// one RTM_NEWLINK of a veth is about 1.5 KB, and the kernel may batch several.
const linkRecvBuf = 32 << 10

// runLinkWatch follows the underlay's operational state through the kernel's link
// notifications (RTNLGRP_LINK) until ctx ends.
func (v *VTEP) runLinkWatch(ctx context.Context) {
	ifindex := v.underlay.Attrs().Index
	sock, err := subscribeLinks()
	if err != nil {
		v.log.Warn("watch underlay state: link changes will not be logged", "underlay", v.cfg.Underlay, "err", err)
		return
	}
	reads := make(chan linkRead)
	go readLinks(sock, reads) // until sock is closed: ctx's end closes it, waking its Read
	stop := context.AfterFunc(ctx, func() { sock.Close() })
	defer func() {
		if stop() { // returning before ctx ended
			sock.Close()
		}
		for range reads { // until readLinks has seen the close
		}
	}()
	l := linkLog{v: v, up: true, loggedUp: true}
	// The state now: the subscription started after setup, and it may be down already.
	if up, ok := v.underlayUp(); ok && !up {
		l.change(false, time.Now())
	}
	var flush <-chan time.Time
	for {
		select {
		case r, ok := <-reads:
			if !ok {
				return // closed: ctx ended
			}
			now := time.Now()
			switch {
			case r.err != nil && errors.Is(r.err, unix.ENOBUFS):
				// The kernel dropped notifications: ask for the state instead.
				if up, ok := v.underlayUp(); ok {
					l.change(up, now)
				}
			case r.err != nil:
				v.log.Warn("watch underlay state: stopped", "underlay", v.cfg.Underlay, "err", r.err)
				return
			default:
				for i := range r.msgs {
					m := &r.msgs[i]
					idx, flags, ok := ifinfo(m)
					switch {
					case !ok || int(idx) != ifindex:
					case m.Header.Type == unix.RTM_DELLINK:
						l.removed()
						return
					case m.Header.Type == unix.RTM_NEWLINK:
						l.change(linkUp(flags), now)
					}
				}
			}
		case <-flush:
			flush = nil
			l.flush(time.Now())
		}
		if flush == nil && l.changes > 0 {
			flush = time.After(time.Until(l.last.Add(eventInterval)))
		}
	}
}

// underlayUp asks the kernel whether the underlay is up; ok is false if it could not say.
func (v *VTEP) underlayUp() (up, ok bool) {
	link, err := netlink.LinkByIndex(v.underlay.Attrs().Index)
	if err != nil {
		return false, false
	}
	return linkUp(link.Attrs().RawFlags), true
}

// linkUp reports whether interface flags (ifi_flags) say the device carries traffic: up
// administratively and with carrier (IFF_LOWER_UP). Not IFF_RUNNING: the kernel derives
// that from the operational state, which it updates only later (linkwatch, up to a second),
// so a link that flaps faster would seem to skip outages.
func linkUp(flags uint32) bool {
	return flags&unix.IFF_UP != 0 && flags&unix.IFF_LOWER_UP != 0
}

// subscribeLinks opens a netlink socket that receives the link notifications of the
// calling thread's network namespace, in Go's poller so that Close wakes a Read.
func subscribeLinks() (*os.File, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("open netlink socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: 1 << (unix.RTNLGRP_LINK - 1)}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("subscribe to link notifications: %w", err)
	}
	return os.NewFile(uintptr(fd), "netlink:link"), nil
}

// linkRead is one read of link notifications: the messages, or the read's error.
type linkRead struct {
	msgs []syscall.NetlinkMessage
	err  error
}

// readLinks reads notifications from sock into reads until sock is closed, then closes
// reads. ENOBUFS (the kernel dropped some) is passed on and reading goes on.
func readLinks(sock *os.File, reads chan<- linkRead) {
	defer close(reads)
	buf := make([]byte, linkRecvBuf)
	for {
		n, err := sock.Read(buf)
		if errors.Is(err, os.ErrClosed) {
			return
		}
		var r linkRead
		if err == nil {
			r.msgs, err = syscall.ParseNetlinkMessage(buf[:n])
		}
		r.err = err
		reads <- r
		if err != nil && !errors.Is(err, unix.ENOBUFS) {
			return
		}
	}
}

// ifinfo returns the interface index and flags of an RTM_NEWLINK or RTM_DELLINK message
// (struct ifinfomsg: family, pad, type, index, flags, change).
func ifinfo(m *syscall.NetlinkMessage) (index int32, flags uint32, ok bool) {
	if len(m.Data) < unix.SizeofIfInfomsg {
		return 0, 0, false
	}
	return int32(binary.NativeEndian.Uint32(m.Data[4:8])), binary.NativeEndian.Uint32(m.Data[8:12]), true
}

// linkLog turns the underlay's state changes into log lines, at most one per
// eventInterval: a change within the interval waits for flush, which reports the state
// then and how many changes it summarises. Owned by runLinkWatch.
type linkLog struct {
	v        *VTEP
	up       bool      // the state now
	loggedUp bool      // the state the last line reported
	last     time.Time // when the last line went out
	changes  int       // changes since the last line
	// downSince and upSince are when the latest outage began and ended, and dropsAtDown
	// what egress had dropped for lack of TX room or a next hop as it began.
	downSince, upSince time.Time
	dropsAtDown        uint64
}

// change records the state up, seen at now, and logs it unless a line went out less than
// eventInterval ago.
func (l *linkLog) change(up bool, now time.Time) {
	if up == l.up {
		return
	}
	l.up = up
	l.changes++
	if up {
		l.v.link.down.Store(false)
		l.upSince = now
	} else {
		l.v.link.down.Store(true)
		l.v.link.downs.Add(1)
		l.downSince, l.dropsAtDown = now, l.v.egressDrops()
	}
	if now.Sub(l.last) >= eventInterval {
		l.flush(now)
	}
}

// flush logs the state now if it changed since the last line.
func (l *linkLog) flush(now time.Time) {
	if l.changes == 0 {
		return
	}
	suppressed := l.changes - 1 // changes this line sums up beyond its own
	l.changes, l.last, l.loggedUp = 0, now, l.up
	v := l.v
	if l.up {
		v.log.Info("underlay up again; traffic resumes", "underlay", v.cfg.Underlay,
			"down_for", l.upSince.Sub(l.downSince).Round(time.Millisecond).String(),
			"egress_dropped", v.egressDrops()-l.dropsAtDown, "suppressed", suppressed)
		return
	}
	v.log.Warn("underlay down: VXLAN to and from remote VTEPs is lost until it is up again; AF_XDP sockets and XDP stay in place",
		"underlay", v.cfg.Underlay, "suppressed", suppressed)
}

// removed logs that the underlay is gone for good.
func (l *linkLog) removed() {
	v := l.v
	if !v.link.down.Swap(true) {
		v.link.downs.Add(1)
	}
	v.log.Error("underlay removed: its AF_XDP sockets are unbound and its XDP program gone; vxdp carries no VXLAN until it is restarted",
		"underlay", v.cfg.Underlay)
}

// egressDrops is what egress has dropped while the underlay was down, for lack of TX room
// or of a next hop's MAC: what the ports send while the underlay is down ends there.
func (v *VTEP) egressDrops() uint64 {
	c := v.Counters()
	return c.Drops[DropTxFull] + c.Drops[DropNoNeighbour] + c.Drops[DropUnderlayDown]
}
