package charts

import (
	"image"
	"image/color"
	"math"
)

// Bar is one value. Bars with the same Label share a colour across groups
// and one legend entry.
type Bar struct {
	Label string
	Value float64
	// Color overrides the palette colour for this bar (nil: by label).
	Color color.Color
}

// BarGroup is a labelled cluster of bars, e.g. "100 files" with a
// "pipeline" and a "baseline" bar.
type BarGroup struct {
	Label string
	Bars  []Bar
}

// Target is a reference value drawn as a dashed line across the plot with
// its label, e.g. "target 60 s".
type Target struct {
	Label string
	Value float64
}

// BarChart is a grouped bar chart. Values below zero are drawn from zero
// downwards; the value axis always includes zero and every target.
type BarChart struct {
	Title string
	// Unit follows every value label and heads the value axis ("s", "files/min").
	Unit    string
	Groups  []BarGroup
	Targets []Target
	// Horizontal draws bars left to right with group labels on the left,
	// which suits long labels; the default is vertical columns.
	Horizontal bool
}

// Bars renders a vertical grouped bar chart of w×h pixels with value labels.
func Bars(title string, groups []BarGroup, w, h int) image.Image {
	return BarChart{Title: title, Groups: groups}.Render(w, h)
}

// colours assigns each distinct bar label a palette colour, in order of
// first appearance, and returns the legend (labels that are not empty).
func colours(groups []BarGroup) (map[string]color.RGBA, []legendEntry) {
	m := map[string]color.RGBA{}
	var legend []legendEntry
	for _, g := range groups {
		for _, b := range g.Bars {
			if _, ok := m[b.Label]; ok {
				continue
			}
			col := Palette[len(m)%len(Palette)]
			if b.Color != nil {
				col = color.RGBAModel.Convert(b.Color).(color.RGBA)
			}
			m[b.Label] = col
			if b.Label != "" {
				legend = append(legend, legendEntry{ascii(b.Label), col})
			}
		}
	}
	return m, legend
}

func (b Bar) colour(m map[string]color.RGBA) color.RGBA {
	if b.Color != nil {
		return color.RGBAModel.Convert(b.Color).(color.RGBA)
	}
	return m[b.Label]
}

func finite(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return v
}

// Render draws the chart on a w×h image (clamped to 120×90 … 8192×8192).
func (c BarChart) Render(w, h int) *image.RGBA {
	cv := newCanvas(w, h)
	cols, legend := colours(c.Groups)
	lo, hi := 0.0, 0.0
	nBars := 0
	for _, g := range c.Groups {
		nBars = max(nBars, len(g.Bars))
		for _, b := range g.Bars {
			lo, hi = math.Min(lo, finite(b.Value)), math.Max(hi, finite(b.Value))
		}
	}
	for _, t := range c.Targets {
		lo, hi = math.Min(lo, finite(t.Value)), math.Max(hi, finite(t.Value))
	}
	// Head room for the value labels.
	ax := niceAxis(lo, hi+(hi-lo)*0.08, 5)

	top := pad
	if c.Title != "" {
		cv.text(cv.w()/2, top, fitText(ascii(c.Title), (cv.w()-2*pad)/2), Ink, 2, alignCenter)
		top += 2*lineH + pad/2
	}
	if len(legend) > 0 {
		cv.legend(legend, cv.w()-pad, top)
		top += lineH + pad
	}
	unit := ascii(c.Unit)
	tickLabels := make([]string, len(ax.ticks))
	for i, v := range ax.ticks {
		tickLabels[i] = FormatValue(v)
	}
	suffix := ""
	if unit != "" {
		suffix = " " + unit
	}

	if c.Horizontal {
		c.renderHorizontal(cv, ax, tickLabels, unit, suffix, cols, top, nBars)
	} else {
		c.renderVertical(cv, ax, tickLabels, unit, suffix, cols, top, nBars)
	}
	return cv.img
}

