package charts

import (
	"image"
	"image/color"
	"math"
	"slices"
)

// Point is one (x, y) sample.
type Point struct{ X, Y float64 }

// Series is one line. Points are drawn in X order.
type Series struct {
	Label  string
	Points []Point
	// Color overrides the palette colour (nil: palette by position).
	Color color.Color
}

// LineChart plots series against a shared x and y axis, e.g. latency
// percentiles over a run, or throughput against the number of files.
type LineChart struct {
	Title string
	// XLabel names the x axis ("files"), YLabel the y axis ("s").
	XLabel, YLabel string
	Series         []Series
	// Targets are horizontal dashed reference lines.
	Targets []Target
}

// Line renders a line chart of w×h pixels.
func Line(title string, series []Series, w, h int) image.Image {
	return LineChart{Title: title, Series: series}.Render(w, h)
}

// frame draws the title, legend, grid, ticks and axis labels and returns
// the plot rectangle (ok false when the image is too small for one).
func (cv *canvas) frame(title string, legend []legendEntry, xa, ya axis, xLabel, yLabel string, yInt bool) (image.Rectangle, bool) {
	top := pad
	if title != "" {
		cv.text(cv.w()/2, top, fitText(ascii(title), (cv.w()-2*pad)/2), Ink, 2, alignCenter)
		top += 2*lineH + pad/2
	}
	if len(legend) > 0 {
		cv.legend(legend, cv.w()-pad, top)
		top += lineH + pad
	}
	yl := ascii(yLabel)
	if yl != "" {
		cv.text(pad, top, yl, Muted, 1, alignLeft)
		top += lineH + 4
	}
	yTicks := make([]string, 0, len(ya.ticks))
	labelW := 0
	for _, v := range ya.ticks {
		s := FormatValue(v)
		if yInt && v != math.Trunc(v) {
			s = ""
		}
		yTicks = append(yTicks, s)
		labelW = max(labelW, textWidth(s, 1))
	}
	bottom := cv.h() - pad - lineH - 6
	if xLabel != "" {
		bottom -= lineH + 2
	}
	lastX := textWidth(FormatValue(xa.ticks[len(xa.ticks)-1]), 1)
	plot := image.Rect(pad+labelW+6, top+lineH/2, cv.w()-pad-lastX/2, bottom)
	if plot.Dx() < 10 || plot.Dy() < 10 {
		return plot, false
	}
	for i, v := range ya.ticks {
		py := ya.pos(v, plot.Max.Y, plot.Min.Y)
		if yTicks[i] == "" {
			continue
		}
		cv.hline(plot.Min.X, plot.Max.X, py, Grid, 0)
		cv.text(plot.Min.X-6, py-lineH/2, yTicks[i], Muted, 1, alignRight)
	}
	// Skip x labels that would collide with the previous one.
	nextFree := math.MinInt
	for _, v := range xa.ticks {
		px := xa.pos(v, plot.Min.X, plot.Max.X)
		cv.vline(px, plot.Min.Y, plot.Max.Y, Grid, 0)
		s := FormatValue(v)
		if w := textWidth(s, 1); px-w/2 >= nextFree {
			cv.text(px, plot.Max.Y+6, s, Muted, 1, alignCenter)
			nextFree = px + w/2 + 8
		}
	}
	if xLabel != "" {
		cv.text(plot.Max.X, plot.Max.Y+6+lineH+2, ascii(xLabel), Muted, 1, alignRight)
	}
	cv.hline(plot.Min.X, plot.Max.X, plot.Max.Y, Ink, 0)
	cv.vline(plot.Min.X, plot.Min.Y, plot.Max.Y, Ink, 0)
	return plot, true
}

// Render draws the chart on a w×h image (clamped to 120×90 … 8192×8192).
func (c LineChart) Render(w, h int) *image.RGBA {
	cv := newCanvas(w, h)
	xlo, xhi := math.Inf(1), math.Inf(-1)
	ylo, yhi := 0.0, 0.0
	var legend []legendEntry
	cols := make([]color.RGBA, len(c.Series))
	for i, s := range c.Series {
		cols[i] = Palette[i%len(Palette)]
		if s.Color != nil {
			cols[i] = color.RGBAModel.Convert(s.Color).(color.RGBA)
		}
		if s.Label != "" {
			legend = append(legend, legendEntry{ascii(s.Label), cols[i]})
		}
		for _, p := range s.Points {
			if finite(p.X) != p.X || finite(p.Y) != p.Y {
				continue
			}
			xlo, xhi = math.Min(xlo, p.X), math.Max(xhi, p.X)
			ylo, yhi = math.Min(ylo, p.Y), math.Max(yhi, p.Y)
		}
	}
	for _, t := range c.Targets {
		ylo, yhi = math.Min(ylo, finite(t.Value)), math.Max(yhi, finite(t.Value))
	}
	if math.IsInf(xlo, 0) {
		xlo, xhi = 0, 1
	}
	xa := niceAxis(xlo, xhi, 6)
	ya := niceAxis(ylo, yhi+(yhi-ylo)*0.05, 5)
	plot, ok := cv.frame(c.Title, legend, xa, ya, c.XLabel, c.YLabel, false)
	if !ok {
		return cv.img
	}
	px := func(p Point) (int, int) {
		return xa.pos(p.X, plot.Min.X, plot.Max.X), ya.pos(p.Y, plot.Max.Y, plot.Min.Y)
	}
	for _, t := range c.Targets {
		py := ya.pos(finite(t.Value), plot.Max.Y, plot.Min.Y)
		cv.hline(plot.Min.X, plot.Max.X, py, TargetInk, 6)
		cv.text(plot.Max.X-2, py-lineH-2, ascii(t.Label)+" "+FormatValue(t.Value), TargetInk, 1, alignRight)
	}
	for i, s := range c.Series {
		pts := slices.Clone(s.Points)
		pts = slices.DeleteFunc(pts, func(p Point) bool { return finite(p.X) != p.X || finite(p.Y) != p.Y })
		slices.SortStableFunc(pts, func(a, b Point) int {
			switch {
			case a.X < b.X:
				return -1
			case a.X > b.X:
				return 1
			}
			return 0
		})
		for j, p := range pts {
			x, y := px(p)
			cv.fill(image.Rect(x-2, y-2, x+3, y+3), cols[i])
			if j > 0 {
				x0, y0 := px(pts[j-1])
				cv.line(x0, y0, x, y, 2, cols[i])
			}
		}
	}
	return cv.img
}

