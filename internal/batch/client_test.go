package batch

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
)

func specs(t *testing.T, n int) []TaskSpec {
	t.Helper()
	out := make([]TaskSpec, n)
	for i := range out {
		out[i] = spec(t, "input", fmt.Sprintf("v/%03d.mp4", i), "")
	}
	return out
}

func TestNewClient(t *testing.T) {
	for _, ep := range []string{"", "batch.local", "ftp://x", "https://x/path", "https://x?sig=secret"} {
		_, err := NewClient(ep, nil, Options{})
		if err == nil {
			t.Errorf("NewClient(%q) = nil error, want one", ep)
		} else if strings.Contains(err.Error(), "secret") {
			t.Errorf("NewClient error leaks the query: %v", err)
		}
	}
	if s := fmt.Sprint(NewStaticToken("hunter2")); strings.Contains(s, "hunter2") {
		t.Errorf("StaticToken prints its token: %s", s)
	}
	f := newFake(t)
	c := f.client(t)
	if _, err := c.TaskExists(context.Background(), "nojob", strings.Repeat("a", 32)); !errors.Is(err, ErrJobNotFound) {
		t.Errorf("TaskExists on missing job: %v, want ErrJobNotFound", err)
	}
	if f.token != "Bearer fake-token" {
		t.Errorf("Authorization = %q, want the static token over http", f.token)
	}
}

func TestEnsureJob(t *testing.T) {
	ctx := context.Background()
	f := newFake(t)
	c := f.client(t)
	if err := c.EnsureJob(ctx, "ffpipe", "ffmpeg"); !errors.Is(err, ErrPoolNotFound) {
		t.Fatalf("EnsureJob without pool: %v, want ErrPoolNotFound", err)
	}
	f.pool = map[string]any{"id": "ffmpeg", "state": "active"}
	if err := c.EnsureJob(ctx, "ffpipe", "ffmpeg"); err != nil {
		t.Fatalf("EnsureJob: %v", err)
	}
	if err := c.EnsureJob(ctx, "ffpipe", "ffmpeg"); err != nil {
		t.Fatalf("EnsureJob again (JobExists): %v", err)
	}
	if err := c.EnsureJob(ctx, "ffpipe", "other"); err == nil {
		t.Errorf("EnsureJob on another pool: nil error, want one")
	}
}

func setupJob(t *testing.T) (*fakeBatch, *Client) {
	f := newFake(t)
	f.pool = map[string]any{"id": "ffmpeg", "state": "active"}
	c := f.client(t)
	if err := c.EnsureJob(context.Background(), "ffpipe", "ffmpeg"); err != nil {
		t.Fatal(err)
	}
	return f, c
}

func TestAddTasksOutcomes(t *testing.T) {
	f, c := setupJob(t)
	ctx := context.Background()
	ss := specs(t, 6)
	// 0: new; 1: already exists; 2: ClientError; 3: one ServerError then ok;
	// 4: invalid spec; 5: duplicate of 0.
	if _, err := c.AddTasks(ctx, "ffpipe", ss[1:2]); err != nil {
		t.Fatal(err)
	}
	f.clientError[ss[2].Key] = true
	f.serverErrors[ss[3].Key] = 1
	ss[4].InputURL = "not a url"
	ss[5] = ss[0]
	res, err := c.AddTasks(ctx, "ffpipe", ss)
	if err != nil {
		t.Fatalf("AddTasks: %v", err)
	}
	if len(res) != len(ss) {
		t.Fatalf("got %d results, want %d", len(res), len(ss))
	}
	for i, r := range res {
		if r.Key != ss[i].Key {
			t.Errorf("result %d key = %s, want %s", i, r.Key, ss[i].Key)
		}
	}
	check := func(i int, existed, failed, permanent bool) {
		t.Helper()
		r := res[i]
		if r.Existed != existed || (r.Err != nil) != failed || r.Permanent != permanent {
			t.Errorf("result %d = %+v, want existed=%v failed=%v permanent=%v", i, r, existed, failed, permanent)
		}
	}
	check(0, false, false, false)
	check(1, true, false, false)
	check(2, false, true, true)
	check(3, false, false, false)
	check(4, false, true, true)
	check(5, false, false, false)
	var te *TaskError
	if !errors.As(res[2].Err, &te) || te.Code != "InvalidPropertyValue" || strings.Contains(te.Message, "RequestId") {
		t.Errorf("result 2 error = %#v, want TaskError InvalidPropertyValue with the first message line", res[2].Err)
	}
	if !errors.Is(res[4].Err, ErrInvalidSpec) {
		t.Errorf("result 4 error = %v, want ErrInvalidSpec", res[4].Err)
	}
	for _, ids := range f.collections {
		seen := map[string]bool{}
		for _, id := range ids {
			if seen[id] {
				t.Errorf("collection %v sends %s twice", ids, id)
			}
			seen[id] = true
		}
	}
}

