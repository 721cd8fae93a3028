package encoding

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"unicode/utf8"
)

// Limits that keep hostile input from exhausting memory or stack.
const (
	// MaxDepth is the deepest nesting of compound and described values.
	MaxDepth = 32
	// MaxArrayCount caps the element count of an array (go-amqp uses the same).
	MaxArrayCount = 65536
)

// Decode errors.
var (
	ErrShort       = errors.New("amqp: value truncated")
	ErrInvalidCode = errors.New("amqp: invalid type code")
	ErrTooDeep     = errors.New("amqp: values nested too deeply")
	ErrTooLarge    = errors.New("amqp: compound value too large")
	ErrInvalidUTF8 = errors.New("amqp: invalid utf-8 in string")
	ErrOddMap      = errors.New("amqp: map with odd element count")
)

// Unmarshal decodes one value from the start of b and returns it with the
// bytes that follow it.
func Unmarshal(b []byte) (v any, rest []byte, err error) {
	d := decoder{b: b}
	v, err = d.value(0)
	if err != nil {
		return nil, b, err
	}
	return v, d.b[d.p:], nil
}

// UnmarshalAll decodes consecutive values until b is exhausted.
func UnmarshalAll(b []byte) ([]any, error) {
	var out []any
	for len(b) > 0 {
		v, rest, err := Unmarshal(b)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
		b = rest
	}
	return out, nil
}

type decoder struct {
	b []byte
	p int
}

func (d *decoder) need(n int) ([]byte, error) {
	if n < 0 || len(d.b)-d.p < n {
		return nil, ErrShort
	}
	s := d.b[d.p : d.p+n]
	d.p += n
	return s, nil
}

func (d *decoder) byte1() (byte, error) {
	s, err := d.need(1)
	if err != nil {
		return 0, err
	}
	return s[0], nil
}

func (d *decoder) value(depth int) (any, error) {
	if depth > MaxDepth {
		return nil, ErrTooDeep
	}
	start := d.p
	c, err := d.byte1()
	if err != nil {
		return nil, err
	}
	if c == 0x00 {
		desc, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		val, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		return &Described{Descriptor: desc, Value: val}, nil
	}
	return d.body(c, start, depth)
}

// body decodes the value after constructor c (already consumed; start is
// the offset of the constructor).
func (d *decoder) body(c byte, start, depth int) (any, error) {
	if v, ok := constant(c); ok {
		return v, nil
	}
	if w := fixedWidth(c); w > 0 {
		s, err := d.need(w)
		if err != nil {
			return nil, err
		}
		return fixed(c, s, d.b[start:d.p])
	}
	switch c {
	case 0xa0, 0xb0, 0xa1, 0xb1, 0xa3, 0xb3:
		return d.variable(c)
	case 0xc0, 0xd0, 0xc1, 0xd1:
		return d.compound(c, depth)
	case 0xe0, 0xf0:
		return d.array(c == 0xf0, start, depth)
	}
	return nil, fmt.Errorf("%w %#02x", ErrInvalidCode, c)
}

// constant is the value of a zero-width encoding, where the constructor
// is the whole value.
func constant(c byte) (any, bool) {
	switch c {
	case 0x40:
		return nil, true
	case 0x41:
		return true, true
	case 0x42:
		return false, true
	case 0x43:
		return uint32(0), true
	case 0x44:
		return uint64(0), true
	case 0x45:
		return []any{}, true
	}
	return nil, false
}

// fixed decodes the payload s of a fixed-width value with constructor c;
// raw is the value's whole encoding, kept for the types Go has no
// equivalent for (decimals, char) so they pass through unchanged.
func fixed(c byte, s, raw []byte) (any, error) {
	switch c {
	case 0x56:
		if s[0] > 1 {
			return nil, fmt.Errorf("amqp: invalid boolean %#x", s[0])
		}
		return s[0] == 1, nil
	case 0x50:
		return s[0], nil
	case 0x51:
		return int8(s[0]), nil
	case 0x52:
		return uint32(s[0]), nil
	case 0x53:
		return uint64(s[0]), nil
	case 0x54:
		return int32(int8(s[0])), nil
	case 0x55:
		return int64(int8(s[0])), nil
	case 0x60:
		return binary.BigEndian.Uint16(s), nil
	case 0x61:
		return int16(binary.BigEndian.Uint16(s)), nil
	case 0x70:
		return binary.BigEndian.Uint32(s), nil
	case 0x71:
		return int32(binary.BigEndian.Uint32(s)), nil
	case 0x72:
		return math.Float32frombits(binary.BigEndian.Uint32(s)), nil
	case 0x80:
		return binary.BigEndian.Uint64(s), nil
	case 0x81:
		return int64(binary.BigEndian.Uint64(s)), nil
	case 0x82:
		return math.Float64frombits(binary.BigEndian.Uint64(s)), nil
	case 0x83:
		return Timestamp(int64(binary.BigEndian.Uint64(s))), nil
	case 0x73, 0x74, 0x84, 0x94:
		return Raw(append([]byte(nil), raw...)), nil
	case 0x98:
		var u UUID
		copy(u[:], s)
		return u, nil
	}
	return nil, fmt.Errorf("%w %#02x", ErrInvalidCode, c)
}

