package frames

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"

	enc "github.com/ffpipe/ffpipe/internal/emulator/servicebus/amqp/encoding"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func u32(v uint32) *uint32 { return &v }
func u16(v uint16) *uint16 { return &v }
func u8(v uint8) *uint8    { return &v }

func TestAppendGolden(t *testing.T) {
	tests := []struct {
		name string
		typ  byte
		ch   uint16
		p    Performative
		want string
	}{
		{"sasl outcome ok", TypeSASL, 0, &SASLOutcome{Code: 0}, "00000016 02 01 0000 0053 44 d0 00000006 00000001 5000"},
		{"begin reply", TypeAMQP, 3, &Begin{RemoteChannel: u16(3), NextOutgoingID: 0, IncomingWindow: 5000, OutgoingWindow: 5000},
			"00000022 02 00 0003 0053 11 d0 00000012 00000004 600003 43 7000001388 7000001388"},
		{"flow with credit", TypeAMQP, 0, &Flow{NextIncomingID: u32(1), IncomingWindow: 5000, NextOutgoingID: 0, OutgoingWindow: 5000, Handle: u32(0), DeliveryCount: u32(0), LinkCredit: u32(1000)},
			"00000028 02 00 0000 0053 13 d0 00000018 00000007 5201 7000001388 43 7000001388 43 43 70000003e8"},
		{"detach closed with error", TypeAMQP, 1, &Detach{Handle: 2, Closed: true, Error: &Error{Condition: "amqp:not-found", Description: "x"}},
			"00000036 02 00 0001 0053 16 d0 00000026 00000003 5202 41 0053 1d d0 00000017 00000002 a30e 616d71703a6e6f742d666f756e64 a10178"},
		{"disposition accepted", TypeAMQP, 0, &Disposition{Role: RoleReceiver, First: 7, Settled: true, State: &Accepted{}},
			"0000001d 02 00 0000 0053 15 d0 0000000d 00000005 41 5207 40 41 0053 24 45"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Append(nil, tt.typ, tt.ch, tt.p, nil)
			if err != nil {
				t.Fatal(err)
			}
			if want := unhex(t, tt.want); !bytes.Equal(got, want) {
				t.Fatalf("got  % x\nwant % x", got, want)
			}
		})
	}
}

// saslInit is the frame the SDK sends (docs/servicebus-wire.md#sasl).
const saslInit = "0000002a 02 01 0000 00 53 41 D0 0000001A 00000002 A3 09 414e4f4e594d4f5553 A0 09 616e6f6e796d6f7573"

func TestDecodeSASLInitFromSDK(t *testing.T) {
	b := unhex(t, saslInit)
	raw, n, ok, err := Parse(b, 65536)
	if err != nil || !ok || n != len(b) {
		t.Fatalf("Parse: n=%d ok=%v err=%v", n, ok, err)
	}
	f, err := Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	want := &SASLInit{Mechanism: "ANONYMOUS", InitialResponse: []byte("anonymous")}
	if !reflect.DeepEqual(f.Body, want) {
		t.Fatalf("got %#v, want %#v", f.Body, want)
	}
}

func TestRoundTripPerformatives(t *testing.T) {
	src := &enc.Described{Descriptor: CodeSource, Value: []any{"q"}}
	perfs := []Performative{
		&Open{ContainerID: "c", Hostname: "h:1", MaxFrameSize: 65536, ChannelMax: 65535, HasChanMax: true, IdleTimeout: 30000, Properties: enc.Map{{Key: enc.Symbol("product"), Value: "x"}}},
		&Begin{NextOutgoingID: 1, IncomingWindow: 5000, OutgoingWindow: 5000, HandleMax: u32(10)},
		&Attach{Name: "l", Handle: 1, Role: RoleReceiver, SndSettleMode: u8(1), RcvSettleMode: u8(0), Source: src, Target: &enc.Described{Descriptor: CodeTarget, Value: []any{}}, InitialDeliveryCount: u32(0), MaxMessageSize: 262144},
		&Flow{NextIncomingID: u32(1), IncomingWindow: 2, NextOutgoingID: 3, OutgoingWindow: 4, Handle: u32(5), DeliveryCount: u32(6), LinkCredit: u32(7), Drain: true, Echo: true},
		&Transfer{Handle: 1, DeliveryID: u32(2), DeliveryTag: []byte{1}, MessageFormat: u32(0x80013700), Settled: true, More: true},
		&Disposition{Role: RoleSender, First: 1, Last: u32(3), Settled: true, State: &Rejected{Error: &Error{Condition: "com.microsoft:dead-letter", Info: enc.Map{{Key: "DeadLetterReason", Value: "r"}}}}},
		&Disposition{Role: RoleReceiver, First: 1, State: &Modified{DeliveryFailed: true, UndeliverableHere: true, MessageAnnotations: enc.Map{{Key: enc.Symbol("k"), Value: int64(1)}}}},
		&Disposition{Role: RoleReceiver, First: 1, State: &Released{}},
		&Detach{Handle: 4, Closed: true},
		&End{Error: &Error{Condition: "amqp:internal-error", Description: "d"}},
		&Close{},
	}
	for _, p := range perfs {
		b, err := Append(nil, TypeAMQP, 9, p, []byte("payload"))
		if err != nil {
			t.Fatal(err)
		}
		raw, _, err := ReadFrame(iotest.OneByteReader(bytes.NewReader(b)), 65536, nil)
		if err != nil {
			t.Fatalf("%T: ReadFrame: %v", p, err)
		}
		if _, isTransfer := p.(*Transfer); !isTransfer {
			// Only transfers may carry a payload; strip it for the others.
			b, _ = Append(nil, TypeAMQP, 9, p, nil)
			raw, _, _ = ReadFrame(bytes.NewReader(b), 65536, nil)
		}
		f, err := Decode(raw)
		if err != nil {
			t.Fatalf("%T: Decode: %v", p, err)
		}
		if f.Channel != 9 {
			t.Errorf("%T: channel got %d, want 9", p, f.Channel)
		}
		if !reflect.DeepEqual(f.Body, p) {
			t.Errorf("round trip: got %#v, want %#v", f.Body, p)
		}
	}
}