func (c BarChart) renderVertical(cv *canvas, ax axis, ticks []string, unit, suffix string, cols map[string]color.RGBA, top, nBars int) {
	labelW := textWidth(unit, 1)
	for _, t := range ticks {
		labelW = max(labelW, textWidth(t, 1))
	}
	if unit != "" {
		cv.text(pad, top, unit, Muted, 1, alignLeft)
		top += lineH + 4
	}
	plot := image.Rect(pad+labelW+6, top+lineH/2, cv.w()-pad, cv.h()-pad-lineH-6)
	if plot.Dx() < 10 || plot.Dy() < 10 {
		return
	}
	y := func(v float64) int { return ax.pos(v, plot.Max.Y, plot.Min.Y) }
	for i, v := range ax.ticks {
		py := y(v)
		cv.hline(plot.Min.X, plot.Max.X, py, Grid, 0)
		cv.text(plot.Min.X-6, py-lineH/2, ticks[i], Muted, 1, alignRight)
	}
	zero := y(0)
	cv.hline(plot.Min.X, plot.Max.X, zero, Ink, 0)
	cv.vline(plot.Min.X, plot.Min.Y, plot.Max.Y, Ink, 0)
	if len(c.Groups) == 0 || nBars == 0 {
		return
	}
	groupW := float64(plot.Dx()) / float64(len(c.Groups))
	barW := max(int(groupW*0.8)/nBars, 1)
	for gi, g := range c.Groups {
		gx := plot.Min.X + int(float64(gi)*groupW)
		inner := barW * len(g.Bars)
		x0 := gx + (int(groupW)-inner)/2
		for bi, b := range g.Bars {
			v := finite(b.Value)
			bx := x0 + bi*barW
			r := image.Rect(bx+1, min(y(v), zero), bx+barW-1, max(y(v), zero)+1)
			cv.fill(r, b.colour(cols))
			label := FormatValue(b.Value) + suffix
			if textWidth(label, 1) > barW+6 {
				label = FormatValue(b.Value)
			}
			ly := r.Min.Y - lineH - 2
			if v < 0 {
				ly = r.Max.Y + 2
			}
			cv.text(bx+barW/2, ly, label, Ink, 1, alignCenter)
		}
		cv.text(gx+int(groupW)/2, plot.Max.Y+6, fitText(ascii(g.Label), int(groupW)-4), Ink, 1, alignCenter)
	}
	for _, t := range c.Targets {
		py := y(finite(t.Value))
		cv.hline(plot.Min.X, plot.Max.X, py, TargetInk, 6)
		cv.hline(plot.Min.X, plot.Max.X, py+1, TargetInk, 6)
		cv.text(plot.Max.X-2, py-lineH-2, fitText(ascii(t.Label)+" "+FormatValue(t.Value)+suffix, plot.Dx()), TargetInk, 1, alignRight)
	}
}

func (c BarChart) renderHorizontal(cv *canvas, ax axis, ticks []string, unit, suffix string, cols map[string]color.RGBA, top, nBars int) {
	labelW := 0
	for _, g := range c.Groups {
		labelW = max(labelW, textWidth(ascii(g.Label), 1))
	}
	labelW = min(labelW, cv.w()/3)
	lastTick := textWidth(ticks[len(ticks)-1], 1)
	plot := image.Rect(pad+labelW+8, top, cv.w()-pad-lastTick/2, cv.h()-pad-lineH-6)
	if unit != "" {
		plot.Max.Y -= lineH + 2
	}
	if plot.Dx() < 10 || plot.Dy() < 10 {
		return
	}
	x := func(v float64) int { return ax.pos(v, plot.Min.X, plot.Max.X) }
	for i, v := range ax.ticks {
		px := x(v)
		cv.vline(px, plot.Min.Y, plot.Max.Y, Grid, 0)
		cv.text(px, plot.Max.Y+6, ticks[i], Muted, 1, alignCenter)
	}
	if unit != "" {
		cv.text(plot.Max.X, plot.Max.Y+6+lineH+2, unit, Muted, 1, alignRight)
	}
	zero := x(0)
	cv.vline(zero, plot.Min.Y, plot.Max.Y, Ink, 0)
	cv.hline(plot.Min.X, plot.Max.X, plot.Max.Y, Ink, 0)
	if len(c.Groups) == 0 || nBars == 0 {
		return
	}
	groupH := float64(plot.Dy()) / float64(len(c.Groups))
	barH := max(int(groupH*0.8)/nBars, 1)
	for gi, g := range c.Groups {
		gy := plot.Min.Y + int(float64(gi)*groupH)
		inner := barH * len(g.Bars)
		y0 := gy + (int(groupH)-inner)/2
		for bi, b := range g.Bars {
			v := finite(b.Value)
			by := y0 + bi*barH
			r := image.Rect(min(x(v), zero), by+1, max(x(v), zero)+1, by+barH-1)
			cv.fill(r, b.colour(cols))
			label := FormatValue(b.Value) + suffix
			ty := by + (barH-lineH)/2
			switch {
			case v < 0:
				cv.text(r.Min.X-4, ty, label, Ink, 1, alignRight)
			case r.Max.X+4+textWidth(label, 1) <= cv.w():
				cv.text(r.Max.X+4, ty, label, Ink, 1, alignLeft)
			default:
				cv.text(r.Max.X-4, ty, label, Background, 1, alignRight)
			}
		}
		cv.text(plot.Min.X-8, gy+int(groupH)/2-lineH/2, fitText(ascii(g.Label), labelW), Ink, 1, alignRight)
	}
	for _, t := range c.Targets {
		px := x(finite(t.Value))
		cv.vline(px, plot.Min.Y, plot.Max.Y, TargetInk, 6)
		cv.vline(px+1, plot.Min.Y, plot.Max.Y, TargetInk, 6)
		cv.text(px-3, plot.Min.Y, ascii(t.Label)+" "+FormatValue(t.Value)+suffix, TargetInk, 1, alignRight)
	}
}
