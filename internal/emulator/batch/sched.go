package batch

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

type killReason int

const (
	killNone      killReason = iota
	killShutdown             // server Close: state stays "running", requeued on restart
	killRequeue              // node loss, pool delete or shrink with requeue
	killTerminate            // terminate task/job or shrink with terminate
	killDelete               // task or job deleted
)

// run is one attempt of a task on a node.
type run struct {
	t       *taskEntry
	n       *node
	slots   int // slots held on n
	spec    taskSpec
	jobID   string
	taskDir string
	env     []string
	wall    time.Duration

	once   sync.Once
	killed chan struct{}
	reason killReason
}

func (r *run) kill(reason killReason) {
	r.once.Do(func() {
		r.reason = reason
		close(r.killed)
	})
}

func (r *run) killReason() killReason {
	select {
	case <-r.killed:
		return r.reason
	default:
		return killNone
	}
}

func (s *Server) scheduler() {
	for {
		select {
		case <-s.stop:
			return
		case <-s.kick:
			s.schedule()
		}
	}
}

// schedule assigns queued tasks to free slots, highest job priority first,
// each job's queue in order.
func (s *Server) schedule() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	jobs := make([]*jobEntry, 0, len(s.jobList))
	for _, j := range s.jobList {
		if j.w.State == stateActive && j.head < len(j.queue) {
			jobs = append(jobs, j)
		}
	}
	sort.SliceStable(jobs, func(a, b int) bool { return prio(jobs[a]) > prio(jobs[b]) })
	for _, j := range jobs {
		if j.w.PoolInfo == nil {
			continue
		}
		p := s.pools[lower(j.w.PoolInfo.PoolID)]
		if p == nil {
			continue
		}
		maxPar := -1
		if j.w.MaxParallelTasks != nil {
			maxPar = int(*j.w.MaxParallelTasks)
		}
		for i := j.head; i < len(j.queue); i++ {
			t := j.queue[i]
			if !t.queued {
				continue
			}
			if maxPar >= 0 && j.running >= maxPar {
				break
			}
			if t.slots() > p.slotsPerNode() {
				s.warnUnschedulableLocked(t, p)
				continue // never runs, as in Batch
			}
			n, need := pickNode(p, t)
			if n == nil {
				if free, _ := pickNode(p, nil); free == nil {
					break
				}
				continue // needs more slots than any node has free
			}
			t.queued = false
			s.startRunLocked(t, n, need)
		}
		for j.head < len(j.queue) && !j.queue[j.head].queued {
			j.queue[j.head] = nil
			j.head++
		}
		if j.head == len(j.queue) {
			j.queue, j.head = j.queue[:0], 0
		}
	}
}

func prio(j *jobEntry) int32 {
	if j.w.Priority != nil {
		return *j.w.Priority
	}
	return 0
}

// pickNode finds a ready node with enough free slots for t (nil t: one
// slot): pack fills the first node, spread (the default) picks the node with
// the most free slots. need is the slots t takes there: its requiredSlots,
// or all of a node that MaxSlots left smaller than taskSlotsPerNode (the
// task then runs alone on it).
func pickNode(p *poolEntry, t *taskEntry) (n *node, need int) {
	pack := p.w.TaskSchedulingPolicy != nil && strings.EqualFold(p.w.TaskSchedulingPolicy.NodeFillType, "pack")
	var best *node
	bestNeed := 0
	for _, n := range p.nodes {
		need := 1
		if t != nil {
			need = min(t.slots(), n.slots)
		}
		if !n.ready || n.leaving || n.slots-n.used < need {
			continue
		}
		if pack {
			return n, need
		}
		if best == nil || n.slots-n.used > best.slots-best.used {
			best, bestNeed = n, need
		}
	}
	return best, bestNeed
}

// warnUnschedulableLocked logs, once per task, a task whose requiredSlots
// exceed the pool's taskSlotsPerNode. Batch accepts such a task and never
// runs it (docs/batch-standin.md, "requiredSlots").
func (s *Server) warnUnschedulableLocked(t *taskEntry, p *poolEntry) {
	if t.warnedSlots {
		return
	}
	t.warnedSlots = true
	s.log.Warn("batch task can never run: requiredSlots exceeds the pool's taskSlotsPerNode",
		"job", t.job.w.ID, "task", t.w.ID, "requiredSlots", t.slots(), "pool", p.w.ID, "taskSlotsPerNode", p.slotsPerNode())
}

