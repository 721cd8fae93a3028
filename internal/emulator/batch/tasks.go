package batch

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// maxCollectionBody: an addtaskcollection body must be under 1 MB.
const maxCollectionBody = 1<<20 - 1

func (s *Server) taskURL(jobID, taskID string) string {
	return s.url + "/jobs/" + jobID + "/tasks/" + taskID
}

func isNullRaw(r json.RawMessage) bool { return len(r) == 0 || string(r) == "null" }

// refuseUnmodelled answers UnsupportedProperty for the first property that
// is set to something other than null or an empty list.
func refuseUnmodelled(props map[string]json.RawMessage) *apiError {
	names := make([]string, 0, len(props))
	for name := range props {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if v := strings.TrimSpace(string(props[name])); !isNullRaw(props[name]) && v != "[]" && v != "{}" {
			return errUnsupported(name, name+" is not modelled by the local Batch stand-in")
		}
	}
	return nil
}

func validateTask(t *taskSpec) *apiError {
	if t.ID == "" {
		return errMissingProperty("id")
	}
	if !validID(t.ID) {
		return errBadProperty("id", t.ID, "ids are 1-64 letters, digits, hyphens and underscores")
	}
	if strings.TrimSpace(t.CommandLine) == "" {
		return errMissingProperty("commandLine")
	}
	if _, err := splitCommandLine(t.CommandLine); err != nil {
		return errBadProperty("commandLine", t.CommandLine, err.Error())
	}
	if len(t.DisplayName) > 1024 {
		return errBadProperty("displayName", "", "longer than 1024 characters")
	}
	if aerr := validateResourceFiles("resourceFiles", t.ResourceFiles); aerr != nil {
		return aerr
	}
	for i, of := range t.OutputFiles {
		name := fmt.Sprintf("outputFiles[%d]", i)
		if of.FilePattern == "" {
			return errMissingProperty(name + ".filePattern")
		}
		if of.Destination == nil || of.Destination.Container == nil {
			return errMissingProperty(name + ".destination.container")
		}
		if of.Destination.Container.ContainerURL == "" {
			return errMissingProperty(name + ".destination.container.containerUrl")
		}
		u := strings.ToLower(of.Destination.Container.ContainerURL)
		if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			return errBadProperty(name+".destination.container.containerUrl", redact(of.Destination.Container.ContainerURL), "the URL must be http or https")
		}
		if of.UploadOptions == nil {
			return errMissingProperty(name + ".uploadOptions")
		}
		switch lower(of.UploadOptions.UploadCondition) {
		case "tasksuccess", "taskfailure", "taskcompletion":
		case "":
			return errMissingProperty(name + ".uploadOptions.uploadCondition")
		default:
			return errBadProperty(name+".uploadOptions.uploadCondition", of.UploadOptions.UploadCondition, "must be tasksuccess, taskfailure or taskcompletion")
		}
	}
	if aerr := validateEnv("environmentSettings", t.EnvironmentSettings); aerr != nil {
		return aerr
	}
	if c := t.Constraints; c != nil {
		if c.MaxTaskRetryCount != nil && *c.MaxTaskRetryCount < -1 {
			return errBadProperty("constraints.maxTaskRetryCount", fmt.Sprint(*c.MaxTaskRetryCount), "must be -1 or more")
		}
		for name, v := range map[string]string{"constraints.maxWallClockTime": c.MaxWallClockTime, "constraints.retentionTime": c.RetentionTime} {
			if v == "" {
				continue
			}
			if _, _, err := parseDuration(v); err != nil {
				return errBadProperty(name, v, err.Error())
			}
		}
	}
	if t.RequiredSlots != nil && (*t.RequiredSlots < 1 || *t.RequiredSlots > 256) {
		return errBadProperty("requiredSlots", fmt.Sprint(*t.RequiredSlots), "must be between 1 and 256")
	}
	if !isNullRaw(t.ContainerSettings) {
		return errUnsupported("containerSettings", "the pool has no container configuration (containers are not modelled locally)")
	}
	if aerr := refuseUnmodelled(map[string]json.RawMessage{"applicationPackageReferences": t.ApplicationPackageReferences}); aerr != nil {
		return aerr
	}
	if !isNullRaw(t.DependsOn) {
		return errUnsupported("dependsOn", "task dependencies are not modelled by the local Batch stand-in")
	}
	if !isNullRaw(t.MultiInstanceSettings) {
		return errUnsupported("multiInstanceSettings", "multi-instance tasks are not modelled by the local Batch stand-in")
	}
	return nil
}

