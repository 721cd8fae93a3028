package store

import (
	"context"
	crand "crypto/rand"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type subID uint8

const (
	subMain subID = 0
	subDLQ  subID = 1
)

// entry is one stored message. Body slices are never modified in place:
// a Modify replaces the slice, so snapshots may share them.
type entry struct {
	seq           int64
	body          []byte
	messageID     string
	acceptedAt    int64 // unix ns
	scheduledAt   int64 // unix ns, 0 = none
	ttl           time.Duration
	deliveryCount uint32
	sub           subID
	state         State
	reason, desc  string

	locked      bool
	token       LockToken
	lockedUntil int64 // unix ns
	inAvail     bool  // in subs[sub].avail
}

func (e *entry) enqueuedAt() int64 {
	if e.scheduledAt > e.acceptedAt {
		return e.scheduledAt
	}
	return e.acceptedAt
}

func (e *entry) expiresAt() int64 {
	t := e.enqueuedAt() + int64(e.ttl)
	if t < e.enqueuedAt() { // overflow
		return 1<<63 - 1
	}
	return t
}

type subState struct {
	avail  seqHeap
	notify chan struct{}
	waited bool
}

// signal wakes everyone blocked on the channel Wait returned.
func (s *subState) signal() {
	if s.waited {
		close(s.notify)
		s.notify = make(chan struct{})
		s.waited = false
	}
}

// queue is one configured queue with its dead-letter subqueue. One mutex
// guards both.
type queue struct {
	s       *Store
	key     string // lower-case name
	topic   *topic // the topic of a subscription; nil for a queue
	cfg     QueueConfig
	handles [2]Queue

	mu      sync.Mutex
	closed  bool
	msgs    map[int64]*entry
	subs    [2]subState
	locks   map[LockToken]*entry
	events  eventHeap
	lastSeq int64
	dd      dedup
	timer   *time.Timer
	timerAt int64
	rng     *rand.ChaCha8
	rec     []byte       // log records of the current operation
	bytes   [2]int64     // body bytes per subqueue
	live    atomic.Int64 // approximate encoded size of all messages, for compaction
}

func newQueue(s *Store, cfg QueueConfig) *queue {
	var seed [32]byte
	_, _ = crand.Read(seed[:])
	q := &queue{
		s:     s,
		key:   strings.ToLower(cfg.Name),
		cfg:   cfg,
		msgs:  map[int64]*entry{},
		locks: map[LockToken]*entry{},
		dd:    newDedup(cfg.DuplicateDetectionHistoryTimeWindow),
		rng:   rand.NewChaCha8(seed),
	}
	for i := range q.subs {
		q.subs[i].notify = make(chan struct{})
		q.handles[i] = Queue{q: q, sub: subID(i)}
	}
	return q
}

// Queue is a handle on one entity: a queue or its dead-letter subqueue.
// Get it from [Store.Queue]. All methods are safe for concurrent use.
type Queue struct {
	q   *queue
	sub subID
}

// Name returns the entity path: the configured queue name, plus
// "/$DeadLetterQueue" for the dead-letter subqueue.
func (h *Queue) Name() string {
	if h.sub == subDLQ {
		return h.q.cfg.Name + DeadLetterSuffix
	}
	return h.q.cfg.Name
}

// IsDeadLetter reports whether h is a dead-letter subqueue.
func (h *Queue) IsDeadLetter() bool { return h.sub == subDLQ }

// Config returns the queue's configuration (defaults filled in).
func (h *Queue) Config() QueueConfig { return h.q.cfg }

// DeadLetter returns the dead-letter subqueue of h's queue (h itself if it
// is one).
func (h *Queue) DeadLetterQueue() *Queue { return &h.q.handles[subDLQ] }

func (q *queue) nowNS() int64 { return q.s.now().UnixNano() }

// begin locks the queue, checks it is open and applies due events.
func (q *queue) begin() (int64, error) {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return 0, ErrClosed
	}
	now := q.nowNS()
	q.advance(now)
	return now, nil
}

// end writes the operation's log records, re-arms the timer and unlocks.
// It returns the log batch (nil in memory).
func (q *queue) end(now int64) *batch { return q.endSync(now, false) }

