package servicebus

import (
	"context"
	"errors"
	"fmt"
	"strings"

	enc "github.com/ffpipe/ffpipe/internal/emulator/servicebus/amqp/encoding"
	"github.com/ffpipe/ffpipe/internal/emulator/servicebus/amqp/frames"
	"github.com/ffpipe/ffpipe/internal/emulator/servicebus/store"
)

type linkKind int

const (
	kindCBS       linkKind = iota // client sends put-token requests
	kindReply                     // broker sends CBS or management replies
	kindMgmt                      // client sends management requests
	kindEntityIn                  // client sends messages to a queue
	kindEntityOut                 // broker delivers messages from a queue
)

// link is one attached link. The broker uses the client's handle number as
// its own. Fields are guarded by conn.mu.
type link struct {
	s       *session
	name    string
	handle  uint32
	kind    linkKind
	sending bool         // the broker is the sender
	address string       // the node path: "$cbs", "<q>", "<q>/$management" (see nodePath)
	replyTo string       // a reply link's target address ("" when the client gave none)
	entity  string       // the entity path ("q", "q/$DeadLetterQueue", "t", "t/Subscriptions/s")
	seq     uint64       // attach order on the connection
	q       *store.Queue // the entity receivers and settlements use; nil for a topic
	target  sendTarget   // where sends and schedule-message go: the queue or the topic
	topic   bool         // the entity is a topic
	closed  bool

	// Broker-as-receiver state.
	credit        uint32
	deliveryCount uint32
	inProgress    bool
	cur           inDelivery
	buf           []byte
	sends         chan inDelivery // entity sends, processed in order by sendWorker

	// Broker-as-sender state.
	drain     bool
	peekLock  bool
	wake      chan struct{}
	stop      chan struct{}
	tagSerial uint64
}

