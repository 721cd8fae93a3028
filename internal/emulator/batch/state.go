package batch

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Task, job and pool states as they appear on the wire (lower case).
const (
	stateActive    = "active"
	stateRunning   = "running"
	stateCompleted = "completed"
)

type poolEntry struct {
	key      string
	w        poolWire
	nodes    []*node
	nextNode int
}

type jobEntry struct {
	key     string
	seq     uint64
	w       jobWire
	tasks   map[string]*taskEntry
	list    []*taskEntry // creation order (seq); may hold deleted entries
	dead    int          // deleted entries still in list
	queue   []*taskEntry // active tasks waiting for a slot, FIFO
	head    int
	running int
}

type taskEntry struct {
	key     string
	seq     uint64
	job     *jobEntry
	w       taskWire
	deleted bool
	queued  bool
	node    *node
	run     *run
	dir     string // task root directory on disk of the last run
	// warnedSlots: the "requiredSlots > taskSlotsPerNode" warning was logged.
	warnedSlots bool
}

func (t *taskEntry) slots() int {
	if t.w.RequiredSlots != nil && *t.w.RequiredSlots > 0 {
		return int(*t.w.RequiredSlots)
	}
	return 1
}

// setState moves a task to state, keeping previousState like Batch.
func (t *taskEntry) setState(state string, at time.Time) {
	if t.w.State == state {
		return
	}
	prev := t.w.StateTransitionTime
	t.w.PreviousState = t.w.State
	t.w.PreviousStateTransitionTime = &prev
	t.w.State = state
	t.w.StateTransitionTime = at
}

func (j *jobEntry) enqueue(t *taskEntry) {
	if t.queued {
		return
	}
	t.queued = true
	if j.head > 1024 && j.head > len(j.queue)/2 {
		n := copy(j.queue, j.queue[j.head:])
		clear(j.queue[n:])
		j.queue = j.queue[:n]
		j.head = 0
	}
	j.queue = append(j.queue, t)
}

// removeTask drops t from the job's indexes (the caller journals it).
func (j *jobEntry) removeTask(t *taskEntry) {
	t.deleted = true
	t.queued = false
	delete(j.tasks, t.key)
	j.dead++
	if j.dead > 1024 && j.dead > len(j.list)/2 {
		live := j.list[:0]
		for _, x := range j.list {
			if !x.deleted {
				live = append(live, x)
			}
		}
		clear(j.list[len(live):])
		j.list = live
		j.dead = 0
	}
}

// --- persistence ---

func (s *Server) nextSeq() uint64 {
	s.seq++
	return s.seq
}

func (s *Server) persistPool(p *poolEntry, del bool) uint64 {
	if s.journal == nil {
		return 0
	}
	rec := record{Kind: "pool", Op: "put", Key: p.key}
	if del {
		rec.Op = "del"
	} else {
		rec.V, _ = json.Marshal(&p.w)
	}
	return s.appendRecord(rec)
}

func (s *Server) persistJob(j *jobEntry, del bool) uint64 {
	if s.journal == nil {
		return 0
	}
	rec := record{Kind: "job", Op: "put", Key: j.key, Seq: j.seq}
	if del {
		rec.Op = "del"
	} else {
		rec.V, _ = json.Marshal(&j.w)
	}
	return s.appendRecord(rec)
}

func (s *Server) persistTask(t *taskEntry, del bool) uint64 {
	if s.journal == nil {
		return 0
	}
	rec := record{Kind: "task", Op: "put", Job: t.job.key, Key: t.key, Seq: t.seq, Dir: t.dir}
	if del {
		rec.Op = "del"
	} else {
		rec.V, _ = json.Marshal(&t.w)
	}
	return s.appendRecord(rec)
}

// appendRecord journals rec (server lock held) and compacts the log when
// it has grown well past the live state.
func (s *Server) appendRecord(rec record) uint64 {
	n := s.journal.enqueue(rec)
	s.records++
	if s.records > 20000 && s.records > 4*s.liveCountLocked() {
		if err := s.journal.compact(s.snapshotLocked()); err != nil {
			s.log.Error("batch emulator: compact state log", "err", err)
		} else {
			s.records = s.liveCountLocked()
		}
	}
	return n
}

func (s *Server) liveCountLocked() int {
	n := len(s.poolList)
	for _, j := range s.jobList {
		n += 1 + len(j.tasks)
	}
	return n
}

func (s *Server) snapshotLocked() []record {
	recs := make([]record, 0, s.liveCountLocked())
	for _, p := range s.poolList {
		v, _ := json.Marshal(&p.w)
		recs = append(recs, record{Kind: "pool", Op: "put", Key: p.key, V: v})
	}
	for _, j := range s.jobList {
		v, _ := json.Marshal(&j.w)
		recs = append(recs, record{Kind: "job", Op: "put", Key: j.key, Seq: j.seq, V: v})
		for _, t := range j.list {
			if t.deleted {
				continue
			}
			v, _ := json.Marshal(&t.w)
			recs = append(recs, record{Kind: "task", Op: "put", Job: j.key, Key: t.key, Seq: t.seq, Dir: t.dir, V: v})
		}
	}
	return recs
}

