package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"time"

	"github.com/ffpipe/ffpipe/internal/config"
	"github.com/ffpipe/ffpipe/internal/emulator/azurite"
	"github.com/ffpipe/ffpipe/internal/failure"
	"github.com/ffpipe/ffpipe/internal/records"
	"github.com/ffpipe/ffpipe/internal/storage"
	"github.com/ffpipe/ffpipe/internal/tooling/stack"
)

// The status phase measures Status at scale: N records (default 100,000),
// spread over the last 30 days and over the states, are seeded into the
// status container of a fresh stack, the index is rebuilt from them through
// the storage API (records.Store.Rebuild, what `ffpipe status --rebuild`
// does: one listing of every record), and then Status is asked through the
// Functions host, as a user asks it: the summary (counts and the 50 latest
// records) and single keys, each statusCalls times. The summary's total
// must equal N.
//
// The records are seeded into Azurite's data directory while it is stopped
// (azurite.Seed), not written through its API: Azurite filters its whole
// blob collection on every write, so N writes cost O(N²) (25,000 records
// took 18 minutes, 100,000 would take hours), which measures Azurite's
// store, not Status. The records are the bytes and metadata records.Store
// writes (records.Encode); the rebuild and every Status call then go
// through the API as usual.

// statusCalls is how many times each Status request is timed.
const statusCalls = 41

// StatusFigures are the status phase's results (flattened into Result's JSON).
type StatusFigures struct {
	// StatusRecords is the number of records Status counted (= seeded).
	StatusRecords int `json:"status_records"`
	// StatusP50Ms and StatusP95Ms time the summary (GET /api/status,
	// JSON): counts, the 50 latest records and Batch's task counts.
	StatusP50Ms float64 `json:"status_p50_ms"`
	StatusP95Ms float64 `json:"status_p95_ms"`
	// StatusKeyP50Ms times the lookup of one key (GET /api/status/<key>).
	StatusKeyP50Ms float64 `json:"status_key_p50_ms"`
	// StatusHTMLP50Ms times the summary as the HTML page.
	StatusHTMLP50Ms float64 `json:"status_html_p50_ms"`
	// StatusSeedSeconds is how long seeding took (Azurite stopped, the
	// records written into its data, Azurite started again), and
	// StatusRebuildSeconds how long Rebuild took.
	StatusSeedSeconds    float64 `json:"status_seed_seconds"`
	StatusRebuildSeconds float64 `json:"status_rebuild_seconds"`
}

var seedStates = []records.State{records.StateDone, records.StateDone, records.StateDone, records.StateDone,
	records.StateDone, records.StateDone, records.StateFailed, records.StateInputMissing, records.StateRejected, records.StateQueued}

// seedReasons are the failed records' reasons, so failures group by code.
var seedReasons = []failure.Reason{failure.DecodeError, failure.NotMedia, failure.NoAudio}

func (r *runner) statusPhase(ctx context.Context) error {
	n := r.o.StatusRecords
	p, err := r.startStack(ctx, "status", stack.Options{})
	if err != nil {
		return err
	}
	defer p.s.Close()
	keys, blobs, err := seedRecords(n, r.o.Seed, p.cfg, time.Now().UTC())
	if err != nil {
		return err
	}
	r.progress("status: seeding %d records into Azurite's data …", n)
	t0 := time.Now()
	if err := p.s.Stop(stack.Azurite, false); err != nil {
		return err
	}
	if err := azurite.Seed(ctx, p.s.AzuriteDir(), p.cfg.StatusContainer, blobs, time.Now()); err != nil {
		return err
	}
	if err := p.s.Restart(ctx, stack.Azurite); err != nil {
		return err
	}
	r.res.StatusSeedSeconds = round(time.Since(t0).Seconds(), 1)
	r.progress("status: %d records seeded in %.1fs; rebuilding the index …", n, r.res.StatusSeedSeconds)

	st, err := storage.NewFromConnectionString(p.s.StorageConnectionString(), storage.Options{})
	if err != nil {
		return err
	}
	recs := records.New(st, p.cfg.StatusContainer, nil).WithIndex(records.NewIndex(st, p.cfg.IndexContainer, p.cfg.RecordRetention, nil), nil)
	t0 = time.Now()
	res, err := recs.Rebuild(ctx)
	if err != nil {
		return err
	}
	r.res.StatusRebuildSeconds = round(time.Since(t0).Seconds(), 2)
	if res.Records != n {
		return fmt.Errorf("status: the rebuild listed %d records, want the %d seeded", res.Records, n)
	}
	r.progress("status: index of %d records over %d days in %.1fs; timing Status …", res.Records, res.Days, r.res.StatusRebuildSeconds)
	return r.timeStatus(ctx, p, keys)
}

