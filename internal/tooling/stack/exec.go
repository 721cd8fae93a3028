package stack

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ffpipe/ffpipe/internal/emulator/servicebus"
	"github.com/ffpipe/ffpipe/internal/emulator/servicebus/store"
	"github.com/ffpipe/ffpipe/internal/tooling/cpuset"
)

// Subprocess mode: with Options.Exec, the Service Bus, Batch, Functions
// host and Event Grid stand-ins run as `ffpipe emulator …` child processes
// on the stack's fixed ports and data directories, so a crash test can
// SIGKILL them for real. Each child is in its own process group; killing a
// component also kills every process it started (the handler, task
// processes), as losing the machine would.

// childReadyTimeout bounds the wait for a child's ready line.
const childReadyTimeout = 60 * time.Second

// readyLines are the stdout prefixes the `ffpipe emulator` commands print
// once they serve.
var readyLines = map[string]string{
	ServiceBus: "Service Bus emulator on",
	Batch:      "Batch emulator on",
	Host:       "Functions host on",
	EventGrid:  "Event Grid stand-in watching",
}

// child is one running component process.
type child struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has been waited for
	err  error         // Wait's result, valid after done
}

// LogDir is where subprocess components write their logs
// (<component>.log, appended across restarts) and Azurite's output when
// Options.AzuriteLog is unset in subprocess mode.
func (s *Stack) LogDir() string { return s.dir("logs") }

func (s *Stack) prepareExec() error {
	if err := os.MkdirAll(s.LogDir(), 0o755); err != nil {
		return err
	}
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return err
	}
	s.masterKey = base64.RawURLEncoding.EncodeToString(b[:])
	return s.writeServiceBusConfig()
}

// serviceBusConfig is the broker's entities: the transcode queue and the
// completion-events topic (FFPIPE_QUEUE and FFPIPE_EVENTS_TOPIC rename
// them) with its subscription "all".
func (s *Stack) serviceBusConfig() *store.Config {
	q := store.DefaultQueueConfig(store.DefaultQueueName)
	if v := s.opts.Settings["FFPIPE_QUEUE"]; v != "" {
		q.Name = v
	}
	q.LockDuration = s.opts.LockDuration
	q.MaxDeliveryCount = 10
	q.RequiresDuplicateDetection = true
	q.DuplicateDetectionHistoryTimeWindow = s.opts.DuplicateDetectionWindow
	q.DeadLetteringOnMessageExpiration = true
	events := store.DefaultEventsTopicConfig()
	if v := s.opts.Settings["FFPIPE_EVENTS_TOPIC"]; v != "" {
		events.Name = v
	}
	return &store.Config{Namespace: store.DefaultNamespace, Queues: []store.QueueConfig{q}, Topics: []store.TopicConfig{events}}
}

// writeServiceBusConfig writes the entities of the in-process broker as a
// Config.json in the official emulator's format.
func (s *Stack) writeServiceBusConfig() error {
	b, err := store.FormatConfig(s.serviceBusConfig())
	if err != nil {
		return err
	}
	return os.WriteFile(s.serviceBusConfigPath(), b, 0o644)
}

func (s *Stack) serviceBusConfigPath() string { return s.dir("servicebus-config.json") }

// sbConnectionString is the broker's connection string (same in both modes).
func (s *Stack) sbConnectionString() string {
	return fmt.Sprintf("Endpoint=sb://127.0.0.1:%d;SharedAccessKeyName=%s;SharedAccessKey=%s;UseDevelopmentEmulator=true;",
		s.opts.Ports.ServiceBus, servicebus.DefaultKeyName, servicebus.DefaultKey)
}

// eventGridEndpoint is where Event Grid delivers: the host's webhook, or
// what Options.EventGridEndpoint maps it to.
func (s *Stack) eventGridEndpoint() string {
	u := s.HostURL() + "/runtime/webhooks/eventgrid?functionName=OnBlobCreated"
	if s.opts.EventGridEndpoint != nil {
		u = s.opts.EventGridEndpoint(u)
	}
	return u
}

