package charts

import (
	"image"
	"image/color"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// roundTrip writes img with WritePNG and decodes it again.
func roundTrip(t *testing.T, img image.Image) image.Image {
	t.Helper()
	p := filepath.Join(t.TempDir(), "sub", "c.png")
	if err := WritePNG(p, img); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	got, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv("CHART_KEEP") != "" { // look at it: CHART_KEEP=/tmp/x go test -run …
		_ = WritePNG(filepath.Join(os.Getenv("CHART_KEEP"), t.Name()+".png"), img)
	}
	return got
}

func same(c color.Color, want color.RGBA) bool {
	r, g, b, _ := c.RGBA()
	return uint8(r>>8) == want.R && uint8(g>>8) == want.G && uint8(b>>8) == want.B
}

// count returns how many pixels in r have colour want.
func count(img image.Image, r image.Rectangle, want color.RGBA) int {
	n := 0
	r = r.Intersect(img.Bounds())
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			if same(img.At(x, y), want) {
				n++
			}
		}
	}
	return n
}

// nonBackground counts pixels in r that are not the background.
func nonBackground(img image.Image, r image.Rectangle) int {
	r = r.Intersect(img.Bounds())
	return r.Dx()*r.Dy() - count(img, r, Background)
}

// belowLegend is where plots start when a chart has a title and a legend
// (which repeats the series colours).
const belowLegend = pad + 2*lineH + pad/2 + lineH + pad

// extent is the bounding box of the pixels of colour want inside the plot
// area (below the title and legend).
func extent(img image.Image, want color.RGBA) image.Rectangle {
	b := img.Bounds()
	b.Min.Y = belowLegend
	out := image.Rectangle{Min: b.Max, Max: b.Min}
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if same(img.At(x, y), want) {
				out.Min.X, out.Min.Y = min(out.Min.X, x), min(out.Min.Y, y)
				out.Max.X, out.Max.Y = max(out.Max.X, x+1), max(out.Max.Y, y+1)
			}
		}
	}
	return out
}

func TestBarChart(t *testing.T) {
	groups := []BarGroup{
		{"wall time", []Bar{{Label: "pipeline", Value: 120}, {Label: "baseline", Value: 60}}},
		{"p95", []Bar{{Label: "pipeline", Value: 12}, {Label: "baseline", Value: 6}}},
	}
	for _, horizontal := range []bool{false, true} {
		name := map[bool]string{false: "vertical", true: "horizontal"}[horizontal]
		t.Run(name, func(t *testing.T) {
			const w, h = 640, 400
			c := BarChart{Title: "Throughput", Unit: "s", Groups: groups, Targets: []Target{{"target", 90}}, Horizontal: horizontal}
			img := roundTrip(t, c.Render(w, h))
			if got := img.Bounds(); got != image.Rect(0, 0, w, h) {
				t.Fatalf("bounds: got %v, want %dx%d", got, w, h)
			}
			if n := nonBackground(img, image.Rect(w/3, pad, 2*w/3, pad+2*lineH)); n < 100 {
				t.Errorf("title region: got %d drawn pixels, want ≥ 100", n)
			}
			// Bar areas follow the values: pipeline is twice baseline in
			// every group, so it has about twice the pixels.
			pipe, base := count(img, img.Bounds(), Palette[0]), count(img, img.Bounds(), Palette[1])
			if base == 0 || math.Abs(float64(pipe)/float64(base)-2) > 0.25 {
				t.Errorf("bar pixels: pipeline %d, baseline %d, want ratio ≈ 2", pipe, base)
			}
			// The value label sits beyond the longest bar's end.
			e := extent(img, Palette[0])
			var label image.Rectangle
			if horizontal {
				label = image.Rect(e.Max.X+2, e.Min.Y, e.Max.X+40, e.Min.Y+e.Dy()/2)
			} else {
				label = image.Rect(e.Min.X, e.Min.Y-lineH-3, e.Min.X+e.Dx()/2, e.Min.Y-1)
			}
			if n := count(img, label, Ink); n < 20 {
				t.Errorf("value label near %v: got %d ink pixels, want ≥ 20", label, n)
			}
			if n := count(img, img.Bounds(), TargetInk); n < 150 {
				t.Errorf("target line: got %d pixels, want ≥ 150", n)
			}
		})
	}
}

