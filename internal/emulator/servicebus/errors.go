package servicebus

import "errors"

// Sentinel errors.
var (
	// ErrInvalidToken reports a put-token whose SAS token fails verification.
	ErrInvalidToken = errors.New("invalid token")
	// ErrNotStarted reports a call that needs a started server.
	ErrNotStarted = errors.New("servicebus: server not started")
	// ErrClosed reports use of a closed server.
	ErrClosed = errors.New("servicebus: server closed")
)

// AMQP and Service Bus error conditions the broker sends.
const (
	condNotFound        = "amqp:not-found"
	condNotImplemented  = "amqp:not-implemented"
	condNotAllowed      = "amqp:not-allowed"
	condUnauthorized    = "amqp:unauthorized-access"
	condDecodeError     = "amqp:decode-error"
	condFramingError    = "amqp:connection:framing-error"
	condInternal        = "amqp:internal-error"
	condInvalidField    = "amqp:invalid-field"
	condResourceLimit   = "amqp:resource-limit-exceeded"
	condMessageTooLarge = "amqp:link:message-size-exceeded"
	condLockLost        = "com.microsoft:message-lock-lost"
	condServerBusy      = "com.microsoft:server-busy"
	condDetachForced    = "amqp:link:detach-forced"
	condUnattached      = "amqp:session:unattached-handle"
	condWindowViolation = "amqp:session:window-violation"
	condConnForced      = "amqp:connection:forced"
)

const lockLostText = "The lock supplied is invalid. Either the lock expired, or the message has already been removed from the queue."
