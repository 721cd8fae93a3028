package batch

import (
	"net/url"
	"regexp"
)

var sigRE = regexp.MustCompile(`(?i)(sig=)[^&\s"]*`)

// redactURL hides SAS signatures (and any query) in a URL for messages.
func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil && u.RawQuery != "" {
		u.RawQuery = "redacted"
		return u.String()
	}
	return sigRE.ReplaceAllString(s, "${1}REDACTED")
}

// RedactSAS replaces every "sig=..." value in s; use it on any text that
// may contain a SAS URL (errors, logs).
func RedactSAS(s string) string { return sigRE.ReplaceAllString(s, "${1}REDACTED") }

// redactedError hides SAS signatures in an error's text while keeping
// errors.Is/As working on the original.
type redactedError struct{ err error }

func (e *redactedError) Error() string { return RedactSAS(e.err.Error()) }
func (e *redactedError) Unwrap() error { return e.err }

// redact wraps err so that its text carries no SAS signature; Batch error
// bodies may echo property values such as container URLs.
func redact(err error) error {
	if err == nil {
		return nil
	}
	return &redactedError{err: err}
}