// newTaskLocked builds a task with Batch's defaults.
func (s *Server) newTaskLocked(j *jobEntry, spec taskSpec, at time.Time) *taskEntry {
	w := taskWire{taskSpec: spec, CreationTime: at, LastModified: at, State: stateActive, StateTransitionTime: at,
		ExecutionInfo: &taskExecutionInfo{}}
	w.ETag = s.newETag()
	if w.UserIdentity == nil {
		w.UserIdentity = &userIdentity{AutoUser: &autoUserSpec{Scope: "pool", ElevationLevel: "nonadmin"}}
	}
	cons := taskConstraints{}
	if w.Constraints != nil {
		cons = *w.Constraints
	}
	if cons.MaxWallClockTime == "" {
		cons.MaxWallClockTime = unlimitedDuration
	}
	if cons.RetentionTime == "" {
		cons.RetentionTime = "P7D"
	}
	if cons.MaxTaskRetryCount == nil {
		n := int32(0)
		if j.w.Constraints != nil && j.w.Constraints.MaxTaskRetryCount != nil {
			n = *j.w.Constraints.MaxTaskRetryCount
		}
		cons.MaxTaskRetryCount = &n
	}
	w.Constraints = &cons
	if w.RequiredSlots == nil {
		w.RequiredSlots = ptr[int32](1)
	}
	return &taskEntry{key: lower(spec.ID), seq: s.nextSeq(), job: j, w: w}
}

func (s *Server) insertTaskLocked(j *jobEntry, t *taskEntry) uint64 {
	j.tasks[t.key] = t
	j.list = append(j.list, t)
	j.enqueue(t)
	return s.persistTask(t, false)
}

// jobActive is errJobCompleted unless the job is active (and so takes tasks
// and updates).
func jobActive(j *jobEntry) *apiError {
	if j.w.State == stateDeleting {
		return errJobBeingDeleted
	}
	if j.w.State != stateActive {
		return errJobCompleted
	}
	return nil
}

func (s *Server) createTask(c *reqCtx, jobID string) {
	var spec taskSpec
	if aerr := c.decode(maxBody, &spec); aerr != nil {
		c.fail(aerr)
		return
	}
	if aerr := validateTask(&spec); aerr != nil {
		c.fail(aerr)
		return
	}
	j, ok := s.lockJob(c, jobID)
	if !ok || !s.proceed(c, jobActive(j)) {
		return
	}
	if _, ok := j.tasks[lower(spec.ID)]; ok {
		s.mu.Unlock()
		c.fail(errTaskExists)
		return
	}
	t := s.newTaskLocked(j, spec, now())
	seq := s.insertTaskLocked(j, t)
	etag, lm := t.w.ETag, t.w.LastModified
	s.mu.Unlock()
	s.poke()
	if err := s.journal.wait(seq); err != nil {
		c.fail(newErr(http.StatusInternalServerError, "InternalError", "persist task: "+err.Error()))
		return
	}
	s.log.Info("batch task added", "job", jobID, "task", spec.ID)
	c.created(etag, lm, s.taskURL(jobID, spec.ID))
}

