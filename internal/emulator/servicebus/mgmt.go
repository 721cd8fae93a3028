package servicebus

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	enc "github.com/ffpipe/ffpipe/internal/emulator/servicebus/amqp/encoding"
	"github.com/ffpipe/ffpipe/internal/emulator/servicebus/store"
)

// mgmtResult is a management reply.
type mgmtResult struct {
	status int32
	desc   string
	body   any
}

func mgmtErr(status int32, format string, args ...any) mgmtResult {
	return mgmtResult{status: status, desc: fmt.Sprintf(format, args...)}
}

// onManagement runs one $management request (off the read loop) and sends
// the reply on rl.
func (c *conn) onManagement(l *link, req request, rl *link) {
	op := req.prop("operation")
	timeout := 60 * time.Second
	for _, k := range []string{"server-timeout", "com.microsoft:server-timeout"} {
		if v, ok := req.appProps.Get(k); ok {
			if ms, ok := v.(uint64); ok && ms > 0 {
				timeout = time.Duration(ms) * time.Millisecond
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	body, _ := req.body.(enc.Map)
	var res mgmtResult
	switch {
	case l.q == nil && op != "com.microsoft:schedule-message" && op != "com.microsoft:cancel-scheduled-message":
		// A topic's $management: only the sender's operations apply.
		res = mgmtErr(400, "operation %q is not supported on topic '%s'; use one of its subscriptions", op, l.entity)
	default:
		res = c.runManagement(ctx, l, op, body)
	}
	if res.status == 0 {
		res.status = 200
	}
	c.log.Debug("management", "operation", op, "node", l.address, "status", res.status)
	msg, err := encodeReply(req, "statusCode", "statusDescription", res.status, res.desc, res.body)
	if err != nil {
		c.log.Error("encode management reply", "operation", op, "err", err)
		msg, _ = encodeReply(req, "statusCode", "statusDescription", 500, err.Error(), nil)
	}
	c.locked(func() {
		c.replyLocked(rl, msg)
		c.flushLocked()
	})
}

// runManagement dispatches one management operation.
func (c *conn) runManagement(ctx context.Context, l *link, op string, body enc.Map) mgmtResult {
	var res mgmtResult
	switch op {
	case "com.microsoft:renew-lock":
		res = c.opRenewLock(ctx, l.q, body)
	case "com.microsoft:peek-message":
		res = c.opPeek(l.q, body)
	case "com.microsoft:schedule-message":
		res = c.opSchedule(ctx, l.target, l.topic, body)
	case "com.microsoft:cancel-scheduled-message":
		res = c.opCancel(ctx, l.target, body)
	case "com.microsoft:receive-by-sequence-number":
		res = c.opReceiveDeferred(ctx, l.q, body)
	case "com.microsoft:update-disposition":
		res = c.opUpdateDisposition(ctx, l.q, body)
	default:
		c.log.Warn("management operation not implemented", "operation", op, "node", l.address)
		res = mgmtErr(501, "operation %q is not implemented by this emulator", op)
	}
	return res
}

func statusFor(err error) mgmtResult {
	switch {
	case errors.Is(err, store.ErrLockLost):
		return mgmtErr(410, "%s", lockLostText)
	case errors.Is(err, store.ErrMessageNotFound):
		return mgmtErr(404, "%v", err)
	case errors.Is(err, store.ErrNotFound):
		return mgmtErr(404, "%v", err)
	case errors.Is(err, store.ErrNotAllowed):
		return mgmtErr(403, "%v", err)
	case errors.Is(err, store.ErrQuotaExceeded):
		return mgmtErr(507, "%v", err)
	case errors.Is(err, store.ErrInvalid):
		return mgmtErr(400, "%v", err)
	}
	return mgmtErr(500, "%v", err)
}

func uuids(v any) ([]store.LockToken, error) {
	var elems []any
	switch x := v.(type) {
	case *enc.Array:
		elems = x.Elems
	case []any:
		elems = x
	case enc.UUID:
		elems = []any{x}
	default:
		return nil, fmt.Errorf("lock-tokens is %T, want array of uuid", v)
	}
	out := make([]store.LockToken, 0, len(elems))
	for _, e := range elems {
		u, ok := e.(enc.UUID)
		if !ok {
			return nil, fmt.Errorf("lock token is %T, want uuid", e)
		}
		out = append(out, store.LockToken(u))
	}
	return out, nil
}

func longs(v any) ([]int64, error) {
	var elems []any
	switch x := v.(type) {
	case *enc.Array:
		elems = x.Elems
	case []any:
		elems = x
	default:
		return nil, fmt.Errorf("sequence-numbers is %T, want array of long", v)
	}
	out := make([]int64, 0, len(elems))
	for _, e := range elems {
		n, ok := toInt64(e)
		if !ok {
			return nil, fmt.Errorf("sequence number is %T, want long", e)
		}
		out = append(out, n)
	}
	return out, nil
}

func toInt64(v any) (int64, bool) {
	switch x := v.(type) {
	case int64:
		return x, true
	case int32:
		return int64(x), true
	case int16:
		return int64(x), true
	case int8:
		return int64(x), true
	case uint32:
		return int64(x), true
	case uint64:
		return int64(x), true
	case uint16:
		return int64(x), true
	case uint8:
		return int64(x), true
	}
	return 0, false
}

func (c *conn) opRenewLock(ctx context.Context, q *store.Queue, body enc.Map) mgmtResult {
	v, _ := body.Get("lock-tokens")
	tokens, err := uuids(v)
	if err != nil {
		return mgmtErr(400, "%v", err)
	}
	exps := enc.NewArray(0x83)
	for _, t := range tokens {
		until, err := renewLock(ctx, q, t)
		if err != nil {
			return statusFor(err)
		}
		exps.Elems = append(exps.Elems, until)
	}
	return mgmtResult{body: enc.Map{{Key: "expirations", Value: exps}}}
}

func (c *conn) opPeek(q *store.Queue, body enc.Map) mgmtResult {
	fv, _ := body.Get("from-sequence-number")
	from, ok := toInt64(fv)
	if !ok {
		return mgmtErr(400, "from-sequence-number is %T, want long", fv)
	}
	nv, _ := body.Get("message-count")
	n, ok := toInt64(nv)
	if !ok || n <= 0 {
		return mgmtErr(400, "message-count must be a positive int")
	}
	msgs, err := peek(q, from, int(min(n, 5000)))
	if err != nil {
		return statusFor(err)
	}
	if len(msgs) == 0 {
		return mgmtResult{status: 204, desc: "No messages to peek"}
	}
	list := make([]any, 0, len(msgs))
	for i := range msgs {
		b, err := encodeStored(&msgs[i], false, false)
		if err != nil {
			return mgmtErr(500, "encode message %d: %v", msgs[i].SequenceNumber, err)
		}
		list = append(list, enc.Map{{Key: "message", Value: b}})
	}
	return mgmtResult{body: enc.Map{{Key: "messages", Value: list}}}
}

func (c *conn) opSchedule(ctx context.Context, q sendTarget, topic bool, body enc.Map) mgmtResult {
	v, _ := body.Get("messages")
	list, ok := v.([]any)
	if !ok {
		return mgmtErr(400, "messages is %T, want list", v)
	}
	ins := make([]store.Incoming, 0, len(list))
	for _, e := range list {
		m, _ := e.(enc.Map)
		raw, _ := m.Get("message")
		b, ok := raw.([]byte)
		if !ok {
			return mgmtErr(400, "scheduled message without binary \"message\"")
		}
		if len(b) > MaxMessageSize {
			return mgmtErr(413, "message of %d bytes exceeds %d", len(b), MaxMessageSize)
		}
		in, err := parseIncoming(b, topic)
		if err != nil {
			return mgmtErr(400, "%v", err)
		}
		if in.scheduledAt.IsZero() {
			in.scheduledAt = time.Now()
		}
		ins = append(ins, in.toStore())
	}
	seqs, err := schedule(ctx, q, ins)
	if err != nil {
		return statusFor(err)
	}
	arr := enc.NewArray(0x81)
	for _, s := range seqs {
		arr.Elems = append(arr.Elems, s)
	}
	return mgmtResult{body: enc.Map{{Key: "sequence-numbers", Value: arr}}}
}

func (c *conn) opCancel(ctx context.Context, q sendTarget, body enc.Map) mgmtResult {
	v, _ := body.Get("sequence-numbers")
	seqs, err := longs(v)
	if err != nil {
		return mgmtErr(400, "%v", err)
	}
	if err := cancelScheduled(ctx, q, seqs); err != nil {
		return statusFor(err)
	}
	return mgmtResult{}
}

func (c *conn) opReceiveDeferred(ctx context.Context, q *store.Queue, body enc.Map) mgmtResult {
	v, _ := body.Get("sequence-numbers")
	seqs, err := longs(v)
	if err != nil {
		return mgmtErr(400, "%v", err)
	}
	mode := int64(1)
	if mv, ok := body.Get("receiver-settle-mode"); ok {
		if m, ok := toInt64(mv); ok {
			mode = m
		}
	}
	peekLock := mode != 0
	msgs, err := receiveDeferred(ctx, q, seqs, peekLock)
	if err != nil {
		return statusFor(err)
	}
	if err := c.srv.store.sync(ctx); err != nil {
		return mgmtErr(500, "sync: %v", err)
	}
	list := make([]any, 0, len(msgs))
	for i := range msgs {
		b, err := encodeStored(&msgs[i], peekLock, true)
		if err != nil {
			return mgmtErr(500, "encode message %d: %v", msgs[i].SequenceNumber, err)
		}
		entry := enc.Map{{Key: "message", Value: b}}
		if peekLock {
			entry = append(enc.Map{{Key: "lock-token", Value: enc.UUID(msgs[i].LockToken)}}, entry...)
		}
		list = append(list, entry)
	}
	return mgmtResult{body: enc.Map{{Key: "messages", Value: list}}}
}

func (c *conn) opUpdateDisposition(ctx context.Context, q *store.Queue, body enc.Map) mgmtResult {
	v, _ := body.Get("lock-tokens")
	tokens, err := uuids(v)
	if err != nil {
		return mgmtErr(400, "%v", err)
	}
	sv, _ := body.Get("disposition-status")
	status, _ := sv.(string)
	var props enc.Map
	if pv, ok := body.Get("properties-to-modify"); ok {
		m, _ := pv.(enc.Map)
		props = stringKeys(m)
	}
	str := func(k string) string {
		v, _ := body.Get(k)
		s, _ := v.(string)
		return s
	}
	for _, t := range tokens {
		var err error
		switch strings.ToLower(status) {
		case "completed":
			err = complete(ctx, q, t)
		case "abandoned":
			err = abandon(ctx, q, t, props)
		case "suspended":
			err = deadLetter(ctx, q, t, str("deadletter-reason"), str("deadletter-description"), props)
		case "defered", "deferred":
			err = deferMsg(ctx, q, t, props)
		default:
			return mgmtErr(400, "unknown disposition-status %q", status)
		}
		if err != nil {
			return statusFor(err)
		}
	}
	if err := c.srv.store.sync(ctx); err != nil {
		return mgmtErr(500, "sync: %v", err)
	}
	return mgmtResult{}
}
