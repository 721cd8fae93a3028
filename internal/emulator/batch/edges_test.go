package batch_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"

	"github.com/ffpipe/ffpipe/internal/emulator/batch"
)

// TestResizeError: a pool that --max-slots keeps short of its target says
// so in resizeErrors with Batch's quota codes, allocationState steady; a
// resize within the budget clears them.
func TestResizeError(t *testing.T) {
	_, c := start(t, batch.Options{MaxSlots: 2})
	ctx := ctxT(t)
	createPool(t, c, "p", 3, 1, func(p *azbatch.CreatePoolContent) { p.TargetLowPriorityNodes = to.Ptr[int32](1) })
	gp, err := c.GetPool(ctx, "p", nil)
	if err != nil {
		t.Fatal(err)
	}
	if *gp.AllocationState != azbatch.AllocationStateSteady || *gp.CurrentDedicatedNodes != 2 || *gp.CurrentLowPriorityNodes != 0 {
		t.Fatalf("got %s with %d dedicated, %d low-priority nodes, want steady with 2 and 0",
			*gp.AllocationState, *gp.CurrentDedicatedNodes, *gp.CurrentLowPriorityNodes)
	}
	var codes []string
	for _, e := range gp.ResizeErrors {
		codes = append(codes, *e.Code)
		if e.Message == nil || !strings.Contains(*e.Message, "max-slots 2") || len(e.Values) == 0 {
			t.Errorf("got resize error %+v, want a message naming --max-slots and values", e)
		}
	}
	if got := strings.Join(codes, ","); got != "AccountCoreQuotaReached,AccountLowPriorityCoreQuotaReached" {
		t.Fatalf("got resize error codes %q, want AccountCoreQuotaReached,AccountLowPriorityCoreQuotaReached", got)
	}
	_, err = c.ResizePool(ctx, "p", azbatch.ResizePoolContent{TargetDedicatedNodes: to.Ptr[int32](2), TargetLowPriorityNodes: to.Ptr[int32](0)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if gp, err = c.GetPool(ctx, "p", nil); err != nil || len(gp.ResizeErrors) != 0 {
		t.Fatalf("got resize errors %v (%v) after a resize that fits, want none", gp.ResizeErrors, err)
	}
}

// TestDeletingJobWithRunningTask: deleting a job kills its running task;
// the job shows deleting and its tasks refuse writes until it vanishes.
func TestDeletingJobWithRunningTask(t *testing.T) {
	dir := t.TempDir()
	s, c := start(t, batch.Options{MaxSlots: 1, DeletionDelay: time.Hour, DataDir: dir})
	ctx := ctxT(t)
	createPool(t, c, "p", 1, 1, nil)
	createJob(t, c, "j", "p", nil)
	addTask(t, c, "j", heldTask("t", filepath.Join(t.TempDir(), "never"), 1))
	waitState(t, c, "j", "t", azbatch.TaskStateRunning)
	if _, err := c.DeleteJob(ctx, "j", nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the task process to be killed", 10*time.Second, func() bool { return s.RunningTasks() == 0 })
	calls := []struct {
		name string
		call func() error
	}{
		{"terminate task", func() error { _, err := c.TerminateTask(ctx, "j", "t", nil); return err }},
		{"delete task", func() error { _, err := c.DeleteTask(ctx, "j", "t", nil); return err }},
		{"add collection", func() error {
			_, err := c.CreateTaskCollection(ctx, "j", azbatch.TaskGroup{Value: []azbatch.CreateTaskContent{shTask("x", "true")}}, nil)
			return err
		}},
		{"terminate job", func() error { _, err := c.TerminateJob(ctx, "j", nil); return err }},
		{"create job", func() error {
			_, err := c.CreateJob(ctx, azbatch.CreateJobContent{ID: to.Ptr("J"), PoolInfo: &azbatch.PoolInfo{PoolID: to.Ptr("p")}}, nil)
			return err
		}},
	}
	for _, tt := range calls {
		t.Run(tt.name, func(t *testing.T) { wantCode(t, tt.call(), http.StatusConflict, "JobBeingDeleted") })
	}
	if gj, err := c.GetJob(ctx, "j", nil); err != nil || *gj.State != azbatch.JobStateDeleting || *gj.PreviousState != azbatch.JobStateActive {
		t.Fatalf("got job %+v (%v), want deleting after active", gj.Job, err)
	}
	// A stop in the deleting phase: the next start finishes the deletion.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	_, c = start(t, batch.Options{MaxSlots: 1, DeletionDelay: time.Hour, DataDir: dir})
	_, err := c.GetJob(ctx, "j", nil)
	wantCode(t, err, http.StatusNotFound, "JobNotFound")
	createJob(t, c, "j", "p", nil) // the id is free again
}

// TestDeletion: after DeletionDelay a deleted job or pool is gone and its
// id can be used again.
func TestDeletion(t *testing.T) {
	_, c := start(t, batch.Options{DeletionDelay: 20 * time.Millisecond})
	ctx := ctxT(t)
	tests := []struct {
		name     string
		create   func()
		del, get func() error
		code     string
	}{
		{"job", func() { createJob(t, c, "j", "p", nil) },
			func() error { _, err := c.DeleteJob(ctx, "j", nil); return err },
			func() error { _, err := c.GetJob(ctx, "j", nil); return err }, "JobNotFound"},
		{"pool", func() { createPool(t, c, "p", 1, 1, nil) },
			func() error { _, err := c.DeletePool(ctx, "p", nil); return err },
			func() error { _, err := c.GetPool(ctx, "p", nil); return err }, "PoolNotFound"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.create()
			if err := tt.del(); err != nil {
				t.Fatal(err)
			}
			waitFor(t, tt.name+" to vanish", 10*time.Second, func() bool {
				err := tt.get()
				return err != nil && respErr(t, err).ErrorCode == tt.code
			})
			tt.create()
			if err := tt.get(); err != nil {
				t.Fatalf("got %v after re-creating, want the new %s", err, tt.name)
			}
		})
	}
}

var stampRE = regexp.MustCompile(`"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z"`)

// TestTimestampsSevenDigits: every time in a reply has at most 7
// fractional digits (Batch's 100 ns resolution).
func TestTimestampsSevenDigits(t *testing.T) {
	s, c := start(t, batch.Options{})
	createPool(t, c, "p", 1, 1, nil)
	createJob(t, c, "j", "p", nil)
	for i := range 5 {
		addTask(t, c, "j", shTask("t"+strconv.Itoa(i), "true"))
	}
	waitState(t, c, "j", "t4", azbatch.TaskStateCompleted)
	seen := 0
	for _, path := range []string{"/jobs/j/tasks", "/jobs/j", "/pools/p", "/pools/p/nodes", "/jobs/j/tasks/t0/files?recursive=true"} {
		body := rawGet(t, s, path)
		for _, m := range stampRE.FindAllStringSubmatch(string(body), -1) {
			seen++
			if digits := len(strings.TrimPrefix(m[1], ".")); digits > 7 {
				t.Errorf("%s: got %s with %d fractional digits, want at most 7", path, m[0], digits)
			}
		}
	}
	if seen < 20 {
		t.Fatalf("got %d timestamps, want the replies to carry at least 20", seen)
	}
}

func rawGet(t *testing.T, s *batch.Server, path string) []byte {
	t.Helper()
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	req, err := http.NewRequest(http.MethodGet, s.URL()+path+sep+"api-version="+batch.APIVersion, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.Token())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v %s", path, resp.StatusCode, err, b)
	}
	return b
}

// TestReturnClientRequestID: client-request-id is echoed only when
// return-client-request-id is true.
func TestReturnClientRequestID(t *testing.T) {
	_, c := start(t, batch.Options{})
	createPool(t, c, "p", 0, 1, nil)
	const id = "11111111-2222-3333-4444-555555555555"
	tests := []struct {
		name   string
		ret    *bool
		echoed bool
	}{
		{"true", to.Ptr(true), true},
		{"false", to.Ptr(false), false},
		{"absent", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var raw *http.Response
			r, err := c.GetPool(policy.WithCaptureResponse(ctxT(t), &raw), "p",
				&azbatch.GetPoolOptions{ClientRequestID: to.Ptr(id), ReturnClientRequestID: tt.ret})
			if err != nil {
				t.Fatal(err)
			}
			got := raw.Header.Get("client-request-id")
			if (got == id) != tt.echoed || (got != "" && got != id) {
				t.Errorf("got client-request-id %q, want echoed=%v", got, tt.echoed)
			}
			if tt.echoed && (r.ClientRequestID == nil || *r.ClientRequestID != id) {
				t.Errorf("got SDK ClientRequestID %v, want %s", r.ClientRequestID, id)
			}
		})
	}
}

