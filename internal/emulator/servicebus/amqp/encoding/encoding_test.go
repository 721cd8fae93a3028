package encoding

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestMarshalGolden(t *testing.T) {
	ts := time.UnixMilli(1700000000123).UTC()
	tests := []struct {
		name string
		in   any
		want string
	}{
		{"null", nil, "40"},
		{"true", true, "41"},
		{"false", false, "42"},
		{"ubyte", uint8(7), "50 07"},
		{"byte", int8(-2), "51 fe"},
		{"ushort", uint16(65535), "60 ffff"},
		{"short", int16(-3), "61 fffd"},
		{"uint0", uint32(0), "43"},
		{"smalluint", uint32(200), "52 c8"},
		{"uint", uint32(60000), "70 0000ea60"},
		{"ulong0", uint64(0), "44"},
		{"smallulong", uint64(0x70), "53 70"},
		{"ulong", uint64(262144), "80 0000000000040000"},
		{"smallint", int32(-1), "54 ff"},
		{"int", int32(200), "71 000000c8"},
		{"smalllong", int64(5), "55 05"},
		{"long", int64(1 << 40), "81 0000010000000000"},
		{"float", float32(1.5), "72 3fc00000"},
		{"double", float64(-2), "82 c000000000000000"},
		{"timestamp", ts, "83 0000018bcfe5687b"},
		{"uuid", UUID{0xde, 0xe2, 0x66, 0x71, 6, 8, 0x4c, 0xdb, 0x8b, 2, 0xa7, 0xf5, 0x93, 0xfd, 0x1f, 0x19}, "98 dee2667106084cdb8b02a7f593fd1f19"},
		{"vbin8", []byte("m1"), "a0 02 6d31"},
		{"str8", "id-1", "a1 04 69642d31"},
		{"sym8", Symbol("ANONYMOUS"), "a3 09 414e4f4e594d4f5553"},
		{"str32", strings.Repeat("x", 256), "b1 00000100" + strings.Repeat("78", 256)},
		{"list0", []any{}, "45"},
		{"list32", []any{uint32(1), "a"}, "d0 00000009 00000002 5201 a10161"},
		{"empty map", Map{}, "d1 00000004 00000000"},
		{"map", Map{{Key: "n", Value: int64(5)}, {Key: "k", Value: "v"}}, "d1 0000000f 00000004 a1016e 5505 a1016b a10176"},
		{"array of timestamps", NewArray(0x83, ts), "f0 0000000d 00000001 83 0000018bcfe5687b"},
		{"array of longs", NewArray(0x81, int64(1), int64(2)), "f0 00000015 00000002 81 0000000000000001 0000000000000002"},
		{"symbol array", []Symbol{"ANONYMOUS", "PLAIN"}, "f0 0000001b 00000002 b3 00000009 414e4f4e594d4f5553 00000005 504c41494e"},
		{"described", &Described{Descriptor: uint64(0x75), Value: []byte("m1")}, "00 5375 a0026d31"},
		{"raw char", Raw{0x73, 0, 0, 0, 0x41}, "73 00000041"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Marshal(tt.in)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			if want := unhex(t, tt.want); !bytes.Equal(got, want) {
				t.Fatalf("got % x, want % x", got, want)
			}
		})
	}
}

func TestRoundTrip(t *testing.T) {
	values := []any{
		nil, true, false, uint8(1), int8(-1), uint16(9), int16(-9), uint32(0), uint32(7), uint32(1 << 20),
		uint64(0), uint64(9), uint64(1 << 40), int32(-100), int32(1 << 20), int64(-5), int64(math.MaxInt64),
		float32(2.5), 3.25, time.UnixMilli(1234567).UTC(), UUID{1, 2, 3}, []byte{}, []byte("abc"), "héllo", Symbol("sym"),
		[]any{}, []any{"a", []any{uint32(1)}, Map{{Key: Symbol("k"), Value: nil}}},
		Map{{Key: "a", Value: int64(1)}, {Key: int32(5), Value: []byte("x")}},
		&Described{Descriptor: uint64(0x24), Value: []any{}},
		&Described{Descriptor: Symbol("amqp:accepted:list"), Value: []any{}},
		Raw{0x94, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
	}
	for _, v := range values {
		b, err := Marshal(v)
		if err != nil {
			t.Fatalf("Marshal(%#v): %v", v, err)
		}
		got, rest, err := Unmarshal(b)
		if err != nil {
			t.Fatalf("Unmarshal(% x): %v", b, err)
		}
		if len(rest) != 0 {
			t.Errorf("Unmarshal(% x): %d bytes left", b, len(rest))
		}
		if !reflect.DeepEqual(got, v) {
			t.Errorf("round trip of %#v: got %#v", v, got)
		}
	}
}

func TestArrayDecodeKeepsBytes(t *testing.T) {
	in := unhex(t, "e0 04 02 55 01 02") // array8 of two smalllongs
	v, rest, err := Unmarshal(in)
	if err != nil {
		t.Fatal(err)
	}
	a, ok := v.(*Array)
	if !ok || len(rest) != 0 {
		t.Fatalf("got %T with %d bytes left, want *Array", v, len(rest))
	}
	if want := []any{int64(1), int64(2)}; !reflect.DeepEqual(a.Elems, want) {
		t.Errorf("elements: got %v, want %v", a.Elems, want)
	}
	out, err := Marshal(a)
	if err != nil || !bytes.Equal(out, in) {
		t.Errorf("re-encode: got % x (%v), want % x", out, err, in)
	}
}

func TestUnmarshalErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want error
	}{
		{"empty", "", ErrShort},
		{"truncated uint", "70 0000", ErrShort},
		{"unknown code", "ff", ErrInvalidCode},
		{"str8 too long", "a1 05 6162", ErrShort},
		{"bad utf8", "a1 02 c328", ErrInvalidUTF8},
		{"list count exceeds bytes", "c0 02 ff 40", ErrTooLarge},
		{"odd map", "c1 02 01 40", ErrOddMap},
		{"huge array", "f0 00000005 00010001 40", ErrTooLarge},
		{"list32 size beyond input", "d0 7ffffff0 00000001", ErrShort},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := Unmarshal(unhex(t, tt.in))
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
	deep := bytes.Repeat([]byte{0x00, 0x53, 0x01}, MaxDepth+2)
	if _, _, err := Unmarshal(append(deep, 0x40)); !errors.Is(err, ErrTooDeep) {
		t.Errorf("deep nesting: got %v, want %v", err, ErrTooDeep)
	}
}

