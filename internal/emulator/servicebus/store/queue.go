package store

import (
	"context"
	crand "crypto/rand"
	"fmt"
	"math/rand/v2"
	"slices"
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

type dupEntry struct {
	seq int64
	at  int64
}

type dupRec struct {
	id string
	at int64
}

// queue is one configured queue with its dead-letter subqueue. One mutex
// guards both.
type queue struct {
	s       *Store
	key     string // lower-case name
	cfg     QueueConfig
	handles [2]Queue

	mu      sync.Mutex
	closed  bool
	msgs    map[int64]*entry
	subs    [2]subState
	locks   map[LockToken]*entry
	events  eventHeap
	lastSeq int64
	dups    map[string]dupEntry
	dupFIFO []dupRec
	dupHead int
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
		dups:  map[string]dupEntry{},
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
// exceed Options.MaxQueueBytes, ErrNotAllowed on a dead-letter subqueue.
// Duplicates (RequiresDuplicateDetection, same MessageID inside the
// window, also within one batch) are reported in the result and not
// stored. If ctx ends while waiting for the disk, Send returns ctx.Err()
// and the messages may or may not be stored.
func (h *Queue) Send(ctx context.Context, msgs []Incoming) ([]SendResult, error) {
	q := h.q
	if h.sub == subDLQ {
		return nil, fmt.Errorf("send to %s: %w", h.Name(), ErrNotAllowed)
	}
	var size int64
	for i := range msgs {
		if n := len(msgs[i].Body); n > q.s.opts.MaxMessageSize {
			return nil, fmt.Errorf("send to %s: message %d is %d bytes, limit %d: %w", h.Name(), i, n, q.s.opts.MaxMessageSize, ErrMessageTooLarge)
		}
		size += int64(len(msgs[i].Body))
	}
	now, err := q.begin()
	if err != nil {
		return nil, fmt.Errorf("send to %s: %w", h.Name(), err)
	}
	if max := q.s.opts.MaxQueueBytes; max > 0 && q.bytes[0]+q.bytes[1]+size > max {
		q.end(now)
		return nil, fmt.Errorf("send to %s: %w", h.Name(), ErrQuotaExceeded)
	}
	res := make([]SendResult, len(msgs))
	signal := false
	for i := range msgs {
		in := &msgs[i]
		if q.cfg.RequiresDuplicateDetection && in.MessageID != "" {
			if seq, dup := q.isDuplicate(in.MessageID, now); dup {
				res[i] = SendResult{SequenceNumber: seq, Duplicate: true}
				continue
			}
		}
		q.lastSeq++
		e := &entry{
			seq:        q.lastSeq,
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
		if q.cfg.RequiresDuplicateDetection && in.MessageID != "" {
			q.rememberID(in.MessageID, e.seq, now)
		}
		if e.state == StateScheduled {
			q.pushEvent(event{at: e.scheduledAt, seq: e.seq, kind: evSchedule})
		} else {
			q.activate(e)
			signal = true
		}
		res[i] = SendResult{SequenceNumber: e.seq}
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

// lockedEntry finds the message locked by token in this entity.
func (h *Queue) lockedEntry(token LockToken, now int64) (*entry, error) {
	e := h.q.locks[token]
	if e == nil || e.sub != h.sub || !e.locked || e.lockedUntil <= now {
		return nil, ErrLockLost
	}
	return e, nil
}

func (q *queue) modify(e *entry, m Modify) (bool, error) {
	if m == nil {
		return false, nil
	}
	nb, err := m(e.body)
	if err != nil {
		return false, err
	}
	if len(nb) > q.s.opts.MaxMessageSize {
		return false, fmt.Errorf("modified message is %d bytes, limit %d: %w", len(nb), q.s.opts.MaxMessageSize, ErrMessageTooLarge)
	}
	q.bytes[e.sub] += int64(len(nb) - len(e.body))
	q.live.Add(int64(len(nb) - len(e.body)))
	e.body = nb
	return true, nil
}

// settle runs one settlement under the queue lock.
func (h *Queue) settle(ctx context.Context, op string, token LockToken, f func(e *entry, now int64) error) error {
	q := h.q
	now, err := q.begin()
	if err != nil {
		return fmt.Errorf("%s on %s: %w", op, h.Name(), err)
	}
	e, err := h.lockedEntry(token, now)
	if err == nil {
		err = f(e, now)
	}
	b := q.endSync(now, q.s.opts.SyncSettlements)
	if err != nil {
		return fmt.Errorf("%s %s on %s: %w", op, token, h.Name(), err)
	}
	if err := q.wait(ctx, b, q.s.opts.SyncSettlements); err != nil {
		return fmt.Errorf("%s on %s: %w", op, h.Name(), err)
	}
	return nil
}

// Complete removes the message locked by token. ErrLockLost if the lock is
// unknown, expired or from another entity. Settlements work from any link
// or connection: tokens are looked up per entity.
func (h *Queue) Complete(ctx context.Context, token LockToken) error {
	return h.settle(ctx, "complete", token, func(e *entry, now int64) error {
		h.q.remove(e)
		return nil
	})
}

// Abandon unlocks the message and raises its delivery count (except in
// the dead-letter subqueue). On the main queue a count reaching
// MaxDeliveryCount moves it to the dead-letter subqueue with reason
// MaxDeliveryCountExceeded. A deferred message stays deferred. modify, if
// not nil, rewrites the body first (properties-to-modify).
func (h *Queue) Abandon(ctx context.Context, token LockToken, modify Modify) error {
	return h.settle(ctx, "abandon", token, func(e *entry, now int64) error {
		changed, err := h.q.modify(e, modify)
		if err != nil {
			return err
		}
		h.q.unlockFailed(e, now, true, changed)
		return nil
	})
}

// Release unlocks the message without raising its delivery count (AMQP
// released: the SDK's releaser hands back prefetched messages). The
// message goes back to the head of the queue.
func (h *Queue) Release(ctx context.Context, token LockToken) error {
	return h.settle(ctx, "release", token, func(e *entry, now int64) error {
		h.q.unlockFailed(e, now, false, false)
		return nil
	})
}

// DeadLetter moves the locked message to the dead-letter subqueue with
// reason and description (both may be empty). modify, if not nil, rewrites
// the body first. ErrNotAllowed in the dead-letter subqueue.
func (h *Queue) DeadLetter(ctx context.Context, token LockToken, reason, description string, modify Modify) error {
	if h.sub == subDLQ {
		// Check the lock first so that a lost lock still reports ErrLockLost.
		return h.settle(ctx, "dead-letter", token, func(e *entry, now int64) error { return ErrNotAllowed })
	}
	return h.settle(ctx, "dead-letter", token, func(e *entry, now int64) error {
		changed, err := h.q.modify(e, modify)
		if err != nil {
			return err
		}
		h.q.moveToDLQ(e, reason, description, changed)
		return nil
	})
}

// Defer unlocks the message and makes it deferred: receivable only with
// ReceiveDeferred. The delivery count does not change. modify, if not
// nil, rewrites the body first.
func (h *Queue) Defer(ctx context.Context, token LockToken, modify Modify) error {
	return h.settle(ctx, "defer", token, func(e *entry, now int64) error {
		changed, err := h.q.modify(e, modify)
		if err != nil {
			return err
		}
		h.q.unlock(e)
		e.state = StateDeferred
		h.q.logUpdate(e, changed)
		return nil
	})
}

// RenewLock extends the lock to now + LockDuration and returns the new
// locked-until time. ErrLockLost if the lock is unknown or expired.
func (h *Queue) RenewLock(token LockToken) (time.Time, error) {
	var until int64
	err := h.settle(context.Background(), "renew lock", token, func(e *entry, now int64) error {
		e.lockedUntil = now + int64(h.q.cfg.LockDuration)
		h.q.pushEvent(event{at: e.lockedUntil, seq: e.seq, kind: evLock})
		until = e.lockedUntil
		return nil
	})
	if err != nil {
		return time.Time{}, err
	}
	return time.Unix(0, until), nil
}

// ReceiveDeferred takes deferred messages by sequence number, in the order
// asked (repeated numbers count once). Every number must name a deferred,
// unlocked message of this entity, otherwise nothing is taken and the
// error wraps ErrMessageNotFound. PeekLock locks them (State stays
// deferred); ReceiveAndDelete removes them.
func (h *Queue) ReceiveDeferred(ctx context.Context, seqs []int64, mode ReceiveMode) ([]Message, error) {
	q := h.q
	if mode != PeekLock && mode != ReceiveAndDelete {
		return nil, fmt.Errorf("receive deferred from %s: mode %d: %w", h.Name(), mode, ErrInvalid)
	}
	now, err := q.begin()
	if err != nil {
		return nil, fmt.Errorf("receive deferred from %s: %w", h.Name(), err)
	}
	var es []*entry
	seen := map[int64]bool{}
	for _, seq := range seqs {
		if seen[seq] {
			continue
		}
		seen[seq] = true
		e := q.msgs[seq]
		if e == nil || e.sub != h.sub || e.state != StateDeferred || e.locked {
			q.end(now)
			return nil, fmt.Errorf("receive deferred from %s: sequence number %d: %w", h.Name(), seq, ErrMessageNotFound)
		}
		es = append(es, e)
	}
	out := make([]Message, 0, len(es))
	for _, e := range es {
		if mode == PeekLock {
			q.lock(e, now)
			out = append(out, q.snapshot(e, true))
		} else {
			out = append(out, q.snapshot(e, false))
			q.remove(e)
		}
	}
	b := q.endSync(now, q.s.opts.SyncSettlements)
	if err := q.wait(ctx, b, q.s.opts.SyncSettlements); err != nil {
		return nil, fmt.Errorf("receive deferred from %s: %w", h.Name(), err)
	}
	return out, nil
}

// Peek returns up to max messages with sequence number >= from, in
// ascending order, in any state (active, locked, deferred, scheduled),
// without changing anything. Results carry no LockToken; LockedUntil is set
// for locked messages.
func (h *Queue) Peek(from int64, max int) ([]Message, error) {
	q := h.q
	if max <= 0 {
		return nil, fmt.Errorf("peek %s: max %d: %w", h.Name(), max, ErrInvalid)
	}
	now, err := q.begin()
	if err != nil {
		return nil, fmt.Errorf("peek %s: %w", h.Name(), err)
	}
	var seqs []int64
	if h.sub == subMain && from > 0 && q.lastSeq-from < int64(len(q.msgs)) {
		// Dense range: probe numbers instead of scanning the map.
		for seq := from; seq <= q.lastSeq && len(seqs) < max; seq++ {
			if e := q.msgs[seq]; e != nil && e.sub == h.sub {
				seqs = append(seqs, seq)
			}
		}
	} else {
		// Keep the max smallest numbers >= from: a bounded max-heap, so a
		// page of a big queue costs O(n log max), not a full sort.
		var top seqHeap // holds negated numbers: a max-heap of the kept ones
		for seq, e := range q.msgs {
			if seq < from || e.sub != h.sub {
				continue
			}
			if len(top) < max {
				top.push(-seq)
			} else if -top[0] > seq {
				top.pop()
				top.push(-seq)
			}
		}
		seqs = make([]int64, len(top))
		for i := range seqs {
			seqs[i] = -top[i]
		}
		slices.Sort(seqs)
	}
	out := make([]Message, 0, len(seqs))
	for _, seq := range seqs {
		m := q.snapshot(q.msgs[seq], false)
		out = append(out, m)
	}
	q.end(now)
	return out, nil
}

// Counts returns the numbers of messages in this entity.
func (h *Queue) Counts() Counts {
	q := h.q
	now, err := q.begin()
	if err != nil {
		return Counts{}
	}
	var c Counts
	for _, e := range q.msgs {
		if e.sub != h.sub {
			continue
		}
		switch e.state {
		case StateActive:
			c.Active++
		case StateDeferred:
			c.Deferred++
		case StateScheduled:
			c.Scheduled++
		}
		if e.locked {
			c.Locked++
		}
	}
	c.Bytes = q.bytes[h.sub]
	q.end(now)
	return c
}

// --- internal state transitions; all run with q.mu held ---

func (q *queue) snapshot(e *entry, withToken bool) Message {
	m := Message{
		SequenceNumber:        e.seq,
		Body:                  e.body,
		MessageID:             e.messageID,
		EnqueuedAt:            time.Unix(0, e.enqueuedAt()),
		TTL:                   e.ttl,
		DeliveryCount:         e.deliveryCount,
		State:                 e.state,
		DeadLetterReason:      e.reason,
		DeadLetterDescription: e.desc,
	}
	if e.sub == subMain {
		m.ExpiresAt = time.Unix(0, e.expiresAt())
	} else {
		m.DeadLettered = true
	}
	if e.scheduledAt != 0 {
		m.ScheduledAt = time.Unix(0, e.scheduledAt)
	}
	if e.locked {
		m.LockedUntil = time.Unix(0, e.lockedUntil)
		if withToken {
			m.LockToken = e.token
		}
	}
	return m
}

// logPut, logUpdate and logDelete record a change for the log (nothing in
// memory). end writes the records of one operation as one frame.
func (q *queue) logPut(e *entry) {
	if q.s.wal != nil {
		q.rec = appendPut(q.rec, q.key, e)
	}
}

func (q *queue) logUpdate(e *entry, withBody bool) {
	if q.s.wal != nil {
		q.rec = appendUpdate(q.rec, q.key, e, withBody)
	}
}

func (q *queue) logDelete(seq int64) {
	if q.s.wal != nil {
		q.rec = appendDelete(q.rec, q.key, seq)
	}
}

// insert adds a new entry to the index (no log record).
func (q *queue) insert(e *entry) {
	if old := q.msgs[e.seq]; old != nil {
		q.dropIndex(old)
	}
	q.msgs[e.seq] = e
	q.bytes[e.sub] += int64(len(e.body))
	q.live.Add(int64(len(e.body)) + recordOverhead)
	if e.seq > q.lastSeq {
		q.lastSeq = e.seq
	}
}

func (q *queue) dropIndex(e *entry) {
	if e.locked {
		delete(q.locks, e.token)
		e.locked = false
	}
	e.inAvail = false
	delete(q.msgs, e.seq)
	q.bytes[e.sub] -= int64(len(e.body))
	q.live.Add(-int64(len(e.body)) - recordOverhead)
}

// remove deletes a message and logs it.
func (q *queue) remove(e *entry) {
	q.dropIndex(e)
	q.logDelete(e.seq)
}

// activate makes an active, unlocked message available in its subqueue.
func (q *queue) activate(e *entry) {
	e.state = StateActive
	if !e.inAvail {
		e.inAvail = true
		q.subs[e.sub].avail.push(e.seq)
	}
	if e.sub == subMain {
		q.pushEvent(event{at: e.expiresAt(), seq: e.seq, kind: evExpire})
	}
}

func (q *queue) lock(e *entry, now int64) {
	t := q.newToken()
	e.locked = true
	e.token = t
	e.lockedUntil = now + int64(q.cfg.LockDuration)
	q.locks[t] = e
	q.pushEvent(event{at: e.lockedUntil, seq: e.seq, kind: evLock})
}

func (q *queue) unlock(e *entry) {
	if e.locked {
		delete(q.locks, e.token)
		e.locked = false
		e.token = LockToken{}
		e.lockedUntil = 0
	}
}

func (q *queue) newToken() LockToken {
	var t LockToken
	for {
		a, b := q.rng.Uint64(), q.rng.Uint64()
		for i := 0; i < 8; i++ {
			t[i] = byte(a >> (8 * i))
			t[8+i] = byte(b >> (8 * i))
		}
		t[6] = t[6]&0x0f | 0x40
		t[8] = t[8]&0x3f | 0x80
		if _, dup := q.locks[t]; !dup {
			return t
		}
	}
}

// unlockFailed ends a lock after a failed delivery: abandon (count=true),
// lock expiry (count=true) or release (count=false). bodyChanged says
// whether the log record must carry the body.
func (q *queue) unlockFailed(e *entry, now int64, count, bodyChanged bool) {
	q.unlock(e)
	if count && e.sub == subMain {
		e.deliveryCount++
	}
	if e.state == StateDeferred {
		if count && e.sub == subMain || bodyChanged {
			q.logUpdate(e, bodyChanged)
		}
		return
	}
	if e.sub == subMain && count && int(e.deliveryCount) >= q.cfg.MaxDeliveryCount {
		q.moveToDLQ(e, ReasonMaxDeliveryCountExceeded,
			fmt.Sprintf("Message could not be consumed after %d delivery attempts.", e.deliveryCount), bodyChanged)
		return
	}
	if e.sub == subMain && now >= e.expiresAt() {
		if count || bodyChanged {
			q.logUpdate(e, bodyChanged)
		}
		q.expire(e)
		return
	}
	if count && e.sub == subMain || bodyChanged {
		q.logUpdate(e, bodyChanged)
	}
	q.activate(e)
	q.subs[e.sub].signal()
}

// moveToDLQ moves e to the dead-letter subqueue, available, unlocked.
func (q *queue) moveToDLQ(e *entry, reason, desc string, bodyChanged bool) {
	q.unlock(e)
	e.inAvail = false
	q.bytes[e.sub] -= int64(len(e.body))
	e.sub = subDLQ
	q.bytes[e.sub] += int64(len(e.body))
	e.reason, e.desc = reason, desc
	q.logUpdate(e, bodyChanged)
	q.activate(e)
	q.subs[subDLQ].signal()
}

// expire handles an active, unlocked message past its TTL.
func (q *queue) expire(e *entry) {
	if q.cfg.DeadLetteringOnMessageExpiration {
		q.moveToDLQ(e, ReasonTTLExpired, DescriptionTTLExpired, false)
		return
	}
	q.remove(e)
}

func (q *queue) pushEvent(ev event) {
	q.events.push(ev)
	if len(q.events) > 4*len(q.msgs)+1024 {
		q.events.filter(q.eventLive)
	}
}

// eventLive reports whether ev may still change its message's state.
func (q *queue) eventLive(ev event) bool {
	e := q.msgs[ev.seq]
	if e == nil {
		return false
	}
	switch ev.kind {
	case evLock:
		return e.locked && e.lockedUntil == ev.at
	case evSchedule:
		return e.state == StateScheduled && e.scheduledAt == ev.at
	case evExpire:
		return e.sub == subMain && e.state == StateActive && e.expiresAt() == ev.at
	}
	return false
}

// advance applies every event due at now: lock expiries, scheduled
// activations and TTL expiries.
func (q *queue) advance(now int64) {
	for len(q.events) > 0 && q.events[0].at <= now {
		ev := q.events.pop()
		e := q.msgs[ev.seq]
		if e == nil {
			continue
		}
		switch ev.kind {
		case evLock:
			if e.locked && e.lockedUntil <= now {
				if e.state == StateDeferred {
					q.unlock(e) // the lock lapses; the message stays deferred
				} else {
					q.unlockFailed(e, now, true, false)
				}
			}
		case evSchedule:
			if e.state == StateScheduled && e.scheduledAt <= now {
				q.activate(e)
				if now >= e.expiresAt() {
					q.expire(e)
				} else {
					q.subs[e.sub].signal()
				}
			}
		case evExpire:
			if e.sub == subMain && e.state == StateActive && !e.locked && e.expiresAt() <= now {
				q.expire(e)
			}
		}
	}
	if q.dupHead < len(q.dupFIFO) {
		q.pruneIDs(now)
	}
}

// armLocked makes the timer fire at the next event.
func (q *queue) armLocked(now int64) {
	if q.closed {
		return
	}
	if len(q.events) == 0 {
		if q.timer != nil && q.timerAt != 0 {
			q.timer.Stop()
			q.timerAt = 0
		}
		return
	}
	next := q.events[0].at
	if next == q.timerAt {
		return
	}
	d := time.Duration(next - now)
	if d < 0 {
		d = 0
	}
	q.timerAt = next
	if q.timer == nil {
		q.timer = time.AfterFunc(d, q.onTimer)
	} else {
		q.timer.Reset(d)
	}
}

func (q *queue) onTimer() {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	q.timerAt = 0
	now := q.nowNS()
	q.advance(now)
	q.end(now)
}

// --- duplicate detection ---

func (q *queue) isDuplicate(id string, now int64) (int64, bool) {
	d, ok := q.dups[id]
	if ok && now < d.at+int64(q.cfg.DuplicateDetectionHistoryTimeWindow) {
		return d.seq, true
	}
	return 0, false
}

func (q *queue) rememberID(id string, seq, at int64) {
	q.dups[id] = dupEntry{seq: seq, at: at}
	q.dupFIFO = append(q.dupFIFO, dupRec{id: id, at: at})
}

func (q *queue) pruneIDs(now int64) {
	w := int64(q.cfg.DuplicateDetectionHistoryTimeWindow)
	for q.dupHead < len(q.dupFIFO) && q.dupFIFO[q.dupHead].at+w <= now {
		r := q.dupFIFO[q.dupHead]
		if d, ok := q.dups[r.id]; ok && d.at == r.at {
			delete(q.dups, r.id)
		}
		q.dupFIFO[q.dupHead] = dupRec{}
		q.dupHead++
	}
	if q.dupHead > 1024 && q.dupHead*2 > len(q.dupFIFO) {
		n := copy(q.dupFIFO, q.dupFIFO[q.dupHead:])
		q.dupFIFO = q.dupFIFO[:n]
		q.dupHead = 0
	}
}