func (l *link) wakeLocked() {
	if l.wake == nil {
		return
	}
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

func (l *link) closeLocked() {
	if l.closed {
		return
	}
	l.closed = true
	if l.stop != nil {
		close(l.stop)
	}
	if l.sends != nil {
		close(l.sends)
	}
	if l.kind == kindReply {
		for _, k := range []string{l.name, l.replyTo} {
			if l.s.c.replies[k] == l {
				delete(l.s.c.replies, k)
			}
		}
	}
}

const (
	mgmtSuffix = "/$management"
)

func (s *session) onAttach(a *frames.Attach) error {
	c := s.c
	if _, dup := s.links[a.Handle]; dup {
		return protoErr(condNotAllowed, "handle %d already attached", a.Handle)
	}
	clientSends := a.Role == frames.RoleSender
	l := &link{s: s, name: a.Name, handle: a.Handle, sending: !clientSends}
	raw := frames.Address(a.Source)
	if clientSends {
		raw = frames.Address(a.Target)
	}
	l.address = nodePath(raw)
	if e := s.classifyLocked(l, a); e != nil {
		c.log.Info("attach refused", "node", raw, "condition", string(e.Condition), "description", e.Description)
		reply := &frames.Attach{Name: a.Name, Handle: a.Handle, Role: !a.Role, SndSettleMode: a.SndSettleMode, RcvSettleMode: a.RcvSettleMode}
		if !clientSends {
			zero := uint32(0)
			reply.InitialDeliveryCount = &zero
		}
		c.writeLocked(s.ch, reply, nil)
		c.writeLocked(s.ch, &frames.Detach{Handle: a.Handle, Closed: true, Error: e}, nil)
		return nil
	}

	reply := &frames.Attach{Name: a.Name, Handle: a.Handle, Role: !a.Role, SndSettleMode: a.SndSettleMode,
		RcvSettleMode: a.RcvSettleMode, Source: a.Source, Target: a.Target}
	if reply.Source == nil {
		reply.Source = &enc.Described{Descriptor: frames.CodeSource, Value: []any{}}
	}
	if reply.Target == nil {
		reply.Target = &enc.Described{Descriptor: frames.CodeTarget, Value: []any{}}
	}
	if l.sending {
		zero := uint32(0)
		reply.InitialDeliveryCount = &zero
	} else {
		if a.InitialDeliveryCount != nil {
			l.deliveryCount = *a.InitialDeliveryCount
		}
		if l.kind == kindEntityIn {
			reply.MaxMessageSize = MaxMessageSize
		}
	}
	c.attachSeq++
	l.seq = c.attachSeq
	s.links[a.Handle] = l
	c.writeLocked(s.ch, reply, nil)
	c.log.Debug("link attached", "node", raw, "name", a.Name, "kind", l.kind, "handle", a.Handle)
	l.startLocked(a)
	return nil
}

// startLocked registers a freshly attached link and starts its goroutines.
func (l *link) startLocked(a *frames.Attach) {
	c := l.s.c
	switch l.kind {
	case kindReply:
		// A response names its link by reply-to: the link's target address
		// (azservicebus, uamqp) or its name (rhea's CBS client attaches with
		// no target and sends reply-to = the link name).
		c.replies[l.name] = l
		if l.replyTo != "" {
			c.replies[l.replyTo] = l
		}
	case kindEntityOut:
		// Receive-and-delete links are presettled by the broker.
		l.peekLock = a.SndSettleMode == nil || *a.SndSettleMode != 1
		l.wake = make(chan struct{}, 1)
		l.stop = make(chan struct{})
		c.wg.Add(1)
		go l.deliverLoop()
	case kindEntityIn:
		l.sends = make(chan inDelivery, 2*linkCredit)
		c.wg.Add(1)
		go l.sendWorker()
	}
	if !l.sending {
		l.credit = linkCredit
		l.s.flowLocked(l, false)
	}
}

// classifyLocked sets the link's kind and entity from its node, or returns
// the error the attach is refused with.
func (s *session) classifyLocked(l *link, a *frames.Attach) *frames.Error {
	c := s.c
	node := l.address
	lower := strings.ToLower(node)
	isMgmt := strings.HasSuffix(lower, mgmtSuffix)
	switch {
	case !l.sending && lower == "$cbs":
		l.kind = kindCBS
	case l.sending && (lower == "$cbs" || isMgmt):
		l.kind = kindReply
		l.replyTo = frames.Address(a.Target)
	case !l.sending && isMgmt:
		l.kind = kindMgmt
		l.entity = node[:len(node)-len(mgmtSuffix)]
	case !l.sending:
		l.kind = kindEntityIn
		l.entity = node
	default:
		l.kind = kindEntityOut
		l.entity = node
	}
	if l.kind != kindMgmt && l.kind != kindEntityIn && l.kind != kindEntityOut {
		return nil
	}
	ent, e := c.srv.store.resolveEntity(l.entity, c.srv.Addr())
	if e != nil {
		return e
	}
	claimPath := l.entity
	if l.kind == kindMgmt && c.authorized(l.entity+mgmtSuffix) {
		claimPath = l.entity + mgmtSuffix
	}
	if !c.authorized(claimPath) {
		claim := "Listen"
		if l.kind == kindEntityIn {
			claim = "Send"
		}
		return &frames.Error{Condition: condUnauthorized, Description: fmt.Sprintf(
			"Unauthorized access. '%s' claim(s) are required to perform this operation. Resource: 'sb://%s/%s'.", claim, c.srv.Addr(), l.entity)}
	}
	if e := checkUse(ent, l.kind, l.entity); e != nil {
		return e
	}
	if l.kind == kindEntityOut && sessionFilter(a.Source) {
		// A session receiver (AcceptSession, AcceptNextSession) would
		// otherwise get messages as if sessions did not exist.
		return &frames.Error{Condition: condNotImplemented, Description: fmt.Sprintf(
			"sessions are not supported by this emulator: '%s' cannot be received from with a session receiver", l.entity)}
	}
	l.q = ent.Queue
	if ent.Kind == store.KindTopic {
		l.target, l.topic = ent.Topic, true
	} else {
		l.target = ent.Queue
	}
	return nil
}

// sessionFilter reports whether a receiver's source carries the
// com.microsoft:session-filter every SDK's session receiver sends.
func sessionFilter(source any) bool {
	d, ok := source.(*enc.Described)
	if !ok {
		return false
	}
	l, _ := d.Value.([]any)
	if len(l) <= 7 {
		return false
	}
	m, _ := l[7].(enc.Map)
	_, has := m.Get("com.microsoft:session-filter")
	return has
}

// topUpLocked refreshes a client sender's credit when it runs low. For
// entity links it waits until the store has caught up, so that at most
// about 1.5 × linkCredit deliveries are ever queued.
func (l *link) topUpLocked() {
	if l.closed || l.sending || l.credit >= linkCredit/2 {
		return
	}
	if l.sends != nil && len(l.sends) >= linkCredit/2 {
		return
	}
	l.credit = linkCredit
	l.s.flowLocked(l, false)
}

// onDelivery handles a complete message the client sent on this link. It
// runs with conn.mu held.
func (l *link) onDelivery(d inDelivery) error {
	s := l.s
	switch l.kind {
	case kindCBS, kindMgmt:
		c := s.c
		req, rl, e := c.routeRequestLocked(l, d.payload)
		if e != nil {
			c.refuseRequestLocked(l, d, e)
			return nil
		}
		if !d.settled {
			s.settleIncomingLocked(d.id, &frames.Accepted{})
		}
		if l.kind == kindCBS {
			c.onPutToken(req, rl)
			return nil
		}
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			defer c.guard("management operation")
			c.onManagement(l, req, rl)
		}()
	case kindEntityIn:
		if d.tooLarge {
			s.settleIncomingLocked(d.id, &frames.Rejected{Error: &frames.Error{Condition: condMessageTooLarge,
				Description: fmt.Sprintf("The received message (delivery-id:%d, size:%d bytes) exceeds the limit (%d bytes) currently allowed on the link.", d.id, d.size, MaxMessageSize)}})
			return nil
		}
		select {
		case l.sends <- d:
		default:
			// More than the granted credit is in flight: the client broke the
			// flow-control contract.
			return protoErr(condNotAllowed, "transfer exceeds link credit")
		}
	default:
		return protoErr(condNotAllowed, "unexpected transfer on link %q", l.address)
	}
	return nil
}

