package servicebus

import (
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	enc "github.com/ffpipe/ffpipe/internal/emulator/servicebus/amqp/encoding"
	"github.com/ffpipe/ffpipe/internal/emulator/servicebus/sqlfilter"
	"github.com/ffpipe/ffpipe/internal/emulator/servicebus/store"
)

// Message section descriptors.
const (
	secHeader          = 0x70
	secDeliveryAnn     = 0x71
	secMessageAnn      = 0x72
	secProperties      = 0x73
	secApplicationProp = 0x74
	secData            = 0x75
	secSequence        = 0x76
	secValue           = 0x77
	secFooter          = 0x78
)

// batchFormat is the message-format of a Service Bus batch transfer.
const batchFormat = 0x80013700

type section struct {
	code uint64
	raw  []byte
	val  any // the described value's content (list, map, ...)
}

// splitSections parses a bare or annotated message into its sections.
func splitSections(b []byte) ([]section, error) {
	var out []section
	for len(b) > 0 {
		// Bodies and footers pass through: only find their length.
		if len(b) >= 3 && b[0] == 0x00 && b[1] == 0x53 && b[2] >= secData && b[2] <= secFooter {
			n, err := enc.Skip(b)
			if err != nil {
				return nil, fmt.Errorf("parse message section: %w", err)
			}
			out = append(out, section{code: uint64(b[2]), raw: b[:n]})
			b = b[n:]
			continue
		}
		v, rest, err := enc.Unmarshal(b)
		if err != nil {
			return nil, fmt.Errorf("parse message section: %w", err)
		}
		d, ok := v.(*enc.Described)
		if !ok {
			return nil, fmt.Errorf("parse message section: got %T, want described section", v)
		}
		code, ok := d.Code()
		if !ok {
			if s, isSym := d.Descriptor.(enc.Symbol); isSym {
				code = symbolicSection(s)
			}
		}
		if code < secHeader || code > secFooter {
			return nil, fmt.Errorf("parse message section: unknown section descriptor %v", d.Descriptor)
		}
		out = append(out, section{code: code, raw: b[:len(b)-len(rest)], val: d.Value})
		b = rest
	}
	return out, nil
}

func symbolicSection(s enc.Symbol) uint64 {
	names := []enc.Symbol{"amqp:header:list", "amqp:delivery-annotations:map", "amqp:message-annotations:map",
		"amqp:properties:list", "amqp:application-properties:map", "amqp:data:binary",
		"amqp:amqp-sequence:list", "amqp:amqp-value:*", "amqp:footer:map"}
	for i, n := range names {
		if n == s {
			return secHeader + uint64(i)
		}
	}
	return 0
}

// incoming is a message parsed from a client transfer.
type incoming struct {
	bare        []byte // message bytes to store (message-id filled in)
	messageID   string
	ttl         time.Duration      // 0 = none
	scheduledAt time.Time          // zero = not scheduled
	props       *sqlfilter.Message // for topic rules; nil unless asked for
}

// toStore is the store's view of the message.
func (in *incoming) toStore() store.Incoming {
	out := store.Incoming{Body: in.bare, MessageID: in.messageID, TTL: in.ttl, ScheduledAt: in.scheduledAt, Props: in.props}
	if in.props != nil {
		out.Annotate = annotate
	}
	return out
}

// annotate applies a rule action's changes to the application properties
// of an encoded message (store.Incoming.Annotate). Property names match
// ignoring case, as in filters; a new property keeps the action's
// spelling.
func annotate(bare []byte, changes []sqlfilter.Change) ([]byte, error) {
	secs, err := splitSections(bare)
	if err != nil {
		return nil, err
	}
	var props enc.Map
	at := -1
	for i, s := range secs {
		if s.code == secApplicationProp {
			m, _ := s.val.(enc.Map)
			props = append(enc.Map(nil), m...)
			at = i
		}
	}
	for _, c := range changes {
		i := indexFold(props, c.Name)
		switch {
		case c.Remove && i >= 0:
			props = append(props[:i], props[i+1:]...)
		case c.Remove:
		case i >= 0:
			props[i].Value = c.Value
		default:
			props = append(props, enc.KV{Key: c.Name, Value: c.Value})
		}
	}
	var e enc.Buffer
	written := false
	write := func() error {
		written = true
		if len(props) == 0 {
			return nil
		}
		e.WriteDescriptor(secApplicationProp)
		return e.WriteMap(props)
	}
	for i, s := range secs {
		if !written && (i == at || at < 0 && s.code > secApplicationProp) {
			if err := write(); err != nil {
				return nil, err
			}
			if i == at {
				continue
			}
		}
		e.B = append(e.B, s.raw...)
	}
	if !written {
		if err := write(); err != nil {
			return nil, err
		}
	}
	return e.B, nil
}

