package servicebus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/ffpipe/ffpipe/internal/emulator/servicebus/store"
)

// Defaults.
const (
	DefaultAddr    = "127.0.0.1:0"
	DefaultKeyName = "RootManageSharedAccessKey"
	DefaultKey     = "SAS_KEY_VALUE"
	// MaxMessageSize is the per-message (and per-batch) limit, as in the
	// official emulator.
	MaxMessageSize = 256 * 1024
	// maxFrameSize is the largest frame the broker accepts and the value it
	// advertises in open.
	maxFrameSize = 65536
	// idleTimeout is advertised in open; clients send keepalives at half of it.
	idleTimeout = 60 * time.Second
	// heartbeatEvery is how often the broker sends an empty frame when it has
	// nothing else to send. The SDK times out after 60 s of silence.
	heartbeatEvery = 15 * time.Second
)

// Options configures a Server.
type Options struct {
	// Addr is the TCP listen address; "" means 127.0.0.1:0.
	Addr string
	// Config is a parsed *store.Config, a path to a Config.json file, or nil
	// for one queue "transcode" with Microsoft's defaults.
	Config any
	// DataDir holds the durable message log; "" keeps everything in memory.
	DataDir string
	// KeyName and Key are the shared access key the broker verifies SAS
	// tokens against ("" = RootManageSharedAccessKey / SAS_KEY_VALUE).
	KeyName string
	Key     string
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
}

// Server is a local Service Bus broker speaking AMQP 1.0.
type Server struct {
	opts  Options
	log   *slog.Logger
	store *backend

	mu        sync.Mutex
	ln        net.Listener
	conns     map[*conn]struct{}
	closed    bool
	wg        sync.WaitGroup
	stop      chan struct{}
	heartbeat time.Duration // interval of empty frames on idle connections
}

// Validate checks the options, naming the bad field.
func (o Options) Validate() error {
	switch o.Config.(type) {
	case nil, string, *store.Config, store.Config:
	default:
		return fmt.Errorf("servicebus options: Config: got %T, want *store.Config, store.Config or a Config.json path", o.Config)
	}
	if strings.ContainsAny(o.KeyName, ";=") {
		return fmt.Errorf("servicebus options: KeyName: must not contain ';' or '='")
	}
	if strings.Contains(o.Key, ";") {
		return fmt.Errorf("servicebus options: Key: must not contain ';'")
	}
	return nil
}

// New returns an unstarted server with defaults filled in; it validates opts.
func New(opts Options) (*Server, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.Addr == "" {
		opts.Addr = DefaultAddr
	}
	if opts.KeyName == "" {
		opts.KeyName = DefaultKeyName
	}
	if opts.Key == "" {
		opts.Key = DefaultKey
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Server{opts: opts, log: opts.Logger, conns: map[*conn]struct{}{}, stop: make(chan struct{}), heartbeat: heartbeatEvery}, nil
}

// Start opens the store and starts listening. It returns once the listener
// is ready; ctx bounds only the start-up.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.ln != nil {
		return errors.New("servicebus: already started")
	}
	b, err := openBackend(s.opts, s.log)
	if err != nil {
		return fmt.Errorf("start servicebus: %w", err)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.opts.Addr)
	if err != nil {
		_ = b.Close()
		return fmt.Errorf("start servicebus: listen %s: %w", s.opts.Addr, err)
	}
	s.store, s.ln = b, ln
	s.log.Info("service bus emulator listening", "addr", ln.Addr().String(), "durable", s.opts.DataDir != "")
	s.wg.Add(1)
	go s.accept(ln)
	return nil
}

func (s *Server) accept(ln net.Listener) {
	defer s.wg.Done()
	for {
		nc, err := ln.Accept()
		if err != nil {
			select {
			case <-s.stop:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			s.log.Error("accept", "err", err)
			return
		}
		c := newConn(s, nc)
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = nc.Close()
			continue
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			c.serve()
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

// Addr is the listen address (host:port), or "" before Start.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// ConnectionString is a UseDevelopmentEmulator=true connection string for
// the running server.
func (s *Server) ConnectionString() string {
	return fmt.Sprintf("Endpoint=sb://%s;SharedAccessKeyName=%s;SharedAccessKey=%s;UseDevelopmentEmulator=true;",
		s.Addr(), s.opts.KeyName, s.opts.Key)
}

// Close stops listening, closes every connection and the store.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.stop)
	ln := s.ln
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	if ln != nil {
		_ = ln.Close()
	}
	for _, c := range conns {
		c.shutdown()
	}
	s.wg.Wait()
	if s.store != nil {
		if err := s.store.Close(); err != nil {
			return fmt.Errorf("close servicebus store: %w", err)
		}
	}
	return nil
}
