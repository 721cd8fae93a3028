package chaos

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ffpipe/ffpipe/internal/records"
	"github.com/ffpipe/ffpipe/internal/tooling/media"
)

// baseline: one valid input converted, one poison failed and quarantined,
// one ignored, one deleted before dispatch, and an overwrite pair.
func baseline() ([]Row, Observed) {
	rows := []Row{
		{ID: "valid-1", Kind: KindValid, Name: "v/a.mp4", ETag: "e1", Key: "k1", Output: "v/a.mp3", Duration: 2 * time.Second, expect: media.Expect{Outcome: media.Done}},
		{ID: "poison-text", Kind: KindPoison, Name: "p/t.mp4", ETag: "e2", Key: "k2", Output: "p/t.mp3", expect: media.Expect{Outcome: media.Failed, ReasonContains: "not_media"}},
		{ID: "poison-mov", Kind: KindPoison, Name: "p/c.mov", ETag: "e3", Key: "k3", expect: media.Expect{Outcome: media.Ignored}},
		{ID: "deleted-0", Kind: KindDeleted, Name: "d/x.mp4", ETag: "e4", Key: "k4", Output: "d/x.mp3", wantState: records.StateInputMissing},
		{ID: "ow-v1", Kind: KindOverwriteOld, Name: "o/w.mp4", ETag: "e5", Key: "k5", Output: "o/w.mp3", Duration: 2 * time.Second, Pair: "ow-v2", expect: media.Expect{Outcome: media.Done}, mayBeMissing: true},
		{ID: "ow-v2", Kind: KindOverwriteNew, Name: "o/w.mp4", ETag: "e6", Key: "k6", Output: "o/w.mp3", Duration: time.Second, Pair: "ow-v1", expect: media.Expect{Outcome: media.Done}},
	}
	obs := Observed{
		Records: map[string]records.Record{
			"k1": {Key: "k1", State: records.StateDone, Output: records.Blob{Blob: "v/a.mp3"}},
			"k2": {Key: "k2", State: records.StateFailed, Reason: "not_media: moov atom not found"},
			"k4": {Key: "k4", State: records.StateInputMissing, Reason: "input_missing: the input blob does not exist"},
			"k5": {Key: "k5", State: records.StateDone, Output: records.Blob{Blob: "o/w.mp3"}},
			"k6": {Key: "k6", State: records.StateDone, Output: records.Blob{Blob: "o/w.mp3"}},
		},
		Inputs:     map[string]string{"p/c.mov": "e3"},
		Quarantine: map[string]string{"p/t.mp4": "e2"},
		Outputs: map[string]OutputBlob{
			"v/a.mp3": {Size: 100, Duration: 2*time.Second + 20*time.Millisecond},
			"o/w.mp3": {Size: 100, Duration: time.Second},
		},
	}
	return rows, obs
}

// outputLostAt makes k1's output vanish with its record done: the task
// ended at t0, Sweep began the record at t0+swept and it was written at
// t0+written, Azurite was killed at t0+kill.
func outputLostAt(o *Observed, swept, written, kill time.Duration) {
	delete(o.Outputs, "v/a.mp3")
	end := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	sw := end.Add(swept)
	o.Records["k1"] = records.Record{Key: "k1", State: records.StateDone, Output: records.Blob{Blob: "v/a.mp3"},
		Timings: records.Timings{Ended: &end, Swept: &sw}, Updated: end.Add(written)}
	o.StorageKills = []time.Time{end.Add(kill)}
}

// outputLostInFlight makes k1's output vanish with its record done, the
// record stamped at t0+stamped but written when Azurite says (Last-Modified
// t0+modified, whole seconds) and logged by the host at t0+logged; the task
// ended at t0, Azurite was killed at t0+kill and started again at t0+up.
func outputLostInFlight(o *Observed, stamped, modified, logged, kill, up time.Duration) {
	outputLostAt(o, stamped, stamped, kill)
	t0 := *o.Records["k1"].Timings.Ended
	o.RecordModified = map[string]time.Time{"k1": t0.Add(modified).Truncate(time.Second)}
	o.TerminalWrites = map[string][]time.Time{"k1": {t0.Add(logged)}}
	o.StorageRestarts = []time.Time{t0.Add(up)}
}

