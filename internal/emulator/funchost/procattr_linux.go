package funchost

import "syscall"

// handlerAttr runs the handler in its own process group (Ctrl-C in a
// terminal reaches the host, which then stops the handler itself) and
// kills it if the host dies, as an Azure instance going away takes its
// worker with it.
func handlerAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
