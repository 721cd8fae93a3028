package azurite_test

import (
	"context"
	"crypto/md5"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/ffpipe/ffpipe/internal/emulator/azurite"
)

// seedNames include names LokiJS compares as numbers ("1e5", "0x1f", "42"),
// so the rebuilt name index must order them as Loki does for lookups to work.
func seedNames(n int) []string {
	names := []string{"1e5", "0x1f", "42", "0000000000001e50", "zz/last", "a b+c.json"}
	for i := len(names); i < n; i++ {
		names = append(names, fmt.Sprintf("%016x", uint64(i)*0x9E3779B97F4A7C15))
	}
	return names
}

func restart(t *testing.T, ctx context.Context, s *azurite.Server) *azblob.Client {
	t.Helper()
	if err := s.Start(ctx); err != nil {
		t.Fatalf("restart azurite: %v", err)
	}
	c, err := azblob.NewClientFromConnectionString(s.ConnectionString(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestSeed(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	s := azurite.New(azurite.Options{Dir: dir})
	t.Cleanup(func() { _ = s.Close() })
	c := restart(t, ctx, s)
	for _, cont := range []string{"status", "other"} {
		if _, err := c.CreateContainer(ctx, cont, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.UploadBuffer(ctx, "status", "before", []byte("old"), nil); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()

	names := seedNames(1500)
	blobs := make([]azurite.SeedBlob, len(names))
	for i, n := range names {
		blobs[i] = azurite.SeedBlob{Name: n, Body: []byte(fmt.Sprintf(`{"i":%d,"name":%q}`, i, n)),
			ContentType: "application/json", Metadata: map[string]string{"state": []string{"done", "failed"}[i%2], "n": fmt.Sprint(i)}}
	}
	modified := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name, container string
		blobs           []azurite.SeedBlob
		want            string
	}{
		{"missing container", "nope", blobs[:1], "container nope does not exist"},
		{"existing blob", "status", []azurite.SeedBlob{{Name: "before", Body: []byte("x")}}, "blob status/before already exists"},
		{"twice in one call", "status", []azurite.SeedBlob{blobs[0], blobs[0]}, "already exists"},
		{"no name", "status", []azurite.SeedBlob{{Body: []byte("x")}}, "has no name"},
	} {
		if err := azurite.Seed(ctx, dir, tc.container, tc.blobs, modified); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Seed: got %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
	if err := azurite.Seed(ctx, t.TempDir(), "status", blobs[:1], modified); err == nil || !strings.Contains(err.Error(), "Close Azurite") {
		t.Errorf("empty dir: got %v, want an error saying to run Azurite first", err)
	}
	t0 := time.Now()
	if err := azurite.Seed(ctx, dir, "status", blobs, modified); err != nil {
		t.Fatal(err)
	}
	t.Logf("seeded %d blobs in %v", len(blobs), time.Since(t0))

	c = restart(t, ctx, s)
	checkListing(t, ctx, c, blobs)
	for _, i := range []int{0, 1, 2, 3, 4, 5, 777, len(blobs) - 1} {
		checkBlob(t, ctx, c, blobs[i], modified)
	}
	// Azurite keeps working on top: the first failed attempts left nothing,
	// writes, overwrites and deletes go through the indices Seed rebuilt,
	// and Azurite's own save keeps all of it across a restart.
	if _, err := c.UploadBuffer(ctx, "status", "after", []byte("new"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.UploadBuffer(ctx, "status", names[3], []byte("overwritten"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteBlob(ctx, "status", names[2], nil); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	c = restart(t, ctx, s)
	for name, want := range map[string]string{"before": "old", "after": "new", names[3]: "overwritten", names[9]: string(blobs[9].Body)} {
		if got := download(t, ctx, c, name); got != want {
			t.Errorf("after restart, %s: got %q, want %q", name, got, want)
		}
	}
	if _, err := c.DownloadStream(ctx, "status", names[2], nil); err == nil {
		t.Errorf("after restart, deleted blob %s: got it, want 404", names[2])
	}
}

func checkListing(t *testing.T, ctx context.Context, c *azblob.Client, blobs []azurite.SeedBlob) {
	t.Helper()
	got := map[string]map[string]*string{}
	pager := c.NewListBlobsFlatPager("status", &azblob.ListBlobsFlatOptions{Include: container.ListBlobsInclude{Metadata: true}})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range page.Segment.BlobItems {
			got[*b.Name] = b.Metadata
		}
	}
	if len(got) != len(blobs)+1 {
		t.Errorf("listing: got %d blobs, want %d", len(got), len(blobs)+1)
	}
	for _, b := range blobs {
		md, ok := got[b.Name]
		if !ok {
			t.Errorf("listing: %s missing", b.Name)
			continue
		}
		if to := md["state"]; to == nil || *to != b.Metadata["state"] {
			t.Errorf("listing: %s state: got %v, want %s", b.Name, to, b.Metadata["state"])
		}
	}
}

func checkBlob(t *testing.T, ctx context.Context, c *azblob.Client, b azurite.SeedBlob, modified time.Time) {
	t.Helper()
	bc := c.ServiceClient().NewContainerClient("status").NewBlobClient(b.Name)
	p, err := bc.GetProperties(ctx, nil)
	if err != nil {
		t.Fatalf("properties of %s: %v", b.Name, err)
	}
	sum := md5.Sum(b.Body)
	if *p.ContentLength != int64(len(b.Body)) || *p.ContentType != b.ContentType || string(p.ContentMD5) != string(sum[:]) || !p.LastModified.Equal(modified) {
		t.Errorf("properties of %s: got length %d type %s md5 %x modified %v, want %d %s %x %v", b.Name,
			*p.ContentLength, *p.ContentType, p.ContentMD5, p.LastModified, len(b.Body), b.ContentType, sum, modified)
	}
	if got := download(t, ctx, c, b.Name); got != string(b.Body) {
		t.Errorf("body of %s: got %q, want %q", b.Name, got, b.Body)
	}
	// Conditional requests see the seeded eTag.
	match := func(etag string) error {
		r, err := bc.DownloadStream(ctx, &blob.DownloadStreamOptions{AccessConditions: &blob.AccessConditions{
			ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfMatch: to.Ptr(azcore.ETag(etag))}}})
		if err == nil {
			r.Body.Close()
		}
		return err
	}
	if err := match(string(*p.ETag)); err != nil {
		t.Errorf("GET %s If-Match its own eTag: %v, want 200", b.Name, err)
	}
	if err := match(`"0x1"`); !bloberror.HasCode(err, bloberror.ConditionNotMet) {
		t.Errorf("GET %s If-Match another eTag: got %v, want ConditionNotMet", b.Name, err)
	}
}

func download(t *testing.T, ctx context.Context, c *azblob.Client, name string) string {
	t.Helper()
	resp, err := c.DownloadStream(ctx, "status", name, nil)
	if err != nil {
		t.Fatalf("download %s: %v", name, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
