package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times (100 on Linux).
const clockTicks = 100

// stackCPUBreakdown is the CPU time used so far by this process (the
// in-process stand-ins, the host, the bench), its reaped children (task
// shells and their ffmpeg) and its live children with their reaped
// children (Azurite, the handler), by part: "self", "reaped" and each live
// child by command name ("node" is Azurite, "handler" the function app).
// Sampled when no task runs, the difference between two samples is what the
// whole local stack spent in between, whatever else the machine was doing.
// Parts are missing where /proc or getrusage is.
func stackCPUBreakdown() map[string]time.Duration {
	out := map[string]time.Duration{}
	for _, w := range []struct {
		name string
		who  int
	}{{"self", syscall.RUSAGE_SELF}, {"reaped", syscall.RUSAGE_CHILDREN}} {
		var ru syscall.Rusage
		if err := syscall.Getrusage(w.who, &ru); err == nil {
			out[w.name] += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
	}
	self := os.Getpid()
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		ppid, ticks, ok := parseStat(string(b))
		if ok && ppid == self {
			name := "child"
			if i, j := strings.IndexByte(string(b), '('), strings.LastIndexByte(string(b), ')'); i >= 0 && j > i {
				name = string(b)[i+1 : j]
			}
			out[name] += time.Duration(ticks) * time.Second / clockTicks
		}
	}
	return out
}

// parseStat returns the parent pid and utime+stime+cutime+cstime (clock
// ticks) from one /proc/<pid>/stat line.
func parseStat(s string) (ppid int, ticks int64, ok bool) {
	// The command name is in parentheses and may hold spaces: fields
	// start after the last ')'.
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); ppid is field 4, utime..cstime 14..17.
	if len(f) < 15 {
		return 0, 0, false
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return 0, 0, false
	}
	for _, k := range f[11:15] {
		v, err := strconv.ParseInt(k, 10, 64)
		if err != nil {
			return 0, 0, false
		}
		ticks += v
	}
	return ppid, ticks, true
}

// startCPUProfile starts a pprof CPU profile of this process into file
// (nothing if file is empty) and returns the function that stops it; the
// function may be called more than once.
func startCPUProfile(file string) (stop func(), err error) {
	if file == "" {
		return func() {}, nil
	}
	f, err := os.Create(file)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return sync.OnceFunc(func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}), nil
}
