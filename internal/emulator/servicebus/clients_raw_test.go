package servicebus_test

import (
	"strings"
	"testing"
	"time"

	"github.com/Azure/go-amqp"

	"github.com/ffpipe/ffpipe/internal/emulator/servicebus"
	"github.com/ffpipe/ffpipe/internal/emulator/servicebus/amqp/frames"
	"github.com/ffpipe/ffpipe/internal/emulator/servicebus/sbtest"
)

// cbsRequest sends a put-token for audience on the $cbs sender with handle
// h and returns the payload; replyTo "" leaves reply-to out (as uamqp does).
func (r *rawConn) cbsRequest(ch uint16, h uint32, deliveryID uint32, replyTo, audience, token string, settled bool) {
	r.t.Helper()
	props := &amqp.MessageProperties{MessageID: uint64(7)}
	if replyTo != "" {
		props.ReplyTo = to(replyTo)
	}
	msg := &amqp.Message{
		Properties:            props,
		ApplicationProperties: map[string]any{"operation": "put-token", "type": "servicebus.windows.net:sastoken", "name": audience},
		Value:                 token,
	}
	payload, err := msg.MarshalBinary()
	if err != nil {
		r.t.Fatal(err)
	}
	r.send(frames.TypeAMQP, ch, &frames.Transfer{Handle: h, DeliveryID: ptrU32(deliveryID), DeliveryTag: []byte{byte(deliveryID)}, MessageFormat: ptrU32(0), Settled: settled}, payload)
}

func (r *rawConn) credit(ch uint16, h uint32) {
	r.t.Helper()
	r.send(frames.TypeAMQP, ch, &frames.Flow{NextIncomingID: ptrU32(0), IncomingWindow: 5000, OutgoingWindow: 5000,
		Handle: ptrU32(h), DeliveryCount: ptrU32(0), LinkCredit: ptrU32(10)}, nil)
}

// attachNamed attaches a link with an explicit name; an empty address
// leaves the terminus without one.
func (r *rawConn) attachNamed(ch uint16, name string, handle uint32, role bool, source, target string) *frames.Attach {
	r.t.Helper()
	a := &frames.Attach{Name: name, Handle: handle, Role: role,
		Source: terminus(frames.CodeSource, source), Target: terminus(frames.CodeTarget, target)}
	if role == frames.RoleSender {
		a.InitialDeliveryCount = ptrU32(0)
	}
	r.send(frames.TypeAMQP, ch, a, nil)
	f := r.until(func(f frames.Frame) bool { at, ok := f.Body.(*frames.Attach); return ok && at.Handle == handle })
	return f.Body.(*frames.Attach)
}