func TestAddTasksChunks(t *testing.T) {
	f, c := setupJob(t)
	res, err := c.AddTasks(context.Background(), "ffpipe", specs(t, 250))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Err != nil {
			t.Fatalf("result %+v", r)
		}
	}
	total := 0
	for _, ids := range f.collections {
		if len(ids) > MaxTasksPerCollection {
			t.Errorf("collection of %d tasks, want ≤ %d", len(ids), MaxTasksPerCollection)
		}
		total += len(ids)
	}
	// 250 tasks and parallelism 4: 4 concurrent requests of ≤ 63 (perRequest).
	if len(f.collections) != 4 || total != 250 || len(f.tasks["ffpipe"]) != 250 {
		t.Errorf("got %d collections with %d tasks, %d stored; want 4, 250, 250", len(f.collections), total, len(f.tasks["ffpipe"]))
	}
}

func TestPerRequest(t *testing.T) {
	for _, tc := range []struct{ n, parallelism, want int }{
		{0, 8, 100}, {1, 8, 1}, {49, 8, 49}, {99, 8, 99}, {100, 8, 50}, {100, 1, 100}, {150, 8, 50},
		{250, 8, 50}, {1000, 8, 100}, {1001, 8, 91}, {400, 2, 100},
	} {
		if got := perRequest(tc.n, tc.parallelism); got != tc.want {
			t.Errorf("perRequest(%d, %d) = %d, want %d", tc.n, tc.parallelism, got, tc.want)
		}
		if tc.n > 0 {
			if got := perRequest(tc.n, tc.parallelism); got > MaxTasksPerCollection || (tc.n+got-1)/got > max(tc.parallelism, (tc.n+99)/100) {
				t.Errorf("perRequest(%d, %d) = %d: too many or too large requests", tc.n, tc.parallelism, got)
			}
		}
	}
}

// Tasks with long multi-byte names are large (the names appear in the
// output path and, base64-encoded, in FFPIPE_REQUEST): 100 of them exceed
// the 1 MB body limit, so the client must split by size, not only by count.
func TestAddTasksChunksBySize(t *testing.T) {
	f, c := setupJob(t)
	ss := make([]TaskSpec, 100)
	for i := range ss {
		ss[i] = spec(t, "input", fmt.Sprintf("%s%03d.mp4", strings.Repeat("日", 1010), i), "")
		ss[i].InputURL = "https://acct.blob.core.windows.net/input/" + strings.Repeat("%E6%97%A5", 1010) + "?sig=x"
	}
	res, err := c.AddTasks(context.Background(), "ffpipe", ss)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Err != nil {
			t.Fatalf("result %+v", r)
		}
	}
	if len(f.collections) < 2 {
		t.Errorf("%d collections, want the 100 large tasks split", len(f.collections))
	}
	for i, n := range f.bodySizes {
		if n >= 1<<20 {
			t.Errorf("collection %d is %d bytes, want < 1 MB", i, n)
		}
	}
}

