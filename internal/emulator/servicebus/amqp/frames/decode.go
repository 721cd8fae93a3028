package frames

import (
	"fmt"

	enc "github.com/ffpipe/ffpipe/internal/emulator/servicebus/amqp/encoding"
)

// fieldList reads typed fields from a composite's list, recording the
// first type error.
type fieldList struct {
	name string
	l    []any
	err  error
}

func (f *fieldList) get(i int) any {
	if i < len(f.l) {
		return f.l[i]
	}
	return nil
}

func (f *fieldList) fail(i int, want string) {
	if f.err == nil {
		f.err = fmt.Errorf("%w: %s field %d: got %T, want %s", ErrBadFrame, f.name, i, f.get(i), want)
	}
}

func (f *fieldList) str(i int) string {
	switch x := f.get(i).(type) {
	case nil:
		return ""
	case string:
		return x
	case enc.Symbol:
		return string(x)
	}
	f.fail(i, "string")
	return ""
}

func (f *fieldList) sym(i int) enc.Symbol { return enc.Symbol(f.str(i)) }

func (f *fieldList) u32p(i int) *uint32 {
	var v uint32
	switch x := f.get(i).(type) {
	case nil:
		return nil
	case uint32:
		v = x
	case uint8:
		v = uint32(x)
	case uint16:
		v = uint32(x)
	case uint64:
		if x > 0xffffffff {
			f.fail(i, "uint")
			return nil
		}
		v = uint32(x)
	default:
		f.fail(i, "uint")
		return nil
	}
	return &v
}

func (f *fieldList) u32(i int, def uint32) uint32 {
	if p := f.u32p(i); p != nil {
		return *p
	}
	return def
}

func (f *fieldList) u64(i int) uint64 {
	switch x := f.get(i).(type) {
	case nil:
		return 0
	case uint64:
		return x
	case uint32:
		return uint64(x)
	case uint16:
		return uint64(x)
	case uint8:
		return uint64(x)
	}
	f.fail(i, "ulong")
	return 0
}

func (f *fieldList) u16p(i int) *uint16 {
	p := f.u32p(i)
	if p == nil {
		return nil
	}
	if *p > 0xffff {
		f.fail(i, "ushort")
		return nil
	}
	v := uint16(*p)
	return &v
}

func (f *fieldList) u8p(i int) *uint8 {
	p := f.u32p(i)
	if p == nil {
		return nil
	}
	if *p > 0xff {
		f.fail(i, "ubyte")
		return nil
	}
	v := uint8(*p)
	return &v
}

func (f *fieldList) boolean(i int) bool {
	switch x := f.get(i).(type) {
	case nil:
		return false
	case bool:
		return x
	}
	f.fail(i, "boolean")
	return false
}

func (f *fieldList) bin(i int) []byte {
	switch x := f.get(i).(type) {
	case nil:
		return nil
	case []byte:
		return x
	}
	f.fail(i, "binary")
	return nil
}

func (f *fieldList) mapv(i int) enc.Map {
	switch x := f.get(i).(type) {
	case nil:
		return nil
	case enc.Map:
		return x
	}
	f.fail(i, "map")
	return nil
}

func (f *fieldList) errorv(i int) *Error {
	v := f.get(i)
	if v == nil {
		return nil
	}
	d, ok := v.(*enc.Described)
	if c, _ := describedCode(d); !ok || c != CodeError {
		f.fail(i, "error")
		return nil
	}
	l, ok := d.Value.([]any)
	if !ok {
		f.fail(i, "error")
		return nil
	}
	sub := fieldList{name: "error", l: l}
	e := &Error{Condition: sub.sym(0), Description: sub.str(1), Info: sub.mapv(2)}
	if sub.err != nil && f.err == nil {
		f.err = sub.err
	}
	return e
}

func (f *fieldList) state(i int) any {
	v := f.get(i)
	if v == nil {
		return nil
	}
	s, err := DecodeState(v)
	if err != nil && f.err == nil {
		f.err = err
	}
	return s
}

func describedCode(d *enc.Described) (uint64, bool) {
	if d == nil {
		return 0, false
	}
	return d.Code()
}

// DecodeState decodes a delivery state or outcome value.
func DecodeState(v any) (any, error) {
	d, ok := v.(*enc.Described)
	code, ok2 := describedCode(d)
	if !ok || !ok2 {
		return nil, fmt.Errorf("%w: delivery state is %T", ErrBadFrame, v)
	}
	l, ok := d.Value.([]any)
	if !ok {
		return nil, fmt.Errorf("%w: delivery state %#x is not a list", ErrBadFrame, code)
	}
	f := fieldList{name: "delivery-state", l: l}
	var s any
	switch code {
	case CodeAccepted:
		s = &Accepted{}
	case CodeRejected:
		s = &Rejected{Error: f.errorv(0)}
	case CodeReleased:
		s = &Released{}
	case CodeModified:
		s = &Modified{DeliveryFailed: f.boolean(0), UndeliverableHere: f.boolean(1), MessageAnnotations: f.mapv(2)}
	case CodeReceived:
		s = &Received{SectionNumber: f.u32(0, 0), SectionOffset: f.u64(1)}
	default:
		return nil, fmt.Errorf("%w: unknown delivery state %#x", ErrBadFrame, code)
	}
	return s, f.err
}

