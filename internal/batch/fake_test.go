package batch

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// fakeBatch is a hand-written Batch REST fake that answers with the wire
// shapes of the real service (docs/platform.md#batchs-rest-wire-shapes):
// "Success"/"ClientError"/"ServerError" in PascalCase, lowercase
// task states, OData error bodies, absolute nextLinks.
type fakeBatch struct {
	t   *testing.T
	srv *httptest.Server

	mu          sync.Mutex
	pool        map[string]any // nil: PoolNotFound
	jobs        map[string]string
	tasks       map[string]map[string]any // job → id → task JSON
	calls       []string                  // "METHOD path"
	collections [][]string                // ids per addtaskcollection call
	bodySizes   []int                     // bytes per addtaskcollection call
	enableBody  map[string]any

	// behaviour knobs
	serverErrors  map[string]int  // id → how many ServerError items it still gets
	clientError   map[string]bool // ids that get ClientError InvalidPropertyValue
	badRequest    map[string]bool // a collection containing the id is a whole-request 400
	tooLargeAbove int             // collections with more tasks get 413
	status503     int             // the next n addtaskcollection calls get 503
	pageSize      int
	token         string
	msgSuffix     string // appended to error messages (to test redaction)
	versionError  bool   // addtaskcollection answers 400 UnsupportedRequestVersion
	poolID        string // when set, GET /pools/{other id} is PoolNotFound
}

