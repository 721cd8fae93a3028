package batch

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"

	"github.com/ffpipe/ffpipe/internal/presets"
)

// TestCollectionBody: the body AddTasks sends is byte for byte what the
// SDK would encode for the same tasks, whatever the names (escaping,
// Unicode) and the profile.
func TestCollectionBody(t *testing.T) {
	var all []azbatch.CreateTaskContent
	for i, p := range presets.DefaultProfiles().Names() {
		for _, blob := range []string{"a.mp4", `dir/ü b<&>"\.mp4`, "e\u0301\u2028🎬.mp4"} {
			s := spec(t, "input", fmt.Sprintf("%d/%s", i, blob), p)
			s.Enqueued = fuzzEnqueued
			all = append(all, mustContent(t, s))
		}
	}
	for _, n := range []int{1, 2, len(all)} {
		t.Run(fmt.Sprintf("%d tasks", n), func(t *testing.T) {
			tasks := all[:n]
			enc := make([]encodedTask, n)
			for i, c := range tasks {
				var err error
				if enc[i], err = encodeTask(c); err != nil {
					t.Fatal(err)
				}
				if enc[i].id != *c.ID {
					t.Errorf("task %d id %q, want %q", i, enc[i].id, *c.ID)
				}
			}
			want, err := json.Marshal(azbatch.TaskGroup{Value: tasks})
			if err != nil {
				t.Fatal(err)
			}
			if got := collectionBody(enc); !bytes.Equal(got, want) {
				t.Errorf("collectionBody differs from the SDK's encoding:\ngot  %.300s…\nwant %.300s…", got, want)
			}
		})
	}
}

// TestAddTasksBodyOnSDKRetry: when the SDK itself retries a 503, the
// retried request carries the whole pre-encoded body again.
func TestAddTasksBodyOnSDKRetry(t *testing.T) {
	f, _ := setupJob(t)
	c, err := NewClient(f.srv.URL, NewStaticToken("fake-token"), Options{
		Retry: &policy.RetryOptions{MaxRetries: 2, RetryDelay: time.Millisecond, MaxRetryDelay: 5 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	f.status503 = 1
	f.mu.Unlock()
	ss := specs(t, 3)
	res, err := c.AddTasks(context.Background(), "ffpipe", ss)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Err != nil || r.Existed {
			t.Fatalf("result %+v, want added", r)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.collections) != 2 || len(f.collections[0]) != 3 || len(f.collections[1]) != 3 {
		t.Fatalf("collections %v, want the 3 tasks twice (503, then the SDK's retry)", f.collections)
	}
	if f.bodySizes[0] != f.bodySizes[1] {
		t.Errorf("retried body is %d bytes, the first %d", f.bodySizes[1], f.bodySizes[0])
	}
	if got := len(f.tasks["ffpipe"]); got != 3 {
		t.Errorf("%d tasks in the job, want 3", got)
	}
}
