// Observation: the end state of a run, collected for Check.

package chaos

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/ffpipe/ffpipe/internal/records"
	"github.com/ffpipe/ffpipe/internal/storage"
	"github.com/ffpipe/ffpipe/internal/tooling/media"
)

// peek returns the messages in the queue (or its dead-letter queue).
func (h *harness) peek(ctx context.Context, dlq bool) ([]*azservicebus.ReceivedMessage, error) {
	client, err := azservicebus.NewClientFromConnectionString(h.sbConn, nil)
	if err != nil {
		return nil, err
	}
	defer client.Close(context.WithoutCancel(ctx))
	var opts *azservicebus.ReceiverOptions
	if dlq {
		opts = &azservicebus.ReceiverOptions{SubQueue: azservicebus.SubQueueDeadLetter}
	}
	rcv, err := client.NewReceiverForQueue(h.cfg.Queue, opts)
	if err != nil {
		return nil, err
	}
	defer rcv.Close(context.WithoutCancel(ctx))
	pctx, c := context.WithTimeout(ctx, 10*time.Second)
	defer c()
	var out []*azservicebus.ReceivedMessage
	for range 100 { // bounded: ≤ 100 pages
		page, err := rcv.PeekMessages(pctx, 250, nil)
		if err != nil {
			return nil, err
		}
		if len(page) == 0 {
			return out, nil
		}
		out = append(out, page...)
	}
	return out, nil
}

