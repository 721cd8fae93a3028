package main

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ffpipe/ffpipe/handlers"
	"github.com/ffpipe/ffpipe/internal/records"
)

// sparkLevels draw a bin with files: the highest bin is a full block and
// every other one is rounded up, so one file still shows. An empty bin
// is a dot.
var sparkLevels = []rune("▁▂▃▄▅▆▇█")

const sparkEmpty = '·'

// writeSummary writes the text view of a status summary, everything but
// the recent records: counts, the last hour's throughput, node time, the
// Batch tasks and the failures by reason. The Status page's HTML shows the
// same (docs/status-page.md).
func writeSummary(w io.Writer, view handlers.Summary) {
	sum := view.Summary
	fmt.Fprintf(w, "%d records:", sum.Total)
	for _, s := range records.States {
		if n := sum.Counts[s]; n > 0 {
			fmt.Fprintf(w, "  %s %d", s, n)
		}
	}
	fmt.Fprintln(w)
	if sum.Indexed {
		fmt.Fprintf(w, "(records of the last %d days) ended in the last hour: %d\n", sum.RetentionDays, sum.EndedLastHour)
		fmt.Fprintf(w, "node hours: today %.2f, last 30 days %.2f\n", sum.NodeSecondsToday/3600, sum.NodeSecondsLast30Days/3600)
	}
	if tc := view.Batch; tc != nil {
		fmt.Fprintf(w, "batch tasks (dispatched, not yet swept): active %d  running %d  completed %d\n", tc.Active, tc.Running, tc.Completed)
	}
	fmt.Fprintln(w, throughputLine(sum.Throughput))
	writeFailures(w, sum)
}

// throughputLine draws the last hour's files ended per bin as a one-line
// sparkline between the first and the last bin's start, with its scale:
//
//	ended per 5 min  10:05 │··▁▃█▅··▁▂··│ 11:00 UTC  max 12 in a bin, 31 in all
func throughputLine(t *records.Throughput) string {
	if t == nil || len(t.Ended) == 0 || t.BinSeconds <= 0 {
		return "ended per 5 min: not known (the summary does not come from the records' index)"
	}
	most, total := 0, 0
	for _, n := range t.Ended {
		most = max(most, n)
		total += max(n, 0)
	}
	var b strings.Builder
	for _, n := range t.Ended {
		switch {
		case n <= 0:
			b.WriteRune(sparkEmpty)
		default:
			l := (n*len(sparkLevels) + most - 1) / most // 1..len, rounded up
			b.WriteRune(sparkLevels[l-1])
		}
	}
	bin := time.Duration(t.BinSeconds) * time.Second
	last := t.From.Add(time.Duration(len(t.Ended)-1) * bin)
	return fmt.Sprintf("ended per %s  %s │%s│ %s UTC (the last bin still filling)  max %d in a bin, %d in all",
		binLabel(bin), t.From.UTC().Format("15:04"), b.String(), last.UTC().Format("15:04"), most, total)
}

func binLabel(d time.Duration) string {
	if d%time.Minute == 0 {
		return fmt.Sprintf("%d min", int(d/time.Minute))
	}
	return d.String()
}

// reasonCount is one row of the failures table.
type reasonCount struct {
	reason string
	n      int
}

// writeFailures writes the failures grouped by reason code, most frequent
// first (then by code): over every record kept when the summary comes
// from the index, else over the recent records it lists.
func writeFailures(w io.Writer, sum records.Summary) {
	counts, over := sum.FailureCounts, fmt.Sprintf("records of the last %d days", sum.RetentionDays)
	if !sum.Indexed {
		counts, over = map[string]int{}, fmt.Sprintf("the %d latest records", len(sum.Recent))
		for _, r := range sum.Recent {
			if c := r.FailureCode(); c != "" {
				counts[c]++
			}
		}
	}
	rows := make([]reasonCount, 0, len(counts))
	total := 0
	for _, code := range slices.Sorted(maps.Keys(counts)) {
		if n := counts[code]; n > 0 {
			rows = append(rows, reasonCount{code, n})
			total += n
		}
	}
	if len(rows) == 0 {
		fmt.Fprintf(w, "failures by reason (%s): none\n", over)
		return
	}
	slices.SortStableFunc(rows, func(a, b reasonCount) int { return cmp.Compare(b.n, a.n) })
	fmt.Fprintf(w, "failures by reason (%s): %d\n", over, total)
	nameW, countW := len("REASON"), len("COUNT")
	for _, r := range rows {
		nameW = max(nameW, utf8.RuneCountInString(r.reason))
		countW = max(countW, len(fmt.Sprint(r.n)))
	}
	fmt.Fprintf(w, "  %-*s  %*s  %5s\n", nameW, "REASON", countW, "COUNT", "SHARE")
	for _, r := range rows {
		fmt.Fprintf(w, "  %-*s  %*d  %4.0f%%\n", nameW, r.reason, countW, r.n, 100*float64(r.n)/float64(total))
	}
}