// rolledBackAfter gives key's record the timings of a task that ended at
// t0 and a record written at t0+3s, with Azurite killed at t0+kill.
func rolledBackAfter(o *Observed, key string, kill time.Duration) {
	end := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	rec := o.Records[key]
	rec.Timings.Ended, rec.Updated = &end, end.Add(3*time.Second)
	o.Records[key] = rec
	o.StorageKills = []time.Time{end.Add(kill)}
}

// addProfileRow puts a done "web"+"hls" profile row in the last slot of
// rows (a copy of the valid row, which is then ignored) with its outputs:
// an MP4, a thumbnail and an HLS folder; change alters the end state.
func addProfileRow(rows []Row, o *Observed, change func(*Observed)) {
	rows[len(rows)-1] = Row{ID: "profile-0", Kind: KindProfile, Name: "pr/v.mp4", ETag: "e9", Key: "k9", Profile: "web",
		Outputs: []string{"pr/v-720.mp4", "pr/v.jpg", "pr/v/hls/master.m3u8"}, folders: []string{"pr/v/hls/"},
		expect: media.Expect{Outcome: media.Done}}
	// The overwrite pair's second row is replaced: its first row is then
	// alone on its output, done; keep that consistent.
	delete(o.Records, "k6")
	o.Records["k5"] = records.Record{Key: "k5", State: records.StateInputMissing, Reason: "input_missing: the input changed"}
	delete(o.Outputs, "o/w.mp3")
	o.Records["k9"] = records.Record{Key: "k9", State: records.StateDone}
	for _, n := range []string{"pr/v-720.mp4", "pr/v.jpg", "pr/v/hls/master.m3u8", "pr/v/hls/720p/index.m3u8", "pr/v/hls/720p/seg-0.ts"} {
		o.Outputs[n] = OutputBlob{Size: 10}
	}
	if change != nil {
		change(o)
	}
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(rows []Row, obs *Observed)
		want   map[string]int // invariant → count; all others 0
	}{
		{"clean run", func([]Row, *Observed) {}, nil},
		{"no record at all", func(_ []Row, o *Observed) { delete(o.Records, "k1") },
			map[string]int{"lost": 1}},
		{"record stuck in dispatched", func(_ []Row, o *Observed) {
			o.Records["k1"] = records.Record{Key: "k1", State: records.StateDispatched}
		}, map[string]int{"lost": 1}},
		{"done but output missing", func(_ []Row, o *Observed) { delete(o.Outputs, "v/a.mp3") },
			map[string]int{"lost": 1, "wrongly_deleted_inputs": 1}},
		{"output of the wrong length", func(_ []Row, o *Observed) {
			o.Outputs["v/a.mp3"] = OutputBlob{Size: 1, Duration: 1500 * time.Millisecond}
		}, map[string]int{"invalid_outputs": 1}},
		{"output unreadable", func(_ []Row, o *Observed) {
			o.Outputs["v/a.mp3"] = OutputBlob{Size: 1, Err: errors.New("2 streams")}
		}, map[string]int{"invalid_outputs": 1, "wrongly_deleted_inputs": 1}},
		{"valid input failed", func(_ []Row, o *Observed) {
			o.Records["k1"] = records.Record{Key: "k1", State: records.StateFailed, Reason: "task_failed: exit code 137"}
			delete(o.Outputs, "v/a.mp3")
			o.Quarantine["v/a.mp4"] = "e1"
		}, map[string]int{"wrong_outcome": 1}},
		{"poison converted", func(_ []Row, o *Observed) {
			o.Records["k2"] = records.Record{Key: "k2", State: records.StateDone, Output: records.Blob{Blob: "p/t.mp3"}}
			o.Outputs["p/t.mp3"] = OutputBlob{Size: 1, Duration: time.Second}
		}, map[string]int{"wrong_outcome": 1}},
		{"poison failed for another reason", func(_ []Row, o *Observed) {
			o.Records["k2"] = records.Record{Key: "k2", State: records.StateFailed, Reason: "task_failed: exit code 1"}
		}, map[string]int{"wrong_outcome": 1}},
		{"partial output of a failure", func(_ []Row, o *Observed) {
			o.Outputs["p/t.mp3"] = OutputBlob{Size: 1, Duration: time.Second}
		}, map[string]int{"unexpected_outputs": 1}},
		{"ignored input got a record", func(_ []Row, o *Observed) {
			o.Records["k3"] = records.Record{Key: "k3", State: records.StateFailed}
		}, map[string]int{"wrong_outcome": 1}},
		{"failed input deleted", func(_ []Row, o *Observed) { delete(o.Quarantine, "p/t.mp4") },
			map[string]int{"wrongly_deleted_inputs": 1}},
		{"ignored input deleted", func(_ []Row, o *Observed) { delete(o.Inputs, "p/c.mov") },
			map[string]int{"wrongly_deleted_inputs": 1}},
		{"newer upload deleted by the old sweep", func(_ []Row, o *Observed) {
			o.Records["k6"] = records.Record{Key: "k6", State: records.StateInputMissing, Reason: "input_missing"}
		}, map[string]int{"wrong_outcome": 1, "wrongly_deleted_inputs": 1}},
		{"overwrite: old version's output won", func(_ []Row, o *Observed) {
			o.Outputs["o/w.mp3"] = OutputBlob{Size: 1, Duration: 2 * time.Second}
		}, map[string]int{"wrong_outcome": 1}},
		{"overwrite: old version never dispatched", func(_ []Row, o *Observed) {
			o.Records["k5"] = records.Record{Key: "k5", State: records.StateInputMissing, Reason: "input_missing: the input changed"}
		}, nil},
		{"deleted input converted after all", func(_ []Row, o *Observed) {
			o.Records["k4"] = records.Record{Key: "k4", State: records.StateDone, Output: records.Blob{Blob: "d/x.mp3"}}
			o.Outputs["d/x.mp3"] = OutputBlob{Size: 1, Duration: time.Second}
		}, map[string]int{"wrong_outcome": 1}},
		{"done overwritten by a late duplicate", func(_ []Row, o *Observed) {
			o.Records["k1"] = records.Record{Key: "k1", State: records.StateInputMissing, Reason: "input_missing"}
		}, map[string]int{"wrong_outcome": 1, "unexpected_outputs": 1, "wrongly_deleted_inputs": 1}},
		{"output nobody asked for", func(_ []Row, o *Observed) {
			o.Outputs["stray.mp3"] = OutputBlob{Size: 1, Duration: time.Second}
		}, map[string]int{"unexpected_outputs": 1}},
		{"record nobody asked for", func(_ []Row, o *Observed) {
			o.Records["zz"] = records.Record{Key: "zz", State: records.StateDone}
		}, map[string]int{"unexpected_outputs": 1}},
		{"superseded upload's record", func(rows []Row, o *Observed) {
			rows[0].superseded = []string{"old"}
			o.Records["old"] = records.Record{Key: "old", State: records.StateInputMissing}
		}, nil},
		{"unknown earlier upload of a ledger name refused", func(_ []Row, o *Observed) {
			o.Records["k1-lost-answer"] = records.Record{Key: "k1-lost-answer", State: records.StateInputMissing, Source: records.Blob{Blob: "v/a.mp4"}}
		}, nil},
		{"unknown earlier upload of a ledger name converted", func(_ []Row, o *Observed) {
			// Seen under load: an 8 MiB upload stored after its attempt
			// timed out; the retry stored the same bytes again.
			o.Records["k1-lost-answer"] = records.Record{Key: "k1-lost-answer", State: records.StateDone,
				Source: records.Blob{Blob: "v/a.mp4"}, Output: records.Blob{Blob: "v/a.mp3"}}
		}, nil},
		{"unknown earlier upload of a ledger name converted elsewhere", func(_ []Row, o *Observed) {
			o.Records["k1-lost-answer"] = records.Record{Key: "k1-lost-answer", State: records.StateDone,
				Source: records.Blob{Blob: "v/a.mp4"}, Output: records.Blob{Blob: "v/other.mp3"}}
		}, map[string]int{"unexpected_outputs": 1}},
		{"terminal record lost by an Azurite rollback", func(_ []Row, o *Observed) {
			delete(o.Records, "k4")
			w := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			o.TerminalWrites = map[string][]time.Time{"k4": {w}}
			o.StorageKills = []time.Time{w.Add(-time.Minute), w.Add(3 * time.Second)}
		}, map[string]int{"lost_to_storage_rollback": 1}},
		{"terminal record missing long before an Azurite kill", func(_ []Row, o *Observed) {
			delete(o.Records, "k4")
			w := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			o.TerminalWrites = map[string][]time.Time{"k4": {w}}
			o.StorageKills = []time.Time{w.Add(-time.Second), w.Add(10 * time.Minute)}
		}, map[string]int{"lost": 1}},
		{"output lost by an Azurite rollback before Sweep recorded it", func(_ []Row, o *Observed) {
			outputLostAt(o, 4*time.Second, 4*time.Second, time.Second)
		}, map[string]int{"lost_to_storage_rollback": 1}},
		{"output lost by an Azurite rollback while Sweep was writing the record", func(_ []Row, o *Observed) {
			// Seen in a run: Sweep began the record (swept) just before the
			// kill; the write itself landed after the restart (updated).
			outputLostAt(o, 360*time.Millisecond, 3300*time.Millisecond, 400*time.Millisecond)
		}, map[string]int{"lost_to_storage_rollback": 1}},
		{"output lost by an Azurite rollback, the record's PUT retried after the restart (a later second)", func(_ []Row, o *Observed) {
			// Seen in a run (seed 7): the record was stamped just before
			// the kill, its PUT failed against the dying Azurite and the
			// storage client sent it again after the restart.
			ms := time.Millisecond
			outputLostInFlight(o, 4450*ms, 5300*ms, 5310*ms, 4500*ms, 5200*ms)
		}, map[string]int{"lost_to_storage_rollback": 1}},
		{"output lost by an Azurite rollback, the record's PUT retried after the restart (the kill's second)", func(_ []Row, o *Observed) {
			ms := time.Millisecond
			outputLostInFlight(o, 4050*ms, 4800*ms, 4810*ms, 4100*ms, 4700*ms)
		}, map[string]int{"lost_to_storage_rollback": 1}},
		{"output missing, record written in the kill's second but logged before the restart", func(_ []Row, o *Observed) {
			ms := time.Millisecond
			outputLostInFlight(o, 4300*ms, 4350*ms, 4400*ms, 4600*ms, 5500*ms)
		}, map[string]int{"lost": 1, "wrongly_deleted_inputs": 1}},
		{"output missing, record written a second before the kill, logged late", func(_ []Row, o *Observed) {
			// The host's log line comes after the event publish and the
			// task delete, which can wait out the outage: it does not
			// move a write Azurite dates before the kill's second.
			ms := time.Millisecond
			outputLostInFlight(o, 4300*ms, 4350*ms, 6000*ms, 5500*ms, 6000*ms)
		}, map[string]int{"lost": 1, "wrongly_deleted_inputs": 1}},
		{"output missing, record stamped before the kill, write time unknown", func(_ []Row, o *Observed) {
			ms := time.Millisecond
			outputLostInFlight(o, 4050*ms, 4800*ms, 4810*ms, 4100*ms, 4700*ms)
			o.RecordModified = nil
		}, map[string]int{"lost": 1, "wrongly_deleted_inputs": 1}},
		{"output missing, Azurite never started again", func(_ []Row, o *Observed) {
			ms := time.Millisecond
			outputLostInFlight(o, 4050*ms, 4800*ms, 4810*ms, 4100*ms, 4700*ms)
			o.StorageRestarts = []time.Time{{}}
		}, map[string]int{"lost": 1, "wrongly_deleted_inputs": 1}},
		{"overwrite: the newest output rolled back to the old version's", func(_ []Row, o *Observed) {
			o.Outputs["o/w.mp3"] = OutputBlob{Size: 1, Duration: 2 * time.Second}
			rolledBackAfter(o, "k6", time.Second)
		}, map[string]int{"lost_to_storage_rollback": 1}},
		{"overwrite: old version's output, Azurite killed before the task ended", func(_ []Row, o *Observed) {
			o.Outputs["o/w.mp3"] = OutputBlob{Size: 1, Duration: 2 * time.Second}
			rolledBackAfter(o, "k6", -time.Second)
		}, map[string]int{"wrong_outcome": 1}},
		{"poison failed, its stderr rolled back before Sweep read it", func(_ []Row, o *Observed) {
			o.Records["k2"] = records.Record{Key: "k2", State: records.StateFailed, Reason: "task_failed: exit code 1"}
			rolledBackAfter(o, "k2", 20*time.Millisecond)
		}, map[string]int{"lost_to_storage_rollback": 1}},
		{"poison done, Azurite killed after its task: still wrong", func(_ []Row, o *Observed) {
			o.Records["k2"] = records.Record{Key: "k2", State: records.StateDone, Output: records.Blob{Blob: "p/t.mp3"}}
			o.Outputs["p/t.mp3"] = OutputBlob{Size: 1, Duration: time.Second}
			rolledBackAfter(o, "k2", time.Second)
		}, map[string]int{"wrong_outcome": 1}},
		{"output missing, Azurite killed only after the record", func(_ []Row, o *Observed) {
			// A rollback that undid the output undoes the later record too.
			outputLostAt(o, time.Second, time.Second, 2*time.Second)
		}, map[string]int{"lost": 1, "wrongly_deleted_inputs": 1}},
		{"output missing, Azurite killed before the task ended", func(_ []Row, o *Observed) {
			outputLostAt(o, time.Second, time.Second, -time.Second)
		}, map[string]int{"lost": 1, "wrongly_deleted_inputs": 1}},
		{"output of a superseded upload that converted", func(rows []Row, o *Observed) {
			rows[1].superseded = []string{"k2-old"}
			o.Records["k2-old"] = records.Record{Key: "k2-old", State: records.StateDone, Output: records.Blob{Blob: "p/t.mp3"}}
			o.Outputs["p/t.mp3"] = OutputBlob{Size: 1, Duration: time.Second}
		}, map[string]int{"unexpected_outputs": 0}},
		{"one output for two keys", func(rows []Row, o *Observed) {
			rows[1].Output = "v/a.mp3"
			o.Records["k2"] = records.Record{Key: "k2", State: records.StateDone, Output: records.Blob{Blob: "v/a.mp3"}}
			rows[1].expect = media.Expect{Outcome: media.Done}
		}, map[string]int{"duplicate_outputs": 1, "wrongly_deleted_inputs": 0}},
		{"dead letter without a record", func(_ []Row, o *Observed) {
			o.DLQ = []DeadLetter{{MessageID: "nope", Reason: "MaxDeliveryCountExceeded"}}
		}, map[string]int{"dlq_unresolved": 1}},
		{"dead letter of finished work", func(_ []Row, o *Observed) {
			o.DLQ = []DeadLetter{{MessageID: "k1", Reason: "MaxDeliveryCountExceeded"}}
		}, nil},
		{"profile: every output there", func(rows []Row, o *Observed) { addProfileRow(rows, o, nil) }, nil},
		{"profile: one output missing", func(rows []Row, o *Observed) {
			addProfileRow(rows, o, func(o *Observed) { delete(o.Outputs, "pr/v.jpg") })
		}, map[string]int{"lost": 1, "wrongly_deleted_inputs": 1}},
		{"profile: an output does not verify", func(rows []Row, o *Observed) {
			addProfileRow(rows, o, func(o *Observed) { o.Outputs["pr/v-720.mp4"] = OutputBlob{Size: 1, Err: errors.New("no video stream")} })
		}, map[string]int{"invalid_outputs": 1, "wrongly_deleted_inputs": 1}},
		{"profile: a segment outside every HLS folder", func(rows []Row, o *Observed) {
			addProfileRow(rows, o, func(o *Observed) { o.Outputs["pr/other/hls/720p/seg-0.ts"] = OutputBlob{Size: 1} })
		}, map[string]int{"unexpected_outputs": 1}},
		{"profile: failed, with an output left", func(rows []Row, o *Observed) {
			addProfileRow(rows, o, func(o *Observed) {
				o.Records["k9"] = records.Record{Key: "k9", State: records.StateFailed, Reason: "decode_error"}
				o.Quarantine["pr/v.mp4"] = "e9"
			})
		}, map[string]int{"wrong_outcome": 1, "unexpected_outputs": 3}},
		{"task still running at the drain's cap", func(_ []Row, o *Observed) {
			o.Records["k1"] = records.Record{Key: "k1", State: records.StateQueued}
			delete(o.Outputs, "v/a.mp3")
			o.Inputs["v/a.mp4"] = "e1"
			o.InFlight = map[string]bool{"k1": true}
		}, map[string]int{"unfinished": 1}},
		{"no record, event delivery in flight at the cap", func(_ []Row, o *Observed) {
			delete(o.Records, "k1")
			delete(o.Outputs, "v/a.mp3")
			o.Inputs["v/a.mp4"] = "e1"
			o.InFlight, o.DeliveriesInFlight = map[string]bool{}, true
		}, map[string]int{"unfinished": 1}},
		{"cap reached, but nothing in flight for the row", func(_ []Row, o *Observed) {
			o.Records["k1"] = records.Record{Key: "k1", State: records.StateQueued}
			delete(o.Outputs, "v/a.mp3")
			o.Inputs["v/a.mp4"] = "e1"
			o.InFlight, o.DeliveriesInFlight = map[string]bool{"k2": true}, true
		}, map[string]int{"lost": 1}},
		{"drain ended quiescent: a task left is lost", func(_ []Row, o *Observed) {
			o.Records["k1"] = records.Record{Key: "k1", State: records.StateQueued}
			delete(o.Outputs, "v/a.mp3")
			o.Inputs["v/a.mp4"] = "e1"
			o.InFlight = nil
		}, map[string]int{"lost": 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows, obs := baseline()
			tt.mutate(rows, &obs)
			if tt.name == "one output for two keys" {
				// The poison row is kept in quarantine in the baseline; the
				// mutation makes it done, so its input is legitimately gone.
				delete(obs.Quarantine, "p/t.mp4")
			}
			res := Check(rows, obs, media.DefaultTolerance)
			got := map[string]int{
				"lost": res.Lost, "duplicate_outputs": res.DuplicateOutputs, "unexpected_outputs": res.UnexpectedOutputs,
				"wrongly_deleted_inputs": res.WronglyDeletedInputs, "wrong_outcome": res.WrongOutcome,
				"invalid_outputs": res.InvalidOutputs, "dlq_unresolved": res.DLQUnresolved,
				"lost_to_storage_rollback": res.LostToStorageRollback, "unfinished": res.Unfinished,
			}
			for inv, n := range got {
				if n != tt.want[inv] {
					t.Errorf("%s = %d, want %d; findings: %+v", inv, n, tt.want[inv], res.Findings)
				}
			}
			// A storage rollback and an unfinished row are reported
			// apart: they are not breaches.
			onlyRollback := len(tt.want) == 1 && (tt.want["lost_to_storage_rollback"] > 0 || tt.want["unfinished"] > 0)
			if want := 0; (len(tt.want) == 0 || onlyRollback) && res.Breaches() != want {
				t.Errorf("Breaches() = %d, want %d", res.Breaches(), want)
			}
		})
	}
}