func decodePerformative(typ byte, code uint64, l []any) (any, error) {
	if typ == TypeSASL {
		f := fieldList{name: "sasl", l: l}
		switch code {
		case CodeSASLInit:
			return &SASLInit{Mechanism: f.sym(0), InitialResponse: f.bin(1), Hostname: f.str(2)}, f.err
		case CodeSASLMechanisms:
			return &SASLMechanisms{Mechanisms: symbols(l)}, nil
		case CodeSASLOutcome:
			return &SASLOutcome{Code: deref8(f.u8p(0))}, f.err
		}
		return &UnknownPerformative{Code: code}, nil
	}
	f := fieldList{l: l}
	switch code {
	case CodeOpen:
		f.name = "open"
		o := &Open{ContainerID: f.str(0), Hostname: f.str(1), MaxFrameSize: f.u32(2, 0), IdleTimeout: f.u32(4, 0), Properties: f.mapv(9)}
		if p := f.u16p(3); p != nil {
			o.ChannelMax, o.HasChanMax = *p, true
		}
		return o, f.err
	case CodeBegin:
		f.name = "begin"
		return &Begin{RemoteChannel: f.u16p(0), NextOutgoingID: f.u32(1, 0), IncomingWindow: f.u32(2, 0),
			OutgoingWindow: f.u32(3, 0), HandleMax: f.u32p(4)}, f.err
	case CodeAttach:
		f.name = "attach"
		a := &Attach{Name: f.str(0), Role: f.boolean(2), SndSettleMode: f.u8p(3), RcvSettleMode: f.u8p(4),
			Source: f.get(5), Target: f.get(6), InitialDeliveryCount: f.u32p(9), MaxMessageSize: f.u64(10), Properties: f.mapv(13)}
		if h := f.u32p(1); h != nil {
			a.Handle = *h
		} else {
			f.fail(1, "handle")
		}
		return a, f.err
	case CodeFlow:
		f.name = "flow"
		return &Flow{NextIncomingID: f.u32p(0), IncomingWindow: f.u32(1, 0), NextOutgoingID: f.u32(2, 0),
			OutgoingWindow: f.u32(3, 0), Handle: f.u32p(4), DeliveryCount: f.u32p(5), LinkCredit: f.u32p(6),
			Available: f.u32p(7), Drain: f.boolean(8), Echo: f.boolean(9)}, f.err
	case CodeTransfer:
		f.name = "transfer"
		t := &Transfer{DeliveryID: f.u32p(1), DeliveryTag: f.bin(2), MessageFormat: f.u32p(3), Settled: f.boolean(4),
			More: f.boolean(5), RcvSettleMode: f.u8p(6), State: f.state(7), Resume: f.boolean(8), Aborted: f.boolean(9), Batchable: f.boolean(10)}
		if h := f.u32p(0); h != nil {
			t.Handle = *h
		} else {
			f.fail(0, "handle")
		}
		return t, f.err
	case CodeDisposition:
		f.name = "disposition"
		return &Disposition{Role: f.boolean(0), First: f.u32(1, 0), Last: f.u32p(2), Settled: f.boolean(3),
			State: f.state(4), Batchable: f.boolean(5)}, f.err
	case CodeDetach:
		f.name = "detach"
		return &Detach{Handle: f.u32(0, 0), Closed: f.boolean(1), Error: f.errorv(2)}, f.err
	case CodeEnd:
		f.name = "end"
		return &End{Error: f.errorv(0)}, f.err
	case CodeClose:
		f.name = "close"
		return &Close{Error: f.errorv(0)}, f.err
	}
	return &UnknownPerformative{Code: code}, nil
}

func deref8(p *uint8) uint8 {
	if p == nil {
		return 0
	}
	return *p
}

// symbols reads the first field of a sasl-mechanisms list: one symbol or an
// array of them. Anything else gives none (the broker only writes this
// performative; clients never send it).
func symbols(l []any) []enc.Symbol {
	if len(l) == 0 {
		return nil
	}
	switch v := l[0].(type) {
	case enc.Symbol:
		return []enc.Symbol{v}
	case *enc.Array:
		out := make([]enc.Symbol, 0, len(v.Elems))
		for _, e := range v.Elems {
			if s, ok := e.(enc.Symbol); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}
