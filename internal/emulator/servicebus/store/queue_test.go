package store

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestQueueLookup(t *testing.T) {
	e := newEnv(t, "", nil)
	tests := []struct {
		name  string
		want  string
		dlq   bool
		errIs error
	}{
		{"q", "q", false, nil},
		{"Q", "q", false, nil},
		{"/q", "q", false, nil},
		{"q/$DeadLetterQueue", "q/$DeadLetterQueue", true, nil},
		{"Q/$deadletterqueue", "q/$DeadLetterQueue", true, nil},
		{"other", "", false, ErrNotFound},
		{"q/$DeadLetterQueue/$DeadLetterQueue", "", false, ErrNotFound},
		{"", "", false, ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := e.s.Queue(tt.name)
			if tt.errIs != nil {
				wantErr(t, err, tt.errIs)
				return
			}
			ok(t, err)
			if q.Name() != tt.want || q.IsDeadLetter() != tt.dlq {
				t.Errorf("got %q dlq=%v, want %q dlq=%v", q.Name(), q.IsDeadLetter(), tt.want, tt.dlq)
			}
		})
	}
	if a, b := mustQueue(t, e.s, "q"), mustQueue(t, e.s, "Q"); a != b {
		t.Errorf("got different handles for q and Q, want the same")
	}
	if got := e.s.Queues(); !reflect.DeepEqual(got, []string{"q"}) {
		t.Errorf("Queues() = %v, want [q]", got)
	}
}

func TestSendReceiveOrderAndSequence(t *testing.T) {
	e := newEnv(t, "", nil)
	seqs := e.send("a", "b", "c")
	if want := []int64{1, 2, 3}; !reflect.DeepEqual(seqs, want) {
		t.Fatalf("sequence numbers %v, want %v", seqs, want)
	}
	seqs = e.send("d")
	if seqs[0] != 4 {
		t.Fatalf("next sequence number %d, want 4", seqs[0])
	}
	msgs := e.recv(e.q, 2, PeekLock)
	if got := bodies(msgs); got != "a,b" {
		t.Fatalf("first receive got %q, want a,b", got)
	}
	now := e.clock.Now()
	for _, m := range msgs {
		if !m.Locked() || m.LockToken == (LockToken{}) {
			t.Errorf("message %d: no lock token", m.SequenceNumber)
		}
		if !m.LockedUntil.Equal(now.Add(30 * time.Second)) {
			t.Errorf("LockedUntil %v, want %v", m.LockedUntil, now.Add(30*time.Second))
		}
		if !m.EnqueuedAt.Equal(now) || !m.ExpiresAt.Equal(now.Add(time.Hour)) || m.TTL != time.Hour {
			t.Errorf("times: enqueued %v expires %v ttl %v", m.EnqueuedAt, m.ExpiresAt, m.TTL)
		}
		if m.DeliveryCount != 0 || m.State != StateActive {
			t.Errorf("delivery count %d state %v, want 0 active", m.DeliveryCount, m.State)
		}
	}
	if msgs[0].LockToken == msgs[1].LockToken {
		t.Errorf("two messages share lock token %s", msgs[0].LockToken)
	}
	if got := bodies(e.recv(e.q, 10, PeekLock)); got != "c,d" {
		t.Fatalf("second receive got %q, want c,d", got)
	}
	e.expectEmpty(e.q)
}

func TestReceiveInvalid(t *testing.T) {
	e := newEnv(t, "", nil)
	for _, tt := range []struct {
		max  int
		mode ReceiveMode
	}{{0, PeekLock}, {-1, PeekLock}, {1, 0}, {1, 7}} {
		_, err := e.q.Receive(tt.max, tt.mode)
		wantErr(t, err, ErrInvalid)
	}
	_, err := e.q.Peek(1, 0)
	wantErr(t, err, ErrInvalid)
	_, err = e.q.ReceiveDeferred(bg, []int64{1}, 0)
	wantErr(t, err, ErrInvalid)
}

