package servicebus

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/ffpipe/ffpipe/internal/fsutil"
)

// Names of the generated certificate and key inside the TLS directory.
const (
	GeneratedCertFile = "amqps-cert.pem"
	GeneratedKeyFile  = "amqps-key.pem"
)

// certValidity is how long a generated certificate is valid. A certificate
// that expires within renewBefore, or does not name the listen host, is
// generated again.
const (
	certValidity = 5 * 365 * 24 * time.Hour
	renewBefore  = 30 * 24 * time.Hour
)

// tlsConfig loads the configured certificate or, with none configured, the
// one generated in dir, generating it when it is missing, expiring or does
// not name host. It returns the config and the path of the certificate a
// client must trust.
func tlsConfig(certFile, keyFile, dir, host string) (*tls.Config, string, error) {
	if certFile == "" {
		certFile, keyFile = filepath.Join(dir, GeneratedCertFile), filepath.Join(dir, GeneratedKeyFile)
		if err := ensureSelfSigned(certFile, keyFile, host, time.Now()); err != nil {
			return nil, "", err
		}
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, "", fmt.Errorf("load tls certificate %s: %w", certFile, err)
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}, certFile, nil
}

// ensureSelfSigned keeps a usable generated certificate and makes a new one
// otherwise.
func ensureSelfSigned(certFile, keyFile, host string, now time.Time) error {
	if usable(certFile, keyFile, host, now) {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(certFile), 0o700); err != nil {
		return fmt.Errorf("generate tls certificate: %w", err)
	}
	certPEM, keyPEM, err := selfSigned(host, now)
	if err != nil {
		return fmt.Errorf("generate tls certificate: %w", err)
	}
	// WriteFileAtomic creates files readable by their owner only: right
	// for the key; the certificate is public.
	if err := fsutil.WriteFileAtomic(keyFile, keyPEM); err != nil {
		return fmt.Errorf("generate tls certificate: %w", err)
	}
	if err := fsutil.WriteFileAtomic(certFile, certPEM); err != nil {
		return fmt.Errorf("generate tls certificate: %w", err)
	}
	return os.Chmod(certFile, 0o644)
}

func usable(certFile, keyFile, host string, now time.Time) bool {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil || len(pair.Certificate) == 0 {
		return false
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil || now.Add(renewBefore).After(cert.NotAfter) {
		return false
	}
	for _, h := range sanHosts(host) {
		if cert.VerifyHostname(h) != nil {
			return false
		}
	}
	return true
}

// sanHosts are the names a generated certificate carries: localhost and the
// loopback addresses always, plus the listen host (for a wildcard listen
// address, the machine's host name).
func sanHosts(host string) []string {
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	ip := net.ParseIP(host)
	switch {
	case host == "" || (ip != nil && ip.IsUnspecified()):
		if name, err := os.Hostname(); err == nil && name != "" {
			hosts = append(hosts, name)
		}
	case host != "localhost" && !(ip != nil && (ip.Equal(net.IPv4(127, 0, 0, 1)) || ip.Equal(net.IPv6loopback))):
		hosts = append(hosts, host)
	}
	return hosts
}

// selfSigned makes a self-signed ECDSA P-256 certificate for host. It is
// its own CA (clients add it to their trusted roots) and a server leaf.
func selfSigned(host string, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "ffpipe Service Bus emulator", Organization: []string{"ffpipe local stand-in"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(certValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	for _, h := range sanHosts(host) {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), nil
}
