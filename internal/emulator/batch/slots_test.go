package batch_test

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"

	"github.com/ffpipe/ffpipe/internal/emulator/batch"
)

// heldTask runs until the file gate exists.
func heldTask(id, gate string, slots int32) azbatch.CreateTaskContent {
	tk := shTask(id, "while [ ! -f "+gate+" ]; do sleep 0.02; done")
	tk.RequiredSlots = to.Ptr(slots)
	return tk
}

func nodeSlots(t *testing.T, c *azbatch.Client, pool string) (used []int32) {
	t.Helper()
	pager := c.NewListNodesPager(pool, nil)
	for pager.More() {
		page, err := pager.NextPage(ctxT(t))
		if err != nil {
			t.Fatalf("list nodes: %v", err)
		}
		for _, n := range page.Value {
			used = append(used, *n.RunningTaskSlotsCount)
		}
	}
	return used
}

// TestRequiredSlots: a task occupies requiredSlots slots of one node; a task
// that does not fit waits while a smaller one runs beside the first.
func TestRequiredSlots(t *testing.T) {
	_, c := start(t, batch.Options{MaxSlots: 4})
	ctx := ctxT(t)
	createPool(t, c, "p", 1, 4, nil)
	createJob(t, c, "j", "p", nil)
	gateA := filepath.Join(t.TempDir(), "a")
	gateC := filepath.Join(t.TempDir(), "c")
	addTask(t, c, "j", heldTask("a", gateA, 3))
	waitState(t, c, "j", "a", azbatch.TaskStateRunning)
	addTask(t, c, "j", heldTask("b", gateC, 2)) // 3 + 2 > 4: waits
	addTask(t, c, "j", heldTask("c", gateC, 1)) // 3 + 1 = 4: runs beside a
	waitState(t, c, "j", "c", azbatch.TaskStateRunning)
	if got := getTask(t, c, "j", "b"); *got.State != azbatch.TaskStateActive {
		t.Fatalf("got task b %s while a and c hold 4 of 4 slots, want active", *got.State)
	}
	if got := nodeSlots(t, c, "p"); len(got) != 1 || got[0] != 4 {
		t.Fatalf("got running slots per node %v, want [4]", got)
	}
	counts, err := c.GetJobTaskCounts(ctx, "j", nil)
	if err != nil {
		t.Fatalf("task counts: %v", err)
	}
	if sc := counts.TaskSlotCounts; *sc.Running != 4 || *sc.Active != 2 {
		t.Fatalf("got slot counts running %d active %d, want 4 and 2", *sc.Running, *sc.Active)
	}
	if err := os.WriteFile(gateA, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitState(t, c, "j", "b", azbatch.TaskStateRunning)
	if got := nodeSlots(t, c, "p"); len(got) != 1 || got[0] != 3 {
		t.Fatalf("got running slots per node %v after a ended, want [3] (b=2, c=1)", got)
	}
	if err := os.WriteFile(gateC, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b", "c"} {
		if got := waitState(t, c, "j", id, azbatch.TaskStateCompleted); *got.ExecutionInfo.Result != azbatch.TaskExecutionResultSuccess {
			t.Errorf("got task %s result %s, want success", id, *got.ExecutionInfo.Result)
		}
	}
}

// TestRequiredSlotsOverPool: Batch does not validate requiredSlots against
// taskSlotsPerNode; such a task is accepted and never runs. The stand-in
// logs why.
func TestRequiredSlotsOverPool(t *testing.T) {
	var logs syncBuffer
	_, c := start(t, batch.Options{MaxSlots: 4, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	createPool(t, c, "p", 1, 2, nil)
	createJob(t, c, "j", "p", nil)
	big := shTask("big", "true")
	big.RequiredSlots = to.Ptr[int32](3)
	addTask(t, c, "j", big)
	addTask(t, c, "j", shTask("after", "true"))
	waitState(t, c, "j", "after", azbatch.TaskStateCompleted)
	waitFor(t, "the unschedulable warning", 10*time.Second, func() bool {
		return strings.Contains(logs.String(), "requiredSlots exceeds the pool's taskSlotsPerNode")
	})
	if got := getTask(t, c, "j", "big"); *got.State != azbatch.TaskStateActive {
		t.Fatalf("got task big %s, want active (never scheduled)", *got.State)
	}
}

// TestRequiredSlotsLocalCap: when MaxSlots leaves a node smaller than
// taskSlotsPerNode, a task that needs the whole node still runs, alone.
func TestRequiredSlotsLocalCap(t *testing.T) {
	_, c := start(t, batch.Options{MaxSlots: 2})
	createPool(t, c, "p", 1, 4, nil)
	createJob(t, c, "j", "p", nil)
	gate := filepath.Join(t.TempDir(), "go")
	addTask(t, c, "j", heldTask("whole", gate, 4))
	waitState(t, c, "j", "whole", azbatch.TaskStateRunning)
	addTask(t, c, "j", shTask("small", "true"))
	if got := nodeSlots(t, c, "p"); len(got) != 1 || got[0] != 2 {
		t.Fatalf("got running slots per node %v, want [2] (the capped node, full)", got)
	}
	if got := getTask(t, c, "j", "small"); *got.State != azbatch.TaskStateActive {
		t.Fatalf("got task small %s beside a whole-node task, want active", *got.State)
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitState(t, c, "j", "small", azbatch.TaskStateCompleted)
}
