package bench

import (
	"fmt"
	"image/color"
	"path/filepath"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// Plot sizes, in points (1/72 in): readable on a laptop screen and in a
// markdown viewer.
const (
	plotWidth  = 7 * vg.Inch
	plotHeight = 4.5 * vg.Inch
)

// WritePlots writes the PNG plots into dir and returns their file names:
// flows.png (throughput against flow count), sizes-kpps.png and
// sizes-gbps.png (UDP against datagram size), cpu-<workload>.png (CPU
// breakdown per core per configuration, single-flow TCP and UDP). A plot
// without data is not written.
func (r *Results) WritePlots(dir string) ([]string, error) {
	var files []string
	save := func(name string, p *plot.Plot, err error) error {
		if err != nil {
			return fmt.Errorf("plot %s: %w", name, err)
		}
		if p == nil {
			return nil
		}
		if err := p.Save(plotWidth, plotHeight, filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("plot %s: %w", name, err)
		}
		files = append(files, name)
		return nil
	}
	flows := r.flowSweep()
	p, err := r.sweepPlot(flows, "Throughput against flow count (TCP, 128 KB writes)", "flow pairs (iperf3 -P)",
		"Gbit/s received", func(w Workload) float64 { return float64(w.Parallel) }, gbps)
	if err := save("flows.png", p, err); err != nil {
		return files, err
	}
	sizes := r.sizeSweep()
	size := func(w Workload) float64 { return float64(w.Length) }
	p, err = r.sweepPlot(sizes, "UDP packet rate against datagram size (one flow, -b 0)", "datagram size (bytes)",
		"thousand datagrams received per second", size, kpps)
	if err := save("sizes-kpps.png", p, err); err != nil {
		return files, err
	}
	p, err = r.sweepPlot(sizes, "UDP throughput against datagram size (one flow, -b 0)", "datagram size (bytes)",
		"Gbit/s received", size, gbps)
	if err := save("sizes-gbps.png", p, err); err != nil {
		return files, err
	}
	for _, find := range []func() (Workload, bool){r.singleTCP, r.singleUDP} {
		if w, ok := find(); ok {
			p, err := r.cpuPlot(w)
			if err := save("cpu-"+w.Name+".png", p, err); err != nil {
				return files, err
			}
		}
	}
	return files, nil
}

// errPoints are medians with their intervals, for a line and its error bars.
type errPoints struct {
	plotter.XYs
	plotter.YErrors
}

// sweepPlot draws metric f against x(w) for every configuration that ran
// more than one point of the sweep ws, on log-scaled x with a tick at each
// point, with the median's interval as error bars. It returns a nil plot
// when there is nothing to draw.
func (r *Results) sweepPlot(ws []Workload, title, xlabel, ylabel string, x func(Workload) float64, f metric) (*plot.Plot, error) {
	cs := r.sweepConfigs(ws)
	if len(cs) == 0 || len(ws) < 2 {
		return nil, nil
	}
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xlabel
	p.Y.Label.Text = ylabel
	p.X.Scale = plot.LogScale{}
	var ticks plot.ConstantTicks
	for _, w := range ws {
		ticks = append(ticks, plot.Tick{Value: x(w), Label: strconv.FormatFloat(x(w), 'f', -1, 64)})
	}
	p.X.Tick.Marker = ticks
	p.Legend.Top = true
	p.Legend.Left = true
	p.Add(plotter.NewGrid())
	var lines []any
	ymax := 0.0
	for _, c := range cs {
		var pts errPoints
		for _, w := range ws {
			if !w.runsOn(c.Name) {
				continue
			}
			s := r.stat(c.Name, w.Name, f)
			if s.N == 0 {
				continue
			}
			ymax = max(ymax, s.Hi)
			pts.XYs = append(pts.XYs, plotter.XY{X: x(w), Y: s.Median})
			pts.YErrors = append(pts.YErrors, struct{ Low, High float64 }{s.Median - s.Lo, s.Hi - s.Median})
		}
		if len(pts.XYs) == 0 {
			continue
		}
		lines = append(lines, c.Name, pts.XYs)
		if eb, err := plotter.NewYErrorBars(pts); err == nil {
			p.Add(eb)
		}
	}
	if len(lines) == 0 {
		return nil, nil
	}
	if err := plotutil.AddLinePoints(p, lines...); err != nil {
		return nil, err
	}
	// Head room above the data for the legend, which sits top left.
	p.Y.Min, p.Y.Max = 0, legendRoom*ymax
	return p, nil
}

// legendRoom is the y range over the data's maximum: the legend goes in
// the space above.
const legendRoom = 1.45

// cpuCategories are the stacked parts of a core's busy time, bottom up,
// with their colours; idle is what is left to 100 %.
var cpuCategories = []struct {
	name  string
	color color.Color
	value func(CoreCPU) float64
}{
	{"usr", color.RGBA{R: 0x4c, G: 0x72, B: 0xb0, A: 0xff}, func(c CoreCPU) float64 { return c.User }},
	{"sys", color.RGBA{R: 0xdd, G: 0x84, B: 0x52, A: 0xff}, func(c CoreCPU) float64 { return c.System }},
	{"irq", color.RGBA{R: 0x93, G: 0x78, B: 0x60, A: 0xff}, func(c CoreCPU) float64 { return c.IRQ }},
	{"softirq", color.RGBA{R: 0xc4, G: 0x4e, B: 0x52, A: 0xff}, func(c CoreCPU) float64 { return c.Softirq }},
	{"steal", color.RGBA{R: 0x8c, G: 0x8c, B: 0x8c, A: 0xff}, func(c CoreCPU) float64 { return c.Steal }},
}

// cpuPlot draws, for workload w, one group of bars per configuration and
// one bar per core in it, each stacked usr, sys, irq, softirq and steal:
// the receiver-side breakdown of the first paper's figures 4 and 6, here
// for the whole machine.
func (r *Results) cpuPlot(w Workload) (*plot.Plot, error) {
	var names []string
	var perCore [][]CoreCPU // core, configuration
	for _, c := range r.Plan.Configs {
		st := r.coreStats(c.Name, w.Name)
		if st == nil {
			continue
		}
		names = append(names, c.Name)
		for core, f := range st {
			for len(perCore) <= core {
				perCore = append(perCore, make([]CoreCPU, len(names)-1))
			}
			perCore[core] = append(perCore[core], CoreCPU{User: f[0], System: f[1], IRQ: f[2], Softirq: f[3], Steal: f[4], Idle: f[5]})
		}
		for core := len(st); core < len(perCore); core++ {
			perCore[core] = append(perCore[core], CoreCPU{Idle: 100})
		}
	}
	if len(names) == 0 {
		return nil, nil
	}
	p := plot.New()
	p.Title.Text = fmt.Sprintf("CPU per core, %s (bars left to right: core 0 to %d)", w.Name, len(perCore)-1)
	p.Y.Label.Text = "% of the core's time"
	// Head room above 100 % for the legend; ticks stop at 100.
	p.Y.Min, p.Y.Max = 0, 100*legendRoom
	p.Y.Tick.Marker = plot.ConstantTicks{{Value: 0, Label: "0"}, {Value: 25, Label: "25"},
		{Value: 50, Label: "50"}, {Value: 75, Label: "75"}, {Value: 100, Label: "100"}}
	p.Legend.Left = true
	p.Legend.Top = true
	p.Add(plotter.NewGrid())
	width := vg.Points(min(40, 360/float64(len(names)*len(perCore))))
	for core, cfgs := range perCore {
		var below *plotter.BarChart
		for _, cat := range cpuCategories {
			vs := make(plotter.Values, len(cfgs))
			for i, u := range cfgs {
				vs[i] = cat.value(u)
			}
			bar, err := plotter.NewBarChart(vs, width)
			if err != nil {
				return nil, err
			}
			bar.Color = cat.color
			bar.LineStyle.Width = vg.Points(0.3)
			bar.Offset = vg.Length(float64(core)-float64(len(perCore)-1)/2) * (width + vg.Points(2))
			if below != nil {
				bar.StackOn(below)
			}
			below = bar
			p.Add(bar)
			if core == 0 {
				p.Legend.Add(cat.name, bar)
			}
		}
	}
	p.NominalX(names...)
	return p, nil
}
