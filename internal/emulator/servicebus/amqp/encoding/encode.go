package encoding

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"
)

// Buffer accumulates encoded values.
type Buffer struct {
	B []byte
}

// Bytes returns the encoded bytes.
func (e *Buffer) Bytes() []byte { return e.B }

// Reset empties the buffer, keeping its capacity.
func (e *Buffer) Reset() { e.B = e.B[:0] }

// Marshal encodes v with the Go-to-AMQP mapping described in the package
// documentation.
func Marshal(v any) ([]byte, error) {
	var e Buffer
	if err := e.Write(v); err != nil {
		return nil, err
	}
	return e.B, nil
}

func (e *Buffer) u8(b ...byte) { e.B = append(e.B, b...) }
func (e *Buffer) u16(x uint16) { e.B = binary.BigEndian.AppendUint16(e.B, x) }
func (e *Buffer) u32(x uint32) { e.B = binary.BigEndian.AppendUint32(e.B, x) }
func (e *Buffer) u64(x uint64) { e.B = binary.BigEndian.AppendUint64(e.B, x) }

// WriteNull writes null.
func (e *Buffer) WriteNull() { e.u8(0x40) }

// WriteBool writes a boolean in its compact form.
func (e *Buffer) WriteBool(b bool) {
	if b {
		e.u8(0x41)
	} else {
		e.u8(0x42)
	}
}

// WriteUint writes a uint in the smallest of its three forms.
func (e *Buffer) WriteUint(x uint32) {
	switch {
	case x == 0:
		e.u8(0x43)
	case x < 256:
		e.u8(0x52, byte(x))
	default:
		e.u8(0x70)
		e.u32(x)
	}
}

// WriteUlong writes a ulong in the smallest of its three forms.
func (e *Buffer) WriteUlong(x uint64) {
	switch {
	case x == 0:
		e.u8(0x44)
	case x < 256:
		e.u8(0x53, byte(x))
	default:
		e.u8(0x80)
		e.u64(x)
	}
}

// WriteInt writes an int as smallint or int.
func (e *Buffer) WriteInt(x int32) {
	if x >= -128 && x <= 127 {
		e.u8(0x54, byte(int8(x)))
		return
	}
	e.u8(0x71)
	e.u32(uint32(x))
}

// WriteLong writes a long as smalllong or long.
func (e *Buffer) WriteLong(x int64) {
	if x >= -128 && x <= 127 {
		e.u8(0x55, byte(int8(x)))
		return
	}
	e.u8(0x81)
	e.u64(uint64(x))
}

// WriteTimestamp writes t as milliseconds since the epoch.
func (e *Buffer) WriteTimestamp(t time.Time) {
	e.u8(0x83)
	e.u64(uint64(t.UnixMilli()))
}

// WriteUUID writes u.
func (e *Buffer) WriteUUID(u UUID) {
	e.u8(0x98)
	e.B = append(e.B, u[:]...)
}

func (e *Buffer) variable(small, large byte, s []byte) {
	if len(s) < 256 {
		e.u8(small, byte(len(s)))
	} else {
		e.u8(large)
		e.u32(uint32(len(s)))
	}
	e.B = append(e.B, s...)
}

// WriteString writes a UTF-8 string as str8 or str32.
func (e *Buffer) WriteString(s string) {
	if len(s) < 256 {
		e.u8(0xa1, byte(len(s)))
	} else {
		e.u8(0xb1)
		e.u32(uint32(len(s)))
	}
	e.B = append(e.B, s...)
}

// WriteSymbol writes a symbol as sym8 or sym32.
func (e *Buffer) WriteSymbol(s Symbol) {
	if len(s) < 256 {
		e.u8(0xa3, byte(len(s)))
	} else {
		e.u8(0xb3)
		e.u32(uint32(len(s)))
	}
	e.B = append(e.B, s...)
}

// WriteBinary writes binary as vbin8 or vbin32.
func (e *Buffer) WriteBinary(b []byte) { e.variable(0xa0, 0xb0, b) }

// WriteDescriptor writes the described-type prefix with a numeric
// descriptor in the 0x53 form Service Bus clients require.
func (e *Buffer) WriteDescriptor(code uint64) {
	e.u8(0x00)
	e.WriteUlong(code)
}

// BeginCompound starts a list32 or map32 and returns a mark for
// EndCompound, which fills in size and count.
func (e *Buffer) BeginCompound(ctor byte) int {
	e.u8(ctor)
	mark := len(e.B)
	e.u32(0)
	e.u32(0)
	return mark
}

// EndCompound completes the compound started at mark with count elements.
func (e *Buffer) EndCompound(mark int, count int) {
	binary.BigEndian.PutUint32(e.B[mark:], uint32(len(e.B)-mark-4))
	binary.BigEndian.PutUint32(e.B[mark+4:], uint32(count))
}

