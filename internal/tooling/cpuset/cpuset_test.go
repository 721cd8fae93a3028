package cpuset

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestParseString(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Set
		str  string
	}{
		{"0", Set{0}, "0"},
		{"0-3", Set{0, 1, 2, 3}, "0-3"},
		{"3,0-1,1", Set{0, 1, 3}, "0-1,3"},
		{" 2-2 , 7\n", Set{2, 7}, "2,7"},
	} {
		got, err := Parse(tc.in)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("Parse(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
		if s := got.String(); s != tc.str {
			t.Errorf("String(%v) = %q, want %q", got, s, tc.str)
		}
	}
	for _, bad := range []string{"", "a", "3-1", "-1", "1-x"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q): got no error", bad)
		}
	}
}

func TestSplit(t *testing.T) {
	n, c, err := Split(Set{0, 1})
	if err != nil || !slices.Equal(n, Set{0}) || !slices.Equal(c, Set{1}) {
		t.Errorf("Split(0-1) = %v %v %v, want 0 | 1", n, c, err)
	}
	n, c, _ = Split(Set{0, 1, 2, 3, 4})
	if !slices.Equal(n, Set{0, 1}) || !slices.Equal(c, Set{2, 3, 4}) {
		t.Errorf("Split(0-4) = %v | %v, want 0-1 | 2-4", n, c)
	}
	if _, _, err := Split(Set{0}); err == nil {
		t.Error("Split of one cpu: got no error")
	}
}

// allowedList reads Cpus_allowed_list of a process from /proc.
func allowedList(t *testing.T, pid string) Set {
	t.Helper()
	out, err := exec.Command("grep", "Cpus_allowed_list", filepath.Join("/proc", pid, "status")).Output()
	if err != nil {
		t.Fatal(err)
	}
	_, v, _ := strings.Cut(string(out), ":")
	s, err := Parse(v)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStartAndPin(t *testing.T) {
	all, err := Allowed()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) < 2 {
		t.Skipf("needs 2 cpus, this process may use %s", all)
	}
	node, cloud, _ := Split(all)

	// A child started on node has node's mask, and so do its children.
	cmd := exec.Command("/bin/sh", "-c", "grep Cpus_allowed_list /proc/self/status; sh -c 'grep Cpus_allowed_list /proc/self/status'")
	var out strings.Builder
	cmd.Stdout = &out
	if err := Start(cmd, node); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %q", out.String())
	}
	for _, l := range lines {
		_, v, _ := strings.Cut(l, ":")
		if got, _ := Parse(v); !slices.Equal(got, node) {
			t.Errorf("child allowed %v, want %v", got, node)
		}
	}
	// A child with Pdeathsig outlives Start: the forking thread lives on.
	long := exec.Command("sleep", "30")
	long.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := Start(long, node); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = long.Wait(); close(exited) }()
	t.Cleanup(func() { _ = long.Process.Kill(); <-exited })
	runtime.GC()
	select {
	case <-exited:
		t.Fatalf("child with Pdeathsig died after Start: %v", waitErr)
	case <-time.After(time.Second): // a dead thread kills it at once
	}
	if got := allowedList(t, strconv.Itoa(long.Process.Pid)); !slices.Equal(got, node) {
		t.Errorf("child allowed %v, want %v", got, node)
	}
	// Starting a pinned child does not change this process.
	if got := allowedList(t, "self"); !slices.Equal(got, all) {
		t.Errorf("after Start this process may use %v, want %v", got, all)
	}

	// PinProcess pins every thread; a plain child then inherits it.
	if err := PinProcess(cloud); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = PinProcess(all) })
	tids, _ := filepath.Glob("/proc/self/task/[0-9]*")
	for _, p := range tids {
		tid, _ := strconv.Atoi(filepath.Base(p))
		if got, err := Of(tid); err == nil && !slices.Equal(got, cloud) {
			t.Errorf("thread %d may use %v, want %v", tid, got, cloud)
		}
	}
	b, err := exec.Command("grep", "Cpus_allowed_list", "/proc/self/status").Output()
	if err != nil {
		t.Fatal(err)
	}
	_, v, _ := strings.Cut(string(b), ":")
	if got, _ := Parse(v); !slices.Equal(got, cloud) {
		t.Errorf("plain child after PinProcess may use %v, want %v", got, cloud)
	}
}
