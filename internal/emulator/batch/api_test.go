package batch_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"

	"github.com/ffpipe/ffpipe/internal/emulator/batch"
	"github.com/ffpipe/ffpipe/internal/emulator/batch/batchtest"
)

func TestAuth(t *testing.T) {
	s, _ := start(t, batch.Options{})
	noCred, err := azbatch.NewClient(s.URL(), nil, &azbatch.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		client *azbatch.Client
	}{
		{"missing token", noCred},
		{"wrong token", batchtest.ClientWithToken(t, s.URL(), "not-the-token")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.client.GetJob(ctxT(t), "j", nil)
			wantCode(t, err, http.StatusUnauthorized, "AuthenticationFailed")
			var body azbatch.Error
			if err := json.Unmarshal(mustPayload(t, respErr(t, err)), &body); err != nil || body.Message == nil || body.Message.Value == nil {
				t.Fatalf("got body err %v %+v, want an OData error body", err, body)
			}
		})
	}
	if s.Token() != batch.DefaultToken {
		t.Fatalf("got token %q, want the documented default %q", s.Token(), batch.DefaultToken)
	}
}

func mustPayload(t *testing.T, re *azcore.ResponseError) []byte {
	t.Helper()
	b, err := runtime.Payload(re.RawResponse)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPools(t *testing.T) {
	// A deleted pool stays "deleting" for the whole test (TestDeletion sees
	// it vanish).
	_, c := start(t, batch.Options{MaxSlots: 4, DeletionDelay: time.Hour})
	ctx := ctxT(t)
	createPool(t, c, "Pool-1", 1, 2, func(p *azbatch.CreatePoolContent) {
		p.TaskSchedulingPolicy = &azbatch.TaskSchedulingPolicy{NodeFillType: to.Ptr(azbatch.NodeFillTypePack)}
	})

	var raw *http.Response
	gp, err := c.GetPool(policy.WithCaptureResponse(ctx, &raw), "pool-1", nil)
	if err != nil {
		t.Fatalf("get pool: %v", err)
	}
	if got := *gp.ID; got != "Pool-1" {
		t.Errorf("got id %q, want Pool-1", got)
	}
	if gp.ETag == nil || !strings.HasPrefix(string(*gp.ETag), "0x") || gp.LastModified == nil {
		t.Errorf("got ETag %v LastModified %v, want both", gp.ETag, gp.LastModified)
	}
	if got := string(*gp.TaskSchedulingPolicy.NodeFillType); got != "Pack" {
		t.Errorf("got nodeFillType %q, want Pack", got)
	}
	if got := *gp.CurrentDedicatedNodes; got != 1 {
		t.Errorf("got %d current dedicated nodes, want 1", got)
	}
	if got := raw.Header.Get("request-id"); got == "" {
		t.Error("got no request-id header")
	}

	wantCode(t, func() error {
		_, err := c.CreatePool(ctx, azbatch.CreatePoolContent{ID: to.Ptr("POOL-1"), VMSize: to.Ptr("x"), TargetDedicatedNodes: to.Ptr[int32](0)}, nil)
		return err
	}(), http.StatusConflict, "PoolExists")
	_, err = c.GetPool(ctx, "nope", nil)
	wantCode(t, err, http.StatusNotFound, "PoolNotFound")
	for _, id := range []string{"pool-1", "nope"} {
		if _, err := c.PoolExists(ctx, id, nil); err != nil {
			t.Errorf("PoolExists(%s): got %v, want nil (HEAD 200 or 404)", id, err)
		}
	}

	bad := []struct {
		name string
		p    azbatch.CreatePoolContent
		code string
	}{
		{"bad id", azbatch.CreatePoolContent{ID: to.Ptr("a b"), VMSize: to.Ptr("x"), TargetDedicatedNodes: to.Ptr[int32](0)}, "InvalidPropertyValue"},
		{"missing vmSize", azbatch.CreatePoolContent{ID: to.Ptr("p2"), TargetDedicatedNodes: to.Ptr[int32](0)}, "MissingRequiredProperty"},
		{"autoscale with target", azbatch.CreatePoolContent{ID: to.Ptr("p2"), VMSize: to.Ptr("x"), EnableAutoScale: to.Ptr(true), AutoScaleFormula: to.Ptr("$TargetDedicatedNodes=1"), TargetDedicatedNodes: to.Ptr[int32](1)}, "InvalidPropertyValue"},
		{"autoscale interval too short", azbatch.CreatePoolContent{ID: to.Ptr("p2"), VMSize: to.Ptr("x"), EnableAutoScale: to.Ptr(true), AutoScaleFormula: to.Ptr("$TargetDedicatedNodes=1"), AutoScaleEvaluationInterval: to.Ptr("PT1M")}, "InvalidPropertyValue"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.CreatePool(ctx, tt.p, nil)
			wantCode(t, err, http.StatusBadRequest, tt.code)
		})
	}

	// Resize: capped by MaxSlots (4 slots = 2 nodes of 2 slots).
	if _, err := c.ResizePool(ctx, "pool-1", azbatch.ResizePoolContent{TargetDedicatedNodes: to.Ptr[int32](5)}, nil); err != nil {
		t.Fatalf("resize: %v", err)
	}
	gp, _ = c.GetPool(ctx, "pool-1", nil)
	if got := *gp.CurrentDedicatedNodes; got != 2 {
		t.Errorf("got %d nodes after resize to 5 with MaxSlots 4, want 2", got)
	}
	nodes := listNodes(t, c, "pool-1")
	if len(nodes) != 2 {
		t.Fatalf("got %d nodes listed, want 2", len(nodes))
	}
	if _, err := c.GetNode(ctx, "pool-1", *nodes[0].ID, nil); err != nil {
		t.Errorf("get node: %v", err)
	}
	_, err = c.GetNode(ctx, "pool-1", "nope", nil)
	wantCode(t, err, http.StatusNotFound, "NodeNotFound")

	// Autoscale: a constant formula is evaluated; a metric formula gets MaxSlots worth of nodes.
	if _, err := c.EnablePoolAutoScale(ctx, "pool-1", azbatch.EnablePoolAutoScaleContent{
		AutoScaleFormula: to.Ptr("$TargetDedicatedNodes = 1; $NodeDeallocationOption = taskcompletion"), AutoScaleEvaluationInterval: to.Ptr("PT5M")}, nil); err != nil {
		t.Fatalf("enable autoscale: %v", err)
	}
	gp, _ = c.GetPool(ctx, "pool-1", nil)
	if !*gp.EnableAutoScale || *gp.CurrentDedicatedNodes != 1 || gp.AutoScaleFormula == nil {
		t.Errorf("got autoscale %v nodes %d formula %v, want true, 1, stored", *gp.EnableAutoScale, *gp.CurrentDedicatedNodes, gp.AutoScaleFormula)
	}
	_, err = c.ResizePool(ctx, "pool-1", azbatch.ResizePoolContent{TargetDedicatedNodes: to.Ptr[int32](1)}, nil)
	wantCode(t, err, http.StatusConflict, "OperationInvalidForCurrentState")
	ev, err := c.EvaluatePoolAutoScale(ctx, "pool-1", azbatch.EvaluatePoolAutoScaleContent{AutoScaleFormula: to.Ptr("$TargetLowPriorityNodes=2")}, nil)
	if err != nil || ev.Results == nil || !strings.Contains(*ev.Results, "$TargetLowPriorityNodes=2") {
		t.Errorf("evaluate: got %v %v, want results with $TargetLowPriorityNodes=2", ev.Results, err)
	}
	if _, err := c.DisablePoolAutoScale(ctx, "pool-1", nil); err != nil {
		t.Fatalf("disable autoscale: %v", err)
	}

	createPool(t, c, "auto", 0, 1, func(p *azbatch.CreatePoolContent) {
		p.TargetDedicatedNodes = nil
		p.EnableAutoScale = to.Ptr(true)
		p.AutoScaleFormula = to.Ptr("pending = $PendingTasks.GetSample(1);\n$TargetLowPriorityNodes = pending > 0 ? 1 : 0;")
		p.AutoScaleEvaluationInterval = to.Ptr("PT5M")
	})
	gp, _ = c.GetPool(ctx, "auto", nil)
	if got := *gp.CurrentDedicatedNodes; got != 2 { // 4 slots - 2 used by pool-1
		t.Errorf("got %d nodes for a metric formula, want 2 (the MaxSlots budget left)", got)
	}

	var ids []string
	pager := c.NewListPoolsPager(&azbatch.ListPoolsOptions{MaxResults: to.Ptr[int32](1)})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatalf("list pools: %v", err)
		}
		for _, p := range page.Value {
			ids = append(ids, *p.ID)
		}
	}
	if fmt.Sprint(ids) != "[auto Pool-1]" {
		t.Errorf("got pools %v, want [auto Pool-1]", ids)
	}

	if _, err := c.DeletePool(ctx, "POOL-1", nil); err != nil {
		t.Fatalf("delete pool: %v", err)
	}
	// Deleting first (writes fail with 409 PoolBeingDeleted), then gone.
	gp, err = c.GetPool(ctx, "pool-1", nil)
	if err != nil || !strings.EqualFold(string(*gp.State), "deleting") || *gp.CurrentDedicatedNodes != 0 {
		t.Fatalf("got pool %v, %v after delete, want state deleting with no nodes", gp.State, err)
	}
	_, err = c.ResizePool(ctx, "pool-1", azbatch.ResizePoolContent{TargetDedicatedNodes: to.Ptr[int32](1)}, nil)
	wantCode(t, err, http.StatusConflict, "PoolBeingDeleted")
	_, err = c.DeletePool(ctx, "pool-1", nil)
	wantCode(t, err, http.StatusConflict, "PoolBeingDeleted")
	_, err = c.CreatePool(ctx, azbatch.CreatePoolContent{ID: to.Ptr("pool-1"), VMSize: to.Ptr("x"), TargetDedicatedNodes: to.Ptr[int32](0)}, nil)
	wantCode(t, err, http.StatusConflict, "PoolBeingDeleted")
	_, err = c.DeletePool(ctx, "nope", nil)
	wantCode(t, err, http.StatusNotFound, "PoolNotFound")
}

