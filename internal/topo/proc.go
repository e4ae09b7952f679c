//go:build linux

package topo

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// PID returns the process ID of the running vxdp (`ip netns exec` execs it in place, so
// it is the process StartVXDP started).
func (v *VXDP) PID() int { return v.cmd.Process.Pid }

// ProcStats is what /proc says of a process at one instant: what the fault and soak
// tests watch for leaks and spinning.
type ProcStats struct {
	// RSS is the resident set size (VmRSS), in bytes.
	RSS int64
	// FDs is the number of open file descriptors.
	FDs int
	// Threads is the number of OS threads.
	Threads int
	// CPU is the user plus system time the process has used since it started.
	CPU time.Duration
}

// clockTick is the unit of the CPU times in /proc/PID/stat, USER_HZ: 100 on every Linux
// architecture Go supports (the kernel exports no other value to userspace).
const clockTick = 10 * time.Millisecond

// ReadProc reads the ProcStats of process pid.
func ReadProc(pid int) (ProcStats, error) {
	var s ProcStats
	dir := fmt.Sprintf("/proc/%d", pid)
	status, err := os.ReadFile(dir + "/status")
	if err != nil {
		return s, fmt.Errorf("read process %d: %w", pid, err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(val)
		switch {
		case key == "VmRSS" && len(f) == 2 && f[1] == "kB":
			kb, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return s, fmt.Errorf("process %d: VmRSS %q: %w", pid, val, err)
			}
			s.RSS = kb << 10
		case key == "Threads" && len(f) == 1:
			if s.Threads, err = strconv.Atoi(f[0]); err != nil {
				return s, fmt.Errorf("process %d: Threads %q: %w", pid, val, err)
			}
		}
	}
	if s.RSS == 0 {
		return s, fmt.Errorf("process %d: no VmRSS in its status (a zombie?)", pid)
	}
	fds, err := os.ReadDir(dir + "/fd")
	if err != nil {
		return s, fmt.Errorf("read process %d: %w", pid, err)
	}
	s.FDs = len(fds)
	stat, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return s, fmt.Errorf("read process %d: %w", pid, err)
	}
	if s.CPU, err = parseStatCPU(string(stat)); err != nil {
		return s, fmt.Errorf("process %d: %w", pid, err)
	}
	return s, nil
}

// parseStatCPU returns utime + stime from the text of /proc/PID/stat. The command name
// (field 2) is in parentheses and may hold spaces, so fields are counted after its ")".
func parseStatCPU(stat string) (time.Duration, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("stat: no command name")
	}
	// After ")": field 3 (state) is rest[0], so utime (14) is rest[11] and stime (15) rest[12].
	rest := strings.Fields(stat[i+1:])
	if len(rest) < 13 {
		return 0, fmt.Errorf("stat: %d fields after the command name", len(rest))
	}
	var ticks int64
	for _, f := range rest[11:13] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("stat: cpu time %q: %w", f, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * clockTick, nil
}
