package handlers

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/ffpipe/ffpipe/internal/batch"
	"github.com/ffpipe/ffpipe/internal/etags"
	"github.com/ffpipe/ffpipe/internal/failure"
	"github.com/ffpipe/ffpipe/internal/records"
	"github.com/ffpipe/ffpipe/internal/request"
	"github.com/ffpipe/ffpipe/internal/storage"
)

// dispatchParallelism bounds the storage calls of one batch: lookups for
// requests without an eTag and size, and failure records.
const dispatchParallelism = 64

// message is one Service Bus message of a Dispatch batch.
type message struct {
	body          []byte
	messageID     string
	correlationID string
	enqueued      time.Time // zero when the host did not say or it did not parse
}

// prepared is what one message turned into.
type prepared struct {
	spec *batch.TaskSpec // a task to add
	log  *slog.Logger
	err  error // retryable: the batch must be abandoned
}

// dispatchBatch handles a serviceBusTrigger batch (cardinality many, dataType
// string): one Batch task per valid request, a record for every message
// that can never succeed, and 500 when anything transient failed, so the
// host abandons the whole batch (safe: task ids are keys, TaskExists counts
// as success). dispatch (budget.go) runs it under a time budget.
func (a *app) dispatchBatch(r *http.Request, inv *invocation) error {
	ctx := r.Context()
	msgs, err := decodeMessages(inv.req)
	if err != nil {
		// The envelope itself is unreadable: nothing to record per message.
		a.log.Error("dispatch: undecodable trigger value", "invocationId", inv.id, "err", err)
		inv.logf("undecodable trigger value: %v", err)
		return nil
	}
	results := make([]prepared, len(msgs))
	parallel(len(msgs), dispatchParallelism, func(i int) { results[i] = a.prepare(ctx, inv, msgs[i]) })

	var specs []batch.TaskSpec
	logs := map[string]*slog.Logger{}
	var errs []error
	for _, p := range results {
		if p.err != nil {
			errs = append(errs, p.err)
		}
		if p.spec != nil {
			if _, dup := logs[p.spec.Key]; !dup {
				specs = append(specs, *p.spec)
				logs[p.spec.Key] = p.log
			}
		}
	}
	if len(errs) > 0 {
		return retry(errors.Join(errs...))
	}
	if len(specs) == 0 {
		inv.logf("dispatch: %d messages, no tasks", len(msgs))
		return nil
	}
	if spent, amount := a.budgetSpent(ctx); spent {
		if err := a.deferForBudget(ctx, inv, specs, logs, amount); err != nil {
			return retry(err)
		}
		return nil
	}
	if err := a.ensureJob(ctx); err != nil {
		return retry(err)
	}
	added, err := a.d.Submitter.AddTasks(ctx, a.cfg.BatchJob, specs)
	if err != nil {
		if errors.Is(err, batch.ErrJobNotFound) || errors.Is(err, batch.ErrJobNotActive) {
			a.forgetJob()
		}
		return retry(fmt.Errorf("add %d tasks: %w", len(specs), err))
	}
	created, existed, rejected, err := a.settleAdded(ctx, specs, logs, added)
	inv.logf("dispatch: %d messages, %d tasks added, %d existed, %d rejected", len(msgs), created, existed, rejected)
	if err != nil {
		return retry(err)
	}
	return nil
}

// settleAdded logs each task Batch added and writes the failure record of
// each task Batch rejected for good. A task is the record of its dispatch:
// no status record is written for an added one (Status and Sweep read the
// task), so a batch costs one Batch call and nothing per message unless
// Batch rejects one. The error joins what must be retried.
func (a *app) settleAdded(ctx context.Context, specs []batch.TaskSpec, logs map[string]*slog.Logger, added []batch.AddResult) (created, existed, rejected int, err error) {
	byKey := map[string]batch.TaskSpec{}
	for _, s := range specs {
		byKey[s.Key] = s
	}
	recErrs := make([]error, len(added))
	parallel(len(added), dispatchParallelism, func(i int) {
		res := added[i]
		spec, ok := byKey[res.Key]
		if !ok {
			recErrs[i] = fmt.Errorf("add tasks: result for unknown key %s", res.Key)
			return
		}
		log := logs[res.Key]
		switch {
		case res.Err == nil:
			log.Info("task added", "existed", res.Existed, "profile", spec.Profile.Name, "output", spec.Request.Output.Blob, "outputs", len(spec.Outputs))
		case res.Permanent:
			reason := failure.BatchRejected.With(res.Err.Error())
			if _, err := a.writeTerminal(ctx, res.Key, spec.Request, ending{State: records.StateFailed, Reason: reason}); err != nil {
				recErrs[i] = err
				return
			}
			log.Warn("task rejected by Batch", "err", res.Err)
		default:
			recErrs[i] = fmt.Errorf("add task %s: %w", res.Key, res.Err)
		}
	})
	for i, res := range added {
		switch {
		case recErrs[i] != nil:
		case res.Err == nil && res.Existed:
			existed++
		case res.Err == nil:
			created++
		default:
			rejected++
		}
	}
	return created, existed, rejected, errors.Join(recErrs...)
}

