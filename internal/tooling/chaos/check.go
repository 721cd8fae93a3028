package chaos

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/ffpipe/ffpipe/internal/etags"
	"github.com/ffpipe/ffpipe/internal/records"
	"github.com/ffpipe/ffpipe/internal/tooling/media"
)

// Check applies the invariants of docs/reliability.md ("Check") to the
// ledger and the observed end state: per row lost (or unfinished, or
// lost to a storage rollback), wrong_outcome, the converted output
// (invalid_outputs, unexpected_outputs) and wrongly_deleted_inputs; then
// the outputs nobody should have written, the records with no row, and the
// dead letters.
func Check(rows []Row, obs Observed, tol time.Duration) Result {
	c := checker{res: Result{Outcomes: map[string]int{}}, obs: obs, tol: tol, idx: indexRows(rows)}
	for i := range rows {
		rc := c.rowCheck(&rows[i])
		c.res.Outcomes[rc.state]++
		if c.lost(rc) {
			continue
		}
		c.outcome(rc)
		if c.output(rc) {
			continue
		}
		c.inputKept(rc)
	}
	c.strayOutputs()
	c.strayRecords()
	c.deadLetters()
	return c.res
}

// ledgerIndex looks rows up by key, superseded key, ID, blob name and the
// output blob they may write.
type ledgerIndex struct {
	byKey, superseded, byID, byName map[string]*Row
	writers                         map[string][]*Row
	folders                         map[string]*Row // HLS folder prefix → row
}

func indexRows(rows []Row) ledgerIndex {
	idx := ledgerIndex{byKey: map[string]*Row{}, superseded: map[string]*Row{}, byID: map[string]*Row{},
		byName: map[string]*Row{}, writers: map[string][]*Row{}, folders: map[string]*Row{}}
	for i := range rows {
		r := &rows[i]
		idx.byKey[r.Key] = r
		idx.byID[r.ID] = r
		for _, k := range r.superseded {
			idx.superseded[k] = r
		}
		if r.Name != "" {
			idx.byName[r.Name] = r
		}
		if r.Output != "" {
			idx.writers[r.Output] = append(idx.writers[r.Output], r)
		}
		for _, o := range r.Outputs {
			idx.writers[o] = append(idx.writers[o], r)
		}
		for _, f := range r.folders {
			idx.folders[f] = r
		}
	}
	return idx
}

type checker struct {
	res Result
	obs Observed
	tol time.Duration
	idx ledgerIndex
}

// rowState is one row with its record.
type rowState struct {
	r      *Row
	rec    records.Record
	hasRec bool
	state  string // record state, or "none"
}

func (c *checker) rowCheck(r *Row) rowState {
	rec, ok := c.obs.Records[r.Key]
	rs := rowState{r: r, rec: rec, hasRec: ok, state: "none"}
	if ok {
		rs.state = string(rec.State)
	}
	return rs
}

func (rs rowState) done() bool { return rs.hasRec && rs.rec.State == records.StateDone }

// lost: a row (not expected to be ignored) without a terminal record. It
// reports whether the row's other checks are moot.
func (c *checker) lost(rs rowState) bool {
	r := rs.r
	if (rs.hasRec && rs.rec.State.Terminal()) || r.expect.Outcome.Has(media.Ignored) {
		return false
	}
	keys := append([]string{r.Key}, r.superseded...)
	switch {
	case c.obs.lostToRollback(keys...):
		c.res.rolledBack(r, "terminal record written, then lost by an Azurite SIGKILL (state %s)", rs.state)
	case c.inFlight(rs, keys):
		c.res.Unfinished++
		c.res.Findings = append(c.res.Findings, Finding{Invariant: "unfinished", Row: r.ID,
			Detail: fmt.Sprintf("%s (key %s): still in flight when the drain reached its cap (state %s)", r.Name, r.Key, rs.state)})
	default:
		c.res.add("lost", r.ID, "%s (key %s): no terminal record (state %s)", r.Name, r.Key, rs.state)
	}
	return true
}

// inFlight: the drain stopped at its cap with work for the row still in
// flight (for a row with no record at all, an event delivery counts).
func (c *checker) inFlight(rs rowState, keys []string) bool {
	if c.obs.InFlight == nil {
		return false
	}
	for _, k := range keys {
		if c.obs.InFlight[k] {
			return true
		}
	}
	return !rs.hasRec && c.obs.DeliveriesInFlight
}