// childArgs is the command line of a component's process.
func (s *Stack) childArgs(name string) ([]string, error) {
	addr := func(p int) string { return "127.0.0.1:" + strconv.Itoa(p) }
	switch name {
	case ServiceBus:
		args := []string{"emulator", "servicebus", "--listen", addr(s.opts.Ports.ServiceBus), "--config", s.serviceBusConfigPath(),
			"--data", s.dir("servicebus")}
		if s.opts.ServiceBusTLSPort != 0 {
			args = append(args, "--tls", "--tls-listen", addr(s.opts.ServiceBusTLSPort))
		}
		if s.opts.InMemoryBroker {
			// --data then only holds the generated TLS certificate.
			args = append(args, "--in-memory")
		}
		return args, nil
	case Batch:
		return []string{"emulator", "batch", "--listen", addr(s.opts.Ports.Batch), "--data", s.dir("batch"),
			"--max-slots", strconv.Itoa(s.opts.Slots)}, nil
	case Host:
		args := []string{"emulator", "funchost", "--app", s.opts.AppDir, "--listen", addr(s.opts.Ports.Host),
			"--data", s.dir("funchost"), "--master-key", s.masterKey, "--restart-limit", "-1"}
		settings := s.hostSettings()
		keys := make([]string, 0, len(settings))
		for k := range settings {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			args = append(args, "--set", k+"="+settings[k])
		}
		return args, nil
	case EventGrid:
		cfg, err := s.Config()
		if err != nil {
			return nil, err
		}
		return []string{"emulator", "eventgrid", "--storage", s.StorageConnectionString(),
			"--containers", cfg.InputContainer, "--endpoint", s.eventGridEndpoint(), "--subscription", "onblobcreated",
			"--subject-begins-with", "/blobServices/default/containers/" + cfg.InputContainer + "/blobs/",
			"--data", s.dir("eventgrid")}, nil
	}
	return nil, fmt.Errorf("unknown component %q", name)
}