func TestSettlement(t *testing.T) {
	type step func(e *env, m Message) error
	complete := func(e *env, m Message) error { return e.q.Complete(bg, m.LockToken) }
	abandon := func(e *env, m Message) error { return e.q.Abandon(bg, m.LockToken, nil) }
	release := func(e *env, m Message) error { return e.q.Release(bg, m.LockToken) }
	deferIt := func(e *env, m Message) error { return e.q.Defer(bg, m.LockToken, nil) }
	dead := func(e *env, m Message) error { return e.q.DeadLetter(bg, m.LockToken, "r", "d", nil) }
	tests := []struct {
		name       string
		settle     step
		wantMain   string // bodies receivable from the main queue afterwards
		wantCount  uint32 // delivery count of the redelivered message
		wantDLQ    string
		wantCounts Counts
	}{
		{"complete", complete, "", 0, "", Counts{}},
		{"abandon", abandon, "m", 1, "", Counts{Active: 1, Bytes: 1}},
		{"release", release, "m", 0, "", Counts{Active: 1, Bytes: 1}},
		{"defer", deferIt, "", 0, "", Counts{Deferred: 1, Bytes: 1}},
		{"dead-letter", dead, "", 0, "m", Counts{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, "", nil)
			e.send("m")
			m := e.recvOne(e.q)
			ok(t, tt.settle(e, m))
			if got := e.q.Counts(); got != tt.wantCounts {
				t.Errorf("counts after %s: got %+v, want %+v", tt.name, got, tt.wantCounts)
			}
			// The lock is gone after any settlement.
			wantErr(t, e.q.Complete(bg, m.LockToken), ErrLockLost)
			msgs := e.recv(e.q, 10, PeekLock)
			if got := bodies(msgs); got != tt.wantMain {
				t.Fatalf("main queue after %s: got %q, want %q", tt.name, got, tt.wantMain)
			}
			if len(msgs) == 1 && msgs[0].DeliveryCount != tt.wantCount {
				t.Errorf("delivery count: got %d, want %d", msgs[0].DeliveryCount, tt.wantCount)
			}
			if got := bodies(e.recv(e.dlq, 10, PeekLock)); got != tt.wantDLQ {
				t.Errorf("dead-letter queue: got %q, want %q", got, tt.wantDLQ)
			}
		})
	}
}

func TestLockLost(t *testing.T) {
	e := newEnv(t, "", nil)
	e.send("a")
	m := e.recvOne(e.q)
	var unknown LockToken
	unknown[0] = 1
	ops := map[string]func(q *Queue, tok LockToken) error{
		"complete":    func(q *Queue, tok LockToken) error { return q.Complete(bg, tok) },
		"abandon":     func(q *Queue, tok LockToken) error { return q.Abandon(bg, tok, nil) },
		"release":     func(q *Queue, tok LockToken) error { return q.Release(bg, tok) },
		"defer":       func(q *Queue, tok LockToken) error { return q.Defer(bg, tok, nil) },
		"dead-letter": func(q *Queue, tok LockToken) error { return q.DeadLetter(bg, tok, "", "", nil) },
		"renew": func(q *Queue, tok LockToken) error {
			_, err := q.RenewLock(tok)
			return err
		},
	}
	for name, op := range ops {
		t.Run(name+"/unknown", func(t *testing.T) { wantErr(t, op(e.q, unknown), ErrLockLost) })
		t.Run(name+"/other entity", func(t *testing.T) { wantErr(t, op(e.dlq, m.LockToken), ErrLockLost) })
	}
	// The message is still locked and settleable after all those failures.
	ok(t, e.q.Complete(bg, m.LockToken))
	if !strings.Contains(ErrLockLost.Error(), "lock supplied is invalid") {
		t.Errorf("ErrLockLost text %q lacks the service's wording", ErrLockLost)
	}
}

func TestSettleFromAnotherHandle(t *testing.T) {
	// Lock tokens are per queue: any handle for the entity may settle.
	e := newEnv(t, "", nil)
	e.send("a")
	m := e.recvOne(e.q)
	other := mustQueue(t, e.s, "Q")
	ok(t, other.Complete(bg, m.LockToken))
}

func TestLockExpiry(t *testing.T) {
	e := newEnv(t, "", nil)
	e.send("a")
	m := e.recvOne(e.q)
	e.clock.Advance(29 * time.Second)
	until, err := e.q.RenewLock(m.LockToken)
	ok(t, err)
	if want := e.clock.Now().Add(30 * time.Second); !until.Equal(want) {
		t.Fatalf("renewed until %v, want %v", until, want)
	}
	e.clock.Advance(29 * time.Second) // 58 s after receive: only the renewal keeps it
	e.expectEmpty(e.q)
	e.clock.Advance(time.Second)
	wantErr(t, e.q.Complete(bg, m.LockToken), ErrLockLost)
	_, err = e.q.RenewLock(m.LockToken)
	wantErr(t, err, ErrLockLost)
	m2 := e.recvOne(e.q)
	if m2.DeliveryCount != 1 || m2.LockToken == m.LockToken {
		t.Fatalf("after lock expiry: count %d token %s, want count 1 and a new token", m2.DeliveryCount, m2.LockToken)
	}
}

