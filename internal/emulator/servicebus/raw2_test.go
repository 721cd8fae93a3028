package servicebus_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/Azure/go-amqp"

	"github.com/ffpipe/ffpipe/internal/emulator/servicebus"
	enc "github.com/ffpipe/ffpipe/internal/emulator/servicebus/amqp/encoding"
	"github.com/ffpipe/ffpipe/internal/emulator/servicebus/amqp/frames"
	"github.com/ffpipe/ffpipe/internal/emulator/servicebus/sbtest"
)

func ptrU32(v uint32) *uint32 { return &v }
func ptrU8(v uint8) *uint8    { return &v }

// until reads frames until one satisfies ok.
func (r *rawConn) until(ok func(frames.Frame) bool) frames.Frame {
	r.t.Helper()
	for {
		f, err := r.next()
		if err != nil {
			r.t.Fatalf("waiting for a frame: %v", err)
		}
		if ok(f) {
			return f
		}
	}
}

func (r *rawConn) begin(ch uint16) {
	r.t.Helper()
	r.send(frames.TypeAMQP, ch, &frames.Begin{NextOutgoingID: 0, IncomingWindow: 5000, OutgoingWindow: 5000}, nil)
	f := r.until(func(f frames.Frame) bool { _, ok := f.Body.(*frames.Begin); return ok })
	if b := f.Body.(*frames.Begin); b.RemoteChannel == nil || *b.RemoteChannel != ch {
		r.t.Fatalf("begin reply: got remote-channel %v, want %d", b.RemoteChannel, ch)
	}
}

func terminus(code uint64, addr string) any {
	if addr == "" {
		return &enc.Described{Descriptor: code, Value: []any{}}
	}
	return &enc.Described{Descriptor: code, Value: []any{addr}}
}

// attach attaches a link and returns the broker's attach reply.
func (r *rawConn) attach(ch uint16, handle uint32, role bool, source, target string, rcvMode *uint8) *frames.Attach {
	r.t.Helper()
	a := &frames.Attach{Name: fmt.Sprint("link", handle), Handle: handle, Role: role, RcvSettleMode: rcvMode,
		Source: terminus(frames.CodeSource, source), Target: terminus(frames.CodeTarget, target)}
	if role == frames.RoleSender {
		a.InitialDeliveryCount = ptrU32(0)
	}
	r.send(frames.TypeAMQP, ch, a, nil)
	f := r.until(func(f frames.Frame) bool { at, ok := f.Body.(*frames.Attach); return ok && at.Handle == handle })
	return f.Body.(*frames.Attach)
}

// putToken authorizes audience through $cbs on channel ch and returns the
// status code.
func (r *rawConn) putToken(ch uint16, audience, token string) int32 {
	r.t.Helper()
	r.attach(ch, 100, frames.RoleSender, "", "$cbs", nil)
	r.attach(ch, 101, frames.RoleReceiver, "$cbs", "cbs-reply", nil)
	r.send(frames.TypeAMQP, ch, &frames.Flow{NextIncomingID: ptrU32(0), IncomingWindow: 5000, OutgoingWindow: 5000,
		Handle: ptrU32(101), DeliveryCount: ptrU32(0), LinkCredit: ptrU32(10)}, nil)
	msg := &amqp.Message{
		Properties:            &amqp.MessageProperties{MessageID: "req-1", ReplyTo: to("cbs-reply")},
		ApplicationProperties: map[string]any{"operation": "put-token", "type": "servicebus.windows.net:sastoken", "name": audience, "expiration": "0"},
		Value:                 token,
	}
	payload, err := msg.MarshalBinary()
	if err != nil {
		r.t.Fatal(err)
	}
	r.send(frames.TypeAMQP, ch, &frames.Transfer{Handle: 100, DeliveryID: ptrU32(0), DeliveryTag: []byte{1}, MessageFormat: ptrU32(0)}, payload)
	f := r.until(func(f frames.Frame) bool { t, ok := f.Body.(*frames.Transfer); return ok && t.Handle == 101 })
	var reply amqp.Message
	if err := reply.UnmarshalBinary(f.Payload); err != nil {
		r.t.Fatal(err)
	}
	if reply.Properties == nil || reply.Properties.CorrelationID != "req-1" {
		r.t.Fatalf("cbs reply correlation-id: got %+v, want req-1", reply.Properties)
	}
	code, _ := reply.ApplicationProperties["status-code"].(int32)
	return code
}