// TestUnsupportedProperties: properties of the Batch API the stand-in does
// not model are refused by name as UnsupportedProperty; a property Batch
// does not have stays InvalidRequestBody.
func TestUnsupportedProperties(t *testing.T) {
	s, c := start(t, batch.Options{})
	createPool(t, c, "p", 0, 1, nil)
	createJob(t, c, "j", "p", nil)
	const vm = `"virtualMachineConfiguration":{"imageReference":{"publisher":"canonical","offer":"ubuntu-24_04-lts","sku":"server"},"nodeAgentSKUId":"batch.node.ubuntu 24.04"`
	tests := []struct {
		name, path, body, code, property string
	}{
		{"cloudServiceConfiguration", "/pools", `{"id":"a","vmSize":"x","targetDedicatedNodes":0,"cloudServiceConfiguration":{"osFamily":"6"}}`, "UnsupportedProperty", "cloudServiceConfiguration"},
		{"applicationLicenses", "/pools", `{"id":"a","vmSize":"x","targetDedicatedNodes":0,"applicationLicenses":["maya"]}`, "UnsupportedProperty", "applicationLicenses"},
		{"containerConfiguration", "/pools", `{"id":"a","vmSize":"x","targetDedicatedNodes":0,` + vm + `,"containerConfiguration":{"type":"dockerCompatible"}}}`, "UnsupportedProperty", "virtualMachineConfiguration.containerConfiguration"},
		{"mountConfiguration", "/pools", `{"id":"a","vmSize":"x","targetDedicatedNodes":0,"mountConfiguration":[{"nfsMountConfiguration":{}}]}`, "UnsupportedProperty", "mountConfiguration"},
		{"pool applicationPackageReferences", "/pools", `{"id":"a","vmSize":"x","targetDedicatedNodes":0,"applicationPackageReferences":[{"applicationId":"ffmpeg"}]}`, "UnsupportedProperty", "applicationPackageReferences"},
		{"jobManagerTask", "/jobs", `{"id":"b","poolInfo":{"poolId":"p"},"jobManagerTask":{"id":"m","commandLine":"true"}}`, "UnsupportedProperty", "jobManagerTask"},
		{"autoPoolSpecification", "/jobs", `{"id":"b","poolInfo":{"autoPoolSpecification":{}}}`, "UnsupportedProperty", "poolInfo.autoPoolSpecification"},
		{"dependsOn", "/jobs/j/tasks", `{"id":"t","commandLine":"true","dependsOn":{"taskIds":["a"]}}`, "UnsupportedProperty", "dependsOn"},
		{"task applicationPackageReferences", "/jobs/j/tasks", `{"id":"t","commandLine":"true","applicationPackageReferences":[{"applicationId":"x"}]}`, "UnsupportedProperty", "applicationPackageReferences"},
		{"not a Batch property", "/pools", `{"id":"a","vmSize":"x","targetDedicatedNodes":0,"colour":"red"}`, "InvalidRequestBody", ""},
		{"unsupported image", "/pools", `{"id":"a","vmSize":"x","targetDedicatedNodes":0,"virtualMachineConfiguration":{"imageReference":{"publisher":"canonical","offer":"ubuntuserver","sku":"18.04-lts"},"nodeAgentSKUId":"batch.node.ubuntu 18.04"}}`, "InvalidPropertyValue", "virtualMachineConfiguration.imageReference"},
		{"image with another agent", "/pools", `{"id":"a","vmSize":"x","targetDedicatedNodes":0,"virtualMachineConfiguration":{"imageReference":{"publisher":"canonical","offer":"ubuntu-24_04-lts","sku":"server"},"nodeAgentSKUId":"batch.node.ubuntu 22.04"}}`, "InvalidPropertyValue", "virtualMachineConfiguration.imageReference"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := rawPost(t, s, tt.path, tt.body)
			var e azbatch.Error
			if err := json.Unmarshal(body, &e); err != nil || e.Code == nil {
				t.Fatalf("got %d %s, want an OData error", status, body)
			}
			prop := ""
			for _, v := range e.Values {
				if *v.Key == "PropertyName" {
					prop = *v.Value
				}
			}
			if status != http.StatusBadRequest || *e.Code != tt.code || prop != tt.property {
				t.Fatalf("got %d %s PropertyName=%q, want 400 %s PropertyName=%q", status, *e.Code, prop, tt.code, tt.property)
			}
		})
	}
}

