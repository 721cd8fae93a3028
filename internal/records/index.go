package records

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ffpipe/ffpipe/internal/storage"
)

// The index answers Status without listing the records: the records stay
// the truth, and the index is derived from them and can be rebuilt
// (Rebuild). docs/status-index.md says why it is shaped this way.
//
// A record counts in the day (UTC) of its Updated time. Each day has one
// bucket blob, days/YYYY-MM-DD, in the index container: counts by state
// (also in the blob's metadata, so one listing of days/ gives every count),
// the day's latest changes (the recent list), the number of files that
// ended in each hour and in each 5 minutes (the throughput chart), and the
// failures by reason code (also in metadata). A record write moves the record from the Day of
// its old (day, state) to the Day of its new one. Records older than
// the retention window are deleted (Expire), and their buckets leave the
// window on the same day, so the counts always cover exactly the records
// kept: those updated within Retention.

// IndexBlobs is the storage the index lives in.
type IndexBlobs interface {
	GetWithETag(ctx context.Context, container, name string) ([]byte, string, error)
	PutIf(ctx context.Context, container, name string, data []byte, contentType string, metadata map[string]string, ifMatch string) error
	Put(ctx context.Context, container, name string, data []byte, contentType string, metadata map[string]string) error
	List(ctx context.Context, container, prefix string, fn func(storage.Item) bool) error
	Delete(ctx context.Context, container, name string) error
}

var _ IndexBlobs = (*storage.Client)(nil)

// RecentCap is how many latest changes a day Day keeps: the most a
// Summary lists.
const RecentCap = 50

// DefaultRetention is how long records are kept when no retention is set:
// the infrastructure's lifecycle rule on the status container deletes
// records after the same time (infra/main.bicep statusRetentionDays).
const DefaultRetention = 90 * 24 * time.Hour

const (
	dayPrefix = "days/"
	dayLayout = "2006-01-02"
	// metaCount prefixes a state's count in a Day's metadata
	// (metadata names must be identifiers: "n_done").
	metaCount = "n_"
	// metaFailures prefixes a failure reason's count in a Day's metadata
	// ("f_decode_error"): reason codes are identifiers too.
	metaFailures = "f_"
	// indexAttempts bounds the optimistic-concurrency retries of one
	// Day write when several instances write the same day.
	indexAttempts = 30
)

// Change is one entry of a day's recent list: the record as written, so
// that Status lists the latest records without reading them again.
type Change struct {
	Key     string    `json:"key"`
	State   State     `json:"state"`
	Updated time.Time `json:"updated"`
	// Record is the record as written; nil in an entry Rebuild derived
	// from a listing for a day Status does not list from.
	Record *Record `json:"record,omitempty"`
}

// Day is one day of the index: the records last written that day (UTC).
type Day struct {
	Day    string        `json:"day"`
	Counts map[State]int `json:"counts"`
	Recent []Change      `json:"recent"`
	// Ended counts, per hour of the day (UTC), the terminal records last
	// written in it: throughput.
	Ended [24]int `json:"ended"`
	// Ended5m counts the same ends per 5 minutes of the day (bin i covers
	// i×5 to i×5+5 minutes after midnight UTC): the last hour's chart.
	Ended5m [BinsPerDay]int `json:"ended5m"`
	// Failures counts the day's records that ended other than done, by
	// reason code (Record.FailureCode).
	Failures map[string]int `json:"failures,omitempty"`
	// NodeSeconds totals the node time of the day's records (Cost).
	NodeSeconds float64 `json:"nodeSeconds,omitempty"`
}

// move is one record changing (day, state, hour of ending): fromDay is
// empty for a new record, toDay for a deleted one.
type move struct {
	key            string
	fromDay, toDay string
	from, to       State
	fromEnd, toEnd int // hour of the day a terminal record counts in; -1: not terminal
	fromBin, toBin int // its 5-minute bin of the day; -1: not terminal
	fromFail       string
	toFail         string // failure reason code; "": not a failure
	updated        time.Time
	fromNS, toNS   float64 // node seconds
	rec            *Record // the record written
}

// Index is the records' index. Its methods are safe for concurrent use;
// the writes of one process are combined (one Day write for many record
// writes), and writes from several processes retry on the Day's eTag.
type Index struct {
	blobs     IndexBlobs
	container string
	retention time.Duration
	now       func() time.Time

	mu      sync.Mutex
	writing bool
	queue   []move
	waiters []chan error
}

