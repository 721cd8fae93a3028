package store

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ffpipe/ffpipe/internal/emulator/servicebus/sqlfilter"
)

// topicEnv opens a store with topic "t" (duplicate detection on) and the
// subscriptions "a" (no rules) and "b" (only label "b"), in memory unless
// dir is set.
type topicEnv struct {
	*env
	t    *Topic
	a, b *Queue
}

func newTopicEnv(t *testing.T, dir string) *topicEnv {
	t.Helper()
	a := DefaultSubscriptionConfig("a")
	b := DefaultSubscriptionConfig("b")
	b.Rules = []RuleConfig{{Name: "only-b", FilterType: FilterCorrelation, Correlation: CorrelationFilter{Label: "b"}}}
	tc := TopicConfig{Name: "t", RequiresDuplicateDetection: true, DuplicateDetectionHistoryTimeWindow: time.Minute,
		Subscriptions: []SubscriptionConfig{a, b}}
	clock := newFakeClock()
	e := &env{t: t, clock: clock, opts: Options{Dir: dir, Now: clock.Now,
		Config: &Config{Queues: []QueueConfig{testQueueConfig("q")}, Topics: []TopicConfig{tc}}}}
	e.open()
	t.Cleanup(func() { e.s.Close() })
	te := &topicEnv{env: e}
	te.bind()
	return te
}

func (te *topicEnv) bind() {
	var err error
	te.t, err = te.s.Topic("T")
	ok(te.env.t, err)
	te.a = mustQueue(te.env.t, te.s, "t/subscriptions/a")
	te.b = mustQueue(te.env.t, te.s, "T/Subscriptions/B")
}

func labelled(body, label, id string) Incoming {
	m := &sqlfilter.Message{}
	if label != "" {
		m.SetSystem(sqlfilter.SysLabel, label)
	}
	return Incoming{Body: []byte(body), MessageID: id, Props: m}
}

func (te *topicEnv) publish(in ...Incoming) []SendResult {
	te.env.t.Helper()
	res, err := te.t.Send(bg, in)
	ok(te.env.t, err)
	return res
}

func TestTopicRoutesAndSharesSequenceNumbers(t *testing.T) {
	te := newTopicEnv(t, "")
	res := te.publish(labelled("x", "", "1"), labelled("y", "b", "2"), labelled("dup", "b", "1"))
	if !res[2].Duplicate || res[2].SequenceNumber != res[0].SequenceNumber || res[1].SequenceNumber != res[0].SequenceNumber+1 {
		t.Fatalf("send results %+v: want consecutive numbers and the third a duplicate of the first", res)
	}
	if got := bodies(te.recv(te.a, 10, PeekLock)); got != "x,y" {
		t.Errorf("subscription a: got %q, want x,y", got)
	}
	gotB := te.recv(te.b, 10, PeekLock)
	if bodies(gotB) != "y" || gotB[0].SequenceNumber != res[1].SequenceNumber {
		t.Errorf("subscription b: got %q seq %v, want y seq %d", bodies(gotB), seqsOf(gotB), res[1].SequenceNumber)
	}
	// Settling one copy leaves the other.
	ok(t, te.b.Complete(bg, gotB[0].LockToken))
	if c := te.a.Counts(); c.Active != 2 {
		t.Errorf("subscription a after completing b's copy: %+v, want 2 active", c)
	}
	if _, err := te.a.Send(bg, []Incoming{{Body: []byte("z")}}); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("send to a subscription: got %v, want ErrNotAllowed", err)
	}
}

func TestTopicTTLAndSchedule(t *testing.T) {
	te := newTopicEnv(t, "")
	long := labelled("long", "b", "")
	long.TTL = 48 * time.Hour
	sched := labelled("later", "b", "")
	sched.ScheduledAt = te.clock.Now().Add(time.Minute)
	res := te.publish(long, sched, labelled("gone", "b", ""))
	msgs, err := te.b.Peek(0, 10)
	ok(t, err)
	if len(msgs) != 3 || msgs[0].TTL != time.Hour || msgs[1].State != StateScheduled {
		t.Fatalf("peek: got %+v, want TTL capped at 1h and the second scheduled", msgs)
	}
	ok(t, te.t.CancelScheduled(bg, []int64{res[1].SequenceNumber, 999}))
	for _, q := range []*Queue{te.a, te.b} {
		if c := q.Counts(); c.Scheduled != 0 || c.Active != 2 {
			t.Errorf("%s after cancel: %+v, want 2 active, none scheduled", q.Name(), c)
		}
	}
}

