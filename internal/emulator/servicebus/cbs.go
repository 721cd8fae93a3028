package servicebus

import (
	"fmt"
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
			r.body = v.(*enc.Described).Value
		}
	}
	if r.replyTo == "" {
		return r, fmt.Errorf("request without reply-to")
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

// replyLocked sends a settled response on the reply link named replyTo.
func (c *conn) replyLocked(replyTo string, msg []byte) {
	l := c.replies[replyTo]
	if l == nil || l.closed || l.s.ended {
		c.log.Debug("reply link gone; dropping response", "reply_to", replyTo)
		return
	}
	l.tagSerial++
	tag := fmt.Appendf(nil, "r%d", l.tagSerial)
	l.s.sendLocked(l, tag, true, msg)
}

// onPutToken handles a CBS put-token request. It runs with conn.mu held.
func (c *conn) onPutToken(s *session, d inDelivery) {
	if !d.settled {
		s.settleIncomingLocked(d.id, &frames.Accepted{})
	}
	req, err := parseRequest(d.payload)
	if err != nil {
		c.log.Info("bad cbs request", "err", err)
		return
	}
	status, desc := int32(202), "Accepted"
	op, typ, name := req.prop("operation"), req.prop("type"), req.prop("name")
	token, _ := req.body.(string)
	switch {
	case op != "put-token":
		status, desc = 400, fmt.Sprintf("unsupported cbs operation %q", op)
	case typ != "servicebus.windows.net:sastoken":
		status, desc = 400, fmt.Sprintf("unsupported token type %q", typ)
	default:
		exp, err := verifySAS(token, name, c.srv.opts.KeyName, c.srv.opts.Key, time.Now())
		if err != nil {
			status, desc = 401, err.Error()
			c.log.Info("put-token refused", "audience", name, "err", redact(err.Error()))
		} else {
			c.claims[audiencePath(name)] = exp
			c.log.Debug("put-token accepted", "audience", name)
		}
	}
	msg, err := encodeReply(req, "status-code", "status-description", status, redact(desc), nil)
	if err != nil {
		c.log.Error("encode cbs reply", "err", err)
		return
	}
	c.replyLocked(req.replyTo, msg)
}
