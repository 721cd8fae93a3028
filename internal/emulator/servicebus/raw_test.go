package servicebus_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	enc "github.com/ffpipe/ffpipe/internal/emulator/servicebus/amqp/encoding"
	"github.com/ffpipe/ffpipe/internal/emulator/servicebus/amqp/frames"
	"github.com/ffpipe/ffpipe/internal/emulator/servicebus/sbtest"
)

// rawConn is a minimal AMQP client for protocol-level tests the SDK
// cannot express (malformed input, unknown performatives).
type rawConn struct {
	t        *testing.T
	nc       net.Conn
	br       *bufio.Reader
	maxFrame uint32 // frames larger than this fail next
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawConn{t: t, nc: nc, br: bufio.NewReader(nc), maxFrame: 1 << 20}
}

func (r *rawConn) write(b []byte) {
	r.t.Helper()
	if _, err := r.nc.Write(b); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

func (r *rawConn) send(typ byte, ch uint16, p frames.Performative, payload []byte) {
	r.t.Helper()
	b, err := frames.Append(nil, typ, ch, p, payload)
	if err != nil {
		r.t.Fatal(err)
	}
	r.write(b)
}

func (r *rawConn) header() [8]byte {
	r.t.Helper()
	var h [8]byte
	if _, err := io.ReadFull(r.br, h[:]); err != nil {
		r.t.Fatalf("read header: %v", err)
	}
	return h
}

// next returns the next non-empty frame, or an error at EOF.
func (r *rawConn) next() (frames.Frame, error) {
	for {
		raw, _, err := frames.ReadFrame(r.br, r.maxFrame, nil)
		if err != nil {
			return frames.Frame{}, err
		}
		f, err := frames.Decode(raw)
		if err != nil {
			return frames.Frame{}, err
		}
		if f.Body != nil {
			return f, nil
		}
	}
}

// open performs SASL ANONYMOUS and the open exchange.
func (r *rawConn) open() {
	r.t.Helper()
	r.openWith(&frames.Open{ContainerID: "raw", MaxFrameSize: 65536})
}

func (r *rawConn) openWith(o *frames.Open) {
	r.t.Helper()
	r.write(frames.ProtoSASL[:])
	if h := r.header(); h != frames.ProtoSASL {
		r.t.Fatalf("got header % x, want SASL", h)
	}
	if f, err := r.next(); err != nil {
		r.t.Fatalf("read mechanisms: %v", err)
	} else if _, ok := f.Body.(*frames.SASLMechanisms); !ok {
		r.t.Fatalf("got %T, want sasl-mechanisms", f.Body)
	}
	r.send(frames.TypeSASL, 0, &frames.SASLInit{Mechanism: "ANONYMOUS", InitialResponse: []byte("anonymous")}, nil)
	if f, err := r.next(); err != nil {
		r.t.Fatalf("read outcome: %v", err)
	} else if o, ok := f.Body.(*frames.SASLOutcome); !ok || o.Code != 0 {
		r.t.Fatalf("got %#v, want sasl-outcome ok", f.Body)
	}
	r.write(frames.ProtoAMQP[:])
	if h := r.header(); h != frames.ProtoAMQP {
		r.t.Fatalf("got header % x, want AMQP", h)
	}
	r.send(frames.TypeAMQP, 0, o, nil)
	if f, err := r.next(); err != nil {
		r.t.Fatalf("read open: %v", err)
	} else if o, ok := f.Body.(*frames.Open); !ok || o.ContainerID == "" || o.MaxFrameSize != 65536 || o.IdleTimeout == 0 {
		r.t.Fatalf("got %#v, want open with container-id, max-frame-size 65536 and idle-time-out", f.Body)
	}
}

// expectClose reads until a close frame and returns its error condition;
// the broker must then drop the connection.
func (r *rawConn) expectClose() enc.Symbol {
	r.t.Helper()
	for {
		f, err := r.next()
		if err != nil {
			r.t.Fatalf("connection ended without a close frame: %v", err)
		}
		if c, ok := f.Body.(*frames.Close); ok {
			if _, err := r.next(); !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				var ne net.Error
				if !errors.As(err, &ne) || ne.Timeout() {
					r.t.Errorf("after close: got %v, want the connection closed", err)
				}
			}
			if c.Error == nil {
				return ""
			}
			return c.Error.Condition
		}
	}
}

func TestMalformedInputClosesOnlyThatConnection(t *testing.T) {
	t.Parallel()
	s := sbtest.Start(t)
	ctx := ctxT(t, 20*time.Second)
	// A healthy SDK client, used before and after the bad connections.
	c := client(t, s)
	snd := sender(t, c, queue)
	if err := snd.SendMessage(ctx, &azservicebus.Message{Body: []byte("before")}, nil); err != nil {
		t.Fatalf("send: %v", err)
	}

	t.Run("wrong protocol header", func(t *testing.T) {
		r := dialRaw(t, s.Addr())
		r.write([]byte("GET / HTTP/1.1\r\n\r\n"))
		if h := r.header(); h != frames.ProtoSASL {
			t.Errorf("got header % x, want the supported SASL header", h)
		}
		if _, err := r.br.ReadByte(); !errors.Is(err, io.EOF) {
			t.Errorf("got %v, want EOF", err)
		}
	})
	tests := []struct {
		name string
		send func(r *rawConn)
		want enc.Symbol
	}{
		{"garbage frame", func(r *rawConn) { r.write(bytes.Repeat([]byte{0xff}, 64)) }, "amqp:connection:framing-error"},
		{"bad performative", func(r *rawConn) { r.write([]byte{0, 0, 0, 12, 2, 0, 0, 0, 0, 0x53, 0x10, 0xff}) }, "amqp:decode-error"},
		{"unknown performative", func(r *rawConn) {
			r.write([]byte{0, 0, 0, 12, 2, 0, 0, 0, 0, 0x53, 0x30, 0x45})
		}, "amqp:not-implemented"},
		{"frame over max size", func(r *rawConn) { r.write([]byte{0, 2, 0, 0, 2, 0, 0, 0}) }, "amqp:connection:framing-error"},
		{"attach without session", func(r *rawConn) {
			r.send(frames.TypeAMQP, 5, &frames.Attach{Name: "x", Handle: 0}, nil)
		}, "amqp:not-allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := dialRaw(t, s.Addr())
			r.open()
			tt.send(r)
			if got := r.expectClose(); got != tt.want {
				t.Errorf("close condition: got %q, want %q", got, tt.want)
			}
		})
	}

	if err := snd.SendMessage(ctx, &azservicebus.Message{Body: []byte("after")}, nil); err != nil {
		t.Fatalf("send after bad connections: %v", err)
	}
	rcv := receiver(t, c, queue, &azservicebus.ReceiverOptions{ReceiveMode: azservicebus.ReceiveModeReceiveAndDelete})
	if got := receiveN(t, ctx, rcv, 2); string(got[0].Body) != "before" || string(got[1].Body) != "after" {
		t.Errorf("got %q %q, want before after", got[0].Body, got[1].Body)
	}
}