func indexFold(m enc.Map, name string) int {
	for i, kv := range m {
		if k, ok := kv.Key.(string); ok && strings.EqualFold(k, name) {
			return i
		}
	}
	return -1
}

// splitBatch returns the inner messages of a batch transfer: every data
// section of the envelope holds one encoded message.
func splitBatch(payload []byte) ([][]byte, error) {
	secs, err := splitSections(payload)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for _, s := range secs {
		if s.code == secData {
			// Slice the binary out of the section without copying: s.raw
			// is "00 53 75" then vbin8 (a0 n) or vbin32 (b0 nnnn).
			r := s.raw[3:]
			switch {
			case len(r) >= 2 && r[0] == 0xa0:
				out = append(out, r[2:])
			case len(r) >= 5 && r[0] == 0xb0:
				out = append(out, r[5:])
			default:
				return nil, fmt.Errorf("parse batch: data section is not binary")
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("parse batch: no messages")
	}
	return out, nil
}

// parseIncoming validates a message from a client, fills in a missing
// message-id and extracts what the store needs; withProps also extracts
// the properties that subscription rules see (messages sent to a topic).
func parseIncoming(b []byte, withProps bool) (incoming, error) {
	in, err := parseIncomingBare(b)
	if err != nil || !withProps {
		return in, err
	}
	secs, err := splitSections(in.bare)
	if err != nil {
		return incoming{}, err
	}
	in.props = filterView(secs, len(in.bare))
	return in, nil
}

// filterView is what SQL and correlation filters see of a message: the
// system properties of the properties section and annotations, and the
// application properties.
func filterView(secs []section, size int) *sqlfilter.Message {
	m := &sqlfilter.Message{}
	m.SetSystem(sqlfilter.SysSize, int64(size))
	for _, s := range secs {
		switch s.code {
		case secMessageAnn:
			ann, _ := s.val.(enc.Map)
			for _, kv := range ann {
				switch fmt.Sprint(kv.Key) {
				case "x-opt-partition-key":
					m.SetSystem(sqlfilter.SysPartitionKey, filterValue(kv.Value))
				case "x-opt-scheduled-enqueue-time":
					m.SetSystem(sqlfilter.SysScheduledEnqueueTimeUtc, kv.Value)
				}
			}
		case secProperties:
			l, _ := s.val.([]any)
			fields := []struct {
				at   int
				name string
			}{{0, sqlfilter.SysMessageID}, {2, sqlfilter.SysTo}, {3, sqlfilter.SysLabel}, {4, sqlfilter.SysReplyTo},
				{5, sqlfilter.SysCorrelationID}, {6, sqlfilter.SysContentType}, {10, sqlfilter.SysSessionID},
				{12, sqlfilter.SysReplyToSessionID}}
			for _, f := range fields {
				if f.at < len(l) && l[f.at] != nil {
					m.SetSystem(f.name, filterValue(l[f.at]))
				}
			}
		case secApplicationProp:
			props, _ := s.val.(enc.Map)
			for _, kv := range props {
				if k, ok := kv.Key.(string); ok {
					m.SetUser(k, filterValue(kv.Value))
				}
			}
		}
	}
	return m
}

// filterValue maps an AMQP value to a filter value: symbols and ids become
// strings, numbers widen in sqlfilter; everything else stays as decoded.
func filterValue(v any) any {
	switch x := v.(type) {
	case enc.Symbol:
		return string(x)
	case enc.UUID:
		return x.String()
	}
	return v
}

func parseIncomingBare(b []byte) (incoming, error) {
	secs, err := splitSections(b)
	if err != nil {
		return incoming{}, err
	}
	in := incoming{}
	propsAt := -1
	for i, s := range secs {
		switch s.code {
		case secHeader:
			l, _ := s.val.([]any)
			if len(l) > 2 {
				if ms, ok := l[2].(uint32); ok && ms > 0 {
					in.ttl = time.Duration(ms) * time.Millisecond
				}
			}
		case secMessageAnn:
			m, _ := s.val.(enc.Map)
			if v, ok := m.Get("x-opt-scheduled-enqueue-time"); ok {
				if t, ok := v.(time.Time); ok {
					in.scheduledAt = t
				}
			}
		case secProperties:
			propsAt = i
			l, _ := s.val.([]any)
			if len(l) > 0 {
				switch id := l[0].(type) {
				case string:
					in.messageID = id
				case enc.UUID:
					in.messageID = id.String()
				case uint64:
					in.messageID = fmt.Sprint(id)
				case []byte:
					in.messageID = fmt.Sprintf("%x", id)
				}
			}
		}
	}
	if in.messageID != "" {
		in.bare = b
		return in, nil
	}
	// Fill in a message-id, as the real service does.
	in.messageID = newID()
	var e enc.Buffer
	inserted := false
	for i, s := range secs {
		if i == propsAt {
			l, _ := s.val.([]any)
			nl := append([]any{in.messageID}, tail(l, 1)...)
			e.WriteDescriptor(secProperties)
			if err := e.WriteList(nl); err != nil {
				return incoming{}, err
			}
			inserted = true
			continue
		}
		if !inserted && propsAt < 0 && s.code > secProperties {
			e.WriteDescriptor(secProperties)
			_ = e.WriteList([]any{in.messageID})
			inserted = true
		}
		e.B = append(e.B, s.raw...)
	}
	if !inserted {
		e.WriteDescriptor(secProperties)
		_ = e.WriteList([]any{in.messageID})
	}
	in.bare = e.B
	return in, nil
}

func tail(l []any, from int) []any {
	if len(l) <= from {
		return nil
	}
	return l[from:]
}

// newID returns a random 32-hex-digit message id.
func newID() string { return strings.ReplaceAll(uuid.NewString(), "-", "") }

// deliveryInfo is what the broker adds to a stored message when it
// delivers it (docs/servicebus-wire.md#what-a-delivered-message-carries).
type deliveryInfo struct {
	seq           int64
	enqueued      time.Time
	lockedUntil   time.Time // zero = not locked
	lockToken     *enc.UUID
	deliveryCount uint32 // previous failed attempts
	state         int32  // 0 active, 1 deferred, 2 scheduled
	ttl           time.Duration
	appProps      enc.Map // merged into application-properties (values overwrite)
}

// buildDelivery re-encodes a stored message with the broker's annotations.
func buildDelivery(bare []byte, info deliveryInfo) ([]byte, error) {
	secs, err := splitSections(bare)
	if err != nil {
		return nil, err
	}
	m := sectionsOf(secs)
	// Change copies: the stored message is never modified. The copies are
	// made here, not in a callee, so that small ones stay on the stack.
	m.header = deliveryHeader(append([]any(nil), m.header...), info)
	m.dann = append(enc.Map(nil), m.dann...)
	if info.lockToken != nil {
		m.dann = m.dann.Delete("x-opt-lock-token").Set(enc.Symbol("x-opt-lock-token"), *info.lockToken)
	}
	m.mann = messageAnnotations(append(enc.Map(nil), m.mann...), info)
	m.appProps = append(enc.Map(nil), m.appProps...)
	for _, kv := range info.appProps {
		m.appProps = m.appProps.Set(kv.Key, kv.Value)
	}
	return m.encode(make([]byte, 0, len(bare)+160))
}

// deliverySections are the sections of a stored message that a delivery
// changes or places, by kind; secs are all of them, for the body sections.
type deliverySections struct {
	secs                 []section
	header               []any
	dann, mann, appProps enc.Map
	props                []byte
	footer               []byte
}

// sectionsOf sorts secs by kind; the values are the stored message's own.
func sectionsOf(secs []section) deliverySections {
	m := deliverySections{secs: secs}
	for _, s := range secs {
		switch s.code {
		case secHeader:
			m.header, _ = s.val.([]any)
		case secDeliveryAnn:
			m.dann, _ = s.val.(enc.Map)
		case secMessageAnn:
			m.mann, _ = s.val.(enc.Map)
		case secProperties:
			m.props = s.raw
		case secApplicationProp:
			m.appProps, _ = s.val.(enc.Map)
		case secFooter:
			m.footer = s.raw
		}
	}
	return m
}

// deliveryHeader sets the delivery count, and a TTL no longer than the
// entity's, in header's list fields; trailing nulls are dropped, as the
// encoding allows.
func deliveryHeader(header []any, info deliveryInfo) []any {
	for len(header) < 5 {
		header = append(header, nil)
	}
	header = header[:5]
	header[4] = info.deliveryCount
	if info.ttl > 0 {
		if cur, ok := header[2].(uint32); !ok || time.Duration(cur)*time.Millisecond > info.ttl {
			header[2] = uint32(info.ttl / time.Millisecond)
		}
	}
	for len(header) > 0 && header[len(header)-1] == nil {
		header = header[:len(header)-1]
	}
	return header
}

// messageAnnotations replaces the broker's message annotations in mann
// (sequence number, enqueued and locked-until times, state) with this
// delivery's.
func messageAnnotations(mann enc.Map, info deliveryInfo) enc.Map {
	mann = mann.Delete("x-opt-sequence-number").Delete("x-opt-enqueued-time").Delete("x-opt-locked-until").Delete("x-opt-message-state")
	mann = append(mann, enc.KV{Key: enc.Symbol("x-opt-sequence-number"), Value: info.seq},
		enc.KV{Key: enc.Symbol("x-opt-enqueued-time"), Value: info.enqueued})
	if !info.lockedUntil.IsZero() {
		mann = append(mann, enc.KV{Key: enc.Symbol("x-opt-locked-until"), Value: info.lockedUntil})
	}
	if info.state != 0 {
		mann = append(mann, enc.KV{Key: enc.Symbol("x-opt-message-state"), Value: info.state})
	}
	return mann
}

// encode appends the sections to b in the order the spec requires; an
// empty properties section is written when the message had none.
func (m *deliverySections) encode(b []byte) ([]byte, error) {
	e := enc.Buffer{B: b}
	e.WriteDescriptor(secHeader)
	if err := e.WriteList(m.header); err != nil {
		return nil, err
	}
	if len(m.dann) > 0 {
		e.WriteDescriptor(secDeliveryAnn)
		if err := e.WriteMap(m.dann); err != nil {
			return nil, err
		}
	}
	e.WriteDescriptor(secMessageAnn)
	if err := e.WriteMap(m.mann); err != nil {
		return nil, err
	}
	if m.props != nil {
		e.B = append(e.B, m.props...)
	} else {
		e.WriteDescriptor(secProperties)
		_ = e.WriteList(nil)
	}
	if len(m.appProps) > 0 {
		e.WriteDescriptor(secApplicationProp)
		if err := e.WriteMap(m.appProps); err != nil {
			return nil, err
		}
	}
	for _, s := range m.secs {
		if isBody(s.code) {
			e.B = append(e.B, s.raw...)
		}
	}
	e.B = append(e.B, m.footer...)
	return e.B, nil
}

// isBody says whether a section is none of the kinds deliverySections
// names: a body section (data, sequence or value) or an unknown one, kept
// as it is.
func isBody(code uint64) bool {
	switch code {
	case secHeader, secDeliveryAnn, secMessageAnn, secProperties, secApplicationProp, secFooter:
		return false
	}
	return true
}
