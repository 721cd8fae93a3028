// Package etags owns the one rule for comparing Azure Storage eTags. The
// same eTag reaches ffpipe in several forms: quoted in HTTP headers and the
// SDK's azcore.ETag ("\"0x8DC…\""), bare in Event Grid events (0x8DC…),
// possibly weak (W/"…"), possibly with white space around it. Keys, records,
// If-Match conditions, the Event Grid stand-in and the chaos ledger all
// compare the bare form.
//
// It imports nothing of ffpipe, so the stand-ins may use it
// (docs/architecture.md).
package etags

import "strings"

// Normalize returns the bare form of an eTag: surrounding white space, a
// weak-validator prefix "W/" and the surrounding double quotes removed,
// repeatedly, so that Normalize(Normalize(e)) == Normalize(e).
func Normalize(e string) string {
	for {
		prev := e
		e = strings.TrimSpace(e)
		e = strings.TrimPrefix(e, "W/")
		if len(e) >= 2 && e[0] == '"' && e[len(e)-1] == '"' {
			e = e[1 : len(e)-1]
		}
		if e == prev {
			return e
		}
	}
}

// Equal reports whether a and b name the same version of a blob.
func Equal(a, b string) bool { return Normalize(a) == Normalize(b) }

// Quote returns the quoted form HTTP headers (If-Match) carry.
func Quote(e string) string { return `"` + Normalize(e) + `"` }