// TestRawRequestRouting checks that CBS responses reach every client's
// reply link (docs/servicebus-clients.md) and that a request the broker
// cannot answer is refused at once.
func TestRawRequestRouting(t *testing.T) {
	t.Parallel()
	s := sbtest.Start(t)
	aud, tok := validToken(s, queue)
	tests := []struct {
		name          string
		replyName     string // the receiver link's name
		replyTarget   string // its target address ("" = none)
		replyTo       string // the request's reply-to ("" = none)
		noReceiver    bool
		settled       bool
		wantReply     bool
		wantCondition string // the rejection or detach condition otherwise
	}{
		{name: "azservicebus: reply-to is the target address", replyName: "r1", replyTarget: "$cbs-reply-1", replyTo: "$cbs-reply-1", wantReply: true},
		{name: "rhea: no target, reply-to is the link name", replyName: "cbs-1234", replyTo: "cbs-1234", wantReply: true},
		{name: "uamqp: no reply-to, paired receiver", replyName: "$cbs-receiver", replyTarget: "$cbs", wantReply: true},
		{name: "unknown reply-to is rejected", replyName: "r2", replyTarget: "x", replyTo: "nobody", wantCondition: "amqp:not-found"},
		{name: "no reply-to and no receiver is rejected", noReceiver: true, wantCondition: "amqp:not-found"},
		{name: "settled and unroutable detaches the sender", noReceiver: true, settled: true, wantCondition: "amqp:not-found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := dialRaw(t, s.Addr())
			r.open()
			r.begin(0)
			r.attachNamed(0, "$cbs-sender", 0, frames.RoleSender, "$cbs", "$cbs")
			if !tt.noReceiver {
				r.attachNamed(0, tt.replyName, 1, frames.RoleReceiver, "$cbs", tt.replyTarget)
				r.credit(0, 1)
			}
			r.cbsRequest(0, 0, 0, tt.replyTo, aud, tok, tt.settled)
			f := r.until(func(f frames.Frame) bool {
				switch x := f.Body.(type) {
				case *frames.Transfer:
					return x.Handle == 1
				case *frames.Disposition:
					return x.Role == frames.RoleReceiver
				case *frames.Detach:
					return x.Handle == 0
				}
				return false
			})
			switch x := f.Body.(type) {
			case *frames.Transfer:
				if !tt.wantReply {
					t.Fatalf("got a response, want refusal %s", tt.wantCondition)
				}
				var m amqp.Message
				if err := m.UnmarshalBinary(f.Payload); err != nil {
					t.Fatal(err)
				}
				if m.Properties == nil || m.Properties.CorrelationID != uint64(7) || m.ApplicationProperties["status-code"] != int32(202) {
					t.Fatalf("got correlation %+v status %v, want 7 and 202", m.Properties, m.ApplicationProperties["status-code"])
				}
			case *frames.Disposition:
				if tt.wantReply {
					// The accepted settlement of the request comes first.
					if _, ok := x.State.(*frames.Accepted); !ok {
						t.Fatalf("got disposition %#v, want accepted then the response", x.State)
					}
					r.until(func(f frames.Frame) bool { tr, ok := f.Body.(*frames.Transfer); return ok && tr.Handle == 1 })
					return
				}
				rej, ok := x.State.(*frames.Rejected)
				if !ok || rej.Error == nil || string(rej.Error.Condition) != tt.wantCondition {
					t.Fatalf("got disposition %#v, want rejected %s", x.State, tt.wantCondition)
				}
			case *frames.Detach:
				if tt.wantReply || x.Error == nil || string(x.Error.Condition) != tt.wantCondition {
					t.Fatalf("got detach %+v, want %s", x, tt.wantCondition)
				}
			}
		})
	}
}

// TestRawClientDialects covers uamqp's and .NET's SASL mechanism, absolute
// link addresses and namespace-wide tokens.
func TestRawClientDialects(t *testing.T) {
	t.Parallel()
	s := sbtest.Start(t)
	host := s.Addr()
	tests := []struct {
		name     string
		audience string // the token's audience (and signed resource)
		node     string // the sender's target address
		want     string // "" = attached, else the detach condition
	}{
		{"relative address", "sb://" + host + "/transcode", "transcode", ""},
		{"absolute amqps address (uamqp)", "sb://" + host + "/transcode", "amqps://" + host + "/transcode", ""},
		{"absolute path (.NET)", "sb://" + host + "/transcode", "/transcode", ""},
		{"absolute address, other case", "sb://" + host + "/transcode", "amqps://" + host + "/TRANSCODE", ""},
		{"namespace token covers the queue", "sb://" + host + "/", "amqps://" + host + "/transcode", ""},
		{"token of another entity", "sb://" + host + "/other", "transcode", "amqp:unauthorized-access"},
		{"missing entity", "sb://" + host + "/", "amqps://" + host + "/nope", "amqp:not-found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := dialRaw(t, host)
			r.write(frames.ProtoSASL[:])
			r.header()
			f := r.until(func(f frames.Frame) bool { _, ok := f.Body.(*frames.SASLMechanisms); return ok })
			if !hasSymbol(f.Body.(*frames.SASLMechanisms).Mechanisms, "MSSBCBS") {
				t.Fatalf("mechanisms %v: want MSSBCBS offered", f.Body.(*frames.SASLMechanisms).Mechanisms)
			}
			r.send(frames.TypeSASL, 0, &frames.SASLInit{Mechanism: "MSSBCBS"}, nil)
			f = r.until(func(f frames.Frame) bool { _, ok := f.Body.(*frames.SASLOutcome); return ok })
			if o := f.Body.(*frames.SASLOutcome); o.Code != 0 {
				t.Fatalf("MSSBCBS outcome: got %d, want 0", o.Code)
			}
			r.write(frames.ProtoAMQP[:])
			r.header()
			r.send(frames.TypeAMQP, 0, &frames.Open{ContainerID: "uamqp-like", MaxFrameSize: 65536}, nil)
			r.until(func(f frames.Frame) bool { _, ok := f.Body.(*frames.Open); return ok })
			r.begin(0)
			r.attachNamed(0, "$cbs-sender", 0, frames.RoleSender, "$cbs", "$cbs")
			r.attachNamed(0, "$cbs-receiver", 1, frames.RoleReceiver, "$cbs", "$cbs")
			r.credit(0, 1)
			r.cbsRequest(0, 0, 0, "", tt.audience, sasToken(tt.audience, servicebus.DefaultKeyName, servicebus.DefaultKey, time.Now().Add(time.Hour)), false)
			r.until(func(f frames.Frame) bool { tr, ok := f.Body.(*frames.Transfer); return ok && tr.Handle == 1 })
			reply := r.attachNamed(0, "sender-link", 2, frames.RoleSender, "", tt.node)
			if tt.want == "" {
				if reply.Target == nil || reply.MaxMessageSize != servicebus.MaxMessageSize {
					t.Fatalf("attach %s: got %+v, want accepted with max-message-size", tt.node, reply)
				}
				return
			}
			f = r.until(func(f frames.Frame) bool { d, ok := f.Body.(*frames.Detach); return ok && d.Handle == 2 })
			if d := f.Body.(*frames.Detach); d.Error == nil || string(d.Error.Condition) != tt.want {
				t.Fatalf("attach %s: got detach %+v, want %s", tt.node, d, tt.want)
			}
		})
	}
}

