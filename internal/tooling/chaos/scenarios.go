// Scenarios: the ledger rows, the uploads and messages, and the edge cases
// that need the harness's timing.

package chaos

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"

	"github.com/ffpipe/ffpipe/internal/emulator/azurite"
	"github.com/ffpipe/ffpipe/internal/etags"
	"github.com/ffpipe/ffpipe/internal/queue"
	"github.com/ffpipe/ffpipe/internal/records"
	"github.com/ffpipe/ffpipe/internal/request"
	"github.com/ffpipe/ffpipe/internal/tooling/media"
)

func (h *harness) prepareMedia(ctx context.Context) error {
	base := media.ClipSpec{CacheDir: h.opts.CacheDir}
	clips, err := media.GenerateSet(ctx, filepath.Join(h.dir, "media", "valid"), h.opts.Files, h.opts.Seed,
		media.SetOptions{Base: base, MinDuration: h.opts.MinDuration, MaxDuration: h.opts.MaxDuration, Prefix: "clip-"})
	if err != nil {
		return fmt.Errorf("chaos: %w", err)
	}
	h.clips = clips
	if !h.opts.NoPoison {
		cases, err := media.PoisonSet(ctx, filepath.Join(h.dir, "media", "poison"), media.PoisonOptions{
			Base:          media.ClipSpec{CacheDir: h.opts.CacheDir},
			Prefix:        "poison/",
			MaxInputBytes: h.opts.MaxInputBytes,
			LongDuration:  h.opts.PoisonLong,
			OutputExt:     outputExt,
			Expect:        poisonExpectations(),
		})
		if err != nil {
			return fmt.Errorf("chaos: %w", err)
		}
		h.poison = cases
	}
	h.report.Poison = len(h.poison)
	return nil
}

// poisonExpectations adjusts media.PoisonSet's defaults where ffpipe's
// documented behaviour differs from the generic recommendation. There is
// none today: the pipeline's reasons carry the recommended codes of docs/reasons.md
// (decode_error, not_media, no_audio, bad_name, too_large, empty). An
// override here must say why; a pipeline that disagrees is a bug.
func poisonExpectations() map[string]media.Expect {
	return nil
}

// item is one thing to upload.
type item struct {
	row  *Row
	path string
}

func fileSHA(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	s := sha256.New()
	if _, err := io.Copy(s, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(s.Sum(nil)), nil
}

// buildItems makes the ledger rows of the valid clips and the poison set.
func (h *harness) buildItems(ctx context.Context) ([]item, error) {
	// Measure every clip's audio (one ffmpeg decode each) in parallel.
	durs := make([]time.Duration, len(h.clips))
	derrs := make([]error, len(h.clips))
	sem := make(chan struct{}, max(runtime.NumCPU(), 2))
	var wg sync.WaitGroup
	for i, c := range h.clips {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			durs[i], derrs[i] = media.ExpectedAudioDuration(ctx, c.Path)
		}()
	}
	wg.Wait()
	if err := errors.Join(derrs...); err != nil {
		return nil, fmt.Errorf("chaos: measure clips: %w", err)
	}
	var items []item
	for i, c := range h.clips {
		d := durs[i]
		name := "valid/" + c.Name
		r := &Row{ID: fmt.Sprintf("valid-%04d", i), Kind: KindValid, Name: name, Duration: d,
			expect: media.Expect{Outcome: media.Done}, Output: OutputName(name, outputExt), ViaMsg: i%5 == 0}
		items = append(items, item{r, c.Path})
	}
	for _, c := range h.poison {
		r := &Row{ID: "poison-" + c.ID, Kind: KindPoison, Name: c.Name, Duration: c.AudioDuration, expect: c.Expect}
		if c.Expect.Outcome.Has(media.Done) || c.Expect.Outcome.Has(media.Failed) {
			r.Output = OutputName(c.Name, outputExt)
		}
		if c.Expect.Outcome == media.Ignored {
			r.Output = ""
		}
		items = append(items, item{r, c.Path})
	}
	for _, it := range items {
		it.row.Expect = it.row.expect.String()
		if it.row.wantState != "" {
			it.row.Expect = string(it.row.wantState)
		}
		sum, err := fileSHA(it.path)
		if err != nil {
			return nil, err
		}
		it.row.SHA256 = sum
	}
	h.rngMu.Lock()
	h.rng.Shuffle(len(items), func(i, j int) { items[i], items[j] = items[j], items[i] })
	h.rngMu.Unlock()
	return items, nil
}

