package servicebus

import (
	"bytes"
	"fmt"
	"io"
	"time"

	enc "github.com/ffpipe/ffpipe/internal/emulator/servicebus/amqp/encoding"
	"github.com/ffpipe/ffpipe/internal/emulator/servicebus/amqp/frames"
)

// handshake reads the protocol headers, runs SASL when the client asks for
// it, and exchanges open frames.
func (c *conn) handshake() error {
	_ = c.nc.SetDeadline(time.Now().Add(handshakeTime))
	defer c.nc.SetDeadline(time.Time{})
	var h [8]byte
	if _, err := io.ReadFull(c.br, h[:]); err != nil {
		return fmt.Errorf("read protocol header: %w", err)
	}
	switch h {
	case frames.ProtoSASL:
		if err := c.sasl(); err != nil {
			return err
		}
		if _, err := io.ReadFull(c.br, h[:]); err != nil {
			return fmt.Errorf("read protocol header: %w", err)
		}
		if h != frames.ProtoAMQP {
			_, _ = c.nc.Write(frames.ProtoAMQP[:])
			return fmt.Errorf("unexpected protocol header % x after sasl", h)
		}
	case frames.ProtoAMQP:
	default:
		_, _ = c.nc.Write(frames.ProtoSASL[:])
		return fmt.Errorf("unsupported protocol header % x", h)
	}
	if _, err := c.nc.Write(frames.ProtoAMQP[:]); err != nil {
		return fmt.Errorf("write protocol header: %w", err)
	}
	raw, _, err := frames.ReadFrame(c.br, maxFrameSize, nil)
	if err != nil {
		return fmt.Errorf("read open: %w", err)
	}
	f, err := frames.Decode(raw)
	if err != nil {
		return fmt.Errorf("decode open: %w", err)
	}
	open, ok := f.Body.(*frames.Open)
	if !ok || f.Type != frames.TypeAMQP {
		return fmt.Errorf("first frame is %T, want open", f.Body)
	}
	if open.MaxFrameSize != 0 {
		c.peerMax = min(open.MaxFrameSize, maxFrameSize)
		if c.peerMax < frames.MinMaxFrameSize {
			c.peerMax = frames.MinMaxFrameSize
		}
	}
	c.peerIdle = time.Duration(open.IdleTimeout) * time.Millisecond
	c.log.Debug("open", "container", open.ContainerID, "max_frame", open.MaxFrameSize, "idle_ms", open.IdleTimeout)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writeLocked(0, &frames.Open{
		ContainerID:  "ffpipe-servicebus-" + newID()[:8],
		MaxFrameSize: maxFrameSize,
		ChannelMax:   65535,
		HasChanMax:   true,
		IdleTimeout:  uint32(idleTimeout / time.Millisecond),
	}, nil)
	c.flushLocked()
	return c.werr
}

// saslMechanisms are offered in this order. azservicebus and rhea pick
// ANONYMOUS; uamqp and .NET's Azure.Messaging.ServiceBus insist on MSSBCBS
// (docs/servicebus-clients.md); PLAIN carries the key name and key.
var saslMechanisms = []enc.Symbol{"ANONYMOUS", "MSSBCBS", "PLAIN"}

func (c *conn) sasl() error {
	var out []byte
	out = append(out, frames.ProtoSASL[:]...)
	out, _ = frames.Append(out, frames.TypeSASL, 0, &frames.SASLMechanisms{Mechanisms: saslMechanisms}, nil)
	if _, err := c.nc.Write(out); err != nil {
		return fmt.Errorf("write sasl mechanisms: %w", err)
	}
	raw, _, err := frames.ReadFrame(c.br, maxFrameSize, nil)
	if err != nil {
		return fmt.Errorf("read sasl-init: %w", err)
	}
	f, err := frames.Decode(raw)
	if err != nil {
		return fmt.Errorf("decode sasl-init: %w", err)
	}
	init, ok := f.Body.(*frames.SASLInit)
	if !ok || f.Type != frames.TypeSASL {
		return fmt.Errorf("got %T, want sasl-init", f.Body)
	}
	code := uint8(0)
	switch init.Mechanism {
	case "ANONYMOUS", "MSSBCBS":
		// MSSBCBS (uamqp, .NET) says the token comes later through $cbs:
		// the connection is anonymous until a put-token, and entity links
		// need a claim either way.
	case "PLAIN":
		// authzid NUL authcid NUL passwd
		parts := bytes.SplitN(init.InitialResponse, []byte{0}, 3)
		if len(parts) != 3 || string(parts[1]) != c.srv.opts.KeyName || string(parts[2]) != c.srv.opts.Key {
			code = 1
		}
	default:
		code = 1
	}
	out, _ = frames.Append(nil, frames.TypeSASL, 0, &frames.SASLOutcome{Code: code}, nil)
	if _, err := c.nc.Write(out); err != nil {
		return fmt.Errorf("write sasl outcome: %w", err)
	}
	if code != 0 {
		return fmt.Errorf("sasl %s authentication failed", init.Mechanism)
	}
	return nil
}
