package store

import (
	"fmt"

	"github.com/ffpipe/ffpipe/internal/emulator/servicebus/sqlfilter"
)

// route is one copy of an accepted message for one subscription.
type route struct {
	in  *Incoming
	seq int64
	sub int // index in topic.subs
}

// acceptedID is a message id the topic's duplicate detection remembers.
type acceptedID struct {
	id  string
	seq int64
}

// subCopy is one copy of a message that a subscription's rules ask for:
// the message itself (body nil) or, for a rule with an action, the body
// the action rewrote.
type subCopy struct {
	sub  int
	body []byte
}

// RuleNameProperty is the application property a copy made by a rule
// with an action carries: the rule's name.
const RuleNameProperty = "RuleName"

// copies evaluates every subscription's rules for one message. As in
// Service Bus, the rules without an action that match give the
// subscription one copy of the message; each matching rule with an
// action gives one more copy, rewritten by the action and carrying
// RuleName. A rule whose filter or action fails on this message (an
// evaluation error, the real service's FilterException) gives no copy;
// the failure is logged.
func (t *topic) copies(in *Incoming) []subCopy {
	var out, actioned []subCopy
	for i, sub := range t.subs {
		plain := false
		actioned = actioned[:0]
		for _, r := range sub.rules {
			if plain && r.action == nil {
				continue
			}
			ok, err := r.match(in.Props)
			if err == nil && ok && r.action != nil {
				var body []byte
				body, err = t.applyAction(in, r)
				if err == nil {
					actioned = append(actioned, subCopy{sub: i, body: body})
				}
			} else if err == nil && ok {
				plain = true
			}
			if err != nil {
				t.s.log.Warn("subscription rule failed; the message is not copied by it",
					"subscription", sub.q.cfg.Name, "rule", r.name, "message_id", in.MessageID, "err", err)
			}
		}
		// The unchanged copy first: it keeps the message's sequence number.
		if plain {
			out = append(out, subCopy{sub: i})
		}
		out = append(out, actioned...)
	}
	return out
}

// applyAction runs a rule's action on the message and rewrites its body.
func (t *topic) applyAction(in *Incoming, r *rule) ([]byte, error) {
	props := in.Props
	if props == nil {
		props = &sqlfilter.Message{}
	}
	_, changes, err := r.action.Apply(props)
	if err != nil {
		return nil, err
	}
	changes = append(changes, sqlfilter.Change{Name: RuleNameProperty, Value: r.name})
	if in.Annotate == nil {
		return nil, errNoAnnotate
	}
	body, err := in.Annotate(in.Body, changes)
	if err == nil && len(body) > t.s.opts.MaxMessageSize {
		err = fmt.Errorf("the rewritten message is %d bytes, limit %d: %w", len(body), t.s.opts.MaxMessageSize, ErrMessageTooLarge)
	}
	return body, err
}

// route appends the copies of one accepted message, whose sequence
// number is seq, and returns the last sequence number used: the first
// copy in a subscription has the message's number, each further copy
// (rules with actions) a number of its own. The TTL is capped by the
// topic's default.
func (t *topic) route(routes []route, in *Incoming, plan []subCopy, seq int64) ([]route, int64) {
	msgSeq := seq
	ttl := in.TTL
	if ttl <= 0 || ttl > t.cfg.DefaultMessageTimeToLive {
		ttl = t.cfg.DefaultMessageTimeToLive
	}
	first := make([]bool, len(t.subs))
	for _, c := range plan {
		cp := *in
		cp.TTL = ttl
		if c.body != nil {
			cp.Body = c.body
		}
		s := msgSeq
		if first[c.sub] {
			seq++
			s = seq
		}
		first[c.sub] = true
		routes = append(routes, route{in: &cp, seq: s, sub: c.sub})
	}
	return routes, seq
}
