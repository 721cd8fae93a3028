package store

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// view is the observable state of an entity, without lock details (locks
// are not durable).
type view struct {
	Seq         int64
	Body        string
	State       State
	Count       uint32
	Reason      string
	Enqueued    time.Time
	Expires     time.Time
	Scheduled   time.Time
	TTL         time.Duration
	MessageID   string
	Description string
}

func viewOf(t *testing.T, q *Queue) []view {
	t.Helper()
	msgs, err := q.Peek(1, 1<<20)
	ok(t, err)
	out := []view{}
	for _, m := range msgs {
		out = append(out, view{m.SequenceNumber, string(m.Body), m.State, m.DeliveryCount, m.DeadLetterReason,
			m.EnqueuedAt.UTC(), m.ExpiresAt.UTC(), m.ScheduledAt.UTC(), m.TTL, m.MessageID, m.DeadLetterDescription})
	}
	return out
}

func viewDLQ(t *testing.T, e *env) []Message {
	msgs, err := e.dlq.Peek(1, 100)
	ok(t, err)
	return msgs
}

func (e *env) logPath() string { return filepath.Join(e.opts.Dir, logName) }

// populate puts the queue through every kind of durable change. Afterwards
// the main queue holds: 3 "abandon+p" (count 2, available), 4 "defer"
// (deferred), 6 "expire" (count 1, available), 8 "locked" (locked, count 0),
// 9 "scheduled"; the DLQ holds 5 "dead+d" and 7 "max".
func populate(t *testing.T, e *env) {
	var in []Incoming
	for _, b := range []string{"rad", "complete", "abandon", "defer", "dead", "expire", "max", "locked"} {
		in = append(in, Incoming{Body: []byte(b), MessageID: "id-" + b})
	}
	e.sendIn(e.q, in...)
	e.sendIn(e.q,
		Incoming{Body: []byte("scheduled"), ScheduledAt: e.clock.Now().Add(time.Hour)},
		Incoming{Body: []byte("cancelled"), ScheduledAt: e.clock.Now().Add(time.Hour)},
	)
	if got := bodies(e.recv(e.q, 1, ReceiveAndDelete)); got != "rad" {
		t.Fatalf("RAD got %q, want rad", got)
	}
	msgs := e.recv(e.q, 4, PeekLock)
	if got := bodies(msgs); got != "complete,abandon,defer,dead" {
		t.Fatalf("got %q", got)
	}
	ok(t, e.q.Complete(bg, msgs[0].LockToken))
	ok(t, e.q.Abandon(bg, msgs[1].LockToken, setProp("p")))
	ok(t, e.q.Defer(bg, msgs[2].LockToken, nil))
	ok(t, e.q.DeadLetter(bg, msgs[3].LockToken, "why", "because", setProp("d")))
	if got := bodies(e.recv(e.q, 2, PeekLock)); got != "abandon+p,expire" {
		t.Fatalf("got %q", got) // both locks will lapse
	}
	for i := 0; i < 3; i++ {
		m := e.recvOne(e.q)
		if string(m.Body) != "max" {
			t.Fatalf("got %q, want max", m.Body)
		}
		ok(t, e.q.Abandon(bg, m.LockToken, nil))
	}
	e.clock.Advance(31 * time.Second)
	msgs = e.recv(e.q, 3, PeekLock)
	if got := bodies(msgs); got != "abandon+p,expire,locked" {
		t.Fatalf("got %q", got)
	}
	ok(t, e.q.Release(bg, msgs[0].LockToken))
	ok(t, e.q.Release(bg, msgs[1].LockToken))
	ok(t, e.q.CancelScheduled(bg, []int64{10}))
}

