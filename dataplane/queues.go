//go:build linux

package dataplane

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The RX queues vxdp opens sockets on are the ones in use, not the most the device was
// created with: binding an AF_XDP socket to a queue beyond the ones in use fails
// (EINVAL), and a NIC set to fewer channels than its maximum (`ethtool -L eth0 combined 8`
// on a NIC with room for 64) or a default veth (room for 2, 1 in use) is the common case.
//
// What the kernel does when the channels change, checked on Linux 6.18 with a veth
// underlay, and what vxdp does about it:
//
//   - More queues (`ethtool -L ethB rx 2`): the new queues receive at once; the XDP program
//     drops their VXLAN (counted under no_socket) until vxdp has opened and registered
//     sockets for them, which runQueueWatch does within queuePeriod (200 ms), with a log line.
//   - Fewer queues: the kernel refuses to disable a queue an AF_XDP socket is bound to, in
//     copy mode too ("requested channel counts are too low for existing zerocopy AF_XDP
//     sockets", from ethtool's channels handler), so while vxdp runs the queues it took stay.
//     Reducing them takes a restart of vxdp around the `ethtool -L` (the TAPs stay with
//     ports_on_exit: keep). Should a queue vanish all the same, runQueueWatch logs it; its
//     socket stays open and idle.

// queuePeriod is how often the underlay's queues in use are read: the kernel sends no link
// notification when the channels change, a new queue's VXLAN is dropped until it has a
// socket, and an ioctl five times a second costs nothing.
const queuePeriod = 200 * time.Millisecond

// ethtoolChannels is the kernel's struct ethtool_channels (include/uapi/linux/ethtool.h).
type ethtoolChannels struct {
	cmd                                         uint32
	maxRx, maxTx, maxOther, maxCombined         uint32
	rxCount, txCount, otherCount, combinedCount uint32
}

// queuesInUse returns how many RX queues of the device named name (ifindex index) are in
// use: the ethtool channels (combined plus RX-only), or for a device that does not report
// channels the RX queues sysfs lists, or else max, the most the device has room for.
func queuesInUse(name string, index, max int) (int, error) {
	n, err := channelQueues(name)
	if err == nil && n > 0 {
		return min(n, max), nil
	}
	if err != nil && !errors.Is(err, unix.EOPNOTSUPP) {
		return 0, fmt.Errorf("read channels of %s: %w", name, err)
	}
	if n, ok := sysfsQueues(name, index); ok && n > 0 {
		return min(n, max), nil
	}
	return max, nil
}

// channelQueues reads the ethtool channels of name in this thread's network namespace and
// returns the RX queues in use.
func channelQueues(name string) (int, error) {
	ch := &ethtoolChannels{cmd: unix.ETHTOOL_GCHANNELS}
	if err := ethtool(name, unsafe.Pointer(ch)); err != nil {
		return 0, err
	}
	return int(ch.combinedCount + ch.rxCount), nil
}

// sysfsQueues counts the rx-N entries of name's queues in sysfs, if the sysfs mounted here
// is of this network namespace (its ifindex matches index).
func sysfsQueues(name string, index int) (int, bool) {
	dir := filepath.Join("/sys/class/net", name)
	b, err := os.ReadFile(filepath.Join(dir, "ifindex"))
	if err != nil {
		return 0, false
	}
	if i, err := strconv.Atoi(strings.TrimSpace(string(b))); err != nil || i != index {
		return 0, false
	}
	rx, err := filepath.Glob(filepath.Join(dir, "queues", "rx-*"))
	if err != nil {
		return 0, false
	}
	return len(rx), true
}

// runQueueWatch follows the underlay's RX queues in use until ctx ends, opening a socket
// and an ingress pipeline for each queue that comes into use.
func (v *VTEP) runQueueWatch(ctx context.Context) {
	tick := time.NewTicker(queuePeriod)
	defer tick.Stop()
	warned := 0    // the queue count last warned about as fewer than the sockets, 0: none
	announced := 0 // the queue count last announced as more: a queue that fails to open is retried quietly
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		attrs := v.underlay.Attrs()
		n, err := queuesInUse(attrs.Name, attrs.Index, max(1, attrs.NumRxQueues))
		if err != nil {
			if n, ok := v.events.allow(eventQueueRead); ok {
				v.log.Warn("read underlay queues", "underlay", v.cfg.Underlay, "err", err, "suppressed", n)
			}
			continue
		}
		have := v.queueCount()
		switch {
		case n > have:
			if n != announced {
				v.log.Info("underlay queues changed: opening sockets", "underlay", v.cfg.Underlay, "from", have, "to", n)
				announced = n
			}
			for q := have; q < n; q++ {
				if err := v.addQueue(ctx, q); err != nil {
					if k, ok := v.events.allow(eventQueueRead); ok {
						v.log.Error("open queue: its VXLAN is dropped (no_socket) until it can be opened",
							"underlay", v.cfg.Underlay, "queue", q, "err", err, "suppressed", k)
					}
					break
				}
			}
			warned = 0
		case n < have && n != warned:
			v.log.Warn("underlay has fewer queues in use than vxdp has sockets; the others stay idle",
				"underlay", v.cfg.Underlay, "queues", n, "sockets", have)
			warned = n
		}
	}
}

// queueCount is the number of queues with a socket and a pipeline.
func (v *VTEP) queueCount() int {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return len(v.queues)
}