func validToken(s *servicebus.Server, path string) (audience, token string) {
	audience = "amqp://" + s.Addr() + "/" + path
	return audience, sasToken(audience, servicebus.DefaultKeyName, servicebus.DefaultKey, time.Now().Add(time.Hour))
}

func TestRawSASLPlain(t *testing.T) {
	t.Parallel()
	s := sbtest.Start(t)
	tests := []struct {
		name     string
		response string
		want     uint8
	}{
		{"right key", "\x00RootManageSharedAccessKey\x00SAS_KEY_VALUE", 0},
		{"wrong key", "\x00RootManageSharedAccessKey\x00nope", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := dialRaw(t, s.Addr())
			r.write(frames.ProtoSASL[:])
			r.header()
			r.until(func(f frames.Frame) bool { _, ok := f.Body.(*frames.SASLMechanisms); return ok })
			r.send(frames.TypeSASL, 0, &frames.SASLInit{Mechanism: "PLAIN", InitialResponse: []byte(tt.response)}, nil)
			f := r.until(func(f frames.Frame) bool { _, ok := f.Body.(*frames.SASLOutcome); return ok })
			if got := f.Body.(*frames.SASLOutcome).Code; got != tt.want {
				t.Fatalf("sasl outcome: got %d, want %d", got, tt.want)
			}
			if tt.want != 0 {
				if _, err := r.br.ReadByte(); !errors.Is(err, io.EOF) {
					t.Errorf("after failed sasl: got %v, want EOF", err)
				}
			}
		})
	}
}

