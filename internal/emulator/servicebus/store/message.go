package store

import (
	"time"

	"github.com/ffpipe/ffpipe/internal/emulator/servicebus/sqlfilter"
)

// State is a message's state as Service Bus reports it in
// x-opt-message-state (active messages omit the annotation).
type State int

// Message states. The values are the wire values.
const (
	StateActive    State = 0
	StateDeferred  State = 1
	StateScheduled State = 2
)

func (s State) String() string {
	switch s {
	case StateActive:
		return "active"
	case StateDeferred:
		return "deferred"
	case StateScheduled:
		return "scheduled"
	}
	return "unknown"
}

// ReceiveMode selects PeekLock or ReceiveAndDelete. The zero value is
// invalid so that a forgotten mode is caught.
type ReceiveMode int

// Receive modes.
const (
	PeekLock         ReceiveMode = 1
	ReceiveAndDelete ReceiveMode = 2
)

// Incoming is a message to send.
type Incoming struct {
	// Body is the encoded AMQP message, opaque to the store. The store
	// keeps the slice: the caller must not modify it after Send.
	Body []byte
	// MessageID is used for duplicate detection; empty means the message
	// is never a duplicate.
	MessageID string
	// TTL is the message's time to live (AMQP header ttl); 0 or more than
	// the queue's DefaultMessageTimeToLive means the queue default.
	TTL time.Duration
	// ScheduledAt, when after now, makes the message scheduled: invisible
	// to receivers until then (x-opt-scheduled-enqueue-time).
	ScheduledAt time.Time
	// Props are the properties subscription rules see when the message is
	// sent to a topic; nil is a message without properties. Queues ignore
	// them.
	Props *sqlfilter.Message
	// Annotate rewrites Body for the copy a rule action made: it applies
	// the changes to the application properties and returns the new body
	// (without modifying its argument). Nil means actions cannot apply: a
	// rule with an action then gives no copy.
	Annotate func(body []byte, changes []sqlfilter.Change) ([]byte, error)
}

// SendResult reports what happened to one Incoming message.
type SendResult struct {
	// SequenceNumber is the new message's number, or for a duplicate the
	// number of the message it duplicates.
	SequenceNumber int64
	// Duplicate is true when the message was dropped by duplicate
	// detection (it must still be acknowledged as accepted).
	Duplicate bool
}

// Message is a snapshot of a stored message, returned by Receive, Peek and
// ReceiveDeferred. It is a copy: later changes to the stored message do not
// show in it. Body is shared with the store and must not be modified.
type Message struct {
	SequenceNumber int64
	Body           []byte
	MessageID      string
	// EnqueuedAt is when the message was accepted, or its scheduled time
	// for a scheduled message (x-opt-enqueued-time).
	EnqueuedAt time.Time
	// TTL is the effective time to live: min(sent TTL, queue default).
	// ExpiresAt = EnqueuedAt + TTL. Dead-lettered messages do not expire.
	TTL       time.Duration
	ExpiresAt time.Time
	// ScheduledAt is the requested scheduled enqueue time, zero if none.
	ScheduledAt time.Time
	// DeliveryCount counts previous failed deliveries (abandons and lock
	// expiries): the AMQP header delivery-count. The SDK shows it + 1.
	DeliveryCount uint32
	State         State
	// LockToken and LockedUntil are set when the message is locked, i.e.
	// for PeekLock receives (and in Peek results for locked messages,
	// where the engine must not reveal the token).
	LockToken   LockToken
	LockedUntil time.Time
	// DeadLettered is true for messages in a dead-letter subqueue.
	// DeadLetterReason and DeadLetterDescription (possibly empty) are then
	// set; the engine writes them as the application properties
	// DeadLetterReason and DeadLetterErrorDescription (strings).
	DeadLettered          bool
	DeadLetterReason      string
	DeadLetterDescription string
}

// Locked reports whether the message carried a lock when the snapshot
// was taken.
func (m *Message) Locked() bool { return m.LockToken != LockToken{} }

// Modify rewrites a stored message body when a settlement carries
// properties-to-modify. It receives the current body and returns the new
// one; it runs under the queue's lock, so it must be quick and must not
// call the store. It must not modify its argument in place. An error
// aborts the settlement and is returned unchanged. A nil Modify keeps the
// body.
type Modify func(body []byte) ([]byte, error)

// Counts are the numbers of messages in one entity.
type Counts struct {
	Active    int // available plus locked
	Locked    int
	Deferred  int
	Scheduled int
	Bytes     int64 // sum of body sizes in this entity
}

// Dead-letter reasons set by the store itself.
const (
	ReasonMaxDeliveryCountExceeded = "MaxDeliveryCountExceeded"
	ReasonTTLExpired               = "TTLExpiredException"
	DescriptionTTLExpired          = "The message expired and was dead lettered."
)
