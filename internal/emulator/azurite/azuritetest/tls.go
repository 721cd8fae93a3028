package azuritetest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ffpipe/ffpipe/internal/emulator/azurite"
)

// StartOAuth runs Azurite over HTTPS with bearer-token authentication
// (--oauth basic) for the duration of t, with a self-signed certificate for
// 127.0.0.1 and azurite.AccountHost made for this run. The client trusts
// that certificate and only it; use s.AccountURL() as the service URL
// where the account name matters (user delegation SAS).
func StartOAuth(t testing.TB) (*azurite.Server, *http.Client) {
	t.Helper()
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := selfSigned(cert, key); err != nil {
		t.Fatalf("azurite certificate: %v", err)
	}
	s := azurite.New(azurite.Options{Dir: filepath.Join(dir, "data"), CertFile: cert, KeyFile: key, OAuth: "basic"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatalf("azurite: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	c, err := s.Client()
	if err != nil {
		t.Fatal(err)
	}
	return s, c
}

// selfSigned writes a P-256 certificate for 127.0.0.1 and
// azurite.AccountHost, valid for a day,
// and its key, as PEM.
func selfSigned(certFile, keyFile string) error {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(now.UnixNano()),
		Subject:               pkix.Name{CommonName: "azurite test"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{azurite.AccountHost},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		return err
	}
	kd, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return err
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}), 0o600)
}