func TestRawAttachRules(t *testing.T) {
	t.Parallel()
	s := sbtest.Start(t)
	r := dialRaw(t, s.Addr())
	r.open()
	r.begin(0)

	// Without a put-token the entity attach is refused: attach without a
	// target, then detach with unauthorized-access.
	reply := r.attach(0, 0, frames.RoleSender, "", "transcode", nil)
	if reply.Target != nil {
		t.Errorf("refused attach: got target %v, want none", reply.Target)
	}
	f := r.until(func(f frames.Frame) bool { _, ok := f.Body.(*frames.Detach); return ok })
	if d := f.Body.(*frames.Detach); !d.Closed || d.Error == nil || d.Error.Condition != "amqp:unauthorized-access" {
		t.Fatalf("got %+v, want closed detach with amqp:unauthorized-access", d)
	}
	// The client's acknowledging detach is not answered.
	r.send(frames.TypeAMQP, 0, &frames.Detach{Handle: 0, Closed: true}, nil)

	// A bad token: 401.
	aud, _ := validToken(s, "transcode")
	if got := r.putToken(0, aud, sasToken(aud, servicebus.DefaultKeyName, "wrong", time.Now().Add(time.Hour))); got != 401 {
		t.Fatalf("put-token with a wrong key: got %d, want 401", got)
	}
	r.send(frames.TypeAMQP, 0, &frames.End{}, nil)
	r.until(func(f frames.Frame) bool { _, ok := f.Body.(*frames.End); return ok })

	// A valid token: 202, then the sender attach is accepted with
	// max-message-size and credit.
	r.begin(1)
	aud, tok := validToken(s, "transcode")
	if got := r.putToken(1, aud, tok); got != 202 {
		t.Fatalf("put-token: got %d, want 202", got)
	}
	reply = r.attach(1, 0, frames.RoleSender, "", "transcode", nil)
	if frames.Address(reply.Target) != "transcode" || reply.MaxMessageSize != servicebus.MaxMessageSize {
		t.Fatalf("attach reply: got target %q max-message-size %d", frames.Address(reply.Target), reply.MaxMessageSize)
	}
	fl := r.until(func(f frames.Frame) bool {
		x, ok := f.Body.(*frames.Flow)
		return ok && x.Handle != nil && *x.Handle == 0
	})
	if x := fl.Body.(*frames.Flow); x.LinkCredit == nil || *x.LinkCredit == 0 || x.NextIncomingID == nil {
		t.Fatalf("flow after attach: got %+v, want link-credit and next-incoming-id", x)
	}

	// A message over 256 KB, in several frames: rejected, nothing stored.
	chunk := bytes.Repeat([]byte{'x'}, 60000)
	body := append([]byte{0x00, 0x53, 0x75, 0xb0, 0x00, 0x04, 0x93, 0xe0}, chunk...) // data section header claims 300000 bytes
	r.send(frames.TypeAMQP, 1, &frames.Transfer{Handle: 0, DeliveryID: ptrU32(0), DeliveryTag: []byte{1}, MessageFormat: ptrU32(0), More: true}, body)
	for i := 0; i < 4; i++ {
		r.send(frames.TypeAMQP, 1, &frames.Transfer{Handle: 0, More: i < 3}, chunk)
	}
	f = r.until(func(f frames.Frame) bool { _, ok := f.Body.(*frames.Disposition); return ok })
	d := f.Body.(*frames.Disposition)
	rej, ok := d.State.(*frames.Rejected)
	if !ok || rej.Error == nil || rej.Error.Condition != "amqp:link:message-size-exceeded" || !d.Settled {
		t.Fatalf("oversize transfer: got %#v, want settled rejected amqp:link:message-size-exceeded", d)
	}

	// Drain on an empty queue: credit is consumed and echoed with drain.
	r.attach(1, 1, frames.RoleReceiver, "transcode", "", ptrU8(1))
	r.send(frames.TypeAMQP, 1, &frames.Flow{NextIncomingID: ptrU32(0), IncomingWindow: 5000, OutgoingWindow: 5000,
		Handle: ptrU32(1), DeliveryCount: ptrU32(0), LinkCredit: ptrU32(5), Drain: true}, nil)
	f = r.until(func(f frames.Frame) bool {
		x, ok := f.Body.(*frames.Flow)
		return ok && x.Handle != nil && *x.Handle == 1
	})
	if x := f.Body.(*frames.Flow); !x.Drain || x.LinkCredit == nil || *x.LinkCredit != 0 || x.DeliveryCount == nil || *x.DeliveryCount != 5 {
		t.Fatalf("drain reply: got %+v, want drain, credit 0, delivery-count 5", x)
	}

	// Nothing was stored.
	c := client(t, s)
	if p, err := receiver(t, c, queue, nil).PeekMessages(ctxT(t, 10*time.Second), 10, nil); err != nil || len(p) != 0 {
		t.Fatalf("peek: got %d messages, %v; want 0", len(p), err)
	}
}

func TestRawHeartbeats(t *testing.T) {
	t.Parallel()
	s, err := servicebus.New(servicebus.Options{})
	if err != nil {
		t.Fatal(err)
	}
	servicebus.SetHeartbeatForTest(s, 300*time.Millisecond)
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r := dialRaw(t, s.Addr())
	r.open()
	raw, _, err := frames.ReadFrame(r.br, 65536, nil)
	if err != nil {
		t.Fatalf("waiting for a heartbeat: %v", err)
	}
	if len(raw.Body) != 0 {
		t.Fatalf("got a frame with %d body bytes, want an empty heartbeat", len(raw.Body))
	}
}

