package records

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/ffpipe/ffpipe/internal/emulator/azurite/azuritetest"
	"github.com/ffpipe/ffpipe/internal/storage"
)

func TestRecordsAgainstAzurite(t *testing.T) {
	az := azuritetest.Start(t)
	blobs, err := storage.NewFromConnectionString(az.ConnectionString(), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := blobs.EnsureContainer(ctx, "status"); err != nil {
		t.Fatal(err)
	}
	clock := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	var clockMu sync.Mutex
	s := New(blobs, "status", func() time.Time {
		clockMu.Lock()
		defer clockMu.Unlock()
		clock = clock.Add(time.Second)
		return clock
	})

	ev := time.Date(2026, 3, 1, 8, 59, 0, 0, time.UTC)
	code := 1
	want := Record{
		Key:           "0123456789abcdef0123456789abcdef",
		Source:        Blob{Container: "input", Blob: "videos/a b.mp4", ETag: "0x8DC", Size: 1234},
		Output:        Blob{Container: "output", Blob: "videos/a b.mp3"},
		Preset:        "mp3",
		State:         StateFailed,
		Reason:        "exit code 1: moov atom not found",
		ExitCode:      &code,
		Attempts:      2,
		Timings:       Timings{Event: &ev},
		CorrelationID: "corr-1",
	}
	t.Run("round trip", func(t *testing.T) {
		if err := s.Put(ctx, want); err != nil {
			t.Fatal(err)
		}
		got, err := s.Get(ctx, want.Key)
		if err != nil {
			t.Fatal(err)
		}
		want.Updated = got.Updated
		if got.Updated.IsZero() {
			t.Errorf("Updated not stamped")
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("got %+v, want %+v", got, want)
		}
		if _, err := s.Get(ctx, "ffffffffffffffffffffffffffffffff"); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get(missing): got %v, want ErrNotFound", err)
		}
	})
	t.Run("terminal states are not overwritten by late updates", func(t *testing.T) {
		got, err := s.Update(ctx, want.Key, func(old Record, found bool) Record {
			if !found {
				t.Errorf("found: got false, want true")
			}
			old.State = StateDispatched
			return old
		})
		if err != nil {
			t.Fatal(err)
		}
		if got.State != StateFailed {
			t.Errorf("state after late dispatched: got %s, want failed", got.State)
		}
		stored, _ := s.Get(ctx, want.Key)
		if stored.State != StateFailed {
			t.Errorf("stored state: got %s, want failed", stored.State)
		}
		// A new key is created.
		got, err = s.Update(ctx, "00000000000000000000000000000001", func(old Record, found bool) Record {
			if found {
				t.Errorf("found: got true, want false")
			}
			return Record{State: StateQueued}
		})
		if err != nil || got.State != StateQueued || got.Key != "00000000000000000000000000000001" {
			t.Errorf("Update(new): got %+v, %v", got, err)
		}
	})
	t.Run("concurrent updates lose nothing", func(t *testing.T) {
		key := "00000000000000000000000000000009"
		const writers = 8
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		for range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := s.Update(ctx, key, func(old Record, _ bool) Record {
					old.State = StateDispatched
					old.Attempts++
					return old
				})
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if got := mustGet(t, s, key).Attempts; got != writers {
			t.Errorf("attempts: got %d, want %d (no lost update)", got, writers)
		}
		// A late non-terminal writer racing a terminal one never wins.
		_, _ = s.Update(ctx, key, func(old Record, _ bool) Record { old.State = StateDone; return old })
		_, _ = s.Update(ctx, key, func(old Record, _ bool) Record { old.State = StateDispatched; return old })
		if got := mustGet(t, s, key).State; got != StateDone {
			t.Errorf("state: got %s, want done", got)
		}
		_ = s.Put(ctx, Record{Key: key, State: StateDone}) // reset Attempts noise for the summary below
	})
	t.Run("summary", func(t *testing.T) {
		_ = s.Put(ctx, Record{Key: "00000000000000000000000000000002", State: StateDone})
		_ = s.Put(ctx, Record{Key: "00000000000000000000000000000003", State: StateDone})
		sum, err := s.Summarize(ctx, 2)
		if err != nil {
			t.Fatal(err)
		}
		wantCounts := map[State]int{StateFailed: 1, StateQueued: 1, StateDone: 3}
		if !reflect.DeepEqual(sum.Counts, wantCounts) || sum.Total != 5 {
			t.Errorf("counts: got %v (total %d), want %v (total 5)", sum.Counts, sum.Total, wantCounts)
		}
		if len(sum.Recent) != 2 || sum.Recent[0].Key != "00000000000000000000000000000003" {
			t.Errorf("recent: got %+v, want the 2 newest, 3 first", sum.Recent)
		}
	})
	t.Run("UpdateNew creates, and falls back to Update when a record exists", func(t *testing.T) {
		const fresh, done = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa2"
		dispatched := func(old Record, found bool) Record {
			old.State = StateDispatched
			old.Attempts++
			return old
		}
		got, err := s.UpdateNew(ctx, fresh, dispatched)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != StateDispatched || got.Attempts != 1 || mustGet(t, s, fresh).State != StateDispatched {
			t.Errorf("new key: got %s attempts %d, want dispatched attempts 1", got.State, got.Attempts)
		}
		if err := s.Put(ctx, Record{Key: done, State: StateDone, Attempts: 1}); err != nil {
			t.Fatal(err)
		}
		got, err = s.UpdateNew(ctx, done, dispatched)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != StateDone || mustGet(t, s, done).State != StateDone {
			t.Errorf("existing done record: got %s, stored %s; want done kept", got.State, mustGet(t, s, done).State)
		}
	})
}

