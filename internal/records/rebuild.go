package records

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ffpipe/ffpipe/internal/storage"
)

// listed is a record as a listing of the records container shows it:
// state and update time from its metadata.
type listed struct {
	key         string
	etag        string
	state       State
	updated     time.Time
	nodeSeconds float64
	reason      string // failure reason code (metaReason); "" for none
}

// listRecords lists the records under prefix ("" for all) with their state
// and update time, without downloading them.
func (s *Store) listRecords(ctx context.Context, prefix string, fn func(listed) bool) error {
	return s.blobs.List(ctx, s.container, prefix, func(it storage.Item) bool {
		l := listed{key: it.Name, etag: it.ETag, state: State(it.Metadata[metaState]), updated: it.LastModified}
		if t, err := time.Parse(time.RFC3339Nano, it.Metadata[metaUpdated]); err == nil {
			l.updated = t // finer than Last-Modified's seconds
		}
		if l.state == "" {
			l.state = "unknown"
		}
		l.nodeSeconds, _ = strconv.ParseFloat(it.Metadata[metaNodeSeconds], 64)
		l.reason = it.Metadata[metaReason]
		return fn(l)
	})
}

// Recount derives the index from the records themselves (one listing of
// the records container): what the index must say. It is slow (a listing
// of every record) and meant for Rebuild and for checking the index.
func (s *Store) Recount(ctx context.Context) (map[string]Day, error) {
	x := s.index
	if x == nil {
		return nil, errors.New("recount: the store has no index")
	}
	from := x.windowStart(x.now())
	days := map[string]Day{}
	// unmarked are failures written before records carried their reason
	// code in metadata: their code is read from the record.
	var unmarked []listed
	err := s.listRecords(ctx, "", func(l listed) bool {
		d := dayOf(l.updated)
		if d < from {
			return true // expired: no longer counted
		}
		b, ok := days[d]
		if !ok {
			b = Day{Day: d, Counts: map[State]int{}}
		}
		b.Counts[l.state]++
		b.NodeSeconds += l.nodeSeconds
		b.Recent = append(b.Recent, Change{Key: l.key, State: l.state, Updated: l.updated.UTC()})
		if l.state.Terminal() {
			b.Ended[l.updated.UTC().Hour()]++
			b.Ended5m[binOf(l.updated)]++
		}
		switch {
		case l.reason != "":
			b.addFailures(map[string]int{l.reason: 1})
		case l.state.Terminal() && l.state != StateDone:
			unmarked = append(unmarked, l)
		}
		if len(b.Recent) > 4*RecentCap {
			b.Recent = latest(b.Recent, RecentCap)
		}
		days[d] = b
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("recount: %w", err)
	}
	for _, l := range unmarked {
		r, err := s.Get(ctx, l.key)
		switch {
		case errors.Is(err, ErrNotFound):
			r = Record{State: l.state} // deleted since: counted under its state
		case err != nil:
			return nil, fmt.Errorf("recount: %w", err)
		}
		code := r.FailureCode()
		if code == "" {
			code = string(l.state) // rewritten since as done: the listing is what is counted
		}
		b := days[dayOf(l.updated)]
		b.addFailures(map[string]int{code: 1})
		days[dayOf(l.updated)] = b
	}
	for d, b := range days {
		b.Recent = latest(b.Recent, RecentCap)
		days[d] = b
	}
	return days, nil
}

// withRecords reads the records of the recent entries of the newest days,
// until RecentCap entries have one: the entries Status lists.
func (s *Store) withRecords(ctx context.Context, days map[string]Day) error {
	names := slices.Sorted(maps.Keys(days))
	filled := 0
	for i := len(names) - 1; i >= 0 && filled < RecentCap; i-- {
		b := days[names[i]]
		if err := s.readRecords(ctx, b.Recent); err != nil {
			return err
		}
		filled += len(b.Recent)
	}
	return nil
}

// RebuildResult says what Rebuild changed.
type RebuildResult struct {
	Records int
	Days    int
	// Before and After are the counts by state before and after.
	Before, After map[State]int
}

// Rebuild replaces the index with one derived from the records (Recount):
// after a crash between a record write and its index write, or to start
// an index over existing records. Writes made while it runs may be
// counted twice or not at all until the next rebuild, so run it when the
// pipeline is quiet (ffpipe status --rebuild).
func (s *Store) Rebuild(ctx context.Context) (RebuildResult, error) {
	x := s.index
	if x == nil {
		return RebuildResult{}, errors.New("rebuild: the store has no index")
	}
	before, err := x.View(ctx, 0)
	if err != nil {
		return RebuildResult{}, err
	}
	days, err := s.Recount(ctx)
	if err != nil {
		return RebuildResult{}, err
	}
	if err := s.withRecords(ctx, days); err != nil {
		return RebuildResult{}, fmt.Errorf("rebuild: %w", err)
	}
	res := RebuildResult{Days: len(days), Before: before.Counts, After: map[State]int{}}
	for _, d := range slices.Sorted(maps.Keys(days)) {
		b := days[d]
		for st, n := range b.Counts {
			res.After[st] += n
			res.Records += n
		}
		if err := x.put(ctx, b, "", false); err != nil {
			return res, fmt.Errorf("rebuild: %w", err)
		}
	}
	// Buckets with no record left.
	var stale []string
	err = x.blobs.List(ctx, x.container, dayPrefix, func(it storage.Item) bool {
		if _, ok := days[strings.TrimPrefix(it.Name, dayPrefix)]; !ok {
			stale = append(stale, it.Name)
		}
		return true
	})
	if err != nil {
		return res, fmt.Errorf("rebuild: %w", err)
	}
	for _, name := range stale {
		if err := x.blobs.Delete(ctx, x.container, name); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return res, fmt.Errorf("rebuild: %w", err)
		}
	}
	return res, nil
}