func listNodes(t *testing.T, c *azbatch.Client, pool string) []azbatch.Node {
	t.Helper()
	var out []azbatch.Node
	pager := c.NewListNodesPager(pool, nil)
	for pager.More() {
		page, err := pager.NextPage(ctxT(t))
		if err != nil {
			t.Fatalf("list nodes: %v", err)
		}
		out = append(out, page.Value...)
	}
	return out
}

func TestJobs(t *testing.T) {
	_, c := start(t, batch.Options{DeletionDelay: time.Hour})
	ctx := ctxT(t)
	createJob(t, c, "Job-1", "nopool", nil)
	_, err := c.CreateJob(ctx, azbatch.CreateJobContent{ID: to.Ptr("job-1"), PoolInfo: &azbatch.PoolInfo{PoolID: to.Ptr("p")}}, nil)
	wantCode(t, err, http.StatusConflict, "JobExists")
	_, err = c.CreateJob(ctx, azbatch.CreateJobContent{ID: to.Ptr("job-2")}, nil)
	wantCode(t, err, http.StatusBadRequest, "MissingRequiredProperty")

	gj, err := c.GetJob(ctx, "JOB-1", nil)
	if err != nil {
		t.Fatalf("get job: %v", err)
	}
	if *gj.State != azbatch.JobStateActive || *gj.OnAllTasksComplete != azbatch.OnAllTasksCompleteNoAction || *gj.Constraints.MaxTaskRetryCount != 0 {
		t.Errorf("got state %v onAll %v retries %v, want active, noaction, 0", *gj.State, *gj.OnAllTasksComplete, *gj.Constraints.MaxTaskRetryCount)
	}
	n := 0
	for p := c.NewListJobsPager(nil); p.More(); {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("list jobs: %v", err)
		}
		n += len(page.Value)
	}
	if n != 1 {
		t.Errorf("got %d jobs, want 1", n)
	}

	if _, err := c.TerminateJob(ctx, "job-1", nil); err != nil {
		t.Fatalf("terminate job: %v", err)
	}
	gj, _ = c.GetJob(ctx, "job-1", nil)
	if *gj.State != azbatch.JobStateCompleted || *gj.ExecutionInfo.TerminationReason != "UserTerminate" {
		t.Errorf("got state %v reason %v, want completed UserTerminate", *gj.State, gj.ExecutionInfo.TerminationReason)
	}
	_, err = c.CreateTask(ctx, "job-1", shTask("t", "true"), nil)
	wantCode(t, err, http.StatusConflict, "JobCompleted")

	// onAllTasksComplete=terminatejob: a job with no tasks counts as all complete.
	createJob(t, c, "auto-end", "nopool", func(j *azbatch.CreateJobContent) {
		j.OnAllTasksComplete = to.Ptr(azbatch.OnAllTasksCompleteTerminateJob)
	})
	gj, _ = c.GetJob(ctx, "auto-end", nil)
	if *gj.State != azbatch.JobStateCompleted || *gj.ExecutionInfo.TerminationReason != "AllTasksCompleted" {
		t.Errorf("got state %v reason %v, want completed AllTasksCompleted", *gj.State, gj.ExecutionInfo.TerminationReason)
	}

	if _, err := c.DeleteJob(ctx, "job-1", nil); err != nil {
		t.Fatalf("delete job: %v", err)
	}
	// Deleting first (writes fail with 409 JobBeingDeleted), then gone.
	gj, err = c.GetJob(ctx, "job-1", nil)
	if err != nil || *gj.State != azbatch.JobStateDeleting {
		t.Fatalf("got job %v, %v after delete, want state deleting", gj.State, err)
	}
	_, err = c.CreateTask(ctx, "job-1", shTask("late", "true"), nil)
	wantCode(t, err, http.StatusConflict, "JobBeingDeleted")
	_, err = c.DeleteJob(ctx, "job-1", nil)
	wantCode(t, err, http.StatusConflict, "JobBeingDeleted")
	if _, err := c.GetJobTaskCounts(ctx, "job-1", nil); err != nil {
		t.Errorf("task counts of a deleting job: %v, want them (reads still work)", err)
	}
	_, err = c.GetJobTaskCounts(ctx, "nope", nil)
	wantCode(t, err, http.StatusNotFound, "JobNotFound")
}