func TestAddTasksSplitsOn413(t *testing.T) {
	f, c := setupJob(t)
	f.tooLargeAbove = 30
	res, err := c.AddTasks(context.Background(), "ffpipe", specs(t, 100))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Err != nil {
			t.Fatalf("result %+v", r)
		}
	}
	if len(f.tasks["ffpipe"]) != 100 {
		t.Errorf("stored %d tasks, want 100", len(f.tasks["ffpipe"]))
	}
}

func TestAddTasksIsolatesWholeRequest400(t *testing.T) {
	f, c := setupJob(t)
	ss := specs(t, 8)
	f.badRequest[ss[5].Key] = true
	res, err := c.AddTasks(context.Background(), "ffpipe", ss)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if bad := i == 5; (r.Err != nil) != bad || r.Permanent != bad {
			t.Errorf("result %d = %+v, want failed=permanent=%v", i, r, bad)
		}
	}
	if len(f.tasks["ffpipe"]) != 7 {
		t.Errorf("stored %d tasks, want 7", len(f.tasks["ffpipe"]))
	}
}

func TestAddTasksWholeRequestErrors(t *testing.T) {
	ctx := context.Background()
	t.Run("job not found", func(t *testing.T) {
		_, c := setupJob(t)
		_, err := c.AddTasks(ctx, "missing", specs(t, 3))
		if !errors.Is(err, ErrJobNotFound) {
			t.Errorf("AddTasks = %v, want ErrJobNotFound", err)
		}
	})
	t.Run("throttled", func(t *testing.T) {
		f, c := setupJob(t)
		f.status503 = 1
		res, err := c.AddTasks(ctx, "ffpipe", specs(t, 3))
		if err == nil || errors.Is(err, ErrJobNotFound) {
			t.Fatalf("AddTasks = %v, want a transient error", err)
		}
		for _, r := range res {
			if r.Err == nil || r.Permanent {
				t.Errorf("result %+v, want a non-permanent error", r)
			}
		}
	})
	t.Run("cancelled context", func(t *testing.T) {
		f, c := setupJob(t)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		res, err := c.AddTasks(cctx, "ffpipe", specs(t, 3))
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("AddTasks = %v, want context.Canceled", err)
		}
		for _, r := range res {
			if r.Err == nil || r.Permanent {
				t.Errorf("result %+v, want a non-permanent error", r)
			}
		}
		if len(f.tasks["ffpipe"]) != 0 {
			t.Errorf("%d tasks added after cancellation", len(f.tasks["ffpipe"]))
		}
	})
	t.Run("request-level 400", func(t *testing.T) {
		f, c := setupJob(t)
		f.versionError = true
		res, err := c.AddTasks(ctx, "ffpipe", specs(t, 4))
		if err == nil {
			t.Fatalf("AddTasks = nil error, want one")
		}
		for _, r := range res {
			if r.Permanent {
				t.Errorf("result %+v is permanent; a retired api-version must not fail work for good", r)
			}
		}
		if len(f.collections) != 1 {
			t.Errorf("%d addtaskcollection calls, want 1 (no bisection)", len(f.collections))
		}
	})
	t.Run("persistent ServerError items", func(t *testing.T) {
		f, c := setupJob(t)
		ss := specs(t, 3)
		f.serverErrors[ss[1].Key] = serverErrorAttempts
		res, err := c.AddTasks(ctx, "ffpipe", ss)
		if err == nil {
			t.Fatalf("AddTasks = nil error, want one")
		}
		if res[0].Err != nil || res[2].Err != nil || res[1].Err == nil || res[1].Permanent {
			t.Errorf("results = %+v, want only task 1 failed, not permanently", res)
		}
	})
}

