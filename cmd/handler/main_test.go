package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ffpipe/ffpipe/internal/config"
	"github.com/ffpipe/ffpipe/internal/ports"
)

// azureSettings need no network at start-up (identity-based clients are
// lazy), so the test exercises the real wiring.
func azureSettings(port string) map[string]string {
	return map[string]string{
		"ServiceBusConnection__fullyQualifiedNamespace": "ffpipe-test.servicebus.windows.net",
		"DataStorage__blobServiceUri":                   "https://ffpipetest.blob.core.windows.net",
		"FFPIPE_BATCH_ENDPOINT":                         "https://ffpipetest.westeurope.batch.azure.com",
		"FFPIPE_BATCH_TOKEN":                            "tok",
		"FUNCTIONS_CUSTOMHANDLER_PORT":                  port,
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	p, err := ports.Free()
	if err != nil {
		t.Fatal(err)
	}
	return strconv.Itoa(p)
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestRunServesOnLoopbackOnly(t *testing.T) {
	port := freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan net.Addr, 1)
	done := make(chan error, 1)
	var out syncBuffer
	go func() { done <- run(ctx, config.FromMap(azureSettings(port)), &out, ready) }()
	var addr net.Addr
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("run returned early: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("handler not ready within 30 s")
	}
	tcp := addr.(*net.TCPAddr)
	if !tcp.IP.IsLoopback() || strconv.Itoa(tcp.Port) != port {
		t.Errorf("listening on %s, want 127.0.0.1:%s", addr, port)
	}
	resp, err := http.Get("http://127.0.0.1:" + port + "/")
	if err != nil {
		t.Fatalf("readiness GET /: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("GET /: got %d %q, want 200 application/json", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	// Not reachable through any other interface address.
	addrs, _ := net.InterfaceAddrs()
	tried := 0
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok || ipn.IP.IsLoopback() || ipn.IP.To4() == nil {
			continue
		}
		tried++
		c, err := net.DialTimeout("tcp", net.JoinHostPort(ipn.IP.String(), port), 2*time.Second)
		if err == nil {
			c.Close()
			t.Errorf("handler reachable on %s:%s; want loopback only", ipn.IP, port)
		}
	}
	t.Logf("checked %d non-loopback addresses", tried)
	if !strings.Contains(out.String(), `"msg":"handler listening"`) {
		t.Errorf("no JSON start-up log line: %q", out.String())
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run after cancel: got %v, want nil", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return after cancel")
	}
}

func TestRunConfigurationErrors(t *testing.T) {
	tests := []struct {
		name   string
		change func(m map[string]string)
		want   string
	}{
		{"no port", func(m map[string]string) { delete(m, "FUNCTIONS_CUSTOMHANDLER_PORT") }, "FUNCTIONS_CUSTOMHANDLER_PORT"},
		{"no batch", func(m map[string]string) { delete(m, "FFPIPE_BATCH_ENDPOINT") }, "FFPIPE_BATCH_ENDPOINT"},
		{"bad presets", func(m map[string]string) { m["FFPIPE_PRESETS"] = `{"x":{"ext":"exe","args":[]}}` }, "FFPIPE_PRESETS"},
		{"unknown default preset", func(m map[string]string) { m["FFPIPE_DEFAULT_PRESET"] = "nosuch" }, "FFPIPE_DEFAULT_PRESET"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := azureSettings("0")
			tt.change(m)
			err := run(context.Background(), config.FromMap(m), &syncBuffer{}, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error naming %s", err, tt.want)
			}
		})
	}
}

// Production code must never import the stand-ins or the tooling that drives them.
func TestNoEmulatorDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if strings.Contains(p, "/internal/emulator") || strings.Contains(p, "/internal/tooling") {
			t.Errorf("cmd/handler depends on %s", p)
		}
	}
}