func mustGet(t *testing.T, s *Store, key string) Record {
	t.Helper()
	r, err := s.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestTerminal(t *testing.T) {
	for _, s := range States {
		want := s != StateQueued && s != StateDispatched
		if got := s.Terminal(); got != want {
			t.Errorf("%s.Terminal(): got %v, want %v", s, got, want)
		}
	}
}

func TestStateReplaces(t *testing.T) {
	all := States
	allowed := map[State][]State{
		StateQueued:       all,
		StateDispatched:   all,
		StateDone:         {StateDone},
		StateFailed:       {StateFailed, StateDone},
		StateInputMissing: {StateDone, StateFailed, StateInputMissing, StateBadRequest, StateRejected},
		StateBadRequest:   {StateDone, StateFailed, StateInputMissing, StateBadRequest, StateRejected},
		StateRejected:     {StateDone, StateFailed, StateInputMissing, StateBadRequest, StateRejected},
	}
	for _, old := range all {
		for _, next := range all {
			want := false
			for _, a := range allowed[old] {
				if a == next {
					want = true
				}
			}
			if got := old.Replaces(next); got != want {
				t.Errorf("%s.Replaces(%s): got %v, want %v", old, next, got, want)
			}
		}
	}
}

func TestInFlight(t *testing.T) {
	created := time.Date(2026, 3, 1, 10, 0, 0, 0, time.FixedZone("x", 3600))
	queued := Record{Key: "k", State: StateQueued, Source: Blob{Container: "input", Blob: "a.mp4"}, CorrelationID: "c"}
	for name, tc := range map[string]struct {
		rec     Record
		state   string
		started time.Time
	}{
		"no record, active task":   {Record{}, "active", time.Time{}},
		"queued record, running":   {queued, "running", created.Add(time.Second)},
		"queued record, completed": {queued, "completed", created.Add(time.Second)},
	} {
		t.Run(name, func(t *testing.T) {
			got := tc.rec.InFlight("k", tc.state, created, tc.started)
			if got.Key != "k" || got.State != StateDispatched || got.Reason != "batch task "+tc.state || got.Source != tc.rec.Source || got.CorrelationID != tc.rec.CorrelationID {
				t.Errorf("got %+v", got)
			}
			if got.Timings.Dispatched == nil || !got.Timings.Dispatched.Equal(created) || got.Timings.Dispatched.Location() != time.UTC {
				t.Errorf("dispatched: got %v, want %v in UTC", got.Timings.Dispatched, created)
			}
			if (got.Timings.Started != nil) != !tc.started.IsZero() {
				t.Errorf("started: got %v, want %v", got.Timings.Started, tc.started)
			}
		})
	}
}
