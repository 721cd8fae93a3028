// Package azurite starts Azurite, Microsoft's Azure Storage emulator, as a
// child process for the local stack and for tests.
//
// Azurite is the real emulator (npm package "azurite", pinned in the
// project's package-lock.json); this package finds the installed binary,
// chooses a loopback port, starts it with a data directory and waits until the
// blob endpoint answers. For tests it can also serve HTTPS with bearer-token
// authentication (Options.CertFile, KeyFile, OAuth), which user delegation SAS
// need (docs/status-page.md says what Azurite checks).
//
// Seed adds many blobs to a stopped Azurite's data at
// once, for benchmarks that need more blobs than Azurite's API can take in
// reasonable time (seed.go says why).
package azurite

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ffpipe/ffpipe/internal/ports"
)

// The well-known development account that every Azurite instance accepts.
const (
	Account = "devstoreaccount1"
	Key     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// Options configure a Server. The zero value is usable inside the repository.
type Options struct {
	// Dir is Azurite's --location (its data). Required unless InMemory.
	Dir string
	// InMemory keeps every blob and Azurite's database in memory
	// (--inMemoryPersistence; Azurite then refuses --location): nothing
	// survives a restart, and Azurite no longer saves its whole database
	// to disk every 5 s (LokiJS's autosave) nor writes and syncs an extent
	// file per blob. For benchmarks of what runs against storage.
	InMemory bool
	// Bin is the azurite-blob executable. Default: FindBin().
	Bin string
	// Port for the blob endpoint on 127.0.0.1. 0 picks a free port.
	Port int
	// Logger receives Azurite's lifecycle lines. Default: discard.
	Logger *slog.Logger
	// Stdout and Stderr receive the child's output. Default: discarded.
	Stdout, Stderr *os.File
	// CertFile and KeyFile, both PEM, serve the blob endpoint over HTTPS
	// (Azurite's --cert and --key); URL then starts with https and clients
	// must trust the certificate. Empty: plain HTTP.
	CertFile, KeyFile string
	// OAuth "basic" turns on Azurite's bearer-token authentication
	// (--oauth basic): it accepts an Entra-shaped JWT (issuer, audience and
	// lifetime checked, the signature not) and answers Get User Delegation
	// Key, so user delegation SAS can be tested (docs/standins.md). Azurite
	// allows bearer tokens only over HTTPS: it needs CertFile and KeyFile.
	// Empty: no token authentication.
	OAuth string
}

// Server is a running Azurite blob service.
type Server struct {
	opts Options
	port int

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// New returns a Server that is not yet started.
func New(opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Server{opts: opts}
}

// FindBin locates the azurite-blob executable: $FFPIPE_AZURITE_BIN, then
// node_modules/.bin/azurite-blob as FindInNodeModules finds it.
func FindBin() (string, error) {
	if p := os.Getenv("FFPIPE_AZURITE_BIN"); p != "" {
		return p, nil
	}
	if p, ok := FindInNodeModules(filepath.Join(".bin", "azurite-blob")); ok {
		return p, nil
	}
	return "", errors.New("find azurite: node_modules/.bin/azurite-blob not found; run `make deps` (npm ci) in the repository root, or set FFPIPE_AZURITE_BIN")
}

// FindInNodeModules finds node_modules/rel in the working directory or any
// parent, then beside the running executable or its parents (so bin/ffpipe
// finds the repository's node_modules from anywhere): the npm packages that
// `make deps` installs with `npm ci`.
func FindInNodeModules(rel string) (string, bool) {
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if exe, err := os.Executable(); err == nil {
		if exe, err := filepath.EvalSymlinks(exe); err == nil {
			starts = append(starts, filepath.Dir(exe))
		}
	}
	for _, dir := range starts {
		for {
			p := filepath.Join(dir, "node_modules", rel)
			if _, err := os.Stat(p); err == nil {
				return p, true
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	return "", false
}

// Start launches Azurite and waits until its blob endpoint answers or ctx ends.
func (s *Server) Start(ctx context.Context) error {
	if s.opts.Dir == "" && !s.opts.InMemory {
		return errors.New("start azurite: Options.Dir is required")
	}
	if err := s.opts.validateTLS(); err != nil {
		return fmt.Errorf("start azurite: %w", err)
	}
	bin := s.opts.Bin
	if bin == "" {
		var err error
		if bin, err = FindBin(); err != nil {
			return err
		}
	}
	args := []string{"--inMemoryPersistence"}
	if !s.opts.InMemory {
		if err := os.MkdirAll(s.opts.Dir, 0o755); err != nil {
			return fmt.Errorf("start azurite: %w", err)
		}
		args = []string{"--location", s.opts.Dir}
	}
	port := s.opts.Port
	if port == 0 {
		p, err := ports.Free()
		if err != nil {
			return fmt.Errorf("start azurite: %w", err)
		}
		port = p
	}
	args = append(args, "--blobHost", "127.0.0.1", "--blobPort", strconv.Itoa(port),
		"--skipApiVersionCheck", "--loose", "--silent", "--disableTelemetry")
	if s.opts.CertFile != "" {
		args = append(args, "--cert", s.opts.CertFile, "--key", s.opts.KeyFile)
	}
	if s.opts.OAuth != "" {
		args = append(args, "--oauth", s.opts.OAuth)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = s.opts.Stdout, s.opts.Stderr
	// Own process group so Close also stops node's children.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start azurite: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.mu.Lock()
	s.cmd, s.done, s.port = cmd, done, port
	s.mu.Unlock()
	s.opts.Logger.Info("azurite starting", "pid", cmd.Process.Pid, "url", s.URL(), "dir", s.opts.Dir)
	if err := s.waitReady(ctx, done); err != nil {
		_ = s.Close()
		return err
	}
	return nil
}

func (s *Server) waitReady(ctx context.Context, done <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	client, err := s.Client()
	if err != nil {
		return fmt.Errorf("start azurite: %w", err)
	}
	client.Timeout = time.Second
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL()+"?comp=list", nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			return nil // any HTTP answer (even 403 for a missing signature) means it is up
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("start azurite: not ready: %w", ctx.Err())
		case <-done:
			return errors.New("start azurite: process exited before it was ready")
		case <-tick.C:
		}
	}
}

// Port is the blob endpoint's TCP port.
func (s *Server) Port() int { s.mu.Lock(); defer s.mu.Unlock(); return s.port }

// URL is the blob service endpoint, e.g. http://127.0.0.1:10000/devstoreaccount1
// (https with Options.CertFile).
func (s *Server) URL() string {
	scheme := "http"
	if s.opts.CertFile != "" {
		scheme = "https"
	}
	return fmt.Sprintf("%s://127.0.0.1:%d/%s", scheme, s.Port(), Account)
}

// AccountHost is the dev account's production-style host name. Azurite
// takes the account from the first label of a host name that has a dot
// (extractStoragePartsFromPath in its blobStorageContext.middleware.js),
// so https://devstoreaccount1.blob.localhost:<port>/<container>/<blob> is
// the same blob as the path-style URL. The Go SDK needs this form for user
// delegation SAS: azblob v1.8.1 takes the account it signs for from the
// host's first label (service.Client.GetUserDelegationCredential), which is
// "127" for 127.0.0.1. Client dials this name at 127.0.0.1.
const AccountHost = Account + ".blob.localhost"

// AccountURL is the blob endpoint in production style,
// https://devstoreaccount1.blob.localhost:<port> (see AccountHost); it
// needs Options.CertFile (bearer tokens are HTTPS only) and a Client.
func (s *Server) AccountURL() string {
	return fmt.Sprintf("https://%s:%d", AccountHost, s.Port())
}

// Client is an HTTP client for the blob endpoint: with Options.CertFile it
// trusts that certificate (and only it) and dials AccountHost at
// 127.0.0.1; else it is a plain client.
func (s *Server) Client() (*http.Client, error) {
	if s.opts.CertFile == "" {
		return &http.Client{}, nil
	}
	pem, err := os.ReadFile(s.opts.CertFile)
	if err != nil {
		return nil, fmt.Errorf("azurite certificate: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("azurite certificate %s: no PEM certificate in it", s.opts.CertFile)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	tr.Proxy = nil // AccountHost is not "localhost" to a proxy setting's exclusions
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if host, port, err := net.SplitHostPort(addr); err == nil && strings.EqualFold(host, AccountHost) {
			addr = net.JoinHostPort("127.0.0.1", port)
		}
		return dialer.DialContext(ctx, network, addr)
	}
	return &http.Client{Transport: tr}, nil
}

// validateTLS checks the HTTPS and OAuth options together.
func (o Options) validateTLS() error {
	if (o.CertFile == "") != (o.KeyFile == "") {
		return errors.New("a certificate needs its key and a key its certificate (Options.CertFile, Options.KeyFile)")
	}
	switch o.OAuth {
	case "":
	case "basic":
		if o.CertFile == "" {
			return errors.New(`oauth "basic" needs HTTPS (Options.CertFile and KeyFile): Azurite refuses bearer tokens over HTTP`)
		}
	default:
		return fmt.Errorf(`oauth %q: Azurite knows only "basic" (Options.OAuth)`, o.OAuth)
	}
	return nil
}

// ConnectionString is the storage connection string for the dev account.
func (s *Server) ConnectionString() string {
	return ConnectionString(s.URL())
}

// ConnectionString builds the dev-account connection string for a blob endpoint URL.
func ConnectionString(blobURL string) string {
	return "DefaultEndpointsProtocol=http;AccountName=" + Account + ";AccountKey=" + Key + ";BlobEndpoint=" + blobURL + ";"
}

// Pid is the Azurite process id, 0 when not running.
func (s *Server) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Kill stops Azurite with SIGKILL (for crash tests) and waits for it to exit.
func (s *Server) Kill() error { return s.stop(syscall.SIGKILL) }

// Close stops Azurite (SIGTERM, then SIGKILL after 5 s) and waits for it.
func (s *Server) Close() error { return s.stop(syscall.SIGTERM) }

func (s *Server) stop(sig syscall.Signal) error {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return nil
	}
	_ = syscall.Kill(-cmd.Process.Pid, sig)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	return nil
}
