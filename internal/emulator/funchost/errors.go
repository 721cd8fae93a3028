package funchost

import "errors"

var (
	// ErrConfig reports a bad host.json, function.json or local.settings.json.
	ErrConfig = errors.New("funchost: invalid configuration")
	// ErrSchedule reports an NCRONTAB expression that does not parse.
	ErrSchedule = errors.New("funchost: invalid schedule")
	// ErrInvocation reports a failed invocation: a non-2xx status, a body that
	// is not JSON, or a transport error talking to the handler.
	ErrInvocation = errors.New("funchost: invocation failed")
	// ErrHandlerStopped is returned when the handler exceeded its restart
	// limit (or the host is closed) and can no longer be invoked.
	ErrHandlerStopped = errors.New("funchost: handler stopped")
	// ErrClosed is returned by Start after Close.
	ErrClosed = errors.New("funchost: closed")
)
