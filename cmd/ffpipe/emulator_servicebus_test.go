package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ffpipe/ffpipe/internal/emulator/servicebus"
)

func TestEmulatorServiceBusTLSFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"tls flags need --tls", []string{"--in-memory", "--tls-cert", "c.pem", "--tls-key", "k.pem"}, "need --tls"},
		{"cert without key", []string{"--in-memory", "--tls", "--tls-listen", "127.0.0.1:0", "--tls-cert", "c.pem"}, "TLSCertFile and TLSKeyFile"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := runEmulatorServiceBus(context.Background(), tt.args, &out, &errOut)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestEmulatorServiceBusTLS starts the broker with --tls and checks that it
// prints the AMQPS address, the generated certificate (in --data) and a TLS
// connection string.
func TestEmulatorServiceBusTLS(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out lockedBuffer
	done := make(chan error, 1)
	go func() {
		done <- runEmulatorServiceBus(ctx, []string{"--listen", "127.0.0.1:0", "--in-memory", "--data", dir, "--tls", "--tls-listen", "127.0.0.1:0"}, &out, &bytes.Buffer{})
	}()
	cert := filepath.Join(dir, servicebus.GeneratedCertFile)
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), "TLS connection string") {
		select {
		case err := <-done:
			t.Fatalf("emulator servicebus ended: %v\n%s", err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no TLS lines within 20 s; got:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond) // polling the output with a deadline
	}
	for _, want := range []string{"AMQPS (TLS) on 127.0.0.1:", "certificate (trust it in clients): " + cert, "TLS connection string: Endpoint=sb://127.0.0.1:"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if _, err := os.Stat(cert); err != nil {
		t.Errorf("generated certificate: %v", err)
	}
	cancel()
	select {
	case err := <-done:
		if err != context.Canceled {
			t.Errorf("after cancel: got %v, want context.Canceled", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("emulator servicebus did not end within 30 s of cancel")
	}
}