// endSync is end for an operation that will wait for its batch with
// sync set: the batch is then fsynced before it completes. Other batches
// are written at once and synced within syncInterval or by the next
// synced batch.
func (q *queue) endSync(now int64, sync bool) *batch {
	var b *batch
	if len(q.rec) > 0 && q.s.wal != nil {
		b = q.s.wal.appendOp(sync, q.rec)
	}
	q.rec = q.rec[:0]
	q.armLocked(now)
	q.mu.Unlock()
	return b
}

func (q *queue) wait(ctx context.Context, b *batch, sync bool) error {
	if b == nil || !sync {
		if b != nil && b.failed() {
			return b.err
		}
		return nil
	}
	return q.s.wal.wait(ctx, b)
}

// Send stores msgs in order with consecutive sequence numbers and returns
// once they are durable (synced to the log; at once in memory). The batch
// is accepted or refused as a whole: ErrMessageTooLarge if any body is
// larger than Options.MaxMessageSize, ErrQuotaExceeded if the queue would
// exceed Options.MaxQueueBytes, ErrNotAllowed on a dead-letter subqueue or
// a subscription (send to its topic instead). Duplicates
// (RequiresDuplicateDetection, same MessageID inside the window, also
// within one batch) are reported in the result and not stored. If ctx
// ends while waiting for the disk, Send returns ctx.Err() and the messages
// may or may not be stored.
func (h *Queue) Send(ctx context.Context, msgs []Incoming) ([]SendResult, error) {
	q := h.q
	if h.sub == subDLQ || q.topic != nil {
		return nil, fmt.Errorf("send to %s: %w", h.Name(), ErrNotAllowed)
	}
	size, err := checkSizes(q.s, h.Name(), msgs)
	if err != nil {
		return nil, err
	}
	now, err := q.begin()
	if err != nil {
		return nil, fmt.Errorf("send to %s: %w", h.Name(), err)
	}
	if q.overQuota(size) {
		q.end(now)
		return nil, fmt.Errorf("send to %s: %w", h.Name(), ErrQuotaExceeded)
	}
	res := make([]SendResult, len(msgs))
	signal := false
	for i := range msgs {
		in := &msgs[i]
		if q.cfg.RequiresDuplicateDetection && in.MessageID != "" {
			if seq, dup := q.dd.lookup(in.MessageID, now); dup {
				res[i] = SendResult{SequenceNumber: seq, Duplicate: true}
				continue
			}
		}
		q.lastSeq++
		if q.enqueue(in, q.lastSeq, now) {
			signal = true
		}
		if q.cfg.RequiresDuplicateDetection && in.MessageID != "" {
			q.dd.remember(in.MessageID, q.lastSeq, now)
		}
		res[i] = SendResult{SequenceNumber: q.lastSeq}
	}
	if signal {
		q.subs[subMain].signal()
	}
	b := q.endSync(now, true)
	if err := q.wait(ctx, b, true); err != nil {
		return nil, fmt.Errorf("send to %s: %w", h.Name(), err)
	}
	return res, nil
}

// checkSizes checks every body against Options.MaxMessageSize and returns
// their total.
func checkSizes(s *Store, name string, msgs []Incoming) (int64, error) {
	var size int64
	for i := range msgs {
		if n := len(msgs[i].Body); n > s.opts.MaxMessageSize {
			return 0, fmt.Errorf("send to %s: message %d is %d bytes, limit %d: %w", name, i, n, s.opts.MaxMessageSize, ErrMessageTooLarge)
		}
		size += int64(len(msgs[i].Body))
	}
	return size, nil
}

// overQuota reports whether adding size bytes would exceed
// Options.MaxQueueBytes.
func (q *queue) overQuota(size int64) bool {
	max := q.s.opts.MaxQueueBytes
	return max > 0 && q.bytes[0]+q.bytes[1]+size > max
}

