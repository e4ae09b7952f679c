//go:build linux

package topo

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// errNetstatFormat marks /proc/net/netstat or /proc/net/snmp text that does not parse.
var errNetstatFormat = errors.New("unexpected format")

// Netstat reads the SNMP counters of namespace n (/proc/net/netstat and /proc/net/snmp as
// seen from inside it), keyed "Prefix.Name", e.g. "TcpExt.TCPOFOQueue" or "Udp.InErrors".
func (n NS) Netstat(ctx context.Context) (map[string]int64, error) {
	out, err := n.Run(ctx, "cat", "/proc/net/netstat", "/proc/net/snmp")
	if err != nil {
		return nil, err
	}
	return ParseNetstat(out)
}

// ParseNetstat parses the SNMP-style counter files /proc/net/netstat and /proc/net/snmp:
// pairs of lines "Prefix: Name1 Name2 ..." and "Prefix: v1 v2 ...". The result maps
// "Prefix.Name" to its value; some are negative (Tcp.MaxConn is -1).
func ParseNetstat(text string) (map[string]int64, error) {
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	out := make(map[string]int64)
	for i := 0; i+1 < len(lines); i += 2 {
		p1, names, ok1 := strings.Cut(lines[i], ":")
		p2, values, ok2 := strings.Cut(lines[i+1], ":")
		if !ok1 || !ok2 || p1 != p2 || p1 == "" {
			return nil, fmt.Errorf("parse netstat: %w: lines %q and %q do not pair", errNetstatFormat, lines[i], lines[i+1])
		}
		n, v := strings.Fields(names), strings.Fields(values)
		if len(n) != len(v) {
			return nil, fmt.Errorf("parse netstat: %w: %s has %d names and %d values", errNetstatFormat, p1, len(n), len(v))
		}
		for j := range n {
			x, err := strconv.ParseInt(v[j], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("parse netstat: %w: %s.%s = %q", errNetstatFormat, p1, n[j], v[j])
			}
			out[p1+"."+n[j]] = x
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("parse netstat: %w: no counters", errNetstatFormat)
	}
	return out, nil
}
