package servicebus

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	enc "github.com/ffpipe/ffpipe/internal/emulator/servicebus/amqp/encoding"
	"github.com/ffpipe/ffpipe/internal/emulator/servicebus/amqp/frames"
)

const (
	sessionWindow = 5000 // incoming window the broker advertises, in frames
	linkCredit    = 1000 // credit granted to client sender links
	writeTimeout  = 30 * time.Second
	handshakeTime = 30 * time.Second
	// maxSettleBurst bounds how many settlements share one disk sync.
	maxSettleBurst = 512
)

// connError closes the connection with an AMQP error.
type connError struct{ err *frames.Error }

func (e *connError) Error() string { return e.err.Error() }

func protoErr(cond, format string, args ...any) error {
	return &connError{err: &frames.Error{Condition: enc.Symbol(cond), Description: fmt.Sprintf(format, args...)}}
}

// conn is one client connection. mu guards all session and link state and
// the writer; the read loop and the per-link delivery goroutines take it
// briefly.
type conn struct {
	srv *Server
	nc  net.Conn
	log *slog.Logger
	br  *bufio.Reader

	mu        sync.Mutex
	bw        *bufio.Writer
	wbuf      []byte
	dirty     bool
	werr      error
	lastWrite time.Time
	peerMax   uint32        // client's max-frame-size
	peerIdle  time.Duration // client's idle-time-out: it wants a frame at least this often
	sessions  map[uint16]*session
	replies   map[string]*link     // reply-to (target address or link name) → broker-sending reply link
	attachSeq uint64               // links attached so far
	claims    map[string]time.Time // lower-case entity path → token expiry
	settles   []pendingSettle      // client settlements not yet applied

	done     chan struct{}
	doneOnce sync.Once
	wg       sync.WaitGroup // goroutines that may write to the connection
}

func newConn(s *Server, nc net.Conn) *conn {
	return &conn{
		srv:      s,
		nc:       nc,
		log:      s.log.With("remote", nc.RemoteAddr().String()),
		br:       bufio.NewReaderSize(nc, 64*1024),
		bw:       bufio.NewWriterSize(nc, 64*1024),
		peerMax:  maxFrameSize,
		sessions: map[uint16]*session{},
		replies:  map[string]*link{},
		claims:   map[string]time.Time{},
		done:     make(chan struct{}),
	}
}

// shutdown aborts the connection from outside (server Close).
func (c *conn) shutdown() {
	c.doneOnce.Do(func() { close(c.done) })
	_ = c.nc.Close()
}

func (c *conn) serve() {
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("connection handler panicked", "panic", fmt.Sprint(r))
		}
		c.shutdown()
		c.mu.Lock()
		for _, s := range c.sessions {
			c.endSessionLocked(s)
		}
		c.mu.Unlock()
		c.wg.Wait()
		c.log.Debug("connection closed")
	}()
	c.log.Debug("connection accepted")
	if err := c.handshake(); err != nil {
		c.log.Info("handshake failed", "err", err)
		return
	}
	c.wg.Add(1)
	go c.heartbeat()
	err := c.readLoop()
	var ce *connError
	switch {
	case errors.As(err, &ce):
		c.log.Warn("closing connection", "condition", string(ce.err.Condition), "description", ce.err.Description)
		c.mu.Lock()
		c.writeLocked(0, &frames.Close{Error: ce.err}, nil)
		c.flushLocked()
		c.mu.Unlock()
	case err == nil, errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed),
		errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNRESET):
		// uamqp drops the socket right after its close frame, before it
		// reads the broker's answer: that is a normal end.
	default:
		c.log.Info("connection read failed", "err", err)
	}
}

func (c *conn) heartbeat() {
	defer c.wg.Done()
	defer c.guard("heartbeat")
	every := c.srv.heartbeat
	if c.peerIdle > 0 && c.peerIdle/2 < every {
		every = max(c.peerIdle/2, 100*time.Millisecond)
	}
	t := time.NewTicker(every / 3)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
			c.mu.Lock()
			if time.Since(c.lastWrite) >= every-every/3 && c.werr == nil {
				_, c.werr = c.bw.Write(frames.Heartbeat)
				c.dirty = true
				c.flushLocked()
			}
			c.mu.Unlock()
		}
	}
}

