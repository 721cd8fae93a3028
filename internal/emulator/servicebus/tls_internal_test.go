package servicebus

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestEnsureSelfSigned(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, GeneratedCertFile), filepath.Join(dir, GeneratedKeyFile)
	now := time.Now()
	if err := ensureSelfSigned(cert, key, "127.0.0.7", now); err != nil {
		t.Fatal(err)
	}
	first, _ := os.ReadFile(cert)
	parsed := parseCert(t, first)
	for _, h := range []string{"localhost", "127.0.0.1", "::1", "127.0.0.7"} {
		if err := parsed.VerifyHostname(h); err != nil {
			t.Errorf("generated certificate: %v", err)
		}
	}
	if fi, err := os.Stat(key); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode: got %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	tests := []struct {
		name    string
		host    string
		now     time.Time
		wantNew bool
	}{
		{"same host: reused", "127.0.0.7", now, false},
		{"localhost: reused", "localhost", now, false},
		{"another host: regenerated", "127.0.0.8", now, true},
		{"about to expire: regenerated", "127.0.0.8", now.Add(certValidity - renewBefore/2), true},
	}
	prev := first
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := ensureSelfSigned(cert, key, tt.host, tt.now); err != nil {
				t.Fatal(err)
			}
			got, _ := os.ReadFile(cert)
			if changed := !bytes.Equal(got, prev); changed != tt.wantNew {
				t.Fatalf("certificate regenerated: got %v, want %v", changed, tt.wantNew)
			}
			prev = got
		})
	}
}

func parseCert(t *testing.T, b []byte) *x509.Certificate {
	t.Helper()
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatal("no PEM block")
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNodePath(t *testing.T) {
	tests := []struct{ in, want string }{
		{"transcode", "transcode"},
		{"/transcode/", "transcode"},
		{"$cbs", "$cbs"},
		{"amqps://127.0.0.5/transcode", "transcode"},
		{"amqps://host:5671/Transcode/$management", "Transcode/$management"},
		{"sb://ns.servicebus.windows.net/t/Subscriptions/s", "t/Subscriptions/s"},
		{"amqp://host", ""},
		{"", ""},
	}
	for _, tt := range tests {
		if got := nodePath(tt.in); got != tt.want {
			t.Errorf("nodePath(%q): got %q, want %q", tt.in, got, tt.want)
		}
	}
}
