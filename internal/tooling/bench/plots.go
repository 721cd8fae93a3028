package bench

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"slices"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/ffpipe/ffpipe/internal/fsutil"
)

// The report's charts are gonum.org/v1/plot plots; its fonts (Liberation)
// are compiled in, so the PNG looks the same on every machine.

// palette is Okabe–Ito, readable with the common forms of colour blindness.
var palette = []color.RGBA{
	{0, 114, 178, 255},   // blue
	{230, 159, 0, 255},   // orange
	{0, 158, 115, 255},   // green
	{204, 121, 167, 255}, // purple
	{86, 180, 233, 255},  // sky
	{213, 94, 0, 255},    // vermillion
}

var (
	targetInk = color.RGBA{200, 30, 30, 255}
	markInk   = color.RGBA{33, 33, 33, 255}
	dashes    = []vg.Length{vg.Points(5), vg.Points(3)}
)

// bar is one value; bars with the same label share a colour and a legend
// entry across groups.
type bar struct {
	label string
	value float64
}

// barGroup is a labelled cluster of bars ("100 files": pipeline, baseline).
type barGroup struct {
	label string
	bars  []bar
}

// target is a reference value drawn as a dashed line ("target 60 s").
type target struct {
	label string
	value float64
}

// series is one line of a line chart.
type series struct {
	label string
	xys   plotter.XYs
}

// barSpec is a grouped bar chart: value labels on the bars, dashed target
// lines across the groups, horizontal bars for long group labels.
type barSpec struct {
	title, unit string
	groups      []barGroup
	targets     []target
	horizontal  bool
}

// finite maps NaN and ±Inf to 0: a missing measurement draws as nothing.
func finite(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return v
}

// formatValue prints a value for a label: whole numbers from 100 up, three
// significant digits below, never an exponent for the sizes a run measures.
func formatValue(v float64) string {
	switch a := math.Abs(v); {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return "n/a"
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
}

// headroom is the share of an axis left above the data for value labels
// and the legend.
const headroom = 1.25

func (s barSpec) plot() (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = s.title
	var labels, groupNames []string
	for _, g := range s.groups {
		groupNames = append(groupNames, g.label)
		for _, b := range g.bars {
			if !slices.Contains(labels, b.label) {
				labels = append(labels, b.label)
			}
		}
	}
	width := vg.Points(min(48, 150/float64(max(len(labels), 1))))
	valueAxis, groupAxis := &p.Y, &p.X
	if s.horizontal {
		valueAxis, groupAxis = &p.X, &p.Y
	}
	valueAxis.Label.Text = s.unit
	valueAxis.Min, valueAxis.Max = 0, 1
	for _, g := range s.groups {
		for _, b := range g.bars {
			valueAxis.Max = max(valueAxis.Max, finite(b.value)*headroom)
		}
	}
	for _, t := range s.targets {
		valueAxis.Max = max(valueAxis.Max, finite(t.value)*headroom)
	}
	for li, label := range labels {
		offset := (vg.Length(li) - vg.Length(len(labels)-1)/2) * width
		legendDone := false
		for gi, g := range s.groups {
			for _, b := range g.bars {
				if b.label != label {
					continue
				}
				bc, err := plotter.NewBarChart(plotter.Values{finite(b.value)}, width)
				if err != nil {
					return nil, fmt.Errorf("chart %q: %w", s.title, err)
				}
				bc.XMin, bc.Offset, bc.Horizontal = float64(gi), offset, s.horizontal
				bc.Color, bc.LineStyle.Width = palette[li%len(palette)], 0
				p.Add(bc)
				if err := s.valueLabel(p, gi, offset, b.value); err != nil {
					return nil, err
				}
				if !legendDone && label != "" {
					p.Legend.Add(label, bc)
					legendDone = true
				}
			}
		}
	}
	if s.horizontal {
		p.NominalY(groupNames...)
	} else {
		p.NominalX(groupNames...)
	}
	groupAxis.Min, groupAxis.Max = -0.5, float64(len(s.groups))-0.5
	for _, t := range s.targets {
		a, b := plotter.XY{X: -0.5, Y: finite(t.value)}, plotter.XY{X: float64(len(s.groups)) - 0.5, Y: finite(t.value)}
		if s.horizontal {
			a, b = plotter.XY{X: a.Y, Y: a.X}, plotter.XY{X: b.Y, Y: b.X}
		}
		if err := addRule(p, a, b, targetInk, t.label+" "+formatValue(t.value)+" "+s.unit); err != nil {
			return nil, err
		}
	}
	p.Legend.Top = true
	return p, nil
}

// valueLabel writes a bar's value at its end.
func (s barSpec) valueLabel(p *plot.Plot, group int, offset vg.Length, v float64) error {
	xy := plotter.XY{X: float64(group), Y: finite(v)}
	off := vg.Point{X: offset, Y: vg.Points(2)}
	if s.horizontal {
		xy = plotter.XY{X: finite(v), Y: float64(group)}
		off = vg.Point{X: vg.Points(3), Y: offset}
	}
	l, err := plotter.NewLabels(plotter.XYLabels{XYs: plotter.XYs{xy}, Labels: []string{formatValue(v)}})
	if err != nil {
		return fmt.Errorf("chart %q: %w", s.title, err)
	}
	l.Offset = off
	if s.horizontal {
		l.TextStyle[0].YAlign = draw.YCenter
	} else {
		l.TextStyle[0].XAlign = draw.XCenter
	}
	p.Add(l)
	return nil
}

// addRule draws a dashed line from a to b with a legend entry.
func addRule(p *plot.Plot, a, b plotter.XY, ink color.Color, legend string) error {
	l, err := plotter.NewLine(plotter.XYs{a, b})
	if err != nil {
		return err
	}
	l.Color, l.Dashes, l.Width = ink, dashes, vg.Points(1.5)
	p.Add(l)
	p.Legend.Add(legend, l)
	return nil
}

// linePlot draws series against shared axes, with horizontal target lines.
func linePlot(title, xLabel, yLabel string, ss []series, targets []target) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text, p.X.Label.Text, p.Y.Label.Text = title, xLabel, yLabel
	p.Add(plotter.NewGrid())
	xmin, xmax, ymin, ymax := math.Inf(1), math.Inf(-1), 0.0, 1.0
	for _, t := range targets {
		ymax = max(ymax, finite(t.value))
	}
	for i, s := range ss {
		if len(s.xys) == 0 {
			continue
		}
		l, err := plotter.NewLine(s.xys)
		if err != nil {
			return nil, fmt.Errorf("chart %q series %q: %w", title, s.label, err)
		}
		l.Color, l.Width = palette[i%len(palette)], vg.Points(1.5)
		p.Add(l)
		p.Legend.Add(s.label, l)
		for _, xy := range s.xys {
			xmin, xmax = min(xmin, xy.X), max(xmax, xy.X)
			ymin, ymax = min(ymin, xy.Y), max(ymax, xy.Y)
		}
	}
	if xmin > xmax {
		xmin, xmax = 0, 1
	}
	for _, t := range targets {
		if err := addRule(p, plotter.XY{X: xmin, Y: t.value}, plotter.XY{X: xmax, Y: t.value}, targetInk, t.label); err != nil {
			return nil, err
		}
	}
	p.Y.Min, p.Y.Max = ymin, ymax*headroom
	p.Legend.Top, p.Legend.Left = true, true
	return p, nil
}

