package handlers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/ffpipe/ffpipe/internal/config"
	"github.com/ffpipe/ffpipe/internal/etags"
	"github.com/ffpipe/ffpipe/internal/failure"
	"github.com/ffpipe/ffpipe/internal/queue"
	"github.com/ffpipe/ffpipe/internal/records"
	"github.com/ffpipe/ffpipe/internal/request"
	"github.com/ffpipe/ffpipe/internal/storage"
)

const blobCreated = "Microsoft.Storage.BlobCreated"

// onBlobCreated handles an eventGridTrigger invocation: validate the event,
// build a request and send it with MessageId = key. It must be quick: Event
// Grid gives up after 30 s.
func (a *app) onBlobCreated(r *http.Request, inv *invocation) error {
	ctx := r.Context()
	raw, ok := inv.req.Data[BindingEvent]
	if !ok && len(inv.req.Data) == 1 {
		for _, v := range inv.req.Data {
			raw, ok = v, true
		}
	}
	if !ok {
		a.log.Warn("event ignored: no event in the invocation", "function", FuncOnBlobCreated, "invocationId", inv.id)
		inv.logf("ignored: no %q binding value", BindingEvent)
		return nil
	}
	text, err := decodeValue(raw)
	var events []BlobEvent
	if err == nil {
		events, err = ParseEvents(text)
	}
	if err != nil {
		// Redelivering an unparsable event cannot help.
		a.log.Warn("event ignored: unparsable", "function", FuncOnBlobCreated, "invocationId", inv.id, "err", err)
		inv.logf("ignored: unparsable event: %v", err)
		return nil
	}
	for _, e := range events {
		if err := a.handleBlobEvent(ctx, inv, e); err != nil {
			return err
		}
	}
	return nil
}

func (a *app) handleBlobEvent(ctx context.Context, inv *invocation, e BlobEvent) error {
	log := a.log.With("function", FuncOnBlobCreated, "eventId", e.ID, "subject", e.Subject)
	ignore := func(why string) error {
		log.Info("event ignored", "reason", why)
		inv.logf("ignored event %s: %s", e.ID, why)
		return nil
	}
	if !strings.EqualFold(e.Type, blobCreated) {
		return ignore("event type " + e.Type + " is not " + blobCreated)
	}
	if !committedAPI(e.API) {
		return ignore("api " + e.API + " does not mean a committed blob")
	}
	account := TopicAccount(e.Topic)
	if account == "" && e.Topic == "" {
		account = config.AccountFromBlobURL(e.URL)
	}
	if !strings.EqualFold(account, a.account) {
		return ignore(fmt.Sprintf("storage account %q is not %q", account, a.account))
	}
	// The blob's identity comes from the subject, never from data.url.
	container, blob, ok := SubjectBlob(e.Subject)
	if !ok {
		return ignore("subject is not a blob subject")
	}
	if container != a.cfg.InputContainer {
		return ignore(fmt.Sprintf("container %q is not the input container %q", container, a.cfg.InputContainer))
	}
	if !a.hasAllowedSuffix(blob) {
		return ignore(fmt.Sprintf("name does not end in %s", strings.Join(a.cfg.AllowedSuffixes, ", ")))
	}
	etag, size := etags.Normalize(e.ETag), e.Size
	if etag == "" || !e.HasSize {
		p, err := a.d.Blobs.Properties(ctx, container, blob)
		if errors.Is(err, storage.ErrNotFound) {
			return ignore("the blob no longer exists")
		}
		if err != nil {
			return retry(fmt.Errorf("event %s: %w", e.ID, err))
		}
		if etag == "" {
			etag = p.ETag
		}
		if !e.HasSize {
			size = p.Size
		}
	}
	correlationID := e.ID
	if !request.ValidCorrelationID(correlationID) {
		correlationID = ""
	}
	req := request.Request{
		V:             request.Version,
		Source:        request.Source{Container: container, Blob: blob, ETag: etag, Size: size},
		CorrelationID: correlationID,
	}
	key := req.Key(a.account)
	if req.CorrelationID == "" {
		req.CorrelationID = key
	}
	// Events come at least once, and replays come long after duplicate
	// detection forgot the key: work that already finished is not sent
	// again. This is the check Dispatch does not make (it reads no
	// records, to keep up with its queue).
	rec, err := a.d.Records.Get(ctx, key)
	switch {
	case err == nil && rec.State.Terminal():
		a.fileLog(FuncOnBlobCreated, key, req.CorrelationID).Info("already finished; not enqueued again", "blob", blob, "state", rec.State)
		inv.logf("already finished %s/%s key=%s: %s", container, blob, key, rec.State)
		return nil
	case err != nil && !errors.Is(err, records.ErrNotFound):
		return retry(fmt.Errorf("event %s: read record %s: %w", e.ID, key, err))
	}
	return a.enqueue(ctx, inv, FuncOnBlobCreated, key, req, e.Time, map[string]any{"eventId": e.ID}, err == nil)
}