func TestMaxDeliveryCount(t *testing.T) {
	for _, how := range []string{"abandon", "lock expiry"} {
		for _, max := range []int{1, 3, 5} {
			t.Run(fmt.Sprintf("%s/max=%d", how, max), func(t *testing.T) {
				e := newEnv(t, "", func(c *QueueConfig) { c.MaxDeliveryCount = max })
				e.send("p")
				deliveries := 0
				for {
					msgs := e.recv(e.q, 1, PeekLock)
					if len(msgs) == 0 {
						break
					}
					deliveries++
					if got := msgs[0].DeliveryCount; got != uint32(deliveries-1) {
						t.Fatalf("delivery %d: count %d, want %d", deliveries, got, deliveries-1)
					}
					if how == "abandon" {
						ok(t, e.q.Abandon(bg, msgs[0].LockToken, nil))
					} else {
						e.clock.Advance(31 * time.Second)
					}
				}
				if deliveries != max {
					t.Fatalf("delivered %d times, want %d", deliveries, max)
				}
				d := e.recvOne(e.dlq)
				if d.DeadLetterReason != ReasonMaxDeliveryCountExceeded ||
					d.DeadLetterDescription != fmt.Sprintf("Message could not be consumed after %d delivery attempts.", max) {
					t.Errorf("reason %q description %q", d.DeadLetterReason, d.DeadLetterDescription)
				}
				if d.DeliveryCount != uint32(max) {
					t.Errorf("DLQ delivery count %d, want %d", d.DeliveryCount, max)
				}
			})
		}
	}
}

func TestReleaseGoesToHead(t *testing.T) {
	e := newEnv(t, "", nil)
	e.send("a", "b", "c")
	msgs := e.recv(e.q, 2, PeekLock)
	ok(t, e.q.Release(bg, msgs[1].LockToken))
	ok(t, e.q.Release(bg, msgs[0].LockToken))
	got := e.recv(e.q, 10, PeekLock)
	if bodies(got) != "a,b,c" {
		t.Fatalf("after release got %q, want a,b,c", bodies(got))
	}
	for _, m := range got {
		if m.DeliveryCount != 0 {
			t.Errorf("%s: count %d after release, want 0", m.Body, m.DeliveryCount)
		}
	}
}

func TestModify(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name   string
		settle func(e *env, tok LockToken, m Modify) error
		from   func(e *env) []Message
	}{
		{"abandon", func(e *env, tok LockToken, m Modify) error { return e.q.Abandon(bg, tok, m) },
			func(e *env) []Message { return e.recv(e.q, 1, PeekLock) }},
		{"defer", func(e *env, tok LockToken, m Modify) error { return e.q.Defer(bg, tok, m) },
			func(e *env) []Message {
				msgs, err := e.q.ReceiveDeferred(bg, []int64{1}, PeekLock)
				ok(e.t, err)
				return msgs
			}},
		{"dead-letter", func(e *env, tok LockToken, m Modify) error { return e.q.DeadLetter(bg, tok, "", "", m) },
			func(e *env) []Message { return e.recv(e.dlq, 1, PeekLock) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, "", nil)
			e.send("m")
			m := e.recvOne(e.q)
			err := tt.settle(e, m.LockToken, func([]byte) ([]byte, error) { return nil, boom })
			wantErr(t, err, boom)
			big := func(b []byte) ([]byte, error) { return make([]byte, DefaultMaxMessageSize+1), nil }
			wantErr(t, tt.settle(e, m.LockToken, big), ErrMessageTooLarge)
			ok(t, tt.settle(e, m.LockToken, setProp("x")))
			got := tt.from(e)
			if len(got) != 1 || string(got[0].Body) != "m+x" {
				t.Fatalf("got %q, want m+x", bodies(got))
			}
			if c := e.q.Counts().Bytes + e.dlq.Counts().Bytes; c != 3 {
				t.Errorf("bytes %d, want 3", c)
			}
		})
	}
}