func TestTaskAddErrors(t *testing.T) {
	s, c := start(t, batch.Options{})
	ctx := ctxT(t)
	createPool(t, c, "p", 0, 1, nil)
	createJob(t, c, "j", "p", nil)
	addTask(t, c, "j", shTask("Task-A", "true"))

	_, err := c.CreateTask(ctx, "j", shTask("task-a", "true"), nil)
	wantCode(t, err, http.StatusConflict, "TaskExists")
	_, err = c.CreateTask(ctx, "nojob", shTask("x", "true"), nil)
	wantCode(t, err, http.StatusNotFound, "JobNotFound")
	_, err = c.GetTask(ctx, "j", "nope", nil)
	wantCode(t, err, http.StatusNotFound, "TaskNotFound")
	_, err = c.DeleteTask(ctx, "j", "nope", nil)
	wantCode(t, err, http.StatusNotFound, "TaskNotFound")

	bad := []struct {
		name string
		task azbatch.CreateTaskContent
		code string
	}{
		{"bad id", shTask("a/b", "true"), "InvalidPropertyValue"},
		{"long id", shTask(strings.Repeat("a", 65), "true"), "InvalidPropertyValue"},
		{"no command line", azbatch.CreateTaskContent{ID: to.Ptr("x")}, "MissingRequiredProperty"},
		{"dotdot filePath", withRF(shTask("x", "true"), azbatch.ResourceFile{HTTPURL: to.Ptr("http://127.0.0.1/x"), FilePath: to.Ptr("../x")}), "InvalidPropertyValue"},
		{"absolute filePath", withRF(shTask("x", "true"), azbatch.ResourceFile{HTTPURL: to.Ptr("http://127.0.0.1/x"), FilePath: to.Ptr("/etc/x")}), "InvalidPropertyValue"},
		{"httpUrl without filePath", withRF(shTask("x", "true"), azbatch.ResourceFile{HTTPURL: to.Ptr("http://127.0.0.1/x")}), "MissingRequiredProperty"},
		{"bad duration", func() azbatch.CreateTaskContent {
			tk := shTask("x", "true")
			tk.Constraints = &azbatch.TaskConstraints{MaxWallClockTime: to.Ptr("1h")}
			return tk
		}(), "InvalidPropertyValue"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.CreateTask(ctx, "j", tt.task, nil)
			wantCode(t, err, http.StatusBadRequest, tt.code)
		})
	}

	// Collection: per-item results; duplicates (any case) are ClientError TaskExists.
	group := azbatch.TaskGroup{Value: []azbatch.CreateTaskContent{shTask("TASK-a", "true"), shTask("b", "true"), shTask("B", "true"), shTask("bad id", "true")}}
	res, err := c.CreateTaskCollection(ctx, "j", group, nil)
	if err != nil {
		t.Fatalf("add collection: %v", err)
	}
	got := map[string]string{}
	for _, r := range res.Value {
		code := ""
		if r.Error != nil {
			code = *r.Error.Code
		}
		got[*r.TaskID] = string(*r.Status) + "/" + code
	}
	want := map[string]string{"TASK-a": "ClientError/TaskExists", "b": "Success/", "B": "ClientError/TaskExists", "bad id": "ClientError/InvalidPropertyValue"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got results %v, want %v", got, want)
	}
	for _, r := range res.Value {
		if strings.EqualFold(string(*r.Status), string(azbatch.TaskAddStatusSuccess)) && (r.ETag == nil || r.Location == nil || r.LastModified == nil) {
			t.Errorf("got success item without eTag/location/lastModified: %+v", r)
		}
	}

	// 101 tasks: refused as a whole.
	var many []azbatch.CreateTaskContent
	for i := range 101 {
		many = append(many, shTask(fmt.Sprintf("m%d", i), "true"))
	}
	_, err = c.CreateTaskCollection(ctx, "j", azbatch.TaskGroup{Value: many}, nil)
	wantCode(t, err, http.StatusRequestEntityTooLarge, "RequestBodyTooLarge")
	// Over 1 MB.
	big := []azbatch.CreateTaskContent{shTask("big", strings.Repeat("x", 1<<20))}
	_, err = c.CreateTaskCollection(ctx, "j", azbatch.TaskGroup{Value: big}, nil)
	wantCode(t, err, http.StatusRequestEntityTooLarge, "RequestBodyTooLarge")

	counts, err := c.GetJobTaskCounts(ctx, "j", nil)
	if err != nil {
		t.Fatalf("task counts: %v", err)
	}
	if got := *counts.TaskCounts.Active; got != 2 {
		t.Errorf("got %d active tasks, want 2", got)
	}

	// Raw bad input: 4xx with an OData body, never 5xx.
	raw := []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"malformed json", "POST", "/jobs/j/tasks", `{"id":`, 400, "InvalidRequestBody"},
		{"unknown property", "POST", "/jobs/j/tasks", `{"id":"z","commandLine":"true","bogus":1}`, 400, "InvalidRequestBody"},
		{"wrong type", "POST", "/jobs/j/tasks", `{"id":5,"commandLine":"true"}`, 400, "InvalidRequestBody"},
		{"trailing data", "POST", "/jobs", `{"id":"z","poolInfo":{"poolId":"p"}} {}`, 400, "InvalidRequestBody"},
		{"empty body", "POST", "/pools", ``, 400, "InvalidRequestBody"},
		{"bad filter", "GET", "/jobs/j/tasks?$filter=state%20eq", "", 400, "InvalidQueryParameterValue"},
		{"unknown filter property", "GET", "/jobs/j/tasks?$filter=colour%20eq%20'red'", "", 400, "InvalidQueryParameterValue"},
		{"bad maxresults", "GET", "/jobs/j/tasks?maxresults=5000", "", 400, "InvalidQueryParameterValue"},
		{"bad select", "GET", "/jobs/j/tasks?$select=nope", "", 400, "InvalidQueryParameterValue"},
		{"bad skiptoken", "GET", "/jobs/j/tasks?$skiptoken=zz", "", 400, "InvalidQueryParameterValue"},
		{"unknown route", "GET", "/certificates", "", 501, "NotImplemented"},
	}
	for _, tt := range raw {
		t.Run(tt.name, func(t *testing.T) {
			sep := "?"
			if strings.Contains(tt.path, "?") {
				sep = "&"
			}
			status, code := rawCall(t, s, tt.method, tt.path+sep+"api-version="+batch.APIVersion, tt.body)
			if status != tt.status || code != tt.code {
				t.Errorf("got %d %s, want %d %s", status, code, tt.status, tt.code)
			}
		})
	}
	if status, code := rawCall(t, s, "GET", "/jobs/j", ""); status != 400 || code != "MissingRequiredQueryParameter" {
		t.Errorf("no api-version: got %d %s, want 400 MissingRequiredQueryParameter", status, code)
	}
}