// seedRecords makes n records as the functions would have written them,
// updated at random times over the 30 days before now.
func seedRecords(n int, seed uint64, cfg config.Config, now time.Time) ([]string, []azurite.SeedBlob, error) {
	rng := rand.New(rand.NewPCG(seed, 17))
	keys := make([]string, n)
	blobs := make([]azurite.SeedBlob, n)
	for i := range n {
		keys[i] = fmt.Sprintf("%016x%016x", rng.Uint64(), rng.Uint64())
		upd := now.Add(-time.Duration(rng.Int64N(int64(30 * 24 * time.Hour))))
		state := seedStates[i%len(seedStates)]
		rec := records.Record{Key: keys[i], State: state, Preset: "mp3", Updated: upd,
			Source: records.Blob{Container: cfg.InputContainer, Blob: fmt.Sprintf("seed/%07d.mp4", i), Size: 1 << 20}}
		switch state {
		case records.StateDone:
			rec.Output = records.Blob{Container: cfg.OutputContainer, Blob: fmt.Sprintf("seed/%07d.mp3", i), Size: 1 << 18}
		case records.StateFailed:
			rec.Reason = string(seedReasons[i%len(seedReasons)]) + ": seeded by the bench"
		}
		body, md, err := records.Encode(rec)
		if err != nil {
			return nil, nil, err
		}
		blobs[i] = azurite.SeedBlob{Name: keys[i], Body: body, ContentType: "application/json", Metadata: md}
	}
	return keys, blobs, nil
}

// timeStatus times the summary, one key and the HTML page through the host.
func (r *runner) timeStatus(ctx context.Context, p *pipe, keys []string) error {
	base := p.s.HostURL() + "/api/status"
	code := url.Values{"code": {p.s.HostMasterKey()}}
	var sum records.Summary
	summary := func() error { return getStatus(ctx, base+"?format=json&"+code.Encode(), &sum) }
	// A first call warms the handler's connections.
	if err := summary(); err != nil {
		return err
	}
	d, err := timeCalls(summary)
	if err != nil {
		return err
	}
	r.res.StatusP50Ms, r.res.StatusP95Ms = round(Percentile(d, 50), 1), round(Percentile(d, 95), 1)
	r.res.StatusRecords = sum.Total
	if sum.Total != len(keys) || len(sum.Recent) == 0 {
		return fmt.Errorf("status counted %d records and listed %d recent ones, want %d and some", sum.Total, len(sum.Recent), len(keys))
	}
	i := 0
	d, err = timeCalls(func() error {
		i++
		key := keys[(i*7919)%len(keys)]
		var rec records.Record
		if err := getStatus(ctx, base+"/"+key+"?format=json&"+code.Encode(), &rec); err != nil {
			return err
		}
		if rec.Key != key {
			return fmt.Errorf("status of key %s answered key %q", key, rec.Key)
		}
		return nil
	})
	if err != nil {
		return err
	}
	r.res.StatusKeyP50Ms = round(Percentile(d, 50), 1)
	d, err = timeCalls(func() error { return getStatus(ctx, base+"?"+code.Encode(), nil) })
	if err != nil {
		return err
	}
	r.res.StatusHTMLP50Ms = round(Percentile(d, 50), 1)
	r.progress("status: summary p50 %.0f ms (p95 %.0f), one key %.0f ms, HTML %.0f ms over %d records",
		r.res.StatusP50Ms, r.res.StatusP95Ms, r.res.StatusKeyP50Ms, r.res.StatusHTMLP50Ms, r.res.StatusRecords)
	return nil
}

// timeCalls times call statusCalls times, in ms.
func timeCalls(call func() error) ([]float64, error) {
	var d []float64
	for range statusCalls {
		t0 := time.Now()
		if err := call(); err != nil {
			return nil, err
		}
		d = append(d, ms(time.Since(t0)))
	}
	return d, nil
}

// getStatus GETs u and decodes the JSON answer into v (nil: read and drop).
func getStatus(ctx context.Context, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("status: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("status: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status: %s: %.300s", resp.Status, body)
	}
	if v == nil {
		return nil
	}
	return json.Unmarshal(body, v)
}
