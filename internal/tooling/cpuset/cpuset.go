// Package cpuset pins processes to CPUs (sched_setaffinity), so that a
// benchmark can split one machine into a "node" (the cores that run a
// Batch node's tasks and file transfers) and "the cloud" (everything Azure
// runs elsewhere: storage, Service Bus, the Functions host).
//
// Affinity is per thread on Linux and a new thread or process inherits the
// mask of the thread that creates it. PinProcess therefore sets the mask of
// every thread of this process, and Start forks the child from a locked OS
// thread whose mask is the child's, so that the child has its mask before it
// runs its first instruction and every thread and process it creates
// inherits it.
package cpuset

import (
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Set is a set of CPU numbers, sorted and without duplicates.
type Set []int

// Parse reads a list such as "0-2,5" (the format of taskset -c and of
// /sys/devices/system/cpu/online).
func Parse(s string) (Set, error) {
	var out Set
	for part := range strings.SplitSeq(strings.TrimSpace(s), ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(strings.TrimSpace(lo))
		if err != nil || a < 0 {
			return nil, fmt.Errorf("cpu list %q: bad cpu %q", s, lo)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(strings.TrimSpace(hi)); err != nil || b < a {
				return nil, fmt.Errorf("cpu list %q: bad range %q", s, part)
			}
		}
		for c := a; c <= b; c++ {
			out = append(out, c)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// String formats the set as Parse reads it.
func (s Set) String() string {
	var b strings.Builder
	for i := 0; i < len(s); {
		j := i
		for j+1 < len(s) && s[j+1] == s[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(s[i]))
		if j > i {
			b.WriteString("-" + strconv.Itoa(s[j]))
		}
		i = j + 1
	}
	return b.String()
}

func (s Set) mask() (*unix.CPUSet, error) {
	if len(s) == 0 {
		return nil, errors.New("empty cpu set")
	}
	var m unix.CPUSet
	m.Zero()
	for _, c := range s {
		m.Set(c)
	}
	return &m, nil
}

// Allowed is the set this thread may run on now.
func Allowed() (Set, error) { return Of(0) }

// Split divides cpus into a node part and a cloud part: half each, the node
// taking the lower half (at least one CPU each). It fails on fewer than 2.
func Split(cpus Set) (node, cloud Set, err error) {
	if len(cpus) < 2 {
		return nil, nil, fmt.Errorf("split %s: need at least 2 cpus", cpus)
	}
	n := len(cpus) / 2
	return slices.Clone(cpus[:n]), slices.Clone(cpus[n:]), nil
}

// Of returns the affinity of thread (or process) tid.
func Of(tid int) (Set, error) {
	var m unix.CPUSet
	if err := unix.SchedGetaffinity(tid, &m); err != nil {
		return nil, fmt.Errorf("sched_getaffinity %d: %w", tid, err)
	}
	var out Set
	for c := range 1024 {
		if m.IsSet(c) {
			out = append(out, c)
		}
	}
	return out, nil
}

// PinProcess sets the affinity of every thread of this process to s.
// Threads created afterwards inherit it from their creator.
func PinProcess(s Set) error {
	m, err := s.mask()
	if err != nil {
		return err
	}
	// New threads may appear while we go: repeat until a pass finds every
	// thread already pinned.
	for range 10 {
		tids, err := filepath.Glob("/proc/self/task/[0-9]*")
		if err != nil {
			return err
		}
		changed := false
		for _, p := range tids {
			tid, err := strconv.Atoi(filepath.Base(p))
			if err != nil {
				continue
			}
			cur, err := Of(tid)
			if err == nil && slices.Equal(cur, s) {
				continue
			}
			if err := unix.SchedSetaffinity(tid, m); err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("pin thread %d to %s: %w", tid, s, err)
			}
			changed = true
		}
		if !changed {
			return nil
		}
	}
	return fmt.Errorf("pin process to %s: threads kept appearing", s)
}

// Start starts cmd with affinity s: the fork happens on a locked OS thread
// that has s as its mask, so the child starts with it. The thread gets its
// old mask back before it is unlocked, and it lives on: a child started
// with Pdeathsig dies when the thread that forked it exits, so the thread
// must not be thrown away.
func Start(cmd *exec.Cmd, s Set) error {
	m, err := s.mask()
	if err != nil {
		return err
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		var old unix.CPUSet
		if err := unix.SchedGetaffinity(0, &old); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("read affinity: %w", err)
			return
		}
		if err := unix.SchedSetaffinity(0, m); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("pin to %s: %w", s, err)
			return
		}
		err := cmd.Start()
		if rerr := unix.SchedSetaffinity(0, &old); rerr != nil {
			// The thread keeps the child's mask: let it die with this
			// goroutine rather than run other goroutines there.
			errc <- errors.Join(err, fmt.Errorf("restore affinity: %w", rerr))
			return
		}
		runtime.UnlockOSThread()
		errc <- err
	}()
	return <-errc
}
