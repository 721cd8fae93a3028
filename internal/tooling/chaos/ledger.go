package chaos

import (
	"fmt"
	"time"

	"github.com/ffpipe/ffpipe/internal/request"

	"github.com/ffpipe/ffpipe/internal/records"
	"github.com/ffpipe/ffpipe/internal/tooling/media"
)

// Kinds of ledger rows.
const (
	KindValid        = "valid"         // healthy clip, must convert
	KindPoison       = "poison"        // media.PoisonSet case
	KindOverwriteOld = "overwrite_old" // first version of a blob overwritten while processed
	KindOverwriteNew = "overwrite_new" // the version that replaced it
	KindDeleted      = "deleted"       // deleted by the harness before dispatch; sent as a message
	KindBadMessage   = "bad_message"   // a queue message that is not a request
	KindProfile      = "profile"       // video clip uploaded with a media profile (profiles.go)
)

// Row is one input the harness created, with what must become of it
// (docs/reliability.md#invariants).
type Row struct {
	ID       string        `json:"id"`
	Kind     string        `json:"kind"`
	Name     string        `json:"name"` // blob name in the input container ("" for bad_message)
	ETag     string        `json:"etag,omitempty"`
	Key      string        `json:"key"`
	Size     int64         `json:"size"`
	SHA256   string        `json:"sha256,omitempty"`
	Expect   string        `json:"expect"` // human-readable expectation
	ViaMsg   bool          `json:"viaMessage,omitempty"`
	Output   string        `json:"output,omitempty"` // predicted output blob
	Duration time.Duration `json:"audioDuration,omitempty"`
	// Pair links the two rows of an overwrite (their ID).
	Pair string `json:"pair,omitempty"`
	// Profile rows: the media profile named in the upload's metadata and
	// every output blob it makes (an HLS output's master playlist).
	Profile string   `json:"profile,omitempty"`
	Outputs []string `json:"outputs,omitempty"`

	expect media.Expect
	// wantState, when set, is the one acceptable terminal record state
	// (deleted: input_missing; bad_message: bad_request).
	wantState records.State
	// mayBeMissing: an overwritten version may also end input_missing
	// (its message was handled after the overwrite).
	mayBeMissing bool
	// superseded keys: earlier uploads of this row the harness replaced
	// (an upload whose answer was lost, or that Azurite rolled back).
	superseded []string
	// path is the local file uploaded (to repeat an upload Azurite lost).
	path string
	// folders are a profile row's HLS folders ("…/hls/"): every blob in
	// them is its output.
	folders []string
}

// OutputBlob is one blob found in the output container after the drain.
type OutputBlob struct {
	Size int64
	// Duration is the decoded audio duration (0 if unreadable); Err the
	// reason it is not a valid MP3 of one audio stream.
	Duration time.Duration
	Err      error
}

// Observed is the end state after the drain.
type Observed struct {
	Records    map[string]records.Record // by key
	Inputs     map[string]string         // input container: name → eTag
	Quarantine map[string]string         // quarantine container: name → eTag
	Outputs    map[string]OutputBlob     // output container by name
	DLQ        []DeadLetter
	// TerminalWrites are the times the pipeline logged writing a terminal
	// record, by key; StorageKills the times Azurite was SIGKILLed. A row
	// whose terminal record was written and then lost in an Azurite
	// rollback (LokiJS saves every 5 s) is counted apart from lost: Azure
	// Storage never loses an acknowledged write.
	TerminalWrites map[string][]time.Time
	StorageKills   []time.Time
	// RecordModified is each record blob's Last-Modified (Azurite's
	// clock, whole seconds), by key.
	RecordModified map[string]time.Time
	// StorageRestarts[i] is when Azurite was started again after
	// StorageKills[i] (zero if it did not come back): nothing it
	// acknowledged from then on was lost in that kill.
	StorageRestarts []time.Time
	// InFlight, when the drain reached its cap while the pipeline was
	// still making progress, holds the keys that still had work in flight
	// (a Batch task, a queued message, a record not yet final), and
	// DeliveriesInFlight whether event deliveries were still in flight
	// (their keys are not known). Nil when the drain ended because
	// everything was resolved or nothing moved any more: a row without a
	// terminal record is then lost.
	InFlight           map[string]bool
	DeliveriesInFlight bool
}

