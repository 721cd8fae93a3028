package media

import (
	"os"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"

	"github.com/ffpipe/ffpipe/internal/emulator/azurite/azuritetest"
)

// TestPoisonNamesSurviveAzurite uploads every case through the azblob SDK
// to Azurite and lists the container: each blob must come back under
// exactly its name (no dot-segment folding, no lost "?#%" characters, the
// 1,024-character and 254-segment names accepted) with its size. A harness
// can therefore key its ledger by Case.Name.
func TestPoisonNamesSurviveAzurite(t *testing.T) {
	needFFmpeg(t)
	ctx := testCtx(t)
	cases, err := poisonFixture()
	if err != nil {
		t.Fatal(err)
	}
	s := azuritetest.Start(t)
	c, err := azblob.NewClientFromConnectionString(s.ConnectionString(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateContainer(ctx, "input", nil); err != nil {
		t.Fatal(err)
	}
	want := map[string]Case{}
	for _, cs := range cases {
		data, err := os.ReadFile(cs.Path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.UploadBuffer(ctx, "input", cs.Name, data, nil); err != nil {
			t.Errorf("%s: upload %q: %v", cs.ID, cs.Name, err)
			continue
		}
		want[cs.Name] = cs
	}
	got := map[string]int64{}
	for p := c.NewListBlobsFlatPager("input", nil); p.More(); {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range page.Segment.BlobItems {
			got[*b.Name] = *b.Properties.ContentLength
			if _, ok := want[*b.Name]; !ok {
				t.Errorf("listed %q, which no case uploaded", *b.Name)
			}
		}
	}
	for name, cs := range want {
		size, ok := got[name]
		if !ok {
			t.Errorf("%s: %q not listed", cs.ID, name)
			continue
		}
		if size != cs.Size {
			t.Errorf("%s: listed size %d, want %d", cs.ID, size, cs.Size)
		}
	}
	if len(got) != len(cases) {
		t.Errorf("listed %d blobs, want %d", len(got), len(cases))
	}
}