// HistogramChart counts values into equal-width bins and marks percentiles.
type HistogramChart struct {
	Title string
	// Unit of the values ("s"), shown on the x axis and the markers.
	Unit   string
	Values []float64
	// Bins defaults to ⌈√n⌉, at most 60.
	Bins int
	// Percentiles to mark (0–100). Default 50, 95, 99.
	Percentiles []float64
	Targets     []Target
}

// Histogram renders latencies (or any values) as a histogram with p50,
// p95 and p99 markers, w×h pixels.
func Histogram(title string, values []float64, bins int, w, h int) image.Image {
	return HistogramChart{Title: title, Values: values, Bins: bins}.Render(w, h)
}

// Percentile returns the nearest-rank p-th percentile (0–100) of values
// (NaN and ±Inf ignored; 0 for no values). values is not modified.
func Percentile(values []float64, p float64) float64 {
	v := slices.DeleteFunc(slices.Clone(values), func(x float64) bool { return finite(x) != x })
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	p = math.Min(math.Max(p, 0), 100)
	rank := int(math.Ceil(p / 100 * float64(len(v))))
	return v[min(max(rank-1, 0), len(v)-1)]
}

// Render draws the chart on a w×h image (clamped to 120×90 … 8192×8192).
func (c HistogramChart) Render(w, h int) *image.RGBA {
	cv := newCanvas(w, h)
	vals := slices.DeleteFunc(slices.Clone(c.Values), func(x float64) bool { return finite(x) != x })
	bins := c.Bins
	if bins <= 0 {
		bins = int(math.Ceil(math.Sqrt(float64(len(vals)))))
	}
	bins = min(max(bins, 1), 60)
	lo, hi := 0.0, 1.0
	if len(vals) > 0 {
		lo, hi = slices.Min(vals), slices.Max(vals)
	}
	for _, t := range c.Targets {
		lo, hi = math.Min(lo, finite(t.Value)), math.Max(hi, finite(t.Value))
	}
	if hi <= lo {
		hi = lo + 1
	}
	xa := niceAxis(lo, hi, 6)
	width := (xa.hi - xa.lo) / float64(bins)
	counts := make([]int, bins)
	for _, v := range vals {
		counts[min(int((v-xa.lo)/width), bins-1)]++
	}
	maxCount := 0
	for _, n := range counts {
		maxCount = max(maxCount, n)
	}
	ya := niceAxis(0, math.Max(float64(maxCount)*1.1, 4), 5)
	xLabel := ascii(c.Unit)
	plot, ok := cv.frame(c.Title, nil, xa, ya, xLabel, "count", true)
	if !ok {
		return cv.img
	}
	if len(vals) == 0 {
		cv.text(plot.Min.X+plot.Dx()/2, plot.Min.Y+plot.Dy()/2-lineH/2, "no data", Muted, 1, alignCenter)
		return cv.img
	}
	for i, n := range counts {
		if n == 0 {
			continue
		}
		x0 := xa.pos(xa.lo+float64(i)*width, plot.Min.X, plot.Max.X)
		x1 := xa.pos(xa.lo+float64(i+1)*width, plot.Min.X, plot.Max.X)
		y := ya.pos(float64(n), plot.Max.Y, plot.Min.Y)
		cv.fill(image.Rect(x0+1, y, max(x1, x0+2), plot.Max.Y), Palette[0])
	}
	suffix := ""
	if c.Unit != "" {
		suffix = " " + ascii(c.Unit)
	}
	pcts := c.Percentiles
	if pcts == nil {
		pcts = []float64{50, 95, 99}
	}
	for i, p := range pcts {
		v := Percentile(vals, p)
		x := xa.pos(v, plot.Min.X, plot.Max.X)
		cv.vline(x, plot.Min.Y, plot.Max.Y, Ink, 4)
		label := "p" + FormatValue(p) + " " + FormatValue(v) + suffix
		a := alignLeft
		lx := x + 4
		if lx+textWidth(label, 1) > plot.Max.X {
			a, lx = alignRight, x-4
		}
		cv.text(lx, plot.Min.Y+i*(lineH+2), label, Ink, 1, a)
	}
	for i, t := range c.Targets {
		x := xa.pos(finite(t.Value), plot.Min.X, plot.Max.X)
		cv.vline(x, plot.Min.Y, plot.Max.Y, TargetInk, 6)
		cv.vline(x+1, plot.Min.Y, plot.Max.Y, TargetInk, 6)
		cv.text(x-4, plot.Min.Y+(len(pcts)+i)*(lineH+2), ascii(t.Label)+" "+FormatValue(t.Value)+suffix, TargetInk, 1, alignRight)
	}
	return cv.img
}
