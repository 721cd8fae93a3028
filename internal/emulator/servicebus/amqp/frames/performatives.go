package frames

import (
	"fmt"

	enc "github.com/ffpipe/ffpipe/internal/emulator/servicebus/amqp/encoding"
)

// Descriptor codes.
const (
	CodeOpen           uint64 = 0x10
	CodeBegin          uint64 = 0x11
	CodeAttach         uint64 = 0x12
	CodeFlow           uint64 = 0x13
	CodeTransfer       uint64 = 0x14
	CodeDisposition    uint64 = 0x15
	CodeDetach         uint64 = 0x16
	CodeEnd            uint64 = 0x17
	CodeClose          uint64 = 0x18
	CodeError          uint64 = 0x1d
	CodeReceived       uint64 = 0x23
	CodeAccepted       uint64 = 0x24
	CodeRejected       uint64 = 0x25
	CodeReleased       uint64 = 0x26
	CodeModified       uint64 = 0x27
	CodeSource         uint64 = 0x28
	CodeTarget         uint64 = 0x29
	CodeSASLMechanisms uint64 = 0x40
	CodeSASLInit       uint64 = 0x41
	CodeSASLChallenge  uint64 = 0x42
	CodeSASLResponse   uint64 = 0x43
	CodeSASLOutcome    uint64 = 0x44
)

// Performative is a frame body this package can encode.
type Performative interface {
	described() *enc.Described
}

// UnknownPerformative is returned by Decode for a well-formed performative
// whose descriptor this package does not know.
type UnknownPerformative struct{ Code uint64 }

func (u *UnknownPerformative) described() *enc.Described {
	return &enc.Described{Descriptor: u.Code, Value: []any{}}
}

// Error is the AMQP error composite.
type Error struct {
	Condition   enc.Symbol
	Description string
	Info        enc.Map
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Condition, e.Description) }

func (e *Error) value() any {
	if e == nil {
		return nil
	}
	var desc, info any
	if e.Description != "" {
		desc = e.Description
	}
	if e.Info != nil {
		info = e.Info
	}
	return composite(CodeError, e.Condition, desc, info)
}

// Open is the open performative.
type Open struct {
	ContainerID  string
	Hostname     string
	MaxFrameSize uint32 // 0 means absent (4 GiB)
	ChannelMax   uint16
	HasChanMax   bool
	IdleTimeout  uint32 // ms, 0 = none
	Properties   enc.Map
}

func (o *Open) described() *enc.Described {
	var host, mfs, cm, idle, props any
	if o.Hostname != "" {
		host = o.Hostname
	}
	if o.MaxFrameSize != 0 {
		mfs = o.MaxFrameSize
	}
	if o.HasChanMax {
		cm = o.ChannelMax
	}
	if o.IdleTimeout != 0 {
		idle = o.IdleTimeout
	}
	if o.Properties != nil {
		props = o.Properties
	}
	return composite(CodeOpen, o.ContainerID, host, mfs, cm, idle, nil, nil, nil, nil, props)
}

// Begin is the begin performative.
type Begin struct {
	RemoteChannel  *uint16
	NextOutgoingID uint32
	IncomingWindow uint32
	OutgoingWindow uint32
	HandleMax      *uint32
}

func (b *Begin) described() *enc.Described {
	var rc, hm any
	if b.RemoteChannel != nil {
		rc = *b.RemoteChannel
	}
	if b.HandleMax != nil {
		hm = *b.HandleMax
	}
	return composite(CodeBegin, rc, b.NextOutgoingID, b.IncomingWindow, b.OutgoingWindow, hm)
}

// Roles for attach and disposition.
const (
	RoleSender   = false
	RoleReceiver = true
)

// Attach is the attach performative. Source and Target are kept as decoded
// values so they can be echoed unchanged.
type Attach struct {
	Name                 string
	Handle               uint32
	Role                 bool
	SndSettleMode        *uint8
	RcvSettleMode        *uint8
	Source               any
	Target               any
	InitialDeliveryCount *uint32
	MaxMessageSize       uint64
	Properties           enc.Map
}

func (a *Attach) described() *enc.Described {
	var ssm, rsm, idc, mms, props any
	if a.SndSettleMode != nil {
		ssm = *a.SndSettleMode
	}
	if a.RcvSettleMode != nil {
		rsm = *a.RcvSettleMode
	}
	if a.InitialDeliveryCount != nil {
		idc = *a.InitialDeliveryCount
	}
	if a.MaxMessageSize != 0 {
		mms = a.MaxMessageSize
	}
	if a.Properties != nil {
		props = a.Properties
	}
	return composite(CodeAttach, a.Name, a.Handle, a.Role, ssm, rsm, a.Source, a.Target, nil, nil, idc, mms, nil, nil, props)
}

// Address returns the address field of a source or target value.
func Address(term any) string {
	d, ok := term.(*enc.Described)
	if !ok {
		return ""
	}
	l, ok := d.Value.([]any)
	if !ok || len(l) == 0 {
		return ""
	}
	switch a := l[0].(type) {
	case string:
		return a
	case enc.Symbol:
		return string(a)
	}
	return ""
}