func TestDurableRecovery(t *testing.T) {
	for _, compact := range []bool{false, true} {
		t.Run(fmt.Sprintf("compact=%v", compact), func(t *testing.T) {
			e := newEnv(t, t.TempDir(), func(c *QueueConfig) { c.RequiresDuplicateDetection = true })
			populate(t, e)
			if compact {
				ok(t, e.s.Compact(bg))
			}
			ok(t, e.s.Sync(bg))
			wantMain, wantDLQ := viewOf(t, e.q), viewOf(t, e.dlq)
			if len(wantMain) == 0 || len(wantDLQ) == 0 {
				t.Fatalf("populate left main %v dlq %v", wantMain, wantDLQ)
			}
			e.reopen()
			gotMain, gotDLQ := viewOf(t, e.q), viewOf(t, e.dlq)
			if !reflect.DeepEqual(gotMain, wantMain) {
				t.Errorf("main after reopen:\n got %+v\nwant %+v", gotMain, wantMain)
			}
			if !reflect.DeepEqual(gotDLQ, wantDLQ) {
				t.Errorf("DLQ after reopen:\n got %+v\nwant %+v", gotDLQ, wantDLQ)
			}
			// Locks are not durable: "locked" is available again, count unchanged.
			msgs := e.recv(e.q, 10, PeekLock)
			if got := bodies(msgs); got != "abandon+p,expire,locked" {
				t.Fatalf("available after reopen %q, want abandon+p,expire,locked", got)
			}
			if msgs[0].DeliveryCount != 2 || msgs[1].DeliveryCount != 1 || msgs[2].DeliveryCount != 0 {
				t.Errorf("counts %d %d %d, want 2 1 0", msgs[0].DeliveryCount, msgs[1].DeliveryCount, msgs[2].DeliveryCount)
			}
			if got := bodies(viewDLQ(t, e)); got != "dead+d,max" {
				t.Errorf("DLQ after reopen %q, want dead+d,max", got)
			}
			// Sequence numbers continue; duplicate detection survives.
			res, err := e.q.Send(bg, []Incoming{{Body: []byte("x"), MessageID: "id-complete"}, {Body: []byte("y")}})
			ok(t, err)
			if !res[0].Duplicate || res[1].SequenceNumber != 11 {
				t.Errorf("after reopen: %+v, want a duplicate and sequence 11", res)
			}
			// Scheduled message still activates.
			e.clock.Advance(time.Hour)
			found := false
			for _, m := range e.recv(e.q, 10, PeekLock) {
				found = found || string(m.Body) == "scheduled"
			}
			if !found {
				t.Errorf("scheduled message did not activate after reopen")
			}
		})
	}
}

func TestSequenceSurvivesEmptyQueue(t *testing.T) {
	for _, compact := range []bool{false, true} {
		t.Run(fmt.Sprintf("compact=%v", compact), func(t *testing.T) {
			e := newEnv(t, t.TempDir(), nil)
			e.send("a", "b", "c")
			if n := len(e.recv(e.q, 10, ReceiveAndDelete)); n != 3 {
				t.Fatalf("received %d, want 3", n)
			}
			if compact {
				ok(t, e.s.Compact(bg))
			}
			ok(t, e.s.Sync(bg))
			e.reopen()
			ok(t, e.s.Sync(bg))
			e.reopen()
			if got := e.send("d")[0]; got != 4 {
				t.Fatalf("sequence after reopen %d, want 4", got)
			}
		})
	}
}

