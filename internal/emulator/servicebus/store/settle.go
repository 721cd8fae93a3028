package store

import (
	"context"
	"fmt"
	"slices"
	"time"
)

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