// upload puts path at row.Name and fills eTag, key and size.
func (h *harness) upload(ctx context.Context, r *Row, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	h.mu.Lock()
	r.path = path
	h.mu.Unlock()
	// An attempt cut short may still be stored (its answer is lost, and
	// the retry makes a second version): give big files time on a loaded
	// machine, where Azurite takes seconds per MiB.
	each := 15*time.Second + time.Duration(len(data)>>20)*5*time.Second
	return retryEach(ctx, "upload "+r.ID, each, func(ctx context.Context) error {
		var opts *blockblob.UploadBufferOptions
		if r.Profile != "" {
			opts = &blockblob.UploadBufferOptions{Metadata: map[string]*string{request.MetadataProfile: &r.Profile}}
		}
		resp, err := h.blob.ServiceClient().NewContainerClient(h.cfg.InputContainer).NewBlockBlobClient(r.Name).UploadBuffer(ctx, data, opts)
		if err != nil {
			return err
		}
		h.mu.Lock()
		if r.Key != "" {
			// An earlier attempt may have been stored after all.
			r.superseded = append(r.superseded, r.Key)
		}
		r.ETag = etags.Normalize(string(*resp.ETag))
		r.Key = request.Key(azurite.Account, h.cfg.InputContainer, r.Name, r.ETag)
		r.Size = int64(len(data))
		h.ops[r] = time.Now()
		h.mu.Unlock()
		return nil
	})
}

func (h *harness) send(ctx context.Context, id string, body []byte) error {
	return retry(ctx, "send "+id, func(ctx context.Context) error {
		return h.sender.Send(ctx, queue.Message{ID: id, CorrelationID: "chaos-" + id, Body: body})
	})
}

func (h *harness) addRow(r *Row) {
	h.mu.Lock()
	h.rows = append(h.rows, r)
	h.mu.Unlock()
}

// exercise uploads everything while the fault injector runs, then stops
// the faults and replays a sample of the captured events.
func (h *harness) exercise(ctx context.Context) error {
	h.ops = map[*Row]time.Time{}
	items, err := h.buildItems(ctx)
	if err != nil {
		return err
	}
	window := h.opts.FaultWindow
	if window <= 0 {
		window = max(30*time.Second, time.Duration(len(items))*500*time.Millisecond)
	}
	h.faultsStart = time.Now()
	h.faultsEnd = h.faultsStart.Add(window)
	fctx, stopFaults := context.WithCancel(ctx)
	defer stopFaults()
	h.egProxy.setFaults(true)
	var fwg sync.WaitGroup
	fwg.Add(1)
	go func() { defer fwg.Done(); h.injectFaults(fctx, window) }()

	if err := h.feed(ctx, items, window); err != nil {
		stopFaults()
		fwg.Wait()
		return fmt.Errorf("chaos: feeding inputs: %w", err)
	}
	fwg.Wait() // the injector returns at the end of the window
	h.egProxy.setFaults(false)
	if err := h.ensureAllRunning(ctx); err != nil {
		return err
	}
	h.log.Info("faults stopped", "kills", h.report.KillsByComponent)
	return nil
}

// feed uploads items, uploadParallel at a time and spread over the first
// half of the fault window, sending a request message for those that go by
// message, while the edge cases that need the harness's timing run beside
// them; it returns every error.
func (h *harness) feed(ctx context.Context, items []item, window time.Duration) error {
	var wg sync.WaitGroup
	work := make(chan item)
	// Errors are collected, never sent on a bounded channel that is read
	// only after the workers end: any number of failures must end the
	// feed, not block it.
	var mu sync.Mutex
	var all []error
	report := func(err error) {
		mu.Lock()
		all = append(all, err)
		mu.Unlock()
	}
	for w := 0; w < uploadParallel; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range work {
				h.feedItem(ctx, it, report)
			}
		}()
	}
	spread := window / 2 / time.Duration(max(len(items), 1))
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(work)
		for _, it := range items {
			select {
			case work <- it:
			case <-ctx.Done():
				return
			}
			if !waitCtx(ctx, spread) {
				return
			}
		}
	}()
	// Edge cases of docs/reliability.md#duplicates-and-reordering and #poison-and-edge-case-inputs that need the harness's timing.
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := h.edgeCases(ctx); err != nil {
			report(err)
		}
		if err := h.profileRows(ctx); err != nil {
			report(err)
		}
	}()
	wg.Wait()
	return errors.Join(all...)
}

// feedItem uploads it, records its row, and sends its request when the row
// goes by message.
func (h *harness) feedItem(ctx context.Context, it item, report func(error)) {
	if err := h.upload(ctx, it.row, it.path); err != nil {
		report(err)
		return
	}
	h.addRow(it.row)
	if !it.row.ViaMsg {
		return
	}
	req := request.Request{V: request.Version, Source: request.Source{Container: h.cfg.InputContainer, Blob: it.row.Name}}
	body, err := req.Encode()
	if err == nil {
		err = h.send(ctx, it.row.Key, body)
	}
	if err != nil {
		report(err)
	}
}