func newFake(t *testing.T) *fakeBatch {
	f := &fakeBatch{t: t, jobs: map[string]string{}, tasks: map[string]map[string]any{},
		serverErrors: map[string]int{}, clientError: map[string]bool{}, badRequest: map[string]bool{}, pageSize: 1000}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeBatch) client(t *testing.T) *Client {
	t.Helper()
	c, err := NewClient(f.srv.URL, NewStaticToken("fake-token"), Options{
		Retry:              &policy.RetryOptions{MaxRetries: -1},
		serverErrorBackoff: time.Millisecond,
		Parallelism:        4,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (f *fakeBatch) writeErr(w http.ResponseWriter, status int, code, msg string) {
	writeErr(w, status, code, msg+f.msgSuffix)
}

func writeErr(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json; odata=minimalmetadata")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"odata.metadata":"https://fake/$metadata#Microsoft.Azure.Batch.Protocol.Entities.Container.errors/@Element","code":%q,"message":{"lang":"en-US","value":%q}}`,
		code, msg+"\nRequestId:00000000-0000-0000-0000-000000000000\nTime:2025-02-13T23:25:33.9Z")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; odata=minimalmetadata")
	w.Header().Set("Last-Modified", time.Now().UTC().Format(http.TimeFormat))
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func (f *fakeBatch) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, r.Method+" "+r.URL.Path)
	f.token = r.Header.Get("Authorization")
	if r.URL.Query().Get("api-version") == "" {
		writeErr(w, 400, "MissingRequiredQueryParameter", "api-version")
		return
	}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	body, _ := io.ReadAll(r.Body)
	switch {
	case r.Method == "GET" && len(parts) == 2 && parts[0] == "pools":
		if f.pool == nil || (f.poolID != "" && parts[1] != f.poolID) {
			writeErr(w, 404, "PoolNotFound", "The specified pool does not exist.")
			return
		}
		writeJSON(w, 200, f.pool)
	case r.Method == "POST" && len(parts) == 1 && parts[0] == "pools":
		if f.pool != nil {
			writeErr(w, 409, "PoolExists", "The specified pool already exists.")
			return
		}
		var p map[string]any
		json.Unmarshal(body, &p)
		p["state"], p["allocationState"] = "active", "resizing"
		f.pool = p
		w.WriteHeader(201)
	case r.Method == "POST" && len(parts) == 3 && parts[2] == "enableautoscale":
		json.Unmarshal(body, &f.enableBody)
		f.pool["enableAutoScale"] = true
		f.pool["autoScaleFormula"] = f.enableBody["autoScaleFormula"]
		f.pool["autoScaleEvaluationInterval"] = f.enableBody["autoScaleEvaluationInterval"]
		w.WriteHeader(200)
	case r.Method == "POST" && len(parts) == 3 && parts[2] == "evaluateautoscale":
		writeJSON(w, 200, map[string]any{"timestamp": "2025-02-13T23:25:33.9Z", "results": "$TargetDedicatedNodes=0;$TargetLowPriorityNodes=0;$NodeDeallocationOption=taskcompletion"})
	case r.Method == "POST" && len(parts) == 1 && parts[0] == "jobs":
		var j struct {
			ID       string `json:"id"`
			PoolInfo struct {
				PoolID string `json:"poolId"`
			} `json:"poolInfo"`
			OnAllTasksComplete string `json:"onAllTasksComplete"`
		}
		json.Unmarshal(body, &j)
		if j.OnAllTasksComplete != "noaction" {
			f.t.Errorf("job onAllTasksComplete = %q, want noaction", j.OnAllTasksComplete)
		}
		if _, ok := f.jobs[j.ID]; ok {
			writeErr(w, 409, "JobExists", "The specified job already exists.")
			return
		}
		f.jobs[j.ID] = j.PoolInfo.PoolID
		f.tasks[j.ID] = map[string]any{}
		w.WriteHeader(201)
	case r.Method == "GET" && len(parts) == 2 && parts[0] == "jobs":
		pool, ok := f.jobs[parts[1]]
		if !ok {
			writeErr(w, 404, "JobNotFound", "The specified job does not exist.")
			return
		}
		writeJSON(w, 200, map[string]any{"id": parts[1], "state": "active", "poolInfo": map[string]any{"poolId": pool}})
	case r.Method == "POST" && len(parts) == 3 && parts[2] == "addtaskcollection":
		f.addCollection(w, parts[1], body)
	case r.Method == "GET" && len(parts) == 3 && parts[2] == "tasks":
		f.listTasks(w, r, parts[1])
	case r.Method == "GET" && len(parts) == 3 && parts[2] == "taskcounts":
		if _, ok := f.jobs[parts[1]]; !ok {
			writeErr(w, 404, "JobNotFound", "The specified job does not exist.")
			return
		}
		writeJSON(w, 200, map[string]any{
			"taskCounts":     map[string]any{"active": 3, "running": 2, "completed": 5, "succeeded": 4, "failed": 1},
			"taskSlotCounts": map[string]any{"active": 3, "running": 2, "completed": 5, "succeeded": 4, "failed": 1},
		})
	case len(parts) == 4 && parts[2] == "tasks":
		tasks, ok := f.tasks[parts[1]]
		if !ok {
			writeErr(w, 404, "JobNotFound", "The specified job does not exist.")
			return
		}
		task, ok := tasks[parts[3]]
		if !ok {
			writeErr(w, 404, "TaskNotFound", "The specified task does not exist.")
			return
		}
		switch r.Method {
		case "GET":
			writeJSON(w, 200, task)
		case "DELETE":
			delete(tasks, parts[3])
			w.WriteHeader(200)
		default:
			writeErr(w, 501, "NotImplemented", r.Method)
		}
	default:
		writeErr(w, 501, "NotImplemented", r.Method+" "+r.URL.Path)
	}
}

func (f *fakeBatch) addCollection(w http.ResponseWriter, job string, body []byte) {
	var tg struct {
		Value []map[string]any `json:"value"`
	}
	if err := json.Unmarshal(body, &tg); err != nil {
		writeErr(w, 400, "InvalidRequestBody", err.Error())
		return
	}
	var ids []string
	for _, t := range tg.Value {
		ids = append(ids, t["id"].(string))
	}
	f.collections = append(f.collections, ids)
	f.bodySizes = append(f.bodySizes, len(body))
	if f.status503 > 0 {
		f.status503--
		f.writeErr(w, 503, "ServerBusy", "The server is busy.")
		return
	}
	if f.versionError {
		writeErr(w, 400, "UnsupportedRequestVersion", "The specified api-version is not supported.")
		return
	}
	tasks, ok := f.tasks[job]
	if !ok {
		writeErr(w, 404, "JobNotFound", "The specified job does not exist.")
		return
	}
	if len(tg.Value) > 100 {
		writeErr(w, 400, "InvalidPropertyValue", "too many tasks")
		return
	}
	if f.tooLargeAbove > 0 && len(tg.Value) > f.tooLargeAbove {
		writeErr(w, 413, "RequestBodyTooLarge", "The request body is too large.")
		return
	}
	for _, id := range ids {
		if f.badRequest[id] {
			f.writeErr(w, 400, "InvalidPropertyValue", "The value provided for one of the properties in the request body is invalid.")
			return
		}
	}
	var results []map[string]any
	// Reply in reverse order: clients must match on taskId.
	for i := len(tg.Value) - 1; i >= 0; i-- {
		t := tg.Value[i]
		id := ids[i]
		switch {
		case f.serverErrors[id] > 0:
			f.serverErrors[id]--
			results = append(results, map[string]any{"status": "ServerError", "taskId": id,
				"error": map[string]any{"code": "ServerBusy", "message": map[string]any{"lang": "en-US", "value": "busy\nRequestId:x"}}})
		case f.clientError[id]:
			results = append(results, map[string]any{"status": "ClientError", "taskId": id,
				"error": map[string]any{"code": "InvalidPropertyValue", "message": map[string]any{"lang": "en-US", "value": "The value provided for one of the properties in the request body is invalid.\nRequestId:x\nTime:y"}}})
		case tasks[id] != nil:
			results = append(results, map[string]any{"status": "ClientError", "taskId": id,
				"error": map[string]any{"code": "TaskExists", "message": map[string]any{"lang": "en-US", "value": "The specified task already exists.\nRequestId:x\nTime:y"}}})
		default:
			t["state"] = "active"
			t["creationTime"] = "2025-02-13T23:25:33.836562Z"
			t["executionInfo"] = map[string]any{"retryCount": 0, "requeueCount": 0}
			tasks[id] = t
			results = append(results, map[string]any{"status": "Success", "taskId": id, "eTag": "0x8DD4C85B6D6BAB4",
				"lastModified": "2025-02-13T23:25:33.836562Z", "location": "https://fake/jobs/" + job + "/tasks/" + id})
		}
	}
	writeJSON(w, 200, map[string]any{"odata.metadata": "https://fake/$metadata#taskaddresult", "value": results})
}

// complete marks a stored task completed with the given outcome.
func (f *fakeBatch) complete(job, id string, exit int, failure map[string]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.tasks[job][id].(map[string]any)
	t["state"] = "completed"
	ei := map[string]any{"startTime": "2025-02-13T23:27:06.237778Z", "endTime": "2025-02-13T23:27:08.319008Z",
		"exitCode": exit, "result": "success", "retryCount": 1, "requeueCount": 0}
	if failure != nil {
		ei["result"] = "failure"
		ei["failureInfo"] = failure
	}
	t["executionInfo"] = ei
}

func (f *fakeBatch) listTasks(w http.ResponseWriter, r *http.Request, job string) {
	tasks, ok := f.tasks[job]
	if !ok {
		writeErr(w, 404, "JobNotFound", "The specified job does not exist.")
		return
	}
	q := r.URL.Query()
	filter := q.Get("$filter")
	if filter != "" && filter != "state eq 'completed'" {
		writeErr(w, 400, "InvalidQueryParameterValue", "unsupported filter "+filter)
		return
	}
	sel := map[string]bool{}
	for _, s := range strings.Split(q.Get("$select"), ",") {
		if s != "" {
			sel[s] = true
		}
	}
	var ids []string
	for id, t := range tasks {
		if filter == "" || t.(map[string]any)["state"] == "completed" {
			ids = append(ids, id)
		}
	}
	sortStrings(ids)
	skip, _ := strconv.Atoi(q.Get("$skiptoken"))
	size := f.pageSize
	if m, err := strconv.Atoi(q.Get("maxresults")); err == nil && m < size {
		size = m
	}
	end := min(len(ids), skip+size)
	var vals []map[string]any
	for _, id := range ids[skip:end] {
		t := tasks[id].(map[string]any)
		v := map[string]any{}
		for k, x := range t {
			if len(sel) == 0 || sel[k] {
				v[k] = x
			}
		}
		vals = append(vals, v)
	}
	resp := map[string]any{"odata.metadata": "https://fake/$metadata#tasks", "value": vals}
	if end < len(ids) {
		q.Set("$skiptoken", strconv.Itoa(end))
		resp["odata.nextLink"] = f.srv.URL + r.URL.Path + "?" + q.Encode()
	}
	writeJSON(w, 200, resp)
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}