// committedAPI reports whether a BlobCreated event's data.api means the
// blob is fully written: PutBlob, PutBlockList, CopyBlob, or FlushWithClose
// on accounts with a hierarchical namespace (CreateFile fires before any
// data is written). An absent api is accepted.
func committedAPI(api string) bool {
	switch strings.ToLower(api) {
	case "", "putblob", "putblocklist", "copyblob", "flushwithclose":
		return true
	}
	return false
}

// enqueue checks size and names, then sends the request with MessageId =
// key and records it as queued. Rejections and bad requests become
// records; only transient failures return an error (retryable). The
// caller has read the key's record and found it not final; recorded says
// whether there was one.
func (a *app) enqueue(ctx context.Context, inv *invocation, function, key string, req request.Request, eventTime time.Time, props map[string]any, recorded bool) error {
	log := a.fileLog(function, key, req.CorrelationID).With("blob", req.Source.Blob)
	if why := a.sizeProblem(req.Source.Size); why != "" {
		return a.fail(ctx, inv, log, key, req, records.StateRejected, why, eventTime)
	}
	// The upload's ffpipe_profile metadata is read here, once per upload,
	// and travels in the message, so that Dispatch makes no storage call
	// for the request (docs/profiles.md, docs/performance.md).
	req, from, err := a.profileFromMetadata(ctx, req)
	if err != nil {
		log.Warn("blob properties not read; the trigger will retry", "err", err)
		return retry(err)
	}
	d := a.defaults
	if req.Named() == "" {
		d.Preset, from = a.chooseProfile(req, nil)
	}
	full, err := req.WithDefaults(d)
	if err != nil {
		var bre *request.BadRequestError
		if errors.As(err, &bre) {
			state, reason := records.StateBadRequest, bre.Code().With(bre.Error())
			if bre.Code() == failure.UnknownProfile {
				state, reason = records.StateFailed, reason+" (chosen by "+from+")"
			}
			return a.fail(ctx, inv, log, key, req, state, reason, eventTime)
		}
		return fmt.Errorf("request %s: %w", key, err)
	}
	// The message names the profile only when the metadata chose it: a
	// route or the default is applied by Dispatch with its configuration.
	msg := req
	msg.V, msg.CorrelationID = request.Version, full.CorrelationID
	body, err := msg.Encode()
	if err != nil {
		return fmt.Errorf("encode request %s: %w", key, err)
	}
	update := a.d.Records.Update
	if !recorded {
		update = a.d.Records.UpdateNew // none a moment ago: create-only first
	}
	msgProps := map[string]any{"v": int64(request.Version), "key": key, "origin": function}
	for k, v := range props {
		msgProps[k] = v
	}
	if err := a.d.Queue.Send(ctx, queue.Message{ID: key, CorrelationID: full.CorrelationID, Body: body, Properties: msgProps}); err != nil {
		log.Warn("send failed; the trigger will retry", "err", err)
		return retry(err)
	}
	now := a.now()
	if _, err := update(ctx, key, func(old records.Record, _ bool) records.Record {
		r := recordFrom(old, full)
		r.State = records.StateQueued
		r.Reason = ""
		if r.Timings.Event == nil {
			r.Timings.Event = tp(eventTime)
		}
		r.Timings.Enqueued = tp(now)
		return r
	}); err != nil {
		// The message is sent; the record is only a view of it.
		log.Warn("queued record not written", "err", err)
	}
	log.Info("enqueued", "output", full.Output.Blob, "preset", full.Preset, "size", full.Source.Size)
	inv.logf("enqueued %s/%s key=%s correlationId=%s", full.Source.Container, full.Source.Blob, key, full.CorrelationID)
	return nil
}

// fail writes a terminal failure record. Failing to write it is
// retryable: the record is the only trace of the refusal.
func (a *app) fail(ctx context.Context, inv *invocation, log *slog.Logger, key string, req request.Request, state records.State, reason string, eventTime time.Time) error {
	if _, err := a.writeTerminal(ctx, key, req, ending{State: state, Reason: reason, Event: eventTime}); err != nil {
		return retry(err)
	}
	log.Info("refused", "state", state, "reason", reason)
	inv.logf("%s %s/%s key=%s: %s", state, req.Source.Container, req.Source.Blob, key, reason)
	return nil
}