func TestListCompleted(t *testing.T) {
	f, c := setupJob(t)
	ctx := context.Background()
	f.pageSize = 2
	ss := specs(t, 6)
	enqueued := time.Date(2026, 3, 1, 9, 12, 33, 123456700, time.UTC)
	ss[0].Enqueued = enqueued // ss[2] has none
	if _, err := c.AddTasks(ctx, "ffpipe", ss); err != nil {
		t.Fatal(err)
	}
	f.complete("ffpipe", ss[0].Key, 0, nil)
	f.complete("ffpipe", ss[2].Key, 1, map[string]any{"category": "UserError", "code": "FailureExitCode", "message": "The task exited with an exit code representing a failure"})
	f.complete("ffpipe", ss[3].Key, 0, nil)
	f.complete("ffpipe", ss[5].Key, 0, nil)

	got, err := c.ListCompleted(ctx, "ffpipe", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 {
		t.Fatalf("got %d completed, want 4", len(got))
	}
	byKey := map[string]CompletedTask{}
	for _, ct := range got {
		byKey[ct.Key] = ct
		if ct.RequestErr != nil {
			t.Errorf("task %s: request error %v", ct.Key, ct.RequestErr)
		}
	}
	ok := byKey[ss[0].Key]
	if !ok.Success || ok.ExitCode == nil || *ok.ExitCode != 0 || ok.Request != ss[0].Request || ok.RetryCount != 1 || ok.Start.IsZero() || !ok.End.After(ok.Start) ||
		!ok.Created.Equal(time.Date(2025, 2, 13, 23, 25, 33, 836562000, time.UTC)) {
		t.Errorf("success task = %+v", ok)
	}
	if k := ok.Request.Key(account); k != ok.Key {
		t.Errorf("key from decoded request = %s, want %s", k, ok.Key)
	}
	if !ok.Enqueued.Equal(enqueued) {
		t.Errorf("success task enqueued = %v, want %v", ok.Enqueued, enqueued)
	}
	bad := byKey[ss[2].Key]
	if !bad.Enqueued.IsZero() {
		t.Errorf("task without %s: enqueued = %v, want zero", EnvEnqueued, bad.Enqueued)
	}
	if bad.Success || *bad.ExitCode != 1 || bad.FailureCategory != "usererror" || bad.FailureCode != "FailureExitCode" || bad.FailureMessage == "" {
		t.Errorf("failed task = %+v", bad)
	}
	if got, _ := c.ListCompleted(ctx, "ffpipe", 3); len(got) != 3 {
		t.Errorf("ListCompleted(max 3) = %d tasks, want 3", len(got))
	}
	keys, err := c.ListTaskKeys(ctx, "ffpipe", 0)
	if err != nil || len(keys) != 6 {
		t.Errorf("ListTaskKeys = %d keys, %v; want 6", len(keys), err)
	}
	if _, err := c.ListCompleted(ctx, "missing", 0); !errors.Is(err, ErrJobNotFound) {
		t.Errorf("ListCompleted(missing job) = %v, want ErrJobNotFound", err)
	}
}

func TestCompletedTaskWithoutRequest(t *testing.T) {
	f, c := setupJob(t)
	f.tasks["ffpipe"]["0123456789abcdef0123456789abcdef"] = map[string]any{"id": "0123456789abcdef0123456789abcdef", "state": "completed",
		"environmentSettings": []any{map[string]any{"name": EnvRequest, "value": "!!notbase64"}},
		"executionInfo":       map[string]any{"result": "failure", "retryCount": 0, "requeueCount": 0, "failureInfo": map[string]any{"category": "UserError", "code": "BlobNotFound"}}}
	got, err := c.ListCompleted(context.Background(), "ffpipe", 0)
	if err != nil || len(got) != 1 {
		t.Fatalf("ListCompleted = %v, %v", got, err)
	}
	if got[0].RequestErr == nil || got[0].ExitCode != nil || got[0].FailureCode != "BlobNotFound" {
		t.Errorf("task = %+v, want a request error, no exit code, BlobNotFound", got[0])
	}
}

// TestCompletedTaskEnqueued: EnvEnqueued becomes CompletedTask.Enqueued;
// a missing or unreadable value is no time, never a request error.
func TestCompletedTaskEnqueued(t *testing.T) {
	req, err := EncodeRequestEnv(spec(t, "input", "a.mp4", "").Request)
	if err != nil {
		t.Fatal(err)
	}
	want := time.Date(2026, 3, 1, 9, 12, 33, 123456700, time.UTC)
	tests := []struct {
		name  string
		value *string // nil = no setting
		want  time.Time
	}{
		{"RFC 3339 nano", to.Ptr("2026-03-01T09:12:33.1234567Z"), want},
		{"with an offset", to.Ptr("2026-03-01T11:12:33.1234567+02:00"), want},
		{"no setting", nil, time.Time{}},
		{"empty", to.Ptr(""), time.Time{}},
		{"garbled", to.Ptr("2026-03-01 soon"), time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			task := azbatch.Task{ID: to.Ptr("0123456789abcdef0123456789abcdef"), EnvironmentSettings: []azbatch.EnvironmentSetting{
				{Name: to.Ptr(EnvKey), Value: to.Ptr("0123456789abcdef0123456789abcdef")},
				{Name: to.Ptr(EnvRequest), Value: to.Ptr(req)},
			}}
			if tt.value != nil {
				task.EnvironmentSettings = append(task.EnvironmentSettings, azbatch.EnvironmentSetting{Name: to.Ptr(EnvEnqueued), Value: tt.value})
			}
			ct := completedTask(task)
			if !ct.Enqueued.Equal(tt.want) || ct.RequestErr != nil {
				t.Errorf("enqueued = %v, request error %v; want %v, none", ct.Enqueued, ct.RequestErr, tt.want)
			}
		})
	}
}

