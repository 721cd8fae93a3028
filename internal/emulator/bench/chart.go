package bench

import (
	"fmt"
	"image"
	"image/draw"

	"github.com/ffpipe/ffpipe/internal/emulator/chart"
)

// Chart draws the run as one PNG-ready image: throughput against the
// baseline, per-file latency against ffmpeg alone, the dispatch curve,
// the rates against their targets and the handler's memory.
func (r Result) Chart() image.Image {
	const w, h = 720, 420
	t := r.Targets
	panels := []image.Image{
		chart.BarChart{
			Title: fmt.Sprintf("Throughput: %d x %.0fs clips (ratio %.3f)", r.Config.Files, r.Config.ClipSeconds, r.ThroughputRatio),
			Unit:  "s",
			Groups: []chart.BarGroup{{Label: "wall time", Bars: []chart.Bar{
				{Label: "pipeline", Value: r.PipelineSeconds},
				{Label: "xargs -P ffmpeg", Value: r.BaselineSeconds},
			}}},
			Targets: []chart.Target{{Label: fmt.Sprintf("baseline x %.2f", t[TargetThroughput].Target), Value: r.BaselineSeconds * t[TargetThroughput].Target}},
		}.Render(w, h),
		r.latencyChart(w, h),
		r.dispatchChart(w, h),
		chart.BarChart{
			Title:      "Rates",
			Unit:       "/s",
			Horizontal: true,
			Groups: []chart.BarGroup{
				{Label: "Dispatch tasks", Bars: []chart.Bar{{Label: "measured", Value: r.DispatchTasksPerS}, {Label: "target", Value: t[TargetDispatch].Target}}},
				{Label: "SB msgs (alone)", Bars: []chart.Bar{{Label: "measured", Value: r.ServiceBusMsgsPerS}}},
				{Label: "Batch tasks (alone)", Bars: []chart.Bar{{Label: "measured", Value: r.BatchTasksPerS}}},
			},
		}.Render(w, h),
		chart.BarChart{
			Title: "Handler peak RSS (VmHWM)",
			Unit:  "MB",
			Groups: []chart.BarGroup{
				{Label: "throughput+latency", Bars: []chart.Bar{{Label: "RSS", Value: r.HandlerRSSThroughputMB}}},
				{Label: "dispatch", Bars: []chart.Bar{{Label: "RSS", Value: r.HandlerRSSDispatchMB}}},
			},
			Targets: []chart.Target{{Label: "target", Value: t[TargetMemory].Target}},
		}.Render(w, h),
		chart.HistogramChart{
			Title:   "Latency overhead over ffmpeg",
			Unit:    "ms",
			Values:  r.overheads(),
			Targets: []chart.Target{{Label: "p50 target", Value: t[TargetOverhead].Target}},
		}.Render(w, h),
	}
	const cols = 2
	rows := (len(panels) + cols - 1) / cols
	img := image.NewRGBA(image.Rect(0, 0, cols*w, rows*h))
	draw.Draw(img, img.Bounds(), image.NewUniform(chart.Background), image.Point{}, draw.Src)
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
	var lat, ff, disp []chart.Point
	for i, l := range r.Latencies {
		x := float64(i + 1)
		lat = append(lat, chart.Point{X: x, Y: l.LatencyMs})
		ff = append(ff, chart.Point{X: x, Y: l.FFmpegMs})
		disp = append(disp, chart.Point{X: x, Y: l.StartedMs})
	}
	return chart.LineChart{
		Title:  fmt.Sprintf("Latency: p50 %.0f ms, overhead %.0f ms", r.LatencyP50Ms, r.OverheadP50Ms),
		XLabel: "file", YLabel: "ms",
		Series: []chart.Series{
			{Label: "upload -> output", Points: lat},
			{Label: "ffmpeg alone", Points: ff},
			{Label: "upload -> task start", Points: disp},
		},
	}.Render(w, h)
}

func (r Result) dispatchChart(w, h int) image.Image {
	var pts []chart.Point
	for _, s := range r.DispatchCurve {
		pts = append(pts, chart.Point{X: s.T, Y: float64(s.Tasks)})
	}
	var target []chart.Point
	if n := len(r.DispatchCurve); n > 0 {
		tgt := r.Targets[TargetDispatch].Target
		end := min(r.DispatchCurve[n-1].T, float64(r.DispatchTasks)/tgt)
		target = []chart.Point{{X: 0, Y: 0}, {X: end, Y: end * tgt}}
	}
	return chart.LineChart{
		Title:  fmt.Sprintf("Dispatch: tasks in the job (%.0f tasks/s)", r.DispatchTasksPerS),
		XLabel: "s since host start", YLabel: "tasks",
		Series: []chart.Series{{Label: "tasks", Points: pts}, {Label: "target rate", Points: target}},
	}.Render(w, h)
}
