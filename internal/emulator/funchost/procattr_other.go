//go:build !linux

package funchost

import "syscall"

// handlerAttr runs the handler in its own process group (Ctrl-C in a
// terminal reaches the host, which then stops the handler itself).
func handlerAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