func TestReadFrameChunking(t *testing.T) {
	var stream []byte
	stream = append(stream, Heartbeat...)
	stream, _ = Append(stream, TypeAMQP, 1, &Begin{NextOutgoingID: 0, IncomingWindow: 5, OutgoingWindow: 5}, nil)
	stream, _ = Append(stream, TypeAMQP, 1, &Transfer{Handle: 0, DeliveryID: u32(0), DeliveryTag: []byte{0}}, bytes.Repeat([]byte{7}, 3000))
	readers := map[string]io.Reader{
		"one byte": iotest.OneByteReader(bytes.NewReader(stream)),
		"half":     iotest.HalfReader(bytes.NewReader(stream)),
		"whole":    bytes.NewReader(stream),
	}
	for name, r := range readers {
		t.Run(name, func(t *testing.T) {
			var kinds []string
			for {
				raw, _, err := ReadFrame(r, 65536, nil)
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				f, err := Decode(raw)
				if err != nil {
					t.Fatal(err)
				}
				kinds = append(kinds, fmt.Sprintf("%T", f.Body))
				if tr, ok := f.Body.(*Transfer); ok && len(f.Payload) != 3000 {
					t.Errorf("transfer %v payload got %d bytes, want 3000", tr, len(f.Payload))
				}
			}
			if want := []string{"<nil>", "*frames.Begin", "*frames.Transfer"}; strings.Join(kinds, ",") != strings.Join(want, ",") {
				t.Errorf("got frames %v, want %v", kinds, want)
			}
		})
	}
	// Parse on a growing buffer behaves the same.
	for i := 0; i < len(stream); i++ {
		_, n, ok, err := Parse(stream[:i], 65536)
		if err != nil {
			t.Fatalf("Parse(%d bytes): %v", i, err)
		}
		if ok && n > i {
			t.Fatalf("Parse(%d bytes) consumed %d", i, n)
		}
	}
}

func TestReadFrameErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		max  uint32
		want error
	}{
		{"size below header", "00000004 02 00 0000", 65536, ErrBadFrame},
		{"doff too small", "00000008 01 00 0000", 65536, ErrBadFrame},
		{"doff beyond size", "00000008 04 00 0000", 65536, ErrBadFrame},
		{"too large", "00100000 02 00 0000", 65536, ErrFrameTooLarge},
		{"truncated body", "00000010 02 00 0000 0053", 65536, io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := ReadFrame(bytes.NewReader(unhex(t, tt.in)), tt.max, nil)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name string
		body string
	}{
		{"not described", "45"},
		{"symbolic descriptor", "00 a3 03 616263 45"},
		{"not a list", "00 53 10 a1 01 61"},
		{"wrong field type", "00 53 11 d0 00000007 00000002 a10161 40"}, // begin remote-channel as string
		{"trailing bytes", "00 53 17 45 40"},
		{"attach without handle", "00 53 12 d0 00000006 00000002 a10161 40"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Decode(RawFrame{Type: TypeAMQP, Body: unhex(t, tt.body)}); err == nil {
				t.Fatal("got nil error, want one")
			}
		})
	}
	f, err := Decode(RawFrame{Type: TypeAMQP, Body: unhex(t, "00 53 30 45")})
	if err != nil {
		t.Fatal(err)
	}
	if u, ok := f.Body.(*UnknownPerformative); !ok || u.Code != 0x30 {
		t.Fatalf("got %#v, want UnknownPerformative 0x30", f.Body)
	}
}

func FuzzDecodeFrame(f *testing.F) {
	f.Add(unhex(f, saslInit))
	f.Add(Heartbeat)
	for _, p := range []Performative{
		&Open{ContainerID: "c", MaxFrameSize: 512},
		&Attach{Name: "n", Handle: 1, Source: &enc.Described{Descriptor: CodeSource, Value: []any{"q"}}},
		&Disposition{First: 1, State: &Rejected{Error: &Error{Condition: "x"}}},
	} {
		b, _ := Append(nil, TypeAMQP, 0, p, nil)
		f.Add(b)
	}
	b, _ := Append(nil, TypeAMQP, 0, &Transfer{Handle: 1, DeliveryID: u32(1), DeliveryTag: []byte{1}}, []byte{0, 0x53, 0x75, 0xa0, 1, 1})
	f.Add(b)
	f.Fuzz(func(t *testing.T, in []byte) {
		const maxSize = 4096
		r := bytes.NewReader(in)
		for {
			raw, _, err := ReadFrame(r, maxSize, nil)
			if err != nil {
				return
			}
			if len(raw.Body) > maxSize {
				t.Fatalf("body of %d bytes exceeds the cap", len(raw.Body))
			}
			fr, err := Decode(raw)
			if err != nil {
				continue
			}
			if p, ok := fr.Body.(Performative); ok {
				if _, err := Append(nil, fr.Type, fr.Channel, p, fr.Payload); err != nil {
					t.Fatalf("re-encode %#v: %v", p, err)
				}
			}
		}
	})
}
