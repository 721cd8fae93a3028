package batch

import (
	"reflect"
	"time"
	"unicode/utf8"
)

// sizeBound is an upper bound of the JSON size of v as the SDK encodes it
// (encoding/json: nil pointers and empty slices omitted, strings escaped
// with HTML escaping), computed without encoding. Encoding a task is most
// of the CPU of adding it, and the SDK encodes every task anyway: chunking
// by an encoded size would encode each task twice.
func sizeBound(v any) int { return boundOf(reflect.ValueOf(v)) }

var timeType = reflect.TypeFor[time.Time]()

func boundOf(v reflect.Value) int {
	switch v.Kind() {
	case reflect.Invalid:
		return len("null")
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return len("null")
		}
		return boundOf(v.Elem())
	case reflect.String:
		return escapedLen(v.String())
	case reflect.Struct:
		if v.Type() == timeType {
			return len(`"2006-01-02T15:04:05.999999999-07:00"`)
		}
		n := len("{}")
		for i := range v.NumField() {
			f := v.Field(i)
			if !v.Type().Field(i).IsExported() || f.IsZero() {
				continue
			}
			// "name": value, with room for a JSON name longer than the
			// Go name (the SDK's names are the Go names in camel case).
			n += 2*len(v.Type().Field(i).Name) + len(`"":,`) + boundOf(f)
		}
		return n
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.IsNil() {
			return len("null")
		}
		n := len("[]")
		for i := range v.Len() {
			n += boundOf(v.Index(i)) + len(",")
		}
		return n
	case reflect.Map:
		n := len("{}")
		it := v.MapRange()
		for it.Next() {
			n += boundOf(it.Key()) + boundOf(it.Value()) + len(":,")
		}
		return n
	default: // numbers and booleans
		return 32
	}
}

// escapedLen is the length of s as a JSON string by encoding/json: quotes,
// two-byte escapes, \u00XX for other control characters, <, > and &,
// \u2028/\u2029 and \ufffd for invalid UTF-8.
func escapedLen(s string) int {
	n := len(`""`)
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t' || c == '\b' || c == '\f':
				n += 2
			case c < 0x20 || c == '<' || c == '>' || c == '&':
				n += 6
			default:
				n++
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1, r == '\u2028', r == '\u2029':
			n += 6
		default:
			n += size
		}
		i += size
	}
	return n
}
