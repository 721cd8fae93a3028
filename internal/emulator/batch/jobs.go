package batch

import (
	"fmt"
	"net/http"
	"os"
	"strings"
)

func (s *Server) jobURL(id string) string { return s.url + "/jobs/" + id }

func validateJob(j *jobSpec) *apiError {
	if j.ID == "" {
		return errMissingProperty("id")
	}
	if !validID(j.ID) {
		return errBadProperty("id", j.ID, "ids are 1-64 letters, digits, hyphens and underscores")
	}
	if j.PoolInfo == nil {
		return errMissingProperty("poolInfo")
	}
	if len(j.PoolInfo.AutoPoolSpecification) > 0 && string(j.PoolInfo.AutoPoolSpecification) != "null" {
		return errUnsupported("poolInfo.autoPoolSpecification", "auto pools are not modelled by the local Batch stand-in; create a pool and use poolId")
	}
	if j.PoolInfo.PoolID == "" {
		return errMissingProperty("poolInfo.poolId")
	}
	if !validID(j.PoolInfo.PoolID) {
		return errBadProperty("poolInfo.poolId", j.PoolInfo.PoolID, "ids are 1-64 letters, digits, hyphens and underscores")
	}
	for name, v := range map[string][]byte{"jobManagerTask": j.JobManagerTask, "jobPreparationTask": j.JobPreparationTask, "jobReleaseTask": j.JobReleaseTask} {
		if len(v) > 0 && string(v) != "null" {
			return errUnsupported(name, name+" is not modelled by the local Batch stand-in")
		}
	}
	return validateJobCommon(j.Priority, j.MaxParallelTasks, j.Constraints, j.OnAllTasksComplete, j.OnTaskFailure, j.CommonEnvironmentSettings)
}

func validateJobCommon(prio, maxPar *int32, cons *jobConstraints, onAll, onFail string, env []envSetting) *apiError {
	if prio != nil && (*prio < -1000 || *prio > 1000) {
		return errBadProperty("priority", fmt.Sprint(*prio), "must be between -1000 and 1000")
	}
	if maxPar != nil && *maxPar != -1 && *maxPar < 1 {
		return errBadProperty("maxParallelTasks", fmt.Sprint(*maxPar), "must be -1 or at least 1")
	}
	if cons != nil {
		if cons.MaxTaskRetryCount != nil && *cons.MaxTaskRetryCount < -1 {
			return errBadProperty("constraints.maxTaskRetryCount", fmt.Sprint(*cons.MaxTaskRetryCount), "must be -1 or more")
		}
		if cons.MaxWallClockTime != "" {
			if _, _, err := parseDuration(cons.MaxWallClockTime); err != nil {
				return errBadProperty("constraints.maxWallClockTime", cons.MaxWallClockTime, err.Error())
			}
		}
	}
	switch lower(onAll) {
	case "", "noaction", "terminatejob":
	default:
		return errBadProperty("onAllTasksComplete", onAll, "must be noaction or terminatejob")
	}
	switch lower(onFail) {
	case "", "noaction", "performexitoptionsjobaction":
	default:
		return errBadProperty("onTaskFailure", onFail, "must be noaction or performexitoptionsjobaction")
	}
	return validateEnv("commonEnvironmentSettings", env)
}

