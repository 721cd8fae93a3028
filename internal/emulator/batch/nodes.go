package batch

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

type node struct {
	pool        *poolEntry
	w           nodeWire
	dir         string // AZ_BATCH_NODE_ROOT_DIR
	slots       int
	used        int
	ready       bool // may take tasks
	leaving     bool // removed once its tasks end
	tasks       map[*taskEntry]struct{}
	startCancel context.CancelFunc
}

func (p *poolEntry) slotsPerNode() int {
	if p.w.TaskSlotsPerNode != nil && *p.w.TaskSlotsPerNode > 0 {
		return int(*p.w.TaskSlotsPerNode)
	}
	return 1
}

func (p *poolEntry) autoScale() bool { return p.w.EnableAutoScale != nil && *p.w.EnableAutoScale }

var constAssignRE = regexp.MustCompile(`^\$(TargetDedicatedNodes|TargetLowPriorityNodes|NodeDeallocationOption)\s*=\s*([A-Za-z0-9]+)$`)

// evalFormula interprets an autoscale formula locally. A formula made only of
// constant assignments ($TargetDedicatedNodes = 2; ...) is evaluated; any
// other formula (metrics, samples, functions) scales the pool to as many
// nodes as MaxSlots allows, so queued work always runs.
func (s *Server) evalFormula(p *poolEntry, formula string) (dedicated, lowPriority int, results string) {
	var lines []string
	for _, l := range strings.Split(formula, "\n") {
		if i := strings.Index(l, "//"); i >= 0 {
			l = l[:i]
		}
		lines = append(lines, l)
	}
	trivial := true
	dealloc := "requeue"
	for _, st := range strings.Split(strings.Join(lines, "\n"), ";") {
		st = strings.TrimSpace(st)
		if st == "" {
			continue
		}
		m := constAssignRE.FindStringSubmatch(st)
		if m == nil {
			trivial = false
			break
		}
		switch m[1] {
		case "NodeDeallocationOption":
			dealloc = strings.ToLower(m[2])
		default:
			n, err := strconv.Atoi(m[2])
			if err != nil || n < 0 {
				trivial = false
				break
			}
			if m[1] == "TargetDedicatedNodes" {
				dedicated = n
			} else {
				lowPriority = n
			}
		}
	}
	if !trivial {
		per := p.slotsPerNode()
		dedicated, lowPriority = (s.opts.MaxSlots+per-1)/per, 0
	}
	return dedicated, lowPriority, fmt.Sprintf("$TargetDedicatedNodes=%d;$TargetLowPriorityNodes=%d;$NodeDeallocationOption=%s", dedicated, lowPriority, dealloc)
}

// targets returns the pool's wanted dedicated and low-priority node counts.
func (s *Server) targets(p *poolEntry) (int, int) {
	if p.autoScale() {
		d, l, res := s.evalFormula(p, p.w.AutoScaleFormula)
		p.w.AutoScaleRun = &autoScaleRun{Timestamp: now(), Results: res}
		p.w.TargetDedicatedNodes, p.w.TargetLowPriorityNodes = ptr(int32(d)), ptr(int32(l))
		return d, l
	}
	var d, l int
	if p.w.TargetDedicatedNodes != nil {
		d = int(*p.w.TargetDedicatedNodes)
	}
	if p.w.TargetLowPriorityNodes != nil {
		l = int(*p.w.TargetLowPriorityNodes)
	}
	return d, l
}

// reconcileNodesLocked adds or removes local nodes so the pool matches its
// targets, within the MaxSlots budget. dealloc says what happens to tasks on
// removed nodes: requeue (default), terminate, taskcompletion, retaineddata.
func (s *Server) reconcileNodesLocked(p *poolEntry, dealloc string) {
	if s.closed {
		return
	}
	wantD, wantL := s.targets(p)
	var haveD, haveL []*node
	for _, n := range p.nodes {
		if n.leaving {
			continue
		}
		if n.w.IsDedicated {
			haveD = append(haveD, n)
		} else {
			haveL = append(haveL, n)
		}
	}
	at := now()
	shrink := func(have []*node, want int) {
		// Remove idle nodes first, newest first.
		for i := len(have) - 1; i >= 0 && len(have) > want; i-- {
			if len(have[i].tasks) == 0 {
				s.removeNodeLocked(have[i], "requeue")
				have = append(have[:i], have[i+1:]...)
			}
		}
		for len(have) > want {
			s.removeNodeLocked(have[len(have)-1], dealloc)
			have = have[:len(have)-1]
		}
	}
	shrink(haveD, wantD)
	shrink(haveL, wantL)
	var errs []resizeError
	grow := func(have, want int, dedicated bool) {
		for ; have < want; have++ {
			free := s.opts.MaxSlots - s.slotsUsed
			if free <= 0 {
				s.log.Warn("batch pool capped by max slots", "pool", p.w.ID, "maxSlots", s.opts.MaxSlots,
					"dedicated", dedicated, "nodes", have, "target", want)
				errs = append(errs, quotaError(dedicated, have, want, s.opts.MaxSlots))
				return
			}
			s.addNodeLocked(p, min(free, p.slotsPerNode()), dedicated, at)
		}
	}
	grow(len(haveD), wantD, true)
	grow(len(haveL), wantL, false)
	p.w.ResizeErrors = errs
	s.countNodesLocked(p)
	p.w.AllocationState = "steady"
	p.w.AllocationStateTransitionTime = at
	s.poke()
}