// NewIndex returns the index kept in container. retention ≤ 0 means
// DefaultRetention; now may be nil (time.Now).
func NewIndex(blobs IndexBlobs, container string, retention time.Duration, now func() time.Time) *Index {
	if retention <= 0 {
		retention = DefaultRetention
	}
	if now == nil {
		now = time.Now
	}
	return &Index{blobs: blobs, container: container, retention: retention, now: now}
}

// Retention is how long records are kept and counted.
func (x *Index) Retention() time.Duration { return x.retention }

// NodeSecondsToday is the node time of the records written today (UTC),
// from today's bucket alone: what a budget check needs.
func (x *Index) NodeSecondsToday(ctx context.Context) (float64, error) {
	raw, _, err := x.blobs.GetWithETag(ctx, x.container, dayPrefix+dayOf(x.now()))
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("index today: %w", err)
	}
	var b Day
	if err := json.Unmarshal(raw, &b); err != nil {
		return 0, fmt.Errorf("index today: %w", err)
	}
	return b.NodeSeconds, nil
}

func dayOf(t time.Time) string { return t.UTC().Format(dayLayout) }

// windowStart is the first day counted at now: the retention ends with
// today, so records updated within it are counted.
func (x *Index) windowStart(now time.Time) string {
	return dayOf(now.Add(-x.retention).Add(24 * time.Hour))
}

// endHour is the hour of the day a record counts in as ended: -1 while
// it is not terminal.
func endHour(r Record) int {
	if !r.State.Terminal() {
		return -1
	}
	return r.Updated.UTC().Hour()
}

// moveOf is the index change of a record write: old (found) replaced by r.
// A write that keeps the record's day, state and hour changes no count
// but still enters the day's recent list.
func moveOf(old Record, found bool, r Record) move {
	m := move{key: r.Key, toDay: dayOf(r.Updated), to: r.State, fromEnd: -1, toEnd: endHour(r), fromBin: -1, toBin: endBin(r),
		toFail: r.FailureCode(), updated: r.Updated, rec: &r, toNS: r.nodeSeconds()}
	if found {
		m.fromDay, m.from, m.fromEnd, m.fromNS = dayOf(old.Updated), old.State, endHour(old), old.nodeSeconds()
		m.fromBin, m.fromFail = endBin(old), old.FailureCode()
	}
	return m
}

