package bench

import (
	"fmt"
	"image"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
)

// Panel size in pixels, and panels per row, of the report's chart.
const (
	panelW, panelH = 720, 420
	panelCols      = 2
)

// Chart draws the run as one image: throughput against the baseline,
// per-file latency against ffmpeg alone, the dispatch curve, the rates
// against their targets, the handler's memory and the latency overhead.
func (r Result) Chart() (image.Image, error) {
	plots, err := r.plots()
	if err != nil {
		return nil, err
	}
	return renderGrid(plots, panelCols, panelW, panelH)
}

// WriteChart writes Chart as a PNG file, atomically.
func (r Result) WriteChart(path string) error {
	img, err := r.Chart()
	if err != nil {
		return fmt.Errorf("bench chart: %w", err)
	}
	return writePNG(path, img)
}

func (r Result) plots() ([]*plot.Plot, error) {
	t := r.Targets
	specs := []func() (*plot.Plot, error){
		barSpec{
			title: fmt.Sprintf("Throughput: %d x %.0fs clips (ratio %.3f)", r.Config.Files, r.Config.ClipSeconds, r.ThroughputRatio),
			unit:  "s",
			groups: []barGroup{{label: "wall time", bars: []bar{
				{"pipeline", r.PipelineSeconds},
				{"xargs -P ffmpeg", r.BaselineSeconds},
			}}},
			targets: []target{{fmt.Sprintf("baseline x %.2f", t[TargetThroughput].Target), r.BaselineSeconds * t[TargetThroughput].Target}},
		}.plot,
		r.latencyPlot,
		r.dispatchPlot,
		barSpec{
			title:      "Rates",
			unit:       "/s",
			horizontal: true,
			groups: []barGroup{
				{"Dispatch tasks", []bar{{"measured", r.DispatchTasksPerS}, {"target", t[TargetDispatch].Target}}},
				{"SB msgs (alone)", []bar{{"measured", r.ServiceBusMsgsPerS}}},
				{"SB msgs, JS SDK (alone)", []bar{{"measured", r.ServiceBusJSMsgsPerS}}},
				{"Batch tasks (alone)", []bar{{"measured", r.BatchTasksPerS}}},
			},
		}.plot,
		barSpec{
			title: "Handler peak RSS (VmHWM)",
			unit:  "MB",
			groups: []barGroup{
				{"throughput+latency", []bar{{"RSS", r.HandlerRSSThroughputMB}}},
				{"dispatch", []bar{{"RSS", r.HandlerRSSDispatchMB}}},
			},
			targets: []target{{"target", t[TargetMemory].Target}},
		}.plot,
		func() (*plot.Plot, error) {
			return histPlot("Latency overhead over ffmpeg", "ms", r.overheads(), []target{{"p50 target", t[TargetOverhead].Target}})
		},
		r.nodePlot,
		barSpec{
			title: fmt.Sprintf("Sweep: %d completed tasks settled (%.1f storage + %.1f Batch calls per file)", r.SweepFiles, r.SweepStorageCallsPerFile, r.SweepBatchCallsPerFile),
			unit:  "files/s",
			groups: []barGroup{{label: "files settled per second", bars: []bar{
				{"measured", r.SweepFilesPerS},
				{"Azurite's bound (1 core)", r.SweepStorageBoundFilesPerS},
				{"Azurite alone, same calls", r.SweepAzuriteAloneFilesPerS},
			}}},
			targets: []target{{"target", t[TargetSweep].Target}},
		}.plot,
	}
	plots := make([]*plot.Plot, 0, len(specs))
	for _, spec := range specs {
		p, err := spec()
		if err != nil {
			return nil, err
		}
		plots = append(plots, p)
	}
	return plots, nil
}

// nodePlot shows the node phase's median round ratio (pipeline over the
// pinned baseline) per profile and slot count, with the two targets.
func (r Result) nodePlot() (*plot.Plot, error) {
	groups := map[string]*barGroup{}
	var order []string
	for _, st := range r.NodeStudies {
		g, ok := groups[st.Profile]
		if !ok {
			g = &barGroup{label: st.Profile}
			groups[st.Profile] = g
			order = append(order, st.Profile)
		}
		g.bars = append(g.bars, bar{fmt.Sprintf("%d slot/core", st.SlotsPerCore), st.RatioMedian})
	}
	spec := barSpec{
		title: fmt.Sprintf("Node (cpus %s) vs pinned baseline: median of %d rounds", r.NodeCPUs, r.Config.NodeRounds),
		unit:  "ratio",
		targets: []target{
			{"audio target", r.Targets[TargetNode].Target},
			{"video target", r.Targets[TargetVideoNode].Target},
		},
	}
	for _, name := range order {
		spec.groups = append(spec.groups, *groups[name])
	}
	if len(spec.groups) == 0 {
		spec.groups = []barGroup{{label: "not measured", bars: []bar{{"-", 0}}}}
	}
	return spec.plot()
}

func (r Result) overheads() []float64 {
	var out []float64
	for _, l := range r.Latencies {
		out = append(out, l.OverheadMs)
	}
	return out
}

func (r Result) latencyPlot() (*plot.Plot, error) {
	var lat, ff, disp plotter.XYs
	for i, l := range r.Latencies {
		x := float64(i + 1)
		lat = append(lat, plotter.XY{X: x, Y: finite(l.LatencyMs)})
		ff = append(ff, plotter.XY{X: x, Y: finite(l.FFmpegMs)})
		disp = append(disp, plotter.XY{X: x, Y: finite(l.StartedMs)})
	}
	return linePlot(fmt.Sprintf("Latency: p50 %.0f ms, overhead %.0f ms", r.LatencyP50Ms, r.OverheadP50Ms), "file", "ms",
		[]series{{"upload -> output", lat}, {"ffmpeg alone", ff}, {"upload -> task start", disp}}, nil)
}

func (r Result) dispatchPlot() (*plot.Plot, error) {
	var pts plotter.XYs
	for _, s := range r.DispatchCurve {
		pts = append(pts, plotter.XY{X: finite(s.T), Y: float64(s.Tasks)})
	}
	var target plotter.XYs
	if n := len(r.DispatchCurve); n > 0 {
		if tgt := r.Targets[TargetDispatch].Target; tgt > 0 {
			end := min(r.DispatchCurve[n-1].T, float64(r.DispatchTasks)/tgt)
			target = plotter.XYs{{X: 0, Y: 0}, {X: end, Y: end * tgt}}
		}
	}
	return linePlot(fmt.Sprintf("Dispatch: tasks in the job (%.0f tasks/s)", r.DispatchTasksPerS), "s since host start", "tasks",
		[]series{{"tasks", pts}, {"target rate", target}}, nil)
}
