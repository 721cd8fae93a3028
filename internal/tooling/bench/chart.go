package bench

import (
	"fmt"
	"image"
	"image/draw"

	"github.com/ffpipe/ffpipe/internal/tooling/charts"
)

// Chart draws the run as one PNG-ready image: throughput against the
// baseline, per-file latency against ffmpeg alone, the dispatch curve,
// the rates against their targets and the handler's memory.
func (r Result) Chart() image.Image {
	const w, h = 720, 420
	t := r.Targets
	panels := []image.Image{
		charts.BarChart{
			Title: fmt.Sprintf("Throughput: %d x %.0fs clips (ratio %.3f)", r.Config.Files, r.Config.ClipSeconds, r.ThroughputRatio),
			Unit:  "s",
			Groups: []charts.BarGroup{{Label: "wall time", Bars: []charts.Bar{
				{Label: "pipeline", Value: r.PipelineSeconds},
				{Label: "xargs -P ffmpeg", Value: r.BaselineSeconds},
			}}},
			Targets: []charts.Target{{Label: fmt.Sprintf("baseline x %.2f", t[TargetThroughput].Target), Value: r.BaselineSeconds * t[TargetThroughput].Target}},
		}.Render(w, h),
		r.latencyChart(w, h),
		r.dispatchChart(w, h),
		charts.BarChart{
			Title:      "Rates",
			Unit:       "/s",
			Horizontal: true,
			Groups: []charts.BarGroup{
				{Label: "Dispatch tasks", Bars: []charts.Bar{{Label: "measured", Value: r.DispatchTasksPerS}, {Label: "target", Value: t[TargetDispatch].Target}}},
				{Label: "SB msgs (alone)", Bars: []charts.Bar{{Label: "measured", Value: r.ServiceBusMsgsPerS}}},
				{Label: "Batch tasks (alone)", Bars: []charts.Bar{{Label: "measured", Value: r.BatchTasksPerS}}},
			},
		}.Render(w, h),
		charts.BarChart{
			Title: "Handler peak RSS (VmHWM)",
			Unit:  "MB",
			Groups: []charts.BarGroup{
				{Label: "throughput+latency", Bars: []charts.Bar{{Label: "RSS", Value: r.HandlerRSSThroughputMB}}},
				{Label: "dispatch", Bars: []charts.Bar{{Label: "RSS", Value: r.HandlerRSSDispatchMB}}},
			},
			Targets: []charts.Target{{Label: "target", Value: t[TargetMemory].Target}},
		}.Render(w, h),
		charts.HistogramChart{
			Title:   "Latency overhead over ffmpeg",
			Unit:    "ms",
			Values:  r.overheads(),
			Targets: []charts.Target{{Label: "p50 target", Value: t[TargetOverhead].Target}},
		}.Render(w, h),
	}
	const cols = 2
	rows := (len(panels) + cols - 1) / cols
	img := image.NewRGBA(image.Rect(0, 0, cols*w, rows*h))
	draw.Draw(img, img.Bounds(), image.NewUniform(charts.Background), image.Point{}, draw.Src)
	for i, p := range panels {
		at := image.Pt((i%cols)*w, (i/cols)*h)
		draw.Draw(img, p.Bounds().Add(at), p, p.Bounds().Min, draw.Src)
	}
	return img
}

func (r Result) overheads() []float64 {
	var out []float64
	for _, l := range r.Latencies {
		out = append(out, l.OverheadMs)
	}
	return out
}

func (r Result) latencyChart(w, h int) image.Image {
	var lat, ff, disp []charts.Point
	for i, l := range r.Latencies {
		x := float64(i + 1)
		lat = append(lat, charts.Point{X: x, Y: l.LatencyMs})
		ff = append(ff, charts.Point{X: x, Y: l.FFmpegMs})
		disp = append(disp, charts.Point{X: x, Y: l.StartedMs})
	}
	return charts.LineChart{
		Title:  fmt.Sprintf("Latency: p50 %.0f ms, overhead %.0f ms", r.LatencyP50Ms, r.OverheadP50Ms),
		XLabel: "file", YLabel: "ms",
		Series: []charts.Series{
			{Label: "upload -> output", Points: lat},
			{Label: "ffmpeg alone", Points: ff},
			{Label: "upload -> task start", Points: disp},
		},
	}.Render(w, h)
}

func (r Result) dispatchChart(w, h int) image.Image {
	var pts []charts.Point
	for _, s := range r.DispatchCurve {
		pts = append(pts, charts.Point{X: s.T, Y: float64(s.Tasks)})
	}
	var target []charts.Point
	if n := len(r.DispatchCurve); n > 0 {
		tgt := r.Targets[TargetDispatch].Target
		end := min(r.DispatchCurve[n-1].T, float64(r.DispatchTasks)/tgt)
		target = []charts.Point{{X: 0, Y: 0}, {X: end, Y: end * tgt}}
	}
	return charts.LineChart{
		Title:  fmt.Sprintf("Dispatch: tasks in the job (%.0f tasks/s)", r.DispatchTasksPerS),
		XLabel: "s since host start", YLabel: "tasks",
		Series: []charts.Series{{Label: "tasks", Points: pts}, {Label: "target rate", Points: target}},
	}.Render(w, h)
}