func (s *Server) addTaskCollection(c *reqCtx, jobID string) {
	data, aerr := c.readBody(maxCollectionBody)
	if aerr != nil {
		c.fail(aerr)
		return
	}
	specs, results, aerr := c.decodeCollection(data)
	if aerr != nil {
		c.fail(aerr)
		return
	}
	j, ok := s.lockJob(c, jobID)
	if !ok || !s.proceed(c, jobActive(j)) {
		return
	}
	at := now()
	var seq uint64
	added := 0
	for i, spec := range specs {
		if spec == nil {
			continue
		}
		if _, ok := j.tasks[lower(spec.ID)]; ok {
			e := c.errorBody(errTaskExists)
			e.Metadata = ""
			results[i] = addResult{Status: "ClientError", TaskID: spec.ID, Error: e}
			continue
		}
		t := s.newTaskLocked(j, *spec, at)
		seq = s.insertTaskLocked(j, t)
		lm := t.w.LastModified
		results[i] = addResult{Status: "Success", TaskID: spec.ID, ETag: t.w.ETag, LastModified: &lm,
			Location: s.taskURL(jobID, spec.ID)}
		added++
	}
	s.mu.Unlock()
	if added > 0 {
		s.poke()
	}
	if err := s.journal.wait(seq); err != nil {
		c.fail(newErr(http.StatusInternalServerError, "InternalError", "persist tasks: "+err.Error()))
		return
	}
	s.log.Debug("batch task collection added", "job", jobID, "tasks", len(specs), "added", added)
	body, _ := json.Marshal(struct {
		Value []addResult `json:"value"`
	}{results})
	c.writeJSON(http.StatusOK, "taskaddresult", body)
}

// decodeCollection reads an addtaskcollection body: the valid tasks in
// specs, and for each invalid one its ClientError in results (same index).
// Usually the whole body decodes strictly in one pass; otherwise each task
// is decoded alone, so that one bad task gets its own error.
func (c *reqCtx) decodeCollection(data []byte) (specs []*taskSpec, results []addResult, aerr *apiError) {
	var whole struct {
		Value []taskSpec `json:"value"`
	}
	var raws []json.RawMessage
	n := 0
	if decodeStrict(data, &whole) == nil && whole.Value != nil {
		n = len(whole.Value)
	} else {
		var group struct {
			Value []json.RawMessage `json:"value"`
		}
		if aerr := decodeStrict(data, &group); aerr != nil {
			return nil, nil, aerr
		}
		if group.Value == nil {
			return nil, nil, errMissingProperty("value")
		}
		raws, n = group.Value, len(group.Value)
	}
	if n > 100 {
		return nil, nil, newErr(http.StatusRequestEntityTooLarge, "RequestBodyTooLarge",
			fmt.Sprintf("The collection holds %d tasks; at most 100 tasks can be added in one request.", n),
			"MaxTasks", "100", "Tasks", strconv.Itoa(n))
	}
	results = make([]addResult, n)
	specs = make([]*taskSpec, n)
	reject := func(i int, id string, aerr *apiError) {
		results[i] = addResult{Status: "ClientError", TaskID: id, Error: c.errorBody(aerr)}
		results[i].Error.Metadata = ""
	}
	for i := range whole.Value {
		if aerr := validateTask(&whole.Value[i]); aerr != nil {
			reject(i, whole.Value[i].ID, aerr)
			continue
		}
		specs[i] = &whole.Value[i]
	}
	for i, raw := range raws {
		var spec taskSpec
		aerr := decodeStrict(raw, &spec)
		if aerr == nil {
			aerr = validateTask(&spec)
		}
		if aerr != nil {
			var loose struct {
				ID string `json:"id"`
			}
			_ = json.Unmarshal(raw, &loose)
			reject(i, loose.ID, aerr)
			continue
		}
		specs[i] = &spec
	}
	return specs, results, nil
}

func (s *Server) renderTaskLocked(t *taskEntry) *taskWire {
	w := t.w
	w.URL = s.taskURL(t.job.w.ID, w.ID)
	return &w
}

func (s *Server) listTasks(c *reqCtx, jobID string) {
	lq, aerr := c.parseList(taskSchema, taskWire{})
	if aerr != nil {
		c.fail(aerr)
		return
	}
	var after uint64
	if lq.token != "" {
		n, err := strconv.ParseUint(lq.token, 10, 64)
		if err != nil {
			c.fail(errBadQuery("$skiptoken", lq.token, "not a token from odata.nextLink"))
			return
		}
		after = n
	}
	j, ok := s.lockJob(c, jobID)
	if !ok {
		return
	}
	start := sort.Search(len(j.list), func(i int) bool { return j.list[i].seq > after })
	live := func(yield func(*taskEntry) bool) {
		for _, t := range j.list[start:] {
			if !t.deleted && !yield(t) {
				return
			}
		}
	}
	out, next := page(c, lq, live, taskGetter,
		func(t *taskEntry) any { return s.renderTaskLocked(t) },
		func(t *taskEntry) string { return strconv.FormatUint(t.seq, 10) })
	s.mu.Unlock()
	c.writeList("tasks", out, next)
}

