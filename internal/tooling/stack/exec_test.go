package stack_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ffpipe/ffpipe/internal/tooling/stack"
	"github.com/ffpipe/ffpipe/internal/tooling/stack/stacktest"
)

// TestSubprocessKill runs the stand-ins as child processes, SIGKILLs each
// one (and the handler), and checks that it is really gone and comes back
// on the same address.
func TestSubprocessKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole stack")
	}
	bin := stacktest.Binary(t)
	s := stacktest.Start(t, func(o *stack.Options) { o.Exec = bin })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if !s.Subprocess() {
		t.Fatal("Subprocess() = false with Options.Exec set")
	}
	for _, name := range []string{stack.ServiceBus, stack.Batch, stack.Host, stack.EventGrid, stack.Azurite} {
		pid := s.Pid(name)
		if pid == 0 {
			t.Fatalf("%s: Pid() = 0 while running", name)
		}
		var handler int
		if name == stack.Host {
			handler = s.HandlerPid()
			if handler == 0 {
				t.Fatal("HandlerPid() = 0 while the host runs")
			}
		}
		if err := s.Stop(name, true); err != nil {
			t.Fatalf("kill %s: %v", name, err)
		}
		if alive(pid) {
			t.Errorf("%s: pid %d still alive after kill", name, pid)
		}
		if handler != 0 {
			waitGone(ctx, t, handler)
		}
		if err := s.Restart(ctx, name); err != nil {
			t.Fatalf("restart %s: %v", name, err)
		}
		if got := s.Pid(name); got == 0 || got == pid {
			t.Errorf("%s: pid after restart %d, want a new non-zero pid (old %d)", name, got, pid)
		}
	}
	// The handler alone: the host starts a new one.
	old := s.KillHandler()
	if old == 0 {
		t.Fatal("KillHandler: no handler running")
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if p := s.HandlerPid(); p != 0 && p != old {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("no new handler after KillHandler")
		case <-tick.C:
		}
	}
}

// alive reports whether pid runs; a zombie (killed, not yet reaped by
// whoever inherited it) counts as gone.
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	st := string(b)
	i := strings.LastIndexByte(st, ')')
	return i < 0 || !strings.HasPrefix(strings.TrimSpace(st[i+1:]), "Z")
}

func waitGone(ctx context.Context, t *testing.T, pid int) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for alive(pid) {
		select {
		case <-ctx.Done():
			t.Fatalf("pid %d still alive", pid)
		case <-tick.C:
		}
	}
}