func TestBarsDegenerate(t *testing.T) {
	tests := []struct {
		name   string
		groups []BarGroup
		w, h   int
		wantW  int
		wantH  int
	}{
		{"empty", nil, 300, 200, 300, 200},
		{"nan-inf", []BarGroup{{"x", []Bar{{"a", math.NaN(), nil}, {"b", math.Inf(1), nil}}}}, 300, 200, 300, 200},
		{"negative", []BarGroup{{"x", []Bar{{"a", -5, nil}, {"b", 3, nil}}}}, 300, 200, 300, 200},
		{"tiny-clamped", []BarGroup{{"x", []Bar{{"a", 1, nil}}}}, 1, 1, minW, minH},
		{"huge-clamped", nil, 100000, 10, maxPixel, minH},
		{"many-groups", manyGroups(200), 300, 200, 300, 200},
		{"unicode-label", []BarGroup{{"café 🎬", []Bar{{"ü", 1, color.Black}}}}, 300, 200, 300, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img := Bars("t", tt.groups, tt.w, tt.h)
			if got := img.Bounds(); got.Dx() != tt.wantW || got.Dy() != tt.wantH {
				t.Errorf("bounds: got %v, want %dx%d", got, tt.wantW, tt.wantH)
			}
			hz := BarChart{Groups: tt.groups, Horizontal: true}.Render(tt.w, tt.h)
			if got := hz.Bounds(); got.Dx() != tt.wantW || got.Dy() != tt.wantH {
				t.Errorf("horizontal bounds: got %v, want %dx%d", got, tt.wantW, tt.wantH)
			}
		})
	}
}

func manyGroups(n int) []BarGroup {
	g := make([]BarGroup, n)
	for i := range g {
		g[i] = BarGroup{Label: "group", Bars: []Bar{{"a", float64(i), nil}}}
	}
	return g
}

func TestLineChart(t *testing.T) {
	c := LineChart{Title: "Latency", XLabel: "files", YLabel: "s", Series: []Series{
		{Label: "p50", Points: []Point{{200, 4}, {10, 2}, {100, 3}}}, // unsorted on purpose
		{Label: "p99", Points: []Point{{10, 5}, {100, 9}, {200, math.NaN()}}},
	}, Targets: []Target{{"target", 8}}}
	img := roundTrip(t, c.Render(600, 360))
	if got := img.Bounds(); got != image.Rect(0, 0, 600, 360) {
		t.Fatalf("bounds: got %v", got)
	}
	for i := range 2 {
		if n := count(img, img.Bounds(), Palette[i]); n < 200 {
			t.Errorf("series %d: got %d pixels, want ≥ 200", i, n)
		}
	}
	// p99 rises above p50 everywhere, so its line starts higher (smaller y).
	if e0, e1 := extent(img, Palette[0]), extent(img, Palette[1]); e1.Min.Y >= e0.Min.Y {
		t.Errorf("p99 top %d not above p50 top %d", e1.Min.Y, e0.Min.Y)
	}
	if n := count(img, img.Bounds(), TargetInk); n < 100 {
		t.Errorf("target: got %d pixels", n)
	}
	if got := Line("empty", nil, 200, 150).Bounds(); got != image.Rect(0, 0, 200, 150) {
		t.Errorf("empty line chart bounds: got %v", got)
	}
}

