package batch_test

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"

	"github.com/ffpipe/ffpipe/internal/emulator/batch"
	"github.com/ffpipe/ffpipe/internal/emulator/batch/batchtest"
)

func readTaskFile(t *testing.T, c *azbatch.Client, job, task, name string) string {
	t.Helper()
	r, err := c.GetTaskFile(ctxT(t), job, task, name, nil)
	if err != nil {
		t.Fatalf("get file %s: %v", name, err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return string(b)
}

func TestTaskLifecycle(t *testing.T) {
	_, c := start(t, batch.Options{MaxSlots: 4})
	ctx := ctxT(t)
	createPool(t, c, "p", 1, 4, nil)
	createJob(t, c, "j", "p", func(j *azbatch.CreateJobContent) {
		j.CommonEnvironmentSettings = []azbatch.EnvironmentSetting{{Name: to.Ptr("COMMON"), Value: to.Ptr("c")}}
	})

	ok := shTask("ok", `echo hello; echo oops >&2; test \"$COMMON\" = c && test \"$FOO\" = bar && test \"$AZ_BATCH_TASK_ID\" = ok && test \"$AZ_BATCH_JOB_ID\" = j && test \"$(pwd)\" = \"$AZ_BATCH_TASK_WORKING_DIR\" && test -d \"$AZ_BATCH_NODE_SHARED_DIR\"`)
	ok.EnvironmentSettings = []azbatch.EnvironmentSetting{{Name: to.Ptr("FOO"), Value: to.Ptr("bar")}}
	exit3 := shTask("exit3", "exit 3")
	exit3.Constraints = &azbatch.TaskConstraints{MaxTaskRetryCount: to.Ptr[int32](2)}
	slow := shTask("slow", "sleep 30")
	slow.Constraints = &azbatch.TaskConstraints{MaxWallClockTime: to.Ptr("PT0.5S")}
	noShell := azbatch.CreateTaskContent{ID: to.Ptr("noshell"), CommandLine: to.Ptr(`echo $HOME "a  b" 'c d'`)}
	missing := azbatch.CreateTaskContent{ID: to.Ptr("missing"), CommandLine: to.Ptr("no-such-program-xyz")}
	for _, tk := range []azbatch.CreateTaskContent{ok, exit3, slow, noShell, missing} {
		addTask(t, c, "j", tk)
	}

	got := waitState(t, c, "j", "ok", azbatch.TaskStateCompleted)
	if *got.ExecutionInfo.Result != azbatch.TaskExecutionResultSuccess || *got.ExecutionInfo.ExitCode != 0 {
		t.Errorf("ok: got result %v exit %v failure %+v, want success 0", *got.ExecutionInfo.Result, *got.ExecutionInfo.ExitCode, got.ExecutionInfo.FailureInfo)
	}
	if got.NodeInfo == nil || got.NodeInfo.NodeID == nil || got.ExecutionInfo.StartTime == nil || got.ExecutionInfo.EndTime == nil || got.PreviousState == nil {
		t.Errorf("ok: got nodeInfo %+v executionInfo %+v, want node, start and end times", got.NodeInfo, got.ExecutionInfo)
	}
	if out := readTaskFile(t, c, "j", "ok", "stdout.txt"); out != "hello\n" {
		t.Errorf("ok: got stdout %q, want hello", out)
	}
	if out := readTaskFile(t, c, "j", "ok", "stderr.txt"); out != "oops\n" {
		t.Errorf("ok: got stderr %q, want oops", out)
	}

	got = waitState(t, c, "j", "exit3", azbatch.TaskStateCompleted)
	ei := got.ExecutionInfo
	if *ei.Result != azbatch.TaskExecutionResultFailure || *ei.ExitCode != 3 || *ei.RetryCount != 2 || ei.FailureInfo == nil ||
		*ei.FailureInfo.Code != "FailureExitCode" || *ei.FailureInfo.Category != azbatch.ErrorCategoryUserError || ei.LastRetryTime == nil {
		t.Errorf("exit3: got %+v, want failure, exit 3, retryCount 2, FailureExitCode usererror", ei)
	}

	got = waitState(t, c, "j", "slow", azbatch.TaskStateCompleted)
	if fi := got.ExecutionInfo.FailureInfo; fi == nil || *fi.Code != "MaxWallClockTimeExpiry" || *got.ExecutionInfo.Result != azbatch.TaskExecutionResultFailure {
		t.Errorf("slow: got %+v, want failure MaxWallClockTimeExpiry", got.ExecutionInfo)
	}

	waitState(t, c, "j", "noshell", azbatch.TaskStateCompleted)
	if out := readTaskFile(t, c, "j", "noshell", "stdout.txt"); out != "$HOME a  b c d\n" {
		t.Errorf("noshell: got stdout %q, want the literal $HOME (no shell) and quoted args", out)
	}
	got = waitState(t, c, "j", "missing", azbatch.TaskStateCompleted)
	if fi := got.ExecutionInfo.FailureInfo; fi == nil || *fi.Code != "CommandProgramNotFound" {
		t.Errorf("missing: got %+v, want CommandProgramNotFound", got.ExecutionInfo)
	}

	// Filters on executionInfo.
	count := func(filter string) int {
		n := 0
		for p := c.NewListTasksPager("j", &azbatch.ListTasksOptions{Filter: to.Ptr(filter)}); p.More(); {
			page, err := p.NextPage(ctx)
			if err != nil {
				t.Fatalf("list %q: %v", filter, err)
			}
			n += len(page.Value)
		}
		return n
	}
	for _, tt := range []struct {
		filter string
		want   int
	}{
		{"state eq 'completed'", 5},
		{"executionInfo/result eq 'Failure'", 3},
		{"executionInfo/result eq 'success'", 2},
		{"(executionInfo/exitCode lt 0) or (executionInfo/exitCode gt 0)", 2},
		{"executionInfo/exitCode eq 3", 1},
	} {
		if got := count(tt.filter); got != tt.want {
			t.Errorf("filter %q: got %d tasks, want %d", tt.filter, got, tt.want)
		}
	}
	counts, err := c.GetJobTaskCounts(ctx, "j", nil)
	if err != nil {
		t.Fatal(err)
	}
	if tc := counts.TaskCounts; *tc.Completed != 5 || *tc.Succeeded != 2 || *tc.Failed != 3 {
		t.Errorf("got counts completed %d succeeded %d failed %d, want 5 2 3", *tc.Completed, *tc.Succeeded, *tc.Failed)
	}

	// Reactivate the failed task: it runs again (and fails again).
	if _, err := c.ReactivateTask(ctx, "j", "exit3", nil); err != nil {
		t.Fatalf("reactivate: %v", err)
	}
	_, err = c.ReactivateTask(ctx, "j", "ok", nil)
	wantCode(t, err, http.StatusConflict, "TaskSucceeded")
	waitFor(t, "exit3 to run again", 30*time.Second, func() bool {
		tk := getTask(t, c, "j", "exit3")
		return *tk.State == azbatch.TaskStateCompleted && *tk.ExecutionInfo.RetryCount == 2
	})

	// Terminate a running task.
	addTask(t, c, "j", shTask("long", "sleep 30"))
	waitState(t, c, "j", "long", azbatch.TaskStateRunning)
	if _, err := c.TerminateTask(ctx, "j", "long", nil); err != nil {
		t.Fatalf("terminate: %v", err)
	}
	got = waitState(t, c, "j", "long", azbatch.TaskStateCompleted)
	if fi := got.ExecutionInfo.FailureInfo; fi == nil || *fi.Code != "TaskEnded" {
		t.Errorf("long: got %+v, want TaskEnded", got.ExecutionInfo)
	}
	_, err = c.TerminateTask(ctx, "j", "long", nil)
	wantCode(t, err, http.StatusConflict, "TaskCompleted")

	// Delete removes the task and its directory.
	if _, err := c.DeleteTask(ctx, "j", "ok", nil); err != nil {
		t.Fatalf("delete: %v", err)
	}
	_, err = c.GetTask(ctx, "j", "ok", nil)
	wantCode(t, err, http.StatusNotFound, "TaskNotFound")
}

func TestStartTask(t *testing.T) {
	_, c := start(t, batch.Options{MaxSlots: 4})
	ctx := ctxT(t)
	createPool(t, c, "bad", 1, 1, func(p *azbatch.CreatePoolContent) {
		p.StartTask = &azbatch.StartTask{CommandLine: to.Ptr(`/bin/sh -c "exit 1"`), WaitForSuccess: to.Ptr(true), MaxTaskRetryCount: to.Ptr[int32](1)}
	})
	createPool(t, c, "good", 1, 1, func(p *azbatch.CreatePoolContent) {
		p.StartTask = &azbatch.StartTask{CommandLine: to.Ptr(`/bin/sh -c "test -z \"$AZ_BATCH_TASK_ID\" && echo ready > $AZ_BATCH_NODE_SHARED_DIR/ready"`)}
	})
	var node azbatch.Node
	waitFor(t, "start task failure", 30*time.Second, func() bool {
		nodes := listNodes(t, c, "bad")
		node = nodes[0]
		return *node.State == azbatch.NodeStateStartTaskFailed
	})
	if si := node.StartTaskInfo; si == nil || *si.Result != azbatch.TaskExecutionResultFailure || *si.ExitCode != 1 || *si.RetryCount != 1 {
		t.Errorf("got start task info %+v, want failure, exit 1, retryCount 1", node.StartTaskInfo)
	}
	createJob(t, c, "jbad", "bad", nil)
	addTask(t, c, "jbad", shTask("t", "true"))
	createJob(t, c, "jgood", "good", nil)
	addTask(t, c, "jgood", shTask("t", `cat $AZ_BATCH_NODE_SHARED_DIR/ready`))
	got := waitState(t, c, "jgood", "t", azbatch.TaskStateCompleted)
	if *got.ExecutionInfo.Result != azbatch.TaskExecutionResultSuccess {
		t.Errorf("got %+v, want success after the start task", got.ExecutionInfo)
	}
	if st := getTask(t, c, "jbad", "t").State; *st != azbatch.TaskStateActive {
		t.Errorf("got state %v on a pool whose only node failed its start task, want active", *st)
	}
	_ = ctx
}

func TestPackAndSpread(t *testing.T) {
	for _, tt := range []struct {
		fill      azbatch.NodeFillType
		wantNodes int
	}{
		{azbatch.NodeFillTypePack, 1},
		{azbatch.NodeFillTypeSpread, 2},
	} {
		t.Run(string(tt.fill), func(t *testing.T) {
			s, c := start(t, batch.Options{MaxSlots: 4})
			createPool(t, c, "p", 2, 2, func(p *azbatch.CreatePoolContent) {
				p.TaskSchedulingPolicy = &azbatch.TaskSchedulingPolicy{NodeFillType: to.Ptr(tt.fill)}
			})
			createJob(t, c, "j", "p", nil)
			gate := filepath.Join(t.TempDir(), "go")
			script := "while [ ! -f " + gate + " ]; do sleep 0.02; done"
			addTask(t, c, "j", shTask("a", script))
			addTask(t, c, "j", shTask("b", script))
			a := waitState(t, c, "j", "a", azbatch.TaskStateRunning)
			b := waitState(t, c, "j", "b", azbatch.TaskStateRunning)
			nodes := map[string]bool{*a.NodeInfo.NodeID: true, *b.NodeInfo.NodeID: true}
			if len(nodes) != tt.wantNodes {
				t.Errorf("got tasks on %d nodes, want %d", len(nodes), tt.wantNodes)
			}
			if err := os.WriteFile(gate, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			waitState(t, c, "j", "a", azbatch.TaskStateCompleted)
			waitState(t, c, "j", "b", azbatch.TaskStateCompleted)
			if n := s.RunningTasks(); n != 0 {
				t.Errorf("got %d running tasks, want 0", n)
			}
		})
	}
}

func TestRestartRequeuesRunningTasks(t *testing.T) {
	dir := t.TempDir()
	gate := filepath.Join(t.TempDir(), "go")
	s1 := batch.New(batch.Options{DataDir: dir, MaxSlots: 2})
	if err := s1.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	c1 := clientFor(t, s1)
	createPool(t, c1, "p", 1, 2, nil)
	createJob(t, c1, "j", "p", nil)
	addTask(t, c1, "j", shTask("done", "true"))
	waitState(t, c1, "j", "done", azbatch.TaskStateCompleted)
	addTask(t, c1, "j", shTask("Held", "while [ ! -f "+gate+" ]; do sleep 0.02; done"))
	waitState(t, c1, "j", "held", azbatch.TaskStateRunning)
	if err := s1.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}

	s2, c2 := start(t, batch.Options{DataDir: dir, MaxSlots: 2})
	_ = s2
	got := waitState(t, c2, "j", "held", azbatch.TaskStateCompleted)
	if *got.ID != "Held" || *got.ExecutionInfo.RequeueCount != 1 || *got.ExecutionInfo.RetryCount != 0 || *got.ExecutionInfo.Result != azbatch.TaskExecutionResultSuccess {
		t.Errorf("got %s %+v, want Held requeued once, no retry, success", *got.ID, got.ExecutionInfo)
	}
	done := getTask(t, c2, "j", "done")
	if *done.State != azbatch.TaskStateCompleted || *done.ExecutionInfo.RequeueCount != 0 {
		t.Errorf("got completed task %v requeue %d after restart, want completed, 0", *done.State, *done.ExecutionInfo.RequeueCount)
	}
	if _, err := c2.GetPool(ctxT(t), "p", nil); err != nil {
		t.Errorf("pool after restart: %v", err)
	}
	_, err := c2.CreateTask(ctxT(t), "j", shTask("HELD", "true"), nil)
	wantCode(t, err, http.StatusConflict, "TaskExists")
}

func TestKillRunningTasks(t *testing.T) {
	s, c := start(t, batch.Options{MaxSlots: 1})
	createPool(t, c, "p", 1, 1, nil)
	createJob(t, c, "j", "p", nil)
	marker := filepath.Join(t.TempDir(), "ran")
	// First run: leave a marker and block; second run: see the marker and exit 0.
	addTask(t, c, "j", shTask("t", "if [ -f "+marker+" ]; then exit 0; fi; touch "+marker+"; sleep 30"))
	waitFor(t, "first run", 30*time.Second, func() bool {
		_, err := os.Stat(marker)
		return err == nil
	})
	if n := s.KillRunningTasks(); n != 1 {
		t.Fatalf("got %d killed, want 1", n)
	}
	got := waitState(t, c, "j", "t", azbatch.TaskStateCompleted)
	if *got.ExecutionInfo.RequeueCount != 1 || *got.ExecutionInfo.Result != azbatch.TaskExecutionResultSuccess {
		t.Errorf("got %+v, want requeueCount 1 and success", got.ExecutionInfo)
	}
}

func TestOnAllTasksCompleteTerminateJob(t *testing.T) {
	_, c := start(t, batch.Options{MaxSlots: 1})
	ctx := ctxT(t)
	createPool(t, c, "p", 1, 1, nil)
	createJob(t, c, "j", "p", nil)
	addTask(t, c, "j", shTask("t", "true"))
	if _, err := c.UpdateJob(ctx, "j", azbatch.UpdateJobContent{OnAllTasksComplete: to.Ptr(azbatch.OnAllTasksCompleteTerminateJob)}, nil); err != nil {
		t.Fatalf("update job: %v", err)
	}
	waitFor(t, "job completed", 30*time.Second, func() bool {
		j, err := c.GetJob(ctx, "j", nil)
		return err == nil && *j.State == azbatch.JobStateCompleted && strings.EqualFold(*j.ExecutionInfo.TerminationReason, "AllTasksCompleted")
	})
}

func clientFor(t *testing.T, s *batch.Server) *azbatch.Client {
	t.Helper()
	return batchtest.Client(t, s)
}

func TestShrinkAndDeletePool(t *testing.T) {
	gate := filepath.Join(t.TempDir(), "go")
	hold := "while [ ! -f " + gate + " ]; do sleep 0.02; done"
	tests := []struct {
		name        string
		shrink      func(c *azbatch.Client) error
		wantState   azbatch.TaskState
		wantRequeue int32
	}{
		{"resize requeue", func(c *azbatch.Client) error {
			_, err := c.ResizePool(ctxT(t), "p", azbatch.ResizePoolContent{TargetDedicatedNodes: to.Ptr[int32](0),
				NodeDeallocationOption: to.Ptr(azbatch.NodeDeallocationOptionRequeue)}, nil)
			return err
		}, azbatch.TaskStateActive, 1},
		{"resize terminate", func(c *azbatch.Client) error {
			_, err := c.ResizePool(ctxT(t), "p", azbatch.ResizePoolContent{TargetDedicatedNodes: to.Ptr[int32](0),
				NodeDeallocationOption: to.Ptr(azbatch.NodeDeallocationOptionTerminate)}, nil)
			return err
		}, azbatch.TaskStateCompleted, 0},
		{"delete pool", func(c *azbatch.Client) error {
			_, err := c.DeletePool(ctxT(t), "p", nil)
			return err
		}, azbatch.TaskStateActive, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, c := start(t, batch.Options{MaxSlots: 1})
			createPool(t, c, "p", 1, 1, nil)
			createJob(t, c, "j", "p", nil)
			addTask(t, c, "j", shTask("t", hold))
			waitState(t, c, "j", "t", azbatch.TaskStateRunning)
			if err := tt.shrink(c); err != nil {
				t.Fatal(err)
			}
			got := waitState(t, c, "j", "t", tt.wantState)
			if *got.ExecutionInfo.RequeueCount != tt.wantRequeue {
				t.Errorf("got requeueCount %d, want %d", *got.ExecutionInfo.RequeueCount, tt.wantRequeue)
			}
			if tt.wantState == azbatch.TaskStateCompleted {
				if fi := got.ExecutionInfo.FailureInfo; fi == nil || *got.ExecutionInfo.Result != azbatch.TaskExecutionResultFailure {
					t.Errorf("got %+v, want a failure", got.ExecutionInfo)
				}
			}
			waitFor(t, "no running processes", 10*time.Second, func() bool { return s.RunningTasks() == 0 })
		})
	}
}

func TestRetention(t *testing.T) {
	_, c := start(t, batch.Options{MaxSlots: 1})
	createPool(t, c, "p", 1, 1, nil)
	createJob(t, c, "j", "p", nil)
	tk := shTask("t", "echo hi")
	tk.Constraints = &azbatch.TaskConstraints{RetentionTime: to.Ptr("PT0.2S")}
	addTask(t, c, "j", tk)
	waitState(t, c, "j", "t", azbatch.TaskStateCompleted)
	waitFor(t, "task directory removed", 10*time.Second, func() bool {
		_, err := c.GetTaskFile(ctxT(t), "j", "t", "stdout.txt", nil)
		return err != nil && respErr(t, err).ErrorCode == "FileNotFound"
	})
	if got := getTask(t, c, "j", "t"); *got.State != azbatch.TaskStateCompleted {
		t.Errorf("got state %v after retention, want completed (only the files go)", *got.State)
	}
}

// TestCrashRecovery copies the state log of a live server (as a kill -9
// would leave it, plus a torn last line) and starts a second server on the
// copy: every acknowledged add is there and the running task is requeued.
func TestCrashRecovery(t *testing.T) {
	dir := t.TempDir()
	gate := filepath.Join(t.TempDir(), "go")
	_, c := start(t, batch.Options{DataDir: dir, MaxSlots: 1})
	createPool(t, c, "p", 1, 1, nil)
	createJob(t, c, "j", "p", nil)
	addTask(t, c, "j", shTask("first", "while [ ! -f "+gate+" ]; do sleep 0.02; done"))
	waitState(t, c, "j", "first", azbatch.TaskStateRunning)
	var g azbatch.TaskGroup
	for _, id := range []string{"a", "b", "c"} {
		g.Value = append(g.Value, shTask(id, "true"))
	}
	if _, err := c.CreateTaskCollection(ctxT(t), "j", g, nil); err != nil {
		t.Fatal(err)
	}
	log, err := os.ReadFile(filepath.Join(dir, "state.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	copyDir := t.TempDir()
	torn := append(log, []byte(`{"k":"task","op":"put","job":"j","key":"zz`)...)
	if err := os.WriteFile(filepath.Join(copyDir, "state.jsonl"), torn, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, c2 := start(t, batch.Options{DataDir: copyDir, MaxSlots: 1})
	got := waitState(t, c2, "j", "first", azbatch.TaskStateCompleted)
	if *got.ExecutionInfo.RequeueCount != 1 {
		t.Errorf("got requeueCount %d, want 1", *got.ExecutionInfo.RequeueCount)
	}
	for _, id := range []string{"a", "b", "c"} {
		waitState(t, c2, "j", id, azbatch.TaskStateCompleted)
	}
	_, err = c2.GetTask(ctxT(t), "j", "zz", nil)
	wantCode(t, err, http.StatusNotFound, "TaskNotFound")
}

func TestReplaceTask(t *testing.T) {
	_, c := start(t, batch.Options{})
	ctx := ctxT(t)
	createPool(t, c, "p", 0, 1, nil)
	createJob(t, c, "j", "p", nil)
	addTask(t, c, "j", shTask("t", "true"))
	before := getTask(t, c, "j", "t")
	if _, err := c.ReplaceTask(ctx, "j", "t", azbatch.Task{Constraints: &azbatch.TaskConstraints{MaxTaskRetryCount: to.Ptr[int32](5)}}, nil); err != nil {
		t.Fatalf("replace: %v", err)
	}
	got := getTask(t, c, "j", "t")
	if *got.Constraints.MaxTaskRetryCount != 5 || *got.Constraints.RetentionTime != "P7D" || *got.ETag == *before.ETag {
		t.Errorf("got constraints %+v etag %v (before %v), want retries 5, retention kept, new ETag", got.Constraints, *got.ETag, *before.ETag)
	}
	_, err := c.ReplaceTask(ctx, "j", "t", azbatch.Task{Constraints: &azbatch.TaskConstraints{MaxWallClockTime: to.Ptr("soon")}}, nil)
	wantCode(t, err, http.StatusBadRequest, "InvalidPropertyValue")
}
