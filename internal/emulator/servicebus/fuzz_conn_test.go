package servicebus_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	enc "github.com/ffpipe/ffpipe/internal/emulator/servicebus/amqp/encoding"
	"github.com/ffpipe/ffpipe/internal/emulator/servicebus/amqp/frames"
	"github.com/ffpipe/ffpipe/internal/emulator/servicebus/sbtest"
)

// panicCounter is a slog handler that counts "panicked" records.
type panicCounter struct{ n atomic.Int64 }

func (p *panicCounter) Enabled(context.Context, slog.Level) bool { return true }
func (p *panicCounter) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "panicked") {
		p.n.Add(1)
	}
	return nil
}
func (p *panicCounter) WithAttrs([]slog.Attr) slog.Handler { return p }
func (p *panicCounter) WithGroup(string) slog.Handler      { return p }

func handshakeBytes(t testing.TB) []byte {
	var b []byte
	b = append(b, frames.ProtoSASL[:]...)
	b, _ = frames.Append(b, frames.TypeSASL, 0, &frames.SASLInit{Mechanism: "ANONYMOUS", InitialResponse: []byte("anonymous")}, nil)
	b = append(b, frames.ProtoAMQP[:]...)
	b, _ = frames.Append(b, frames.TypeAMQP, 0, &frames.Open{ContainerID: "fuzz", MaxFrameSize: 65536}, nil)
	return b
}

// FuzzConnection feeds arbitrary frames to a broker connection after a
// valid handshake: the broker must never panic, whatever it receives.
func FuzzConnection(f *testing.F) {
	seed := func(ps ...frames.Performative) []byte {
		var b []byte
		for _, p := range ps {
			var err error
			if b, err = frames.Append(b, frames.TypeAMQP, 0, p, []byte{0x00, 0x53, 0x77, 0xa1, 0x01, 'x'}); err != nil {
				f.Fatal(err)
			}
		}
		return b
	}
	one := uint32(1)
	f.Add(seed(&frames.Begin{IncomingWindow: 10, OutgoingWindow: 10}))
	f.Add(seed(&frames.Begin{IncomingWindow: 10, OutgoingWindow: 10},
		&frames.Attach{Name: "a", Handle: 0, Role: frames.RoleSender, Target: &enc.Described{Descriptor: frames.CodeTarget, Value: []any{"$cbs"}}, InitialDeliveryCount: &one},
		&frames.Transfer{Handle: 0, DeliveryID: &one, DeliveryTag: []byte{1}},
		&frames.Disposition{Role: frames.RoleReceiver, First: 0, Last: &one, State: &frames.Accepted{}},
		&frames.Flow{Handle: &one, LinkCredit: &one, Drain: true, Echo: true},
		&frames.Detach{Handle: 0, Closed: true}, &frames.End{}))
	f.Add(seed(&frames.Begin{IncomingWindow: 10, OutgoingWindow: 10},
		&frames.Attach{Name: "r", Handle: 3, Role: frames.RoleReceiver, Source: &enc.Described{Descriptor: frames.CodeSource, Value: []any{"transcode/$management"}},
			Target: &enc.Described{Descriptor: frames.CodeTarget, Value: []any{"reply"}}}))

	var counter panicCounter
	s := sbtest.Start(f, sbtest.WithLogger(slog.New(&counter)))
	hs := handshakeBytes(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		nc, err := net.Dial("tcp", s.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		_ = nc.SetDeadline(time.Now().Add(2 * time.Second))
		go func() {
			_, _ = nc.Write(hs)
			_, _ = nc.Write(in)
			_, _ = nc.Write(frames.Heartbeat)
			_ = nc.(*net.TCPConn).CloseWrite() // EOF: the broker ends the connection
		}()
		// Read until the broker closes or goes quiet.
		_, _ = io.Copy(io.Discard, nc)
		if n := counter.n.Load(); n > 0 {
			t.Fatalf("broker panicked %d times", n)
		}
	})
}