func hasSymbol[S ~string](list []S, s string) bool {
	for _, x := range list {
		if string(x) == s {
			return true
		}
	}
	return false
}

// TestSessionReceiverRefused checks that a session receiver is refused at
// once (sessions are not modelled) instead of receiving as if sessionless.
func TestSessionReceiverRefused(t *testing.T) {
	t.Parallel()
	s := sbtest.Start(t)
	c := client(t, s)
	ctx := ctxT(t, 20*time.Second)
	_, err := c.AcceptNextSessionForQueue(ctx, queue, nil)
	// The SDK reports the detach as connlost with the broker's error inside.
	if err == nil || !strings.Contains(err.Error(), "amqp:not-implemented") || !strings.Contains(err.Error(), "sessions are not supported") {
		t.Fatalf("accept next session: got %v, want amqp:not-implemented naming sessions", err)
	}
	if ctx.Err() != nil {
		t.Fatalf("accept next session waited out its deadline: %v", err)
	}
}

// TestRawDotNetDialect sends what .NET's Azure.Messaging.ServiceBus sends
// (docs/servicebus-clients.md): SASL MSSBCBS with no initial response, a
// CBS reply link whose target is a GUID named by reply-to, an expiration
// timestamp in the put-token, links addressed by absolute path ("/q") with
// GUID counterpart addresses, and PeekLock as rcv-settle-mode second.
func TestRawDotNetDialect(t *testing.T) {
	t.Parallel()
	s := sbtest.Start(t)
	r := dialRaw(t, s.Addr())
	r.write(frames.ProtoSASL[:])
	r.header()
	r.until(func(f frames.Frame) bool { _, ok := f.Body.(*frames.SASLMechanisms); return ok })
	r.send(frames.TypeSASL, 0, &frames.SASLInit{Mechanism: "MSSBCBS"}, nil)
	if f := r.until(func(f frames.Frame) bool { _, ok := f.Body.(*frames.SASLOutcome); return ok }); f.Body.(*frames.SASLOutcome).Code != 0 {
		t.Fatalf("MSSBCBS: got outcome %d, want 0", f.Body.(*frames.SASLOutcome).Code)
	}
	r.write(frames.ProtoAMQP[:])
	r.header()
	r.send(frames.TypeAMQP, 0, &frames.Open{ContainerID: "sb://host/-1a2b3c4d", MaxFrameSize: 65536}, nil)
	r.until(func(f frames.Frame) bool { _, ok := f.Body.(*frames.Open); return ok })
	r.begin(0)

	const replyTo = "0f8fad5bd9cb469fa16570867728950e"
	r.attachNamed(0, "cbs:sender", 0, frames.RoleSender, "", "$cbs")
	r.attachNamed(0, "cbs:receiver", 1, frames.RoleReceiver, "$cbs", replyTo)
	r.credit(0, 1)
	audience := "sb://" + s.Addr() + "/transcode"
	req := &amqp.Message{
		Properties: &amqp.MessageProperties{MessageID: "cbs:1", ReplyTo: to(replyTo)},
		ApplicationProperties: map[string]any{"operation": "put-token", "type": "servicebus.windows.net:sastoken", "name": audience,
			"expiration": time.Now().Add(time.Hour)},
		Value: sasToken(audience, servicebus.DefaultKeyName, servicebus.DefaultKey, time.Now().Add(time.Hour)),
	}
	payload, err := req.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	r.send(frames.TypeAMQP, 0, &frames.Transfer{Handle: 0, DeliveryID: ptrU32(0), DeliveryTag: []byte{1}, MessageFormat: ptrU32(0)}, payload)
	f := r.until(func(f frames.Frame) bool { tr, ok := f.Body.(*frames.Transfer); return ok && tr.Handle == 1 })
	var resp amqp.Message
	if err := resp.UnmarshalBinary(f.Payload); err != nil {
		t.Fatal(err)
	}
	if resp.Properties.CorrelationID != "cbs:1" || resp.ApplicationProperties["status-code"] != int32(202) {
		t.Fatalf("put-token response: correlation %v status %v, want cbs:1 and int32 202", resp.Properties.CorrelationID, resp.ApplicationProperties["status-code"])
	}

	// Send on a link whose target is the absolute path.
	if a := r.attachNamed(0, "sender", 2, frames.RoleSender, "7d444840-9dc0-11d1-b245-5ffdce74fad2", "/transcode"); a.MaxMessageSize != servicebus.MaxMessageSize {
		t.Fatalf("sender attach: got max-message-size %d, want %d", a.MaxMessageSize, servicebus.MaxMessageSize)
	}
	body, err := (&amqp.Message{Data: [][]byte{[]byte("from .NET")}, Properties: &amqp.MessageProperties{MessageID: "n1"}}).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	r.send(frames.TypeAMQP, 0, &frames.Transfer{Handle: 2, DeliveryID: ptrU32(1), DeliveryTag: []byte{2}, MessageFormat: ptrU32(0)}, body)
	d := r.until(func(f frames.Frame) bool { d, ok := f.Body.(*frames.Disposition); return ok && d.First == 1 }).Body.(*frames.Disposition)
	if _, ok := d.State.(*frames.Accepted); !ok || !d.Settled {
		t.Fatalf("send: got %#v, want settled accepted", d)
	}

	// Receive in PeekLock as .NET does (rcv-settle-mode second), complete
	// with an unsettled accepted disposition: the broker settles it.
	a := &frames.Attach{Name: "receiver", Handle: 3, Role: frames.RoleReceiver, SndSettleMode: ptrU8(0), RcvSettleMode: ptrU8(1),
		Source: terminus(frames.CodeSource, "/transcode"), Target: terminus(frames.CodeTarget, "9b2a5e3e-0c1d-4f7a-8e63-0d3c1f2b4a59")}
	r.send(frames.TypeAMQP, 0, a, nil)
	r.until(func(f frames.Frame) bool { at, ok := f.Body.(*frames.Attach); return ok && at.Handle == 3 })
	r.credit(0, 3)
	tr := r.until(func(f frames.Frame) bool { tr, ok := f.Body.(*frames.Transfer); return ok && tr.Handle == 3 })
	if tr.Body.(*frames.Transfer).Settled || len(tr.Body.(*frames.Transfer).DeliveryTag) != 16 {
		t.Fatalf("peek-lock delivery: got %+v, want unsettled with a 16-byte lock token tag", tr.Body)
	}
	id := *tr.Body.(*frames.Transfer).DeliveryID
	r.send(frames.TypeAMQP, 0, &frames.Disposition{Role: frames.RoleReceiver, First: id, State: &frames.Accepted{}}, nil)
	d = r.until(func(f frames.Frame) bool {
		d, ok := f.Body.(*frames.Disposition)
		return ok && d.Role == frames.RoleSender && d.First == id
	}).Body.(*frames.Disposition)
	if _, ok := d.State.(*frames.Accepted); !ok || !d.Settled {
		t.Fatalf("complete: got %#v, want the broker's settled accepted", d)
	}
	r.send(frames.TypeAMQP, 0, &frames.Disposition{Role: frames.RoleReceiver, First: id, Settled: true, State: &frames.Accepted{}}, nil)

	// The message is gone.
	if p, err := receiver(t, client(t, s), queue, nil).PeekMessages(ctxT(t, 10*time.Second), 10, nil); err != nil || len(p) != 0 {
		t.Fatalf("after complete: peeked %d (%v), want 0", len(p), err)
	}
}