func TestTaskExistsAndDelete(t *testing.T) {
	_, c := setupJob(t)
	ctx := context.Background()
	ss := specs(t, 1)
	key := ss[0].Key
	if ok, err := c.TaskExists(ctx, "ffpipe", key); ok || err != nil {
		t.Errorf("TaskExists before add = %v, %v; want false, nil", ok, err)
	}
	if _, err := c.AddTasks(ctx, "ffpipe", ss); err != nil {
		t.Fatal(err)
	}
	if ok, err := c.TaskExists(ctx, "ffpipe", key); !ok || err != nil {
		t.Errorf("TaskExists after add = %v, %v; want true, nil", ok, err)
	}
	for i := 0; i < 2; i++ {
		if err := c.DeleteTask(ctx, "ffpipe", key); err != nil {
			t.Errorf("DeleteTask #%d: %v", i+1, err)
		}
	}
	if err := c.DeleteTask(ctx, "missing", key); err != nil {
		t.Errorf("DeleteTask on missing job: %v", err)
	}
	if ok, _ := c.TaskExists(ctx, "ffpipe", key); ok {
		t.Errorf("TaskExists after delete = true")
	}
}

func TestTaskCounts(t *testing.T) {
	_, c := setupJob(t)
	got, err := c.TaskCounts(context.Background(), "ffpipe")
	if err != nil {
		t.Fatal(err)
	}
	if want := (TaskCounts{Active: 3, Running: 2, Completed: 5, Succeeded: 4, Failed: 1}); got != want {
		t.Errorf("TaskCounts = %+v, want %+v", got, want)
	}
	if _, err := c.TaskCounts(context.Background(), "missing"); !errors.Is(err, ErrJobNotFound) {
		t.Errorf("TaskCounts(missing) = %v, want ErrJobNotFound", err)
	}
}

