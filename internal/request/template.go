package request

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// DefaultTemplate is the default output name template: the input's
// directory and stem with the preset's extension ("videos/a.mp4" →
// "videos/a.mp3", "a.mp4" → "a.mp3").
const DefaultTemplate = "{dir}/{stem}.{ext}"

// MaxTemplateLen bounds the template text.
const MaxTemplateLen = 512

// Template variables:
//
//	{dir}    the source blob's directory ("videos/2024" for "videos/2024/a.mp4"; "" at the root)
//	{name}   the source blob's last segment ("a.mp4")
//	{stem}   {name} without the primary input suffix ("a" for "a.mp4"), see below
//	{ext}    the preset's output extension, without the dot ("mp3")
//	{preset} the preset name
//	{key}    the request key (see Key)
//
// When {dir} expands to "" the "/" right after it is dropped, so
// "{dir}/{stem}.{ext}" gives "a.mp3" for a blob at the root, never "/a.mp3".
//
// {stem} keeps output names injective, so that two inputs never share an
// output blob (two keys would write it): the primary suffix (the first
// allowed suffix, ".mp4" by default) is removed only in its exact form and
// only when what is left does not itself end in an allowed suffix, in any
// case; otherwise {stem} is the whole name. So "a.mp4" → "a", but "a.MP4"
// → "a.MP4" and "a.MP4.mp4" → "a.MP4.mp4". Over names that end in an allowed
// suffix (the only ones ffpipe accepts) the three kinds of stem cannot meet.
var templateVars = map[string]bool{"dir": true, "name": true, "stem": true, "ext": true, "preset": true, "key": true}

// Template is a parsed output name template. The zero value is not usable;
// use ParseTemplate.
type Template struct {
	raw   string
	parts []tpart
}

type tpart struct {
	lit string // literal text, when v == ""
	v   string // variable name
}

// Vars are the values a Template expands.
type Vars struct {
	Blob string // the source blob name
	// Suffixes are the allowed input suffixes, lower case, the primary one
	// first (default: ".mp4").
	Suffixes []string
	Ext      string // the preset's extension, without the dot
	Preset   string
	Key      string
}

// ParseTemplate parses and validates an output name template. It is meant
// to run at start-up: a template that can produce an invalid blob name for
// an ordinary input, or that does not depend on the input ({stem}, {name}
// or {key}), is rejected.
func ParseTemplate(s string) (*Template, error) {
	if s == "" {
		return nil, fmt.Errorf("parse output template: empty")
	}
	if len(s) > MaxTemplateLen {
		return nil, fmt.Errorf("parse output template: longer than %d bytes", MaxTemplateLen)
	}
	if !utf8.ValidString(s) {
		return nil, fmt.Errorf("parse output template: not valid UTF-8")
	}
	t := &Template{raw: s}
	rest := s
	for rest != "" {
		i := strings.IndexAny(rest, "{}")
		if i < 0 {
			t.parts = append(t.parts, tpart{lit: rest})
			break
		}
		if rest[i] == '}' {
			return nil, fmt.Errorf("parse output template %q: unmatched '}'", s)
		}
		if i > 0 {
			t.parts = append(t.parts, tpart{lit: rest[:i]})
		}
		j := strings.IndexAny(rest[i+1:], "{}")
		if j < 0 || rest[i+1+j] != '}' {
			return nil, fmt.Errorf("parse output template %q: unterminated '{'", s)
		}
		name := rest[i+1 : i+1+j]
		if !templateVars[name] {
			return nil, fmt.Errorf("parse output template %q: unknown variable {%s} (known: {dir} {name} {stem} {ext} {preset} {key})", s, name)
		}
		t.parts = append(t.parts, tpart{v: name})
		rest = rest[i+2+j:]
	}
	if !t.Uses("stem") && !t.Uses("name") && !t.Uses("key") {
		return nil, fmt.Errorf("parse output template %q: must use {stem}, {name} or {key} so that outputs depend on the input", s)
	}
	// Dry runs on ordinary inputs catch literals that make invalid names
	// ("/x", "a//b", "x/../y", control characters, a trailing '.').
	for _, blob := range []string{"a.mp4", "dir/sub/a.mp4"} {
		out, err := t.Execute(Vars{Blob: blob, Ext: "mp3", Preset: "mp3", Key: strings.Repeat("0", KeyLen)})
		if err != nil {
			return nil, fmt.Errorf("parse output template %q: %w", s, err)
		}
		if err := ValidateBlob(out); err != nil {
			return nil, fmt.Errorf("parse output template %q: for input %q it gives %q: %w", s, blob, out, err)
		}
	}
	return t, nil
}

// MustParseTemplate is ParseTemplate for constants; it panics on error.
func MustParseTemplate(s string) *Template {
	t, err := ParseTemplate(s)
	if err != nil {
		panic(err)
	}
	return t
}

// String returns the template text.
func (t *Template) String() string { return t.raw }

// Uses reports whether the template refers to the variable name (without braces).
func (t *Template) Uses(name string) bool {
	for _, p := range t.parts {
		if p.v == name {
			return true
		}
	}
	return false
}

// Execute expands the template. It does not validate the result; callers
// use ValidateBlob (WithDefaults does).
func (t *Template) Execute(v Vars) (string, error) {
	if t.Uses("key") && v.Key == "" {
		return "", fmt.Errorf("expand output template: {key} needs the request key (resolve the eTag first)")
	}
	dir, name := splitDir(v.Blob)
	stem := stemOf(name, v.Suffixes)
	var b strings.Builder
	dropSlash := false
	for _, p := range t.parts {
		if p.v == "" {
			lit := p.lit
			if dropSlash {
				lit = strings.TrimPrefix(lit, "/")
			}
			dropSlash = false
			b.WriteString(lit)
			continue
		}
		dropSlash = false
		switch p.v {
		case "dir":
			b.WriteString(dir)
			dropSlash = dir == ""
		case "name":
			b.WriteString(name)
		case "stem":
			b.WriteString(stem)
		case "ext":
			b.WriteString(v.Ext)
		case "preset":
			b.WriteString(v.Preset)
		case "key":
			b.WriteString(v.Key)
		}
	}
	return b.String(), nil
}

// splitDir splits a blob name at its last '/'.
func splitDir(blob string) (dir, name string) {
	if i := strings.LastIndexByte(blob, '/'); i >= 0 {
		return blob[:i], blob[i+1:]
	}
	return "", blob
}

// DefaultSuffixes are the allowed input suffixes when none are configured.
var DefaultSuffixes = []string{".mp4"}

// stemOf is {stem}: name without the primary suffix, when that keeps output
// names injective (see the Template doc), else name itself.
func stemOf(name string, suffixes []string) string {
	if len(suffixes) == 0 {
		suffixes = DefaultSuffixes
	}
	rest, ok := strings.CutSuffix(name, suffixes[0])
	if !ok || rest == "" {
		return name
	}
	if HasSuffix(rest, suffixes) {
		return name
	}
	return rest
}

// HasSuffix reports whether name ends in one of suffixes (lower case),
// ignoring case.
func HasSuffix(name string, suffixes []string) bool {
	lower := strings.ToLower(name)
	for _, s := range suffixes {
		if strings.HasSuffix(lower, s) {
			return true
		}
	}
	return false
}

// OutputName is the output blob name the default template gives blob with
// the default suffixes, for tools that predict outputs (tests, benchmarks,
// the chaos harness). It is "" when the name has no output.
func OutputName(blob, ext string) string {
	out, err := defaultTemplate.Execute(Vars{Blob: blob, Ext: ext})
	if err != nil {
		return ""
	}
	return out
}
