package batchtest_test

import (
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"

	"github.com/ffpipe/ffpipe/internal/emulator/batch"
	"github.com/ffpipe/ffpipe/internal/emulator/batch/batchtest"
)

// In a test, Start gives a private Batch stand-in (in memory unless
// Options.DataDir is set) and Client an azbatch client with its bearer
// token. (Start needs the test's t, so this example is compiled, not run;
// TestExampleStart runs the same code.)
func ExampleStart() {
	var t *testing.T // the test's t
	createJob(t)
}

func createJob(t testing.TB) {
	s := batchtest.Start(t, batch.Options{MaxSlots: 1})
	client := batchtest.Client(t, s)
	if _, err := client.CreatePool(t.Context(), azbatch.CreatePoolContent{
		ID:     to.Ptr("ffmpeg"),
		VMSize: to.Ptr("standard_d2s_v5"), TargetDedicatedNodes: to.Ptr(int32(1)),
		VirtualMachineConfiguration: &azbatch.VirtualMachineConfiguration{
			ImageReference: &azbatch.ImageReference{Publisher: to.Ptr("canonical"), Offer: to.Ptr("0001-com-ubuntu-server-jammy"), SKU: to.Ptr("22_04-lts"), Version: to.Ptr("latest")},
			NodeAgentSKUID: to.Ptr("batch.node.ubuntu 22.04"),
		},
	}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := client.CreateJob(t.Context(), azbatch.CreateJobContent{
		ID: to.Ptr("ffpipe"), PoolInfo: &azbatch.PoolInfo{PoolID: to.Ptr("ffmpeg")},
	}, nil); err != nil {
		t.Fatal(err)
	}
	job, err := client.GetJob(t.Context(), "ffpipe", nil)
	if err != nil || *job.ID != "ffpipe" {
		t.Fatalf("GetJob = %v, %v", job.ID, err)
	}
}

func TestExampleStart(t *testing.T) { createJob(t) }
