//go:build linux

package main

import (
	"flag"
	"fmt"
	"time"

	"github.com/vxdp/vxdp/dataplane"
)

// adminGrace is how long a request to the admin server in flight at exit may take to finish:
// a scrape takes milliseconds; a CPU profile is cut short rather than hold up the exit.
const adminGrace = 5 * time.Second

// overrides are the flags of vxdp run that take precedence over the config file, for a test
// or a one-off run without editing the file. Only the flags given on the command line count.
type overrides struct {
	admin     *string
	workers   *int
	microflow *int
}

func addOverrides(fs *flag.FlagSet) *overrides {
	return &overrides{
		admin: fs.String("admin", "",
			`admin server address, host:port; "" disables it (overrides the config's admin; default `+dataplane.DefaultAdmin+`)`),
		workers: fs.Int("workers", 0,
			fmt.Sprintf("ingress worker goroutines, 1-%d (overrides the config's workers)", dataplane.MaxWorkers)),
		microflow: fs.Int("microflow", 0,
			fmt.Sprintf("most frames per micro-flow, 1-%d (overrides the config's microflow)", dataplane.MaxMicroFlow)),
	}
}

// apply checks the flags given on the command line and writes them over cfg. An error names
// the flag.
func (o *overrides) apply(fs *flag.FlagSet, cfg *dataplane.Config) error {
	var err error
	fs.Visit(func(f *flag.Flag) {
		if err != nil {
			return
		}
		switch f.Name {
		case "admin":
			if e := dataplane.CheckAdmin(*o.admin); e != nil {
				err = fmt.Errorf("-admin: %w", e)
				return
			}
			cfg.Admin = *o.admin
		case "workers":
			if *o.workers < 1 || *o.workers > dataplane.MaxWorkers {
				err = fmt.Errorf("-workers: %d is out of range (1-%d)", *o.workers, dataplane.MaxWorkers)
				return
			}
			cfg.Workers = *o.workers
		case "microflow":
			if *o.microflow < 1 || *o.microflow > dataplane.MaxMicroFlow {
				err = fmt.Errorf("-microflow: %d is out of range (1-%d)", *o.microflow, dataplane.MaxMicroFlow)
				return
			}
			cfg.MicroFlow = *o.microflow
		}
	})
	return err
}
