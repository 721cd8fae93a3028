package servicebus

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
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
	// TLSAddr, when set, adds an AMQPS listener (AMQP over TLS, like the
	// real service's port 5671) beside the plain one, e.g. "127.0.0.1:5671".
	TLSAddr string
	// TLSCertFile and TLSKeyFile are the PEM certificate and key the TLS
	// listener serves. Left empty, the broker generates a self-signed
	// certificate (SANs: the TLS listen host, localhost, 127.0.0.1, ::1)
	// into TLSDir on first start and reuses it afterwards; CertFile names it
	// so that clients can trust it.
	TLSCertFile string
	TLSKeyFile  string
	// TLSDir holds the generated certificate: "" means DataDir, or a
	// temporary directory removed on Close when DataDir is "" as well.
	TLSDir string
}

// Server is a local Service Bus broker speaking AMQP 1.0.
type Server struct {
	opts  Options
	log   *slog.Logger
	store *backend

	mu        sync.Mutex
	ln        net.Listener
	tlsLn     net.Listener
	certFile  string // the certificate the TLS listener serves
	tempDir   string // generated-certificate directory removed on Close
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
	if (o.TLSCertFile == "") != (o.TLSKeyFile == "") {
		return fmt.Errorf("servicebus options: TLSCertFile and TLSKeyFile: set both or neither")
	}
	if o.TLSAddr == "" && (o.TLSCertFile != "" || o.TLSDir != "") {
		return fmt.Errorf("servicebus options: TLSAddr: empty, but a TLS certificate or directory is set")
	}
	if o.TLSAddr != "" {
		if _, _, err := net.SplitHostPort(o.TLSAddr); err != nil {
			return fmt.Errorf("servicebus options: TLSAddr: %w", err)
		}
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
	var tlsLn net.Listener
	if s.opts.TLSAddr != "" {
		if tlsLn, err = s.listenTLS(ctx); err != nil {
			_ = ln.Close()
			_ = b.Close()
			if s.tempDir != "" {
				_ = os.RemoveAll(s.tempDir)
			}
			return fmt.Errorf("start servicebus: %w", err)
		}
	}
	s.store, s.ln, s.tlsLn = b, ln, tlsLn
	s.log.Info("service bus emulator listening", "addr", ln.Addr().String(), "durable", s.opts.DataDir != "")
	s.log.Info("service bus entities", "queues", b.st.Queues(), "subscriptions", b.subscriptions())
	s.wg.Add(1)
	go s.accept(ln)
	if tlsLn != nil {
		s.log.Info("service bus emulator listening (AMQPS)", "addr", tlsLn.Addr().String(), "cert", s.certFile)
		s.wg.Add(1)
		go s.accept(tlsLn)
	}
	return nil
}

// listenTLS opens the AMQPS listener with the configured or generated
// certificate.
func (s *Server) listenTLS(ctx context.Context) (net.Listener, error) {
	host, _, _ := net.SplitHostPort(s.opts.TLSAddr)
	dir := s.opts.TLSDir
	if dir == "" {
		dir = s.opts.DataDir
	}
	if dir == "" && s.opts.TLSCertFile == "" {
		tmp, err := os.MkdirTemp("", "ffpipe-servicebus-tls-")
		if err != nil {
			return nil, fmt.Errorf("tls directory: %w", err)
		}
		dir, s.tempDir = tmp, tmp
	}
	cfg, certFile, err := tlsConfig(s.opts.TLSCertFile, s.opts.TLSKeyFile, dir, host)
	if err != nil {
		return nil, err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.opts.TLSAddr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", s.opts.TLSAddr, err)
	}
	s.certFile = certFile
	return tls.NewListener(ln, cfg), nil
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

// TLSAddr is the AMQPS listen address (host:port), or "" without one.
func (s *Server) TLSAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tlsLn == nil {
		return ""
	}
	return s.tlsLn.Addr().String()
}

// CertFile is the PEM certificate the AMQPS listener serves (the file a
// client trusts), or "" without a TLS listener.
func (s *Server) CertFile() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.certFile
}

// TLSConnectionString is a connection string for the AMQPS listener, in the
// real service's form (no UseDevelopmentEmulator: clients use TLS). The
// port is left out when it is 5671, the AMQPS default every SDK dials. It
// is "" without a TLS listener.
func (s *Server) TLSConnectionString() string {
	addr := s.TLSAddr()
	if addr == "" {
		return ""
	}
	if host, port, err := net.SplitHostPort(addr); err == nil && port == "5671" {
		addr = host
		if strings.Contains(host, ":") {
			addr = "[" + host + "]"
		}
	}
	return fmt.Sprintf("Endpoint=sb://%s/;SharedAccessKeyName=%s;SharedAccessKey=%s", addr, s.opts.KeyName, s.opts.Key)
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
	ln, tlsLn := s.ln, s.tlsLn
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, l := range []net.Listener{ln, tlsLn} {
		if l != nil {
			_ = l.Close()
		}
	}
	for _, c := range conns {
		c.shutdown()
	}
	s.wg.Wait()
	if s.tempDir != "" {
		_ = os.RemoveAll(s.tempDir)
	}
	if s.store != nil {
		if err := s.store.Close(); err != nil {
			return fmt.Errorf("close servicebus store: %w", err)
		}
	}
	return nil
}