// enqueue stores a new message under sequence number seq and logs it:
// scheduled, or available at once. It reports whether receivers must be
// woken. The effective TTL is min(in.TTL, DefaultMessageTimeToLive).
func (q *queue) enqueue(in *Incoming, seq, now int64) bool {
	e := &entry{
		seq:        seq,
		body:       in.Body,
		messageID:  in.MessageID,
		acceptedAt: now,
		ttl:        q.cfg.DefaultMessageTimeToLive,
	}
	if in.TTL > 0 && in.TTL < e.ttl {
		e.ttl = in.TTL
	}
	if !in.ScheduledAt.IsZero() {
		if at := in.ScheduledAt.UnixNano(); at > now {
			e.scheduledAt = at
			e.state = StateScheduled
		}
	}
	q.insert(e)
	q.logPut(e)
	if e.state == StateScheduled {
		q.pushEvent(event{at: e.scheduledAt, seq: e.seq, kind: evSchedule})
		return false
	}
	q.activate(e)
	return true
}

// CancelScheduled removes scheduled messages by sequence number. Unknown
// numbers and messages that are no longer scheduled are ignored. Returns
// once the change is durable.
func (h *Queue) CancelScheduled(ctx context.Context, seqs []int64) error {
	q := h.q
	now, err := q.begin()
	if err != nil {
		return fmt.Errorf("cancel scheduled on %s: %w", h.Name(), err)
	}
	for _, seq := range seqs {
		if e := q.msgs[seq]; e != nil && e.sub == h.sub && e.state == StateScheduled {
			q.remove(e)
		}
	}
	b := q.endSync(now, true)
	if err := q.wait(ctx, b, true); err != nil {
		return fmt.Errorf("cancel scheduled on %s: %w", h.Name(), err)
	}
	return nil
}

// Receive takes up to max available messages in ascending sequence order
// without blocking (an empty result means none is available; use Wait).
// PeekLock locks each message for LockDuration and returns its LockToken;
// ReceiveAndDelete removes them (a crash right after can lose them, as in
// Service Bus).
func (h *Queue) Receive(max int, mode ReceiveMode) ([]Message, error) {
	q := h.q
	if max <= 0 || (mode != PeekLock && mode != ReceiveAndDelete) {
		return nil, fmt.Errorf("receive from %s: max %d mode %d: %w", h.Name(), max, mode, ErrInvalid)
	}
	now, err := q.begin()
	if err != nil {
		return nil, fmt.Errorf("receive from %s: %w", h.Name(), err)
	}
	var out []Message
	sub := &q.subs[h.sub]
	for len(out) < max {
		seq, ok := sub.avail.pop()
		if !ok {
			break
		}
		e := q.msgs[seq]
		if e == nil || e.sub != h.sub || !e.inAvail {
			continue
		}
		e.inAvail = false
		if e.state != StateActive || e.locked {
			continue
		}
		if e.sub == subMain && now >= e.expiresAt() {
			q.expire(e)
			continue
		}
		if mode == PeekLock {
			q.lock(e, now)
			out = append(out, q.snapshot(e, true))
		} else {
			out = append(out, q.snapshot(e, false))
			q.remove(e)
		}
	}
	q.end(now)
	return out, nil
}

// ReceiveWait is Receive that blocks until at least one message is
// available, ctx ends (returning ctx.Err()) or the store closes
// (ErrClosed).
func (h *Queue) ReceiveWait(ctx context.Context, max int, mode ReceiveMode) ([]Message, error) {
	for {
		ch := h.Wait()
		msgs, err := h.Receive(max, mode)
		if err != nil || len(msgs) > 0 {
			return msgs, err
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-h.q.s.closed:
			return nil, fmt.Errorf("receive from %s: %w", h.Name(), ErrClosed)
		}
	}
}

// Wait returns a channel that is closed when messages may have become
// available in this entity: a send, an abandon or release, a lock expiry, a
// scheduled message's time, a dead-lettering (on the dead-letter
// subqueue), or Close. Call Wait before Receive and block on the channel
// only if Receive returned nothing, so that no wake-up is lost.
func (h *Queue) Wait() <-chan struct{} {
	q := h.q
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		ch := make(chan struct{})
		close(ch)
		return ch
	}
	s := &q.subs[h.sub]
	s.waited = true
	return s.notify
}
