package batch

// KillRunningTasks kills every running task process as if its node had been
// lost: the tasks go back to active with requeueCount+1 (not a retry, so it
// happens even with maxTaskRetryCount 0) and run again on a free slot. It
// returns the number of tasks killed. For chaos tests.
func (s *Server) KillRunningTasks() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for r := range s.runs {
		if r.killReason() == killNone {
			r.kill(killRequeue)
			n++
		}
	}
	return n
}

// RunningTasks returns how many task processes are running now.
func (s *Server) RunningTasks() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.runs)
}