// outcome: wrong_outcome, the record's state or reason against the row's
// expectation.
func (c *checker) outcome(rs rowState) {
	r, rec := rs.r, rs.rec
	switch {
	case r.wantState != "":
		if !rs.hasRec || rec.State != r.wantState {
			c.res.add("wrong_outcome", r.ID, "%s: record state %s (reason %q), want %s", r.Name, rs.state, reasonOf(rec, rs.hasRec), r.wantState)
		}
		return
	case r.mayBeMissing && rs.hasRec && rec.State == records.StateInputMissing:
		return // the overwrite won the race to Dispatch: fine
	}
	got := media.Ignored
	if rs.hasRec {
		got = outcomeOf(rec.State)
	}
	switch {
	case r.expect.Allows(got, reasonOf(rec, rs.hasRec)):
	case r.expect.Outcome.Has(got) && rs.hasRec && c.obs.taskUploadsRolledBack(rec):
		// The right outcome; the reason lacks the code that the task's
		// stderr, rolled back before Sweep read it, gives.
		c.res.rolledBack(r, "failure reason %q written without the task's stderr (lost by an Azurite SIGKILL)", reasonOf(rec, rs.hasRec))
	default:
		c.res.add("wrong_outcome", r.ID, "%s: got %s (state %s, reason %q), want %s", r.Name, got, rs.state, reasonOf(rec, rs.hasRec), r.expect)
	}
}

// output checks the converted output of a done row (lost, invalid_outputs,
// wrong_outcome for an overwrite, unexpected_outputs), or that a row that
// did not convert left no output. It reports whether the input check is
// moot (the output was rolled back with the input's deletion).
func (c *checker) output(rs rowState) bool {
	r := rs.r
	if r.Profile != "" {
		c.profileOutput(rs)
		return false
	}
	if !rs.done() {
		if r.Output != "" && r.Pair == "" {
			if _, ok := c.obs.Outputs[r.Output]; ok && !sharedOutputDone(c.idx.writers[r.Output], c.obs) {
				c.res.add("unexpected_outputs", r.ID, "%s: output %q exists but the record is %s", r.Name, r.Output, rs.state)
			}
		}
		return false
	}
	c.res.Converted++
	out := rs.rec.Output.Blob
	if out == "" {
		out = r.Output
	}
	ob, ok := c.obs.Outputs[out]
	switch {
	case !ok && c.obs.taskUploadsRolledBack(rs.rec):
		c.res.rolledBack(r, "output %q uploaded, then lost by an Azurite SIGKILL before Sweep recorded it done", out)
		return true // its input went with the verified output: not a deletion of its own
	case !ok:
		c.res.add("lost", r.ID, "%s: record done but output %q missing (%s)", r.Name, out, c.obs.writeTimes(rs.rec))
	case ob.Err != nil:
		c.res.add("invalid_outputs", r.ID, "%s: output %q: %v", r.Name, out, ob.Err)
	case r.Kind == KindOverwriteOld:
		// Checked with its pair.
	case r.Kind == KindOverwriteNew:
		c.overwriteOutput(rs, out, ob)
	case r.Duration > 0:
		if d := (ob.Duration - r.Duration).Abs(); d > c.tol {
			c.res.add("invalid_outputs", r.ID, "%s: output lasts %v, want %v ± %v", r.Name, ob.Duration, r.Duration, c.tol)
		}
	}
	if out != r.Output && r.Output != "" {
		c.res.add("unexpected_outputs", r.ID, "%s: record names output %q, want %q", r.Name, out, r.Output)
	}
	return false
}

// overwriteOutput: the final output of an overwritten name must be the
// newest upload's (wrong_outcome), unless a rollback restored the older one.
func (c *checker) overwriteOutput(rs rowState, out string, ob OutputBlob) {
	r := rs.r
	if d := (ob.Duration - r.Duration).Abs(); d <= c.tol {
		return
	}
	old := c.idx.byID[r.Pair]
	olders := old != nil && (ob.Duration-old.Duration).Abs() <= c.tol
	if olders && c.obs.taskUploadsRolledBack(rs.rec) {
		c.res.rolledBack(r, "output %q holds the overwritten version's content: the newest upload's output was lost by an Azurite SIGKILL", out)
		return
	}
	detail := fmt.Sprintf("%s: final output lasts %v, want the newest upload's %v", r.Name, ob.Duration, r.Duration)
	if olders {
		detail += " (it is the overwritten version's: the older task finished last)"
	}
	c.res.add("wrong_outcome", r.ID, "%s", detail)
}

