package request

import (
	"errors"
	"fmt"

	"github.com/ffpipe/ffpipe/internal/failure"
)

// Sentinels. Every *BadRequestError matches ErrBadRequest with errors.Is;
// the more specific ones let callers pick a record reason.
var (
	// ErrBadRequest matches every validation failure of a request.
	ErrBadRequest = errors.New("bad request")
	// ErrUnsupportedVersion: the message's "v" is newer than this code understands.
	ErrUnsupportedVersion = errors.New("unsupported message version")
	// ErrNameTooLong: a blob name (typically the generated output name) exceeds 1,024 characters.
	ErrNameTooLong = errors.New("blob name too long")
	// ErrUnknownPreset: the request names a preset that is not configured.
	ErrUnknownPreset = errors.New("unknown preset")
	// ErrUnknownProfile: the request's profile field, the upload's
	// metadata or a route names a profile that is not configured.
	ErrUnknownProfile = errors.New("unknown profile")
	// ErrTooLarge: the message body exceeds MaxBodyBytes.
	ErrTooLarge = errors.New("message too large")
	// ErrBadName: a blob name that Azure rejects or that is unsafe
	// downstream (control characters, "." or ".." segments, ...).
	ErrBadName = errors.New("bad blob name")
)

// BadRequestError is a request that can never succeed as sent: the caller
// records it as a failure (it is never retried). Field is a JSON path such
// as "source.blob"; Reason is human-readable and never contains the
// offending value verbatim beyond a short, escaped excerpt.
type BadRequestError struct {
	Field  string
	Reason string
	// Err is an optional more specific sentinel (ErrNameTooLong, ...).
	Err error
}

func (e *BadRequestError) Error() string {
	if e.Field == "" {
		return "bad request: " + e.Reason
	}
	return fmt.Sprintf("bad request: %s: %s", e.Field, e.Reason)
}

// Is makes every BadRequestError match ErrBadRequest.
func (e *BadRequestError) Is(target error) bool { return target == ErrBadRequest }

// Unwrap returns the specific sentinel, if any.
func (e *BadRequestError) Unwrap() error { return e.Err }

// Code returns the record's reason code for the error: failure.BadRequest,
// or a more specific one (failure.UnsupportedVersion, NameTooLong,
// UnknownPreset, TooLarge, BadName) that the sentinel in Err names.
func (e *BadRequestError) Code() failure.Reason {
	switch {
	case errors.Is(e.Err, ErrUnsupportedVersion):
		return failure.UnsupportedVersion
	case errors.Is(e.Err, ErrNameTooLong):
		return failure.NameTooLong
	case errors.Is(e.Err, ErrUnknownPreset):
		return failure.UnknownPreset
	case errors.Is(e.Err, ErrUnknownProfile):
		return failure.UnknownProfile
	case errors.Is(e.Err, ErrTooLarge):
		return failure.TooLarge
	case errors.Is(e.Err, ErrBadName):
		return failure.BadName
	}
	return failure.BadRequest
}

// Code returns the reason code of err if it is (or wraps) a
// *BadRequestError, and "" otherwise.
func Code(err error) failure.Reason {
	var bre *BadRequestError
	if errors.As(err, &bre) {
		return bre.Code()
	}
	return ""
}

func bad(field, format string, args ...any) *BadRequestError {
	return &BadRequestError{Field: field, Reason: fmt.Sprintf(format, args...)}
}
