package store

import (
	"context"
	"fmt"
	"strings"
	"sync"
)

// topic is one configured topic. Its subscriptions are queues (with their
// dead-letter subqueues) that only the topic fills. The topic hands out
// the sequence numbers, so a message has the same number in every
// subscription, and a cancel-scheduled by number reaches every copy.
//
// Lock order: topic.mu, then the subscriptions' queue.mu in key order.
type topic struct {
	s    *Store
	key  string
	cfg  TopicConfig
	subs []*subscription // sorted by queue key
	h    Topic

	mu      sync.Mutex
	lastSeq int64
	dd      dedup
	rec     []byte // log records of the current operation
}

// subscription is a topic's subscription: a queue and its rules.
type subscription struct {
	q     *queue
	rules []*rule
}

func newTopic(s *Store, cfg TopicConfig) (*topic, error) {
	t := &topic{s: s, key: strings.ToLower(cfg.Name), cfg: cfg, dd: newDedup(cfg.DuplicateDetectionHistoryTimeWindow)}
	t.h = Topic{t: t}
	for _, sc := range cfg.Subscriptions {
		qc := sc.QueueConfig
		qc.Name = SubscriptionPath(cfg.Name, sc.Name)
		sub := &subscription{q: newQueue(s, qc)}
		sub.q.topic = t
		for i := range sc.Rules {
			r, err := compileRule(&sc.Rules[i])
			if err != nil {
				return nil, fmt.Errorf("topic %s subscription %s rule %s: %w", cfg.Name, sc.Name, sc.Rules[i].Name, err)
			}
			sub.rules = append(sub.rules, r)
		}
		if len(sub.rules) == 0 {
			sub.rules = []*rule{trueRule}
		}
		t.subs = append(t.subs, sub)
	}
	sortSubs(t.subs)
	return t, nil
}

func sortSubs(subs []*subscription) {
	for i := 1; i < len(subs); i++ {
		for j := i; j > 0 && subs[j].q.key < subs[j-1].q.key; j-- {
			subs[j], subs[j-1] = subs[j-1], subs[j]
		}
	}
}

// Topic is a handle on a topic: the entity senders send to. Get it from
// [Store.Topic] or [Store.Entity]. All methods are safe for concurrent use.
type Topic struct {
	t *topic
}

// Name returns the configured topic name.
func (h *Topic) Name() string { return h.t.cfg.Name }

// Config returns the topic's configuration (defaults filled in).
func (h *Topic) Config() TopicConfig { return h.t.cfg }

// Subscriptions returns the entity paths of the topic's subscriptions
// ("<topic>/Subscriptions/<name>"), in key order.
func (h *Topic) Subscriptions() []string {
	out := make([]string, len(h.t.subs))
	for i, s := range h.t.subs {
		out[i] = s.q.cfg.Name
	}
	return out
}

// Send is Queue.Send for a topic. Each message gets the next sequence
// number of the topic and a copy in every subscription with a matching
// rule (a message no rule matches is accepted and dropped, as in Service
// Bus); see copies for rules with actions. Its TTL is capped by the
// topic's DefaultMessageTimeToLive, then by each subscription's.
// Duplicate detection is the topic's. The batch is stored atomically: all
// copies of all messages are one log frame. ErrQuotaExceeded if a
// subscription would exceed Options.MaxQueueBytes.
func (h *Topic) Send(ctx context.Context, msgs []Incoming) ([]SendResult, error) {
	t := h.t
	if _, err := checkSizes(t.s, t.cfg.Name, msgs); err != nil {
		return nil, err
	}
	// Rules and actions only read the message: run them before taking any
	// lock.
	plans := make([][]subCopy, len(msgs))
	for i := range msgs {
		plans[i] = t.copies(&msgs[i])
	}
	t.mu.Lock()
	select {
	case <-t.s.closed:
		t.mu.Unlock()
		return nil, fmt.Errorf("send to %s: %w", t.cfg.Name, ErrClosed)
	default:
	}
	now := t.s.now().UnixNano()
	if t.dd.pending() {
		t.dd.prune(now)
	}
	res := make([]SendResult, len(msgs))
	var routes []route
	var accepted []acceptedID
	seq := t.lastSeq
	seen := map[string]int64{} // duplicates inside this batch
	for i := range msgs {
		in := &msgs[i]
		dedup := t.cfg.RequiresDuplicateDetection && in.MessageID != ""
		if dedup {
			if s, dup := t.dd.lookup(in.MessageID, now); dup {
				res[i] = SendResult{SequenceNumber: s, Duplicate: true}
				continue
			}
			if s, dup := seen[in.MessageID]; dup {
				res[i] = SendResult{SequenceNumber: s, Duplicate: true}
				continue
			}
		}
		seq++
		res[i] = SendResult{SequenceNumber: seq}
		if dedup {
			seen[in.MessageID] = seq
			accepted = append(accepted, acceptedID{id: in.MessageID, seq: seq})
		}
		routes, seq = t.route(routes, in, plans[i], seq)
	}
	b, err := t.store(routes, accepted, seq, now)
	t.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("send to %s: %w", t.cfg.Name, err)
	}
	if b != nil {
		if err := t.s.wal.wait(ctx, b); err != nil {
			return nil, fmt.Errorf("send to %s: %w", t.cfg.Name, err)
		}
	}
	return res, nil
}