// TestTornLastRecord cuts the log at every byte offset inside the last
// record (as kill -9 during a write can) and checks that recovery keeps
// everything before it and drops it cleanly.
func TestTornLastRecord(t *testing.T) {
	tests := []struct {
		name string
		last func(e *env)
		// wantBefore/wantAfter: bodies available without / with the last record
		wantBefore, wantAfter string
	}{
		{"send", func(e *env) { e.send("last") }, "a,b", "a,b,last"},
		{"batch send", func(e *env) { e.send("l1", "l2") }, "a,b", "a,b,l1,l2"},
		{"complete", func(e *env) {
			m := e.recvOne(e.q)
			ok(e.t, e.q.Complete(bg, m.LockToken))
		}, "a,b", "b"},
		{"dead-letter", func(e *env) {
			m := e.recvOne(e.q)
			ok(e.t, e.q.DeadLetter(bg, m.LockToken, "r", "", nil))
		}, "a,b", "b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			e := newEnv(t, dir, nil)
			e.send("a", "b")
			ok(t, e.s.Sync(bg))
			before, err := os.ReadFile(e.logPath())
			ok(t, err)
			tt.last(e)
			ok(t, e.s.Close())
			full, err := os.ReadFile(e.logPath())
			ok(t, err)
			if len(full) <= len(before) || !bytes.Equal(full[:len(before)], before) {
				t.Fatalf("log did not grow by appending: %d → %d bytes", len(before), len(full))
			}
			for cut := len(before); cut <= len(full); cut++ {
				cdir := t.TempDir()
				ok(t, os.WriteFile(filepath.Join(cdir, logName), full[:cut], 0o644))
				ce := &env{t: t, clock: e.clock, opts: e.opts}
				ce.opts.Dir = cdir
				ce.open()
				peek, err := ce.q.Peek(1, 100)
				ok(t, err)
				want := tt.wantBefore
				if cut == len(full) {
					want = tt.wantAfter
				}
				if got := bodies(peek); got != want {
					ce.s.Close()
					t.Fatalf("cut at %d of %d..%d: got %q, want %q", cut, len(before), len(full), got, want)
				}
				// The torn tail is gone and new records land after the good prefix.
				next := ce.send("new")
				ok(t, ce.s.Close())
				ce.open()
				peek, err = ce.q.Peek(next[0], 1)
				ok(t, err)
				if bodies(peek) != "new" {
					t.Fatalf("cut at %d: message sent after recovery lost, peek %q", cut, bodies(peek))
				}
				ok(t, ce.s.Close())
			}
		})
	}
}

func TestCorruptRecordStopsRecovery(t *testing.T) {
	dir := t.TempDir()
	e := newEnv(t, dir, nil)
	e.send("a")
	ok(t, e.s.Sync(bg))
	st, err := os.Stat(e.logPath())
	ok(t, err)
	e.send("b")
	e.send("c")
	ok(t, e.s.Close())
	data, err := os.ReadFile(e.logPath())
	ok(t, err)
	data[st.Size()+frameHeader+3] ^= 0xff // inside b's payload
	ok(t, os.WriteFile(e.logPath(), data, 0o644))
	e.open()
	peek, err := e.q.Peek(1, 10)
	ok(t, err)
	if bodies(peek) != "a" {
		t.Fatalf("after corruption got %q, want a", bodies(peek))
	}
	fi, err := os.Stat(e.logPath())
	ok(t, err)
	if fi.Size() != st.Size() {
		t.Errorf("log size %d after recovery, want truncated to %d", fi.Size(), st.Size())
	}
}

func TestOpenRejectsForeignFile(t *testing.T) {
	tests := []struct {
		name    string
		content string
		wantErr bool
	}{
		{"empty", "", false},
		{"partial header", logMagic[:3], false},
		{"header only", logMagic, false},
		{"foreign", "hello world, not a log", true},
		{"foreign short", "xy", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			ok(t, os.WriteFile(filepath.Join(dir, logName), []byte(tt.content), 0o644))
			s, err := Open(Options{Dir: dir})
			if (err != nil) != tt.wantErr {
				t.Fatalf("Open: got %v, want error %v", err, tt.wantErr)
			}
			if err == nil {
				q := mustQueue(t, s, DefaultQueueName)
				_, err := q.Send(bg, []Incoming{{Body: []byte("x")}})
				ok(t, err)
				ok(t, s.Close())
				data, _ := os.ReadFile(filepath.Join(dir, logName))
				if !bytes.HasPrefix(data, []byte(logMagic)) {
					t.Errorf("log does not start with the magic: %q", data[:min(len(data), 8)])
				}
			}
		})
	}
}

func TestUnknownQueueRecordsIgnored(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Options{Dir: dir, Config: &Config{Queues: []QueueConfig{{Name: "a"}, {Name: "b"}}}})
	ok(t, err)
	for _, n := range []string{"a", "b"} {
		_, err := mustQueue(t, s, n).Send(bg, []Incoming{{Body: []byte(n)}})
		ok(t, err)
	}
	ok(t, s.Close())
	s, err = Open(Options{Dir: dir, Config: &Config{Queues: []QueueConfig{{Name: "b"}}}})
	ok(t, err)
	defer s.Close()
	peek, err := mustQueue(t, s, "b").Peek(1, 10)
	ok(t, err)
	if bodies(peek) != "b" {
		t.Fatalf("queue b after reopen: %q", bodies(peek))
	}
}