// conditionalDeleter deletes a blob only in the version read.
type conditionalDeleter interface {
	DeleteIfMatch(ctx context.Context, container, name, etag string) error
}

// ExpirePrefixes are the name prefixes Expire works through, one per call:
// keys are lower-case hex, so 256 two-character prefixes split the records
// into parts small enough for one Sweep run at any scale.
func ExpirePrefixes() []string {
	out := make([]string, 0, 256)
	const hex = "0123456789abcdef"
	for _, a := range hex {
		for _, b := range hex {
			out = append(out, string(a)+string(b))
		}
	}
	return out
}

// Expire deletes the records under prefix that were last updated before
// the retention window (if they were not written again since they were
// listed) and the day buckets that left the window. Expired records are
// no longer counted, so the index is unchanged. It returns how many
// records it deleted.
func (s *Store) Expire(ctx context.Context, prefix string) (int, error) {
	x := s.index
	if x == nil {
		return 0, errors.New("expire: the store has no index")
	}
	del, ok := s.blobs.(conditionalDeleter)
	if !ok {
		return 0, errors.New("expire: the records' storage cannot delete conditionally")
	}
	from := x.windowStart(x.now())
	var old []listed
	err := s.listRecords(ctx, prefix, func(l listed) bool {
		if dayOf(l.updated) < from {
			old = append(old, l)
		}
		return true
	})
	if err != nil {
		return 0, fmt.Errorf("expire: %w", err)
	}
	n := 0
	for _, l := range old {
		err := del.DeleteIfMatch(ctx, s.container, l.key, l.etag)
		switch {
		case err == nil:
			n++
		case errors.Is(err, storage.ErrNotFound), errors.Is(err, storage.ErrConditionNotMet):
		default:
			return n, fmt.Errorf("expire record %s: %w", l.key, err)
		}
	}
	var stale []string
	err = x.blobs.List(ctx, x.container, dayPrefix, func(it storage.Item) bool {
		if strings.TrimPrefix(it.Name, dayPrefix) < from {
			stale = append(stale, it.Name)
		}
		return true
	})
	if err != nil {
		return n, fmt.Errorf("expire: %w", err)
	}
	for _, name := range stale {
		if err := x.blobs.Delete(ctx, x.container, name); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return n, fmt.Errorf("expire: %w", err)
		}
	}
	return n, nil
}

// Matching returns the keys of the records in state last updated at or
// after since (zero: any time), from one listing of their metadata.
func (s *Store) Matching(ctx context.Context, state State, since time.Time) ([]string, error) {
	var keys []string
	err := s.listRecords(ctx, "", func(l listed) bool {
		if l.state == state && !l.updated.Before(since) {
			keys = append(keys, l.key)
		}
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("find %s records: %w", state, err)
	}
	return keys, nil
}
