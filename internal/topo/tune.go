//go:build linux

package topo

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// sockFlowEntriesPath is the global size of the RFS socket flow table. It
// belongs to the whole machine, not to a namespace.
const sockFlowEntriesPath = "/proc/sys/net/core/rps_sock_flow_entries"

// writeRxQueues writes value into the file named file of every RX queue of
// ifname in ns. It goes through a shell under `ip netns exec`, because only
// a sysfs mounted inside the namespace shows the namespace's interfaces.
func writeRxQueues(ctx context.Context, ns NS, ifname, file, value string) error {
	// The names travel as positional parameters, never inside the script.
	const script = `set -e
found=
for q in /sys/class/net/"$1"/queues/rx-*; do
	[ -d "$q" ] || continue
	echo "$3" > "$q/$2"
	found=1
done
[ -n "$found" ] || { echo "no rx queues under /sys/class/net/$1" >&2; exit 1; }`
	if _, err := ns.Run(ctx, "sh", "-c", script, "sh", ifname, file, value); err != nil {
		return fmt.Errorf("write %s of %s: %w", file, ifname, err)
	}
	return nil
}

// SetRPS sets receive packet steering on every RX queue of ifname in ns:
// cpumask is the hexadecimal CPU bitmap that rps_cpus takes ("3" for CPUs 0
// and 1, "0" to turn RPS off; comma-separated 32-bit groups above 32 CPUs).
func SetRPS(ctx context.Context, ns NS, ifname, cpumask string) error {
	if err := validIfName(ifname); err != nil {
		return fmt.Errorf("set rps: %w", err)
	}
	if cpumask == "" || strings.Trim(cpumask, "0123456789abcdefABCDEF,") != "" {
		return fmt.Errorf("set rps on %s: %w: cpu mask %q is not a hexadecimal bitmap", ifname, ErrBadOption, cpumask)
	}
	return writeRxQueues(ctx, ns, ifname, "rps_cpus", cpumask)
}

// SetRFS sets the receive flow steering table of every RX queue of ifname
// in ns to flowCnt entries (rps_flow_cnt; the kernel rounds up to a power of
// two, 0 turns it off). RFS also needs the global table: SetSockFlowEntries.
func SetRFS(ctx context.Context, ns NS, ifname string, flowCnt int) error {
	if err := validIfName(ifname); err != nil {
		return fmt.Errorf("set rfs: %w", err)
	}
	if flowCnt < 0 {
		return fmt.Errorf("set rfs on %s: %w: negative flow count %d", ifname, ErrBadOption, flowCnt)
	}
	return writeRxQueues(ctx, ns, ifname, "rps_flow_cnt", strconv.Itoa(flowCnt))
}

// SetSockFlowEntries sets the global RFS socket flow table size,
// net.core.rps_sock_flow_entries, and returns the previous value so the
// caller can put it back: the setting is machine-wide, not per namespace.
func SetSockFlowEntries(n int) (prev int, err error) {
	if n < 0 {
		return 0, fmt.Errorf("set rps_sock_flow_entries: %w: negative size %d", ErrBadOption, n)
	}
	prev, err = SockFlowEntries()
	if err != nil {
		return 0, err
	}
	if err := os.WriteFile(sockFlowEntriesPath, []byte(strconv.Itoa(n)+"\n"), 0); err != nil {
		return 0, fmt.Errorf("set rps_sock_flow_entries: %w", err)
	}
	return prev, nil
}

// SockFlowEntries returns the global RFS socket flow table size.
func SockFlowEntries() (int, error) {
	b, err := os.ReadFile(sockFlowEntriesPath)
	if err != nil {
		return 0, fmt.Errorf("read rps_sock_flow_entries: %w", err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("read rps_sock_flow_entries: %w", err)
	}
	return n, nil
}

// setThreadedNAPI makes ifname in ns poll its receive queues in NAPI threads of their own
// (/sys/class/net/DEV/threaded = 1), as a NIC's driver can, instead of in the softirq of
// whichever context raised it. The device must have its NAPI already: a veth has it once
// it is up with GRO on (the kernel refuses the write otherwise).
func setThreadedNAPI(ctx context.Context, ns NS, ifname string) error {
	const script = `echo 1 > /sys/class/net/"$1"/threaded && read v < /sys/class/net/"$1"/threaded && [ "$v" = 1 ]`
	if _, err := ns.Run(ctx, "sh", "-c", script, "sh", ifname); err != nil {
		return fmt.Errorf("set threaded napi on %s: %w", ifname, err)
	}
	return nil
}

// ThreadedNAPI reports whether ifname in ns polls in NAPI threads of its own.
func ThreadedNAPI(ctx context.Context, ns NS, ifname string) (bool, error) {
	if err := validIfName(ifname); err != nil {
		return false, fmt.Errorf("read threaded napi: %w", err)
	}
	out, err := ns.Run(ctx, "cat", "/sys/class/net/"+ifname+"/threaded")
	if err != nil {
		return false, fmt.Errorf("read threaded napi of %s: %w", ifname, err)
	}
	return strings.TrimSpace(out) == "1", nil
}

// setNICQdisc gives ifname in ns the qdisc a multi-queue NIC gets by default: mq at the
// root and a pfifo_fast (of txqueuelen, 1000 frames) on each of its queues TX queues,
// named explicitly so that net.core.default_qdisc does not change the wire. On a veth
// with a qdisc the kernel stops the TX queue while the peer's receive ring is full (the
// sender waits, as for a NIC's full TX ring); without one it drops what does not fit.
func setNICQdisc(ctx context.Context, ns NS, ifname string, queues int) error {
	steps := [][]string{{"qdisc", "replace", "dev", ifname, "root", "handle", "1:", "mq"}}
	for q := 1; q <= queues; q++ {
		steps = append(steps, []string{"qdisc", "replace", "dev", ifname, "parent", fmt.Sprintf("1:%x", q), "pfifo_fast"})
	}
	for _, args := range steps {
		if _, err := run(exec.CommandContext(ctx, "tc", append([]string{"-n", ns.Name}, args...)...), ns.Name); err != nil {
			return fmt.Errorf("set qdisc of %s: %w", ifname, err)
		}
	}
	return nil
}
