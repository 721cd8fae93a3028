// Package records keeps one status record per request key: a JSON blob in
// the status container whose name is the key. The record's state is also
// stored as blob metadata so that counting states needs a listing, not a
// download per record.
//
// Writers only ever replace a record with a newer view of the same work, so
// every write is idempotent; Put never moves a record out of a terminal
// state unless the caller says so (Force), which makes duplicate deliveries
// and re-runs after a crash harmless.
package records

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/ffpipe/ffpipe/internal/storage"
)

// State of a piece of work.
type State string

// States. Terminal states end the life of a key.
const (
	StateQueued       State = "queued"        // message sent
	StateDispatched   State = "dispatched"    // a Batch task exists: Status reads it from Batch (Dispatch writes no record)
	StateDone         State = "done"          // output written, input deleted
	StateFailed       State = "failed"        // the task failed, or produced no output
	StateInputMissing State = "input_missing" // the input (that version of it) was gone before its task could read it
	StateBadRequest   State = "bad_request"   // the message can never succeed
	StateRejected     State = "rejected"      // refused before dispatch (empty, too large)
)

// States lists every state in display order.
var States = []State{StateQueued, StateDispatched, StateDone, StateFailed, StateInputMissing, StateBadRequest, StateRejected}

// Terminal reports whether no further work will happen for the key.
func (s State) Terminal() bool {
	switch s {
	case StateDone, StateFailed, StateInputMissing, StateBadRequest, StateRejected:
		return true
	}
	return false
}

// Replaces reports whether a record in state next may replace one in state
// s. Work moves forward only: a terminal record is never replaced by a
// non-terminal one (a late "dispatched" never overwrites "done"); done is
// final; failed can only be settled again (a re-run of Sweep); and a verdict
// reached before dispatch (input_missing, bad_request, rejected) never
// replaces the outcome of work that ran — an event or message redelivered
// after Sweep deleted the input must not turn "done" into "input_missing".
func (s State) Replaces(next State) bool {
	switch {
	case !s.Terminal():
		return true
	case !next.Terminal():
		return false
	case s == StateDone:
		return next == StateDone
	case s == StateFailed:
		return next == StateFailed || next == StateDone
	}
	return true
}

// Blob names a blob.
type Blob struct {
	Container string `json:"container,omitempty"`
	Blob      string `json:"blob,omitempty"`
	ETag      string `json:"etag,omitempty"`
	Size      int64  `json:"size,omitempty"`
}

// Timings are the moments in the life of a key (UTC; zero = not yet).
type Timings struct {
	Event      *time.Time `json:"event,omitempty"`      // blob created (Event Grid eventTime)
	Enqueued   *time.Time `json:"enqueued,omitempty"`   // message sent / enqueued
	Dispatched *time.Time `json:"dispatched,omitempty"` // task added
	Started    *time.Time `json:"started,omitempty"`    // task started on a node
	Ended      *time.Time `json:"ended,omitempty"`      // task completed
	Swept      *time.Time `json:"swept,omitempty"`      // Sweep finished with it
}

// OutputInfo is one verified output of a done key: a file, an HLS
// output's master playlist, or one of its rungs (Blob its playlist).
type OutputInfo struct {
	// Name is the output's name in its profile ("mp3", "thumbnail",
	// "hls"; "hls/720p" for a rung).
	Name string `json:"name"`
	Blob string `json:"blob"`
	// Size in bytes (a rung's: its playlist's).
	Size int64 `json:"size,omitempty"`
	// Duration in seconds, as probed on the node; 0 for images.
	Duration float64 `json:"duration,omitempty"`
	// Height in lines; 0 for audio.
	Height int `json:"height,omitempty"`
}

// Record is the status of one key.
type Record struct {
	Key    string `json:"key"`
	Source Blob   `json:"source"`
	// Output is the first output (the only one of a one-output profile).
	Output Blob `json:"output,omitzero"`
	// Preset names the profile (every preset is a one-output profile).
	Preset string `json:"preset,omitempty"`
	// Outputs lists every output of a done key (docs/profiles.md).
	Outputs       []OutputInfo `json:"outputs,omitempty"`
	State         State        `json:"state"`
	Reason        string       `json:"reason,omitempty"`
	ExitCode      *int         `json:"exitCode,omitempty"`
	Attempts      int          `json:"attempts,omitempty"`
	Timings       Timings      `json:"timings"`
	CorrelationID string       `json:"correlationId,omitempty"`
	Updated       time.Time    `json:"updated"`
	// Cost is the node time the task used (a terminal record of work that
	// ran; cost.go).
	Cost *Cost `json:"cost,omitempty"`
	// RedrivenTo is the key of the input's new version after a redrive
	// moved it back from quarantine (ffpipe redrive).
	RedrivenTo string `json:"redrivenTo,omitempty"`
	// Progress is how far a running task is (Status only; never stored).
	Progress *Progress `json:"progress,omitempty"`
}

// Progress is a running task's progress as Status shows it.
type Progress struct {
	Percent         float64 `json:"percent"`
	DoneSeconds     float64 `json:"doneSeconds"`
	DurationSeconds float64 `json:"durationSeconds,omitempty"`
	// ETASeconds is the estimated time left (0: unknown).
	ETASeconds float64 `json:"etaSeconds,omitempty"`
}