func TestRawHeartbeatsWithinClientIdleTimeout(t *testing.T) {
	t.Parallel()
	s := sbtest.Start(t) // default 15 s heartbeat
	r := dialRaw(t, s.Addr())
	r.openWith(&frames.Open{ContainerID: "raw", MaxFrameSize: 65536, IdleTimeout: 600})
	raw, _, err := frames.ReadFrame(r.br, 65536, nil)
	if err != nil {
		t.Fatalf("waiting for a heartbeat within the client's idle-time-out: %v", err)
	}
	if len(raw.Body) != 0 {
		t.Fatalf("got a frame with %d body bytes, want an empty heartbeat", len(raw.Body))
	}
}

func TestRawSmallMaxFrameSize(t *testing.T) {
	t.Parallel()
	s := sbtest.Start(t)
	c := client(t, s)
	body := bytes.Repeat([]byte("z"), 3000)
	if err := sender(t, c, queue).SendMessage(ctxT(t, 10*time.Second), &azservicebus.Message{Body: body}, nil); err != nil {
		t.Fatalf("send: %v", err)
	}
	r := dialRaw(t, s.Addr())
	r.openWith(&frames.Open{ContainerID: "raw", MaxFrameSize: 512})
	r.maxFrame = 512 // any larger frame from the broker fails the test
	r.begin(0)
	aud, tok := validToken(s, queue)
	if got := r.putToken(0, aud, tok); got != 202 {
		t.Fatalf("put-token: got %d, want 202", got)
	}
	r.attach(0, 0, frames.RoleReceiver, queue, "", nil)
	r.send(frames.TypeAMQP, 0, &frames.Flow{NextIncomingID: ptrU32(0), IncomingWindow: 5000, OutgoingWindow: 5000,
		Handle: ptrU32(0), DeliveryCount: ptrU32(0), LinkCredit: ptrU32(1)}, nil)
	var payload, tag []byte
	frameCount := 0
	for {
		f := r.until(func(f frames.Frame) bool { t, ok := f.Body.(*frames.Transfer); return ok && t.Handle == 0 })
		if frameCount == 0 {
			tag = f.Body.(*frames.Transfer).DeliveryTag
		}
		frameCount++
		payload = append(payload, f.Payload...)
		if !f.Body.(*frames.Transfer).More {
			break
		}
	}
	var m amqp.Message
	if err := m.UnmarshalBinary(payload); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(m.GetData(), body) || frameCount < 6 {
		t.Fatalf("got %d body bytes in %d frames, want %d bytes in at least 6 frames", len(m.GetData()), frameCount, len(body))
	}
	// The delivery tag is the lock token in .NET Guid byte order.
	lockTok, ok := m.DeliveryAnnotations["x-opt-lock-token"].(amqp.UUID)
	if !ok {
		t.Fatalf("x-opt-lock-token: got %T, want uuid", m.DeliveryAnnotations["x-opt-lock-token"])
	}
	if want := enc.UUID(lockTok).DotNet(); !bytes.Equal(tag, want[:]) {
		t.Errorf("delivery tag: got % x, want % x (token %s in .NET layout)", tag, want, enc.UUID(lockTok))
	}
}

func TestLargeMessageMultiFrame(t *testing.T) {
	t.Parallel()
	s := sbtest.Start(t)
	c := client(t, s)
	ctx := ctxT(t, 20*time.Second)
	body := bytes.Repeat([]byte("0123456789abcdef"), 200*1024/16)
	if err := sender(t, c, queue).SendMessage(ctx, &azservicebus.Message{Body: body}, nil); err != nil {
		t.Fatalf("send 200 KB: %v", err)
	}
	got := receiveN(t, ctx, receiver(t, c, queue, nil), 1)[0]
	if !bytes.Equal(got.Body, body) {
		t.Fatalf("got %d bytes, want the %d sent", len(got.Body), len(body))
	}
}

