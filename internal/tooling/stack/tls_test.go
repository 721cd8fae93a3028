package stack

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ffpipe/ffpipe/internal/emulator/servicebus"
)

// TestServiceBusTLSWiring checks what `ffpipe dev` hands the broker and its
// clients when the AMQPS listener is on (docs/servicebus-clients.md).
func TestServiceBusTLSWiring(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name     string
		port     int
		inMemory bool
		wantArgs []string // in the child's command line
		wantCS   string
	}{
		{"off", 0, false, nil, ""},
		{"default port", 5671, false, []string{"--tls", "--tls-listen", "127.0.0.1:5671"}, "Endpoint=sb://127.0.0.1/;"},
		{"other port, in memory", 15671, true, []string{"--tls", "--tls-listen", "127.0.0.1:15671", "--in-memory", "--data"}, "Endpoint=sb://127.0.0.1:15671/;"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Stack{opts: Options{Dir: dir, ServiceBusTLSPort: tt.port, InMemoryBroker: tt.inMemory, Ports: Ports{ServiceBus: 5672}}}
			args, err := s.childArgs(ServiceBus)
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range tt.wantArgs {
				if !slices.Contains(args, a) {
					t.Errorf("child args %q: want %q", args, a)
				}
			}
			if tt.port == 0 && slices.Contains(args, "--tls") {
				t.Errorf("child args %q: want no --tls", args)
			}
			cs, cert := s.sbTLSConnectionString(), s.sbCertFile()
			if tt.wantCS == "" {
				if cs != "" || cert != "" {
					t.Fatalf("got %q and %q, want none", cs, cert)
				}
				return
			}
			if !strings.HasPrefix(cs, tt.wantCS) || strings.Contains(cs, "UseDevelopmentEmulator") {
				t.Errorf("TLS connection string: got %q, want prefix %q and no UseDevelopmentEmulator", cs, tt.wantCS)
			}
			if want := filepath.Join(dir, "servicebus", servicebus.GeneratedCertFile); cert != want {
				t.Errorf("certificate: got %q, want %q", cert, want)
			}
		})
	}
}
