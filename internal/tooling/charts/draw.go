package charts

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// Colours. The series palette is Okabe–Ito, readable with the common forms
// of colour blindness.
var (
	Background = color.RGBA{255, 255, 255, 255}
	Ink        = color.RGBA{33, 33, 33, 255}
	Muted      = color.RGBA{110, 110, 110, 255}
	Grid       = color.RGBA{228, 228, 228, 255}
	TargetInk  = color.RGBA{200, 30, 30, 255}
	Palette    = []color.RGBA{
		{0, 114, 178, 255},   // blue
		{230, 159, 0, 255},   // orange
		{0, 158, 115, 255},   // green
		{204, 121, 167, 255}, // purple
		{86, 180, 233, 255},  // sky
		{213, 94, 0, 255},    // vermillion
		{240, 228, 66, 255},  // yellow
		{0, 0, 0, 255},       // black
	}
)

// Text metrics of basicfont.Face7x13 at scale 1.
const (
	glyphW   = 7
	lineH    = 13
	ascent   = 11
	pad      = 10
	minW     = 120
	minH     = 90
	maxPixel = 8192
)

var face = basicfont.Face7x13

// canvas wraps an RGBA image with the few primitives the charts need.
type canvas struct {
	img *image.RGBA
}

func newCanvas(w, h int) *canvas {
	w = min(max(w, minW), maxPixel)
	h = min(max(h, minH), maxPixel)
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(img, img.Bounds(), image.NewUniform(Background), image.Point{}, draw.Src)
	return &canvas{img: img}
}

func (c *canvas) w() int { return c.img.Bounds().Dx() }
func (c *canvas) h() int { return c.img.Bounds().Dy() }

func (c *canvas) fill(r image.Rectangle, col color.Color) {
	draw.Draw(c.img, r.Intersect(c.img.Bounds()), image.NewUniform(col), image.Point{}, draw.Src)
}

// hline and vline draw 1-pixel lines; dash > 0 draws dash on, dash off.
func (c *canvas) hline(x0, x1, y int, col color.RGBA, dash int) {
	for x := min(x0, x1); x <= max(x0, x1); x++ {
		if dash > 0 && ((x-x0)/dash)%2 == 1 {
			continue
		}
		c.set(x, y, col)
	}
}

func (c *canvas) vline(x, y0, y1 int, col color.RGBA, dash int) {
	for y := min(y0, y1); y <= max(y0, y1); y++ {
		if dash > 0 && ((y-y0)/dash)%2 == 1 {
			continue
		}
		c.set(x, y, col)
	}
}

func (c *canvas) set(x, y int, col color.RGBA) {
	if image.Pt(x, y).In(c.img.Bounds()) {
		c.img.SetRGBA(x, y, col)
	}
}

// line draws a segment of the given thickness (Bresenham, square pen).
func (c *canvas) line(x0, y0, x1, y1, thick int, col color.RGBA) {
	dx, dy := abs(x1-x0), -abs(y1-y0)
	sx, sy := sign(x1-x0), sign(y1-y0)
	e := dx + dy
	for {
		c.fill(image.Rect(x0-thick/2, y0-thick/2, x0-thick/2+thick, y0-thick/2+thick), col)
		if x0 == x1 && y0 == y1 {
			return
		}
		e2 := 2 * e
		if e2 >= dy {
			e += dy
			x0 += sx
		}
		if e2 <= dx {
			e += dx
			y0 += sy
		}
	}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

func sign(x int) int {
	switch {
	case x < 0:
		return -1
	case x > 0:
		return 1
	}
	return 0
}

// textWidth is the width of s at scale in pixels.
func textWidth(s string, scale int) int {
	return font.MeasureString(face, s).Ceil() * scale
}

// Alignment of text relative to x.
type align int

const (
	alignLeft align = iota
	alignCenter
	alignRight
)

// text draws s with its top edge at y, aligned around x, at an integer
// scale (nearest neighbour, so the bitmap font stays crisp).
func (c *canvas) text(x, y int, s string, col color.RGBA, scale int, a align) image.Rectangle {
	if s == "" {
		return image.Rectangle{}
	}
	scale = max(scale, 1)
	w := textWidth(s, 1)
	switch a {
	case alignCenter:
		x -= w * scale / 2
	case alignRight:
		x -= w * scale
	}
	mask := image.NewAlpha(image.Rect(0, 0, w, lineH))
	d := font.Drawer{Dst: mask, Src: image.Opaque, Face: face, Dot: fixed.P(0, ascent)}
	d.DrawString(s)
	for my := range lineH {
		for mx := range w {
			if mask.AlphaAt(mx, my).A < 128 {
				continue
			}
			c.fill(image.Rect(x+mx*scale, y+my*scale, x+(mx+1)*scale, y+(my+1)*scale), col)
		}
	}
	return image.Rect(x, y, x+w*scale, y+lineH*scale)
}

// fitText shortens s with ".." until it is at most width pixels wide.
func fitText(s string, width int) string {
	if textWidth(s, 1) <= width {
		return s
	}
	r := []rune(s)
	for len(r) > 0 && textWidth(string(r)+"..", 1) > width {
		r = r[:len(r)-1]
	}
	if len(r) == 0 {
		return ""
	}
	return string(r) + ".."
}

// ascii replaces what basicfont cannot draw, so labels never show boxes.
func ascii(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' {
			return ' '
		}
		if r < 0x20 || r > 0x7e {
			return '?'
		}
		return r
	}, s)
}