func TestDeferred(t *testing.T) {
	e := newEnv(t, "", nil)
	e.send("a", "b")
	m := e.recvOne(e.q)
	ok(t, e.q.Defer(bg, m.LockToken, nil))
	// Not receivable normally.
	if got := bodies(e.recv(e.q, 10, PeekLock)); got != "b" {
		t.Fatalf("receive got %q, want b", got)
	}
	for _, tt := range []struct {
		name string
		seqs []int64
	}{{"active message", []int64{2}}, {"missing", []int64{99}}, {"mixed", []int64{1, 2}}} {
		_, err := e.q.ReceiveDeferred(bg, tt.seqs, PeekLock)
		if !errors.Is(err, ErrMessageNotFound) {
			t.Errorf("%s: got %v, want ErrMessageNotFound", tt.name, err)
		}
	}
	// A deferred message in the main queue is not in the DLQ.
	_, err := e.dlq.ReceiveDeferred(bg, []int64{1}, PeekLock)
	wantErr(t, err, ErrMessageNotFound)

	d, err := e.q.ReceiveDeferred(bg, []int64{1, 1}, PeekLock)
	ok(t, err)
	if len(d) != 1 || d[0].State != StateDeferred || !d[0].Locked() || d[0].DeliveryCount != 0 {
		t.Fatalf("deferred receive: %+v", d)
	}
	// Locked now: a second receive-by-sequence-number fails.
	_, err = e.q.ReceiveDeferred(bg, []int64{1}, PeekLock)
	wantErr(t, err, ErrMessageNotFound)
	// A lapsed lock leaves it deferred with the same count.
	e.clock.Advance(31 * time.Second)
	d, err = e.q.ReceiveDeferred(bg, []int64{1}, PeekLock)
	ok(t, err)
	if d[0].DeliveryCount != 0 {
		t.Errorf("count after lapsed lock %d, want 0", d[0].DeliveryCount)
	}
	// Abandon raises the count and keeps it deferred.
	ok(t, e.q.Abandon(bg, d[0].LockToken, nil))
	d, err = e.q.ReceiveDeferred(bg, []int64{1}, PeekLock)
	ok(t, err)
	if d[0].DeliveryCount != 1 || d[0].State != StateDeferred {
		t.Errorf("after abandon: count %d state %v, want 1 deferred", d[0].DeliveryCount, d[0].State)
	}
	// Defer again keeps it deferred; deferred messages never expire.
	ok(t, e.q.Defer(bg, d[0].LockToken, nil))
	e.clock.Advance(2 * time.Hour)
	d, err = e.q.ReceiveDeferred(bg, []int64{1}, ReceiveAndDelete)
	ok(t, err)
	if d[0].Locked() {
		t.Errorf("ReceiveAndDelete returned a lock")
	}
	_, err = e.q.ReceiveDeferred(bg, []int64{1}, ReceiveAndDelete)
	wantErr(t, err, ErrMessageNotFound)
	if c := e.q.Counts(); c != (Counts{}) {
		t.Errorf("counts %+v, want empty", c)
	}
}

func TestDeferredDeadLetter(t *testing.T) {
	e := newEnv(t, "", nil)
	e.send("a")
	ok(t, e.q.Defer(bg, e.recvOne(e.q).LockToken, nil))
	d, err := e.q.ReceiveDeferred(bg, []int64{1}, PeekLock)
	ok(t, err)
	ok(t, e.q.DeadLetter(bg, d[0].LockToken, "bad", "really", nil))
	m := e.recvOne(e.dlq)
	if m.State != StateActive || m.DeadLetterReason != "bad" || m.DeadLetterDescription != "really" {
		t.Errorf("got state %v reason %q desc %q", m.State, m.DeadLetterReason, m.DeadLetterDescription)
	}
}