func TestEnsurePoolFake(t *testing.T) {
	ctx := context.Background()
	f := newFake(t)
	c := f.client(t)
	if _, err := c.EnsurePool(ctx, PoolConfig{NodeIdentity: "/subscriptions/x/id"}); !errors.Is(err, ErrNodeIdentityNeedsARM) {
		t.Errorf("EnsurePool(identity, no pool) = %v, want ErrNodeIdentityNeedsARM", err)
	}
	res, err := c.EnsurePool(ctx, PoolConfig{MaxNodes: 4})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Created || res.FormulaUpdated || res.Evaluation == "" {
		t.Errorf("first EnsurePool = %+v, want created and evaluated", res)
	}
	if got := f.pool["taskSlotsPerNode"]; got != float64(4) {
		t.Errorf("taskSlotsPerNode = %v, want 4 (2 per vCPU of standard_d2s_v5)", got)
	}
	if got := f.pool["targetNodeCommunicationMode"]; got != "simplified" {
		t.Errorf("targetNodeCommunicationMode = %v, want simplified", got)
	}
	res, err = c.EnsurePool(ctx, PoolConfig{MaxNodes: 4})
	if err != nil || res.Created || res.FormulaUpdated || len(res.Drift) != 0 {
		t.Errorf("second EnsurePool = %+v, %v; want nothing to do", res, err)
	}
	// A formula stored with CRLF line endings (as an ARM deployment may) is the same formula.
	f.pool["autoScaleFormula"] = strings.ReplaceAll(strings.TrimSpace(AutoScaleFormula(4, 0, DefaultSlotsPerTask)), "\n", "\r\n")
	if res, err = c.EnsurePool(ctx, PoolConfig{MaxNodes: 4}); err != nil || res.FormulaUpdated {
		t.Errorf("EnsurePool with a CRLF formula = %+v, %v; want no update", res, err)
	}
	res, err = c.EnsurePool(ctx, PoolConfig{MaxNodes: 8, VMSize: "Standard_D4s_v5"})
	if err != nil || !res.FormulaUpdated || len(res.Drift) != 2 {
		t.Errorf("EnsurePool with new settings = %+v, %v; want formula updated and 2 drifts (vm size, slots)", res, err)
	}
	if got := f.enableBody["autoScaleFormula"]; got != AutoScaleFormula(8, 0, DefaultSlotsPerTask) {
		t.Errorf("enableautoscale formula = %v", got)
	}
	if _, err := c.EnsurePool(ctx, PoolConfig{NodeIdentity: "/subscriptions/x/id"}); !errors.Is(err, ErrNodeIdentityNeedsARM) {
		t.Errorf("EnsurePool(identity the pool lacks) = %v, want ErrNodeIdentityNeedsARM", err)
	}
	f.pool["identity"] = map[string]any{"type": "UserAssigned", "userAssignedIdentities": []any{map[string]any{"resourceId": "/subscriptions/X/ID"}}}
	if _, err := c.EnsurePool(ctx, PoolConfig{MaxNodes: 8, VMSize: "Standard_D4s_v5", NodeIdentity: "/subscriptions/x/id"}); err != nil {
		t.Errorf("EnsurePool(identity present, case differs) = %v", err)
	}
}

func TestErrorsRedactSAS(t *testing.T) {
	f, c := setupJob(t)
	ss := specs(t, 2)
	f.badRequest[ss[0].Key] = true
	f.msgSuffix = " PropertyValue=https://acct.blob.core.windows.net/output?sv=2024&sig=SECRETSIG"
	res, err := c.AddTasks(context.Background(), "ffpipe", ss)
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Err == nil || strings.Contains(res[0].Err.Error(), "SECRETSIG") {
		t.Errorf("result error = %v, want one without the signature", res[0].Err)
	}
	f.status503 = 1
	_, err = c.AddTasks(context.Background(), "ffpipe", specs(t, 3)[2:])
	if err == nil || strings.Contains(err.Error(), "SECRETSIG") {
		t.Errorf("AddTasks error = %v, want one without the signature", err)
	}
	// The redaction matters: the SDK's own error text carries the body.
	var re *azcore.ResponseError
	if !errors.As(err, &re) || !strings.Contains(re.Error(), "SECRETSIG") {
		t.Errorf("underlying ResponseError not reachable or without the body: %v", err)
	}
}
