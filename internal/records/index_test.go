package records

import (
	"context"
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

// recounted sums a Recount into counts, the latest n changes and the
// node time.
func recounted(t *testing.T, s *Store, n int) (map[State]int, []Change, float64) {
	t.Helper()
	days, err := s.Recount(context.Background())
	if err != nil {
		t.Fatalf("recount: %v", err)
	}
	counts := map[State]int{}
	var recent []Change
	ns := 0.0
	for _, d := range days {
		for st, c := range d.Counts {
			counts[st] += c
		}
		recent = append(recent, d.Recent...)
		ns += d.NodeSeconds
	}
	return counts, latest(recent, n), ns
}

// checkAgrees fails unless the index says what the records say.
func checkAgrees(t *testing.T, s *Store, when string) IndexView {
	t.Helper()
	v, err := s.Index().View(context.Background(), RecentCap)
	if err != nil {
		t.Fatalf("%s: view: %v", when, err)
	}
	counts, recent, ns := recounted(t, s, RecentCap)
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
	res, err := s.Rebuild(ctx)
	if err != nil {
		t.Fatalf("rebuild: %v", err)
	}
	if res.Records != res.After[StateDone]+res.After[StateFailed]+res.After[StateInputMissing]+res.After[StateQueued] {
		t.Errorf("rebuild result does not add up: %+v", res)
	}
	checkAgrees(t, s, "after rebuild")
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
	now := time.Date(2026, 3, 2, 0, 15, 0, 0, time.UTC)
	var today, yesterday Day
	today.Day, yesterday.Day = "2026-03-02", "2026-03-01"
	today.Ended[0] = 10     // 00:00–00:15, all inside the hour
	yesterday.Ended[23] = 8 // 23:00–00:00: the last 45 minutes count, 3/4
	yesterday.Ended[22] = 100
	for _, tc := range []struct {
		b    Day
		want int
	}{{today, 10}, {yesterday, 6}} {
		if got := endedLastHour(tc.b, now); got != tc.want {
			t.Errorf("endedLastHour(%s): got %d, want %d", tc.b.Day, got, tc.want)
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
