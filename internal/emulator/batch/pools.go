package batch

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

const maxBody = 4 << 20

func (s *Server) poolURL(id string) string { return s.url + "/pools/" + id }

func validateInterval(name, v string) *apiError {
	if v == "" {
		return nil
	}
	d, unlimited, err := parseDuration(v)
	if err != nil {
		return errBadProperty(name, v, err.Error())
	}
	if unlimited || d < 5*time.Minute || d > 168*time.Hour {
		return errBadProperty(name, v, "the autoscale evaluation interval must be between 5 minutes and 168 hours")
	}
	return nil
}

func validateResourceFiles(prefix string, files []resourceFile) *apiError {
	for i, rf := range files {
		name := fmt.Sprintf("%s[%d]", prefix, i)
		n := 0
		for _, v := range []string{rf.HTTPURL, rf.StorageContainerURL, rf.AutoStorageContainerName} {
			if v != "" {
				n++
			}
		}
		if n != 1 {
			return errBadProperty(name, "", "exactly one of httpUrl, storageContainerUrl and autoStorageContainerName must be set")
		}
		if rf.HTTPURL != "" {
			if rf.FilePath == "" {
				return errMissingProperty(name + ".filePath")
			}
			if rf.BlobPrefix != "" {
				return errBadProperty(name+".blobPrefix", rf.BlobPrefix, "blobPrefix is only valid with a container source")
			}
		}
		for _, u := range []string{rf.HTTPURL, rf.StorageContainerURL} {
			if u != "" && !strings.HasPrefix(strings.ToLower(u), "http://") && !strings.HasPrefix(strings.ToLower(u), "https://") {
				return errBadProperty(name, redact(u), "the URL must be http or https")
			}
		}
		if err := safeRel(rf.FilePath); err != nil {
			return errBadProperty(name+".filePath", rf.FilePath, "filePath "+err.Error())
		}
		if rf.FileMode != "" {
			for _, c := range rf.FileMode {
				if c < '0' || c > '7' {
					return errBadProperty(name+".fileMode", rf.FileMode, "fileMode must be an octal string such as 0770")
				}
			}
			if len(rf.FileMode) > 4 {
				return errBadProperty(name+".fileMode", rf.FileMode, "fileMode must be an octal string such as 0770")
			}
		}
	}
	return nil
}

func validateEnv(prefix string, env []envSetting) *apiError {
	for i, e := range env {
		if e.Name == "" {
			return errMissingProperty(fmt.Sprintf("%s[%d].name", prefix, i))
		}
		if strings.ContainsAny(e.Name, "=\x00") {
			return errBadProperty(fmt.Sprintf("%s[%d].name", prefix, i), e.Name, "invalid environment variable name")
		}
	}
	return nil
}

func validatePool(p *poolSpec) *apiError {
	if p.ID == "" {
		return errMissingProperty("id")
	}
	if !validID(p.ID) {
		return errBadProperty("id", p.ID, "ids are 1-64 letters, digits, hyphens and underscores")
	}
	if p.VMSize == "" {
		return errMissingProperty("vmSize")
	}
	if aerr := validateVMConfiguration(p.VirtualMachineConfiguration); aerr != nil {
		return aerr
	}
	if aerr := refuseUnmodelled(map[string]json.RawMessage{
		"mountConfiguration":           p.MountConfiguration,
		"applicationPackageReferences": p.ApplicationPackageReferences,
		"certificateReferences":        p.CertificateReferences,
	}); aerr != nil {
		return aerr
	}
	auto := p.EnableAutoScale != nil && *p.EnableAutoScale
	if auto {
		if p.TargetDedicatedNodes != nil || p.TargetLowPriorityNodes != nil {
			return errBadProperty("targetDedicatedNodes", "", "targets must not be set when enableAutoScale is true")
		}
		if strings.TrimSpace(p.AutoScaleFormula) == "" {
			return errMissingProperty("autoScaleFormula")
		}
		if len(p.AutoScaleFormula) > 8192 {
			return errBadProperty("autoScaleFormula", "", "the formula is longer than 8 KB")
		}
		if aerr := validateInterval("autoScaleEvaluationInterval", p.AutoScaleEvaluationInterval); aerr != nil {
			return aerr
		}
	} else {
		if p.TargetDedicatedNodes == nil && p.TargetLowPriorityNodes == nil {
			return errMissingProperty("targetDedicatedNodes")
		}
		if p.AutoScaleFormula != "" {
			return errBadProperty("autoScaleFormula", "", "a formula needs enableAutoScale")
		}
	}
	for name, v := range map[string]*int32{"targetDedicatedNodes": p.TargetDedicatedNodes, "targetLowPriorityNodes": p.TargetLowPriorityNodes} {
		if v != nil && (*v < 0 || *v > 10000) {
			return errBadProperty(name, fmt.Sprint(*v), "must be between 0 and 10000")
		}
	}
	if p.TaskSlotsPerNode != nil && (*p.TaskSlotsPerNode < 1 || *p.TaskSlotsPerNode > 256) {
		return errBadProperty("taskSlotsPerNode", fmt.Sprint(*p.TaskSlotsPerNode), "must be between 1 and 256")
	}
	if p.TaskSchedulingPolicy != nil {
		switch strings.ToLower(p.TaskSchedulingPolicy.NodeFillType) {
		case "pack", "spread":
		case "":
			return errMissingProperty("taskSchedulingPolicy.nodeFillType")
		default:
			return errBadProperty("taskSchedulingPolicy.nodeFillType", p.TaskSchedulingPolicy.NodeFillType, "must be pack or spread")
		}
	}
	if p.ResizeTimeout != "" {
		if d, _, err := parseDuration(p.ResizeTimeout); err != nil || d < 5*time.Minute && d != 0 {
			return errBadProperty("resizeTimeout", p.ResizeTimeout, "must be an ISO-8601 duration of at least PT5M")
		}
	}
	return validateStartTask(p.StartTask)
}

