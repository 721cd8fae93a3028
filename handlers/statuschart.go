package handlers

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/ffpipe/ffpipe/internal/records"
)

// The throughput chart's geometry, in SVG user units (pixels).
const (
	chartBarWidth = 22
	chartGap      = 4
	chartHeight   = 90 // the bars' area; labels below it
	chartLabels   = 18
)

// chartBar is one bar of the throughput chart: one bin of files ended.
type chartBar struct {
	X, Y, W, H int
	Count      int
	Label      string
}

// throughputChart is the last hour's files ended per bin, drawn as an
// inline SVG bar chart by the page (no script, no external asset).
type throughputChart struct {
	Width, Height int
	BaseY         int // the axis line
	Bars          []chartBar
	Max, Total    int
	BinMinutes    int
	From, To      string // first and last bin's start, UTC
}

// newThroughputChart scales t's bins to the chart's height: the highest
// bar is full height, a bin with no file has no height; nil without
// bins.
func newThroughputChart(t *records.Throughput) *throughputChart {
	if t == nil || len(t.Ended) == 0 || t.BinSeconds <= 0 {
		return nil
	}
	bin := time.Duration(t.BinSeconds) * time.Second
	c := &throughputChart{Width: len(t.Ended) * (chartBarWidth + chartGap), Height: chartHeight + chartLabels, BaseY: chartHeight,
		BinMinutes: t.BinSeconds / 60, From: t.From.UTC().Format("15:04"),
		To: t.From.Add(time.Duration(len(t.Ended)-1) * bin).UTC().Format("15:04")}
	for _, n := range t.Ended {
		c.Max = max(c.Max, n)
		c.Total += max(n, 0)
	}
	for i, n := range t.Ended {
		n = max(n, 0)
		h := 0
		if c.Max > 0 {
			h = (n*(chartHeight-2) + c.Max - 1) / c.Max // rounded up: one file shows
		}
		start := t.From.Add(time.Duration(i) * bin).UTC()
		c.Bars = append(c.Bars, chartBar{X: i*(chartBarWidth+chartGap) + chartGap/2, Y: chartHeight - h, W: chartBarWidth, H: h, Count: n,
			Label: fmt.Sprintf("%s–%sZ: %d ended", start.Format("15:04"), start.Add(bin).Format("15:04"), n)})
	}
	return c
}

// reasonRow is one reason code of the page's failures table: the records
// kept (the index's window) and the latest records that ended with it.
type reasonRow struct {
	Reason      string
	Kept        int
	Latest      int
	HasKeptInfo bool
}

// reasonRows joins the failures by reason over the records kept (nil
// without the index) and over the latest records, most frequent first.
func reasonRows(kept map[string]int, latest []ReasonCount) []reasonRow {
	rows := map[string]*reasonRow{}
	for code, n := range kept {
		rows[code] = &reasonRow{Reason: code, Kept: n}
	}
	for _, rc := range latest {
		if rows[rc.Reason] == nil {
			rows[rc.Reason] = &reasonRow{Reason: rc.Reason}
		}
		rows[rc.Reason].Latest = rc.Count
	}
	out := make([]reasonRow, 0, len(rows))
	for _, code := range slices.Sorted(maps.Keys(rows)) {
		r := *rows[code]
		r.HasKeptInfo = kept != nil
		out = append(out, r)
	}
	slices.SortStableFunc(out, func(a, b reasonRow) int {
		return cmp.Or(cmp.Compare(b.Kept, a.Kept), cmp.Compare(b.Latest, a.Latest))
	})
	return out
}
