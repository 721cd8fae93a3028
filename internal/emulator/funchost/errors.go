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
	// ErrFunctionTimeout reports an invocation that ran longer than
	// functionTimeout; the host then restarts the handler process.
	ErrFunctionTimeout = errors.New("funchost: function timeout")
	// ErrHandlerRestarted reports an invocation that was running when the
	// host restarted the handler process (after another invocation's
	// functionTimeout) or when the process died.
	ErrHandlerRestarted = errors.New("funchost: handler process restarted during the invocation")
	// ErrHandlerStopped is returned when the handler exceeded its restart
	// limit (or the host is closed) and can no longer be invoked.
	ErrHandlerStopped = errors.New("funchost: handler stopped")
	// ErrClosed is returned by Start after Close.
	ErrClosed = errors.New("funchost: closed")
)
