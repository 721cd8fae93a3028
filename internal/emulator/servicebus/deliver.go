package servicebus

import (
	"context"
	"encoding/binary"
	"errors"

	enc "github.com/ffpipe/ffpipe/internal/emulator/servicebus/amqp/encoding"
	"github.com/ffpipe/ffpipe/internal/emulator/servicebus/amqp/frames"
	"github.com/ffpipe/ffpipe/internal/emulator/servicebus/store"
)

// maxTake bounds how many messages one delivery round takes from the store.
const maxTake = 128

// deliverLoop pushes queue messages to a client receiver link while it has
// credit.
func (l *link) deliverLoop() {
	c := l.s.c
	defer c.wg.Done()
	defer c.guard("delivery loop")
	for {
		notify := l.q.Wait() // before Receive, so no wake-up is lost
		var credit, window uint32
		var drain, closed bool
		c.locked(func() {
			credit, drain, closed, window = l.credit, l.drain, l.closed || l.s.ended, l.s.remoteIncomingWindow
		})
		if closed {
			return
		}
		if credit > 0 && window > 0 {
			n := min(int(credit), int(window), maxTake)
			msgs, err := take(l.q, n, l.peekLock)
			if err != nil && !errors.Is(err, store.ErrClosed) {
				c.log.Warn("receive from store", "queue", l.entity, "err", err)
			}
			if len(msgs) > 0 {
				l.push(msgs)
				continue
			}
			if errors.Is(err, store.ErrClosed) {
				return
			}
		}
		if drain {
			c.locked(func() {
				if l.drain && !l.closed {
					l.deliveryCount += l.credit
					l.credit = 0
					l.drain = false
					l.s.flowLocked(l, true)
					c.flushLocked()
				}
			})
			continue
		}
		select {
		case <-l.wake:
		case <-notify:
		case <-l.stop:
			return
		case <-c.done:
			return
		}
	}
}

// push writes taken messages to the link. Messages that can no longer be
// sent (the link closed or credit shrank) are released unchanged.
func (l *link) push(msgs []store.Message) {
	c := l.s.c
	encoded := make([][]byte, len(msgs))
	for i := range msgs {
		b, err := encodeStored(&msgs[i], l.peekLock, l.peekLock)
		if err != nil {
			// Releasing it would redeliver it at once, forever: move it
			// aside (dead-letter, or drop it from a dead-letter queue).
			c.log.Error("encode stored message; dead-lettering it", "queue", l.entity, "seq", msgs[i].SequenceNumber, "err", err)
			if l.peekLock {
				ctx := context.Background()
				if dlErr := deadLetter(ctx, l.q, msgs[i].LockToken, "InvalidMessage", err.Error(), nil); dlErr != nil {
					_ = complete(ctx, l.q, msgs[i].LockToken)
				}
			}
			continue
		}
		encoded[i] = b
	}
	var unsent []store.LockToken
	defer func() {
		// Outside the connection lock: the store may wait for the disk.
		for _, t := range unsent {
			_ = release(l.q, t)
		}
	}()
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range msgs {
		m := &msgs[i]
		if encoded[i] == nil {
			continue
		}
		if l.closed || l.s.ended || l.credit == 0 {
			if l.peekLock {
				unsent = append(unsent, m.LockToken)
			}
			continue
		}
		var tag []byte
		if l.peekLock {
			t := m.LockToken.DotNetBytes()
			tag = t[:]
		} else {
			tag = binary.BigEndian.AppendUint64(nil, uint64(m.SequenceNumber))
		}
		id := l.s.sendLocked(l, tag, !l.peekLock, encoded[i])
		if l.peekLock {
			l.s.unsettled[id] = &outDelivery{link: l, token: enc.UUID(m.LockToken)}
		}
	}
	c.flushLocked()
}

// encodeStored builds the wire form of a stored message (docs/servicebus-wire.md#what-a-delivered-message-carries). withToken
// adds the lock token as the x-opt-lock-token delivery annotation.
func encodeStored(m *store.Message, locked, withToken bool) ([]byte, error) {
	info := deliveryInfo{
		seq:           m.SequenceNumber,
		enqueued:      m.EnqueuedAt,
		deliveryCount: m.DeliveryCount,
		state:         int32(m.State),
		ttl:           m.TTL,
	}
	if locked && m.Locked() {
		info.lockedUntil = m.LockedUntil
		if withToken {
			t := enc.UUID(m.LockToken)
			info.lockToken = &t
		}
	}
	if m.DeadLettered || m.DeadLetterReason != "" || m.DeadLetterDescription != "" {
		info.appProps = enc.Map{{Key: "DeadLetterReason", Value: m.DeadLetterReason}, {Key: "DeadLetterErrorDescription", Value: m.DeadLetterDescription}}
	}
	return buildDelivery(m.Body, info)
}

// pendingSettle is a client settlement waiting to be applied.
type pendingSettle struct {
	s             *session
	l             *link
	id            uint32
	token         store.LockToken
	state         any
	clientSettled bool
}

// settle queues the client's outcome for a PeekLock delivery. It is called
// with conn.mu held; the read loop hands the queue to runSettles when it
// has read everything available, so one disk sync covers a whole burst.
func (l *link) settle(s *session, id uint32, od *outDelivery, state any, clientSettled bool) {
	c := s.c
	c.settles = append(c.settles, pendingSettle{s: s, l: l, id: id, token: store.LockToken(od.token), state: state, clientSettled: clientSettled})
}

