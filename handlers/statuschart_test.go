package handlers

import (
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ffpipe/ffpipe/internal/records"
)

// TestStatusThroughputAndReasons writes records over the last hour and
// two days before, as the handlers do, and reads the Status summary: the
// JSON's throughput and failureCounts (over every record kept, not only
// the latest 50), and the HTML's chart bars and reasons table.
func TestStatusThroughputAndReasons(t *testing.T) {
	e := newEnv(t, nil)
	day := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	n := 0
	write := func(at time.Time, st records.State, reason string, count int) {
		e.now = at
		for range count {
			n++
			putIndexed(t, e, records.Record{Key: fmt.Sprintf("%032x", n), State: st, Reason: reason,
				Source: records.Blob{Container: "input", Blob: fmt.Sprintf("f%d.mp4", n)}})
		}
	}
	write(day.Add(-2*24*time.Hour+10*time.Hour), records.StateFailed, "decode_error: exit code 65", 1) // two days ago
	write(day.Add(9*time.Hour+1*time.Minute), records.StateDone, "", 1)                                // before the chart
	write(day.Add(9*time.Hour+7*time.Minute), records.StateDone, "", 2)
	write(day.Add(9*time.Hour+31*time.Minute), records.StateFailed, "decode_error: exit code 65", 1)
	write(day.Add(9*time.Hour+40*time.Minute), records.StateDone, "", 55)  // pushes the above out of the latest 50
	write(day.Add(9*time.Hour+41*time.Minute), records.StateQueued, "", 3) // not ended
	write(day.Add(9*time.Hour+58*time.Minute), records.StateFailed, "timeout", 1)
	write(day.Add(10*time.Hour), records.StateRejected, "empty", 1)

	wantBins := []int{2, 0, 0, 0, 0, 1, 0, 55, 0, 0, 1, 1} // 09:05 … 10:00
	wantKept := map[string]int{"decode_error": 2, "timeout": 1, "empty": 1}

	t.Run("JSON", func(t *testing.T) {
		hr := e.status(statusEnvelope("http://localhost/api/status?format=json", nil, nil))
		var v struct {
			Counts        map[string]int      `json:"counts"`
			Recent        []records.Record    `json:"recent"`
			EndedLastHour int                 `json:"endedLastHour"`
			Throughput    *records.Throughput `json:"throughput"`
			FailureCounts map[string]int      `json:"failureCounts"`
			Failures      []ReasonCount       `json:"failuresByReason"`
		}
		if err := json.Unmarshal([]byte(hr.Body), &v); err != nil || hr.StatusCode != 200 {
			t.Fatalf("got %d %s (%v)", hr.StatusCode, hr.Body, err)
		}
		if v.Throughput == nil || !slices.Equal(v.Throughput.Ended, wantBins) || v.Throughput.BinSeconds != 300 ||
			!v.Throughput.From.Equal(day.Add(9*time.Hour+5*time.Minute)) {
			t.Errorf("throughput: got %+v, want from 09:05, 300 s bins, %v", v.Throughput, wantBins)
		}
		if !maps.Equal(v.FailureCounts, wantKept) {
			t.Errorf("failureCounts: got %v, want %v (every record kept)", v.FailureCounts, wantKept)
		}
		// The fields that were there before keep their meaning.
		wantLatest := []ReasonCount{{"empty", 1}, {"timeout", 1}}
		if !slices.Equal(v.Failures, wantLatest) || len(v.Recent) != statusRecent || v.Counts["done"] != 58 {
			t.Errorf("failuresByReason %v, %d recent, %d done: want %v of the latest %d, 58 done", v.Failures, len(v.Recent), v.Counts["done"], wantLatest, statusRecent)
		}
		if v.EndedLastHour != 61 { // 09:00–10:00, the 09:01 file too
			t.Errorf("endedLastHour: got %d, want 61", v.EndedLastHour)
		}
	})
	t.Run("HTML", func(t *testing.T) {
		hr := e.status(statusEnvelope("http://localhost/api/status", nil, map[string][]string{"Accept": {"text/html"}}))
		var got []int
		for _, m := range regexp.MustCompile(`<rect class="bar"[^>]*data-count="(\d+)"`).FindAllStringSubmatch(hr.Body, -1) {
			c, err := strconv.Atoi(m[1])
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, c)
		}
		if !slices.Equal(got, wantBins) || !strings.Contains(hr.Body, `<svg id="throughput"`) {
			t.Errorf("chart bars: got %v, want %v in an inline SVG", got, wantBins)
		}
		if !strings.Contains(hr.Body, `height="88"`) || !strings.Contains(hr.Body, "09:40–09:45Z: 55 ended") {
			t.Errorf("chart: want the 55-file bin at full height with its label: %s", hr.Body)
		}
		rows := regexp.MustCompile(`<tr data-reason="([a-z_]+)"><td>[a-z_]+</td><td>(\d+)</td><td>(\d+)</td></tr>`).FindAllStringSubmatch(hr.Body, -1)
		var table []string
		for _, r := range rows {
			table = append(table, r[1]+" "+r[2]+" "+r[3])
		}
		if want := []string{"decode_error 2 0", "empty 1 1", "timeout 1 1"}; !slices.Equal(table, want) {
			t.Errorf("reasons table (reason, last 90 days, latest 50): got %q, want %q", table, want)
		}
	})
}

func TestThroughputChart(t *testing.T) {
	from := time.Date(2026, 3, 1, 9, 5, 0, 0, time.UTC)
	for _, tc := range []struct {
		name    string
		ended   []int
		heights []int
	}{
		{"highest bar full height, one file still shows", []int{0, 88, 1, 44}, []int{0, 88, 1, 44}},
		{"nothing ended", []int{0, 0}, []int{0, 0}},
		{"a negative bin shows none", []int{-1, 3}, []int{0, 88}},
	} {
		c := newThroughputChart(&records.Throughput{From: from, BinSeconds: 300, Ended: tc.ended})
		var hs []int
		for _, b := range c.Bars {
			hs = append(hs, b.H)
			if b.Y+b.H != c.BaseY {
				t.Errorf("%s: bar at %d+%d does not stand on the axis %d", tc.name, b.Y, b.H, c.BaseY)
			}
		}
		if !slices.Equal(hs, tc.heights) {
			t.Errorf("%s: heights %v, want %v", tc.name, hs, tc.heights)
		}
	}
	if c := newThroughputChart(nil); c != nil {
		t.Errorf("no throughput: got a chart %+v, want none", c)
	}
}

func TestReasonRows(t *testing.T) {
	rows := reasonRows(map[string]int{"decode_error": 5, "empty": 1}, []ReasonCount{{"timeout", 2}, {"empty", 1}})
	var got []string
	for _, r := range rows {
		got = append(got, fmt.Sprintf("%s %d %d", r.Reason, r.Kept, r.Latest))
	}
	// A reason of the latest records the index does not have yet (written
	// between two reads) is still listed.
	if want := []string{"decode_error 5 0", "empty 1 1", "timeout 0 2"}; !slices.Equal(got, want) {
		t.Errorf("rows: got %q, want %q", got, want)
	}
	if rows := reasonRows(nil, []ReasonCount{{"timeout", 2}}); len(rows) != 1 || rows[0].HasKeptInfo {
		t.Errorf("without the index: got %+v, want the latest only", rows)
	}
}
