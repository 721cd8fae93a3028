package store

import (
	"fmt"
	"time"
)

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
	if q.dd.pending() {
		q.dd.prune(now)
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