// startSettlesLocked hands queued settlements to a goroutine.
func (c *conn) startSettlesLocked() {
	if len(c.settles) == 0 {
		return
	}
	batch := c.settles
	c.settles = nil
	c.wg.Add(1)
	go c.runSettles(batch)
}

// runSettles applies a burst of settlements, waits once for the disk and
// then confirms each.
func (c *conn) runSettles(batch []pendingSettle) {
	defer c.wg.Done()
	defer c.guard("settlement")
	ctx := context.Background()
	replies := make([]any, len(batch))
	changed := false
	for i, p := range batch {
		reply, err := applyOutcome(ctx, p.l.q, p.token, p.state)
		if err != nil {
			c.log.Debug("settlement failed", "queue", p.l.entity, "err", err)
		} else {
			changed = true
		}
		replies[i] = reply
	}
	if changed {
		if err := c.srv.store.sync(ctx); err != nil {
			c.log.Error("sync settlements", "err", err)
			for i := range replies {
				replies[i] = &frames.Rejected{Error: &frames.Error{Condition: condInternal, Description: "settlement not durable: " + err.Error()}}
			}
		}
	}
	c.locked(func() {
		for i, p := range batch {
			if p.clientSettled || p.s.ended {
				continue
			}
			c.writeLocked(p.s.ch, &frames.Disposition{Role: frames.RoleSender, First: p.id, Settled: true, State: replies[i]}, nil)
		}
		c.flushLocked()
	})
}

// applyOutcome maps an AMQP outcome onto the store and returns the state to
// confirm it with.
func applyOutcome(ctx context.Context, q *store.Queue, token store.LockToken, state any) (any, error) {
	var err error
	reply := state
	switch st := state.(type) {
	case nil, *frames.Accepted:
		reply = &frames.Accepted{}
		err = complete(ctx, q, token)
	case *frames.Released:
		err = release(q, token)
	case *frames.Modified:
		props := stringKeys(st.MessageAnnotations)
		if st.UndeliverableHere {
			err = deferMsg(ctx, q, token, props)
		} else {
			err = abandon(ctx, q, token, props)
		}
	case *frames.Rejected:
		reason, desc := "", ""
		var props enc.Map
		if st.Error != nil {
			for _, kv := range stringKeys(st.Error.Info) {
				switch kv.Key {
				case "DeadLetterReason":
					reason, _ = kv.Value.(string)
				case "DeadLetterErrorDescription":
					desc, _ = kv.Value.(string)
				default:
					props = append(props, kv)
				}
			}
			if reason == "" && st.Error.Condition != "com.microsoft:dead-letter" {
				reason = string(st.Error.Condition)
				desc = st.Error.Description
			}
		}
		reply = &frames.Rejected{}
		err = deadLetter(ctx, q, token, reason, desc, props)
	default:
		return &frames.Rejected{Error: &frames.Error{Condition: condNotImplemented, Description: "unsupported delivery state"}}, errors.New("unsupported delivery state")
	}
	if err != nil {
		return &frames.Rejected{Error: settleError(err)}, err
	}
	return reply, nil
}

func settleError(err error) *frames.Error {
	switch {
	case errors.Is(err, store.ErrLockLost):
		return &frames.Error{Condition: condLockLost, Description: lockLostText}
	case errors.Is(err, store.ErrNotAllowed):
		return &frames.Error{Condition: condNotAllowed, Description: err.Error()}
	}
	return &frames.Error{Condition: condInternal, Description: err.Error()}
}

// stringKeys converts symbol keys to strings (PropertiesToModify arrives
// with symbol keys in modified.message-annotations).
func stringKeys(m enc.Map) enc.Map {
	if len(m) == 0 {
		return nil
	}
	out := make(enc.Map, 0, len(m))
	for _, kv := range m {
		switch k := kv.Key.(type) {
		case enc.Symbol:
			out = append(out, enc.KV{Key: string(k), Value: kv.Value})
		case string:
			out = append(out, kv)
		}
	}
	return out
}

// mergeAppProps returns body with props set in its application-properties.
func mergeAppProps(body []byte, props enc.Map) ([]byte, error) {
	secs, err := splitSections(body)
	if err != nil {
		return nil, err
	}
	var e enc.Buffer
	done := false
	writeProps := func(m enc.Map) error {
		for _, kv := range props {
			m = m.Set(kv.Key, kv.Value)
		}
		e.WriteDescriptor(secApplicationProp)
		return e.WriteMap(m)
	}
	for _, s := range secs {
		switch {
		case s.code == secApplicationProp:
			m, _ := s.val.(enc.Map)
			if err := writeProps(append(enc.Map(nil), m...)); err != nil {
				return nil, err
			}
			done = true
			continue
		case !done && s.code > secApplicationProp:
			if err := writeProps(nil); err != nil {
				return nil, err
			}
			done = true
		}
		e.B = append(e.B, s.raw...)
	}
	if !done {
		if err := writeProps(nil); err != nil {
			return nil, err
		}
	}
	return e.B, nil
}

func modifier(props enc.Map) store.Modify {
	if len(props) == 0 {
		return nil
	}
	return func(body []byte) ([]byte, error) { return mergeAppProps(body, props) }
}