// TestLostFindingTimes: a done record with a missing output is reported
// with the times that decide whether a rollback explains it.
func TestLostFindingTimes(t *testing.T) {
	rows, obs := baseline()
	ms := time.Millisecond
	outputLostInFlight(&obs, 4300*ms, 4350*ms, 4400*ms, 4600*ms, 5500*ms)
	res := Check(rows, obs, media.DefaultTolerance)
	want := "task ended 00:00:00.000, record stamped 00:00:04.300, modified 00:00:04.000, logged 00:00:04.400; Azurite killed 00:00:04.600 (up 00:00:05.500)"
	for _, f := range res.Findings {
		if f.Invariant == "lost" {
			if !strings.Contains(f.Detail, want) {
				t.Errorf("lost finding %q, want it to contain %q", f.Detail, want)
			}
			return
		}
	}
	t.Fatalf("no lost finding; findings: %+v", res.Findings)
}

func TestParseBatchLog(t *testing.T) {
	log := strings.Join([]string{
		`time=2026-11-21T06:00:00Z level=INFO msg="batch task running" job=ffpipe task=abc node=n1 retryCount=0 requeueCount=0`,
		`time=2026-11-21T06:00:01Z level=INFO msg="batch task retrying" job=ffpipe task=abc exitCode=137 retryCount=1`,
		`time=2026-11-21T06:00:01Z level=INFO msg="batch task running" job=ffpipe task=abc node=n1 retryCount=1 requeueCount=0`,
		`time=2026-11-21T06:00:02Z level=INFO msg="batch task requeued" job=ffpipe task=ABC requeueCount=1`,
		`time=2026-11-21T06:00:03Z level=INFO msg="batch task running" job=ffpipe task=abc node=n2 retryCount=1 requeueCount=1`,
		`time=2026-11-21T06:00:03Z level=INFO msg="batch task running" job=ffpipe task=def node=n2 retryCount=0 requeueCount=0`,
		`time=2026-11-21T06:00:04Z level=INFO msg="batch task completed" job=ffpipe task=def result=success`,
		`garbage line`,
	}, "\n")
	got, err := ParseBatchLog(strings.NewReader(log))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]TaskAttempts{"abc": {Runs: 3, Retries: 1, Requeues: 1}, "def": {Runs: 1}}
	if len(got) != len(want) {
		t.Fatalf("got %d tasks (%v), want %d", len(got), got, len(want))
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("task %s: got %+v, want %+v", k, got[k], w)
		}
	}
}