func TestDeadLetterQueue(t *testing.T) {
	e := newEnv(t, "", nil)
	e.send("a")
	ok(t, e.q.Abandon(bg, e.recvOne(e.q).LockToken, nil)) // count 1
	m := e.recvOne(e.q)
	ok(t, e.q.DeadLetter(bg, m.LockToken, "reason", "desc", nil))

	_, err := e.dlq.Send(bg, []Incoming{{Body: []byte("x")}})
	wantErr(t, err, ErrNotAllowed)

	d := e.recvOne(e.dlq)
	if d.DeliveryCount != 1 || d.SequenceNumber != 1 || d.DeadLetterReason != "reason" || !d.ExpiresAt.IsZero() || !d.DeadLettered {
		t.Fatalf("DLQ message: %+v", d)
	}
	// Abandon in the DLQ does not raise the count, and no MaxDeliveryCount.
	for i := 0; i < 5; i++ {
		ok(t, e.dlq.Abandon(bg, d.LockToken, nil))
		d = e.recvOne(e.dlq)
		if d.DeliveryCount != 1 {
			t.Fatalf("DLQ abandon %d: count %d, want 1", i, d.DeliveryCount)
		}
	}
	// Dead-lettering a dead-lettered message is not allowed; it stays locked.
	wantErr(t, e.dlq.DeadLetter(bg, d.LockToken, "", "", nil), ErrNotAllowed)
	// Lock expiry in the DLQ: available again, same count, never expires.
	e.clock.Advance(3 * time.Hour)
	d = e.recvOne(e.dlq)
	if d.DeliveryCount != 1 {
		t.Fatalf("DLQ after lock expiry: count %d, want 1", d.DeliveryCount)
	}
	ok(t, e.dlq.Defer(bg, d.LockToken, nil))
	dd, err := e.dlq.ReceiveDeferred(bg, []int64{1}, PeekLock)
	ok(t, err)
	ok(t, e.dlq.Complete(bg, dd[0].LockToken))
	if c := e.dlq.Counts(); c != (Counts{}) {
		t.Errorf("DLQ counts %+v, want empty", c)
	}
}

func TestTTL(t *testing.T) {
	tests := []struct {
		name     string
		dlqOnExp bool
		ttl      time.Duration
		advance  time.Duration
		wantMain string
		wantDLQ  string
	}{
		{"queue default not reached", false, 0, 59 * time.Minute, "m", ""},
		{"queue default reached, dropped", false, 0, time.Hour, "", ""},
		{"queue default reached, dead-lettered", true, 0, time.Hour, "", "m"},
		{"message ttl", false, time.Minute, time.Minute, "", ""},
		{"message ttl not reached", false, time.Minute, 59 * time.Second, "m", ""},
		{"message ttl capped by queue default", true, 2 * time.Hour, time.Hour, "", "m"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, "", func(c *QueueConfig) { c.DeadLetteringOnMessageExpiration = tt.dlqOnExp })
			e.sendIn(e.q, Incoming{Body: []byte("m"), TTL: tt.ttl})
			e.clock.Advance(tt.advance)
			if got := bodies(e.recv(e.q, 10, PeekLock)); got != tt.wantMain {
				t.Errorf("main: got %q, want %q", got, tt.wantMain)
			}
			msgs := e.recv(e.dlq, 10, PeekLock)
			if got := bodies(msgs); got != tt.wantDLQ {
				t.Errorf("DLQ: got %q, want %q", got, tt.wantDLQ)
			}
			if len(msgs) == 1 && (msgs[0].DeadLetterReason != ReasonTTLExpired || msgs[0].DeadLetterDescription != DescriptionTTLExpired) {
				t.Errorf("reason %q desc %q", msgs[0].DeadLetterReason, msgs[0].DeadLetterDescription)
			}
		})
	}
}

func TestTTLLockedMessageExpiresWhenUnlocked(t *testing.T) {
	for _, how := range []string{"abandon", "release", "lock expiry"} {
		t.Run(how, func(t *testing.T) {
			e := newEnv(t, "", func(c *QueueConfig) {
				c.DeadLetteringOnMessageExpiration = true
				c.LockDuration = 5 * time.Minute
			})
			e.sendIn(e.q, Incoming{Body: []byte("m"), TTL: time.Minute})
			m := e.recvOne(e.q)
			e.clock.Advance(2 * time.Minute) // expired while locked: still settleable
			if _, err := e.q.RenewLock(m.LockToken); err != nil {
				t.Fatalf("renew while expired but locked: %v", err)
			}
			switch how {
			case "abandon":
				ok(t, e.q.Abandon(bg, m.LockToken, nil))
			case "release":
				ok(t, e.q.Release(bg, m.LockToken))
			case "lock expiry":
				e.clock.Advance(5 * time.Minute)
			}
			e.expectEmpty(e.q)
			d := e.recvOne(e.dlq)
			if d.DeadLetterReason != ReasonTTLExpired {
				t.Errorf("reason %q, want %s", d.DeadLetterReason, ReasonTTLExpired)
			}
		})
	}
}

