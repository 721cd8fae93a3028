package chaos

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/ffpipe/ffpipe/internal/etags"
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
)

// Row is one input the harness created, with what must become of it
// (reliability-security.md §6.1).
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
// written after the kill (a rollback restores a consistent earlier state:
// had the record been written before the kill, the uploads made before it
// would be there too). Such a rollback leaves a missing output, an output
// holding an earlier version's content (an overwritten name), or a failure
// reason without what the lost stderr would have told. The record's write
// time is Updated, stamped when it was encoded (Timings.Swept is when
// Sweep began the write, which may be before the kill while the write
// itself lands after the restart). In Azure an acknowledged upload is
// durable and none of this can happen.
func (o Observed) taskUploadsRolledBack(rec records.Record) bool {
	if rec.Timings.Ended == nil {
		return false
	}
	end := *rec.Timings.Ended
	written := rec.Updated
	if written.IsZero() && rec.Timings.Swept != nil {
		written = *rec.Timings.Swept
	}
	for _, kill := range o.StorageKills {
		if !kill.Before(end) && kill.Sub(end) <= rollbackWindow && kill.Before(written) {
			return true
		}
	}
	return false
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
	// Informational.
	Converted        int            `json:"converted"`
	Outcomes         map[string]int `json:"outcomes"` // record state (or "none") → rows
	SupersededRecord int            `json:"superseded_records"`
	InputsLeft       int            `json:"inputs_left_after_done"`
	Findings         []Finding      `json:"findings"`
}

// Breaches is the number of invariant violations.
// rolledBack records a row whose outcome an Azurite rollback explains
// (see Observed.lostToRollback and taskUploadsRolledBack): reported
// apart, not a breach.
func (r *Result) rolledBack(row *Row, format string, args ...any) {
	r.LostToStorageRollback++
	r.Findings = append(r.Findings, Finding{Invariant: "lost_to_storage_rollback", Row: row.ID,
		Detail: fmt.Sprintf("%s (key %s): ", row.Name, row.Key) + fmt.Sprintf(format, args...)})
}

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