// sendWorker stores the messages of one sender link in order, batching
// whatever has queued up into one store call (one disk sync).
func (l *link) sendWorker() {
	c := l.s.c
	defer c.wg.Done()
	defer c.guard("send worker")
	for d := range l.sends {
		batch := []inDelivery{d}
	more:
		for len(batch) < 256 {
			select {
			case d, ok := <-l.sends:
				if !ok {
					break more
				}
				batch = append(batch, d)
			default:
				break more
			}
		}
		states := c.storeSends(l, batch)
		c.locked(func() {
			if l.s.ended {
				return
			}
			for i, d := range batch {
				if !d.settled {
					l.s.settleIncomingLocked(d.id, states[i])
				}
			}
			l.topUpLocked()
			c.flushLocked()
		})
	}
}

// storeSends parses and stores a group of client deliveries and returns the
// outcome of each. Batches are accepted or rejected as a whole.
func (c *conn) storeSends(l *link, batch []inDelivery) []any {
	states := make([]any, len(batch))
	var msgs []store.Incoming
	owner := make([]int, 0, len(batch))
	for i, d := range batch {
		ins, err := parseDelivery(d, l.topic)
		if err != nil {
			c.log.Info("message refused", "queue", l.entity, "err", err)
			states[i] = &frames.Rejected{Error: &frames.Error{Condition: condDecodeError, Description: err.Error()}}
			continue
		}
		for _, in := range ins {
			msgs = append(msgs, in.toStore())
			owner = append(owner, i)
		}
		states[i] = &frames.Accepted{}
	}
	if len(msgs) == 0 {
		return states
	}
	_, err := l.target.Send(context.Background(), msgs)
	if err != nil {
		c.log.Warn("store send failed", "queue", l.entity, "err", err)
		st := &frames.Rejected{Error: sendError(err)}
		for _, i := range owner {
			states[i] = st
		}
	}
	return states
}

func sendError(err error) *frames.Error {
	switch {
	case errors.Is(err, store.ErrMessageTooLarge):
		return &frames.Error{Condition: condMessageTooLarge, Description: err.Error()}
	case errors.Is(err, store.ErrQuotaExceeded):
		return &frames.Error{Condition: condResourceLimit, Description: err.Error()}
	case errors.Is(err, store.ErrNotAllowed):
		return &frames.Error{Condition: condNotAllowed, Description: err.Error()}
	case errors.Is(err, store.ErrNotFound):
		return &frames.Error{Condition: condNotFound, Description: err.Error()}
	}
	return &frames.Error{Condition: condServerBusy, Description: err.Error()}
}

// parseDelivery splits a client delivery into messages (a batch holds many).
func parseDelivery(d inDelivery, withProps bool) ([]incoming, error) {
	if d.format != batchFormat {
		in, err := parseIncoming(d.payload, withProps)
		if err != nil {
			return nil, err
		}
		return []incoming{in}, nil
	}
	inner, err := splitBatch(d.payload)
	if err != nil {
		return nil, err
	}
	out := make([]incoming, 0, len(inner))
	for _, b := range inner {
		in, err := parseIncoming(b, withProps)
		if err != nil {
			return nil, err
		}
		out = append(out, in)
	}
	return out, nil
}