func (s *Server) createJob(c *reqCtx) {
	var spec jobSpec
	if aerr := c.decode(maxBody, &spec); aerr != nil {
		c.fail(aerr)
		return
	}
	if aerr := validateJob(&spec); aerr != nil {
		c.fail(aerr)
		return
	}
	at := now()
	w := jobWire{jobSpec: spec, LastModified: at, CreationTime: at, State: stateActive, StateTransitionTime: at,
		ExecutionInfo: &jobExecutionInfo{StartTime: at, PoolID: spec.PoolInfo.PoolID}}
	w.ETag = s.newETag()
	if w.Priority == nil {
		w.Priority = ptr[int32](0)
	}
	if w.MaxParallelTasks == nil {
		w.MaxParallelTasks = ptr[int32](-1)
	}
	if w.UsesTaskDependencies == nil {
		w.UsesTaskDependencies = ptr(false)
	}
	if w.AllowTaskPreemption == nil {
		w.AllowTaskPreemption = ptr(false)
	}
	cons := jobConstraints{}
	if w.Constraints != nil {
		cons = *w.Constraints
	}
	if cons.MaxTaskRetryCount == nil {
		cons.MaxTaskRetryCount = ptr[int32](0)
	}
	if cons.MaxWallClockTime == "" {
		cons.MaxWallClockTime = unlimitedDuration
	}
	w.Constraints = &cons
	w.OnAllTasksComplete = lowerOr(w.OnAllTasksComplete, "noaction")
	w.OnTaskFailure = lowerOr(w.OnTaskFailure, "noaction")
	key := lower(spec.ID)
	s.mu.Lock()
	if old, ok := s.jobs[key]; ok {
		s.mu.Unlock()
		if old.w.State == stateDeleting {
			c.fail(errJobBeingDeleted)
			return
		}
		c.fail(errJobExists)
		return
	}
	j := &jobEntry{key: key, seq: s.nextSeq(), w: w, tasks: map[string]*taskEntry{}}
	s.jobs[key] = j
	s.jobList = append(s.jobList, j)
	seq := s.persistJob(j, false)
	s.checkJobCompleteLocked(j)
	s.mu.Unlock()
	if err := s.journal.wait(seq); err != nil {
		c.fail(newErr(http.StatusInternalServerError, "InternalError", "persist job: "+err.Error()))
		return
	}
	s.log.Info("batch job created", "job", spec.ID, "pool", spec.PoolInfo.PoolID)
	c.created(w.ETag, w.LastModified, s.jobURL(spec.ID))
}

func lowerOr(v, def string) string {
	if v == "" {
		return def
	}
	return strings.ToLower(v)
}

func (s *Server) renderJobLocked(j *jobEntry) *jobWire {
	w := j.w
	w.URL = s.jobURL(w.ID)
	return &w
}

func (s *Server) getJob(c *reqCtx, id string) {
	getEntity(s, c, "jobs/@Element", func() (*jobEntry, *apiError) { return s.findJob(id) }, s.renderJobLocked)
}

func (s *Server) listJobs(c *reqCtx) {
	listByKey(s, c, "jobs", jobSchema, jobWire{},
		func() ([]*jobEntry, *apiError) { return s.jobList, nil },
		func(j *jobEntry) keyed { return keyed{key: j.key, get: jobGetter(j), v: s.renderJobLocked(j)} })
}