func TestScheduled(t *testing.T) {
	e := newEnv(t, "", nil)
	at := e.clock.Now().Add(10 * time.Minute)
	seqs := e.sendIn(e.q,
		Incoming{Body: []byte("later"), ScheduledAt: at},
		Incoming{Body: []byte("past"), ScheduledAt: e.clock.Now().Add(-time.Minute)},
		Incoming{Body: []byte("cancelled"), ScheduledAt: at},
	)
	if !reflect.DeepEqual(seqs, []int64{1, 2, 3}) {
		t.Fatalf("sequence numbers %v, want [1 2 3]", seqs)
	}
	peek, err := e.q.Peek(1, 10)
	ok(t, err)
	var states []State
	for _, m := range peek {
		states = append(states, m.State)
	}
	if want := []State{StateScheduled, StateActive, StateScheduled}; !reflect.DeepEqual(states, want) {
		t.Fatalf("peek states %v, want %v", states, want)
	}
	if !peek[0].EnqueuedAt.Equal(at) || !peek[0].ScheduledAt.Equal(at) {
		t.Errorf("scheduled message enqueued %v scheduled %v, want %v", peek[0].EnqueuedAt, peek[0].ScheduledAt, at)
	}
	if got := bodies(e.recv(e.q, 10, ReceiveAndDelete)); got != "past" {
		t.Fatalf("receive got %q, want past", got)
	}
	ok(t, e.q.CancelScheduled(bg, []int64{3, 2, 99})) // 2 is gone, 99 unknown: ignored
	e.clock.Advance(10*time.Minute - time.Nanosecond)
	e.expectEmpty(e.q)
	e.clock.Advance(time.Nanosecond)
	m := e.recvOne(e.q)
	if string(m.Body) != "later" || m.SequenceNumber != 1 || m.State != StateActive || !m.EnqueuedAt.Equal(at) || !m.ExpiresAt.Equal(at.Add(time.Hour)) {
		t.Fatalf("activated message: %+v", m)
	}
	ok(t, e.q.Complete(bg, m.LockToken))
	e.expectEmpty(e.q)
	if c := e.q.Counts(); c != (Counts{}) {
		t.Errorf("counts %+v, want empty", c)
	}
}

func TestDuplicateDetection(t *testing.T) {
	tests := []struct {
		name    string
		enabled bool
		advance time.Duration
		ids     []string
		want    []bool // duplicate flags
	}{
		{"disabled", false, 0, []string{"a", "a"}, []bool{false, false}},
		{"within window", true, 59 * time.Second, []string{"a", "a"}, []bool{false, true}},
		{"window passed", true, time.Minute, []string{"a", "a"}, []bool{false, false}},
		{"empty id never duplicate", true, 0, []string{"", ""}, []bool{false, false}},
		{"different ids", true, 0, []string{"a", "b"}, []bool{false, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, "", func(c *QueueConfig) { c.RequiresDuplicateDetection = tt.enabled })
			var got []bool
			for i, id := range tt.ids {
				if i > 0 {
					e.clock.Advance(tt.advance)
				}
				res, err := e.q.Send(bg, []Incoming{{Body: []byte(id), MessageID: id}})
				ok(t, err)
				got = append(got, res[0].Duplicate)
				if res[0].Duplicate && res[0].SequenceNumber != 1 {
					t.Errorf("duplicate reports sequence %d, want the original 1", res[0].SequenceNumber)
				}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("duplicates %v, want %v", got, tt.want)
			}
			stored := 0
			for _, d := range tt.want {
				if !d {
					stored++
				}
			}
			if c := e.q.Counts(); c.Active != stored {
				t.Errorf("stored %d, want %d", c.Active, stored)
			}
		})
	}
	t.Run("within one batch and after completion", func(t *testing.T) {
		e := newEnv(t, "", func(c *QueueConfig) { c.RequiresDuplicateDetection = true })
		res, err := e.q.Send(bg, []Incoming{{Body: []byte("1"), MessageID: "x"}, {Body: []byte("2"), MessageID: "x"}, {Body: []byte("3"), MessageID: "y"}})
		ok(t, err)
		if !res[1].Duplicate || res[2].SequenceNumber != 2 {
			t.Fatalf("batch results %+v", res)
		}
		for _, m := range e.recv(e.q, 10, PeekLock) {
			ok(t, e.q.Complete(bg, m.LockToken))
		}
		res, err = e.q.Send(bg, []Incoming{{Body: []byte("4"), MessageID: "x"}})
		ok(t, err)
		if !res[0].Duplicate {
			t.Fatalf("send after completion inside the window: not a duplicate")
		}
	})
}