func TestUUIDDotNet(t *testing.T) {
	u := UUID{0xde, 0xe2, 0x66, 0x71, 0x06, 0x08, 0x4c, 0xdb, 0x8b, 0x02, 0xa7, 0xf5, 0x93, 0xfd, 0x1f, 0x19}
	if got, want := u.String(), "dee26671-0608-4cdb-8b02-a7f593fd1f19"; got != want {
		t.Errorf("String: got %s, want %s", got, want)
	}
	tag := u.DotNet()
	if got, want := hex.EncodeToString(tag[:]), "7166e2de0806db4c8b02a7f593fd1f19"; got != want {
		t.Errorf("DotNet: got %s, want %s", got, want)
	}
}

func FuzzUnmarshal(f *testing.F) {
	for _, s := range []string{"40", "d0 00000009 00000002 5201 a10161", "f0 0000000d 00000001 83 0000018bcfe5687b",
		"00 5375 a0026d31", "d1 0000000f 00000004 a1016e 5505 a1016b a10176", "e0 04 02 55 01 02", "00 00 53 01 40"} {
		f.Add(unhex(f, s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, rest, err := Unmarshal(b)
		if err != nil {
			return
		}
		if len(rest) > len(b) {
			t.Fatalf("rest longer than input")
		}
		// A decoded value must re-encode and decode to the same value.
		out, err := Marshal(v)
		if err != nil {
			t.Fatalf("re-encode %#v: %v", v, err)
		}
		v2, _, err := Unmarshal(out)
		if err != nil {
			t.Fatalf("decode re-encoded % x: %v", out, err)
		}
		out2, err := Marshal(v2)
		if err != nil {
			t.Fatalf("re-encode %#v: %v", v2, err)
		}
		if !bytes.Equal(out, out2) {
			t.Fatalf("round trip: got % x, want % x", out2, out)
		}
	})
}

func TestSkipMatchesUnmarshal(t *testing.T) {
	for _, s := range []string{"40", "a0 02 6d31", "00 5375 a0026d31", "d0 00000009 00000002 5201 a10161", "e0 04 02 55 01 02", "98 dee2667106084cdb8b02a7f593fd1f19 40"} {
		b := unhex(t, s)
		_, rest, err := Unmarshal(b)
		if err != nil {
			t.Fatal(err)
		}
		n, err := Skip(b)
		if err != nil || n != len(b)-len(rest) {
			t.Errorf("Skip(% x): got %d, %v; want %d", b, n, err, len(b)-len(rest))
		}
	}
	if _, err := Skip(unhex(t, "b0 00000010 00")); !errors.Is(err, ErrShort) {
		t.Errorf("Skip of a truncated vbin32: got %v, want ErrShort", err)
	}
}

func FuzzSkip(f *testing.F) {
	f.Add(unhex(f, "00 5375 a0026d31"))
	f.Add(unhex(f, "d1 0000000f 00000004 a1016e 5505 a1016b a10176"))
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := Skip(b)
		if err != nil {
			return
		}
		if n > len(b) {
			t.Fatalf("Skip returned %d for %d bytes", n, len(b))
		}
		// Whatever Unmarshal accepts, Skip measures the same.
		if _, rest, err := Unmarshal(b); err == nil && n != len(b)-len(rest) {
			t.Fatalf("Skip got %d, Unmarshal consumed %d", n, len(b)-len(rest))
		}
	})
}
