//go:build inspect

package chaos

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/ffpipe/ffpipe/internal/emulator/azurite"
	"github.com/ffpipe/ffpipe/internal/storage"
)

func TestInspect(t *testing.T) {
	az := azurite.New(azurite.Options{Dir: os.Getenv("AZDIR"), Logger: slog.Default()})
	if err := az.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer az.Close()
	st, _ := storage.NewFromConnectionString(az.ConnectionString(), storage.Options{})
	for _, c := range []string{"input", "quarantine", "status", "output"} {
		st.List(context.Background(), c, "", func(it storage.Item) bool {
			if strings.Contains(it.Name, os.Getenv("GREP")) || strings.Contains(it.Metadata["state"], os.Getenv("GREP")) {
				t.Logf("%s: %s %s %v %v", c, it.Name, it.ETag, it.LastModified, it.Metadata)
			}
			return true
		})
	}
}