// FormatValue prints v with three significant digits and no exponent for
// ordinary magnitudes: 0.0123, 1.23, 12.3, 123, 12345.
func FormatValue(v float64) string {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return strconv.FormatFloat(v, 'f', -1, 64)
	case v == 0:
		return "0"
	}
	a := math.Abs(v)
	var prec int
	switch {
	case a >= 100:
		prec = 0
	case a >= 10:
		prec = 1
	case a >= 1:
		prec = 2
	default:
		prec = min(2-int(math.Floor(math.Log10(a))), 9)
	}
	s := strconv.FormatFloat(v, 'f', prec, 64)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

// axis maps values in [lo, hi] to pixels; ticks are the labelled values.
type axis struct {
	lo, hi float64
	ticks  []float64
}

// niceAxis covers [lo, hi] (hi > lo) with about n ticks at 1/2/5×10^k steps.
func niceAxis(lo, hi float64, n int) axis {
	if !(hi > lo) || math.IsInf(hi-lo, 0) {
		hi = lo + 1
	}
	step := niceNum((hi-lo)/float64(max(n, 1)), true)
	lo = math.Floor(lo/step) * step
	hi = math.Ceil(hi/step) * step
	var ticks []float64
	for v := lo; v <= hi+step/2 && len(ticks) < 50; v += step {
		ticks = append(ticks, math.Round(v/step)*step)
	}
	return axis{lo: lo, hi: hi, ticks: ticks}
}

func niceNum(x float64, round bool) float64 {
	if x <= 0 || math.IsNaN(x) || math.IsInf(x, 0) {
		return 1
	}
	exp := math.Floor(math.Log10(x))
	f := x / math.Pow(10, exp)
	var nf float64
	switch {
	case round && f < 1.5, !round && f <= 1:
		nf = 1
	case round && f < 3, !round && f <= 2:
		nf = 2
	case round && f < 7, !round && f <= 5:
		nf = 5
	default:
		nf = 10
	}
	return nf * math.Pow(10, exp)
}

// pos maps v into [p0, p1] pixels.
func (a axis) pos(v float64, p0, p1 int) int {
	t := (v - a.lo) / (a.hi - a.lo)
	return p0 + int(math.Round(t*float64(p1-p0)))
}

// legendEntry is one colour swatch and its label.
type legendEntry struct {
	label string
	col   color.RGBA
}

// legend draws entries in one row, right-aligned at x1, top at y.
func (c *canvas) legend(entries []legendEntry, x1, y int) {
	const sw = 12
	total := 0
	for _, e := range entries {
		total += sw + 4 + textWidth(e.label, 1) + 14
	}
	x := max(x1-total, pad)
	for _, e := range entries {
		c.fill(image.Rect(x, y, x+sw, y+sw), e.col)
		r := c.text(x+sw+4, y, e.label, Ink, 1, alignLeft)
		x = r.Max.X + 14
	}
}

// WritePNG encodes img as PNG to path atomically (temp file and rename),
// creating the directory if needed.
func WritePNG(path string, img image.Image) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write png %s: %w", path, err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".chart-*.png")
	if err != nil {
		return fmt.Errorf("write png %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() { _ = os.Remove(tmp) }() // no-op after the rename
	if err := png.Encode(f, img); err != nil {
		_ = f.Close()
		return fmt.Errorf("write png %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write png %s: %w", path, err)
	}
	if err := os.Chmod(tmp, 0o644); err != nil {
		return fmt.Errorf("write png %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write png %s: %w", path, err)
	}
	return nil
}