func validateStartTask(st *startTask) *apiError {
	if st == nil {
		return nil
	}
	if strings.TrimSpace(st.CommandLine) == "" {
		return errMissingProperty("startTask.commandLine")
	}
	if _, err := splitCommandLine(st.CommandLine); err != nil {
		return errBadProperty("startTask.commandLine", st.CommandLine, err.Error())
	}
	if len(st.ContainerSettings) > 0 && string(st.ContainerSettings) != "null" {
		return errUnsupported("startTask.containerSettings", "the pool has no container configuration (containers are not modelled locally)")
	}
	if st.MaxTaskRetryCount != nil && *st.MaxTaskRetryCount < -1 {
		return errBadProperty("startTask.maxTaskRetryCount", fmt.Sprint(*st.MaxTaskRetryCount), "must be -1 or more")
	}
	if aerr := validateResourceFiles("startTask.resourceFiles", st.ResourceFiles); aerr != nil {
		return aerr
	}
	return validateEnv("startTask.environmentSettings", st.EnvironmentSettings)
}

func fillTypeWire(v string) string {
	if strings.EqualFold(v, "pack") {
		return "Pack"
	}
	return "Spread"
}

func (s *Server) createPool(c *reqCtx) {
	var spec poolSpec
	if aerr := c.decode(maxBody, &spec); aerr != nil {
		c.fail(aerr)
		return
	}
	if aerr := validatePool(&spec); aerr != nil {
		c.fail(aerr)
		return
	}
	w := newPoolWire(spec, now())
	w.ETag = s.newETag()
	key := lower(spec.ID)
	s.mu.Lock()
	if old, ok := s.pools[key]; ok {
		s.mu.Unlock()
		if aerr := poolDeleting(old); aerr != nil {
			c.fail(aerr)
			return
		}
		c.fail(errPoolExists)
		return
	}
	p := &poolEntry{key: key, w: w}
	s.pools[key] = p
	s.poolList = append(s.poolList, p)
	s.reconcileNodesLocked(p, "")
	seq := s.persistPool(p, false)
	s.mu.Unlock()
	if err := s.journal.wait(seq); err != nil {
		c.fail(newErr(http.StatusInternalServerError, "InternalError", "persist pool: "+err.Error()))
		return
	}
	s.log.Info("batch pool created", "pool", spec.ID, "autoScale", *w.EnableAutoScale)
	c.created(w.ETag, w.LastModified, s.poolURL(spec.ID))
}

