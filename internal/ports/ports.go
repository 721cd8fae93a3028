// Package ports picks free TCP ports on the loopback interface, for
// components whose port must be known before they start (a child process
// given --port, a proxy in front of it, a handler told FUNCTIONS_CUSTOMHANDLER_PORT).
// A component that can listen itself should listen on 127.0.0.1:0 instead:
// a port picked here is free when Free returns and may be taken by another
// process before it is used.
//
// It imports nothing of ffpipe, so the stand-ins may use it
// (docs/architecture.md).
package ports

import (
	"fmt"
	"net"
)

// Free returns a TCP port on 127.0.0.1 that was free a moment ago.
func Free() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
