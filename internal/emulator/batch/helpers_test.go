package batch_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"

	"github.com/ffpipe/ffpipe/internal/emulator/batch"
	"github.com/ffpipe/ffpipe/internal/emulator/batch/batchtest"
)

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func start(t testing.TB, opts batch.Options) (*batch.Server, *azbatch.Client) {
	t.Helper()
	s := batchtest.Start(t, opts)
	return s, batchtest.Client(t, s)
}

func respErr(t testing.TB, err error) *azcore.ResponseError {
	t.Helper()
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("got error %v, want *azcore.ResponseError", err)
	}
	return re
}

func wantCode(t testing.TB, err error, status int, code string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got nil error, want %d %s", status, code)
	}
	re := respErr(t, err)
	if re.StatusCode != status || re.ErrorCode != code {
		t.Fatalf("got %d %s, want %d %s", re.StatusCode, re.ErrorCode, status, code)
	}
}

func createPool(t testing.TB, c *azbatch.Client, id string, nodes, slots int32, mutate func(*azbatch.CreatePoolContent)) {
	t.Helper()
	p := azbatch.CreatePoolContent{
		ID: to.Ptr(id), VMSize: to.Ptr("standard_d2s_v5"),
		TargetDedicatedNodes: to.Ptr(nodes), TaskSlotsPerNode: to.Ptr(slots),
		VirtualMachineConfiguration: &azbatch.VirtualMachineConfiguration{
			ImageReference: &azbatch.ImageReference{Publisher: to.Ptr("canonical"), Offer: to.Ptr("ubuntu-24_04-lts"), SKU: to.Ptr("server")},
			NodeAgentSKUID: to.Ptr("batch.node.ubuntu 24.04"),
		},
		TargetNodeCommunicationMode: to.Ptr(azbatch.NodeCommunicationModeSimplified),
	}
	if mutate != nil {
		mutate(&p)
	}
	if _, err := c.CreatePool(ctxT(t), p, nil); err != nil {
		t.Fatalf("create pool %s: %v", id, err)
	}
}

func createJob(t testing.TB, c *azbatch.Client, id, pool string, mutate func(*azbatch.CreateJobContent)) {
	t.Helper()
	j := azbatch.CreateJobContent{ID: to.Ptr(id), PoolInfo: &azbatch.PoolInfo{PoolID: to.Ptr(pool)}}
	if mutate != nil {
		mutate(&j)
	}
	if _, err := c.CreateJob(ctxT(t), j, nil); err != nil {
		t.Fatalf("create job %s: %v", id, err)
	}
}

func addTask(t testing.TB, c *azbatch.Client, job string, task azbatch.CreateTaskContent) {
	t.Helper()
	if _, err := c.CreateTask(ctxT(t), job, task, nil); err != nil {
		t.Fatalf("create task %s: %v", *task.ID, err)
	}
}

// waitFor polls fn until it returns true or the deadline passes.
func waitFor(t testing.TB, what string, d time.Duration, fn func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !fn() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		<-tick.C
	}
}

func getTask(t testing.TB, c *azbatch.Client, job, id string) azbatch.Task {
	t.Helper()
	r, err := c.GetTask(ctxT(t), job, id, nil)
	if err != nil {
		t.Fatalf("get task %s: %v", id, err)
	}
	return r.Task
}

// waitState waits until the task is in state and returns it.
func waitState(t testing.TB, c *azbatch.Client, job, id string, state azbatch.TaskState) azbatch.Task {
	t.Helper()
	var got azbatch.Task
	waitFor(t, "task "+id+" "+string(state), 30*time.Second, func() bool {
		got = getTask(t, c, job, id)
		return got.State != nil && *got.State == state
	})
	return got
}

func shTask(id, script string) azbatch.CreateTaskContent {
	return azbatch.CreateTaskContent{ID: to.Ptr(id), CommandLine: to.Ptr(`/bin/sh -c "` + script + `"`)}
}