// load replays the state log, requeues tasks that were running (node loss,
// requeueCount+1), writes a compacted log and opens it for appending.
func (s *Server) load() error {
	recs, err := readJournal(s.root)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rec := range recs {
		if rec.Seq > s.seq {
			s.seq = rec.Seq
		}
		if err := s.replayLocked(rec); err != nil {
			return err
		}
	}
	removeDirs(s.finishDeletionsLocked())
	s.resumeTasksLocked()
	sort.Slice(s.jobList, func(a, b int) bool { return s.jobList[a].seq < s.jobList[b].seq })
	for _, p := range s.poolList {
		p.w.CurrentDedicatedNodes, p.w.CurrentLowPriorityNodes = 0, 0
	}
	j, err := openJournal(s.root, s.snapshotLocked())
	if err != nil {
		return err
	}
	s.journal = j
	s.records = s.liveCountLocked()
	return nil
}

// replayLocked applies one state-log record.
func (s *Server) replayLocked(rec record) error {
	switch rec.Kind {
	case "pool":
		if rec.Op == "del" {
			s.dropPoolLocked(rec.Key)
			return nil
		}
		var w poolWire
		if err := json.Unmarshal(rec.V, &w); err != nil {
			return fmt.Errorf("replay pool %s: %w", rec.Key, err)
		}
		if p, ok := s.pools[rec.Key]; ok {
			p.w = w
			return nil
		}
		p := &poolEntry{key: rec.Key, w: w}
		s.pools[rec.Key] = p
		s.poolList = append(s.poolList, p)
	case "job":
		if rec.Op == "del" {
			s.dropJobLocked(rec.Key)
			return nil
		}
		var w jobWire
		if err := json.Unmarshal(rec.V, &w); err != nil {
			return fmt.Errorf("replay job %s: %w", rec.Key, err)
		}
		if j, ok := s.jobs[rec.Key]; ok {
			j.w = w
			return nil
		}
		j := &jobEntry{key: rec.Key, seq: rec.Seq, w: w, tasks: map[string]*taskEntry{}}
		s.jobs[rec.Key] = j
		s.jobList = append(s.jobList, j)
	case "task":
		return s.replayTaskLocked(rec)
	}
	return nil
}

func (s *Server) replayTaskLocked(rec record) error {
	j, ok := s.jobs[rec.Job]
	if !ok {
		return nil
	}
	if rec.Op == "del" {
		if t, ok := j.tasks[rec.Key]; ok {
			j.removeTask(t)
		}
		return nil
	}
	var w taskWire
	if err := json.Unmarshal(rec.V, &w); err != nil {
		return fmt.Errorf("replay task %s: %w", rec.Key, err)
	}
	if t, ok := j.tasks[rec.Key]; ok {
		t.w, t.dir = w, rec.Dir
		return nil
	}
	t := &taskEntry{key: rec.Key, seq: rec.Seq, job: j, w: w, dir: rec.Dir}
	j.tasks[rec.Key] = t
	j.list = append(j.list, t)
	return nil
}

// finishDeletionsLocked removes the jobs and pools that a stop caught in
// state deleting, and returns the task directories to remove.
func (s *Server) finishDeletionsLocked() (dirs []string) {
	for _, j := range append([]*jobEntry(nil), s.jobList...) {
		if j.w.State == stateDeleting {
			dirs = append(dirs, s.dropJobTasksLocked(j)...)
			s.removeJobLocked(j)
		}
	}
	for _, p := range append([]*poolEntry(nil), s.poolList...) {
		if p.w.State == stateDeleting {
			s.removePoolLocked(p)
		}
	}
	return dirs
}

// resumeTasksLocked queues the active tasks, requeues those that were
// running when the process stopped (node loss, requeueCount+1) and arms
// the retention of completed ones.
func (s *Server) resumeTasksLocked() {
	at := now()
	for _, j := range s.jobList {
		sort.Slice(j.list, func(a, b int) bool { return j.list[a].seq < j.list[b].seq })
		for _, t := range j.list {
			if t.deleted {
				continue
			}
			switch t.w.State {
			case stateCompleted:
				s.scheduleRetentionLocked(t)
			case stateActive:
				j.enqueue(t)
			default: // running or preparing when the process stopped
				s.requeueLocked(t, at)
				s.log.Info("batch task requeued after restart", "job", j.w.ID, "task", t.w.ID,
					"requeueCount", t.w.ExecutionInfo.RequeueCount)
			}
		}
	}
}

// requeueLocked puts a task that was on a node back to active (node loss or
// requeue deallocation). It does not count as a retry.
func (s *Server) requeueLocked(t *taskEntry, at time.Time) {
	if t.w.ExecutionInfo == nil {
		t.w.ExecutionInfo = &taskExecutionInfo{}
	}
	ei := *t.w.ExecutionInfo
	ei.RequeueCount++
	ei.LastRequeueTime = &at
	t.w.ExecutionInfo = &ei
	t.w.NodeInfo = nil
	t.node = nil
	t.run = nil
	t.setState(stateActive, at)
	t.job.enqueue(t)
	s.persistTask(t, false)
}

func (s *Server) dropPoolLocked(key string) {
	delete(s.pools, key)
	for i, p := range s.poolList {
		if p.key == key {
			s.poolList = append(s.poolList[:i], s.poolList[i+1:]...)
			break
		}
	}
}

func (s *Server) dropJobLocked(key string) {
	delete(s.jobs, key)
	for i, j := range s.jobList {
		if j.key == key {
			s.jobList = append(s.jobList[:i], s.jobList[i+1:]...)
			break
		}
	}
}

func lower(s string) string { return strings.ToLower(s) }
