package main

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/ffpipe/ffpipe/handlers"
	"github.com/ffpipe/ffpipe/internal/emulator/azurite/azuritetest"
	"github.com/ffpipe/ffpipe/internal/records"
	"github.com/ffpipe/ffpipe/internal/storage"
)

// TestPlanRedrivesReasonFilter: --reason selects by the code Status groups
// failures by (records.Record.FailureCode), so every code the status view
// shows, including a state for a reason without a code, finds its records.
func TestPlanRedrivesReasonFilter(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	az := azuritetest.Start(t)
	st, err := storage.NewFromConnectionString(az.ConnectionString(), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.EnsureContainer(ctx, "status"); err != nil {
		t.Fatal(err)
	}
	recs := records.New(st, "status", nil)
	// Already redriven, so planning reads nothing else.
	for _, r := range []records.Record{
		{Key: "k-decode", State: records.StateFailed, Reason: "decode_error: invalid data"},
		{Key: "k-free", State: records.StateFailed, Reason: "something without a code"},
		{Key: "k-missing", State: records.StateInputMissing},
	} {
		r.Updated, r.RedrivenTo = time.Now(), "next"
		body, md, err := records.Encode(r)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Put(ctx, "status", r.Key, body, "application/json", md); err != nil {
			t.Fatal(err)
		}
	}
	keys := []string{"k-decode", "k-free", "k-missing", "k-absent"}
	for _, tc := range []struct {
		code string
		want []string
	}{
		{"", []string{"k-decode", "k-free", "k-missing"}},
		{"decode_error", []string{"k-decode"}},
		{"failed", []string{"k-free"}},
		{"input_missing", []string{"k-missing"}},
		{"no_audio", nil},
	} {
		plan, err := planRedrives(ctx, handlers.RedriveDeps{Blobs: st, Records: recs}, recs, keys, tc.code)
		if err != nil {
			t.Fatalf("--reason %q: %v", tc.code, err)
		}
		var got []string
		for _, p := range plan {
			got = append(got, p.rec.Key)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("--reason %q: got %v, want %v", tc.code, got, tc.want)
		}
	}
}
