package bench

import (
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"testing"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
)

// decodePNG writes img with writePNG and decodes the file again.
func decodePNG(t *testing.T, img image.Image) image.Image {
	t.Helper()
	path := filepath.Join(t.TempDir(), "out", "chart.png")
	if err := writePNG(path, img); err != nil {
		t.Fatalf("writePNG: %v", err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := png.Decode(f)
	if err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
	if dir := os.Getenv("CHART_KEEP"); dir != "" {
		_ = writePNG(filepath.Join(dir, t.Name()+".png"), got)
	}
	return got
}

// inked counts the pixels that are not near-white, and those close to c.
func inked(img image.Image, c color.RGBA) (ink, like int) {
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			r8, g8, b8 := int(r>>8), int(g>>8), int(bl>>8)
			if r8 < 240 || g8 < 240 || b8 < 240 {
				ink++
			}
			if abs(r8-int(c.R)) < 12 && abs(g8-int(c.G)) < 12 && abs(b8-int(c.B)) < 12 {
				like++
			}
		}
	}
	return ink, like
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// Each kind of chart renders to a PNG of the requested size that decodes,
// has something drawn on it, and shows its data in the palette colour (bars,
// lines, histogram) and targets in red.
func TestChartsRender(t *testing.T) {
	tests := []struct {
		name       string
		plot       func() (*plot.Plot, error)
		wantColour []color.RGBA
	}{
		{"grouped bars with a target", barSpec{
			title: "Throughput", unit: "s",
			groups:  []barGroup{{"100 files", []bar{{"pipeline", 61}, {"baseline", 57}}}, {"10 files", []bar{{"pipeline", 7}, {"baseline", 6}}}},
			targets: []target{{"target", 63}},
		}.plot, []color.RGBA{palette[0], palette[1], targetInk}},
		{"horizontal bars, a bar missing in a group", barSpec{
			title: "Rates", unit: "/s", horizontal: true,
			groups: []barGroup{{"Dispatch tasks", []bar{{"measured", 2400}, {"target", 2000}}}, {"SB msgs", []bar{{"measured", 9000}}}},
		}.plot, []color.RGBA{palette[0], palette[1]}},
		{"bars with NaN", barSpec{
			title: "RSS", unit: "MB",
			groups: []barGroup{{"a", []bar{{"RSS", math.NaN()}}}, {"b", []bar{{"RSS", 30}}}},
		}.plot, []color.RGBA{palette[0]}},
		{"lines with a target", func() (*plot.Plot, error) {
			return linePlot("Latency", "file", "ms", []series{
				{"latency", plotter.XYs{{X: 1, Y: 900}, {X: 2, Y: 1200}, {X: 3, Y: 1000}}},
				{"ffmpeg", plotter.XYs{{X: 1, Y: 500}, {X: 2, Y: 600}, {X: 3, Y: 550}}},
				{"empty", nil},
			}, []target{{"limit", 1100}})
		}, []color.RGBA{palette[0], palette[1], targetInk}},
		{"histogram with percentiles", func() (*plot.Plot, error) {
			var v []float64
			for i := range 200 {
				v = append(v, float64(100+i%37*7))
			}
			return histPlot("Overhead", "ms", append(v, math.Inf(1)), []target{{"p50 target", 500}})
		}, []color.RGBA{palette[0], targetInk, markInk}},
		{"histogram of nothing", func() (*plot.Plot, error) {
			return histPlot("Overhead", "ms", nil, nil)
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := tt.plot()
			if err != nil {
				t.Fatalf("plot: %v", err)
			}
			img, err := renderGrid([]*plot.Plot{p}, 1, 640, 400)
			if err != nil {
				t.Fatalf("render: %v", err)
			}
			got := decodePNG(t, img)
			if b := got.Bounds(); b.Dx() != 640 || b.Dy() != 400 {
				t.Fatalf("size = %dx%d, want 640x400", b.Dx(), b.Dy())
			}
			ink, _ := inked(got, color.RGBA{})
			if total := 640 * 400; ink < total/200 || ink > total*3/4 {
				t.Errorf("%d of %d pixels inked, want a drawn chart on a white page", ink, total)
			}
			for _, c := range tt.wantColour {
				if _, like := inked(got, c); like < 20 {
					t.Errorf("%d pixels of colour %v, want the data drawn in it", like, c)
				}
			}
		})
	}
}

// The report's chart: six panels in a 2×3 grid, for a full result and for
// an empty one (a run that measured nothing still writes a chart).
func TestResultChart(t *testing.T) {
	full := Result{
		Config: Config{Files: 20, ClipSeconds: 30}, ThroughputRatio: 1.04,
		PipelineSeconds: 61, BaselineSeconds: 58.6,
		DispatchTasksPerS: 2300, ServiceBusMsgsPerS: 9000, BatchTasksPerS: 4000,
		HandlerRSSThroughputMB: 31, HandlerRSSDispatchMB: 44,
		LatencyP50Ms: 1200, OverheadP50Ms: 300, DispatchTasks: 5000,
		Targets: DefaultTargets(),
	}
	full.NodeCPUs, full.Config.NodeRounds = "0", 3
	full.NodeStudies = []NodeStudy{
		{Profile: "mp3", SlotsPerCore: 1, RatioMedian: 1.04}, {Profile: "mp3", SlotsPerCore: 2, RatioMedian: 1.02},
		{Profile: "web", SlotsPerCore: 2, RatioMedian: 1.01}, {Profile: "web", SlotsPerCore: 4, RatioMedian: 1.03},
	}
	full.SweepFiles, full.SweepFilesPerS, full.SweepStorageBoundFilesPerS = 5000, 150, 120
	for i := range 20 {
		full.Latencies = append(full.Latencies, FileLatency{LatencyMs: 1000 + float64(i*20), FFmpegMs: 700, OverheadMs: 300 + float64(i*5), StartedMs: 150})
		full.DispatchCurve = append(full.DispatchCurve, Sample{T: float64(i) / 10, Tasks: i * 250})
	}
	for name, r := range map[string]Result{"full": full, "empty": {}} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "bench.png")
			if dir := os.Getenv("CHART_KEEP"); dir != "" {
				path = filepath.Join(dir, t.Name()+".png")
			}
			if err := r.WriteChart(path); err != nil {
				t.Fatalf("WriteChart: %v", err)
			}
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			img, err := png.Decode(f)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if b := img.Bounds(); b.Dx() != panelCols*panelW || b.Dy() != 4*panelH {
				t.Errorf("size = %dx%d, want %dx%d", b.Dx(), b.Dy(), panelCols*panelW, 4*panelH)
			}
			if ink, _ := inked(img, color.RGBA{}); ink < 5000 {
				t.Errorf("%d pixels inked, want eight drawn panels", ink)
			}
			if info, err := os.Stat(path); err != nil || info.Mode().Perm() != 0o644 {
				t.Errorf("mode = %v (%v), want 0644", info.Mode().Perm(), err)
			}
		})
	}
}

func TestWritePNGError(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writePNG(filepath.Join(file, "x.png"), image.NewRGBA(image.Rect(0, 0, 1, 1))); err == nil {
		t.Error("writePNG under a regular file: got nil, want an error")
	}
	if _, err := renderGrid(nil, 2, 100, 100); err == nil {
		t.Error("renderGrid of no plots: got nil, want an error")
	}
}

func TestFormatValue(t *testing.T) {
	tests := []struct {
		v    float64
		want string
	}{
		{9000, "9000"}, {2400.4, "2400"}, {61, "61.0"}, {12.34, "12.3"}, {1.104, "1.1"}, {0.5, "0.5"}, {0, "0"}, {math.NaN(), "n/a"}, {-250, "-250"},
	}
	for _, tt := range tests {
		if got := formatValue(tt.v); got != tt.want {
			t.Errorf("formatValue(%v) = %q, want %q", tt.v, got, tt.want)
		}
	}
}