// InFlight is how a key whose work Batch holds is shown: Dispatch writes
// no record, so between the queue and Sweep a task is the record of the
// dispatch. r is the key's non-terminal record, or the zero Record when
// there is none; taskState is Batch's ("active", "running", …).
func (r Record) InFlight(key, taskState string, created, started time.Time) Record {
	r.Key = key
	r.State, r.Reason = StateDispatched, "batch task "+taskState
	if !created.IsZero() {
		c := created.UTC()
		r.Timings.Dispatched = &c
	}
	if !started.IsZero() {
		s := started.UTC()
		r.Timings.Started = &s
	}
	return r
}

// ErrNotFound: no record for the key.
var ErrNotFound = errors.New("record not found")

// Blobs is the storage the records live in.
type Blobs interface {
	Put(ctx context.Context, container, name string, data []byte, contentType string, metadata map[string]string) error
	// PutIf writes only if the blob's eTag is ifMatch ("" = only if it
	// does not exist), else storage.ErrConditionNotMet.
	PutIf(ctx context.Context, container, name string, data []byte, contentType string, metadata map[string]string, ifMatch string) error
	Get(ctx context.Context, container, name string) ([]byte, error)
	GetWithETag(ctx context.Context, container, name string) ([]byte, string, error)
	List(ctx context.Context, container, prefix string, fn func(storage.Item) bool) error
}

var _ Blobs = (*storage.Client)(nil)

// Store reads and writes records.
type Store struct {
	blobs     Blobs
	container string
	now       func() time.Time
	// index, when set, is kept up to date by Update and UpdateNew and
	// answers Summarize (index.go).
	index      *Index
	indexError func(key string, err error)
}

// New returns a Store over container. now may be nil (time.Now).
func New(blobs Blobs, container string, now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{blobs: blobs, container: container, now: now}
}

// WithIndex makes Update and UpdateNew maintain x and Summarize read it.
// A record write whose index write fails is kept (the record is the
// truth): onError (may be nil) hears of it, and Rebuild repairs the index.
func (s *Store) WithIndex(x *Index, onError func(key string, err error)) *Store {
	s.index, s.indexError = x, onError
	return s
}

// Index is the store's index, nil without one.
func (s *Store) Index() *Index { return s.index }

// indexed records the index change of a record write.
func (s *Store) indexed(ctx context.Context, old Record, found bool, r Record) {
	if s.index == nil {
		return
	}
	if err := s.index.record(ctx, moveOf(old, found, r)); err != nil && s.indexError != nil {
		s.indexError(r.Key, err)
	}
}

// Metadata names on record blobs.
const (
	metaState   = "state"
	metaUpdated = "updated"
)

// Put writes r, stamping Updated. It is a plain overwrite: use Update to
// respect terminal states and concurrent writers. Put does not maintain
// the index (tools that seed records run Rebuild afterwards).
func (s *Store) Put(ctx context.Context, r Record) error {
	b, md, err := s.encode(&r)
	if err != nil {
		return err
	}
	if err := s.blobs.Put(ctx, s.container, r.Key, b, "application/json", md); err != nil {
		return fmt.Errorf("put record %s: %w", r.Key, err)
	}
	return nil
}

func (s *Store) encode(r *Record) ([]byte, map[string]string, error) {
	if r.Key == "" {
		return nil, nil, errors.New("put record: empty key")
	}
	r.Updated = s.now().UTC()
	return Encode(*r)
}

// Encode is a record blob's body and metadata exactly as Store writes them,
// with the record's own Updated time: for tools that write records in bulk
// (the bench's status phase seeds Azurite with them).
func Encode(r Record) ([]byte, map[string]string, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return nil, nil, fmt.Errorf("put record %s: %w", r.Key, err)
	}
	md := map[string]string{metaState: string(r.State), metaUpdated: r.Updated.Format(time.RFC3339Nano)}
	if code := r.FailureCode(); code != "" {
		md[metaReason] = code
	}
	if r.Cost != nil && r.Cost.NodeSeconds > 0 {
		md[metaNodeSeconds] = strconv.FormatFloat(r.Cost.NodeSeconds, 'f', -1, 64)
	}
	return b, md, nil
}

// Get reads the record for key; ErrNotFound if there is none.
func (s *Store) Get(ctx context.Context, key string) (Record, error) {
	b, err := s.blobs.Get(ctx, s.container, key)
	if errors.Is(err, storage.ErrNotFound) {
		return Record{}, fmt.Errorf("get record %s: %w", key, ErrNotFound)
	}
	if err != nil {
		return Record{}, fmt.Errorf("get record %s: %w", key, err)
	}
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return Record{}, fmt.Errorf("get record %s: %w", key, err)
	}
	return r, nil
}

// updateAttempts bounds the retries of Update when writers race.
const updateAttempts = 8

