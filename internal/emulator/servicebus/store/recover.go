package store

import "sort"

// apply replays one record into the store (recovery). It returns false for
// records of unknown queues.
func (s *Store) apply(r *record) bool {
	q := s.queues[r.queue]
	if q == nil {
		if t := s.topics[r.queue]; t != nil {
			t.apply(r)
			return true
		}
		return false
	}
	switch r.kind {
	case recPut:
		e := &entry{
			seq:           r.seq,
			body:          append([]byte(nil), r.body...),
			messageID:     r.messageID,
			acceptedAt:    r.acceptedAt,
			scheduledAt:   r.scheduledAt,
			ttl:           r.ttl,
			deliveryCount: r.deliveryCount,
			sub:           r.sub,
			state:         r.state,
			reason:        r.reason,
			desc:          r.desc,
		}
		q.insert(e)
		if q.cfg.RequiresDuplicateDetection && e.messageID != "" && e.sub == subMain {
			q.dd.remember(e.messageID, e.seq, e.acceptedAt)
		}
	case recUpdate:
		e := q.msgs[r.seq]
		if e == nil {
			return true
		}
		if e.sub != r.sub {
			q.bytes[e.sub] -= int64(len(e.body))
			q.bytes[r.sub] += int64(len(e.body))
			e.sub = r.sub
		}
		e.state = r.state
		e.deliveryCount = r.deliveryCount
		e.reason, e.desc = r.reason, r.desc
		if r.hasBody {
			nb := append([]byte(nil), r.body...)
			q.bytes[e.sub] += int64(len(nb) - len(e.body))
			q.live.Add(int64(len(nb) - len(e.body)))
			e.body = nb
		}
	case recDelete:
		if e := q.msgs[r.seq]; e != nil {
			q.dropIndex(e)
		}
		if r.seq > q.lastSeq {
			q.lastSeq = r.seq
		}
	case recSeq:
		if r.seq > q.lastSeq {
			q.lastSeq = r.seq
		}
	case recDup:
		if q.cfg.RequiresDuplicateDetection {
			q.dd.remember(r.messageID, r.seq, r.at)
		}
	}
	return true
}

// rebuild derives the in-memory indexes (available heaps, events) from
// the recovered messages. Locks are not durable: every message starts
// unlocked.
func (q *queue) rebuild() {
	seqs := make([]int64, 0, len(q.msgs))
	for seq := range q.msgs {
		seqs = append(seqs, seq)
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	for _, seq := range seqs {
		e := q.msgs[seq]
		switch e.state {
		case StateActive:
			q.activate(e)
		case StateScheduled:
			q.pushEvent(event{at: e.scheduledAt, seq: e.seq, kind: evSchedule})
		}
	}
	q.dd.sortFIFO()
}

// apply replays a topic's record: its last sequence number or a
// duplicate-detection entry.
func (t *topic) apply(r *record) {
	switch r.kind {
	case recSeq:
		if r.seq > t.lastSeq {
			t.lastSeq = r.seq
		}
	case recDup:
		if t.cfg.RequiresDuplicateDetection {
			t.dd.remember(r.messageID, r.seq, r.at)
		}
		if r.seq > t.lastSeq {
			t.lastSeq = r.seq
		}
	}
}

// rebuild restores the topic's state that its subscriptions imply: a
// sequence number stays ahead of every stored copy.
func (t *topic) rebuild() {
	for _, sub := range t.subs {
		if sub.q.lastSeq > t.lastSeq {
			t.lastSeq = sub.q.lastSeq
		}
	}
	t.dd.sortFIFO()
}
