package sqlfilter

import "strings"

// System property names (the scope "sys."), lower-case. Lookups ignore
// case; "subject" is an alias of "label".
const (
	SysMessageID               = "messageid"
	SysCorrelationID           = "correlationid"
	SysTo                      = "to"
	SysReplyTo                 = "replyto"
	SysLabel                   = "label"
	SysSessionID               = "sessionid"
	SysReplyToSessionID        = "replytosessionid"
	SysContentType             = "contenttype"
	SysTimeToLive              = "timetolive"
	SysScheduledEnqueueTimeUtc = "scheduledenqueuetimeutc"
	SysPartitionKey            = "partitionkey"
	SysSize                    = "size"
	SysDeliveryCount           = "deliverycount"
	SysSequenceNumber          = "sequencenumber"
	SysEnqueuedTimeUtc         = "enqueuedtimeutc"
	SysExpiresAtUtc            = "expiresatutc"
)

// systemNames are the system properties a filter may name. A name outside
// this set is refused when the filter is parsed (the real service fails
// evaluating it).
var systemNames = map[string]bool{
	SysMessageID: true, SysCorrelationID: true, SysTo: true, SysReplyTo: true, SysLabel: true,
	SysSessionID: true, SysReplyToSessionID: true, SysContentType: true, SysTimeToLive: true,
	SysScheduledEnqueueTimeUtc: true, SysPartitionKey: true, SysSize: true, SysDeliveryCount: true,
	SysSequenceNumber: true, SysEnqueuedTimeUtc: true, SysExpiresAtUtc: true,
}

// canonicalSystem maps a system property name to its canonical form.
func canonicalSystem(name string) (string, bool) {
	n := strings.ToLower(name)
	if n == "subject" {
		n = SysLabel
	}
	return n, systemNames[n]
}

// Message is what a filter sees of a message: its system properties and
// its application (user) properties. Values are nil, string, bool, int64,
// float64 or other comparable Go values (time.Time, [16]byte, ...), which
// only compare for equality. Names ignore case. The zero value is an
// empty message.
type Message struct {
	sys  map[string]any
	user map[string]any
}

// SetSystem sets a system property (see the Sys* names).
func (m *Message) SetSystem(name string, v any) {
	n, _ := canonicalSystem(name)
	if m.sys == nil {
		m.sys = map[string]any{}
	}
	m.sys[n] = normalize(v)
}

// SetUser sets an application property. When two names differ only in
// case, the last one set wins.
func (m *Message) SetUser(name string, v any) {
	if m.user == nil {
		m.user = map[string]any{}
	}
	m.user[strings.ToLower(name)] = normalize(v)
}

// DeleteUser removes an application property.
func (m *Message) DeleteUser(name string) { delete(m.user, strings.ToLower(name)) }

// System returns a system property; ok is false when the message lacks it.
func (m *Message) System(name string) (v any, ok bool) {
	if m == nil {
		return nil, false
	}
	n, _ := canonicalSystem(name)
	v, ok = m.sys[n]
	return v, ok
}

// User returns an application property; ok is false when the message
// lacks it.
func (m *Message) User(name string) (v any, ok bool) {
	if m == nil {
		return nil, false
	}
	v, ok = m.user[strings.ToLower(name)]
	return v, ok
}

// Clone returns a copy that can be changed independently.
func (m *Message) Clone() *Message {
	n := &Message{}
	if m == nil {
		return n
	}
	if m.sys != nil {
		n.sys = make(map[string]any, len(m.sys))
		for k, v := range m.sys {
			n.sys[k] = v
		}
	}
	if m.user != nil {
		n.user = make(map[string]any, len(m.user))
		for k, v := range m.user {
			n.user[k] = v
		}
	}
	return n
}

// normalize widens Go numeric types to int64 or float64, the two numeric
// types of the filter language (C#'s long and double).
func normalize(v any) any {
	switch x := v.(type) {
	case int:
		return int64(x)
	case int8:
		return int64(x)
	case int16:
		return int64(x)
	case int32:
		return int64(x)
	case uint8:
		return int64(x)
	case uint16:
		return int64(x)
	case uint32:
		return int64(x)
	case uint:
		if uint64(x) <= 1<<63-1 {
			return int64(x)
		}
		return float64(x)
	case uint64:
		if x <= 1<<63-1 {
			return int64(x)
		}
		return float64(x)
	case float32:
		return float64(x)
	}
	return v
}