// quotaError is the resize error of a pool that MaxSlots kept short of its
// target: the code Batch reports when the account's core quota stops an
// allocation (docs/batch-standin.md, "Resize errors").
func quotaError(dedicated bool, have, want, maxSlots int) resizeError {
	code, kind := "AccountLowPriorityCoreQuotaReached", "low-priority"
	if dedicated {
		code, kind = "AccountCoreQuotaReached", "dedicated"
	}
	return resizeError{Code: code,
		Message: fmt.Sprintf("Desired number of %s nodes could not be allocated: the local Batch stand-in's task slots (--max-slots %d) are all in use", kind, maxSlots),
		Values: []nameValue{{Name: "MaxSlots", Value: strconv.Itoa(maxSlots)},
			{Name: "CurrentNodes", Value: strconv.Itoa(have)}, {Name: "TargetNodes", Value: strconv.Itoa(want)}}}
}

func (s *Server) countNodesLocked(p *poolEntry) {
	var d, l int32
	for _, n := range p.nodes {
		if n.leaving {
			continue
		}
		if n.w.IsDedicated {
			d++
		} else {
			l++
		}
	}
	p.w.CurrentDedicatedNodes, p.w.CurrentLowPriorityNodes = d, l
}

func (s *Server) addNodeLocked(p *poolEntry, slots int, dedicated bool, at time.Time) {
	p.nextNode++
	suffix := "p"
	if dedicated {
		suffix = "d"
	}
	id := fmt.Sprintf("tvmps_%s_%03d_%s", lower(p.w.ID), p.nextNode, suffix)
	n := &node{
		pool:  p,
		dir:   filepath.Join(s.root, "nodes", lower(p.w.ID), id),
		slots: slots,
		tasks: map[*taskEntry]struct{}{},
		w: nodeWire{
			ID: id, State: "idle", SchedulingState: "enabled", StateTransitionTime: at,
			LastBootTime: at, AllocationTime: at, IPAddress: "127.0.0.1",
			AffinityID: "TVM:" + id, VMSize: p.w.VMSize, IsDedicated: dedicated,
			StartTask: p.w.StartTask,
		},
	}
	s.slotsUsed += slots
	p.nodes = append(p.nodes, n)
	for _, d := range []string{"shared", "startup", "workitems", "fsmounts"} {
		if err := os.MkdirAll(filepath.Join(n.dir, d), 0o755); err != nil {
			s.log.Error("batch node directory", "node", id, "err", err)
		}
	}
	st := p.w.StartTask
	if st == nil {
		n.ready = true
		s.log.Info("batch node joined", "pool", p.w.ID, "node", id, "slots", slots)
		return
	}
	wait := st.WaitForSuccess == nil || *st.WaitForSuccess
	n.ready = !wait
	if wait {
		n.w.State = "waitingforstarttask"
	}
	n.w.StartTaskInfo = &startTaskInfo{State: stateRunning, StartTime: at}
	ctx, cancel := context.WithCancel(s.ctx)
	n.startCancel = cancel
	spec := *st
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.runStartTask(ctx, n, spec)
	}()
	s.log.Info("batch node joined", "pool", p.w.ID, "node", id, "slots", slots, "startTask", true, "waitForSuccess", wait)
}

// removeNodeLocked takes a node out of the pool, handling its running tasks
// per dealloc.
func (s *Server) removeNodeLocked(n *node, dealloc string) {
	if n.startCancel != nil {
		n.startCancel()
	}
	n.ready = false
	switch lower(dealloc) {
	case "taskcompletion", "retaineddata":
		if len(n.tasks) > 0 {
			n.leaving = true
			n.w.State = "leavingpool"
			return
		}
	case "terminate":
		for t := range n.tasks {
			if t.run != nil {
				t.run.kill(killTerminate)
			}
		}
	default:
		for t := range n.tasks {
			if t.run != nil {
				t.run.kill(killRequeue)
			}
		}
	}
	s.detachNodeLocked(n)
}

// detachNodeLocked forgets the node; tasks still finishing on it release
// their slots into nothing.
func (s *Server) detachNodeLocked(n *node) {
	p := n.pool
	for i, x := range p.nodes {
		if x == n {
			p.nodes = append(p.nodes[:i], p.nodes[i+1:]...)
			s.slotsUsed -= n.slots
			break
		}
	}
	n.leaving = true
	n.w.State = "leavingpool"
	s.log.Info("batch node left", "pool", p.w.ID, "node", n.w.ID)
}