func TestTopicDurable(t *testing.T) {
	te := newTopicEnv(t, t.TempDir())
	first := te.publish(labelled("x", "b", "id-1"), labelled("y", "", "id-2"))
	m := te.recvOne(te.b)
	ok(t, te.b.DeadLetter(bg, m.LockToken, "why", "because", nil))
	check := func(stage string) {
		t.Helper()
		if got := bodies(te.recv(te.a, 10, PeekLock)); got != "x,y" {
			t.Errorf("%s: subscription a: got %q, want x,y", stage, got)
		}
		dl, err := te.s.Queue("t/Subscriptions/b/$DeadLetterQueue")
		ok(t, err)
		if got := te.recv(dl, 10, PeekLock); bodies(got) != "x" || got[0].DeadLetterReason != "why" {
			t.Errorf("%s: b's dead-letter queue: got %+v", stage, got)
		}
		// The duplicate window and the sequence numbers survive.
		res := te.publish(labelled("again", "", "id-1"), labelled("new", "", fmt.Sprint("id-", stage)))
		if !res[0].Duplicate || res[1].SequenceNumber <= first[1].SequenceNumber {
			t.Errorf("%s: after reopen got %+v, want a duplicate and a number above %d", stage, res, first[1].SequenceNumber)
		}
		first[1] = res[1]
		ok(t, te.s.Sync(bg))
	}
	te.reopen()
	te.bind()
	check("reopen")
	ok(t, te.s.Compact(bg))
	te.reopen()
	te.bind()
	// reopen's check added "new" to subscription a.
	if got := bodies(te.recv(te.a, 10, PeekLock)); got != "x,y,new" {
		t.Errorf("after compaction: subscription a: got %q, want x,y,new", got)
	}
	dl, err := te.s.Queue("t/Subscriptions/b/$DeadLetterQueue")
	ok(t, err)
	if got := te.recv(dl, 10, PeekLock); bodies(got) != "x" {
		t.Errorf("after compaction: b's dead-letter queue: got %q, want x", bodies(got))
	}
	res := te.publish(labelled("again", "", "id-1"))
	if !res[0].Duplicate {
		t.Errorf("after compaction: id-1 is no longer a duplicate")
	}
}

func TestEntityResolution(t *testing.T) {
	te := newTopicEnv(t, "")
	tests := []struct {
		path string
		kind EntityKind
		dlq  bool
		name string // Queue.Name, "" for a topic
	}{
		{"q", KindQueue, false, "q"},
		{"/Q/", KindQueue, false, "q"},
		{"q/$deadletterqueue", KindQueue, true, "q/$DeadLetterQueue"},
		{"t", KindTopic, false, ""},
		{"T/subscriptions/A", KindSubscription, false, "t/Subscriptions/a"},
		{"t/Subscriptions/b/$DeadLetterQueue", KindSubscription, true, "t/Subscriptions/b/$DeadLetterQueue"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			e, err := te.s.Entity(tt.path)
			ok(t, err)
			name := ""
			if e.Queue != nil {
				name = e.Queue.Name()
			}
			if e.Kind != tt.kind || e.DeadLetter != tt.dlq || name != tt.name {
				t.Errorf("got kind %v dlq %v queue %q, want %v %v %q", e.Kind, e.DeadLetter, name, tt.kind, tt.dlq, tt.name)
			}
			if (tt.kind == KindQueue) != (e.Topic == nil) {
				t.Errorf("Topic = %v for a %v", e.Topic, e.Kind)
			}
		})
	}
	for _, bad := range []string{"t/$DeadLetterQueue", "t/Subscriptions/c", "t/Subscriptions", "nope", "q/Subscriptions/a"} {
		if _, err := te.s.Entity(bad); !errors.Is(err, ErrNotFound) {
			t.Errorf("Entity(%q): got %v, want ErrNotFound", bad, err)
		}
	}
	if _, err := te.s.Queue("t"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Queue(topic): got %v, want ErrNotFound", err)
	}
	if fmt.Sprint(te.s.Queues(), te.s.Topics(), te.t.Subscriptions()) != "[q] [t] [t/Subscriptions/a t/Subscriptions/b]" {
		t.Errorf("listing: got %v %v %v", te.s.Queues(), te.s.Topics(), te.t.Subscriptions())
	}
}

// TestTopicActionCopies: the unchanged copy keeps the message's sequence
// number, each action copy gets its own; a failing action gives no copy.
func TestTopicActionCopies(t *testing.T) {
	s := DefaultSubscriptionConfig("s")
	s.Rules = []RuleConfig{
		{Name: "tag", FilterType: FilterTrue, Action: "SET tagged = TRUE"},
		{Name: "plain", FilterType: FilterTrue},
		{Name: "broken", FilterType: FilterTrue, Action: "SET x = 1 / n"},
	}
	st, err := Open(Options{Config: &Config{Topics: []TopicConfig{{Name: "t", Subscriptions: []SubscriptionConfig{s}}}}})
	ok(t, err)
	defer st.Close()
	top, err := st.Topic("t")
	ok(t, err)
	var rewrites []string
	in := Incoming{Body: []byte("m"), Props: &sqlfilter.Message{}, Annotate: func(body []byte, ch []sqlfilter.Change) ([]byte, error) {
		rewrites = append(rewrites, fmt.Sprint(ch))
		return append(append([]byte(nil), body...), "+annotated"...), nil
	}}
	in.Props.SetUser("n", int64(0))
	res, err := top.Send(bg, []Incoming{in})
	ok(t, err)
	q, err := st.Queue("t/Subscriptions/s")
	ok(t, err)
	msgs, err := q.Peek(0, 10)
	ok(t, err)
	if len(msgs) != 2 || string(msgs[0].Body) != "m" || msgs[0].SequenceNumber != res[0].SequenceNumber ||
		string(msgs[1].Body) != "m+annotated" || msgs[1].SequenceNumber <= res[0].SequenceNumber {
		t.Fatalf("got %+v, want the plain copy with seq %d, then the annotated one", msgs, res[0].SequenceNumber)
	}
	if fmt.Sprint(rewrites) != "[[{tagged true false} {RuleName tag false}]]" {
		t.Errorf("rewrites: got %v", rewrites)
	}
	// The next message is numbered after the extra copy.
	res2, err := top.Send(bg, []Incoming{{Body: []byte("next")}})
	ok(t, err)
	if res2[0].SequenceNumber <= msgs[1].SequenceNumber {
		t.Errorf("next message: seq %d, want above %d", res2[0].SequenceNumber, msgs[1].SequenceNumber)
	}
}