// Check applies the invariants of reliability-security.md §6.1 to the
// ledger and the observed end state.
func Check(rows []Row, obs Observed, tol time.Duration) Result {
	res := Result{Outcomes: map[string]int{}}
	byKey := map[string]*Row{}
	superseded := map[string]*Row{}
	byID := map[string]*Row{}
	byName := map[string]*Row{}
	for i := range rows {
		r := &rows[i]
		byKey[r.Key] = r
		byID[r.ID] = r
		for _, k := range r.superseded {
			superseded[k] = r
		}
		if r.Name != "" {
			byName[r.Name] = r
		}
	}
	// Which rows may have written each output blob.
	writers := map[string][]*Row{}
	for i := range rows {
		r := &rows[i]
		if r.Output != "" {
			writers[r.Output] = append(writers[r.Output], r)
		}
	}

	for i := range rows {
		r := &rows[i]
		rec, hasRec := obs.Records[r.Key]
		state := "none"
		if hasRec {
			state = string(rec.State)
		}
		res.Outcomes[state]++
		terminal := hasRec && rec.State.Terminal()
		ignoredOK := r.expect.Outcome.Has(media.Ignored)

		// lost: neither a valid output nor a terminal record.
		if !terminal && !ignoredOK {
			if obs.lostToRollback(append([]string{r.Key}, r.superseded...)...) {
				res.rolledBack(r, "terminal record written, then lost by an Azurite SIGKILL (state %s)", state)
				continue
			}
			res.add("lost", r.ID, "%s (key %s): no terminal record (state %s)", r.Name, r.Key, state)
			continue
		}

		// wrong outcome.
		switch {
		case r.wantState != "":
			if !hasRec || rec.State != r.wantState {
				res.add("wrong_outcome", r.ID, "%s: record state %s (reason %q), want %s", r.Name, state, reasonOf(rec, hasRec), r.wantState)
			}
		case r.mayBeMissing && hasRec && rec.State == records.StateInputMissing:
			// The overwrite won the race to Dispatch: fine.
		default:
			got := media.Ignored
			if hasRec {
				got = outcomeOf(rec.State)
			}
			switch {
			case r.expect.Allows(got, reasonOf(rec, hasRec)):
			case r.expect.Outcome.Has(got) && hasRec && obs.taskUploadsRolledBack(rec):
				// The right outcome; the reason lacks the code that the
				// task's stderr, rolled back before Sweep read it, gives.
				res.rolledBack(r, "failure reason %q written without the task's stderr (lost by an Azurite SIGKILL)", reasonOf(rec, hasRec))
			default:
				res.add("wrong_outcome", r.ID, "%s: got %s (state %s, reason %q), want %s", r.Name, got, state, reasonOf(rec, hasRec), r.expect)
			}
		}

		// The converted output.
		if hasRec && rec.State == records.StateDone {
			res.Converted++
			out := rec.Output.Blob
			if out == "" {
				out = r.Output
			}
			ob, ok := obs.Outputs[out]
			switch {
			case !ok && obs.taskUploadsRolledBack(rec):
				res.rolledBack(r, "output %q uploaded, then lost by an Azurite SIGKILL before Sweep recorded it done", out)
				continue // its input went with the verified output: not a deletion of its own
			case !ok:
				res.add("lost", r.ID, "%s: record done but output %q missing", r.Name, out)
			case ob.Err != nil:
				res.add("invalid_outputs", r.ID, "%s: output %q: %v", r.Name, out, ob.Err)
			case r.Kind == KindOverwriteOld:
				// Checked with its pair below.
			case r.Kind == KindOverwriteNew:
				if d := (ob.Duration - r.Duration).Abs(); d > tol {
					old := byID[r.Pair]
					olders := old != nil && (ob.Duration-old.Duration).Abs() <= tol
					if olders && obs.taskUploadsRolledBack(rec) {
						res.rolledBack(r, "output %q holds the overwritten version's content: the newest upload's output was lost by an Azurite SIGKILL", out)
						break
					}
					detail := fmt.Sprintf("%s: final output lasts %v, want the newest upload's %v", r.Name, ob.Duration, r.Duration)
					if olders {
						detail += " (it is the overwritten version's: the older task finished last)"
					}
					res.add("wrong_outcome", r.ID, "%s", detail)
				}
			case r.Duration > 0:
				if d := (ob.Duration - r.Duration).Abs(); d > tol {
					res.add("invalid_outputs", r.ID, "%s: output lasts %v, want %v ± %v", r.Name, ob.Duration, r.Duration, tol)
				}
			}
			if out != r.Output && r.Output != "" {
				res.add("unexpected_outputs", r.ID, "%s: record names output %q, want %q", r.Name, out, r.Output)
			}
		} else if r.Output != "" && r.Pair == "" {
			if _, ok := obs.Outputs[r.Output]; ok && !sharedOutputDone(writers[r.Output], obs) {
				res.add("unexpected_outputs", r.ID, "%s: output %q exists but the record is %s", r.Name, r.Output, state)
			}
		}

		// wrongly deleted: the input (this eTag) is gone from input and
		// quarantine without a verified output for the same key.
		if r.Name == "" || r.Kind == KindDeleted || r.Kind == KindOverwriteOld {
			continue // gone on purpose (deleted or overwritten by the harness)
		}
		inTag, inInput := obs.Inputs[r.Name]
		// A quarantined input is a server-side copy: same name, new eTag.
		_, inQ := obs.Quarantine[r.Name]
		present := (inInput && etags.Equal(inTag, r.ETag)) || inQ
		if !present {
			done := hasRec && rec.State == records.StateDone
			if !done {
				res.add("wrongly_deleted_inputs", r.ID, "%s (eTag %s): input gone, record %s", r.Name, r.ETag, state)
			} else if ob, ok := obs.Outputs[rec.Output.Blob]; !ok || ob.Err != nil {
				res.add("wrongly_deleted_inputs", r.ID, "%s (eTag %s): input gone, output not verified", r.Name, r.ETag)
			}
		} else if hasRec && rec.State == records.StateDone && inInput && etags.Equal(inTag, r.ETag) {
			res.InputsLeft++
		}
	}

	// Outputs nobody in the ledger should have written.
	names := make([]string, 0, len(obs.Outputs))
	for n := range obs.Outputs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		ws := writers[n]
		if len(ws) == 0 {
			res.add("unexpected_outputs", "", "output %q matches no ledger input", n)
			continue
		}
		// One blob for two different keys: only an overwrite pair may share.
		var done []*Row
		for _, w := range ws {
			if rec, ok := obs.Records[w.Key]; ok && rec.State == records.StateDone {
				done = append(done, w)
			}
		}
		if len(done) > 1 && !(len(done) == 2 && done[0].Pair == done[1].ID) {
			ids := make([]string, len(done))
			for i, d := range done {
				ids[i] = d.ID
			}
			res.add("duplicate_outputs", "", "output %q written for %d keys (%s)", n, len(done), strings.Join(ids, ", "))
		}
	}

	// Records with no ledger row.
	keys := make([]string, 0, len(obs.Records))
	for k := range obs.Records {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if byKey[k] != nil {
			continue
		}
		rec := obs.Records[k]
		r := superseded[k]
		if r == nil && rec.State != records.StateDone {
			// An upload whose answer was lost (the harness retried it and
			// never learnt the first eTag): a record for the same name
			// that did not convert is a superseded version too.
			r = byName[rec.Source.Blob]
		}
		if r != nil {
			res.SupersededRecord++
			if rec.State == records.StateDone {
				// A superseded upload that was converted: only fine when
				// the output is the row's own (same name, same content).
				if rec.Output.Blob != r.Output {
					res.add("unexpected_outputs", r.ID, "superseded key %s wrote %q", k, rec.Output.Blob)
				}
			}
			continue
		}
		res.add("unexpected_outputs", "", "record %s (%s %q) matches no ledger input", k, rec.State, rec.Source.Blob)
	}

	// Dead letters must belong to resolved work.
	for _, d := range obs.DLQ {
		rec, ok := obs.Records[d.MessageID]
		if !ok || !rec.State.Terminal() {
			res.add("dlq_unresolved", "", "dead-lettered message %s (%s) has no terminal record", d.MessageID, d.Reason)
		}
	}
	return res
}

// sharedOutputDone: one of the rows writing this output (or an earlier,
// superseded upload of one of them) converted.
func sharedOutputDone(ws []*Row, obs Observed) bool {
	for _, w := range ws {
		for _, k := range append([]string{w.Key}, w.superseded...) {
			if rec, ok := obs.Records[k]; ok && rec.State == records.StateDone {
				return true
			}
		}
	}
	return false
}

func reasonOf(rec records.Record, ok bool) string {
	if !ok {
		return ""
	}
	return rec.Reason
}