// store puts the routed copies into their subscriptions and logs them,
// with the topic's new last sequence number and duplicate-detection
// entries (accepted: id and sequence number), as one frame. It runs with
// t.mu held and returns the log batch to wait for (nil in memory). On
// error nothing changed.
func (t *topic) store(routes []route, accepted []acceptedID, lastSeq, now int64) (*batch, error) {
	want := make([]bool, len(t.subs))
	size := make([]int64, len(t.subs))
	for _, r := range routes {
		want[r.sub] = true
		size[r.sub] += int64(len(r.in.Body))
	}
	locked, err := t.lockSubs(func(i int) bool { return want[i] }, now)
	if err != nil {
		return nil, err
	}
	for _, i := range locked {
		if t.subs[i].q.overQuota(size[i]) {
			t.unlockSubs(locked, now)
			return nil, fmt.Errorf("subscription %s: %w", t.subs[i].q.cfg.Name, ErrQuotaExceeded)
		}
	}
	signal := make([]bool, len(t.subs))
	for _, r := range routes {
		if t.subs[r.sub].q.enqueue(r.in, r.seq, now) {
			signal[r.sub] = true
		}
	}
	for _, i := range locked {
		if signal[i] {
			t.subs[i].q.subs[subMain].signal()
		}
	}
	changed := lastSeq != t.lastSeq
	t.lastSeq = lastSeq
	for _, a := range accepted {
		t.dd.remember(a.id, a.seq, now)
		t.logDup(a.id, a.seq, now)
	}
	if changed {
		t.logSeq()
	}
	b := t.flush(locked, true)
	t.unlockSubs(locked, now)
	return b, nil
}

// lockSubs locks the subscriptions selected by want, in key order, and
// applies their due events. It returns their indexes.
func (t *topic) lockSubs(want func(i int) bool, now int64) ([]int, error) {
	var locked []int
	for i, sub := range t.subs {
		if !want(i) {
			continue
		}
		q := sub.q
		q.mu.Lock()
		if q.closed {
			q.mu.Unlock()
			t.unlockSubs(locked, now)
			return nil, ErrClosed
		}
		q.advance(now)
		locked = append(locked, i)
	}
	return locked, nil
}

// flush writes the records of the topic and of the locked subscriptions
// as one log frame (nothing in memory) and returns its batch.
func (t *topic) flush(locked []int, sync bool) *batch {
	if t.s.wal == nil {
		t.rec = t.rec[:0]
		for _, i := range locked {
			t.subs[i].q.rec = t.subs[i].q.rec[:0]
		}
		return nil
	}
	recs := t.rec
	for _, i := range locked {
		recs = append(recs, t.subs[i].q.rec...)
		t.subs[i].q.rec = t.subs[i].q.rec[:0]
	}
	t.rec = recs[:0]
	if len(recs) == 0 {
		return nil
	}
	return t.s.wal.appendOp(sync, recs)
}

func (t *topic) unlockSubs(locked []int, now int64) {
	for _, i := range locked {
		q := t.subs[i].q
		q.armLocked(now)
		q.mu.Unlock()
	}
}

func (t *topic) logSeq() {
	if t.s.wal != nil {
		t.rec = appendSeq(t.rec, t.key, t.lastSeq)
	}
}

func (t *topic) logDup(id string, seq, at int64) {
	if t.s.wal != nil {
		t.rec = appendDup(t.rec, t.key, seq, id, at)
	}
}

// CancelScheduled removes the scheduled messages with these sequence
// numbers from every subscription. Unknown numbers and messages that are
// no longer scheduled are ignored. Returns once the change is durable.
func (h *Topic) CancelScheduled(ctx context.Context, seqs []int64) error {
	t := h.t
	t.mu.Lock()
	now := t.s.now().UnixNano()
	locked, err := t.lockSubs(func(int) bool { return true }, now)
	if err != nil {
		t.mu.Unlock()
		return fmt.Errorf("cancel scheduled on %s: %w", t.cfg.Name, err)
	}
	for _, i := range locked {
		q := t.subs[i].q
		for _, seq := range seqs {
			if e := q.msgs[seq]; e != nil && e.sub == subMain && e.state == StateScheduled {
				q.remove(e)
			}
		}
	}
	b := t.flush(locked, true)
	t.unlockSubs(locked, now)
	t.mu.Unlock()
	if b != nil {
		if err := t.s.wal.wait(ctx, b); err != nil {
			return fmt.Errorf("cancel scheduled on %s: %w", t.cfg.Name, err)
		}
	}
	return nil
}
