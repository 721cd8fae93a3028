package records

import (
	"strconv"
	"strings"
	"time"

	"github.com/ffpipe/ffpipe/internal/failure"
)

// BinMinutes is the width of a throughput bin: a Day counts the files
// ended in each BinMinutes of the day (Day.Ended5m), finer than its hours,
// so that Status can chart the last hour.
const BinMinutes = 5

// BinsPerDay is the number of throughput bins in a day.
const BinsPerDay = 24 * 60 / BinMinutes

// throughputBins is how many bins the last hour's chart shows.
const throughputBins = 60 / BinMinutes

const binWidth = BinMinutes * time.Minute

// metaReason is a failed record blob's reason code in metadata, so that a
// listing (Recount) can count failures by reason without reading records.
const metaReason = "reason"

// FailureCode is the reason code a record that ended other than done
// counts under: the code its Reason begins with (internal/failure), or its
// state when the reason has no known code. It is "" for a record that is
// done or not finished.
func (r Record) FailureCode() string {
	if !r.State.Terminal() || r.State == StateDone {
		return ""
	}
	if code, ok := failure.Parse(r.Reason); ok {
		return string(code)
	}
	return string(r.State)
}

// binOf is the 5-minute bin of the day t falls in.
func binOf(t time.Time) int {
	t = t.UTC()
	return (t.Hour()*60 + t.Minute()) / BinMinutes
}

// endBin is the bin a record counts in as ended: -1 while it is not
// terminal.
func endBin(r Record) int {
	if !r.State.Terminal() {
		return -1
	}
	return binOf(r.Updated)
}

func (b *Day) addFailures(n map[string]int) {
	for code, c := range n {
		if c == 0 {
			continue
		}
		if b.Failures == nil {
			b.Failures = map[string]int{}
		}
		b.Failures[code] += c
		if b.Failures[code] <= 0 {
			delete(b.Failures, code)
		}
	}
}

// countMetadata adds a Day's counts by state and failures by reason, as
// its blob's metadata carries them, to v.
func (v *IndexView) countMetadata(md map[string]string) {
	for k, s := range md {
		c, err := strconv.Atoi(s)
		if err != nil {
			continue
		}
		if st, ok := strings.CutPrefix(k, metaCount); ok {
			v.Counts[State(st)] += c
			v.Total += c
		} else if code, ok := strings.CutPrefix(k, metaFailures); ok && c > 0 {
			v.Failures[code] += c
		}
	}
}

// Throughput is the files ended (records that reached a terminal state)
// per BinMinutes over the last hour: Ended[0] is the bin starting at From,
// the last one the current bin, still filling.
type Throughput struct {
	From       time.Time `json:"from"`
	BinSeconds int       `json:"binSeconds"`
	Ended      []int     `json:"ended"`
}

func newThroughput(now time.Time) Throughput {
	cur := now.UTC().Truncate(binWidth)
	return Throughput{From: cur.Add(-(throughputBins - 1) * binWidth), BinSeconds: int(binWidth / time.Second), Ended: make([]int, throughputBins)}
}

// add counts b's bins that fall in the chart.
func (t *Throughput) add(b Day) {
	for i := range t.Ended {
		at := t.From.Add(time.Duration(i) * binWidth)
		if dayOf(at) == b.Day {
			t.Ended[i] += max(0, b.Ended5m[binOf(at)])
		}
	}
}

// endedLastHour is b's share of the last 60 minutes: the current bin and
// the 11 before it in full, and the part of the bin before those still
// inside the window.
func endedLastHour(b Day, now time.Time) int {
	now = now.UTC()
	cur := now.Truncate(binWidth)
	frac := 1 - float64(now.Sub(cur))/float64(binWidth)
	n := 0.0
	for j := 0; j <= throughputBins; j++ {
		at := cur.Add(-time.Duration(j) * binWidth)
		if dayOf(at) != b.Day {
			continue
		}
		w := 1.0
		if j == throughputBins {
			w = frac
		}
		n += w * float64(max(0, b.Ended5m[binOf(at)]))
	}
	return int(n + 0.5)
}