// startRunLocked moves t to running on n and starts its process.
func (s *Server) startRunLocked(t *taskEntry, n *node, need int) {
	at := now()
	j := t.job
	t.setState(stateRunning, at)
	ei := taskExecutionInfo{}
	if t.w.ExecutionInfo != nil {
		ei = *t.w.ExecutionInfo
	}
	ei.StartTime = &at
	ei.EndTime, ei.ExitCode, ei.Result, ei.FailureInfo = nil, nil, "", nil
	t.w.ExecutionInfo = &ei
	rel := filepath.Join("workitems", j.w.ID, "job-1", t.w.ID)
	nodeURL := s.url + "/pools/" + n.pool.w.ID + "/nodes/" + n.w.ID
	t.w.NodeInfo = &taskNodeInfo{
		AffinityID: n.w.AffinityID, NodeURL: nodeURL, PoolID: n.pool.w.ID, NodeID: n.w.ID,
		TaskRootDirectory: filepath.ToSlash(rel), TaskRootDirectoryURL: nodeURL + "/files/" + filepath.ToSlash(rel),
	}
	if old := s.timers[t]; old != nil {
		old.Stop()
		delete(s.timers, t)
	}
	oldDir := t.dir
	t.dir = filepath.Join(n.dir, rel)
	t.node = n
	n.used += need
	n.tasks[t] = struct{}{}
	n.w.State = stateRunning
	n.w.TotalTasksRun++
	j.running++
	r := &run{t: t, n: n, slots: need, spec: t.w.taskSpec, jobID: j.w.ID, taskDir: t.dir, killed: make(chan struct{})}
	if t.w.Constraints != nil && t.w.Constraints.MaxWallClockTime != "" {
		if d, unlimited, err := parseDuration(t.w.Constraints.MaxWallClockTime); err == nil && !unlimited {
			r.wall = d
		}
	}
	r.env = s.baseEnvLocked(n, j.w.ID, t.w.ID)
	r.env = append(r.env, "AZ_BATCH_TASK_DIR="+t.dir, "AZ_BATCH_TASK_WORKING_DIR="+filepath.Join(t.dir, "wd"))
	r.env = appendSettings(r.env, j.w.CommonEnvironmentSettings)
	r.env = appendSettings(r.env, t.w.EnvironmentSettings)
	t.run = r
	s.runs[r] = struct{}{}
	s.persistTask(t, false)
	s.log.Info("batch task running", "job", j.w.ID, "task", t.w.ID, "node", n.w.ID,
		"retryCount", ei.RetryCount, "requeueCount", ei.RequeueCount)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if oldDir != "" && oldDir != t.dir {
			_ = os.RemoveAll(oldDir)
		}
		s.execTask(r)
	}()
}

// outcome of one attempt, before it is applied to the task.
type outcome struct {
	exitCode *int32
	failure  *failureInfo
	retry    bool // non-zero exit with retries left
}

func (s *Server) execTask(r *run) {
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	defer func() {
		if r.killReason() == killDelete {
			_ = os.RemoveAll(r.taskDir)
		}
	}()
	go func() {
		select {
		case <-r.killed:
			cancel()
		case <-ctx.Done():
		}
	}()
	var out outcome
	wd := filepath.Join(r.taskDir, "wd")
	_ = os.RemoveAll(r.taskDir)
	if err := os.MkdirAll(wd, 0o755); err != nil {
		out.failure = &failureInfo{Category: "servererror", Code: "ResourceDirectoryCreateFailed", Message: err.Error()}
	} else if fi := s.downloadResourceFiles(ctx, wd, r.spec.ResourceFiles); fi != nil {
		out.failure = fi
	} else {
		res := s.execProcess(ctx, r.spec.CommandLine, wd, r.env,
			filepath.Join(r.taskDir, "stdout.txt"), filepath.Join(r.taskDir, "stderr.txt"), r.wall, r.killed)
		if res.started {
			code := int32(res.exitCode)
			out.exitCode = &code
		}
		switch {
		case res.failure != nil:
			out.failure = res.failure
		case res.timedOut:
			out.failure = &failureInfo{Category: "usererror", Code: "MaxWallClockTimeExpiry",
				Message: "The task exceeded its maxWallClockTime and was terminated",
				Details: []nameValue{{Name: "MaxWallClockTime", Value: r.spec.Constraints.MaxWallClockTime}}}
		case r.killReason() == killTerminate:
			out.failure = &failureInfo{Category: "usererror", Code: "TaskEnded", Message: "The task was terminated by a user request"}
		case res.exitCode != 0:
			out.failure = &failureInfo{Category: "usererror", Code: "FailureExitCode",
				Message: "The task exited with an exit code representing a failure",
				Details: []nameValue{{Name: "Message", Value: fmt.Sprintf("The task exited with exit code %d", res.exitCode)}}}
			out.retry = true
		}
	}
	switch r.killReason() {
	case killShutdown:
		s.mu.Lock()
		delete(s.runs, r)
		s.mu.Unlock()
		return
	case killRequeue, killDelete:
		s.finishRun(r, out, false)
		return
	}
	if out.retry && s.retriesLeft(r.t) {
		s.finishRun(r, out, true)
		return
	}
	// Final attempt: upload outputs, then complete.
	success := out.failure == nil
	if fi := s.uploadOutputFiles(s.ctx, r, success); fi != nil && r.killReason() != killDelete {
		out.failure = fi
	}
	s.finishRun(r, out, false)
}

