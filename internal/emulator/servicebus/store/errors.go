package store

import "errors"

// Sentinel errors. Operations wrap them with context; test with errors.Is.
var (
	// ErrNotFound: no queue (or dead-letter subqueue) has that name.
	// The engine maps it to amqp:not-found on attach.
	ErrNotFound = errors.New("entity not found")

	// ErrMessageNotFound: a sequence number names no message in the state the
	// operation needs (ReceiveDeferred of a missing or non-deferred message).
	// The engine maps it to management status 404.
	ErrMessageNotFound = errors.New("message not found")

	// ErrLockLost: the lock token is unknown, expired, belongs to another
	// subqueue, or the message was already settled. The engine maps it to
	// com.microsoft:message-lock-lost / management status 410.
	ErrLockLost = errors.New("the lock supplied is invalid. Either the lock expired, or the message has already been removed from the queue")

	// ErrMessageTooLarge: a message body is larger than Options.MaxMessageSize.
	// The engine maps it to amqp:link:message-size-exceeded.
	ErrMessageTooLarge = errors.New("message too large")

	// ErrQuotaExceeded: the queue holds Options.MaxQueueBytes already.
	// The engine maps it to amqp:resource-limit-exceeded.
	ErrQuotaExceeded = errors.New("queue size quota exceeded")

	// ErrNotAllowed: the operation is not allowed on this entity (sending to a
	// dead-letter subqueue, dead-lettering a dead-lettered message).
	// The engine maps it to amqp:not-allowed.
	ErrNotAllowed = errors.New("operation not allowed")

	// ErrClosed: the store was closed, or its log failed and it refuses
	// further changes.
	ErrClosed = errors.New("store closed")

	// ErrInvalid: an argument is out of range (max <= 0, unknown mode).
	ErrInvalid = errors.New("invalid argument")
)