// histPlot counts values into bins and marks p50, p95, p99 and targets.
func histPlot(title, unit string, values []float64, targets []target) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text, p.X.Label.Text, p.Y.Label.Text = title, unit, "count"
	vals := slices.DeleteFunc(slices.Clone(values), func(v float64) bool { return finite(v) != v })
	if len(vals) == 0 {
		p.Title.Text += " (no data)"
		return p, nil
	}
	bins := min(max(int(math.Ceil(math.Sqrt(float64(len(vals))))), 1), 60)
	h, err := plotter.NewHist(plotter.Values(vals), bins)
	if err != nil {
		return nil, fmt.Errorf("chart %q: %w", title, err)
	}
	h.FillColor, h.LineStyle.Width = palette[0], 0
	p.Add(h)
	top := 0.0
	for _, b := range h.Bins {
		top = max(top, b.Weight)
	}
	for _, pct := range []float64{50, 95, 99} {
		v := Percentile(vals, pct)
		label := fmt.Sprintf("p%.0f %s %s", pct, formatValue(v), unit)
		if err := addRule(p, plotter.XY{X: v, Y: 0}, plotter.XY{X: v, Y: top}, markInk, label); err != nil {
			return nil, err
		}
	}
	for _, t := range targets {
		label := t.label + " " + formatValue(t.value) + " " + unit
		if err := addRule(p, plotter.XY{X: t.value, Y: 0}, plotter.XY{X: t.value, Y: top}, targetInk, label); err != nil {
			return nil, err
		}
	}
	p.Y.Max = top * headroom * 1.1 // four legend lines
	p.Legend.Top = true
	return p, nil
}

// dpi is the resolution the panels are rendered at: sizes are in pixels.
const dpi = 96

// renderGrid draws plots in a grid of cols columns, each w×h pixels, on one
// white image.
func renderGrid(plots []*plot.Plot, cols, w, h int) (image.Image, error) {
	if len(plots) == 0 || cols <= 0 || w <= 0 || h <= 0 {
		return nil, errors.New("chart: nothing to render")
	}
	rows := (len(plots) + cols - 1) / cols
	px := func(n int) vg.Length { return vg.Length(n) * vg.Inch / dpi }
	c := vgimg.NewWith(vgimg.UseWH(px(cols*w), px(rows*h)), vgimg.UseDPI(dpi), vgimg.UseBackgroundColor(color.White))
	grid := make([][]*plot.Plot, rows)
	for i := range grid {
		grid[i] = make([]*plot.Plot, cols)
	}
	for i, p := range plots {
		grid[i/cols][i%cols] = p
	}
	tiles := draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Points(8), PadY: vg.Points(8), PadTop: vg.Points(4), PadBottom: vg.Points(4), PadLeft: vg.Points(4), PadRight: vg.Points(8)}
	canvases := plot.Align(grid, tiles, draw.New(c))
	for i, p := range plots {
		p.Draw(canvases[i/cols][i%cols])
	}
	return c.Image(), nil
}

// writePNG encodes img as PNG and writes it atomically (a reader never
// sees half a file).
func writePNG(path string, img image.Image) error {
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		return fmt.Errorf("write png %s: %w", path, err)
	}
	if err := fsutil.WriteFileAtomic(path, b.Bytes()); err != nil {
		return err
	}
	return os.Chmod(path, 0o644) // a report others may read
}