func rawPost(t *testing.T, s *batch.Server, path, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.URL()+path+"?api-version="+batch.APIVersion, strings.NewReader(body))
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
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestAccountOperations: the supported images (with a filter, as the
// samples list them) are the ones pool creation accepts; node counts per
// pool by state.
func TestAccountOperations(t *testing.T) {
	_, c := start(t, batch.Options{MaxSlots: 4})
	ctx := ctxT(t)
	pager := c.NewListSupportedImagesPager(&azbatch.ListSupportedImagesOptions{Filter: to.Ptr("verificationType eq 'verified' and nodeAgentSKUId eq 'batch.node.ubuntu 22.04'")})
	var images []azbatch.SupportedImage
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatalf("list supported images: %v", err)
		}
		images = append(images, page.Value...)
	}
	if len(images) != 2 {
		t.Fatalf("got %d Ubuntu 22.04 images, want 2", len(images))
	}
	for i, im := range images {
		if *im.NodeAgentSKUID != "batch.node.ubuntu 22.04" || *im.OSType != azbatch.OSTypeLinux || im.BatchSupportEndOfLife == nil {
			t.Fatalf("got image %+v, want a linux 22.04 image with its end of life", im)
		}
		// Each listed image is one a pool can use.
		createPool(t, c, "p"+strconv.Itoa(i), 1, 1, func(p *azbatch.CreatePoolContent) {
			p.VirtualMachineConfiguration = &azbatch.VirtualMachineConfiguration{ImageReference: im.ImageReference, NodeAgentSKUID: im.NodeAgentSKUID}
		})
	}
	createPool(t, c, "starts", 1, 1, func(p *azbatch.CreatePoolContent) {
		p.StartTask = &azbatch.StartTask{CommandLine: to.Ptr("/bin/sh -c 'exit 1'")}
	})
	want := map[string]string{"p0": "idle=1", "p1": "idle=1", "starts": "startTaskFailed=1"}
	waitFor(t, "node counts", 10*time.Second, func() bool {
		got := map[string]string{}
		pager := c.NewListPoolNodeCountsPager(nil)
		for pager.More() {
			page, err := pager.NextPage(ctx)
			if err != nil {
				t.Fatalf("list pool node counts: %v", err)
			}
			for _, pc := range page.Value {
				d := pc.Dedicated
				switch {
				case *d.Total != 1:
				case *d.Idle == 1:
					got[*pc.PoolID] = "idle=1"
				case *d.StartTaskFailed == 1:
					got[*pc.PoolID] = "startTaskFailed=1"
				}
			}
		}
		return len(got) == len(want) && got["p0"] == want["p0"] && got["p1"] == want["p1"] && got["starts"] == want["starts"]
	})
}

