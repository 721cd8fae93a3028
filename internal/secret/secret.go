// Package secret owns the one rule for keeping credentials out of logs and
// errors: storage account keys, Service Bus keys and SAS tokens, SAS
// signatures, function keys in a URL and bearer tokens. Production code,
// the stand-ins and the tooling all redact through it, and the chaos
// harness scans every component's log for what it would have hidden.
//
// It imports nothing of ffpipe, so the stand-ins may use it
// (docs/architecture.md).
package secret

import (
	"net/url"
	"regexp"
	"strings"
)

// Marker replaces every secret value.
const Marker = "REDACTED"

// pattern matches the name of a secret (kept) and its value (replaced):
// AccountKey=…, SharedAccessKey=…, SharedAccessSignature=…, sig=… (SAS
// signatures, also inside a "SharedAccessSignature sr=…&sig=…" token),
// code=… in a query (Functions keys) and "Bearer …". A value ends at the
// separators of connection strings, queries, quoted text and lists.
var pattern = regexp.MustCompile(`(?i)(accountkey=|sharedaccesskey=|sharedaccesssignature=|[?&]code=|\bsig=|\bbearer\s+)[^;&\s"',]+`)

// Redact returns s with every secret value replaced by Marker.
func Redact(s string) string {
	if !strings.Contains(s, "=") && !strings.Contains(strings.ToLower(s), "bearer") {
		return s
	}
	return pattern.ReplaceAllString(s, "${1}"+Marker)
}

// RedactURL returns a URL for messages: its whole query replaced (a SAS
// URL's query is its credential), or Redact(s) when s does not parse.
func RedactURL(s string) string {
	if u, err := url.Parse(s); err == nil && u.RawQuery != "" {
		u.RawQuery = strings.ToLower(Marker)
		return u.String()
	}
	return Redact(s)
}

// RedactError wraps err so that its text is redacted while errors.Is and
// errors.As still see err. It returns nil for nil.
func RedactError(err error) error {
	if err == nil {
		return nil
	}
	return &redacted{err: err}
}

type redacted struct{ err error }

func (e *redacted) Error() string { return Redact(e.err.Error()) }
func (e *redacted) Unwrap() error { return e.err }
