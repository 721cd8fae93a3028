// Package frames reads and writes AMQP 1.0 frames and the performatives
// they carry (OASIS AMQP 1.0 part 2 and the SASL section of part 5).
package frames

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	enc "github.com/ffpipe/ffpipe/internal/emulator/servicebus/amqp/encoding"
)

// Frame types.
const (
	TypeAMQP byte = 0x00
	TypeSASL byte = 0x01
)

// HeaderSize is the fixed part of every frame.
const HeaderSize = 8

// MinMaxFrameSize is the smallest max-frame-size AMQP allows (512).
const MinMaxFrameSize = 512

// Protocol headers.
var (
	ProtoSASL = [8]byte{'A', 'M', 'Q', 'P', 3, 1, 0, 0}
	ProtoAMQP = [8]byte{'A', 'M', 'Q', 'P', 0, 1, 0, 0}
)

// Errors returned by ReadFrame and Decode.
var (
	ErrFrameTooLarge = errors.New("amqp: frame larger than max-frame-size")
	ErrBadFrame      = errors.New("amqp: malformed frame")
)

// Frame is one decoded frame. Body is nil for an empty (heartbeat) frame.
type Frame struct {
	Type    byte
	Channel uint16
	Body    any    // one of the performative types in this package
	Payload []byte // transfer payload following the performative
}

// RawFrame is a frame whose body is not yet decoded.
type RawFrame struct {
	Type    byte
	Channel uint16
	Body    []byte
}

// ReadFrame reads one frame from r. maxSize bounds the frame size; io.ReadFull
// makes it indifferent to how the input is chunked. buf is reused when big
// enough.
func ReadFrame(r io.Reader, maxSize uint32, buf []byte) (RawFrame, []byte, error) {
	var h [HeaderSize]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return RawFrame{}, buf, err
	}
	size := binary.BigEndian.Uint32(h[0:4])
	doff := h[4]
	if size < HeaderSize || doff < 2 || uint32(doff)*4 > size {
		return RawFrame{}, buf, fmt.Errorf("%w: size %d doff %d", ErrBadFrame, size, doff)
	}
	if size > maxSize {
		return RawFrame{}, buf, fmt.Errorf("%w: %d > %d", ErrFrameTooLarge, size, maxSize)
	}
	n := int(size) - HeaderSize
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return RawFrame{}, buf, err
	}
	ext := int(doff)*4 - HeaderSize
	return RawFrame{Type: h[5], Channel: binary.BigEndian.Uint16(h[6:8]), Body: buf[ext:]}, buf, nil
}

// Parse splits a complete frame (header included) from the front of b, for
// callers holding bytes rather than a reader. ok is false when b does not
// yet hold a whole frame.
func Parse(b []byte, maxSize uint32) (f RawFrame, n int, ok bool, err error) {
	if len(b) < HeaderSize {
		return RawFrame{}, 0, false, nil
	}
	size := binary.BigEndian.Uint32(b[0:4])
	doff := b[4]
	if size < HeaderSize || doff < 2 || uint32(doff)*4 > size {
		return RawFrame{}, 0, false, fmt.Errorf("%w: size %d doff %d", ErrBadFrame, size, doff)
	}
	if size > maxSize {
		return RawFrame{}, 0, false, fmt.Errorf("%w: %d > %d", ErrFrameTooLarge, size, maxSize)
	}
	if uint32(len(b)) < size {
		return RawFrame{}, 0, false, nil
	}
	return RawFrame{Type: b[5], Channel: binary.BigEndian.Uint16(b[6:8]), Body: b[int(doff)*4 : size]}, int(size), true, nil
}

// Decode decodes the performative of a raw frame. The payload of a
// transfer aliases f.Body.
func Decode(f RawFrame) (Frame, error) {
	out := Frame{Type: f.Type, Channel: f.Channel}
	if len(f.Body) == 0 {
		return out, nil
	}
	if len(f.Body) < 3 || f.Body[0] != 0x00 {
		return out, fmt.Errorf("%w: body does not start with a described type", ErrBadFrame)
	}
	v, rest, err := enc.Unmarshal(f.Body)
	if err != nil {
		return out, fmt.Errorf("decode performative: %w", err)
	}
	d := v.(*enc.Described)
	code, ok := d.Code()
	if !ok {
		return out, fmt.Errorf("%w: non-numeric performative descriptor", ErrBadFrame)
	}
	fields, ok := d.Value.([]any)
	if !ok {
		return out, fmt.Errorf("%w: performative %#x is not a list", ErrBadFrame, code)
	}
	if code != CodeTransfer && len(rest) != 0 {
		return out, fmt.Errorf("%w: %d trailing bytes after performative %#x", ErrBadFrame, len(rest), code)
	}
	body, err := decodePerformative(f.Type, code, fields)
	if err != nil {
		return out, err
	}
	out.Body = body
	if code == CodeTransfer {
		out.Payload = rest
	}
	return out, nil
}

// Append encodes a frame carrying performative p (nil for a heartbeat) and
// payload onto dst.
func Append(dst []byte, typ byte, channel uint16, p Performative, payload []byte) ([]byte, error) {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, 2, typ, byte(channel>>8), byte(channel))
	if p != nil {
		e := enc.Buffer{B: dst}
		if err := e.Write(p.described()); err != nil {
			return dst[:start], err
		}
		dst = e.B
	}
	dst = append(dst, payload...)
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start))
	return dst, nil
}

// Heartbeat is the empty AMQP frame on channel 0.
var Heartbeat = []byte{0, 0, 0, 8, 2, 0, 0, 0}
