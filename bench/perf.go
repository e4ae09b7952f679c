package bench

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// perfLine is one line of `perf report --stdio --sort comm --no-children -g none`: a
// share of the samples and the command (thread name) they fell in.
var perfLine = regexp.MustCompile(`^\s*([0-9]+(?:\.[0-9]+)?)%\s+(\S.*?)\s*$`)

// perfShares reads the shares of a whole-machine profile by thread, as `perf report
// --stdio --sort comm --no-children -g none` prints them, and adds them up by thread
// group (threadGroup), in percent of all samples. Comment lines are skipped.
func perfShares(report string) (map[string]float64, error) {
	shares := map[string]float64{}
	for _, line := range strings.Split(report, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		m := perfLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		pct, err := strconv.ParseFloat(m[1], 64)
		if err != nil || pct > 100 {
			return nil, fmt.Errorf("parse perf report: %w: %q", errProcFormat, line)
		}
		shares[threadGroup(m[2])] += pct
	}
	if len(shares) == 0 {
		return nil, fmt.Errorf("parse perf report: %w: no samples by command", errProcFormat)
	}
	return shares, nil
}

// threadGroup names the group a thread's samples count in: the idle task ("swapper",
// one per CPU) as "idle", a NAPI thread by its device ("napi/ethB-870" as "napi/ethB"),
// per-CPU kernel threads without their CPU ("ksoftirqd/1" as "ksoftirqd", "kworker/0:2-mld"
// as "kworker"), any other command as it is.
func threadGroup(comm string) string {
	switch {
	case comm == "swapper" || strings.HasPrefix(comm, "swapper/"):
		return "idle"
	case strings.HasPrefix(comm, "napi/"):
		if i := strings.LastIndexByte(comm, '-'); i > len("napi/") {
			if _, err := strconv.Atoi(comm[i+1:]); err == nil {
				return comm[:i]
			}
		}
		return comm
	}
	if i := strings.IndexByte(comm, '/'); i > 0 {
		switch base := comm[:i]; base {
		case "ksoftirqd", "kworker", "migration", "cpuhp", "idle_inject", "irq":
			return base
		}
	}
	return comm
}

// attribute gives thread group g of shares only the share of the run's own processes of
// that name, own, and moves what other processes of the name took to "other <g>".
func attribute(shares map[string]float64, g string, own float64) {
	byName := shares[g]
	shares[g] = own
	if rest := byName - own; rest > 0 {
		shares["other "+g] = rest
	}
}