// prepare decodes and completes one message. It writes the failure record
// for messages that can never succeed and returns a task spec for the rest.
func (a *app) prepare(ctx context.Context, inv *invocation, m message) prepared {
	req, err := request.Decode(m.body)
	if err != nil {
		key := fallbackKey(m)
		cid := m.correlationID
		if !request.ValidCorrelationID(cid) {
			cid = key
		}
		log := a.fileLog(FuncDispatch, key, cid).With("messageId", m.messageID)
		reason := cmp.Or(request.Code(err), failure.BadRequest).With(err.Error())
		return prepared{err: a.fail(ctx, inv, log, key, request.Request{CorrelationID: cid}, records.StateBadRequest, reason, time.Time{})}
	}
	if req.CorrelationID == "" {
		if request.ValidCorrelationID(m.correlationID) {
			req.CorrelationID = m.correlationID
		} else if request.ValidCorrelationID(m.messageID) {
			req.CorrelationID = m.messageID
		}
	}
	// Only the configured containers: a message must not make the app read
	// its own records or write over inputs.
	if req.Source.Container != a.cfg.InputContainer || (req.Output.Container != "" && req.Output.Container != a.cfg.OutputContainer) {
		key := fallbackKey(m)
		if req.Source.ETag != "" {
			key = req.Key(a.account)
		}
		if req.CorrelationID == "" {
			req.CorrelationID = key
		}
		log := a.fileLog(FuncDispatch, key, req.CorrelationID)
		reason := failure.BadRequest.Withf("source.container must be %q and output.container %q", a.cfg.InputContainer, a.cfg.OutputContainer)
		return prepared{err: a.fail(ctx, inv, log, key, req, records.StateBadRequest, reason, time.Time{})}
	}
	// The source facts a request lacks come from storage; a request that
	// carries both (OnBlobCreated's, from the event; it read the upload's
	// metadata already) costs no storage call, which is what lets one
	// Dispatch keep up with thousands of requests a second
	// (docs/performance.md). The metadata of a request that Dispatch looks
	// up anyway may choose its profile (docs/profiles.md). A blob deleted
	// or replaced since then fails its task's download or keeps its new
	// version; Sweep records either (input_missing, or done without
	// deleting the newer input).
	var meta map[string]string
	if req.Source.ETag == "" || req.Source.Size <= 0 {
		var p *prepared
		if p, meta = a.lookupSource(ctx, inv, m, &req); p != nil {
			return *p
		}
	}
	key := req.Key(a.account)
	if req.CorrelationID == "" {
		req.CorrelationID = key
	}
	log := a.fileLog(FuncDispatch, key, req.CorrelationID).With("blob", req.Source.Blob)
	if why := a.sizeProblem(req.Source.Size); why != "" {
		return prepared{err: a.fail(ctx, inv, log, key, req, records.StateRejected, why, time.Time{})}
	}
	return a.buildSpec(ctx, inv, log, key, req, meta, m.enqueued)
}

// lookupSource fills the eTag and size of req from the blob's properties
// and returns its metadata. It returns the outcome of the message when
// that ends here: the blob is missing or was replaced (a failure record),
// or storage failed (retry).
func (a *app) lookupSource(ctx context.Context, inv *invocation, m message, req *request.Request) (*prepared, map[string]string) {
	props, err := a.d.Blobs.Properties(ctx, req.Source.Container, req.Source.Blob)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return &prepared{err: fmt.Errorf("message %s: %w", m.messageID, err)}, nil
	}
	if err == nil && req.Source.ETag == "" {
		req.Source.ETag = props.ETag
	}
	key := fallbackKey(m)
	if req.Source.ETag != "" {
		key = req.Key(a.account)
	}
	if req.CorrelationID == "" {
		req.CorrelationID = key
	}
	log := a.fileLog(FuncDispatch, key, req.CorrelationID).With("blob", req.Source.Blob)
	switch {
	case err != nil:
		return &prepared{err: a.fail(ctx, inv, log, key, *req, records.StateInputMissing, failure.InputMissing.With("the input blob does not exist"), time.Time{})}, nil
	case etags.Normalize(req.Source.ETag) != props.ETag:
		// The requested version was replaced; the new upload has its own key.
		return &prepared{err: a.fail(ctx, inv, log, key, *req, records.StateInputMissing,
			failure.InputMissing.Withf("the input changed (eTag %s, requested %s)", props.ETag, etags.Normalize(req.Source.ETag)), time.Time{})}, nil
	}
	req.Source.Size = props.Size
	return nil, props.Metadata
}

