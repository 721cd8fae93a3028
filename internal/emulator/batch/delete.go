package batch

import (
	"net/http"
	"time"
)

// Deleting a job or a pool goes through the state "deleting", as in Batch:
// the entity stays visible with that state for Options.DeletionDelay, its
// work is stopped at once, and every write to it (or to its tasks) fails
// with 409 JobBeingDeleted or PoolBeingDeleted. Then it vanishes
// (docs/batch-standin.md, "Deleting").

const stateDeleting = "deleting"

var (
	errJobBeingDeleted = newErr(http.StatusConflict, "JobBeingDeleted",
		"The specified job has been marked for deletion and is being reclaimed.")
	errPoolBeingDeleted = newErr(http.StatusConflict, "PoolBeingDeleted",
		"The specified pool has been marked for deletion and is being reclaimed.")
)

// poolDeleting is errPoolBeingDeleted for a pool in state deleting.
func poolDeleting(p *poolEntry) *apiError {
	if p.w.State == stateDeleting {
		return errPoolBeingDeleted
	}
	return nil
}

// lockTaskWrite is lockTask for a write: a task of a job being deleted
// answers 409 JobBeingDeleted.
func (s *Server) lockTaskWrite(c *reqCtx, jobID, taskID string) (*taskEntry, bool) {
	t, ok := s.lockTask(c, jobID, taskID)
	if !ok {
		return nil, false
	}
	if t.job.w.State == stateDeleting {
		return nil, s.proceed(c, errJobBeingDeleted)
	}
	return t, true
}

// laterLocked runs fn with s.mu held after d, unless the server closes
// first; after, when fn returns one, runs once s.mu is released. The
// caller holds s.mu. A negative d runs fn now.
func (s *Server) laterLocked(d time.Duration, fn func() (after func())) {
	if d < 0 {
		if after := fn(); after != nil {
			go after()
		}
		return
	}
	var tm *time.Timer
	tm = time.AfterFunc(d, func() {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return
		}
		delete(s.pending, tm)
		after := fn()
		s.mu.Unlock()
		if after != nil {
			after()
		}
	})
	s.pending[tm] = struct{}{}
}

func (s *Server) deleteJob(c *reqCtx, id string) {
	j, ok := s.lockJob(c, id)
	if !ok || !s.writable(c, &j.w) {
		return
	}
	if j.w.State == stateDeleting {
		s.proceed(c, errJobBeingDeleted)
		return
	}
	s.markJobDeletingLocked(j)
	seq := s.persistJob(j, false)
	s.laterLocked(s.opts.DeletionDelay, func() func() { return s.removeJobLocked(j) })
	s.mu.Unlock()
	_ = s.journal.wait(seq)
	s.log.Info("batch job deleting", "job", j.w.ID)
	c.noContent(http.StatusAccepted, "", time.Time{}, "")
}

// markJobDeletingLocked moves j to deleting and stops its tasks: none is
// scheduled any more and running processes are killed.
func (s *Server) markJobDeletingLocked(j *jobEntry) {
	at := now()
	prev := j.w.StateTransitionTime
	j.w.PreviousState = j.w.State
	j.w.PreviousStateTransitionTime = &prev
	j.w.State = stateDeleting
	j.w.StateTransitionTime = at
	for _, t := range j.list {
		if t.deleted {
			continue
		}
		t.queued = false
		if t.run != nil {
			t.run.kill(killDelete)
		}
	}
}

// removeJobLocked forgets a deleting job and its tasks; the returned
// function removes the task directories.
func (s *Server) removeJobLocked(j *jobEntry) func() {
	if s.jobs[j.key] != j {
		return nil
	}
	dirs := s.dropJobTasksLocked(j)
	s.dropJobLocked(j.key)
	s.persistJob(j, true)
	s.log.Info("batch job deleted", "job", j.w.ID)
	return func() { removeDirs(dirs) }
}

// dropJobTasksLocked drops every task of j and returns their directories.
func (s *Server) dropJobTasksLocked(j *jobEntry) (dirs []string) {
	for _, t := range j.list {
		if !t.deleted {
			dirs = append(dirs, s.dropTaskLocked(t)...)
		}
	}
	return dirs
}

func (s *Server) deletePool(c *reqCtx, id string) {
	p, ok := s.lockPool(c, id)
	if !ok || !s.writable(c, &p.w) || !s.proceed(c, poolDeleting(p)) {
		return
	}
	at := now()
	p.w.State = stateDeleting
	p.w.StateTransitionTime = at
	for _, n := range append([]*node(nil), p.nodes...) {
		s.removeNodeLocked(n, "requeue")
	}
	s.countNodesLocked(p)
	seq := s.persistPool(p, false)
	s.laterLocked(s.opts.DeletionDelay, func() func() { return s.removePoolLocked(p) })
	s.mu.Unlock()
	_ = s.journal.wait(seq)
	s.log.Info("batch pool deleting", "pool", p.w.ID)
	c.noContent(http.StatusAccepted, "", time.Time{}, "")
}

func (s *Server) removePoolLocked(p *poolEntry) func() {
	if s.pools[p.key] != p {
		return nil
	}
	s.dropPoolLocked(p.key)
	s.persistPool(p, true)
	s.log.Info("batch pool deleted", "pool", p.w.ID)
	return nil
}
