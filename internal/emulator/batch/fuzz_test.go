package batch

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzHandlers sends arbitrary requests to the REST handlers: every reply
// must be a 2xx/3xx/4xx (501 only for unmodelled routes), never a 500 or a
// panic. Process execution is disabled so invented command lines never run.
func FuzzHandlers(f *testing.F) {
	s := New(Options{MaxSlots: 2})
	s.execDisabled = true
	if err := s.Start(context.Background()); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = s.Close() })
	seeds := []struct {
		method        byte
		path, q, body string
	}{
		{1, "pools", "", `{"id":"p","vmSize":"x","targetDedicatedNodes":1,"taskSlotsPerNode":2,"startTask":{"commandLine":"true"}}`},
		{1, "pools", "", `{"id":"a","vmSize":"x","enableAutoScale":true,"autoScaleFormula":"$TargetDedicatedNodes=1","autoScaleEvaluationInterval":"PT5M"}`},
		{1, "jobs", "", `{"id":"j","poolInfo":{"poolId":"p"},"onAllTasksComplete":"noaction"}`},
		{1, "jobs/j/tasks", "", `{"id":"t","commandLine":"/bin/sh -c \"exit 3\"","constraints":{"maxTaskRetryCount":1,"maxWallClockTime":"PT1M"}}`},
		{1, "jobs/j/addtaskcollection", "", `{"value":[{"id":"a","commandLine":"x","resourceFiles":[{"httpUrl":"http://127.0.0.1:1/x","filePath":"in"}],"outputFiles":[{"filePattern":"../std*.txt","destination":{"container":{"containerUrl":"http://127.0.0.1:1/c"}},"uploadOptions":{"uploadCondition":"taskcompletion"}}]}]}`},
		{0, "jobs/j/tasks", "$filter=state%20eq%20'active'&$select=id,state&maxresults=2", ""},
		{0, "jobs/j/tasks", "$skiptoken=3", ""},
		{0, "jobs/j/taskcounts", "", ""},
		{1, "pools/p/resize", "", `{"targetDedicatedNodes":0,"nodeDeallocationOption":"terminate"}`},
		{1, "pools/a/enableautoscale", "", `{"autoScaleFormula":"$TargetLowPriorityNodes=1"}`},
		{1, "pools/a/evaluateautoscale", "", `{"autoScaleFormula":"x = 1"}`},
		{1, "jobs/j/tasks/t/terminate", "", ""},
		{1, "jobs/j/tasks/t/reactivate", "", ""},
		{0, "jobs/j/tasks/t/files/stdout.txt", "", ""},
		{0, "pools/p/nodes", "$filter=state%20eq%20'idle'", ""},
		{3, "jobs/j", "", `{"onAllTasksComplete":"terminatejob"}`},
		{2, "jobs/j/tasks/t", "", ""},
		{1, "jobs/j/terminate", "", `{"terminateReason":"x"}`},
		{2, "pools/p", "", ""},
	}
	for _, sd := range seeds {
		f.Add(sd.method, sd.path, sd.q, sd.body)
	}
	methods := []string{http.MethodGet, http.MethodPost, http.MethodDelete, http.MethodPatch, http.MethodHead, http.MethodPut}
	f.Fuzz(func(t *testing.T, m byte, path, query, body string) {
		req, err := http.NewRequest(methods[int(m)%len(methods)], "http://batch.local/"+path+"?api-version=2024-07-01.20.0&"+query, strings.NewReader(body))
		if err != nil {
			return
		}
		req.Header.Set("Authorization", "Bearer "+DefaultToken)
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			var e struct {
				Code string `json:"code"`
			}
			_ = json.Unmarshal(rec.Body.Bytes(), &e)
			if rec.Code == http.StatusNotImplemented && e.Code == "NotImplemented" {
				return
			}
			t.Fatalf("%s /%s?%s: got %d %s, want < 500", req.Method, path, query, rec.Code, rec.Body.String())
		}
	})
}

// FuzzSharedKey feeds arbitrary Authorization headers, dates, paths and
// queries to the authentication: it never panics, and nothing but the
// development bearer token gets in without a signature made with the key.
func FuzzSharedKey(f *testing.F) {
	s := New(Options{AccountName: "acct"})
	s.opts.fill()
	for _, sd := range [][4]string{
		{"SharedKey acct:c2lnbmF0dXJl", "Mon, 07 Dec 2026 09:00:00 GMT", "/pools", "api-version=1"},
		{"SharedKey acct:", "", "/jobs/j/tasks", "$filter=state%20eq%20'active'&api-version=x"},
		{"sharedkey ACCT:%%%", "garbage", "/%zz", "a=1&a=2&B=3"},
		{"Bearer ", "", "/", ""},
		{"SharedKey :", "", "", ";"},
	} {
		f.Add(sd[0], sd[1], sd[2], sd[3])
	}
	f.Fuzz(func(t *testing.T, auth, date, path, query string) {
		req, err := http.NewRequest(http.MethodGet, "http://batch.local/", nil)
		if err != nil {
			t.Skip()
		}
		req.URL.Path, req.URL.RawQuery = path, query
		req.RequestURI = path + "?" + query
		req.Header.Set("Authorization", auth)
		req.Header.Set("ocp-date", date)
		scheme, cred, _ := strings.Cut(req.Header.Get("Authorization"), " ")
		bearer := strings.EqualFold(scheme, "Bearer") && strings.TrimSpace(cred) == DefaultToken
		if s.authError(req) == nil && !bearer {
			t.Fatalf("authenticated %q without the key", auth)
		}
	})
}