// ensureJob creates the long-lived job once per process.
func (a *app) ensureJob(ctx context.Context) error {
	a.jobMu.Lock()
	defer a.jobMu.Unlock()
	if a.jobReady {
		return nil
	}
	if err := a.d.Submitter.EnsureJob(ctx, a.cfg.BatchJob, a.cfg.BatchPool); err != nil {
		if errors.Is(err, batch.ErrPoolNotFound) {
			a.log.Error("Batch pool missing: create it (infra, or `ffpipe pool ensure`)", "pool", a.cfg.BatchPool, "job", a.cfg.BatchJob)
			return fmt.Errorf("pool %q does not exist (FFPIPE_BATCH_POOL); create it with infra or `ffpipe pool ensure`: %w", a.cfg.BatchPool, err)
		}
		return err
	}
	a.jobReady = true
	return nil
}

func (a *app) forgetJob() {
	a.jobMu.Lock()
	a.jobReady = false
	a.jobMu.Unlock()
}

// fallbackKey names the record of a message that has no key of its own:
// its MessageId if that is a key, else a hash of the body.
func fallbackKey(m message) string {
	if request.IsKey(m.messageID) {
		return m.messageID
	}
	h := sha256.Sum256(m.body)
	return hex.EncodeToString(h[:])[:request.KeyLen]
}

// decodeMessages reads the trigger value and the per-message metadata of a
// Service Bus invocation: many (a JSON array of bodies, usually inside a
// JSON string) or one (a single body).
func decodeMessages(req InvokeRequest) ([]message, error) {
	raw, ok := req.Data[BindingMessages]
	if !ok && len(req.Data) == 1 {
		for _, v := range req.Data {
			raw, ok = v, true
		}
	}
	if !ok {
		return nil, fmt.Errorf("no %q binding value", BindingMessages)
	}
	text, err := decodeValue(raw)
	if err != nil {
		return nil, err
	}
	md := req.Metadata
	if len(text) > 0 && text[0] == '[' {
		var items []json.RawMessage
		if err := json.Unmarshal(text, &items); err != nil {
			return nil, fmt.Errorf("message array: %w", err)
		}
		ids := metaArray(md, "MessageIdArray")
		cids := metaArray(md, "CorrelationIdArray")
		enqUTC := metaArray(md, "EnqueuedTimeUtcArray")
		enq := metaArray(md, "EnqueuedTimeArray")
		out := make([]message, len(items))
		for i, it := range items {
			out[i].body = bodyOf(it)
			if i < len(ids) {
				out[i].messageID = rawString(ids[i])
			}
			if i < len(cids) {
				out[i].correlationID = rawString(cids[i])
			}
			if i < len(enqUTC) {
				out[i].enqueued = parseEnqueued(rawString(enqUTC[i]))
			}
			if out[i].enqueued.IsZero() && i < len(enq) {
				out[i].enqueued = parseEnqueued(rawString(enq[i]))
			}
		}
		return out, nil
	}
	enqueued := parseEnqueued(metaString(md, "EnqueuedTimeUtc"))
	if enqueued.IsZero() {
		enqueued = parseEnqueued(metaString(md, "EnqueuedTime"))
	}
	return []message{{
		body:          text,
		messageID:     metaString(md, "MessageId"),
		correlationID: metaString(md, "CorrelationId"),
		enqueued:      enqueued,
	}}, nil
}

// enqueuedLayouts are the renderings of a message's enqueued time the
// hosts send: RFC 3339 (with or without fractional seconds), and the .NET
// DateTime forms with no offset ("2026-03-01T09:12:33.1234567", what
// EnqueuedTimeUtc holds), which are UTC. Go accepts fractional seconds
// after the seconds field whether or not a layout has them.
var enqueuedLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05",
	"2006-01-02 15:04:05Z07:00",
	"2006-01-02 15:04:05",
}

// parseEnqueued reads a message's enqueued time leniently (also a quoted
// JSON string). Anything it cannot read is the zero time: the time only
// dates a record, so it never fails a message.
func parseEnqueued(s string) time.Time {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, `"`) {
		var inner string
		if json.Unmarshal([]byte(s), &inner) != nil {
			return time.Time{}
		}
		s = strings.TrimSpace(inner)
	}
	if s == "" || len(s) > 64 {
		return time.Time{}
	}
	for _, layout := range enqueuedLayouts {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			if batch.FormatEnqueuedEnv(t) == "" {
				return time.Time{} // zero (.NET's DateTime.MinValue) or out of range
			}
			return t.UTC()
		}
	}
	return time.Time{}
}

// bodyOf returns a message body from one array element: a string (the
// dataType string case) is the body text; anything else (the object[]
// case) is the body itself.
func bodyOf(raw json.RawMessage) []byte {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return []byte(s)
	}
	return raw
}