// Update reads the record for key (if any), lets change derive the new
// record from the old one (zero if none), and writes it with optimistic
// concurrency (If-Match on the eTag read, or create-only), retrying when
// another writer got in between. A change that State.Replaces forbids is
// dropped: Update then returns the stored record unchanged. change may run
// more than once. Update returns the record as stored.
func (s *Store) Update(ctx context.Context, key string, change func(old Record, found bool) Record) (Record, error) {
	for range updateAttempts {
		raw, etag, err := s.blobs.GetWithETag(ctx, s.container, key)
		found := err == nil
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return Record{}, fmt.Errorf("update record %s: %w", key, err)
		}
		var old Record
		if found {
			if err := json.Unmarshal(raw, &old); err != nil {
				return Record{}, fmt.Errorf("update record %s: %w", key, err)
			}
		} else {
			etag = ""
		}
		r := change(old, found)
		r.Key = key
		if found && !old.State.Replaces(r.State) {
			return old, nil
		}
		b, md, err := s.encode(&r)
		if err != nil {
			return Record{}, err
		}
		err = s.blobs.PutIf(ctx, s.container, key, b, "application/json", md, etag)
		if errors.Is(err, storage.ErrConditionNotMet) {
			continue // another writer won; derive again from its record
		}
		if err != nil {
			return Record{}, fmt.Errorf("update record %s: %w", key, err)
		}
		s.indexed(ctx, old, found, r)
		return r, nil
	}
	return Record{}, fmt.Errorf("update record %s: %d concurrent writers in a row: %w", key, updateAttempts, storage.ErrConditionNotMet)
}

// UpdateNew is Update for a key the caller has just read without finding
// a record: the first attempt writes create-only without reading again
// (one storage round trip instead of two); if a record appeared in
// between, it falls back to Update. The outcome is the same as Update's.
func (s *Store) UpdateNew(ctx context.Context, key string, change func(old Record, found bool) Record) (Record, error) {
	r := change(Record{}, false)
	r.Key = key
	b, md, err := s.encode(&r)
	if err != nil {
		return Record{}, err
	}
	err = s.blobs.PutIf(ctx, s.container, key, b, "application/json", md, "")
	switch {
	case errors.Is(err, storage.ErrConditionNotMet):
		return s.Update(ctx, key, change)
	case err != nil:
		return Record{}, fmt.Errorf("update record %s: %w", key, err)
	}
	s.indexed(ctx, Record{}, false, r)
	return r, nil
}

// Summary is what the Status page shows.
type Summary struct {
	Counts map[State]int `json:"counts"`
	Total  int           `json:"total"`
	Recent []Record      `json:"recent"`
	// Indexed: the summary comes from the index (Store.WithIndex), which
	// counts the records updated within the last RetentionDays days (the
	// records kept); EndedLastHour is how many reached a terminal state
	// in the last hour.
	Indexed       bool `json:"indexed,omitempty"`
	RetentionDays int  `json:"retentionDays,omitempty"`
	EndedLastHour int  `json:"endedLastHour"`
	// NodeSecondsToday and NodeSecondsLast30Days total the node time of
	// the records written today and in the last 30 days (UTC).
	NodeSecondsToday      float64 `json:"nodeSecondsToday"`
	NodeSecondsLast30Days float64 `json:"nodeSecondsLast30Days"`
	// Throughput is the files ended per 5 minutes over the last hour, and
	// FailureCounts the records kept (RetentionDays) that ended other than
	// done, by reason code (Record.FailureCode); both from the index.
	Throughput    *Throughput    `json:"throughput,omitempty"`
	FailureCounts map[string]int `json:"failureCounts,omitempty"`
}

// Summarize counts records by state and loads the recent most recently
// updated ones: from the index when the store has one (a few blob reads
// whatever the number of records), else from one listing of every record.
func (s *Store) Summarize(ctx context.Context, recent int) (Summary, error) {
	if s.index != nil {
		return s.summarizeIndexed(ctx, recent)
	}
	sum := Summary{Counts: map[State]int{}}
	type item struct {
		name string
		mod  time.Time
	}
	var items []item
	err := s.blobs.List(ctx, s.container, "", func(it storage.Item) bool {
		st := State(it.Metadata[metaState])
		if st == "" {
			st = "unknown"
		}
		sum.Counts[st]++
		sum.Total++
		mod := it.LastModified
		if t, err := time.Parse(time.RFC3339Nano, it.Metadata[metaUpdated]); err == nil {
			mod = t // finer than Last-Modified's seconds
		}
		items = append(items, item{it.Name, mod})
		return true
	})
	if err != nil {
		return Summary{}, fmt.Errorf("summarize records: %w", err)
	}
	sort.Slice(items, func(i, j int) bool {
		if !items[i].mod.Equal(items[j].mod) {
			return items[i].mod.After(items[j].mod)
		}
		return items[i].name < items[j].name
	})
	for _, it := range items[:min(recent, len(items))] {
		r, err := s.Get(ctx, it.name)
		if errors.Is(err, ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return Summary{}, err
		}
		sum.Recent = append(sum.Recent, r)
	}
	sort.SliceStable(sum.Recent, func(i, j int) bool { return sum.Recent[i].Updated.After(sum.Recent[j].Updated) })
	return sum, nil
}
