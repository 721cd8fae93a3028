package store

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sort"
	"testing"
	"time"
)

// model is a deliberately naive reimplementation of the queue rules
// (linear scans, no indexes, no events), used as the oracle for random
// operation sequences. TTL is left out: the queues in this test never
// expire anything.
type model struct {
	now     time.Time
	lastSeq int64
	msgs    map[int64]*mmsg
	lock    time.Duration
	maxDC   uint32
}

type mmsg struct {
	seq         int64
	body        string
	dlq         bool
	state       State
	count       uint32
	token       LockToken
	lockedUntil time.Time
	scheduledAt time.Time
	reason      string
}

func (m *model) advance(d time.Duration) {
	m.now = m.now.Add(d)
	for _, x := range m.msgs {
		if x.token != (LockToken{}) && !x.lockedUntil.After(m.now) {
			x.token = LockToken{}
			if x.state == StateActive && !x.dlq {
				x.count++
				if x.count >= m.maxDC {
					x.dlq, x.reason = true, ReasonMaxDeliveryCountExceeded
				}
			}
		}
		if x.state == StateScheduled && !x.scheduledAt.After(m.now) {
			x.state = StateActive
		}
	}
}

func (m *model) sorted(dlq bool) []*mmsg {
	var out []*mmsg
	for _, x := range m.msgs {
		if x.dlq == dlq {
			out = append(out, x)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].seq < out[j].seq })
	return out
}

func (m *model) byToken(tok LockToken, dlq bool) *mmsg {
	for _, x := range m.msgs {
		if x.token == tok && x.dlq == dlq && x.token != (LockToken{}) {
			return x
		}
	}
	return nil
}

type mview struct {
	Seq    int64
	Body   string
	State  State
	Count  uint32
	Reason string
	Locked bool
}

func (m *model) view(dlq bool) []mview {
	out := []mview{}
	for _, x := range m.sorted(dlq) {
		out = append(out, mview{x.seq, x.body, x.state, x.count, x.reason, x.token != (LockToken{})})
	}
	return out
}

func storeView(t *testing.T, q *Queue) []mview {
	t.Helper()
	msgs, err := q.Peek(1, 1<<20)
	ok(t, err)
	out := []mview{}
	for _, m := range msgs {
		out = append(out, mview{m.SequenceNumber, string(m.Body), m.State, m.DeliveryCount, m.DeadLetterReason, !m.LockedUntil.IsZero()})
	}
	return out
}

func TestRandomOperationsAgainstModel(t *testing.T) {
	for _, durable := range []bool{false, true} {
		seeds, steps := 12, 300
		if durable {
			seeds, steps = 4, 200
		}
		for seed := 0; seed < seeds; seed++ {
			t.Run(fmt.Sprintf("durable=%v/seed=%d", durable, seed), func(t *testing.T) {
				runModel(t, durable, uint64(seed), steps)
			})
		}
	}
}