// inputKept: wrongly_deleted_inputs, the input (this eTag) gone from input
// and quarantine without a verified output for the same key.
func (c *checker) inputKept(rs rowState) {
	r := rs.r
	if r.Name == "" || r.Kind == KindDeleted || r.Kind == KindOverwriteOld {
		return // gone on purpose (deleted or overwritten by the harness)
	}
	inTag, inInput := c.obs.Inputs[r.Name]
	// A quarantined input is a server-side copy: same name, new eTag.
	_, inQ := c.obs.Quarantine[r.Name]
	present := (inInput && etags.Equal(inTag, r.ETag)) || inQ
	switch {
	case !present && !rs.done():
		c.res.add("wrongly_deleted_inputs", r.ID, "%s (eTag %s): input gone, record %s", r.Name, r.ETag, rs.state)
	case !present:
		if !c.outputsVerified(rs) {
			c.res.add("wrongly_deleted_inputs", r.ID, "%s (eTag %s): input gone, output not verified", r.Name, r.ETag)
		}
	case rs.done() && inInput && etags.Equal(inTag, r.ETag):
		c.res.InputsLeft++
	}
}

// outputsVerified: the record's output (a profile row: every output of its
// profile) is there and verifies.
func (c *checker) outputsVerified(rs rowState) bool {
	outs := []string{rs.rec.Output.Blob}
	if rs.r.Profile != "" {
		outs = rs.r.Outputs
	}
	for _, o := range outs {
		if ob, ok := c.obs.Outputs[o]; !ok || ob.Err != nil {
			return false
		}
	}
	return true
}

// strayOutputs: unexpected_outputs for an output no row should have
// written, duplicate_outputs for one written for two keys (only an
// overwrite pair may share).
func (c *checker) strayOutputs() {
	names := make([]string, 0, len(c.obs.Outputs))
	for n := range c.obs.Outputs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		ws := c.idx.writers[n]
		if len(ws) == 0 {
			if c.idx.folderOwner(n) == nil {
				c.res.add("unexpected_outputs", "", "output %q matches no ledger input", n)
			}
			continue
		}
		var done []*Row
		for _, w := range ws {
			if rec, ok := c.obs.Records[w.Key]; ok && rec.State == records.StateDone {
				done = append(done, w)
			}
		}
		if len(done) > 1 && !(len(done) == 2 && done[0].Pair == done[1].ID) {
			ids := make([]string, len(done))
			for i, d := range done {
				ids[i] = d.ID
			}
			c.res.add("duplicate_outputs", "", "output %q written for %d keys (%s)", n, len(done), strings.Join(ids, ", "))
		}
	}
}

// strayRecords: unexpected_outputs for a record that matches no row and is
// no superseded upload of one.
func (c *checker) strayRecords() {
	keys := make([]string, 0, len(c.obs.Records))
	for k := range c.obs.Records {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if c.idx.byKey[k] != nil {
			continue
		}
		rec := c.obs.Records[k]
		r := c.idx.superseded[k]
		if r == nil {
			// An upload whose answer was lost (the harness retried it and
			// never learnt the first eTag) is a superseded version too:
			// the same bytes under the same name, so converting it writes
			// the row's own output (checked below; for an overwritten
			// name the final content is checked with the newest row).
			r = c.idx.byName[rec.Source.Blob]
		}
		if r == nil {
			c.res.add("unexpected_outputs", "", "record %s (%s %q) matches no ledger input", k, rec.State, rec.Source.Blob)
			continue
		}
		c.res.SupersededRecord++
		// A superseded upload that was converted: only fine when the
		// output is the row's own (same name, same content).
		if rec.State == records.StateDone && rec.Output.Blob != r.Output {
			c.res.add("unexpected_outputs", r.ID, "superseded key %s wrote %q", k, rec.Output.Blob)
		}
	}
}

// deadLetters: dlq_unresolved, a dead letter whose key has no terminal
// record.
func (c *checker) deadLetters() {
	for _, d := range c.obs.DLQ {
		rec, ok := c.obs.Records[d.MessageID]
		if !ok || !rec.State.Terminal() {
			c.res.add("dlq_unresolved", "", "dead-lettered message %s (%s) has no terminal record", d.MessageID, d.Reason)
		}
	}
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