// newPoolWire is a new pool with Batch's defaults filled in.
func newPoolWire(spec poolSpec, at time.Time) poolWire {
	w := poolWire{poolSpec: spec, CreationTime: at, LastModified: at, State: stateActive, StateTransitionTime: at,
		AllocationState: "resizing", AllocationStateTransitionTime: at}
	if w.ResizeTimeout == "" {
		w.ResizeTimeout = "PT15M"
	}
	if w.TaskSlotsPerNode == nil {
		w.TaskSlotsPerNode = ptr[int32](1)
	}
	if w.EnableAutoScale == nil {
		w.EnableAutoScale = ptr(false)
	}
	if *w.EnableAutoScale && w.AutoScaleEvaluationInterval == "" {
		w.AutoScaleEvaluationInterval = "PT15M"
	}
	policy := schedulingPolicy{NodeFillType: "Spread"}
	if w.TaskSchedulingPolicy != nil {
		policy.NodeFillType = fillTypeWire(w.TaskSchedulingPolicy.NodeFillType)
	}
	w.TaskSchedulingPolicy = &policy
	if !*w.EnableAutoScale {
		if w.TargetDedicatedNodes == nil {
			w.TargetDedicatedNodes = ptr[int32](0)
		}
		if w.TargetLowPriorityNodes == nil {
			w.TargetLowPriorityNodes = ptr[int32](0)
		}
	}
	if w.StartTask != nil {
		st := *w.StartTask
		if st.WaitForSuccess == nil {
			st.WaitForSuccess = ptr(true)
		}
		if st.MaxTaskRetryCount == nil {
			st.MaxTaskRetryCount = ptr[int32](0)
		}
		if st.UserIdentity == nil {
			st.UserIdentity = &userIdentity{AutoUser: &autoUserSpec{Scope: "pool", ElevationLevel: "nonadmin"}}
		}
		w.StartTask = &st
	}
	if w.TargetNodeCommunicationMode != "" {
		w.CurrentNodeCommunicationMode = "simplified"
	}
	if len(w.CertificateReferences) == 0 {
		w.CertificateReferences = []byte("[]")
	}
	return w
}

func ptr[T any](v T) *T { return &v }

func (s *Server) renderPoolLocked(p *poolEntry) *poolWire {
	w := p.w
	w.URL = s.poolURL(w.ID)
	return &w
}

func (s *Server) getPool(c *reqCtx, id string) {
	getEntity(s, c, "pools/@Element", func() (*poolEntry, *apiError) { return s.findPool(id) }, s.renderPoolLocked)
}

func (s *Server) listPools(c *reqCtx) {
	listByKey(s, c, "pools", poolSchema, poolWire{},
		func() ([]*poolEntry, *apiError) { return s.poolList, nil },
		func(p *poolEntry) keyed { return keyed{key: p.key, get: poolGetter(p), v: s.renderPoolLocked(p)} })
}

// poolWrite runs fn on the pool under the lock and replies with status and
// the pool's new ETag.
func (s *Server) poolWrite(c *reqCtx, id, action string, status int, fn func(p *poolEntry) *apiError) {
	p, ok := s.lockPool(c, id)
	if !ok || !s.writable(c, &p.w) || !s.proceed(c, poolDeleting(p)) {
		return
	}
	if !s.proceed(c, fn(p)) {
		return
	}
	p.w.ETag = s.newETag()
	p.w.LastModified = now()
	seq := s.persistPool(p, false)
	etag, lm := p.w.ETag, p.w.LastModified
	s.mu.Unlock()
	_ = s.journal.wait(seq)
	s.log.Info("batch pool "+action, "pool", p.w.ID, "dedicated", p.w.CurrentDedicatedNodes, "lowPriority", p.w.CurrentLowPriorityNodes)
	c.noContent(status, etag, lm, s.poolURL(id)+"/"+action)
}

func (s *Server) resizePool(c *reqCtx, id string) {
	var spec resizeSpec
	if aerr := c.decode(maxBody, &spec); aerr != nil {
		c.fail(aerr)
		return
	}
	for name, v := range map[string]*int32{"targetDedicatedNodes": spec.TargetDedicatedNodes, "targetLowPriorityNodes": spec.TargetLowPriorityNodes} {
		if v != nil && (*v < 0 || *v > 10000) {
			c.fail(errBadProperty(name, fmt.Sprint(*v), "must be between 0 and 10000"))
			return
		}
	}
	switch lower(spec.NodeDeallocationOption) {
	case "", "requeue", "terminate", "taskcompletion", "retaineddata":
	default:
		c.fail(errBadProperty("nodeDeallocationOption", spec.NodeDeallocationOption, "must be requeue, terminate, taskcompletion or retaineddata"))
		return
	}
	if spec.ResizeTimeout != "" {
		if _, _, err := parseDuration(spec.ResizeTimeout); err != nil {
			c.fail(errBadProperty("resizeTimeout", spec.ResizeTimeout, err.Error()))
			return
		}
	}
	s.poolWrite(c, id, "resize", http.StatusAccepted, func(p *poolEntry) *apiError {
		if p.autoScale() {
			return newErr(http.StatusConflict, "OperationInvalidForCurrentState",
				"The pool has autoscale enabled; disable autoscale before a manual resize.")
		}
		if spec.TargetDedicatedNodes != nil {
			p.w.TargetDedicatedNodes = spec.TargetDedicatedNodes
		}
		if spec.TargetLowPriorityNodes != nil {
			p.w.TargetLowPriorityNodes = spec.TargetLowPriorityNodes
		}
		if spec.ResizeTimeout != "" {
			p.w.ResizeTimeout = spec.ResizeTimeout
		}
		s.reconcileNodesLocked(p, spec.NodeDeallocationOption)
		return nil
	})
}

