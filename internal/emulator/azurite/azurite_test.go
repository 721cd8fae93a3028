package azurite_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"

	"github.com/ffpipe/ffpipe/internal/emulator/azurite/azuritetest"
)

func TestAzuriteRoundTrip(t *testing.T) {
	s := azuritetest.Start(t)
	c, err := azblob.NewClientFromConnectionString(s.ConnectionString(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.CreateContainer(ctx, "input", nil); err != nil {
		t.Fatalf("create container: %v", err)
	}
	if _, err := c.UploadBuffer(ctx, "input", "a.mp4", []byte("hello"), nil); err != nil {
		t.Fatalf("upload: %v", err)
	}
	resp, err := c.DownloadStream(ctx, "input", "a.mp4", nil)
	if err != nil {
		t.Fatalf("download: %v", err)
	}
	defer resp.Body.Close()
	buf := new(bytes.Buffer)
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		t.Fatal(err)
	}
	if got := buf.String(); got != "hello" {
		t.Fatalf("got %q, want %q", got, "hello")
	}
}
