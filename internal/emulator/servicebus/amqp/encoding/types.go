// Package encoding is the AMQP 1.0 type system codec (OASIS AMQP 1.0, part 1)
// used by the local Service Bus stand-in.
//
// Values decode to plain Go types so that they re-encode to the same AMQP
// type:
//
//	null            nil
//	boolean         bool
//	ubyte/ushort    uint8/uint16
//	uint (3 forms)  uint32
//	ulong (3 forms) uint64
//	byte/short      int8/int16
//	int (2 forms)   int32
//	long (2 forms)  int64
//	float/double    float32/float64
//	timestamp       time.Time (UTC, millisecond precision)
//	uuid            UUID
//	binary          []byte
//	string          string
//	symbol          Symbol
//	list            []any
//	map             Map (ordered)
//	array           *Array
//	described       *Described
//	char, decimal*  Raw (kept verbatim)
package encoding

import (
	"encoding/hex"
	"time"
)

// Symbol is an AMQP symbol (ASCII).
type Symbol string

// UUID is an AMQP uuid in RFC 4122 byte order.
type UUID [16]byte

// String formats u in the canonical 8-4-4-4-12 form.
func (u UUID) String() string {
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:], u[10:])
	return string(b[:])
}

// DotNet returns u in the .NET Guid.ToByteArray layout (first three groups
// little-endian), the layout Service Bus uses for lock tokens in
// delivery tags.
func (u UUID) DotNet() [16]byte {
	var b [16]byte = u
	b[0], b[1], b[2], b[3] = u[3], u[2], u[1], u[0]
	b[4], b[5] = u[5], u[4]
	b[6], b[7] = u[7], u[6]
	return b
}

// Raw is an already encoded value (constructor included) that is written
// back verbatim. Types this codec does not interpret (char, decimals)
// decode to Raw.
type Raw []byte

// KV is one map entry.
type KV struct {
	Key   any
	Value any
}

// Map is an AMQP map with its entry order kept.
type Map []KV

// Get returns the value whose key is the string or symbol name.
func (m Map) Get(name string) (any, bool) {
	for _, kv := range m {
		switch k := kv.Key.(type) {
		case string:
			if k == name {
				return kv.Value, true
			}
		case Symbol:
			if string(k) == name {
				return kv.Value, true
			}
		}
	}
	return nil, false
}

// Set replaces the value of the entry whose key equals key (same Go type and
// value) or appends a new entry.
func (m Map) Set(key, value any) Map {
	for i, kv := range m {
		if kv.Key == key {
			m[i].Value = value
			return m
		}
	}
	return append(m, KV{Key: key, Value: value})
}

// Delete removes the entries whose string or symbol key is name.
func (m Map) Delete(name string) Map {
	out := m[:0]
	for _, kv := range m {
		switch k := kv.Key.(type) {
		case string:
			if k == name {
				continue
			}
		case Symbol:
			if string(k) == name {
				continue
			}
		}
		out = append(out, kv)
	}
	return out
}

// Array is an AMQP array. Ctor is the element constructor. Decoded arrays
// keep their encoded form in raw so they re-encode unchanged.
type Array struct {
	Ctor  byte
	Elems []any
	raw   []byte
}

// NewArray builds an array of elements encoded with constructor ctor, for
// example 0x83 for timestamps or 0x81 for longs.
func NewArray(ctor byte, elems ...any) *Array { return &Array{Ctor: ctor, Elems: elems} }

// Described is a described type: a descriptor (usually uint64 or Symbol)
// and a value.
type Described struct {
	Descriptor any
	Value      any
}

// Code returns the numeric descriptor, or false when it is not numeric.
func (d *Described) Code() (uint64, bool) {
	c, ok := d.Descriptor.(uint64)
	return c, ok
}

// Timestamp converts milliseconds since the Unix epoch to a UTC time.
func Timestamp(ms int64) time.Time { return time.UnixMilli(ms).UTC() }