// rollbackWindow is how far back an Azurite SIGKILL can undo writes.
const rollbackWindow = 30 * time.Second

// lostToRollback reports whether one of keys had a terminal record
// written shortly before an Azurite kill.
func (o Observed) lostToRollback(keys ...string) bool {
	for _, k := range keys {
		for _, w := range o.TerminalWrites[k] {
			for _, kill := range o.StorageKills {
				if kill.After(w) && kill.Sub(w) <= rollbackWindow {
					return true
				}
			}
		}
	}
	return false
}

// taskUploadsRolledBack reports whether the uploads of the task a record
// settles (its output, stdout and stderr, all made before the task ended)
// can have been undone by an Azurite rollback that the record itself
// survived: Azurite was SIGKILLed after the task ended, before its
// metadata reached disk (within rollbackWindow), and the record was
// written after the kill (recordWrittenAfter; a rollback restores a
// consistent earlier state: had the record been written before the kill,
// the uploads made before it would be there too). Such a rollback leaves a
// missing output, an output holding an earlier version's content (an
// overwritten name), or a failure reason without what the lost stderr
// would have told. In Azure an acknowledged upload is durable and none of
// this can happen.
func (o Observed) taskUploadsRolledBack(rec records.Record) bool {
	if rec.Timings.Ended == nil {
		return false
	}
	end := *rec.Timings.Ended
	for i, kill := range o.StorageKills {
		if !kill.Before(end) && kill.Sub(end) <= rollbackWindow && o.recordWrittenAfter(rec, i) {
			return true
		}
	}
	return false
}

// recordWrittenAfter reports whether rec was written after the i-th
// Azurite kill. The write landed after its stamp (Updated, set when the
// record was encoded; Timings.Swept, when Sweep began, for a record without
// one) and within its blob's Last-Modified second (Azurite's clock, one
// second resolution), and not while Azurite was down. The stamp alone can
// be early: the storage client retries a PUT that failed against the dying
// Azurite, with the same body, after the restart. So the write was after
// the kill if it was stamped after it, or if Last-Modified is after it, or
// if the kill falls inside the Last-Modified second and the host logged the
// write only after Azurite was started again (an acknowledgement from the
// new process is of a write that landed after the kill). A record stamped
// before the kill, modified in an earlier second, or logged before Azurite
// was started again was written before the kill: a missing
// output is then no rollback.
func (o Observed) recordWrittenAfter(rec records.Record, i int) bool {
	kill := o.StorageKills[i]
	stamped, acked := o.recordWritten(rec)
	modified := o.RecordModified[rec.Key]
	switch {
	case kill.Before(stamped), !modified.IsZero() && kill.Before(modified):
		return true
	case modified.IsZero() || !kill.Before(modified.Add(time.Second)) || i >= len(o.StorageRestarts):
		return false
	}
	up := o.StorageRestarts[i]
	return !up.IsZero() && !acked.IsZero() && !acked.Before(up)
}

// recordWritten bounds when a terminal record was written by what the
// pipeline saw: not before stamped (its Updated; Timings.Swept for a
// record without one) and not after acked, when the host logged writing
// it (the first terminal write it logged for the key from stamped on; zero
// if none).
func (o Observed) recordWritten(rec records.Record) (stamped, acked time.Time) {
	stamped = rec.Updated
	if stamped.IsZero() && rec.Timings.Swept != nil {
		stamped = *rec.Timings.Swept
	}
	for _, w := range o.TerminalWrites[rec.Key] {
		// Log times have millisecond resolution.
		if !w.Before(stamped.Truncate(time.Millisecond)) && (acked.IsZero() || w.Before(acked)) {
			acked = w
		}
	}
	return stamped, acked
}

