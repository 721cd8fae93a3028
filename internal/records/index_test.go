package records

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"sync"
	"testing"
	"time"
)

// testClock is a settable clock shared by the stores of a test.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Millisecond)
	return c.t
}

func (c *testClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func testKey(i int) string { return fmt.Sprintf("%032x", uint64(i)*2654435761) }

// recount is what the records say, summed over the days Recount derives.
type recount struct {
	counts     map[State]int
	recent     []Change
	ns         float64
	failures   map[string]int
	throughput Throughput // over the chart starting at the view's From
}

// recounted sums a Recount into counts, the latest n changes, the node
// time, the failures by reason and the last hour's chart from from.
func recounted(t *testing.T, s *Store, n int, from time.Time) recount {
	t.Helper()
	days, err := s.Recount(context.Background())
	if err != nil {
		t.Fatalf("recount: %v", err)
	}
	rc := recount{counts: map[State]int{}, failures: map[string]int{},
		throughput: Throughput{From: from, BinSeconds: BinMinutes * 60, Ended: make([]int, throughputBins)}}
	var recent []Change
	for _, d := range days {
		for st, c := range d.Counts {
			rc.counts[st] += c
		}
		for code, c := range d.Failures {
			rc.failures[code] += c
		}
		recent = append(recent, d.Recent...)
		rc.ns += d.NodeSeconds
		rc.throughput.add(d)
	}
	rc.recent = latest(recent, n)
	return rc
}

// checkAgrees fails unless the index says what the records say.
func checkAgrees(t *testing.T, s *Store, when string) IndexView {
	t.Helper()
	v, err := s.Index().View(context.Background(), RecentCap)
	if err != nil {
		t.Fatalf("%s: view: %v", when, err)
	}
	rc := recounted(t, s, RecentCap, v.Throughput.From)
	counts, recent, ns := rc.counts, rc.recent, rc.ns
	if !maps.Equal(v.Failures, rc.failures) {
		t.Errorf("%s: index failures by reason %v, records say %v", when, v.Failures, rc.failures)
	}
	if !slices.Equal(v.Throughput.Ended, rc.throughput.Ended) {
		t.Errorf("%s: index throughput %v, records say %v", when, v.Throughput.Ended, rc.throughput.Ended)
	}
	if math.Abs(v.NodeSecondsLast30Days-ns) > 0.01 {
		t.Errorf("%s: index node seconds %.3f, records say %.3f", when, v.NodeSecondsLast30Days, ns)
	}
	if !maps.Equal(v.Counts, counts) {
		t.Errorf("%s: index counts %v, records say %v", when, v.Counts, counts)
	}
	total := 0
	for _, c := range counts {
		total += c
	}
	if v.Total != total {
		t.Errorf("%s: index total %d, records say %d", when, v.Total, total)
	}
	keys := func(cs []Change) []string {
		var out []string
		for _, c := range cs {
			out = append(out, c.Key+"/"+string(c.State))
		}
		return out
	}
	if got, want := keys(v.Recent), keys(recent); !slices.Equal(got, want) {
		t.Errorf("%s: index recent\n%v\nrecords say\n%v", when, got, want)
	}
	return v
}

// TestIndexRebuiltFromRecords drives two processes' stores (two indexes
// over the same blobs, as two function instances) through concurrent
// record writes over several days, then checks after every stage that the
// counts and the recent list equal those rebuilt from the records.
func TestIndexRebuiltFromRecords(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	blobs := newMemBlobs()
	clock := &testClock{t: time.Date(2026, 3, 1, 23, 0, 0, 0, time.UTC)}
	var indexErrs []error
	var errMu sync.Mutex
	onErr := func(key string, err error) {
		errMu.Lock()
		indexErrs = append(indexErrs, fmt.Errorf("%s: %w", key, err))
		errMu.Unlock()
	}
	const retention = 3 * 24 * time.Hour
	stores := []*Store{
		New(blobs, "status", clock.now).WithIndex(NewIndex(blobs, "status-index", retention, clock.now), onErr),
		New(blobs, "status", clock.now).WithIndex(NewIndex(blobs, "status-index", retention, clock.now), onErr),
	}
	s := stores[0]
	const n = 120
	write := func(i int, state State) {
		st := stores[i%len(stores)]
		_, err := st.Update(ctx, testKey(i), func(old Record, _ bool) Record {
			old.State = state
			old.Source = Blob{Container: "input", Blob: fmt.Sprintf("f%d.mp4", i)}
			switch state {
			case StateFailed:
				old.Reason = []string{"decode_error: exit code 65", "timeout", "a reason with no code"}[i%3]
			case StateInputMissing:
				old.Reason = "input_missing: gone"
			default:
				old.Reason = ""
			}
			if state.Terminal() {
				old.Cost = &Cost{NodeSeconds: float64(i%7) + 0.25}
			}
			return old
		})
		if err != nil {
			t.Errorf("update %d: %v", i, err)
		}
	}
	each := func(from, to int, fn func(i int)) {
		var wg sync.WaitGroup
		for i := from; i < to; i++ {
			wg.Go(func() { fn(i) })
		}
		wg.Wait()
	}

	// Day 1, late evening: every file is queued.
	each(0, n, func(i int) { write(i, StateQueued) })
	checkAgrees(t, s, "all queued")
	// Across midnight: most end, some fail, a few are settled twice.
	clock.add(90 * time.Minute)
	each(0, n, func(i int) {
		switch i % 6 {
		case 0:
			write(i, StateFailed)
		case 1:
			write(i, StateInputMissing)
		case 2, 3, 4:
			write(i, StateDone)
		}
	})
	each(0, n, func(i int) {
		if i%12 == 0 {
			write(i, StateFailed) // a second settle: same state, new time
		}
	})
	v := checkAgrees(t, s, "settled")
	// Failed: i%6 == 0 (20 files), by i%3 == 0 all "decode_error"; the
	// second settle (i%12 == 0) keeps the same code. Input missing: 20.
	if want := map[string]int{"decode_error": n / 6, "input_missing": n / 6}; !maps.Equal(v.Failures, want) {
		t.Errorf("failures by reason: got %v, want %v", v.Failures, want)
	}
	if got, want := v.Counts[StateQueued], n/6; got != want {
		t.Errorf("queued: got %d, want %d", got, want)
	}
	if got, want := v.Days, 2; got != want {
		t.Errorf("days counted: got %d, want %d", got, want)
	}
	// Day 3: the rest are done; failed ones are redone.
	clock.add(30 * time.Hour)
	each(0, n, func(i int) {
		if i%6 == 5 || i%12 == 6 {
			write(i, StateDone)
		}
	})
	checkAgrees(t, s, "day 3")

	// Day 5: day 1 left the window; its records are expired, its bucket
	// deleted, and the counts still match the records kept.
	clock.add(48 * time.Hour)
	before := blobs.count("status", "")
	deleted := 0
	for _, p := range ExpirePrefixes() {
		d, err := s.Expire(ctx, p)
		if err != nil {
			t.Fatalf("expire %s: %v", p, err)
		}
		deleted += d
	}
	if deleted == 0 || blobs.count("status", "") != before-deleted {
		t.Errorf("expire deleted %d of %d records; %d left", deleted, before, blobs.count("status", ""))
	}
	if got := blobs.count("status-index", dayPrefix+"2026-03-01"); got != 0 {
		t.Errorf("day 1's bucket is still there after it left the window")
	}
	checkAgrees(t, s, "after expiry")

	// The index loses a write (a crash between a record and its bucket):
	// Rebuild makes it agree again.
	if err := s.Put(ctx, Record{Key: testKey(n + 1), State: StateDone}); err != nil {
		t.Fatal(err)
	}
	if err := blobs.Delete(ctx, "status-index", dayPrefix+"2026-03-03"); err != nil {
		t.Fatal(err)
	}
	// A failure written before records carried their reason code in
	// metadata: Recount reads the record for it.
	legacy := Record{Key: testKey(n + 2), State: StateFailed, Reason: "not_media: no moov", Updated: clock.now()}
	raw, _ := json.Marshal(legacy)
	if err := blobs.Put(ctx, "status", legacy.Key, raw, "application/json",
		map[string]string{metaState: string(legacy.State), metaUpdated: legacy.Updated.Format(time.RFC3339Nano)}); err != nil {
		t.Fatal(err)
	}
	res, err := s.Rebuild(ctx)
	if err != nil {
		t.Fatalf("rebuild: %v", err)
	}
	if res.Records != res.After[StateDone]+res.After[StateFailed]+res.After[StateInputMissing]+res.After[StateQueued] {
		t.Errorf("rebuild result does not add up: %+v", res)
	}
	v = checkAgrees(t, s, "after rebuild")
	if v.Failures["not_media"] != 1 {
		t.Errorf("after rebuild: failures by reason %v, want the unmarked record's not_media", v.Failures)
	}
	if len(indexErrs) > 0 {
		t.Errorf("index writes failed: %v", indexErrs)
	}
}

// TestIndexCombinesWrites checks that one process's concurrent record
// writes share bucket writes, so a Sweep run does not queue on one blob.
func TestIndexCombinesWrites(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	blobs := newMemBlobs()
	clock := &testClock{t: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}
	s := New(blobs, "status", clock.now).WithIndex(NewIndex(blobs, "status-index", 0, clock.now), nil)
	const n = 200
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if _, err := s.UpdateNew(ctx, testKey(i), func(old Record, _ bool) Record { old.State = StateQueued; return old }); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	v := checkAgrees(t, s, "queued")
	if v.Counts[StateQueued] != n {
		t.Errorf("queued: got %d, want %d", v.Counts[StateQueued], n)
	}
	if got := blobs.puts["status-index/"+dayPrefix+"2026-03-01"]; got >= n {
		t.Errorf("bucket writes: got %d for %d record writes, want fewer", got, n)
	}
}

func TestEndedLastHour(t *testing.T) {
	now := time.Date(2026, 3, 2, 0, 17, 30, 0, time.UTC)
	var today, yesterday Day
	today.Day, yesterday.Day = "2026-03-02", "2026-03-01"
	today.Ended5m[binOf(now)] = 4                                               // 00:15–00:20, the current bin
	today.Ended5m[0] = 10                                                       // 00:00–00:05
	yesterday.Ended5m[binOf(now.Add(-55*time.Minute))] = 3                      // 23:20–23:25: inside
	yesterday.Ended5m[binOf(now.Add(-60*time.Minute))] = 8                      // 23:15–23:20: its last 2.5 minutes, half
	yesterday.Ended5m[binOf(now.Add(-65*time.Minute))] = 100                    // 23:10–23:15: outside
	yesterday.Ended5m[binOf(now.Add(-70*time.Minute).Add(24*time.Hour))] = 1000 // another day's time of day
	for _, tc := range []struct {
		b    Day
		want int
	}{{today, 14}, {yesterday, 7}} {
		if got := endedLastHour(tc.b, now); got != tc.want {
			t.Errorf("endedLastHour(%s): got %d, want %d", tc.b.Day, got, tc.want)
		}
	}
	tp := newThroughput(now)
	tp.add(today)
	tp.add(yesterday)
	// Bins from 23:20 to 00:15, oldest first.
	want := []int{3, 0, 0, 0, 0, 0, 0, 0, 10, 0, 0, 4}
	if !tp.From.Equal(time.Date(2026, 3, 1, 23, 20, 0, 0, time.UTC)) || tp.BinSeconds != 300 || !slices.Equal(tp.Ended, want) {
		t.Errorf("throughput: got from %s, %d s bins, %v; want from 23:20, 300 s bins, %v", tp.From, tp.BinSeconds, tp.Ended, want)
	}
}

func TestFailureCode(t *testing.T) {
	for _, tc := range []struct {
		r    Record
		want string
	}{
		{Record{State: StateFailed, Reason: "decode_error: exit code 65"}, "decode_error"},
		{Record{State: StateRejected, Reason: "empty"}, "empty"},
		{Record{State: StateFailed, Reason: "something unclassified"}, "failed"},
		{Record{State: StateBadRequest}, "bad_request"},
		{Record{State: StateDone, Reason: "decode_error"}, ""},
		{Record{State: StateQueued, Reason: "timeout: retrying"}, ""},
	} {
		if got := tc.r.FailureCode(); got != tc.want {
			t.Errorf("FailureCode(%s, %q): got %q, want %q", tc.r.State, tc.r.Reason, got, tc.want)
		}
	}
}

func TestSummarizeFromIndex(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	blobs := newMemBlobs()
	clock := &testClock{t: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}
	s := New(blobs, "status", clock.now).WithIndex(NewIndex(blobs, "status-index", 0, clock.now), nil)
	for i := range 5 {
		st := StateQueued
		if i%2 == 0 {
			st = StateDone
		}
		if _, err := s.Update(ctx, testKey(i), func(old Record, _ bool) Record { old.State = st; return old }); err != nil {
			t.Fatal(err)
		}
	}
	reads := blobs.readsOf("status")
	sum, err := s.Summarize(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	if n := blobs.readsOf("status") - reads; n != 0 {
		t.Errorf("Summarize read %d records, want none (the index holds them)", n)
	}
	if _, err := s.Rebuild(ctx); err != nil {
		t.Fatal(err)
	}
	reads = blobs.readsOf("status")
	again, err := s.Summarize(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	if n := blobs.readsOf("status") - reads; n != 0 || !slices.EqualFunc(again.Recent, sum.Recent, func(a, b Record) bool { return a.Key == b.Key && a.Updated.Equal(b.Updated) }) {
		t.Errorf("after Rebuild: Summarize read %d records (want none) and listed %v, want %v", n, again.Recent, sum.Recent)
	}
	var got []string
	for _, r := range sum.Recent {
		got = append(got, r.Key)
	}
	if want := []string{testKey(4), testKey(3), testKey(2)}; !slices.Equal(got, want) {
		t.Errorf("recent: got %v, want %v", got, want)
	}
	if !sum.Indexed || sum.Total != 5 || sum.Counts[StateDone] != 3 || sum.EndedLastHour != 3 || sum.RetentionDays != 90 {
		t.Errorf("summary: got %+v, want 5 records, 3 done and ended, 90 days, indexed", sum)
	}
	if sum.Throughput == nil || len(sum.Throughput.Ended) != 12 || sum.Throughput.Ended[11] != 3 {
		t.Errorf("throughput: got %+v, want 12 bins, the 3 ends in the current one", sum.Throughput)
	}
}

func TestNewCost(t *testing.T) {
	start := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name              string
		wall              time.Duration
		required, perNode int
		prices            Prices
		wantNode          float64
		wantSpot, wantDed float64 // -1: nil
	}{
		{"audio: one of two slots for an hour", time.Hour, 1, 2, Prices{Spot: 0.04, Dedicated: 0.2}, 1800, 0.02, 0.1},
		{"video: both slots", 30 * time.Minute, 2, 2, Prices{Dedicated: 0.2}, 1800, -1, 0.1},
		{"no slots known counts one", time.Minute, 0, 4, Prices{}, 15, -1, -1},
	} {
		c, ok := NewCost(start, start.Add(tc.wall), tc.required, tc.perNode, tc.prices)
		if !ok || math.Abs(c.NodeSeconds-tc.wantNode) > 1e-9 {
			t.Errorf("%s: node seconds %v (ok %v), want %v", tc.name, c.NodeSeconds, ok, tc.wantNode)
		}
		for name, pair := range map[string]struct {
			got  *float64
			want float64
		}{"spot": {c.Spot, tc.wantSpot}, "dedicated": {c.Dedicated, tc.wantDed}} {
			switch {
			case pair.want < 0 && pair.got != nil:
				t.Errorf("%s: %s got %v, want none", tc.name, name, *pair.got)
			case pair.want >= 0 && (pair.got == nil || math.Abs(*pair.got-pair.want) > 1e-9):
				t.Errorf("%s: %s got %v, want %v", tc.name, name, pair.got, pair.want)
			}
		}
	}
	if _, ok := NewCost(time.Time{}, start, 1, 1, Prices{}); ok {
		t.Errorf("NewCost without a start: got ok, want not")
	}
}