func TestReceiveAndDelete(t *testing.T) {
	e := newEnv(t, "", nil)
	e.send("a", "b")
	msgs := e.recv(e.q, 1, ReceiveAndDelete)
	if bodies(msgs) != "a" || msgs[0].Locked() {
		t.Fatalf("got %+v", msgs)
	}
	if c := e.q.Counts(); c.Active != 1 {
		t.Fatalf("active %d, want 1", c.Active)
	}
	peek, err := e.q.Peek(1, 10)
	ok(t, err)
	if bodies(peek) != "b" {
		t.Fatalf("peek %q, want b", bodies(peek))
	}
}

func TestPeek(t *testing.T) {
	e := newEnv(t, "", nil)
	e.send("1", "2", "3", "4", "5")
	e.sendIn(e.q, Incoming{Body: []byte("6"), ScheduledAt: e.clock.Now().Add(time.Hour)})
	m := e.recvOne(e.q) // 1 locked
	m2 := e.recvOne(e.q)
	ok(t, e.q.Defer(bg, m2.LockToken, nil)) // 2 deferred
	m3 := e.recvOne(e.q)
	ok(t, e.q.Complete(bg, m3.LockToken)) // 3 gone
	m4 := e.recvOne(e.q)
	ok(t, e.q.DeadLetter(bg, m4.LockToken, "", "", nil)) // 4 in DLQ
	tests := []struct {
		q    *Queue
		from int64
		max  int
		want []int64
	}{
		{e.q, 1, 10, []int64{1, 2, 5, 6}},
		{e.q, 0, 10, []int64{1, 2, 5, 6}},
		{e.q, 2, 2, []int64{2, 5}},
		{e.q, 6, 10, []int64{6}},
		{e.q, 7, 10, nil},
		{e.q, -5, 1, []int64{1}},
		{e.dlq, 1, 10, []int64{4}},
	}
	for _, tt := range tests {
		got, err := tt.q.Peek(tt.from, tt.max)
		ok(t, err)
		if s := seqsOf(got); !reflect.DeepEqual(s, append([]int64{}, tt.want...)) && !(len(s) == 0 && len(tt.want) == 0) {
			t.Errorf("Peek(%s, %d, %d) = %v, want %v", tt.q.Name(), tt.from, tt.max, s, tt.want)
		}
		for _, p := range got {
			if p.LockToken != (LockToken{}) {
				t.Errorf("peek revealed a lock token for %d", p.SequenceNumber)
			}
		}
	}
	got, _ := e.q.Peek(1, 1)
	if got[0].LockedUntil.IsZero() {
		t.Errorf("peek of locked message: LockedUntil not set")
	}
	// Peek changed nothing: the lock still works.
	ok(t, e.q.Complete(bg, m.LockToken))
}

func TestSendLimits(t *testing.T) {
	e := newEnv(t, "", nil)
	_, err := e.q.Send(bg, []Incoming{{Body: []byte("ok")}, {Body: make([]byte, DefaultMaxMessageSize+1)}})
	wantErr(t, err, ErrMessageTooLarge)
	if c := e.q.Counts(); c.Active != 0 {
		t.Fatalf("a refused batch stored %d messages", c.Active)
	}
	_, err = e.q.Send(bg, []Incoming{{Body: make([]byte, DefaultMaxMessageSize)}})
	ok(t, err)

	s, err := Open(Options{MaxQueueBytes: 10, MaxMessageSize: 8})
	ok(t, err)
	defer s.Close()
	q := mustQueue(t, s, DefaultQueueName)
	_, err = q.Send(bg, []Incoming{{Body: make([]byte, 9)}})
	wantErr(t, err, ErrMessageTooLarge)
	_, err = q.Send(bg, []Incoming{{Body: make([]byte, 6)}})
	ok(t, err)
	_, err = q.Send(bg, []Incoming{{Body: make([]byte, 5)}})
	wantErr(t, err, ErrQuotaExceeded)
	_, err = q.Send(bg, []Incoming{{Body: make([]byte, 4)}})
	ok(t, err)
}

