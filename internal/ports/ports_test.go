package ports

import (
	"net"
	"strconv"
	"testing"
)

func TestFree(t *testing.T) {
	p, err := Free()
	if err != nil {
		t.Fatal(err)
	}
	if p <= 0 || p > 65535 {
		t.Fatalf("Free() = %d, want a port number", p)
	}
	// The port can be listened on at once.
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
	if err != nil {
		t.Fatalf("listen on the free port %d: %v", p, err)
	}
	l.Close()
}
