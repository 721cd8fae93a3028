package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/ffpipe/ffpipe/internal/emulator/servicebus/sqlfilter"
)

// ruleError is a refused rule of a configuration: which one, and the
// field under its Properties ("SqlFilter.SqlExpression").
type ruleError struct {
	topic, sub, rule int
	field            string
	err              error
}

func (e *ruleError) Error() string { return e.field + ": " + e.err.Error() }
func (e *ruleError) Unwrap() error { return e.err }

// filePosition returns " (Config.json line L, column C)" for a refused SQL
// expression of a parsed file: where in the file the offending token is.
// It returns "" when the position cannot be found.
func filePosition(data []byte, err error) string {
	var re *ruleError
	var pe *sqlfilter.Error
	if !errors.As(err, &re) || !errors.As(err, &pe) {
		return ""
	}
	path := []any{"UserConfig", "Namespaces", 0, "Topics", re.topic, "Subscriptions", re.sub, "Rules", re.rule, "Properties"}
	for _, f := range strings.Split(re.field, ".") {
		path = append(path, f)
	}
	start, ok := jsonValueOffset(data, path)
	if !ok || start >= len(data) || data[start] != '"' {
		return ""
	}
	off, ok := rawOffset(data[start+1:], pe.Offset)
	if !ok {
		return ""
	}
	line, col := lineCol(data[:start+1+off])
	return fmt.Sprintf(" (Config.json line %d, column %d)", line, col)
}

// jsonValueOffset finds the byte offset of the value at path (object keys,
// matched ignoring case as encoding/json does, and array indexes).
func jsonValueOffset(data []byte, path []any) (int, bool) {
	dec := json.NewDecoder(bytes.NewReader(data))
	for _, seg := range path {
		tok, err := dec.Token()
		if err != nil {
			return 0, false
		}
		switch seg := seg.(type) {
		case string:
			if tok != json.Delim('{') || !findKey(dec, seg) {
				return 0, false
			}
		case int:
			if tok != json.Delim('[') {
				return 0, false
			}
			for i := 0; i < seg; i++ {
				if !dec.More() || skipValue(dec) != nil {
					return 0, false
				}
			}
			if !dec.More() {
				return 0, false
			}
		}
	}
	off := int(dec.InputOffset())
	for off < len(data) && strings.IndexByte(" \t\r\n:,", data[off]) >= 0 {
		off++
	}
	return off, true
}

// findKey advances dec inside an object to the value of key.
func findKey(dec *json.Decoder, key string) bool {
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		if k, ok := tok.(string); ok && strings.EqualFold(k, key) {
			return true
		}
		if skipValue(dec) != nil {
			return false
		}
	}
	return false
}

func skipValue(dec *json.Decoder) error {
	depth := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
		if depth == 0 {
			return nil
		}
	}
}

// rawOffset maps a byte offset in a decoded JSON string to the offset in
// its raw form (which starts right after the opening quote).
func rawOffset(raw []byte, decoded int) (int, bool) {
	i, d := 0, 0
	for d < decoded {
		if i >= len(raw) || raw[i] == '"' {
			return 0, false
		}
		if raw[i] != '\\' {
			i++
			d++
			continue
		}
		if i+1 >= len(raw) {
			return 0, false
		}
		if raw[i+1] == 'u' && i+6 <= len(raw) {
			n, err := strconv.ParseUint(string(raw[i+2:i+6]), 16, 32)
			if err != nil {
				return 0, false
			}
			i += 6
			if n >= 0xd800 && n <= 0xdfff {
				d += 2 // half of a surrogate pair: 4 UTF-8 bytes per pair
			} else {
				d += utf8.RuneLen(rune(n))
			}
			continue
		}
		i += 2
		d++
	}
	return i, true
}

func lineCol(prefix []byte) (int, int) {
	line, col := 1, 1
	for _, r := range string(prefix) {
		if r == '\n' {
			line++
			col = 1
		} else {
			col++
		}
	}
	return line, col
}