func TestScanSecrets(t *testing.T) {
	lits := map[string]string{"account key": "S3CRETKEY==", "token": "tok-123"}
	tests := []struct {
		line string
		want int
	}{
		{`msg="upload" url="http://127.0.0.1/c/b?sv=2021&sig=abcDEF%2B&se=x"`, 1},
		{`msg="upload" url="http://127.0.0.1/c/b?sv=2021&sig=REDACTED&se=x"`, 0},
		{`conn="Endpoint=sb://h;SharedAccessKeyName=Root;SharedAccessKey=abc;"`, 1},
		{`conn="Endpoint=sb://h;SharedAccessKeyName=Root;SharedAccessKey=REDACTED;"`, 0},
		{`AccountName=dev;AccountKey=xyz==;BlobEndpoint=http://x`, 1},
		{`AccountKey=***`, 0},
		{`the key is S3CRETKEY== oops`, 1},
		{`Authorization: Bearer tok-123`, 1},
		{`msg="task failed" code=BlobNotFound exitCode=1`, 0},
		{`sig= and nothing`, 0},
		{`a sig=one and sig=two`, 2},
	}
	for _, tt := range tests {
		got, n, err := ScanSecrets("x.log", strings.NewReader(tt.line), lits)
		if err != nil || n != 1 {
			t.Fatalf("ScanSecrets(%q): %d lines, %v", tt.line, n, err)
		}
		if len(got) != tt.want {
			t.Errorf("ScanSecrets(%q) = %q, want %d findings", tt.line, got, tt.want)
		}
		for _, f := range got {
			for _, l := range lits {
				if strings.Contains(f, l) {
					t.Errorf("finding %q repeats the secret", f)
				}
			}
		}
	}
}