func withRF(tk azbatch.CreateTaskContent, rf azbatch.ResourceFile) azbatch.CreateTaskContent {
	tk.ResourceFiles = append(tk.ResourceFiles, rf)
	return tk
}

func rawCall(t *testing.T, s *batch.Server, method, path, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, s.URL()+path, bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.Token())
	req.Header.Set("Content-Type", "application/json; odata=minimalmetadata")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e struct {
		Code string `json:"code"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&e)
	return resp.StatusCode, e.Code
}

func TestListPagingFilterSelect(t *testing.T) {
	_, c := start(t, batch.Options{})
	ctx := ctxT(t)
	createPool(t, c, "p", 0, 1, nil)
	createJob(t, c, "j", "p", nil)
	const total = 2500
	var wg sync.WaitGroup
	errs := make(chan error, total/100)
	for b := 0; b < total/100; b++ {
		wg.Add(1)
		go func(b int) {
			defer wg.Done()
			var g azbatch.TaskGroup
			for i := range 100 {
				g.Value = append(g.Value, shTask(fmt.Sprintf("t-%05d", b*100+i), "true"))
			}
			res, err := c.CreateTaskCollection(ctx, "j", g, nil)
			if err == nil {
				for _, r := range res.Value {
					if !strings.EqualFold(string(*r.Status), "success") {
						err = fmt.Errorf("task %s: %s", *r.TaskID, *r.Status)
					}
				}
			}
			errs <- err
		}(b)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("add: %v", err)
		}
	}

	list := func(opts *azbatch.ListTasksOptions) (ids []string, pages int) {
		seen := map[string]bool{}
		pager := c.NewListTasksPager("j", opts)
		for pager.More() {
			page, err := pager.NextPage(ctx)
			if err != nil {
				t.Fatalf("list: %v", err)
			}
			pages++
			for _, tk := range page.Value {
				if seen[*tk.ID] {
					t.Fatalf("task %s listed twice", *tk.ID)
				}
				seen[*tk.ID] = true
				ids = append(ids, *tk.ID)
			}
		}
		return ids, pages
	}
	ids, pages := list(&azbatch.ListTasksOptions{MaxResults: to.Ptr[int32](1000)})
	if len(ids) != total || pages != 3 {
		t.Errorf("got %d tasks in %d pages, want %d in 3", len(ids), pages, total)
	}
	tests := []struct {
		filter string
		want   int
	}{
		{"state eq 'active'", total},
		{"state eq 'Active' and startswith(id,'t-000')", 100},
		{"state eq 'completed'", 0},
		{"executionInfo/result eq 'failure'", 0},
		{"(id ge 't-02400') or (id lt 't-00010')", 110},
		{"not (state eq 'active')", 0},
		{"executionInfo/retryCount eq 0 and executionInfo/requeueCount eq 0", total},
		{"creationTime lt DateTime'2000-01-01T00:00:00Z'", 0},
	}
	for _, tt := range tests {
		t.Run(tt.filter, func(t *testing.T) {
			ids, _ := list(&azbatch.ListTasksOptions{Filter: to.Ptr(tt.filter), MaxResults: to.Ptr[int32](700)})
			if len(ids) != tt.want {
				t.Errorf("got %d tasks, want %d", len(ids), tt.want)
			}
		})
	}
	page, err := c.NewListTasksPager("j", &azbatch.ListTasksOptions{SelectParam: []string{"id", "state"}, MaxResults: to.Ptr[int32](5)}).NextPage(ctx)
	if err != nil {
		t.Fatalf("list with select: %v", err)
	}
	if len(page.Value) != 5 || page.Value[0].ID == nil || page.Value[0].State == nil || page.Value[0].CommandLine != nil {
		t.Errorf("got %d tasks, first %+v, want 5 with only id and state", len(page.Value), page.Value[0])
	}
	if page.NextLink == nil || !strings.HasPrefix(*page.NextLink, "http://") || !strings.Contains(*page.NextLink, "api-version=") {
		t.Errorf("got nextLink %v, want an absolute URL with api-version", page.NextLink)
	}
}

func TestHeaders(t *testing.T) {
	_, c := start(t, batch.Options{})
	ctx := ctxT(t)
	var raw *http.Response
	_, err := c.CreatePool(policy.WithCaptureResponse(ctx, &raw), azbatch.CreatePoolContent{ID: to.Ptr("p"), VMSize: to.Ptr("x"), TargetDedicatedNodes: to.Ptr[int32](0)},
		&azbatch.CreatePoolOptions{ClientRequestID: to.Ptr("11111111-2222-3333-4444-555555555555"), ReturnClientRequestID: to.Ptr(true)})
	if err != nil {
		t.Fatal(err)
	}
	h := raw.Header
	for _, name := range []string{"ETag", "Last-Modified", "Location", "DataServiceId", "request-id", "DataServiceVersion"} {
		if h.Get(name) == "" {
			t.Errorf("create pool: got no %s header", name)
		}
	}
	if got := h.Get("client-request-id"); got != "11111111-2222-3333-4444-555555555555" {
		t.Errorf("got client-request-id %q, want the echo", got)
	}
	if _, err := time.Parse(time.RFC1123, h.Get("Last-Modified")); err != nil {
		t.Errorf("Last-Modified %q is not RFC1123: %v", h.Get("Last-Modified"), err)
	}
	createJob(t, c, "j", "p", nil)
	addTask(t, c, "j", shTask("t", "true"))
	gt, err := c.GetTask(ctx, "j", "t", nil)
	if err != nil {
		t.Fatal(err)
	}
	// If-None-Match with the current ETag: not modified (the SDK reports 304 as an error).
	_, err = c.GetTask(ctx, "j", "t", &azbatch.GetTaskOptions{IfNoneMatch: gt.ETag})
	if err == nil || respErr(t, err).StatusCode != http.StatusNotModified {
		t.Errorf("got %v, want 304", err)
	}
	_, err = c.DeleteTask(ctx, "j", "t", &azbatch.DeleteTaskOptions{IfMatch: to.Ptr(azcore.ETag("0x000000000000000"))})
	wantCode(t, err, http.StatusPreconditionFailed, "ConditionNotMet")
	if _, err := c.DeleteTask(ctx, "j", "t", &azbatch.DeleteTaskOptions{IfMatch: gt.ETag}); err != nil {
		t.Errorf("delete with matching If-Match: %v", err)
	}
}