// signSharedKey signs req as the Batch docs describe Shared Key
// ("Authenticate requests to the Azure Batch service"): written here from
// the format, independently of the server's code.
func signSharedKey(req *http.Request, account, key string, body []byte, at time.Time) {
	req.Header.Set("ocp-date", at.UTC().Format(http.TimeFormat))
	length := ""
	if len(body) > 0 {
		length = strconv.Itoa(len(body))
	}
	str := strings.Join([]string{req.Method, "", "", length, "", req.Header.Get("Content-Type"), "", "", "", "", "", ""}, "\n") + "\n"
	str += "ocp-date:" + req.Header.Get("ocp-date") + "\n"
	str += "/" + account + req.URL.EscapedPath()
	q := req.URL.Query()
	var names []string
	for k := range q {
		names = append(names, strings.ToLower(k))
	}
	sort.Strings(names)
	for _, n := range names {
		str += "\n" + n + ":" + q.Get(n)
	}
	k, _ := base64.StdEncoding.DecodeString(key)
	mac := hmac.New(sha256.New, k)
	mac.Write([]byte(str))
	req.Header.Set("Authorization", "SharedKey "+account+":"+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
}

// TestSharedKey: a request signed with the account key is accepted; a
// wrong key, account or a stale ocp-date is 403 AuthenticationFailed.
func TestSharedKey(t *testing.T) {
	s, c := start(t, batch.Options{AccountName: "acct"})
	createPool(t, c, "p", 0, 1, nil)
	other := base64.StdEncoding.EncodeToString([]byte("another key"))
	tests := []struct {
		name, method, path, account, key string
		body                             string
		stale                            bool
		status                           int
	}{
		{"get", "GET", "/pools/p", "acct", s.AccountKey(), "", false, 200},
		{"post with body", "POST", "/jobs", "acct", s.AccountKey(), `{"id":"j","poolInfo":{"poolId":"p"}}`, false, 201},
		{"filter in the query", "GET", "/jobs?$filter=" + url.QueryEscape("state eq 'active'"), "acct", s.AccountKey(), "", false, 200},
		{"delete without body", "DELETE", "/jobs/j", "acct", s.AccountKey(), "", false, 202},
		{"wrong key", "GET", "/pools/p", "acct", other, "", false, 403},
		{"wrong account", "GET", "/pools/p", "someone", s.AccountKey(), "", false, 403},
		{"stale date", "GET", "/pools/p", "acct", s.AccountKey(), "", true, 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sep := "?"
			if strings.Contains(tt.path, "?") {
				sep = "&"
			}
			req, err := http.NewRequest(tt.method, s.URL()+tt.path+sep+"api-version="+batch.APIVersion, bytes.NewReader([]byte(tt.body)))
			if err != nil {
				t.Fatal(err)
			}
			if tt.body != "" {
				req.Header.Set("Content-Type", "application/json; odata=minimalmetadata")
			}
			at := time.Now()
			if tt.stale {
				at = at.Add(-20 * time.Minute)
			}
			signSharedKey(req, tt.account, tt.key, []byte(tt.body), at)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status {
				t.Fatalf("got %d %s, want %d", resp.StatusCode, b, tt.status)
			}
			if tt.status == 403 && !strings.Contains(string(b), "AuthenticationFailed") {
				t.Fatalf("got %s, want AuthenticationFailed", b)
			}
		})
	}
}
