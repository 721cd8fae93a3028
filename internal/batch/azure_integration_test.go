//go:build integration

package batch

import (
	"context"
	"os"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// TestConformanceAzure runs the client conformance suite against a real
// Batch account: go test -tags integration -run ConformanceAzure ./internal/batch
// with FFPIPE_TEST_BATCH_ENDPOINT (account URL) and FFPIPE_TEST_BATCH_POOL
// (an existing pool; it may have no nodes) set, and credentials that
// DefaultAzureCredential finds (Azure Batch Job Submitter or more). A
// throw-away job is created and deleted.
func TestConformanceAzure(t *testing.T) {
	endpoint, pool := os.Getenv("FFPIPE_TEST_BATCH_ENDPOINT"), os.Getenv("FFPIPE_TEST_BATCH_POOL")
	if endpoint == "" || pool == "" {
		t.Skip("FFPIPE_TEST_BATCH_ENDPOINT and FFPIPE_TEST_BATCH_POOL not set")
	}
	cred, err := azidentity.NewDefaultAzureCredential(nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewClient(endpoint, cred, Options{})
	if err != nil {
		t.Fatal(err)
	}
	job := randomID(t)
	t.Cleanup(func() {
		if _, err := c.SDK().DeleteJob(context.Background(), job, nil); err != nil {
			t.Logf("delete job %s: %v", job, err)
		}
	})
	clientConformance(t, c, pool, job)
}