func TestCompactionShrinksLog(t *testing.T) {
	dir := t.TempDir()
	e := newEnv(t, dir, func(c *QueueConfig) { c.RequiresDuplicateDetection = true })
	e.opts.CompactMinBytes = 8 << 10
	e.reopen()
	body := bytes.Repeat([]byte("x"), 200)
	for i := 0; i < 300; i++ {
		_, err := e.q.Send(bg, []Incoming{{Body: body, MessageID: fmt.Sprint("id-", i)}})
		ok(t, err)
		if i%30 != 29 {
			for _, m := range e.recv(e.q, 1, PeekLock) {
				ok(t, e.q.Complete(bg, m.LockToken))
			}
		}
	}
	ok(t, e.s.Sync(bg))
	if e.s.wal.compactions == 0 {
		t.Fatalf("no compaction after 300 sends and 290 completes")
	}
	fi, err := os.Stat(e.logPath())
	ok(t, err)
	if fi.Size() > 4*(8<<10) {
		t.Errorf("log is %d bytes after compaction, want at most %d", fi.Size(), 4*(8<<10))
	}
	want := viewOf(t, e.q)
	if len(want) != 10 {
		t.Fatalf("%d messages left, want 10", len(want))
	}
	e.reopen()
	if got := viewOf(t, e.q); !reflect.DeepEqual(got, want) {
		t.Fatalf("after compaction and reopen:\n got %+v\nwant %+v", got, want)
	}
	res, err := e.q.Send(bg, []Incoming{{Body: body, MessageID: "id-299"}, {Body: body, MessageID: "new"}})
	ok(t, err)
	if !res[0].Duplicate || res[1].SequenceNumber != 301 {
		t.Fatalf("after compaction: %+v, want a duplicate and sequence 301", res)
	}
	ok(t, e.s.Close())
	if _, err := os.Stat(filepath.Join(dir, compactName)); !os.IsNotExist(err) {
		t.Errorf("compaction temp file left behind: %v", err)
	}
}

func TestLeftoverCompactionFileRemoved(t *testing.T) {
	dir := t.TempDir()
	ok(t, os.WriteFile(filepath.Join(dir, compactName), []byte("partial"), 0o644))
	s, err := Open(Options{Dir: dir})
	ok(t, err)
	defer s.Close()
	if _, err := os.Stat(filepath.Join(dir, compactName)); !os.IsNotExist(err) {
		t.Errorf("leftover compaction file not removed: %v", err)
	}
}

func TestDirectoryLocked(t *testing.T) {
	if !dirLocking {
		t.Skip("no flock on this platform")
	}
	dir := t.TempDir()
	s, err := Open(Options{Dir: dir})
	ok(t, err)
	if s2, err := Open(Options{Dir: dir}); err == nil {
		s2.Close()
		t.Fatal("a second store opened the same directory")
	}
	ok(t, s.Close())
	s, err = Open(Options{Dir: dir})
	ok(t, err)
	ok(t, s.Close())
}

func TestLogWriteFailure(t *testing.T) {
	e := newEnv(t, t.TempDir(), nil)
	e.send("a")
	ok(t, e.s.Sync(bg))
	// Pull the file from under the writer: every write now fails.
	ok(t, e.s.wal.f.Close())
	_, err := e.q.Send(bg, []Incoming{{Body: []byte("b")}})
	if err == nil {
		t.Fatal("send with a failing log: no error")
	}
	// The failure is sticky: later changes are refused, not half-logged.
	_, err = e.q.Send(bg, []Incoming{{Body: []byte("c")}})
	if err == nil {
		t.Fatal("second send after a log failure: no error")
	}
	if err := e.s.Compact(bg); err == nil {
		t.Error("compaction after a log failure: no error")
	}
	if err := e.s.Close(); err == nil {
		t.Error("Close after a log failure: no error")
	}
	// What was synced before the failure is intact.
	e.open()
	peek, err := e.q.Peek(1, 10)
	ok(t, err)
	if bodies(peek) != "a" {
		t.Fatalf("after reopen: %q, want a", bodies(peek))
	}
}