// WriteList writes a list; an empty list is written as list0.
func (e *Buffer) WriteList(l []any) error {
	if len(l) == 0 {
		e.u8(0x45)
		return nil
	}
	mark := e.BeginCompound(0xd0)
	for _, v := range l {
		if err := e.Write(v); err != nil {
			return err
		}
	}
	e.EndCompound(mark, len(l))
	return nil
}

// WriteMap writes m as map32.
func (e *Buffer) WriteMap(m Map) error {
	mark := e.BeginCompound(0xd1)
	for _, kv := range m {
		if err := e.Write(kv.Key); err != nil {
			return err
		}
		if err := e.Write(kv.Value); err != nil {
			return err
		}
	}
	e.EndCompound(mark, 2*len(m))
	return nil
}

// WriteArray writes a as array32, or its original bytes if it was decoded.
func (e *Buffer) WriteArray(a *Array) error {
	if a.raw != nil {
		e.B = append(e.B, a.raw...)
		return nil
	}
	e.u8(0xf0)
	mark := len(e.B)
	e.u32(0)
	e.u32(uint32(len(a.Elems)))
	e.u8(a.Ctor)
	for _, v := range a.Elems {
		if err := e.arrayElem(a.Ctor, v); err != nil {
			return err
		}
	}
	binary.BigEndian.PutUint32(e.B[mark:], uint32(len(e.B)-mark-4))
	return nil
}

func (e *Buffer) arrayElem(ctor byte, v any) error {
	bad := func() error { return fmt.Errorf("amqp: array element %T does not fit constructor %#02x", v, ctor) }
	switch ctor {
	case 0x83:
		t, ok := v.(time.Time)
		if !ok {
			return bad()
		}
		e.u64(uint64(t.UnixMilli()))
	case 0x81:
		x, ok := v.(int64)
		if !ok {
			return bad()
		}
		e.u64(uint64(x))
	case 0x71:
		x, ok := v.(int32)
		if !ok {
			return bad()
		}
		e.u32(uint32(x))
	case 0x70:
		x, ok := v.(uint32)
		if !ok {
			return bad()
		}
		e.u32(x)
	case 0x80:
		x, ok := v.(uint64)
		if !ok {
			return bad()
		}
		e.u64(x)
	case 0x98:
		u, ok := v.(UUID)
		if !ok {
			return bad()
		}
		e.B = append(e.B, u[:]...)
	case 0xb3:
		s, ok := v.(Symbol)
		if !ok {
			return bad()
		}
		e.u32(uint32(len(s)))
		e.B = append(e.B, s...)
	case 0xb1:
		s, ok := v.(string)
		if !ok {
			return bad()
		}
		e.u32(uint32(len(s)))
		e.B = append(e.B, s...)
	case 0xb0:
		s, ok := v.([]byte)
		if !ok {
			return bad()
		}
		e.u32(uint32(len(s)))
		e.B = append(e.B, s...)
	default:
		return fmt.Errorf("amqp: unsupported array constructor %#02x", ctor)
	}
	return nil
}

// Write encodes v. Unsupported Go types are an error.
func (e *Buffer) Write(v any) error {
	switch x := v.(type) {
	case nil:
		e.WriteNull()
	case bool:
		e.WriteBool(x)
	case uint8:
		e.u8(0x50, x)
	case int8:
		e.u8(0x51, byte(x))
	case uint16:
		e.u8(0x60)
		e.u16(x)
	case int16:
		e.u8(0x61)
		e.u16(uint16(x))
	case uint32:
		e.WriteUint(x)
	case uint64:
		e.WriteUlong(x)
	case int32:
		e.WriteInt(x)
	case int64:
		e.WriteLong(x)
	case int:
		e.WriteLong(int64(x))
	case float32:
		e.u8(0x72)
		e.u32(math.Float32bits(x))
	case float64:
		e.u8(0x82)
		e.u64(math.Float64bits(x))
	case time.Time:
		e.WriteTimestamp(x)
	case UUID:
		e.WriteUUID(x)
	case []byte:
		e.WriteBinary(x)
	case string:
		e.WriteString(x)
	case Symbol:
		e.WriteSymbol(x)
	case []Symbol:
		a := &Array{Ctor: 0xb3, Elems: make([]any, len(x))}
		for i, s := range x {
			a.Elems[i] = s
		}
		return e.WriteArray(a)
	case []any:
		return e.WriteList(x)
	case Map:
		return e.WriteMap(x)
	case *Array:
		return e.WriteArray(x)
	case *Described:
		e.u8(0x00)
		if err := e.Write(x.Descriptor); err != nil {
			return err
		}
		return e.Write(x.Value)
	case Raw:
		e.B = append(e.B, x...)
	default:
		return fmt.Errorf("amqp: cannot encode %T", v)
	}
	return nil
}