func (s *Server) retriesLeft(t *taskEntry) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	max := int32(0)
	if t.w.Constraints != nil && t.w.Constraints.MaxTaskRetryCount != nil {
		max = *t.w.Constraints.MaxTaskRetryCount
	}
	if max == -1 {
		return true
	}
	return t.w.ExecutionInfo != nil && t.w.ExecutionInfo.RetryCount < max
}

// finishRun releases the slot and applies the attempt's result.
func (s *Server) finishRun(r *run, out outcome, retry bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.runs, r)
	t, n := r.t, r.n
	if _, ok := n.tasks[t]; ok {
		delete(n.tasks, t)
		n.used -= r.slots
		if len(n.tasks) == 0 && n.w.State == stateRunning {
			n.w.State = "idle"
		}
		if out.failure == nil && out.exitCode != nil && *out.exitCode == 0 {
			n.w.TotalTasksSucceeded++
		}
		if n.leaving && len(n.tasks) == 0 && !s.closed {
			s.detachNodeLocked(n)
		}
	}
	t.job.running--
	s.poke()
	if s.closed || t.deleted || t.run != r {
		return
	}
	t.run = nil
	t.node = nil
	at := now()
	switch {
	case r.killReason() == killDelete:
		return // its job is being deleted
	case r.killReason() == killRequeue:
		s.requeueLocked(t, at)
		s.log.Info("batch task requeued", "job", r.jobID, "task", t.w.ID, "requeueCount", t.w.ExecutionInfo.RequeueCount)
		return
	case retry:
		ei := *t.w.ExecutionInfo
		ei.RetryCount++
		ei.LastRetryTime = &at
		ei.ExitCode = out.exitCode
		t.w.ExecutionInfo = &ei
		t.setState(stateActive, at)
		t.job.enqueue(t)
		s.persistTask(t, false)
		s.log.Info("batch task retrying", "job", r.jobID, "task", t.w.ID, "exitCode", derefInt(out.exitCode), "retryCount", ei.RetryCount)
		return
	}
	s.completeLocked(t, out.exitCode, out.failure, at)
}

// completeLocked moves a task to completed with its result.
func (s *Server) completeLocked(t *taskEntry, exitCode *int32, fail *failureInfo, at time.Time) {
	ei := taskExecutionInfo{}
	if t.w.ExecutionInfo != nil {
		ei = *t.w.ExecutionInfo
	}
	ei.EndTime = &at
	ei.ExitCode = exitCode
	ei.FailureInfo = fail
	ei.Result = "success"
	if fail != nil {
		ei.Result = "failure"
	}
	t.w.ExecutionInfo = &ei
	t.setState(stateCompleted, at)
	t.queued = false
	s.persistTask(t, false)
	attrs := []any{"job", t.job.w.ID, "task", t.w.ID, "result", ei.Result, "exitCode", derefInt(exitCode),
		"retryCount", ei.RetryCount, "requeueCount", ei.RequeueCount}
	if fail != nil {
		attrs = append(attrs, "failureCode", fail.Code)
	}
	s.log.Info("batch task completed", attrs...)
	s.scheduleRetentionLocked(t)
	s.checkJobCompleteLocked(t.job)
}

func derefInt(p *int32) any {
	if p == nil {
		return nil
	}
	return *p
}

// scheduleRetentionLocked deletes a completed task's directory after its
// retentionTime (default 7 days).
func (s *Server) scheduleRetentionLocked(t *taskEntry) {
	if t.dir == "" || s.closed {
		return
	}
	keep := 7 * 24 * time.Hour
	if t.w.Constraints != nil && t.w.Constraints.RetentionTime != "" {
		d, unlimited, err := parseDuration(t.w.Constraints.RetentionTime)
		if err != nil || unlimited {
			return
		}
		keep = d
	}
	end := now()
	if t.w.ExecutionInfo != nil && t.w.ExecutionInfo.EndTime != nil {
		end = *t.w.ExecutionInfo.EndTime
	}
	wait := time.Until(end.Add(keep))
	if old := s.timers[t]; old != nil {
		old.Stop()
	}
	var timer *time.Timer
	timer = time.AfterFunc(max(wait, 0), func() {
		s.mu.Lock()
		if s.closed || s.timers[t] != timer || t.w.State != stateCompleted {
			s.mu.Unlock()
			return
		}
		delete(s.timers, t)
		dir := t.dir
		t.dir = ""
		if !t.deleted {
			s.persistTask(t, false)
		}
		s.mu.Unlock()
		_ = os.RemoveAll(dir)
	})
	s.timers[t] = timer
}