func (s *Server) getTask(c *reqCtx, jobID, taskID string) {
	getEntity(s, c, "tasks/@Element", func() (*taskEntry, *apiError) { return s.findTask(jobID, taskID) }, s.renderTaskLocked)
}

func (s *Server) deleteTask(c *reqCtx, jobID, taskID string) {
	t, ok := s.lockTaskWrite(c, jobID, taskID)
	if !ok || !s.writable(c, &t.w) {
		return
	}
	dirs := s.dropTaskLocked(t)
	seq := s.persistTask(t, true)
	s.checkJobCompleteLocked(t.job)
	s.mu.Unlock()
	_ = s.journal.wait(seq)
	removeDirs(dirs)
	s.log.Info("batch task deleted", "job", jobID, "task", t.w.ID)
	c.noContent(http.StatusOK, "", time.Time{}, "")
}

func (s *Server) terminateTask(c *reqCtx, jobID, taskID string) {
	t, ok := s.lockTaskWrite(c, jobID, taskID)
	if !ok || !s.writable(c, &t.w) {
		return
	}
	if t.w.State == stateCompleted {
		s.mu.Unlock()
		c.fail(newErr(http.StatusConflict, "TaskCompleted", "The specified task is already completed."))
		return
	}
	t.w.ETag = s.newETag()
	t.w.LastModified = now()
	if t.run != nil {
		t.run.kill(killTerminate)
	} else {
		t.queued = false
		s.completeLocked(t, nil, &failureInfo{Category: "usererror", Code: "TaskEnded",
			Message: "The task was terminated by a user request before it ran"}, now())
	}
	seq := s.persistTask(t, false)
	etag, lm := t.w.ETag, t.w.LastModified
	s.mu.Unlock()
	_ = s.journal.wait(seq)
	s.log.Info("batch task terminate requested", "job", jobID, "task", t.w.ID)
	c.noContent(http.StatusNoContent, etag, lm, s.taskURL(jobID, t.w.ID)+"/terminate")
}

func (s *Server) reactivateTask(c *reqCtx, jobID, taskID string) {
	t, ok := s.lockTaskWrite(c, jobID, taskID)
	if !ok || !s.writable(c, &t.w) {
		return
	}
	var aerr *apiError
	switch {
	case t.job.w.State != stateActive:
		aerr = errJobCompleted
	case t.w.State != stateCompleted:
		aerr = newErr(http.StatusConflict, "TaskNotCompleted", "The specified task is not completed.")
	case t.w.ExecutionInfo != nil && t.w.ExecutionInfo.Result == "success":
		aerr = newErr(http.StatusConflict, "TaskSucceeded", "The specified task completed successfully and cannot be reactivated.")
	}
	if !s.proceed(c, aerr) {
		return
	}
	at := now()
	t.w.ETag = s.newETag()
	t.w.LastModified = at
	ei := taskExecutionInfo{}
	if t.w.ExecutionInfo != nil {
		ei.RequeueCount = t.w.ExecutionInfo.RequeueCount
		ei.LastRequeueTime = t.w.ExecutionInfo.LastRequeueTime
	}
	t.w.ExecutionInfo = &ei
	t.w.NodeInfo = nil
	if tm := s.timers[t]; tm != nil {
		tm.Stop()
		delete(s.timers, t)
	}
	t.setState(stateActive, at)
	t.job.enqueue(t)
	seq := s.persistTask(t, false)
	etag := t.w.ETag
	s.mu.Unlock()
	s.poke()
	_ = s.journal.wait(seq)
	s.log.Info("batch task reactivated", "job", jobID, "task", t.w.ID)
	c.noContent(http.StatusNoContent, etag, at, "")
}

// taskDirLocked returns the task's directory or "" with the reply written.
func (s *Server) taskDir(c *reqCtx, jobID, taskID string) (string, string, bool) {
	t, ok := s.lockTask(c, jobID, taskID)
	if !ok {
		return "", "", false
	}
	defer s.mu.Unlock()
	return t.dir, s.taskURL(t.job.w.ID, t.w.ID), true
}