func TestParseTerminalWrites(t *testing.T) {
	log := strings.Join([]string{
		`time=2026-11-21T06:33:55.099Z level=INFO msg="time=2026-11-21T06:33:55.098Z level=INFO msg=\"task settled\" function=Sweep key=7dcdb7dc15f0a2be98e6f21496a452eb correlationId=a blob=valid/clip-184.mp4 state=done reason=\"\"" component=handler`,
		`time=2026-11-21T06:34:00.013Z level=INFO msg="time=2026-11-21T06:34:00.013Z level=WARN msg=\"task failed\" function=Sweep key=9127286eae70ddd71f32a73d1197abb6 correlationId=b blob=valid/clip-470.mp4 reason=\"no_output\"" component=handler`,
		`time=2026-11-21T06:33:58.559Z level=INFO msg="time=2026-11-21T06:33:58.559Z level=INFO msg=refused function=Dispatch key=c9c9cc387a998d084eda04fb0bbbba46 correlationId=c state=input_missing reason=\"input_missing\"" component=handler`,
		`time=2026-11-21T06:33:58.600Z level=INFO msg="time=2026-11-21T06:33:58.600Z level=INFO msg=\"task added\" function=Dispatch key=0000000000000000000000000000000a existed=false" component=handler`,
		`time=2026-11-21T06:33:58.700Z level=INFO msg="sweep: 1 completed tasks (1 done, 0 failed), 0 inputs re-enqueued" function=Sweep`,
	}, "\n")
	got, err := ParseTerminalWrites(strings.NewReader(log))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"7dcdb7dc15f0a2be98e6f21496a452eb": "2026-11-21T06:33:55.099Z",
		"9127286eae70ddd71f32a73d1197abb6": "2026-11-21T06:34:00.013Z",
		"c9c9cc387a998d084eda04fb0bbbba46": "2026-11-21T06:33:58.559Z",
	}
	if len(got) != len(want) {
		t.Fatalf("got %d keys (%v), want %d", len(got), got, len(want))
	}
	for k, w := range want {
		if len(got[k]) != 1 || got[k][0].Format("2006-01-02T15:04:05.000Z") != w {
			t.Errorf("key %s: got %v, want [%s]", k, got[k], w)
		}
	}
}