// record applies the move of one record write, combined with the
// concurrent writes of this process.
func (x *Index) record(ctx context.Context, m move) error {
	done := make(chan error, 1)
	x.mu.Lock()
	x.queue = append(x.queue, m)
	x.waiters = append(x.waiters, done)
	if x.writing {
		x.mu.Unlock()
		select {
		case err := <-done:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	x.writing = true
	for len(x.queue) > 0 {
		batch, waiters := x.queue, x.waiters
		x.queue, x.waiters = nil, nil
		x.mu.Unlock()
		// Detached from ctx: a Day write abandoned half way would be
		// retried by nobody, and it carries other callers' moves.
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		err := x.apply(wctx, batch)
		cancel()
		for _, w := range waiters {
			w <- err
		}
		x.mu.Lock()
	}
	x.writing = false
	x.mu.Unlock()
	return <-done
}

// delta is what a batch of moves changes in one day.
type delta struct {
	counts      map[State]int
	recent      []Change
	ended       [24]int
	ended5m     [BinsPerDay]int
	failures    map[string]int
	nodeSeconds float64
}

func (x *Index) apply(ctx context.Context, moves []move) error {
	days := map[string]*delta{}
	get := func(d string) *delta {
		if days[d] == nil {
			days[d] = &delta{counts: map[State]int{}, failures: map[string]int{}}
		}
		return days[d]
	}
	for _, m := range moves {
		if m.fromDay != "" {
			d := get(m.fromDay)
			d.counts[m.from]--
			d.nodeSeconds -= m.fromNS
			if m.fromEnd >= 0 {
				d.ended[m.fromEnd]--
			}
			if m.fromBin >= 0 {
				d.ended5m[m.fromBin]--
			}
			if m.fromFail != "" {
				d.failures[m.fromFail]--
			}
		}
		if m.toDay == "" {
			continue
		}
		d := get(m.toDay)
		d.counts[m.to]++
		d.nodeSeconds += m.toNS
		d.recent = append(d.recent, Change{Key: m.key, State: m.to, Updated: m.updated.UTC(), Record: m.rec})
		if m.toEnd >= 0 {
			d.ended[m.toEnd]++
		}
		if m.toBin >= 0 {
			d.ended5m[m.toBin]++
		}
		if m.toFail != "" {
			d.failures[m.toFail]++
		}
	}
	var errs []error
	for d, dl := range days {
		if err := x.change(ctx, d, func(b *Day) { b.add(dl) }); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (b *Day) add(dl *delta) {
	for st, n := range dl.counts {
		b.Counts[st] += n
		if b.Counts[st] == 0 {
			delete(b.Counts, st)
		}
	}
	b.Recent = latest(append(b.Recent, dl.recent...), RecentCap)
	for h, n := range dl.ended {
		b.Ended[h] += n
	}
	for i, n := range dl.ended5m {
		b.Ended5m[i] += n
	}
	b.addFailures(dl.failures)
	b.NodeSeconds = max(0, b.NodeSeconds+dl.nodeSeconds)
}

// latest keeps the newest change of each key, newest first, at most n.
func latest(cs []Change, n int) []Change {
	slices.SortStableFunc(cs, func(a, b Change) int {
		if c := b.Updated.Compare(a.Updated); c != 0 {
			return c
		}
		return cmp.Compare(a.Key, b.Key)
	})
	seen := map[string]bool{}
	out := cs[:0]
	for _, c := range cs {
		if seen[c.Key] {
			continue
		}
		seen[c.Key] = true
		out = append(out, c)
		if len(out) == n {
			break
		}
	}
	return slices.Clip(out)
}

// change applies fn to day d's Day with optimistic concurrency.
func (x *Index) change(ctx context.Context, d string, fn func(*Day)) error {
	name := dayPrefix + d
	for i := range indexAttempts {
		raw, etag, err := x.blobs.GetWithETag(ctx, x.container, name)
		b := Day{Day: d, Counts: map[State]int{}}
		switch {
		case errors.Is(err, storage.ErrNotFound):
			etag = ""
		case err != nil:
			return fmt.Errorf("index day %s: %w", d, err)
		default:
			if err := json.Unmarshal(raw, &b); err != nil {
				return fmt.Errorf("index day %s: %w", d, err)
			}
			if b.Counts == nil {
				b.Counts = map[State]int{}
			}
		}
		fn(&b)
		err = x.put(ctx, b, etag, true)
		if errors.Is(err, storage.ErrConditionNotMet) {
			// Another instance wrote the day: back off a little, at random,
			// so the writers spread out.
			if err := sleep(ctx, time.Duration(1+rand.IntN(5*(i+1)))*time.Millisecond); err != nil {
				return err
			}
			continue
		}
		return err
	}
	return fmt.Errorf("index day %s: %d concurrent writers in a row: %w", d, indexAttempts, storage.ErrConditionNotMet)
}

func (x *Index) put(ctx context.Context, b Day, etag string, conditional bool) error {
	raw, err := json.Marshal(b)
	if err != nil {
		return fmt.Errorf("index day %s: %w", b.Day, err)
	}
	md := map[string]string{}
	for st, n := range b.Counts {
		md[metaCount+string(st)] = strconv.Itoa(n)
	}
	for code, n := range b.Failures {
		md[metaFailures+code] = strconv.Itoa(n)
	}
	if b.NodeSeconds > 0 {
		md[metaNodeSeconds] = strconv.FormatFloat(b.NodeSeconds, 'f', 3, 64)
	}
	name := dayPrefix + b.Day
	if conditional {
		err = x.blobs.PutIf(ctx, x.container, name, raw, "application/json", md, etag)
	} else {
		err = x.blobs.Put(ctx, x.container, name, raw, "application/json", md)
	}
	if err != nil {
		return fmt.Errorf("index day %s: %w", b.Day, err)
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// IndexView is what the index says about the records kept.
type IndexView struct {
	Counts map[State]int
	Total  int
	// Recent are the latest changes, newest first, one per key.
	Recent []Change
	// EndedLastHour counts the records that reached a terminal state in
	// the current and the previous clock hour, weighted so that the figure
	// covers the last 60 minutes.
	EndedLastHour int
	// Days is how many day buckets were counted.
	Days int
	// Failures counts the records kept (the retention window) that ended
	// other than done, by reason code.
	Failures map[string]int
	// Throughput is the files ended per 5 minutes over the last hour.
	Throughput Throughput
	// NodeSecondsToday and NodeSecondsLast30Days total the node time of
	// the records written today and in the last 30 days (UTC days).
	NodeSecondsToday, NodeSecondsLast30Days float64
}

// View reads the counts (one listing of the day buckets' metadata) and
// the latest n changes (the newest buckets, until n are found).
func (x *Index) View(ctx context.Context, n int) (IndexView, error) {
	now := x.now().UTC()
	from := x.windowStart(now)
	today, month := dayOf(now), dayOf(now.Add(-29*24*time.Hour))
	v := IndexView{Counts: map[State]int{}, Failures: map[string]int{}}
	var days []string
	err := x.blobs.List(ctx, x.container, dayPrefix, func(it storage.Item) bool {
		d := strings.TrimPrefix(it.Name, dayPrefix)
		if d < from {
			return true
		}
		days = append(days, d)
		if ns, err := strconv.ParseFloat(it.Metadata[metaNodeSeconds], 64); err == nil {
			if d == today {
				v.NodeSecondsToday += ns
			}
			if d >= month {
				v.NodeSecondsLast30Days += ns
			}
		}
		v.countMetadata(it.Metadata)
		return true
	})
	if err != nil {
		return IndexView{}, fmt.Errorf("index: %w", err)
	}
	v.Days = len(days)
	slices.Sort(days)
	yesterday := dayOf(now.Add(-24 * time.Hour))
	var recent []Change
	v.Throughput = newThroughput(now)
	for i := len(days) - 1; i >= 0; i-- {
		d := days[i]
		if len(recent) >= n && d != today && d != yesterday {
			break
		}
		raw, _, err := x.blobs.GetWithETag(ctx, x.container, dayPrefix+d)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			return IndexView{}, fmt.Errorf("index day %s: %w", d, err)
		}
		var b Day
		if err := json.Unmarshal(raw, &b); err != nil {
			return IndexView{}, fmt.Errorf("index day %s: %w", d, err)
		}
		recent = append(recent, b.Recent...)
		v.EndedLastHour += endedLastHour(b, now)
		v.Throughput.add(b)
	}
	v.Recent = latest(recent, n)
	return v, nil
}

// summaryReaders bounds the record reads of one Summarize.
const summaryReaders = 16

// summarizeIndexed is Summarize from the index: the counts, the latest
// changes and the records as written, from the day buckets (records are
// read only for entries that Rebuild derived from a listing).
func (s *Store) summarizeIndexed(ctx context.Context, recent int) (Summary, error) {
	v, err := s.index.View(ctx, recent)
	if err != nil {
		return Summary{}, fmt.Errorf("summarize records: %w", err)
	}
	sum := Summary{Counts: v.Counts, Total: v.Total, Indexed: true, EndedLastHour: v.EndedLastHour,
		Throughput: &v.Throughput, FailureCounts: v.Failures,
		RetentionDays: int(s.index.retention / (24 * time.Hour)), NodeSecondsToday: v.NodeSecondsToday, NodeSecondsLast30Days: v.NodeSecondsLast30Days}
	if err := s.readRecords(ctx, v.Recent); err != nil {
		return Summary{}, err
	}
	for _, c := range v.Recent {
		if c.Record != nil { // nil: expired or deleted since
			sum.Recent = append(sum.Recent, *c.Record)
		}
	}
	slices.SortStableFunc(sum.Recent, func(a, b Record) int { return b.Updated.Compare(a.Updated) })
	return sum, nil
}

// readRecords reads, in parallel (summaryReaders at a time), the record of
// each change that does not carry one (an entry Rebuild derived from a
// listing); a record gone since stays nil.
func (s *Store) readRecords(ctx context.Context, changes []Change) error {
	errs := make([]error, len(changes))
	var wg sync.WaitGroup
	sem := make(chan struct{}, summaryReaders)
	for i := range changes {
		if changes[i].Record != nil {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			r, err := s.Get(ctx, changes[i].Key)
			if err == nil {
				changes[i].Record = &r
			} else if !errors.Is(err, ErrNotFound) {
				errs[i] = err
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