// mgmtRequest sends one $management request on channel ch over two new
// links (handles handleBase and handleBase+1) and returns the status code.
func (r *rawConn) mgmtRequest(ch uint16, handleBase uint32, path, op string, body map[string]any) int32 {
	r.t.Helper()
	reply := fmt.Sprintf("%s/$management-reply-%d", path, handleBase)
	r.attach(ch, handleBase, frames.RoleSender, "", path+"/$management", nil)
	r.attach(ch, handleBase+1, frames.RoleReceiver, path+"/$management", reply, nil)
	r.send(frames.TypeAMQP, ch, &frames.Flow{NextIncomingID: ptrU32(0), IncomingWindow: 5000, OutgoingWindow: 5000,
		Handle: ptrU32(handleBase + 1), DeliveryCount: ptrU32(0), LinkCredit: ptrU32(10)}, nil)
	msg := &amqp.Message{
		Properties:            &amqp.MessageProperties{MessageID: "m-1", ReplyTo: to(reply)},
		ApplicationProperties: map[string]any{"operation": op, "server-timeout": uint64(5000)},
		Value:                 body,
	}
	payload, err := msg.MarshalBinary()
	if err != nil {
		r.t.Fatal(err)
	}
	r.send(frames.TypeAMQP, ch, &frames.Transfer{Handle: handleBase, DeliveryID: ptrU32(handleBase), DeliveryTag: []byte{2}, MessageFormat: ptrU32(0)}, payload)
	f := r.until(func(f frames.Frame) bool { t, ok := f.Body.(*frames.Transfer); return ok && t.Handle == handleBase+1 })
	if !f.Body.(*frames.Transfer).Settled {
		r.t.Errorf("management reply is not settled")
	}
	var m amqp.Message
	if err := m.UnmarshalBinary(f.Payload); err != nil {
		r.t.Fatal(err)
	}
	if m.Properties == nil || m.Properties.CorrelationID != "m-1" {
		r.t.Fatalf("reply correlation-id: got %+v, want m-1", m.Properties)
	}
	code, ok := m.ApplicationProperties["statusCode"].(int32)
	if !ok {
		r.t.Fatalf("statusCode: got %T, want int32", m.ApplicationProperties["statusCode"])
	}
	return code
}

func TestRawManagementStatuses(t *testing.T) {
	t.Parallel()
	s := sbtest.Start(t)
	r := dialRaw(t, s.Addr())
	r.open()
	r.begin(0)
	aud, tok := validToken(s, queue)
	if got := r.putToken(0, aud, tok); got != 202 {
		t.Fatalf("put-token: got %d, want 202", got)
	}
	tests := []struct {
		name string
		op   string
		body map[string]any
		want int32
	}{
		{"unknown operation", "com.microsoft:get-message-sessions", map[string]any{}, 501},
		{"renew unknown lock", "com.microsoft:renew-lock", map[string]any{"lock-tokens": []amqp.UUID{{1, 2, 3}}}, 410},
		{"peek empty queue", "com.microsoft:peek-message", map[string]any{"from-sequence-number": int64(1), "message-count": int32(10)}, 204},
		{"receive missing deferred", "com.microsoft:receive-by-sequence-number", map[string]any{"sequence-numbers": []int64{99}, "receiver-settle-mode": uint32(1)}, 404},
		{"update unknown lock", "com.microsoft:update-disposition", map[string]any{"disposition-status": "completed", "lock-tokens": []amqp.UUID{{9}}}, 410},
		{"cancel unknown numbers", "com.microsoft:cancel-scheduled-message", map[string]any{"sequence-numbers": []int64{5}}, 200},
		{"bad body", "com.microsoft:renew-lock", map[string]any{"lock-tokens": "nope"}, 400},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := r.mgmtRequest(0, uint32(200+10*i), queue, tt.op, tt.body); got != tt.want {
				t.Fatalf("status: got %d, want %d", got, tt.want)
			}
		})
	}
}