func (s *Server) enableAutoScale(c *reqCtx, id string) {
	var spec autoScaleSpec
	if aerr := c.decode(maxBody, &spec); aerr != nil {
		c.fail(aerr)
		return
	}
	if aerr := validateInterval("autoScaleEvaluationInterval", spec.AutoScaleEvaluationInterval); aerr != nil {
		c.fail(aerr)
		return
	}
	if len(spec.AutoScaleFormula) > 8192 {
		c.fail(errBadProperty("autoScaleFormula", "", "the formula is longer than 8 KB"))
		return
	}
	s.poolWrite(c, id, "enableautoscale", http.StatusOK, func(p *poolEntry) *apiError {
		if spec.AutoScaleFormula == "" && !p.autoScale() {
			return errMissingProperty("autoScaleFormula")
		}
		if spec.AutoScaleFormula != "" {
			p.w.AutoScaleFormula = spec.AutoScaleFormula
		}
		if spec.AutoScaleEvaluationInterval != "" {
			p.w.AutoScaleEvaluationInterval = spec.AutoScaleEvaluationInterval
		} else if p.w.AutoScaleEvaluationInterval == "" {
			p.w.AutoScaleEvaluationInterval = "PT15M"
		}
		p.w.EnableAutoScale = ptr(true)
		d, l, _ := s.evalFormula(p, p.w.AutoScaleFormula)
		p.w.TargetDedicatedNodes, p.w.TargetLowPriorityNodes = ptr(int32(d)), ptr(int32(l))
		s.reconcileNodesLocked(p, "")
		return nil
	})
}

func (s *Server) disableAutoScale(c *reqCtx, id string) {
	s.poolWrite(c, id, "disableautoscale", http.StatusOK, func(p *poolEntry) *apiError {
		p.w.EnableAutoScale = ptr(false)
		return nil
	})
}

func (s *Server) evaluateAutoScale(c *reqCtx, id string) {
	var spec autoScaleSpec
	if aerr := c.decode(maxBody, &spec); aerr != nil {
		c.fail(aerr)
		return
	}
	if spec.AutoScaleFormula == "" {
		c.fail(errMissingProperty("autoScaleFormula"))
		return
	}
	p, ok := s.lockPool(c, id)
	if !ok || !s.proceed(c, poolDeleting(p)) {
		return
	}
	if !p.autoScale() {
		s.mu.Unlock()
		c.fail(newErr(http.StatusConflict, "AutoScalingNotEnabled", "Autoscale is not enabled on the pool."))
		return
	}
	_, _, res := s.evalFormula(p, spec.AutoScaleFormula)
	s.mu.Unlock()
	body := marshalEntity(&autoScaleRun{Timestamp: now(), Results: res}, nil)
	c.writeJSON(http.StatusOK, "Microsoft.Azure.Batch.Protocol.Entities.AutoScaleRun", body)
}

func (s *Server) renderNodeLocked(n *node) *nodeWire {
	w := n.w
	w.URL = s.poolURL(n.pool.w.ID) + "/nodes/" + n.w.ID
	w.RunningTasksCount = int32(len(n.tasks))
	w.RunningTaskSlotsCount = int32(n.used)
	w.RecentTasks = nil
	for t := range n.tasks {
		w.RecentTasks = append(w.RecentTasks, recentTask{TaskURL: s.url + "/jobs/" + t.job.w.ID + "/tasks/" + t.w.ID,
			JobID: t.job.w.ID, TaskID: t.w.ID, TaskState: t.w.State})
	}
	return &w
}

func (s *Server) listNodes(c *reqCtx, poolID string) {
	listByKey(s, c, "nodes", nodeSchema, nodeWire{},
		func() ([]*node, *apiError) {
			p, aerr := s.findPool(poolID)
			if aerr != nil {
				return nil, aerr
			}
			return p.nodes, nil
		},
		func(n *node) keyed {
			w := s.renderNodeLocked(n)
			return keyed{key: n.w.ID, get: nodeGetter(w), v: w}
		})
}

func (s *Server) getNode(c *reqCtx, poolID, nodeID string) {
	sel, aerr := c.parseSelect(nodeWire{})
	if aerr != nil {
		c.fail(aerr)
		return
	}
	p, ok := s.lockPool(c, poolID)
	if !ok {
		return
	}
	for _, n := range p.nodes {
		if strings.EqualFold(n.w.ID, nodeID) {
			body := marshalEntity(s.renderNodeLocked(n), sel)
			s.mu.Unlock()
			c.writeJSON(http.StatusOK, "nodes/@Element", body)
			return
		}
	}
	s.mu.Unlock()
	c.fail(errNodeNotFound)
}