func (c *conn) readLoop() error {
	var buf []byte
	for {
		_ = c.nc.SetReadDeadline(time.Now().Add(2 * idleTimeout))
		var raw frames.RawFrame
		var err error
		raw, buf, err = frames.ReadFrame(c.br, maxFrameSize, buf)
		if err != nil {
			if errors.Is(err, frames.ErrBadFrame) || errors.Is(err, frames.ErrFrameTooLarge) {
				return protoErr(condFramingError, "%v", err)
			}
			return err
		}
		f, err := frames.Decode(raw)
		if err != nil {
			return protoErr(condDecodeError, "%v", err)
		}
		err, werr := c.handleFrame(f)
		if err != nil {
			return err
		}
		if werr != nil {
			return werr
		}
		select {
		case <-c.done:
			return nil
		default:
		}
	}
}

// handleFrame runs handle under the connection lock. A panic (a broker
// bug) becomes an internal-error close of this connection only.
func (c *conn) handleFrame(f frames.Frame) (err, werr error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("frame handler panicked", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			err = protoErr(condInternal, "internal error")
		}
	}()
	err = c.handle(f)
	if c.br.Buffered() == 0 || len(c.settles) >= maxSettleBurst {
		c.startSettlesLocked()
	}
	if c.br.Buffered() == 0 {
		c.flushLocked()
	}
	return err, c.werr
}

// locked runs f with the connection lock held (released even if f panics).
func (c *conn) locked(f func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f()
}