func (s *Server) updateJob(c *reqCtx, id string) {
	var spec jobUpdate
	if aerr := c.decode(maxBody, &spec); aerr != nil {
		c.fail(aerr)
		return
	}
	if aerr := validateJobCommon(spec.Priority, spec.MaxParallelTasks, spec.Constraints, spec.OnAllTasksComplete, "", nil); aerr != nil {
		c.fail(aerr)
		return
	}
	if spec.PoolInfo != nil && (spec.PoolInfo.PoolID == "" || !validID(spec.PoolInfo.PoolID)) {
		c.fail(errBadProperty("poolInfo.poolId", spec.PoolInfo.PoolID, "a valid poolId is required"))
		return
	}
	j, ok := s.lockJob(c, id)
	if !ok || !s.writable(c, &j.w) || !s.proceed(c, jobActive(j)) {
		return
	}
	if spec.Priority != nil {
		j.w.Priority = spec.Priority
	}
	if spec.MaxParallelTasks != nil {
		j.w.MaxParallelTasks = spec.MaxParallelTasks
	}
	if spec.Constraints != nil {
		cons := *j.w.Constraints
		if spec.Constraints.MaxTaskRetryCount != nil {
			cons.MaxTaskRetryCount = spec.Constraints.MaxTaskRetryCount
		}
		if spec.Constraints.MaxWallClockTime != "" {
			cons.MaxWallClockTime = spec.Constraints.MaxWallClockTime
		}
		j.w.Constraints = &cons
	}
	if spec.PoolInfo != nil {
		j.w.PoolInfo = &poolInfo{PoolID: spec.PoolInfo.PoolID}
	}
	if spec.OnAllTasksComplete != "" {
		j.w.OnAllTasksComplete = lower(spec.OnAllTasksComplete)
	}
	if len(spec.Metadata) > 0 {
		j.w.Metadata = spec.Metadata
	}
	if spec.AllowTaskPreemption != nil {
		j.w.AllowTaskPreemption = spec.AllowTaskPreemption
	}
	j.w.ETag = s.newETag()
	j.w.LastModified = now()
	seq := s.persistJob(j, false)
	s.checkJobCompleteLocked(j)
	etag, lm := j.w.ETag, j.w.LastModified
	s.mu.Unlock()
	_ = s.journal.wait(seq)
	s.poke()
	c.noContent(http.StatusOK, etag, lm, s.jobURL(id))
}

func (s *Server) terminateJob(c *reqCtx, id string) {
	var spec terminateJobSpec
	data, aerr := c.readBody(maxBody)
	if aerr == nil && len(strings.TrimSpace(string(data))) > 0 {
		aerr = decodeStrict(data, &spec)
	}
	if aerr != nil {
		c.fail(aerr)
		return
	}
	j, ok := s.lockJob(c, id)
	if !ok || !s.writable(c, &j.w) || !s.proceed(c, jobActive(j)) {
		return
	}
	reason := spec.TerminateReason
	if reason == "" {
		reason = "UserTerminate"
	}
	j.w.ETag = s.newETag()
	j.w.LastModified = now()
	s.terminateJobLocked(j, reason)
	seq := s.persistJob(j, false)
	etag, lm := j.w.ETag, j.w.LastModified
	s.mu.Unlock()
	_ = s.journal.wait(seq)
	c.noContent(http.StatusAccepted, etag, lm, s.jobURL(id)+"/terminate")
}

// dropTaskLocked removes a task: kills its process (the runner removes the
// directory) or returns the directory for the caller to remove.
func (s *Server) dropTaskLocked(t *taskEntry) []string {
	t.job.removeTask(t)
	if tm := s.timers[t]; tm != nil {
		tm.Stop()
		delete(s.timers, t)
	}
	if t.run != nil {
		t.run.kill(killDelete)
		return nil
	}
	if t.dir != "" {
		return []string{t.dir}
	}
	return nil
}

func removeDirs(dirs []string) {
	for _, d := range dirs {
		_ = os.RemoveAll(d)
	}
}

func (s *Server) taskCounts(c *reqCtx, id string) {
	j, ok := s.lockJob(c, id)
	if !ok {
		return
	}
	var tc, sc taskCounts
	for _, t := range j.tasks {
		n := int32(t.slots())
		switch t.w.State {
		case stateActive:
			tc.Active++
			sc.Active += n
		case stateCompleted:
			tc.Completed++
			sc.Completed += n
			if t.w.ExecutionInfo != nil && t.w.ExecutionInfo.Result == "failure" {
				tc.Failed++
				sc.Failed += n
			} else {
				tc.Succeeded++
				sc.Succeeded += n
			}
		default:
			tc.Running++
			sc.Running += n
		}
	}
	s.mu.Unlock()
	body := marshalEntity(struct {
		TaskCounts     taskCounts `json:"taskCounts"`
		TaskSlotCounts taskCounts `json:"taskSlotCounts"`
	}{tc, sc}, nil)
	c.writeJSON(http.StatusOK, "taskcountsresult/@Element", body)
}
