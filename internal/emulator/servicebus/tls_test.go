package servicebus_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/ffpipe/ffpipe/internal/emulator/servicebus"
)

// TestTLSListener drives the AMQPS listener with the Go SDK in its
// real-service mode (no UseDevelopmentEmulator: TLS), trusting the
// generated certificate the broker names.
func TestTLSListener(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := servicebus.New(servicebus.Options{TLSAddr: "127.0.0.1:0", TLSDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t, 30*time.Second)
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if !strings.HasPrefix(s.CertFile(), dir) {
		t.Fatalf("certificate %q: want it generated in %s", s.CertFile(), dir)
	}
	pemBytes, err := os.ReadFile(s.CertFile())
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pemBytes) {
		t.Fatal("certificate file holds no certificate")
	}
	cs := s.TLSConnectionString()
	if strings.Contains(cs, "UseDevelopmentEmulator") {
		t.Fatalf("TLS connection string %q: want the real-service form", cs)
	}
	// go-amqp verifies the endpoint's host:port as the server name when the
	// port is not 5671, so the test names the host.
	tc := &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	c, err := azservicebus.NewClientFromConnectionString(cs, &azservicebus.ClientOptions{TLSConfig: tc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	if err := sender(t, c, queue).SendMessage(ctx, &azservicebus.Message{Body: []byte("over tls")}, nil); err != nil {
		t.Fatalf("send over TLS: %v", err)
	}
	got := receiveN(t, ctx, receiver(t, c, queue, nil), 1)[0]
	if string(got.Body) != "over tls" {
		t.Fatalf("got %q, want %q", got.Body, "over tls")
	}
}

func TestTLSOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		opts servicebus.Options
		want string
	}{
		{"cert without key", servicebus.Options{TLSAddr: "127.0.0.1:0", TLSCertFile: "c.pem"}, "TLSCertFile and TLSKeyFile"},
		{"cert without listener", servicebus.Options{TLSCertFile: "c.pem", TLSKeyFile: "k.pem"}, "TLSAddr"},
		{"bad address", servicebus.Options{TLSAddr: "nope"}, "TLSAddr"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.opts.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error naming %s", err, tt.want)
			}
		})
	}
}