func (s *Server) listTaskFiles(c *reqCtx, jobID, taskID string) {
	dir, turl, ok := s.taskDir(c, jobID, taskID)
	if !ok {
		return
	}
	recursive := strings.EqualFold(c.q.Get("recursive"), "true")
	var items [][]byte
	if dir != "" {
		_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err != nil || p == dir {
				return nil
			}
			rel, _ := filepath.Rel(dir, p)
			rel = filepath.ToSlash(rel)
			fi, err := d.Info()
			if err != nil {
				return nil
			}
			f := nodeFile{Name: rel, URL: turl + "/files/" + rel, IsDirectory: d.IsDir()}
			if !d.IsDir() {
				f.Properties = &fileProperties{LastModified: wireTime(fi.ModTime()), ContentLength: strconv.FormatInt(fi.Size(), 10),
					ContentType: "application/octet-stream", FileMode: fmt.Sprintf("0%o", fi.Mode().Perm())}
			}
			items = append(items, marshalEntity(&f, nil))
			if d.IsDir() && !recursive {
				return filepath.SkipDir
			}
			return nil
		})
	}
	c.writeList("files", items, "")
}

func (s *Server) getTaskFile(c *reqCtx, jobID, taskID, name string) {
	if err := safeRel(name); err != nil || name == "" {
		c.fail(errBadQuery("filePath", name, "the file path must be relative to the task directory"))
		return
	}
	dir, turl, ok := s.taskDir(c, jobID, taskID)
	if !ok {
		return
	}
	if dir == "" {
		c.fail(errFileNotFound)
		return
	}
	f, err := os.Open(filepath.Join(dir, filepath.FromSlash(name)))
	if err != nil {
		c.fail(errFileNotFound)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.IsDir() {
		c.fail(errFileNotFound)
		return
	}
	h := c.w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.FormatInt(fi.Size(), 10))
	h.Set("Last-Modified", fi.ModTime().UTC().Format(http.TimeFormat))
	h.Set("ocp-creation-time", fi.ModTime().UTC().Format(http.TimeFormat))
	h.Set("ocp-batch-file-isdirectory", "false")
	h.Set("ocp-batch-file-url", turl+"/files/"+name)
	h.Set("ocp-batch-file-mode", fmt.Sprintf("0%o", fi.Mode().Perm()))
	c.w.WriteHeader(http.StatusOK)
	if c.r.Method == http.MethodGet {
		_, _ = io.Copy(c.w, f)
	}
}

// replaceTask updates a task's constraints (the only writable property).
func (s *Server) replaceTask(c *reqCtx, jobID, taskID string) {
	var body struct {
		Constraints *taskConstraints `json:"constraints,omitempty"`
	}
	if aerr := c.decode(maxBody, &body); aerr != nil {
		c.fail(aerr)
		return
	}
	probe := taskSpec{ID: "x", CommandLine: "x", Constraints: body.Constraints}
	if aerr := validateTask(&probe); aerr != nil {
		c.fail(aerr)
		return
	}
	t, ok := s.lockTaskWrite(c, jobID, taskID)
	if !ok || !s.writable(c, &t.w) {
		return
	}
	if body.Constraints != nil {
		cons := *t.w.Constraints
		if body.Constraints.MaxTaskRetryCount != nil {
			cons.MaxTaskRetryCount = body.Constraints.MaxTaskRetryCount
		}
		if body.Constraints.MaxWallClockTime != "" {
			cons.MaxWallClockTime = body.Constraints.MaxWallClockTime
		}
		if body.Constraints.RetentionTime != "" {
			cons.RetentionTime = body.Constraints.RetentionTime
		}
		t.w.Constraints = &cons
		if t.w.State == stateCompleted {
			s.scheduleRetentionLocked(t)
		}
	}
	t.w.ETag = s.newETag()
	t.w.LastModified = now()
	seq := s.persistTask(t, false)
	etag, lm := t.w.ETag, t.w.LastModified
	s.mu.Unlock()
	_ = s.journal.wait(seq)
	c.noContent(http.StatusOK, etag, lm, s.taskURL(jobID, t.w.ID))
}