func runModel(t *testing.T, durable bool, seed uint64, steps int) {
	dir := ""
	if durable {
		dir = t.TempDir()
	}
	e := newEnv(t, dir, func(c *QueueConfig) { c.DefaultMessageTimeToLive = 10000 * time.Hour })
	m := &model{now: e.clock.Now(), msgs: map[int64]*mmsg{}, lock: 30 * time.Second, maxDC: 3}
	rng := rand.New(rand.NewPCG(seed, 99))
	var tokens []LockToken // tokens handed out, some stale
	pickToken := func() LockToken {
		if len(tokens) == 0 || rng.IntN(10) == 0 {
			return NewUUID()
		}
		return tokens[rng.IntN(len(tokens))]
	}
	var log []string
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("after ops:\n%v\n"+format, append([]any{log}, args...)...)
	}
	for step := 0; step < steps; step++ {
		dlq := rng.IntN(4) == 0
		q := e.q
		if dlq {
			q = e.dlq
		}
		op := rng.IntN(13)
		if !durable && op == 12 {
			op = 0
		}
		switch op {
		case 0, 1: // send
			n := 1 + rng.IntN(3)
			var in []Incoming
			var at time.Time
			if rng.IntN(4) == 0 {
				at = e.clock.Now().Add(time.Duration(rng.IntN(120)) * time.Second)
			}
			for i := 0; i < n; i++ {
				in = append(in, Incoming{Body: []byte(fmt.Sprintf("b%d-%d", step, i)), ScheduledAt: at})
			}
			log = append(log, fmt.Sprintf("send %d at %v", n, at))
			_, err := e.q.Send(bg, in)
			ok(t, err)
			for i := range in {
				m.lastSeq++
				x := &mmsg{seq: m.lastSeq, body: string(in[i].Body)}
				if at.After(m.now) {
					x.state, x.scheduledAt = StateScheduled, at
				}
				m.msgs[x.seq] = x
			}
		case 2, 3: // receive
			n := 1 + rng.IntN(4)
			mode := PeekLock
			if rng.IntN(4) == 0 {
				mode = ReceiveAndDelete
			}
			log = append(log, fmt.Sprintf("receive %s %d mode %d", q.Name(), n, mode))
			got, err := q.Receive(n, mode)
			ok(t, err)
			var want []int64
			for _, x := range m.sorted(dlq) {
				if len(want) < n && x.state == StateActive && x.token == (LockToken{}) {
					want = append(want, x.seq)
				}
			}
			if gs := seqsOf(got); !reflect.DeepEqual(gs, want) && !(len(gs) == 0 && len(want) == 0) {
				fail("receive got %v, want %v", gs, want)
			}
			for _, r := range got {
				x := m.msgs[r.SequenceNumber]
				if r.DeliveryCount != x.count {
					fail("seq %d count %d, want %d", x.seq, r.DeliveryCount, x.count)
				}
				if mode == ReceiveAndDelete {
					delete(m.msgs, x.seq)
				} else {
					x.token, x.lockedUntil = r.LockToken, m.now.Add(m.lock)
					tokens = append(tokens, r.LockToken)
				}
			}
		case 4, 5, 6: // settle
			tok := pickToken()
			kind := rng.IntN(5)
			log = append(log, fmt.Sprintf("settle %d on %s", kind, q.Name()))
			x := m.byToken(tok, dlq)
			var err error
			switch kind {
			case 0:
				err = q.Complete(bg, tok)
			case 1:
				err = q.Abandon(bg, tok, nil)
			case 2:
				err = q.Release(bg, tok)
			case 3:
				err = q.Defer(bg, tok, nil)
			case 4:
				err = q.DeadLetter(bg, tok, "dl", "", nil)
			}
			if x == nil {
				if !errors.Is(err, ErrLockLost) {
					fail("settle of unknown token: %v, want ErrLockLost", err)
				}
				break
			}
			if kind == 4 && dlq {
				if !errors.Is(err, ErrNotAllowed) {
					fail("dead-letter in DLQ: %v", err)
				}
				break
			}
			ok(t, err)
			x.token = LockToken{}
			switch kind {
			case 0:
				delete(m.msgs, x.seq)
			case 1:
				if !x.dlq {
					x.count++
					if x.state == StateActive && x.count >= m.maxDC {
						x.dlq, x.reason = true, ReasonMaxDeliveryCountExceeded
					}
				}
			case 3:
				x.state = StateDeferred
			case 4:
				x.dlq, x.reason, x.state = true, "dl", StateActive
			}
		case 7: // renew
			tok := pickToken()
			log = append(log, "renew on "+q.Name())
			until, err := q.RenewLock(tok)
			x := m.byToken(tok, dlq)
			if x == nil {
				if !errors.Is(err, ErrLockLost) {
					fail("renew of unknown token: %v", err)
				}
				break
			}
			ok(t, err)
			x.lockedUntil = m.now.Add(m.lock)
			if !until.Equal(x.lockedUntil) {
				fail("renew until %v, want %v", until, x.lockedUntil)
			}
		case 8, 9: // time passes
			d := time.Duration(rng.IntN(20)) * time.Second
			log = append(log, fmt.Sprintf("advance %v", d))
			e.clock.Advance(d)
			m.advance(d)
		case 10: // receive deferred
			var seqs []int64
			for _, x := range m.sorted(dlq) {
				if x.state == StateDeferred && rng.IntN(2) == 0 {
					seqs = append(seqs, x.seq)
				}
			}
			if rng.IntN(5) == 0 {
				seqs = append(seqs, int64(rng.IntN(int(m.lastSeq)+2)))
			}
			if len(seqs) == 0 {
				break
			}
			mode := PeekLock
			if rng.IntN(3) == 0 {
				mode = ReceiveAndDelete
			}
			log = append(log, fmt.Sprintf("receive deferred %v on %s mode %d", seqs, q.Name(), mode))
			got, err := q.ReceiveDeferred(bg, seqs, mode)
			valid := true
			for _, s := range seqs {
				x := m.msgs[s]
				if x == nil || x.dlq != dlq || x.state != StateDeferred || x.token != (LockToken{}) {
					valid = false
				}
			}
			if !valid {
				if !errors.Is(err, ErrMessageNotFound) {
					fail("receive deferred %v: %v, want ErrMessageNotFound", seqs, err)
				}
				break
			}
			ok(t, err)
			for _, r := range got {
				x := m.msgs[r.SequenceNumber]
				if mode == ReceiveAndDelete {
					delete(m.msgs, x.seq)
				} else {
					x.token, x.lockedUntil = r.LockToken, m.now.Add(m.lock)
					tokens = append(tokens, r.LockToken)
				}
			}
		case 11: // cancel scheduled
			s := int64(rng.IntN(int(m.lastSeq) + 2))
			log = append(log, fmt.Sprintf("cancel %d", s))
			ok(t, e.q.CancelScheduled(bg, []int64{s}))
			if x := m.msgs[s]; x != nil && x.state == StateScheduled && !x.dlq {
				delete(m.msgs, s)
			}
		case 12: // restart, sometimes after a compaction
			if rng.IntN(2) == 0 {
				log = append(log, "compact")
				ok(t, e.s.Compact(bg))
			}
			log = append(log, "reopen")
			e.reopen()
			for _, x := range m.msgs {
				x.token = LockToken{} // locks are not durable
			}
		}
		if got, want := storeView(t, e.q), m.view(false); !reflect.DeepEqual(got, want) {
			fail("main queue:\n got %+v\nwant %+v", got, want)
		}
		if got, want := storeView(t, e.dlq), m.view(true); !reflect.DeepEqual(got, want) {
			fail("DLQ:\n got %+v\nwant %+v", got, want)
		}
	}
}