func TestHistogram(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	vals := make([]float64, 400)
	for i := range vals {
		vals[i] = 1 + r.ExpFloat64()
	}
	img := roundTrip(t, HistogramChart{Title: "Latency", Unit: "s", Values: vals, Targets: []Target{{"target", 6}}}.Render(640, 360))
	if got := img.Bounds(); got != image.Rect(0, 0, 640, 360) {
		t.Fatalf("bounds: got %v", got)
	}
	e := extent(img, Palette[0])
	if e.Dx() < 200 || e.Dy() < 100 {
		t.Errorf("bars extent %v, want a wide, tall histogram", e)
	}
	// Exponential data: the tallest bins are on the left.
	left := count(img, image.Rect(e.Min.X, e.Min.Y, e.Min.X+e.Dx()/4, e.Max.Y), Palette[0])
	right := count(img, image.Rect(e.Max.X-e.Dx()/4, e.Min.Y, e.Max.X, e.Max.Y), Palette[0])
	if left <= right*3 {
		t.Errorf("left quarter %d pixels, right quarter %d: want the mass on the left", left, right)
	}
	if n := count(img, img.Bounds(), TargetInk); n < 100 {
		t.Errorf("target: got %d pixels", n)
	}
	for _, in := range [][]float64{nil, {5}, {math.NaN(), 1, 1, 1}} {
		if got := Histogram("h", in, 0, 300, 200).Bounds(); got != image.Rect(0, 0, 300, 200) {
			t.Errorf("Histogram(%v) bounds: got %v", in, got)
		}
	}
}

func TestPercentile(t *testing.T) {
	vals := []float64{5, 1, 4, 2, 3, 6, 7, 8, 9, 10}
	tests := []struct {
		p    float64
		want float64
	}{{0, 1}, {10, 1}, {50, 5}, {95, 10}, {99, 10}, {100, 10}, {-5, 1}, {500, 10}}
	for _, tt := range tests {
		if got := Percentile(vals, tt.p); got != tt.want {
			t.Errorf("Percentile(p%v): got %v, want %v", tt.p, got, tt.want)
		}
	}
	if vals[0] != 5 {
		t.Errorf("Percentile modified its input")
	}
	if got := Percentile([]float64{math.NaN(), math.Inf(1)}, 50); got != 0 {
		t.Errorf("Percentile of no finite values: got %v, want 0", got)
	}
}

func TestFormatValue(t *testing.T) {
	tests := []struct {
		v    float64
		want string
	}{
		{0, "0"}, {1, "1"}, {1.234, "1.23"}, {12.34, "12.3"}, {123.4, "123"}, {12345.6, "12346"},
		{0.01234, "0.0123"}, {-2.5, "-2.5"}, {100, "100"}, {0.5, "0.5"}, {math.Inf(1), "+Inf"},
	}
	for _, tt := range tests {
		if got := FormatValue(tt.v); got != tt.want {
			t.Errorf("FormatValue(%v): got %q, want %q", tt.v, got, tt.want)
		}
	}
}

func TestNiceAxis(t *testing.T) {
	tests := []struct {
		lo, hi        float64
		wantLo, wantH float64
		wantStep      float64
	}{
		{0, 131, 0, 140, 20},
		{0, 1, 0, 1, 0.2},
		{-5, 3, -6, 4, 2},
		{2, 2, 2, 3, 0.2},
	}
	for _, tt := range tests {
		a := niceAxis(tt.lo, tt.hi, 5)
		if a.lo != tt.wantLo || a.hi != tt.wantH {
			t.Errorf("niceAxis(%v, %v): got [%v, %v], want [%v, %v]", tt.lo, tt.hi, a.lo, a.hi, tt.wantLo, tt.wantH)
		}
		if len(a.ticks) < 2 || math.Abs(a.ticks[1]-a.ticks[0]-tt.wantStep) > 1e-9 {
			t.Errorf("niceAxis(%v, %v) ticks %v, want step %v", tt.lo, tt.hi, a.ticks, tt.wantStep)
		}
	}
}

func TestWritePNGError(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WritePNG(filepath.Join(f, "x.png"), image.NewRGBA(image.Rect(0, 0, 1, 1))); err == nil {
		t.Errorf("WritePNG under a regular file: got nil, want an error")
	}
}