// Flow is the flow performative.
type Flow struct {
	NextIncomingID *uint32
	IncomingWindow uint32
	NextOutgoingID uint32
	OutgoingWindow uint32
	Handle         *uint32
	DeliveryCount  *uint32
	LinkCredit     *uint32
	Available      *uint32
	Drain          bool
	Echo           bool
}

func (f *Flow) described() *enc.Described {
	return composite(CodeFlow, optU32(f.NextIncomingID), f.IncomingWindow, f.NextOutgoingID, f.OutgoingWindow,
		optU32(f.Handle), optU32(f.DeliveryCount), optU32(f.LinkCredit), optU32(f.Available), optTrue(f.Drain), optTrue(f.Echo))
}

// Transfer is the transfer performative. The payload travels in Frame.Payload.
type Transfer struct {
	Handle        uint32
	DeliveryID    *uint32
	DeliveryTag   []byte
	MessageFormat *uint32
	Settled       bool
	More          bool
	RcvSettleMode *uint8
	State         any
	Resume        bool
	Aborted       bool
	Batchable     bool
}

func (t *Transfer) described() *enc.Described {
	var tag, rsm any
	if t.DeliveryTag != nil {
		tag = t.DeliveryTag
	}
	if t.RcvSettleMode != nil {
		rsm = *t.RcvSettleMode
	}
	return composite(CodeTransfer, t.Handle, optU32(t.DeliveryID), tag, optU32(t.MessageFormat), optTrue(t.Settled),
		optTrue(t.More), rsm, stateValue(t.State), optTrue(t.Resume), optTrue(t.Aborted), optTrue(t.Batchable))
}

// Disposition is the disposition performative.
type Disposition struct {
	Role      bool
	First     uint32
	Last      *uint32
	Settled   bool
	State     any // *Accepted, *Rejected, *Released, *Modified, *Received or nil
	Batchable bool
}

func (d *Disposition) described() *enc.Described {
	return composite(CodeDisposition, d.Role, d.First, optU32(d.Last), optTrue(d.Settled), stateValue(d.State), optTrue(d.Batchable))
}

// Detach is the detach performative.
type Detach struct {
	Handle uint32
	Closed bool
	Error  *Error
}

func (d *Detach) described() *enc.Described {
	return composite(CodeDetach, d.Handle, optTrue(d.Closed), d.Error.value())
}

// End is the end performative.
type End struct{ Error *Error }

func (e *End) described() *enc.Described { return composite(CodeEnd, e.Error.value()) }

// Close is the close performative.
type Close struct{ Error *Error }

func (c *Close) described() *enc.Described { return composite(CodeClose, c.Error.value()) }

// SASLMechanisms offers the server's mechanisms.
type SASLMechanisms struct{ Mechanisms []enc.Symbol }

func (s *SASLMechanisms) described() *enc.Described {
	return composite(CodeSASLMechanisms, s.Mechanisms)
}

// SASLInit is the client's chosen mechanism.
type SASLInit struct {
	Mechanism       enc.Symbol
	InitialResponse []byte
	Hostname        string
}

func (s *SASLInit) described() *enc.Described {
	var host any
	if s.Hostname != "" {
		host = s.Hostname
	}
	return composite(CodeSASLInit, s.Mechanism, s.InitialResponse, host)
}

// SASLOutcome ends the SASL exchange. Code 0 is ok, 1 auth failure.
type SASLOutcome struct{ Code uint8 }

func (s *SASLOutcome) described() *enc.Described { return composite(CodeSASLOutcome, s.Code) }

// Delivery states.
type (
	// Accepted is the accepted outcome.
	Accepted struct{}
	// Rejected is the rejected outcome.
	Rejected struct{ Error *Error }
	// Released is the released outcome.
	Released struct{}
	// Modified is the modified outcome.
	Modified struct {
		DeliveryFailed     bool
		UndeliverableHere  bool
		MessageAnnotations enc.Map
	}
	// Received is the received delivery state.
	Received struct {
		SectionNumber uint32
		SectionOffset uint64
	}
)

func stateValue(s any) any {
	switch x := s.(type) {
	case nil:
		return nil
	case *Accepted:
		return composite(CodeAccepted)
	case *Rejected:
		return composite(CodeRejected, x.Error.value())
	case *Released:
		return composite(CodeReleased)
	case *Modified:
		var ma any
		if x.MessageAnnotations != nil {
			ma = x.MessageAnnotations
		}
		return composite(CodeModified, optTrue(x.DeliveryFailed), optTrue(x.UndeliverableHere), ma)
	case *Received:
		return composite(CodeReceived, x.SectionNumber, x.SectionOffset)
	}
	return nil
}

// composite builds a described list with trailing nulls dropped.
func composite(code uint64, fields ...any) *enc.Described {
	n := len(fields)
	for n > 0 && fields[n-1] == nil {
		n--
	}
	return &enc.Described{Descriptor: code, Value: fields[:n]}
}

func optU32(p *uint32) any {
	if p == nil {
		return nil
	}
	return *p
}

func optTrue(b bool) any {
	if b {
		return true
	}
	return nil
}