// runStartTask runs the pool's start task on a joining node, with retries.
func (s *Server) runStartTask(ctx context.Context, n *node, st startTask) {
	s.mu.Lock()
	env := s.baseEnvLocked(n, "", "")
	s.mu.Unlock()
	startup := filepath.Join(n.dir, "startup")
	wd := filepath.Join(startup, "wd")
	env = append(env, "AZ_BATCH_TASK_DIR="+startup, "AZ_BATCH_TASK_WORKING_DIR="+wd)
	env = appendSettings(env, st.EnvironmentSettings)
	maxRetries := -2
	if st.MaxTaskRetryCount != nil {
		maxRetries = int(*st.MaxTaskRetryCount)
	}
	var (
		res  procResult
		fail *failureInfo
		try  int
	)
	for try = 0; ; try++ {
		_ = os.RemoveAll(wd)
		if err := os.MkdirAll(wd, 0o755); err != nil {
			fail = &failureInfo{Category: "servererror", Code: "ResourceDirectoryCreateFailed", Message: err.Error()}
			break
		}
		if fi := s.downloadResourceFiles(ctx, wd, st.ResourceFiles); fi != nil {
			fail = fi
			break
		}
		res = s.execProcess(ctx, st.CommandLine, wd, env, filepath.Join(startup, "stdout.txt"), filepath.Join(startup, "stderr.txt"), 0, nil)
		if ctx.Err() != nil {
			return
		}
		fail = res.failure
		if fail == nil && res.exitCode == 0 {
			break
		}
		if fail != nil || (maxRetries != -1 && try >= maxRetries) {
			break
		}
	}
	if fail == nil && res.exitCode != 0 {
		fail = &failureInfo{Category: "usererror", Code: "FailureExitCode",
			Message: "The start task exited with an exit code representing a failure"}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if n.leaving || s.closed {
		return
	}
	at := now()
	info := &startTaskInfo{State: stateCompleted, StartTime: n.w.StartTaskInfo.StartTime, EndTime: &at, RetryCount: int32(try)}
	if res.started {
		code := int32(res.exitCode)
		info.ExitCode = &code
	}
	if fail == nil {
		info.Result = "success"
		n.ready = true
		n.w.State = "idle"
		s.log.Info("batch start task succeeded", "pool", n.pool.w.ID, "node", n.w.ID)
	} else {
		info.Result = "failure"
		info.FailureInfo = fail
		if st.WaitForSuccess == nil || *st.WaitForSuccess {
			n.ready = false
			n.w.State = "starttaskfailed"
		}
		s.log.Warn("batch start task failed", "pool", n.pool.w.ID, "node", n.w.ID, "code", fail.Code, "exitCode", res.exitCode)
	}
	n.w.StateTransitionTime = at
	n.w.StartTaskInfo = info
	s.poke()
}

// baseEnvLocked is the environment of every process on node n: a default
// PATH, Options.Env and the AZ_BATCH_* node variables (plus job and task ids
// when set).
func (s *Server) baseEnvLocked(n *node, jobID, taskID string) []string {
	env := []string{"PATH=/usr/local/bin:/usr/bin:/bin"}
	env = append(env, s.opts.Env...)
	dedicated := "false"
	if n.w.IsDedicated {
		dedicated = "true"
	}
	env = append(env,
		"AZ_BATCH_ACCOUNT_NAME="+s.opts.AccountName,
		"AZ_BATCH_ACCOUNT_URL="+s.url+"/",
		"AZ_BATCH_POOL_ID="+n.pool.w.ID,
		"AZ_BATCH_NODE_ID="+n.w.ID,
		"AZ_BATCH_NODE_IS_DEDICATED="+dedicated,
		"AZ_BATCH_NODE_ROOT_DIR="+n.dir,
		"AZ_BATCH_NODE_SHARED_DIR="+filepath.Join(n.dir, "shared"),
		"AZ_BATCH_NODE_STARTUP_DIR="+filepath.Join(n.dir, "startup"),
		"AZ_BATCH_NODE_MOUNTS_DIR="+filepath.Join(n.dir, "fsmounts"),
		"AZ_BATCH_TASK_RESERVED_EPHEMERAL_DISK_SPACE_BYTES=1000000000",
	)
	if jobID != "" {
		env = append(env, "AZ_BATCH_JOB_ID="+jobID, "AZ_BATCH_TASK_ID="+taskID)
	}
	return env
}

func appendSettings(env []string, settings []envSetting) []string {
	for _, e := range settings {
		v := ""
		if e.Value != nil {
			v = *e.Value
		}
		env = append(env, e.Name+"="+v)
	}
	return env
}