// checkJobCompleteLocked terminates a terminatejob job once no task is
// active or running.
func (s *Server) checkJobCompleteLocked(j *jobEntry) {
	if j.w.State != stateActive || !strings.EqualFold(j.w.OnAllTasksComplete, "terminatejob") {
		return
	}
	for _, t := range j.tasks {
		if t.w.State != stateCompleted {
			return
		}
	}
	s.terminateJobLocked(j, "AllTasksCompleted")
}

func (s *Server) terminateJobLocked(j *jobEntry, reason string) {
	at := now()
	prev := j.w.StateTransitionTime
	j.w.PreviousState = j.w.State
	j.w.PreviousStateTransitionTime = &prev
	j.w.State = stateCompleted
	j.w.StateTransitionTime = at
	ei := jobExecutionInfo{}
	if j.w.ExecutionInfo != nil {
		ei = *j.w.ExecutionInfo
	}
	ei.EndTime = &at
	ei.TerminateReason = reason
	j.w.ExecutionInfo = &ei
	for _, t := range j.tasks {
		if t.run != nil {
			t.run.kill(killTerminate)
		}
	}
	s.persistJob(j, false)
	s.log.Info("batch job terminated", "job", j.w.ID, "reason", reason)
}

type procResult struct {
	started  bool
	exitCode int
	timedOut bool
	failure  *failureInfo // could not launch
}

// execProcess runs a command line (no shell) in dir with stdout and stderr
// redirected to files. The process gets its own process group so a kill
// also reaches the children of /bin/sh -c.
func (s *Server) execProcess(ctx context.Context, cmdline, dir string, env []string, stdoutPath, stderrPath string, wall time.Duration, killed <-chan struct{}) procResult {
	argv, err := splitCommandLine(cmdline)
	if err == nil && s.execDisabled {
		err = errors.New("process execution is disabled")
	}
	if err != nil {
		return procResult{failure: &failureInfo{Category: "usererror", Code: "CommandLaunchFailed", Message: "bad command line: " + err.Error()}}
	}
	env = append([]string{"HOME=" + dir}, env...)
	path, err := lookPath(argv[0], dir, env)
	if err != nil {
		return procResult{failure: &failureInfo{Category: "usererror", Code: "CommandProgramNotFound",
			Message: fmt.Sprintf("The program %q was not found: %v", argv[0], err)}}
	}
	stdout, err := os.Create(stdoutPath)
	if err != nil {
		return procResult{failure: &failureInfo{Category: "servererror", Code: "ResourceFileCreateFailed", Message: err.Error()}}
	}
	defer stdout.Close()
	stderr, err := os.Create(stderrPath)
	if err != nil {
		return procResult{failure: &failureInfo{Category: "servererror", Code: "ResourceFileCreateFailed", Message: err.Error()}}
	}
	defer stderr.Close()
	cmd := &exec.Cmd{Path: path, Args: argv, Dir: dir, Env: env, Stdout: stdout, Stderr: stderr,
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true}}
	if err := cmd.Start(); err != nil {
		return procResult{failure: &failureInfo{Category: "usererror", Code: "CommandLaunchFailed", Message: err.Error()}}
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var timeout <-chan time.Time
	if wall > 0 {
		tm := time.NewTimer(wall)
		defer tm.Stop()
		timeout = tm.C
	}
	res := procResult{started: true}
	killGroup := func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	select {
	case <-done:
	case <-timeout:
		res.timedOut = true
		killGroup()
		<-done
	case <-killed:
		killGroup()
		<-done
	case <-ctx.Done():
		killGroup()
		<-done
	}
	// Reap stragglers still in the group (background children).
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	res.exitCode = cmd.ProcessState.ExitCode()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		res.exitCode = 128 + int(ws.Signal())
	}
	return res
}

// lookPath resolves name like a shell would, using PATH from env.
func lookPath(name, dir string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		p := name
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		if err := executable(p); err != nil {
			return "", err
		}
		return p, nil
	}
	pathEnv := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			pathEnv = v
		}
	}
	for _, d := range filepath.SplitList(pathEnv) {
		if d == "" {
			d = "."
		}
		p := filepath.Join(d, name)
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		if executable(p) == nil {
			return p, nil
		}
	}
	return "", errors.New("not found in PATH")
}

func executable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return fs.ErrPermission
	}
	return nil
}