// listRecords reads every record; modified, when not nil, gets each record
// blob's Last-Modified.
func (h *harness) listRecords(ctx context.Context, modified map[string]time.Time) (map[string]records.Record, error) {
	recs := records.New(h.store, h.cfg.StatusContainer, nil)
	var keys []string
	err := h.store.List(ctx, h.cfg.StatusContainer, "", func(it storage.Item) bool {
		keys = append(keys, it.Name)
		if modified != nil {
			modified[it.Name] = it.LastModified
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	out := make(map[string]records.Record, len(keys))
	var mu sync.Mutex
	var errs []error
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for _, k := range keys {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			rec, err := recs.Get(ctx, k)
			mu.Lock()
			defer mu.Unlock()
			if errors.Is(err, records.ErrNotFound) {
				return
			}
			if err != nil {
				errs = append(errs, err)
				return
			}
			out[k] = rec
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

func (h *harness) listBlobs(ctx context.Context, container string) (map[string]string, error) {
	out := map[string]string{}
	err := h.store.List(ctx, container, "", func(it storage.Item) bool {
		out[it.Name] = it.ETag
		return true
	})
	return out, err
}

// observeAndCheck collects the end state and runs Check.
func (h *harness) observeAndCheck(ctx context.Context) error {
	obs, err := h.observe(ctx)
	if err != nil {
		return err
	}
	rows := h.ledger()
	rep := h.report
	rep.Rows = len(rows)
	rep.Result = Check(rows, obs, media.DefaultTolerance)
	rep.DLQByReason = map[string]int{}
	for _, d := range obs.DLQ {
		rep.DLQByReason[cmp.Or(d.Reason, "(none)")]++
	}
	rep.EventFaults["delayed"] = int(h.egProxy.delayed.Load())
	rep.EventFaults["duplicated"] = int(h.egProxy.duplicates.Load())
	rep.RecoverySeconds = map[string]p5095{}
	for c, ds := range h.recov {
		rep.RecoverySeconds[c] = percentiles(ds)
	}
	h.executions(rows)
	h.scanSecrets()
	rep.SecurityChecks = h.securityChecks(ctx)
	rep.Ledger = rows
	return nil
}

// observe reads the end state from the stack (records, blobs, dead
// letters, verified outputs, retrying each read) and from the harness.
func (h *harness) observe(ctx context.Context) (Observed, error) {
	var obs Observed
	var outs map[string]string
	steps := []struct {
		what string
		do   func(context.Context) error
	}{
		{"records", func(ctx context.Context) (err error) {
			obs.RecordModified = map[string]time.Time{}
			obs.Records, err = h.listRecords(ctx, obs.RecordModified)
			return
		}},
		{"inputs", func(ctx context.Context) (err error) {
			obs.Inputs, err = h.listBlobs(ctx, h.cfg.InputContainer)
			return
		}},
		{"quarantine", func(ctx context.Context) (err error) {
			if h.cfg.QuarantineContainer == "" {
				return nil
			}
			obs.Quarantine, err = h.listBlobs(ctx, h.cfg.QuarantineContainer)
			return
		}},
		{"outputs", func(ctx context.Context) (err error) { outs, err = h.listBlobs(ctx, h.cfg.OutputContainer); return }},
		{"dead letters", func(ctx context.Context) error {
			dl, err := h.peek(ctx, true)
			if err != nil {
				return err
			}
			obs.DLQ = nil
			for _, m := range dl {
				obs.DLQ = append(obs.DLQ, DeadLetter{MessageID: m.MessageID, Reason: deref(m.DeadLetterReason)})
			}
			return nil
		}},
	}
	for _, st := range steps {
		if err := retry(ctx, "observe "+st.what, st.do); err != nil {
			return obs, fmt.Errorf("chaos: %w", err)
		}
	}
	var err error
	if obs.Outputs, err = h.verifyOutputs(ctx, slices.Sorted(maps.Keys(outs))); err != nil {
		return obs, fmt.Errorf("chaos: %w", err)
	}
	h.observeRun(&obs)
	return obs, nil
}

// observeRun adds what the run itself saw: the host's terminal writes
// (from its log), the storage kills, and what was still in flight when the
// drain hit its cap.
func (h *harness) observeRun(obs *Observed) {
	if f, err := os.Open(filepath.Join(h.st.LogDir(), "funchost.log")); err == nil {
		obs.TerminalWrites, err = ParseTerminalWrites(f)
		f.Close()
		if err != nil {
			h.note("terminal writes: %v", err)
		}
	}
	h.mu.Lock()
	obs.StorageKills = slices.Clone(h.storageKills)
	obs.StorageRestarts = slices.Clone(h.storageRestarts)
	h.mu.Unlock()
	if h.report.DrainEnd == DrainCap {
		obs.InFlight = h.inFlight
		if obs.InFlight == nil {
			obs.InFlight = map[string]bool{}
		}
		obs.DeliveriesInFlight = h.egProxy.inflight.Load() > 0
	}
}

// ledger is a copy of the rows, by ID.
func (h *harness) ledger() []Row {
	h.mu.Lock()
	rows := make([]Row, len(h.rows))
	for i, r := range h.rows {
		rows[i] = *r
	}
	h.mu.Unlock()
	sort.Slice(rows, func(i, j int) bool { return rows[i].ID < rows[j].ID })
	return rows
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// verifyOutputs downloads each output and checks it with ffprobe.
func (h *harness) verifyOutputs(ctx context.Context, names []string) (map[string]OutputBlob, error) {
	dir := filepath.Join(h.dir, "outputs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	out := make(map[string]OutputBlob, len(names))
	var mu sync.Mutex
	var errs []error
	sem := make(chan struct{}, 2)
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			local := filepath.Join(dir, fmt.Sprintf("out-%05d%s", i, path.Ext(n)))
			var size int64
			err := retry(ctx, "download "+n, func(ctx context.Context) error {
				f, err := os.Create(local)
				if err != nil {
					return err
				}
				defer f.Close()
				size, err = h.blob.DownloadFile(ctx, h.cfg.OutputContainer, n, f, nil)
				return err
			})
			if err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("download %q: %w", n, err))
				mu.Unlock()
				return
			}
			ob := verifyOutput(ctx, local, n, size)
			_ = os.Remove(local)
			mu.Lock()
			out[n] = ob
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}