// startChild launches a component process and waits for its ready line.
func (s *Stack) startChild(ctx context.Context, name string) error {
	s.mu.Lock()
	if c := s.procs[name]; c != nil {
		s.mu.Unlock()
		return fmt.Errorf("start %s: already running (pid %d)", name, c.cmd.Process.Pid)
	}
	s.mu.Unlock()
	args, err := s.childArgs(name)
	if err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	logf, err := os.OpenFile(filepath.Join(s.LogDir(), name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	cmd := exec.Command(s.opts.Exec, args...)
	cmd.Stderr = logf
	cmd.Env = os.Environ()
	// Own process group (a kill reaches what it started), and killed when
	// the harness dies, so a test that panics or times out leaves no
	// stand-in running on a shared machine (the tooling is Linux-only).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", name, err)
	}
	start := cmd.Start
	if name == Batch && len(s.opts.NodeCPUs) > 0 {
		start = func() error { return cpuset.Start(cmd, s.opts.NodeCPUs) }
	}
	if err := start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{cmd: cmd, done: make(chan struct{})}
	ready := make(chan struct{})
	go func() {
		// stdout carries the ready line and, for Service Bus, the
		// connection string: read it, never copy it into the log.
		sc := bufio.NewScanner(stdout)
		signalled := false
		for sc.Scan() {
			if !signalled && strings.HasPrefix(sc.Text(), readyLines[name]) {
				close(ready)
				signalled = true
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		c.err = cmd.Wait()
		logf.Close()
		close(c.done)
	}()
	s.mu.Lock()
	s.procs[name] = c
	s.mu.Unlock()
	fmt.Fprintf(logf, "--- stack: started %s pid %d at %s\n", name, cmd.Process.Pid, time.Now().UTC().Format(time.RFC3339Nano))

	t := time.NewTimer(childReadyTimeout)
	defer t.Stop()
	select {
	case <-ready:
		s.log.Info("component started", "component", name, "pid", cmd.Process.Pid)
		return nil
	case <-c.done:
		s.mu.Lock()
		delete(s.procs, name)
		s.mu.Unlock()
		return fmt.Errorf("start %s: exited before ready: %v (see %s)", name, c.err, filepath.Join(s.LogDir(), name+".log"))
	case <-ctx.Done():
		err = ctx.Err()
	case <-t.C:
		err = errors.New("not ready in time")
	}
	_ = s.stopChild(name, true)
	return fmt.Errorf("start %s: %w (see %s)", name, err, filepath.Join(s.LogDir(), name+".log"))
}

// stopChild stops a component process: SIGKILL to it and every process
// it started (kill), or SIGTERM and a grace period (then SIGKILL).
func (s *Stack) stopChild(name string, kill bool) error {
	s.mu.Lock()
	c := s.procs[name]
	delete(s.procs, name)
	s.mu.Unlock()
	if c == nil {
		return nil
	}
	pid := c.cmd.Process.Pid
	if kill {
		desc := Descendants(pid)
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		for _, d := range desc {
			killTree(d)
		}
		<-c.done
		return nil
	}
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	t := time.NewTimer(15 * time.Second)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C:
		desc := Descendants(pid)
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		for _, d := range desc {
			killTree(d)
		}
		<-c.done
	}
	return nil
}

// killTree SIGKILLs a process and its process group (task processes and
// the handler lead their own groups).
func killTree(pid int) {
	_ = syscall.Kill(pid, syscall.SIGKILL)
	if pgid, err := syscall.Getpgid(pid); err == nil && pgid == pid {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
}

// Pid is the process id of a running component (0 when stopped or
// in-process). Azurite's is its node process.
func (s *Stack) Pid(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if name == Azurite {
		if s.az == nil {
			return 0
		}
		return s.az.Pid()
	}
	if c := s.procs[name]; c != nil {
		return c.cmd.Process.Pid
	}
	return 0
}

// Subprocess reports whether the stand-ins run as child processes.
func (s *Stack) Subprocess() bool { return s.opts.Exec != "" }

// childHandlerPid finds the handler process among the host's children.
func (s *Stack) childHandlerPid() int {
	host := s.Pid(Host)
	if host == 0 {
		return 0
	}
	for _, p := range Processes() {
		if p.PPid == host {
			return p.Pid
		}
	}
	return 0
}

// KillHandler SIGKILLs the custom handler process (the host restarts it).
// It returns the pid killed, 0 if no handler was running.
func (s *Stack) KillHandler() int {
	pid := s.HandlerPid()
	if pid > 0 {
		killTree(pid)
	}
	return pid
}

// TaskProcesses lists the running processes named comm (e.g. "ffmpeg")
// that the Batch stand-in started: descendants of its process in
// subprocess mode, of this process otherwise.
func (s *Stack) TaskProcesses(comm string) []int {
	root := s.Pid(Batch)
	if root == 0 {
		if s.Subprocess() {
			return nil
		}
		root = os.Getpid()
	}
	var out []int
	for _, pid := range Descendants(root) {
		if c, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err == nil && strings.TrimSpace(string(c)) == comm {
			out = append(out, pid)
		}
	}
	return out
}

// Proc is one entry of the process table.
type Proc struct {
	Pid, PPid int
	Comm      string
}

// Processes reads the process table from /proc (Linux). Unreadable
// entries (processes that just exited) are skipped.
func Processes() []Proc {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []Proc
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid …; comm may hold spaces and parentheses.
		st := string(b)
		open, end := strings.IndexByte(st, '('), strings.LastIndexByte(st, ')')
		if open < 0 || end < open {
			continue
		}
		fields := strings.Fields(st[end+1:])
		if len(fields) < 2 {
			continue
		}
		ppid, err := strconv.Atoi(fields[1])
		if err != nil {
			continue
		}
		out = append(out, Proc{Pid: pid, PPid: ppid, Comm: st[open+1 : end]})
	}
	return out
}

// Descendants returns every process below pid (children first).
func Descendants(pid int) []int {
	procs := Processes()
	kids := map[int][]int{}
	for _, p := range procs {
		kids[p.PPid] = append(kids[p.PPid], p.Pid)
	}
	var out []int
	queue := []int{pid}
	seen := map[int]bool{pid: true}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, k := range kids[p] {
			if !seen[k] {
				seen[k] = true
				out = append(out, k)
				queue = append(queue, k)
			}
		}
	}
	return out
}
