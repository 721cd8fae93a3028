package servicebus

import (
	"fmt"
	"strings"
	"time"

	enc "github.com/ffpipe/ffpipe/internal/emulator/servicebus/amqp/encoding"
	"github.com/ffpipe/ffpipe/internal/emulator/servicebus/amqp/frames"
)

// request is a parsed CBS or management request message.
type request struct {
	messageID any
	replyTo   string
	appProps  enc.Map
	body      any // the amqp-value content
}

func parseRequest(b []byte) (request, error) {
	secs, err := splitSections(b)
	if err != nil {
		return request{}, err
	}
	var r request
	for _, s := range secs {
		switch s.code {
		case secProperties:
			l, _ := s.val.([]any)
			if len(l) > 0 {
				r.messageID = l[0]
			}
			if len(l) > 4 {
				r.replyTo, _ = l[4].(string)
			}
		case secApplicationProp:
			r.appProps, _ = s.val.(enc.Map)
		case secValue:
			v, _, err := enc.Unmarshal(s.raw)
			if err != nil {
				return request{}, err
			}
			d, ok := v.(*enc.Described)
			if !ok {
				return request{}, fmt.Errorf("amqp-value section is %T", v)
			}
			r.body = d.Value
		}
	}
	return r, nil
}

func (r request) prop(name string) string {
	v, _ := r.appProps.Get(name)
	switch x := v.(type) {
	case string:
		return x
	case enc.Symbol:
		return string(x)
	}
	return ""
}

// encodeReply builds a response message for a request.
func encodeReply(req request, statusKey, descKey string, status int32, desc string, body any) ([]byte, error) {
	var e enc.Buffer
	e.WriteDescriptor(secProperties)
	if err := e.WriteList([]any{nil, nil, nil, nil, nil, req.messageID}); err != nil {
		return nil, err
	}
	e.WriteDescriptor(secApplicationProp)
	var d any
	if desc != "" {
		d = desc
	}
	if err := e.WriteMap(enc.Map{{Key: statusKey, Value: status}, {Key: descKey, Value: d}}); err != nil {
		return nil, err
	}
	e.WriteDescriptor(secValue)
	if err := e.Write(body); err != nil {
		return nil, err
	}
	return e.B, nil
}

// routeRequestLocked parses a CBS or management request that arrived on l
// and finds the link its response goes out on: the link reply-to names (by
// target address, or by link name as rhea's CBS client expects) or, when
// the request has no reply-to (uamqp matches responses by correlation id
// alone), the broker-sending link paired with l: same session, same node,
// the one attached last.
func (c *conn) routeRequestLocked(l *link, payload []byte) (request, *link, *frames.Error) {
	req, err := parseRequest(payload)
	if err != nil {
		return request{}, nil, &frames.Error{Condition: condDecodeError, Description: fmt.Sprintf("malformed request to %s: %v", l.address, err)}
	}
	if req.replyTo != "" {
		if rl := c.replies[req.replyTo]; rl != nil && !rl.closed {
			return req, rl, nil
		}
		return req, nil, &frames.Error{Condition: condNotFound, Description: fmt.Sprintf(
			"reply-to '%s' names no link attached on this connection: attach a receiver from '%s' first", req.replyTo, l.address)}
	}
	var paired *link
	for _, rl := range l.s.links {
		if rl.kind == kindReply && !rl.closed && strings.EqualFold(rl.address, l.address) && (paired == nil || rl.seq > paired.seq) {
			paired = rl
		}
	}
	if paired == nil {
		return req, nil, &frames.Error{Condition: condNotFound, Description: fmt.Sprintf(
			"request to %s has no reply-to and no receiver from '%s' is attached on this session", l.address, l.address)}
	}
	return req, paired, nil
}

// refuseRequestLocked answers a request that cannot be served: the delivery
// is rejected with e or, when the client sent it settled (it will not read
// the outcome), the request link is detached with e. Either way the client
// learns at once instead of waiting for a response that never comes.
func (c *conn) refuseRequestLocked(l *link, d inDelivery, e *frames.Error) {
	c.log.Info("request refused", "node", l.address, "condition", string(e.Condition), "description", e.Description)
	if !d.settled {
		l.s.settleIncomingLocked(d.id, &frames.Rejected{Error: e})
		return
	}
	l.closeLocked()
	delete(l.s.links, l.handle)
	c.writeLocked(l.s.ch, &frames.Detach{Handle: l.handle, Closed: true, Error: e}, nil)
}

// replyLocked sends a settled response on the reply link rl.
func (c *conn) replyLocked(rl *link, msg []byte) {
	if rl.closed || rl.s.ended {
		c.log.Debug("reply link gone; dropping response", "link", rl.name)
		return
	}
	rl.tagSerial++
	tag := fmt.Appendf(nil, "r%d", rl.tagSerial)
	rl.s.sendLocked(rl, tag, true, msg)
}

// onPutToken handles a CBS put-token request and answers on rl. It runs
// with conn.mu held.
func (c *conn) onPutToken(req request, rl *link) {
	status, desc := int32(202), "Accepted"
	op, typ, name := req.prop("operation"), req.prop("type"), req.prop("name")
	token, _ := req.body.(string)
	switch {
	case op != "put-token":
		status, desc = 400, fmt.Sprintf("unsupported cbs operation %q", op)
	case typ != "servicebus.windows.net:sastoken":
		status, desc = 400, fmt.Sprintf("unsupported token type %q", typ)
	default:
		// As on the real service, authorization comes first (a caller
		// without rights cannot probe which entities exist), then the
		// entity must exist: 404, which every SDK reports at once.
		exp, err := verifySAS(token, name, c.srv.opts.KeyName, c.srv.opts.Key, time.Now())
		path := audiencePath(name)
		switch {
		case err != nil:
			status, desc = 401, err.Error()
			c.log.Info("put-token refused", "audience", name, "err", redact(err.Error()))
		case !c.srv.store.exists(path):
			status = 404
			desc = fmt.Sprintf("The messaging entity 'sb://%s/%s' could not be found.", c.srv.Addr(), strings.TrimSuffix(path, mgmtSuffix))
			c.log.Info("put-token for a missing entity", "audience", name)
		default:
			c.claims[path] = exp
			c.log.Debug("put-token accepted", "audience", name)
		}
	}
	msg, err := encodeReply(req, "status-code", "status-description", status, redact(desc), nil)
	if err != nil {
		c.log.Error("encode cbs reply", "err", err)
		return
	}
	c.replyLocked(rl, msg)
}
