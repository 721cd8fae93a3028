package request

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Limits on names, from the Azure Storage naming rules.
const (
	MaxBlobNameChars    = 1024
	MaxBlobPathSegments = 254
	MinContainerLen     = 3
	MaxContainerLen     = 63
)

// ValidateContainer checks an Azure container name: 3–63 characters,
// lowercase letters, digits and single dashes, starting and ending with a
// letter or digit. The special containers ($root, $logs, $web) are rejected.
func ValidateContainer(name string) error {
	if n := len(name); n < MinContainerLen || n > MaxContainerLen {
		return fmt.Errorf("container name must be %d-%d characters, got %d", MinContainerLen, MaxContainerLen, n)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-':
			if i == 0 || i == len(name)-1 {
				return fmt.Errorf("container name must start and end with a letter or digit")
			}
			if name[i-1] == '-' {
				return fmt.Errorf("container name must not contain consecutive dashes")
			}
		default:
			return fmt.Errorf("container name may contain only lowercase letters, digits and dashes (byte %d is %s)", i, quoteExcerpt(name[i:i+1]))
		}
	}
	return nil
}

// ValidateBlob checks a blob name against what Azure rejects and what is
// dangerous downstream: it must be valid UTF-8, 1–1,024 characters, at most
// 254 path segments, free of control characters (U+0000–U+001F, U+007F)
// and of the non-characters U+FFFE/U+FFFF (not valid in XML listings), with
// no empty, "." or ".." segment (so no leading slash and no "//"), and not
// ending in "." or "/".
func ValidateBlob(name string) error {
	if name == "" {
		return fmt.Errorf("blob name is empty")
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("blob name is not valid UTF-8")
	}
	if n := utf8.RuneCountInString(name); n > MaxBlobNameChars {
		return &lengthError{n: n}
	}
	for i, r := range name {
		if r < 0x20 || r == 0x7f || r == 0xfffe || r == 0xffff {
			return fmt.Errorf("blob name contains control character U+%04X at byte %d", r, i)
		}
	}
	if strings.HasSuffix(name, ".") || strings.HasSuffix(name, "/") {
		return fmt.Errorf("blob name must not end with '.' or '/'")
	}
	segs := strings.Split(name, "/")
	if len(segs) > MaxBlobPathSegments {
		return fmt.Errorf("blob name has %d path segments, at most %d allowed", len(segs), MaxBlobPathSegments)
	}
	for _, s := range segs {
		switch s {
		case "":
			return fmt.Errorf("blob name must not contain empty path segments (leading '/' or '//')")
		case ".", "..":
			return fmt.Errorf("blob name must not contain %q path segments", s)
		}
	}
	return nil
}

// lengthError marks a too-long name so callers can map it to ErrNameTooLong.
type lengthError struct{ n int }

func (e *lengthError) Error() string {
	return fmt.Sprintf("blob name is %d characters, at most %d allowed", e.n, MaxBlobNameChars)
}

// quoteExcerpt quotes at most 40 bytes of s for an error message,
// escaping control, format (bidi) and invalid characters, so hostile names
// cannot forge or reorder log lines.
func quoteExcerpt(s string) string {
	const max = 40
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		return strconv.QuoteToGraphic(s[:cut]) + "…"
	}
	return strconv.QuoteToGraphic(s)
}

// logExcerpt is quoteExcerpt without the surrounding quotes, for log
// attributes (which the handler quotes itself).
func logExcerpt(s string) string {
	q := quoteExcerpt(s)
	if strings.HasSuffix(q, "…") {
		return q[1:len(q)-len("\"…")] + "…"
	}
	return q[1 : len(q)-1]
}