// edgeCases: overwrite while processed, delete before dispatch, and
// messages that are not requests.
func (h *harness) edgeCases(ctx context.Context) error {
	n := max(1, h.opts.Files/20)
	var errs []error
	for i := range n {
		if err := h.overwrite(ctx, i); err != nil {
			errs = append(errs, err)
		}
		if err := h.deleteBeforeDispatch(ctx, i); err != nil {
			errs = append(errs, err)
		}
	}
	for i := range 2 {
		id := fmt.Sprintf("bad-message-%d", i)
		sum := sha256.Sum256([]byte(fmt.Sprintf("chaos-%d-%s", h.opts.Seed, id)))
		key := hex.EncodeToString(sum[:])[:request.KeyLen]
		r := &Row{ID: id, Kind: KindBadMessage, Key: key, wantState: records.StateBadRequest, Expect: string(records.StateBadRequest)}
		body := []byte(`{"v":1,"source":`) // truncated JSON
		if i == 1 {
			body = []byte(`{"v":99,"source":{"container":"input","blob":"x.mp4"}}`)
		}
		if err := h.send(ctx, key, body); err != nil {
			errs = append(errs, err)
			continue
		}
		h.addRow(r)
	}
	return errors.Join(errs...)
}

// overwrite uploads version 1 of a blob, waits until its task exists (or
// its record moves on), then uploads version 2 under the same name.
func (h *harness) overwrite(ctx context.Context, i int) error {
	specs := []media.ClipSpec{
		{CacheDir: h.opts.CacheDir, Name: fmt.Sprintf("ow-%d-v1.mp4", i), Duration: 2 * time.Second, ToneHz: 300 + i},
		{CacheDir: h.opts.CacheDir, Name: fmt.Sprintf("ow-%d-v2.mp4", i), Duration: 1 * time.Second, ToneHz: 900 + i},
	}
	name := fmt.Sprintf("overwrite/ow-%d.mp4", i)
	var rows [2]*Row
	for v, spec := range specs {
		p, err := media.Generate(ctx, filepath.Join(h.dir, "media", "edge"), spec)
		if err != nil {
			return err
		}
		d, err := media.ExpectedAudioDuration(ctx, p)
		if err != nil {
			return err
		}
		kind := KindOverwriteOld
		if v == 1 {
			kind = KindOverwriteNew
		}
		r := &Row{ID: fmt.Sprintf("overwrite-%d-v%d", i, v+1), Kind: kind, Name: name, Duration: d,
			expect: media.Expect{Outcome: media.Done}, Output: OutputName(name, outputExt)}
		r.mayBeMissing = v == 0
		r.Expect = "done"
		if v == 0 {
			r.Expect = "done|input_missing"
		}
		if sum, err := fileSHA(p); err == nil {
			r.SHA256 = sum
		}
		if err := h.upload(ctx, r, p); err != nil {
			return err
		}
		h.addRow(r)
		rows[v] = r
		if v == 0 {
			h.waitDispatched(ctx, r.Key, 20*time.Second)
		}
	}
	rows[0].Pair, rows[1].Pair = rows[1].ID, rows[0].ID
	return nil
}

// waitDispatched polls until key has a Batch task or a record past
// "queued" (or d passes). Dispatch writes no record: the task is the sign.
func (h *harness) waitDispatched(ctx context.Context, key string, d time.Duration) {
	recs := records.New(h.store, h.cfg.StatusContainer, nil)
	bc, err := h.st.BatchClient()
	if err != nil {
		return
	}
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		rctx, c := context.WithTimeout(ctx, 5*time.Second)
		_, terr := bc.Task(rctx, h.cfg.BatchJob, key)
		rec, err := recs.Get(rctx, key)
		c()
		if terr == nil || (err == nil && rec.State != records.StateQueued) {
			return
		}
		if !waitCtx(ctx, 100*time.Millisecond) {
			return
		}
	}
}

// deleteBeforeDispatch uploads a clip, deletes it, then submits it as a
// message naming that version: Dispatch must record input_missing.
func (h *harness) deleteBeforeDispatch(ctx context.Context, i int) error {
	spec := media.ClipSpec{CacheDir: h.opts.CacheDir, Name: fmt.Sprintf("del-%d.mp4", i), Duration: time.Second, ToneHz: 1500 + i}
	p, err := media.Generate(ctx, filepath.Join(h.dir, "media", "edge"), spec)
	if err != nil {
		return err
	}
	name := fmt.Sprintf("deleted/del-%d.mp4", i)
	r := &Row{ID: fmt.Sprintf("deleted-%d", i), Kind: KindDeleted, Name: name, wantState: records.StateInputMissing,
		Expect: string(records.StateInputMissing), ViaMsg: true, Output: OutputName(name, outputExt)}
	if err := h.upload(ctx, r, p); err != nil {
		return err
	}
	if err := h.deleteInput(ctx, r); err != nil {
		return err
	}
	h.addRow(r)
	req := request.Request{V: request.Version, Source: request.Source{Container: h.cfg.InputContainer, Blob: name, ETag: r.ETag}}
	body, err := req.Encode()
	if err != nil {
		return err
	}
	return h.send(ctx, r.Key, body)
}

func (h *harness) deleteInput(ctx context.Context, r *Row) error {
	err := retry(ctx, "delete "+r.ID, func(ctx context.Context) error {
		_, err := h.blob.DeleteBlob(ctx, h.cfg.InputContainer, r.Name, nil)
		if bloberror.HasCode(err, bloberror.BlobNotFound) {
			return nil
		}
		return err
	})
	h.mu.Lock()
	h.ops[r] = time.Now()
	h.mu.Unlock()
	return err
}