func TestDefaultStore(t *testing.T) {
	s, err := Open(Options{})
	ok(t, err)
	defer s.Close()
	q := mustQueue(t, s, "transcode")
	want := QueueConfig{Name: "transcode", LockDuration: time.Minute, MaxDeliveryCount: 3,
		DefaultMessageTimeToLive: time.Hour, DuplicateDetectionHistoryTimeWindow: 20 * time.Second}
	if got := q.Config(); got != want {
		t.Errorf("default queue %+v, want %+v", got, want)
	}
	if q.DeadLetterQueue().Name() != "transcode/$DeadLetterQueue" {
		t.Errorf("DeadLetterQueue name %q", q.DeadLetterQueue().Name())
	}
}

func TestClosed(t *testing.T) {
	e := newEnv(t, "", nil)
	e.send("a")
	m := e.recvOne(e.q)
	ok(t, e.s.Close())
	ok(t, e.s.Close())
	_, err := e.q.Send(bg, []Incoming{{Body: []byte("x")}})
	wantErr(t, err, ErrClosed)
	_, err = e.q.Receive(1, PeekLock)
	wantErr(t, err, ErrClosed)
	wantErr(t, e.q.Complete(bg, m.LockToken), ErrClosed)
	_, err = e.q.ReceiveWait(bg, 1, PeekLock)
	wantErr(t, err, ErrClosed)
	select {
	case <-e.q.Wait():
	default:
		t.Fatal("Wait after Close: channel not closed")
	}
}

func TestWaitSignals(t *testing.T) {
	e := newEnv(t, "", nil)
	closed := func(ch <-chan struct{}) bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
	ch := e.q.Wait()
	if closed(ch) {
		t.Fatal("Wait on an idle queue: channel already closed")
	}
	e.send("a")
	if !closed(ch) {
		t.Fatal("send did not wake the waiter")
	}
	m := e.recvOne(e.q)
	ch = e.q.Wait()
	ok(t, e.q.Abandon(bg, m.LockToken, nil))
	if !closed(ch) {
		t.Fatal("abandon did not wake the waiter")
	}
	m = e.recvOne(e.q)
	dch := e.dlq.Wait()
	ch = e.q.Wait()
	ok(t, e.q.DeadLetter(bg, m.LockToken, "", "", nil))
	if !closed(dch) {
		t.Fatal("dead-letter did not wake the DLQ waiter")
	}
	if closed(ch) {
		t.Fatal("dead-letter woke the main queue waiter")
	}
}

func TestReceiveWaitContext(t *testing.T) {
	e := newEnv(t, "", nil)
	ctx, cancel := context.WithCancel(bg)
	cancel()
	_, err := e.q.ReceiveWait(ctx, 1, PeekLock)
	wantErr(t, err, context.Canceled)
	done := make(chan []Message)
	go func() {
		msgs, _ := e.q.ReceiveWait(bg, 5, PeekLock)
		done <- msgs
	}()
	e.send("x")
	if got := <-done; bodies(got) != "x" {
		t.Fatalf("ReceiveWait got %q, want x", bodies(got))
	}
}

func TestLockToken(t *testing.T) {
	// Example of docs/servicebus-wire.md#lock-token-byte-order.
	tok := LockToken{0xDE, 0xE2, 0x66, 0x71, 0x06, 0x08, 0x4C, 0xDB, 0x8B, 0x02, 0xA7, 0xF5, 0x93, 0xFD, 0x1F, 0x19}
	if got := tok.String(); got != "dee26671-0608-4cdb-8b02-a7f593fd1f19" {
		t.Errorf("String() = %s", got)
	}
	tag := [16]byte{0x71, 0x66, 0xE2, 0xDE, 0x08, 0x06, 0xDB, 0x4C, 0x8B, 0x02, 0xA7, 0xF5, 0x93, 0xFD, 0x1F, 0x19}
	if got := tok.DotNetBytes(); got != tag {
		t.Errorf("DotNetBytes() = % x, want % x", got, tag)
	}
	if got := LockTokenFromDotNet(tag); got != tok {
		t.Errorf("LockTokenFromDotNet = %s, want %s", got, tok)
	}
	u := NewUUID()
	if u[6]>>4 != 4 || u[8]>>6 != 2 {
		t.Errorf("NewUUID %s is not version 4", u)
	}
	e := newEnv(t, "", nil)
	e.send("a")
	m := e.recvOne(e.q)
	if m.LockToken[6]>>4 != 4 {
		t.Errorf("lock token %s is not version 4", m.LockToken)
	}
}