// writeTimes explains, for a finding, when a record's task ended, when
// the record was written (recordWritten) and when Azurite was killed and
// restarted.
func (o Observed) writeTimes(rec records.Record) string {
	const layout = "15:04:05.000"
	at := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format(layout)
	}
	var end time.Time
	if rec.Timings.Ended != nil {
		end = *rec.Timings.Ended
	}
	stamped, acked := o.recordWritten(rec)
	s := fmt.Sprintf("task ended %s, record stamped %s, modified %s, logged %s; Azurite", at(end), at(stamped), at(o.RecordModified[rec.Key]), at(acked))
	if len(o.StorageKills) == 0 {
		return s + " never killed"
	}
	for i, k := range o.StorageKills {
		var up time.Time
		if i < len(o.StorageRestarts) {
			up = o.StorageRestarts[i]
		}
		s += fmt.Sprintf(" killed %s (up %s)", at(k), at(up))
	}
	return s
}

// DeadLetter is one message found in the dead-letter queue.
type DeadLetter struct {
	MessageID string `json:"messageId"`
	Reason    string `json:"reason"`
}

// Finding explains one invariant breach.
type Finding struct {
	Invariant string `json:"invariant"`
	Row       string `json:"row,omitempty"`
	Detail    string `json:"detail"`
}

// Result is the checker's verdict.
type Result struct {
	Lost                 int `json:"lost"`
	DuplicateOutputs     int `json:"duplicate_outputs"`
	UnexpectedOutputs    int `json:"unexpected_outputs"`
	WronglyDeletedInputs int `json:"wrongly_deleted_inputs"`
	WrongOutcome         int `json:"wrong_outcome"`
	InvalidOutputs       int `json:"invalid_outputs"`
	DLQUnresolved        int `json:"dlq_unresolved"`
	// LostToStorageRollback: terminal records the pipeline wrote and
	// Azurite lost on SIGKILL (not a pipeline loss; reported apart).
	LostToStorageRollback int `json:"lost_to_storage_rollback"`
	// Unfinished: rows still in flight (a task, a queued message, an
	// event delivery) when the drain reached its cap while the pipeline
	// was still making progress. Not a loss: the run was too short for
	// the machine; reported apart.
	Unfinished int `json:"unfinished"`
	// Informational.
	Converted        int            `json:"converted"`
	Outcomes         map[string]int `json:"outcomes"` // record state (or "none") → rows
	SupersededRecord int            `json:"superseded_records"`
	InputsLeft       int            `json:"inputs_left_after_done"`
	Findings         []Finding      `json:"findings"`
}

// rolledBack records a row whose outcome an Azurite rollback explains
// (see Observed.lostToRollback and taskUploadsRolledBack): reported
// apart, not a breach.
func (r *Result) rolledBack(row *Row, format string, args ...any) {
	r.LostToStorageRollback++
	r.Findings = append(r.Findings, Finding{Invariant: "lost_to_storage_rollback", Row: row.ID,
		Detail: fmt.Sprintf("%s (key %s): ", row.Name, row.Key) + fmt.Sprintf(format, args...)})
}

// Breaches is the number of invariant violations (unfinished rows and
// rollbacks are reported apart).
func (r Result) Breaches() int {
	return r.Lost + r.DuplicateOutputs + r.UnexpectedOutputs + r.WronglyDeletedInputs + r.WrongOutcome + r.InvalidOutputs + r.DLQUnresolved
}

func (r *Result) add(inv, row, format string, args ...any) {
	r.Findings = append(r.Findings, Finding{Invariant: inv, Row: row, Detail: fmt.Sprintf(format, args...)})
	switch inv {
	case "lost":
		r.Lost++
	case "duplicate_outputs":
		r.DuplicateOutputs++
	case "unexpected_outputs":
		r.UnexpectedOutputs++
	case "wrongly_deleted_inputs":
		r.WronglyDeletedInputs++
	case "wrong_outcome":
		r.WrongOutcome++
	case "invalid_outputs":
		r.InvalidOutputs++
	case "dlq_unresolved":
		r.DLQUnresolved++
	}
}

// outcomeOf maps a record state to the media outcome it stands for.
func outcomeOf(st records.State) media.Outcome {
	switch st {
	case records.StateDone:
		return media.Done
	case records.StateFailed, records.StateBadRequest, records.StateInputMissing:
		return media.Failed
	case records.StateRejected:
		return media.Rejected
	}
	return 0
}

// OutputName predicts the output name, with the pipeline's own template.
func OutputName(name, ext string) string { return request.OutputName(name, ext) }
