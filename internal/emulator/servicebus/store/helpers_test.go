package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// fakeClock is an Options.Now that moves only when told to.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// testQueueConfig is a queue with short, round durations for tests.
func testQueueConfig(name string) QueueConfig {
	return QueueConfig{
		Name:                                name,
		LockDuration:                        30 * time.Second,
		MaxDeliveryCount:                    3,
		DefaultMessageTimeToLive:            time.Hour,
		DuplicateDetectionHistoryTimeWindow: time.Minute,
	}
}

type env struct {
	t     *testing.T
	s     *Store
	q     *Queue
	dlq   *Queue
	clock *fakeClock
	opts  Options
}

// newEnv opens a store with one queue "q" configured by mod, a fake clock,
// in memory unless dir is set.
func newEnv(t *testing.T, dir string, mod func(*QueueConfig)) *env {
	t.Helper()
	qc := testQueueConfig("q")
	if mod != nil {
		mod(&qc)
	}
	clock := newFakeClock()
	opts := Options{Dir: dir, Config: &Config{Queues: []QueueConfig{qc}}, Now: clock.Now}
	e := &env{t: t, clock: clock, opts: opts}
	e.open()
	t.Cleanup(func() { e.s.Close() })
	return e
}

func (e *env) open() {
	e.t.Helper()
	s, err := Open(e.opts)
	if err != nil {
		e.t.Fatalf("Open: %v", err)
	}
	e.s = s
	e.q = mustQueue(e.t, s, "q")
	e.dlq = mustQueue(e.t, s, "q/$DeadLetterQueue")
}

// reopen closes the store and opens it again on the same directory.
func (e *env) reopen() {
	e.t.Helper()
	if err := e.s.Close(); err != nil {
		e.t.Fatalf("Close: %v", err)
	}
	e.open()
}

func mustQueue(t *testing.T, s *Store, name string) *Queue {
	t.Helper()
	q, err := s.Queue(name)
	if err != nil {
		t.Fatalf("Queue(%q): %v", name, err)
	}
	return q
}

func (e *env) send(bodies ...string) []int64 {
	e.t.Helper()
	in := make([]Incoming, len(bodies))
	for i, b := range bodies {
		in[i] = Incoming{Body: []byte(b)}
	}
	return e.sendIn(e.q, in...)
}

func (e *env) sendIn(q *Queue, in ...Incoming) []int64 {
	e.t.Helper()
	res, err := q.Send(context.Background(), in)
	if err != nil {
		e.t.Fatalf("Send: %v", err)
	}
	seqs := make([]int64, len(res))
	for i, r := range res {
		seqs[i] = r.SequenceNumber
	}
	return seqs
}

func (e *env) recv(q *Queue, max int, mode ReceiveMode) []Message {
	e.t.Helper()
	msgs, err := q.Receive(max, mode)
	if err != nil {
		e.t.Fatalf("Receive: %v", err)
	}
	return msgs
}

// recvOne receives exactly one message in PeekLock mode.
func (e *env) recvOne(q *Queue) Message {
	e.t.Helper()
	msgs := e.recv(q, 1, PeekLock)
	if len(msgs) != 1 {
		e.t.Fatalf("Receive: got %d messages, want 1", len(msgs))
	}
	return msgs[0]
}

func (e *env) expectEmpty(q *Queue) {
	e.t.Helper()
	if msgs := e.recv(q, 10, PeekLock); len(msgs) != 0 {
		e.t.Fatalf("Receive on %s: got %d messages (first %q), want none", q.Name(), len(msgs), msgs[0].Body)
	}
}

func bodies(msgs []Message) string {
	s := ""
	for i, m := range msgs {
		if i > 0 {
			s += ","
		}
		s += string(m.Body)
	}
	return s
}

func seqsOf(msgs []Message) []int64 {
	out := make([]int64, len(msgs))
	for i, m := range msgs {
		out[i] = m.SequenceNumber
	}
	return out
}

func wantErr(t *testing.T, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("got error %v, want %v", err, want)
	}
}

func ok(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

var bg = context.Background()

func setProp(suffix string) Modify {
	return func(b []byte) ([]byte, error) {
		return []byte(fmt.Sprintf("%s+%s", b, suffix)), nil
	}
}
