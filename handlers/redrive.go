package handlers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/ffpipe/ffpipe/internal/config"
	"github.com/ffpipe/ffpipe/internal/etags"
	"github.com/ffpipe/ffpipe/internal/queue"
	"github.com/ffpipe/ffpipe/internal/records"
	"github.com/ffpipe/ffpipe/internal/request"
	"github.com/ffpipe/ffpipe/internal/storage"
)

// Redrive kinds: what redriving a failed record does.
const (
	// RedriveMoveBack: the input is in quarantine; it is moved back to
	// the input container. That is a new blob version (a new eTag), so a
	// new key and a new record; the old record points to it (RedrivenTo).
	RedriveMoveBack = "move back from quarantine"
	// RedriveSendAgain: the input is still in place (no quarantine); its
	// request is sent again, same key. The message id names the record's
	// version, so redriving twice before the work ran again sends once.
	RedriveSendAgain = "send the request again"
	RedriveSkip      = "skip"
)

// RedriveAction is what redriving one record does (or why it does not).
type RedriveAction struct {
	Key    string `json:"key"`
	Blob   string `json:"blob"`
	Kind   string `json:"kind"`
	Reason string `json:"reason,omitempty"` // why it is skipped
	// NewKey is the key of the moved-back input (after Apply).
	NewKey string `json:"newKey,omitempty"`
}

// RedriveDeps are the clients redrive needs (the CLI and Status).
type RedriveDeps struct {
	Blobs   Blobs
	Queue   Sender
	Records Records
	Config  config.Config
	Account string
}

// PlanRedrive says what redriving rec would do, without doing it.
func PlanRedrive(ctx context.Context, d RedriveDeps, rec records.Record) (RedriveAction, error) {
	act := RedriveAction{Key: rec.Key, Blob: rec.Source.Container + "/" + rec.Source.Blob, Kind: RedriveSkip}
	switch {
	case !rec.State.Terminal() || rec.State == records.StateDone:
		act.Reason = "not a failure (" + string(rec.State) + ")"
		return act, nil
	case rec.RedrivenTo != "":
		act.Reason = "already redriven as " + rec.RedrivenTo
		return act, nil
	case rec.Source.Blob == "":
		act.Reason = "the record names no input"
		return act, nil
	}
	in, err := d.Blobs.Properties(ctx, rec.Source.Container, rec.Source.Blob)
	inPlace := err == nil
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return act, err
	}
	if inPlace && in.ETag == etags.Normalize(rec.Source.ETag) {
		act.Kind = RedriveSendAgain
		return act, nil
	}
	if q := d.Config.QuarantineContainer; q != "" {
		_, err := d.Blobs.Properties(ctx, q, rec.Source.Blob)
		switch {
		case err == nil && inPlace:
			act.Reason = "a newer upload of the same name is in the input container (it has its own key)"
			return act, nil
		case err == nil:
			act.Kind = RedriveMoveBack
			return act, nil
		case !errors.Is(err, storage.ErrNotFound):
			return act, err
		}
	}
	act.Reason = "the input is gone (not in place, not in quarantine)"
	return act, nil
}

// ApplyRedrive does what act says for rec. It is idempotent: a moved-back
// input is recorded on the old record, and a request sent again carries a
// message id of the record's version.
func ApplyRedrive(ctx context.Context, d RedriveDeps, rec records.Record, act RedriveAction) (RedriveAction, error) {
	switch act.Kind {
	case RedriveMoveBack:
		q := d.Config.QuarantineContainer
		p, err := d.Blobs.Properties(ctx, q, rec.Source.Blob)
		if err != nil {
			return act, fmt.Errorf("redrive %s: %w", rec.Key, err)
		}
		if err := d.Blobs.Move(ctx, q, rec.Source.Blob, p.ETag, rec.Source.Container, rec.Source.Blob); err != nil {
			return act, fmt.Errorf("redrive %s: move back: %w", rec.Key, err)
		}
		back, err := d.Blobs.Properties(ctx, rec.Source.Container, rec.Source.Blob)
		if err != nil {
			return act, fmt.Errorf("redrive %s: %w", rec.Key, err)
		}
		// Event Grid reports the new blob, which OnBlobCreated takes as
		// new work under this key.
		act.NewKey = request.Key(d.Account, rec.Source.Container, rec.Source.Blob, back.ETag)
		if _, err := d.Records.Update(ctx, rec.Key, func(old records.Record, _ bool) records.Record {
			old.RedrivenTo = act.NewKey
			return old
		}); err != nil {
			return act, fmt.Errorf("redrive %s: record: %w", rec.Key, err)
		}
	case RedriveSendAgain:
		req := request.Request{V: request.Version, Source: request.Source{Container: rec.Source.Container, Blob: rec.Source.Blob, ETag: rec.Source.ETag, Size: rec.Source.Size},
			Profile: rec.Preset, CorrelationID: rec.CorrelationID}
		if rec.Output.Blob != "" && len(rec.Outputs) <= 1 {
			req.Output = request.Output{Container: rec.Output.Container, Blob: rec.Output.Blob}
		}
		body, err := req.Encode()
		if err != nil {
			return act, fmt.Errorf("redrive %s: %w", rec.Key, err)
		}
		id := rec.Key + "-redrive-" + strconv.FormatInt(rec.Updated.UnixNano(), 36)
		if err := d.Queue.Send(ctx, queue.Message{ID: id, CorrelationID: rec.CorrelationID, Body: body,
			Properties: map[string]any{"v": int64(request.Version), "key": rec.Key, "origin": "redrive"}}); err != nil {
			return act, fmt.Errorf("redrive %s: %w", rec.Key, err)
		}
	}
	return act, nil
}

// redriveOne is Status's redrive action (POST status/{key}): the same as
// `ffpipe redrive` for one record. 202 with the action when done, 409 when
// the record cannot be redriven, with the reason.
func (a *app) redriveOne(ctx context.Context, key string) httpResponse {
	if !request.IsKey(key) {
		return jsonResponse(http.StatusBadRequest, map[string]string{"error": "POST status/{key}: a key is 32 hex characters"})
	}
	rec, err := a.d.Records.Get(ctx, key)
	switch {
	case errors.Is(err, records.ErrNotFound):
		return jsonResponse(http.StatusNotFound, map[string]string{"error": "no record for key " + key})
	case err != nil:
		a.log.Warn("redrive: read record", "key", key, "err", err)
		return jsonResponse(http.StatusServiceUnavailable, map[string]string{"error": "storage unavailable"})
	}
	d := RedriveDeps{Blobs: a.d.Blobs, Queue: a.d.Queue, Records: a.d.Records, Config: a.cfg, Account: a.account}
	act, err := PlanRedrive(ctx, d, rec)
	if err == nil && act.Kind != RedriveSkip {
		act, err = ApplyRedrive(ctx, d, rec, act)
	}
	if err != nil {
		a.log.Warn("redrive", "key", key, "err", err)
		return jsonResponse(http.StatusServiceUnavailable, map[string]string{"error": "redrive failed; try again"})
	}
	if act.Kind == RedriveSkip {
		return jsonResponse(http.StatusConflict, act)
	}
	a.log.Info("redrive from Status", "key", key, "action", act.Kind, "newKey", act.NewKey)
	return jsonResponse(http.StatusAccepted, act)
}