// variable decodes binary, string and symbol values: a size, then bytes.
// Binary is copied so the value outlives the frame it came in.
func (d *decoder) variable(c byte) (any, error) {
	n, err := d.size(c >= 0xb0)
	if err != nil {
		return nil, err
	}
	s, err := d.need(n)
	if err != nil {
		return nil, err
	}
	switch c {
	case 0xa0, 0xb0:
		b := make([]byte, len(s))
		copy(b, s)
		return b, nil
	case 0xa1, 0xb1:
		if !utf8.Valid(s) {
			return nil, ErrInvalidUTF8
		}
		return string(s), nil
	default:
		return Symbol(s), nil
	}
}

// compound decodes a list (0xc0, 0xd0) or a map (0xc1, 0xd1): a size, a
// count, then count values, in pairs for a map.
func (d *decoder) compound(c byte, depth int) (any, error) {
	wide := c >= 0xd0
	size, err := d.size(wide)
	if err != nil {
		return nil, err
	}
	body, err := d.need(size)
	if err != nil {
		return nil, err
	}
	sub := decoder{b: body}
	count, err := sub.size(wide)
	if err != nil {
		return nil, err
	}
	if count > len(body)-sub.p {
		return nil, ErrTooLarge // each element takes at least one byte
	}
	elems := make([]any, 0, count)
	for i := 0; i < count; i++ {
		v, err := sub.value(depth + 1)
		if err != nil {
			return nil, err
		}
		elems = append(elems, v)
	}
	if c == 0xc0 || c == 0xd0 {
		return elems, nil
	}
	if count%2 != 0 {
		return nil, ErrOddMap
	}
	m := make(Map, 0, count/2)
	for i := 0; i < count; i += 2 {
		m = append(m, KV{Key: elems[i], Value: elems[i+1]})
	}
	return m, nil
}

func (d *decoder) size(wide bool) (int, error) {
	if !wide {
		x, err := d.byte1()
		return int(x), err
	}
	s, err := d.need(4)
	if err != nil {
		return 0, err
	}
	n := binary.BigEndian.Uint32(s)
	if uint64(n) > math.MaxInt32 {
		return 0, ErrTooLarge
	}
	return int(n), nil
}

func (d *decoder) array(wide bool, start, depth int) (any, error) {
	size, err := d.size(wide)
	if err != nil {
		return nil, err
	}
	body, err := d.need(size)
	if err != nil {
		return nil, err
	}
	end := d.p
	sub := decoder{b: body}
	count, err := sub.size(wide)
	if err != nil {
		return nil, err
	}
	if count > MaxArrayCount {
		return nil, ErrTooLarge
	}
	// The element constructor, possibly described.
	ctorStart := sub.p
	ctor, err := sub.byte1()
	if err != nil {
		if count == 0 {
			return &Array{raw: append([]byte(nil), d.b[start:end]...)}, nil
		}
		return nil, err
	}
	var desc any
	if ctor == 0x00 {
		if desc, err = sub.value(depth + 1); err != nil {
			return nil, err
		}
		if ctor, err = sub.byte1(); err != nil {
			return nil, err
		}
	}
	_ = ctorStart
	elems := make([]any, 0, min(count, len(body)))
	for i := 0; i < count; i++ {
		if sub.p >= len(sub.b) && fixedWidth(ctor) != 0 {
			return nil, ErrShort
		}
		v, err := sub.body(ctor, sub.p, depth+1)
		if err != nil {
			return nil, err
		}
		if desc != nil {
			v = &Described{Descriptor: desc, Value: v}
		}
		elems = append(elems, v)
	}
	return &Array{Ctor: ctor, Elems: elems, raw: append([]byte(nil), d.b[start:end]...)}, nil
}

// fixedWidth is the encoded width of a fixed-width element (excluding the
// constructor), or 0 for variable or zero-width types.
func fixedWidth(c byte) int {
	switch c {
	case 0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56:
		return 1
	case 0x60, 0x61:
		return 2
	case 0x70, 0x71, 0x72, 0x73, 0x74:
		return 4
	case 0x80, 0x81, 0x82, 0x83, 0x84:
		return 8
	case 0x94, 0x98:
		return 16
	}
	return 0
}

// Skip returns the encoded length of the value at the start of b without
// decoding it: it checks bounds but allocates nothing, so a message body
// can be passed through untouched.
func Skip(b []byte) (int, error) {
	d := decoder{b: b}
	if err := d.skip(0); err != nil {
		return 0, err
	}
	return d.p, nil
}

func (d *decoder) skip(depth int) error {
	if depth > MaxDepth {
		return ErrTooDeep
	}
	c, err := d.byte1()
	if err != nil {
		return err
	}
	if c == 0x00 {
		if err := d.skip(depth + 1); err != nil {
			return err
		}
		return d.skip(depth + 1)
	}
	if w := fixedWidth(c); w > 0 {
		_, err := d.need(w)
		return err
	}
	switch c {
	case 0x40, 0x41, 0x42, 0x43, 0x44, 0x45:
		return nil
	case 0xa0, 0xa1, 0xa3, 0xc0, 0xc1, 0xe0:
		n, err := d.size(false)
		if err != nil {
			return err
		}
		_, err = d.need(n)
		return err
	case 0xb0, 0xb1, 0xb3, 0xd0, 0xd1, 0xf0:
		n, err := d.size(true)
		if err != nil {
			return err
		}
		_, err = d.need(n)
		return err
	}
	return fmt.Errorf("%w %#02x", ErrInvalidCode, c)
}