// guard recovers a panicking connection goroutine and closes the
// connection, so a broker bug never takes the process down.
func (c *conn) guard(what string) {
	if r := recover(); r != nil {
		c.log.Error(what+" panicked", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		c.shutdown()
	}
}

// writeLocked encodes one frame into the write buffer.
func (c *conn) writeLocked(ch uint16, p frames.Performative, payload []byte) {
	if c.werr != nil {
		return
	}
	var err error
	c.wbuf, err = frames.Append(c.wbuf[:0], frames.TypeAMQP, ch, p, payload)
	if err != nil {
		c.log.Error("encode frame", "err", err)
		return
	}
	_ = c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, c.werr = c.bw.Write(c.wbuf)
	c.dirty = true
}

func (c *conn) flushLocked() {
	if !c.dirty || c.werr != nil {
		return
	}
	_ = c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
	c.werr = c.bw.Flush()
	c.dirty = false
	c.lastWrite = time.Now()
	if c.werr != nil {
		_ = c.nc.Close()
	}
}

// handle dispatches one frame. It runs with c.mu held.
func (c *conn) handle(f frames.Frame) error {
	if f.Type != frames.TypeAMQP {
		return protoErr(condFramingError, "unexpected frame type %d", f.Type)
	}
	if f.Body == nil {
		return nil // keepalive
	}
	switch p := f.Body.(type) {
	case *frames.Begin:
		return c.onBegin(f.Channel, p)
	case *frames.Close:
		if p.Error != nil {
			c.log.Info("client closed connection with error", "condition", string(p.Error.Condition), "description", p.Error.Description)
		}
		c.writeLocked(0, &frames.Close{}, nil)
		c.flushLocked()
		return io.EOF
	case *frames.Open:
		return protoErr(condNotAllowed, "open received twice")
	case *frames.UnknownPerformative:
		c.log.Warn("unknown performative", "code", p.Code)
		return protoErr(condNotImplemented, "performative %#x is not implemented", p.Code)
	}
	s := c.sessions[f.Channel]
	if s == nil {
		return protoErr(condNotAllowed, "frame %T on channel %d without a session", f.Body, f.Channel)
	}
	switch p := f.Body.(type) {
	case *frames.End:
		c.writeLocked(s.ch, &frames.End{}, nil)
		c.endSessionLocked(s)
		return nil
	case *frames.Attach:
		return s.onAttach(p)
	case *frames.Flow:
		return s.onFlow(p)
	case *frames.Transfer:
		return s.onTransfer(p, f.Payload)
	case *frames.Disposition:
		return s.onDisposition(p)
	case *frames.Detach:
		return s.onDetach(p)
	}
	return protoErr(condNotImplemented, "performative %T not expected here", f.Body)
}

func (c *conn) onBegin(ch uint16, b *frames.Begin) error {
	if b.RemoteChannel != nil {
		return protoErr(condNotAllowed, "begin with remote-channel: the broker never begins sessions")
	}
	if _, dup := c.sessions[ch]; dup {
		return protoErr(condNotAllowed, "channel %d already has a session", ch)
	}
	s := &session{
		c:                    c,
		ch:                   ch,
		nextIncomingID:       b.NextOutgoingID,
		remoteIncomingWindow: b.IncomingWindow,
		links:                map[uint32]*link{},
		unsettled:            map[uint32]*outDelivery{},
	}
	c.sessions[ch] = s
	rc := ch
	hm := uint32(4294967295)
	c.writeLocked(ch, &frames.Begin{RemoteChannel: &rc, NextOutgoingID: 0, IncomingWindow: sessionWindow, OutgoingWindow: sessionWindow, HandleMax: &hm}, nil)
	return nil
}

// endSessionLocked forgets a session and its links. Locks taken by its
// links stay valid until they expire, as on the real service.
func (c *conn) endSessionLocked(s *session) {
	for _, l := range s.links {
		l.closeLocked()
	}
	s.links = map[uint32]*link{}
	s.unsettled = map[uint32]*outDelivery{}
	delete(c.sessions, s.ch)
	s.ended = true
}

// authorized reports whether a valid claim covers the entity path. A claim
// covers its own path and everything under it, as a token for a queue
// covers its $management node and dead-letter subqueue and a token for the
// namespace covers every entity.
func (c *conn) authorized(path string) bool {
	path = strings.ToLower(path)
	now := time.Now()
	for p := path; ; {
		if exp, ok := c.claims[p]; ok && now.Before(exp) {
			return true
		}
		if p == "" {
			return false
		}
		i := strings.LastIndexByte(p, '/')
		if i < 0 {
			p = ""
		} else {
			p = p[:i]
		}
	}
}

// session is one AMQP session.
type session struct {
	c     *conn
	ch    uint16
	ended bool

	nextIncomingID       uint32 // next transfer id expected from the client
	framesSinceFlow      uint32
	nextOutgoingID       uint32 // next transfer id the broker sends
	remoteIncomingWindow uint32
	nextDeliveryID       uint32
	links                map[uint32]*link        // by handle (the broker uses the client's handle numbers)
	unsettled            map[uint32]*outDelivery // broker deliveries awaiting the client's disposition
}

// flowLocked sends a flow carrying session state and, when l is not nil,
// that link's state.
func (s *session) flowLocked(l *link, drain bool) {
	nid := s.nextIncomingID
	f := &frames.Flow{NextIncomingID: &nid, IncomingWindow: sessionWindow, NextOutgoingID: s.nextOutgoingID, OutgoingWindow: sessionWindow}
	if l != nil {
		h, dc, cr := l.handle, l.deliveryCount, l.credit
		f.Handle, f.DeliveryCount, f.LinkCredit, f.Drain = &h, &dc, &cr, drain
	}
	s.framesSinceFlow = 0
	s.c.writeLocked(s.ch, f, nil)
}

func (s *session) onFlow(f *frames.Flow) error {
	nid := uint32(0)
	if f.NextIncomingID != nil {
		nid = *f.NextIncomingID
	}
	// Transfers in flight (serial-number arithmetic) use up the window.
	inFlight := int64(int32(s.nextOutgoingID - nid))
	s.remoteIncomingWindow = uint32(max(0, min(int64(f.IncomingWindow)-inFlight, math.MaxUint32)))
	var l *link
	if f.Handle != nil {
		l = s.links[*f.Handle]
		if l == nil {
			return nil // the link may have just been detached by the broker
		}
		if l.sending && f.LinkCredit != nil {
			dc := l.deliveryCount
			if f.DeliveryCount != nil {
				dc = *f.DeliveryCount
			}
			l.credit = dc + *f.LinkCredit - l.deliveryCount
			if int32(l.credit) < 0 {
				l.credit = 0
			}
			l.drain = f.Drain
		}
	}
	if l != nil && l.sending {
		l.wakeLocked()
	} else {
		for _, ol := range s.links {
			if ol.sending {
				ol.wakeLocked()
			}
		}
	}
	if f.Echo {
		s.flowLocked(l, false)
	}
	return nil
}

func (s *session) onDetach(d *frames.Detach) error {
	l := s.links[d.Handle]
	if l == nil {
		// An acknowledgement of a detach the broker started: do not answer.
		return nil
	}
	if d.Error != nil {
		s.c.log.Debug("client detached link with error", "link", l.address, "condition", string(d.Error.Condition))
	}
	l.closeLocked()
	delete(s.links, d.Handle)
	s.c.writeLocked(s.ch, &frames.Detach{Handle: d.Handle, Closed: true}, nil)
	return nil
}

func (s *session) onTransfer(t *frames.Transfer, payload []byte) error {
	s.nextIncomingID++
	s.framesSinceFlow++
	if s.framesSinceFlow >= sessionWindow/2 {
		s.flowLocked(nil, false)
	}
	l := s.links[t.Handle]
	if l == nil {
		return protoErr(condUnattached, "transfer on unattached handle %d", t.Handle)
	}
	if l.sending {
		return protoErr(condNotAllowed, "transfer on a link where the broker is the sender")
	}
	if !l.inProgress {
		if t.DeliveryID == nil {
			return protoErr(condNotAllowed, "first transfer frame without delivery-id")
		}
		l.inProgress = true
		l.cur = inDelivery{id: *t.DeliveryID, settled: t.Settled, tag: append([]byte(nil), t.DeliveryTag...)}
		if t.MessageFormat != nil {
			l.cur.format = *t.MessageFormat
		}
		l.buf = l.buf[:0]
	}
	if t.Aborted {
		l.inProgress = false
		l.buf = l.buf[:0]
		return nil
	}
	l.cur.size += len(payload)
	if l.cur.size <= MaxMessageSize {
		l.buf = append(l.buf, payload...)
	}
	if t.More {
		return nil
	}
	l.inProgress = false
	d := l.cur
	if d.size > MaxMessageSize {
		d.tooLarge = true
	} else {
		d.payload = append([]byte(nil), l.buf...)
	}
	l.deliveryCount++
	if l.credit > 0 {
		l.credit--
	}
	if err := l.onDelivery(d); err != nil {
		return err
	}
	l.topUpLocked()
	return nil
}

// settleIncomingLocked settles a client delivery with the given outcome.
func (s *session) settleIncomingLocked(id uint32, state any) {
	s.c.writeLocked(s.ch, &frames.Disposition{Role: frames.RoleReceiver, First: id, Settled: true, State: state}, nil)
}

func (s *session) onDisposition(d *frames.Disposition) error {
	if d.Role != frames.RoleReceiver {
		return nil // the client settling its own sends: the broker settles those itself
	}
	last := d.First
	if d.Last != nil {
		last = *d.Last
	}
	if last-d.First > 100000 {
		return protoErr(condInvalidField, "disposition range too large")
	}
	for id := d.First; ; id++ {
		if od := s.unsettled[id]; od != nil {
			delete(s.unsettled, id)
			od.link.settle(s, id, od, d.State, d.Settled)
		} else if !d.Settled && last-d.First < 1000 {
			// Unknown or already settled: the lock is gone. Answer so the
			// client does not wait forever.
			s.c.writeLocked(s.ch, &frames.Disposition{Role: frames.RoleSender, First: id, Settled: true,
				State: &frames.Rejected{Error: &frames.Error{Condition: condLockLost, Description: lockLostText}}}, nil)
		}
		if id == last {
			break
		}
	}
	return nil
}

// sendLocked transfers a message on a broker-sending link, splitting it into
// frames no larger than the client's max-frame-size.
func (s *session) sendLocked(l *link, tag []byte, settled bool, msg []byte) uint32 {
	id := s.nextDeliveryID
	s.nextDeliveryID++
	format := uint32(0)
	t := frames.Transfer{Handle: l.handle, DeliveryID: &id, DeliveryTag: tag, MessageFormat: &format, Settled: settled}
	// Overhead of a transfer performative with a 16-byte tag is under 60 bytes.
	chunk := int(s.c.peerMax) - frames.HeaderSize - 80
	for first := true; ; first = false {
		n := min(len(msg), chunk)
		t.More = n < len(msg)
		if !first {
			t.DeliveryID, t.DeliveryTag, t.MessageFormat = nil, nil, nil
		}
		s.c.writeLocked(s.ch, &t, msg[:n])
		s.nextOutgoingID++
		if s.remoteIncomingWindow > 0 {
			s.remoteIncomingWindow--
		}
		msg = msg[n:]
		if len(msg) == 0 {
			break
		}
	}
	l.deliveryCount++
	l.credit--
	return id
}

// inDelivery is a message being received from a client.
type inDelivery struct {
	id       uint32
	tag      []byte
	format   uint32
	settled  bool
	size     int
	tooLarge bool
	payload  []byte
}

// outDelivery is a broker delivery awaiting the client's settlement.
type outDelivery struct {
	link  *link
	token enc.UUID
}
