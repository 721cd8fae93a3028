package batch

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"

	emubatch "github.com/ffpipe/ffpipe/internal/emulator/batch"
	"github.com/ffpipe/ffpipe/internal/emulator/batch/batchtest"
)

// clientConformance is the Client's contract with a Batch service, written
// once and run against the recorded-shape fake, the local stand-in and
// (with -tags integration and credentials) the real service. poolID must
// exist; jobID must not. Tasks are added and deleted, never run to
// completion, so the pool may have no nodes.
func clientConformance(t *testing.T, c *Client, poolID, jobID string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	if err := c.EnsureJob(ctx, jobID, "no-such-pool-"+jobID); !errors.Is(err, ErrPoolNotFound) {
		t.Fatalf("EnsureJob on a missing pool = %v, want ErrPoolNotFound", err)
	}
	for i := 0; i < 2; i++ {
		if err := c.EnsureJob(ctx, jobID, poolID); err != nil {
			t.Fatalf("EnsureJob #%d: %v", i+1, err)
		}
	}
	ss := make([]TaskSpec, 3)
	for i := range ss {
		ss[i] = spec(t, "input", fmt.Sprintf("conformance/%s/%d.mp4", jobID, i), "")
	}
	ss[0].Enqueued = time.Date(2026, 11, 21, 10, 0, 0, 123456789, time.UTC)
	if ok, err := c.TaskExists(ctx, jobID, ss[0].Key); ok || err != nil {
		t.Fatalf("TaskExists before add = %v, %v; want false, nil", ok, err)
	}
	res, err := c.AddTasks(ctx, jobID, append(ss, ss[0]))
	if err != nil {
		t.Fatalf("AddTasks: %v", err)
	}
	for _, r := range res {
		if r.Err != nil || r.Existed {
			t.Errorf("AddTasks result %+v, want a new task", r)
		}
	}
	res, err = c.AddTasks(ctx, jobID, ss)
	if err != nil {
		t.Fatalf("AddTasks again: %v", err)
	}
	for _, r := range res {
		if r.Err != nil || !r.Existed {
			t.Errorf("AddTasks again result %+v, want Existed", r)
		}
	}
	keys, err := c.ListTaskKeys(ctx, jobID, 0)
	if err != nil {
		t.Fatalf("ListTaskKeys: %v", err)
	}
	for _, s := range ss {
		if !slices.Contains(keys, s.Key) {
			t.Errorf("ListTaskKeys = %v, lacks %s", keys, s.Key)
		}
		if ok, err := c.TaskExists(ctx, jobID, s.Key); !ok || err != nil {
			t.Errorf("TaskExists(%s) = %v, %v; want true", s.Key, ok, err)
		}
	}
	// The pool may have no nodes: a fresh task is active (or, with
	// nodes, already on its way).
	if ti, err := c.Task(ctx, jobID, ss[0].Key); err != nil || !slices.Contains([]string{"active", "preparing", "running", "completed"}, ti.State) || ti.Created.IsZero() {
		t.Errorf("Task(%s) = %+v, %v; want a state and a creation time", ss[0].Key, ti, err)
	} else if ti.Request.Source != ss[0].Request.Source || ti.Request.Output != ss[0].Request.Output || !ti.Enqueued.Equal(ss[0].Enqueued) {
		// Status shows a request sent straight to the queue from its task.
		t.Errorf("Task(%s): request %+v enqueued %v; want %+v, %v", ss[0].Key, ti.Request, ti.Enqueued, ss[0].Request, ss[0].Enqueued)
	}
	if _, err := c.TaskCounts(ctx, jobID); err != nil {
		t.Errorf("TaskCounts: %v", err)
	}
	if _, err := c.ListCompleted(ctx, jobID, 10); err != nil {
		t.Errorf("ListCompleted: %v", err)
	}
	for _, s := range ss {
		for i := 0; i < 2; i++ {
			if err := c.DeleteTask(ctx, jobID, s.Key); err != nil {
				t.Errorf("DeleteTask(%s) #%d: %v", s.Key, i+1, err)
			}
		}
		if ok, err := c.TaskExists(ctx, jobID, s.Key); ok || err != nil {
			t.Errorf("TaskExists after delete = %v, %v; want false, nil", ok, err)
		}
		if _, err := c.Task(ctx, jobID, s.Key); !errors.Is(err, ErrTaskNotFound) {
			t.Errorf("Task after delete = %v, want ErrTaskNotFound", err)
		}
	}
	if _, err := c.AddTasks(ctx, jobID+"-missing", ss[:1]); !errors.Is(err, ErrJobNotFound) {
		t.Errorf("AddTasks to a missing job = %v, want ErrJobNotFound", err)
	}
	if _, err := c.TaskExists(ctx, jobID+"-missing", ss[0].Key); !errors.Is(err, ErrJobNotFound) {
		t.Errorf("TaskExists in a missing job = %v, want ErrJobNotFound", err)
	}
	if _, err := c.Task(ctx, jobID+"-missing", ss[0].Key); !errors.Is(err, ErrJobNotFound) {
		t.Errorf("Task in a missing job = %v, want ErrJobNotFound", err)
	}
}

func randomID(t *testing.T) string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "ffpipe-test-" + hex.EncodeToString(b)
}

func TestConformanceFake(t *testing.T) {
	f := newFake(t)
	f.pool = map[string]any{"id": "ffmpeg", "state": "active"}
	f.poolID = "ffmpeg" // other pool ids are PoolNotFound
	clientConformance(t, f.client(t), "ffmpeg", randomID(t))
}

func TestConformanceStandIn(t *testing.T) {
	emu := batchtest.Start(t, emubatch.Options{MaxSlots: 1})
	c, err := NewClient(emu.URL(), NewStaticToken(emu.Token()), Options{})
	if err != nil {
		t.Fatal(err)
	}
	// A pool without nodes, so the tasks stay active.
	if _, err := c.SDK().CreatePool(context.Background(), azbatch.CreatePoolContent{
		ID: to.Ptr("idle"), VMSize: to.Ptr(DefaultVMSize), TargetDedicatedNodes: to.Ptr[int32](0),
		VirtualMachineConfiguration: &azbatch.VirtualMachineConfiguration{
			ImageReference: &azbatch.ImageReference{Publisher: to.Ptr(Ubuntu2204.Publisher), Offer: to.Ptr(Ubuntu2204.Offer), SKU: to.Ptr(Ubuntu2204.SKU)},
			NodeAgentSKUID: to.Ptr(Ubuntu2204.NodeAgentSKU),
		},
	}, nil); err != nil {
		t.Fatal(err)
	}
	clientConformance(t, c, "idle", randomID(t))
}
