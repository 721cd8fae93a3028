package handlers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/ffpipe/ffpipe/internal/batch"
	"github.com/ffpipe/ffpipe/internal/etags"
	"github.com/ffpipe/ffpipe/internal/failure"
	"github.com/ffpipe/ffpipe/internal/records"
	"github.com/ffpipe/ffpipe/internal/request"
	"github.com/ffpipe/ffpipe/internal/storage"
)

// metadataMatters reports whether the upload's metadata can choose req's
// profile: the request names none and FFPIPE_PROFILE_METADATA is on.
func (a *app) metadataMatters(req request.Request) bool {
	return req.Named() == "" && a.cfg.ProfileMetadata
}

// metadataProfile returns the ffpipe_profile metadata value, or "".
func metadataProfile(meta map[string]string) string {
	for k, v := range meta {
		if strings.EqualFold(k, request.MetadataProfile) && v != "" {
			return v
		}
	}
	return ""
}

// profileFromMetadata reads the upload's properties when its metadata can
// choose the profile (Event Grid events carry no metadata) and, when it
// names one, sets req.Profile. It reports where the profile came from
// ("request" when it already named one, "metadata", or "" when neither).
// A blob that is gone or replaced is left to Dispatch and Sweep, which
// record it; a storage error is returned (transient).
func (a *app) profileFromMetadata(ctx context.Context, req request.Request) (request.Request, string, error) {
	if req.Named() != "" {
		return req, "request", nil
	}
	if !a.metadataMatters(req) {
		return req, "", nil
	}
	p, err := a.d.Blobs.Properties(ctx, req.Source.Container, req.Source.Blob)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return req, "", nil
	case err != nil:
		return req, "", fmt.Errorf("read properties of %s: %w", req.Source.Blob, err)
	case req.Source.ETag != "" && etags.Normalize(req.Source.ETag) != p.ETag:
		return req, "", nil // a newer upload, with its own metadata and key
	}
	if n := metadataProfile(p.Metadata); n != "" {
		req.Profile = n
		return req, "metadata", nil
	}
	return req, "", nil
}

// chooseProfile picks the profile of a request, in order: the request's
// profile (or preset) field, the upload's ffpipe_profile metadata, the
// longest FFPIPE_ROUTES prefix, FFPIPE_DEFAULT_PRESET. It says which one
// chose, for the log.
func (a *app) chooseProfile(req request.Request, meta map[string]string) (name, from string) {
	if n := req.Named(); n != "" {
		return n, "request"
	}
	if n := metadataProfile(meta); n != "" && a.cfg.ProfileMetadata {
		return n, "metadata"
	}
	if n := a.cfg.Route(req.Source.Blob); n != "" {
		return n, "route"
	}
	return a.cfg.DefaultPreset, "default"
}

// buildSpec completes a request with its profile and makes its task spec:
// the output names, the wall clock for the input's size and profile, the
// profile's slots (capped to the pool's), and the URLs. An unknown profile
// is a failed record (unknown_profile), never a retry.
func (a *app) buildSpec(ctx context.Context, inv *invocation, log *slog.Logger, key string, req request.Request, meta map[string]string, enqueued time.Time) prepared {
	name, from := a.chooseProfile(req, meta)
	d := a.defaults
	d.Preset = name
	full, err := req.WithDefaults(d)
	var outs []request.OutputBlob
	if err == nil {
		outs, err = full.Outputs(d)
	}
	if err != nil {
		var bre *request.BadRequestError
		if !errors.As(err, &bre) {
			return prepared{err: fmt.Errorf("request %s: %w", key, err)}
		}
		state := records.StateBadRequest
		if bre.Code() == failure.UnknownProfile {
			state = records.StateFailed
		}
		reason := bre.Code().With(bre.Error())
		if from != "request" {
			reason += " (chosen by " + from + ")"
		}
		return prepared{err: a.fail(ctx, inv, log, key, req, state, reason, time.Time{})}
	}
	profile, ok := a.d.Profiles.Get(full.Profile)
	if !ok { // WithDefaults checked it; keep the invariant visible
		return prepared{err: a.fail(ctx, inv, log, key, full, records.StateFailed, failure.UnknownProfile.With(full.Profile), time.Time{})}
	}
	wall := profile.MaxWallClock(a.cfg.TaskMaxWallClock, full.Source.Size)
	spec := batch.TaskSpec{
		Key:          key,
		Request:      full,
		Profile:      profile,
		Outputs:      outs,
		NodeIdentity: a.cfg.NodeIdentity,
		Constraints: batch.Constraints{MaxWallClock: wall, MaxRetries: a.cfg.TaskMaxRetries,
			RequiredSlots: min(profile.Slots, a.cfg.TaskMaxSlots)},
		// For Sweep's record: a request sent straight to the queue has
		// no queued record to carry it.
		Enqueued: enqueued,
	}
	if err := a.taskURLs(ctx, &spec); err != nil {
		return prepared{err: err}
	}
	log.Debug("profile chosen", "profile", profile.Name, "from", from, "outputs", len(outs), "wallClock", wall, "slots", spec.Constraints.RequiredSlots)
	return prepared{spec: &spec, log: log}
}

// sasTTL is the lifetime of a task's SAS URLs: FFPIPE_SAS_EXPIRY covers
// the longest queue wait plus the base wall clock, so a task whose wall
// clock grew with its input's size gets the growth on top (at most the
// 7 days of a user delegation key). A SAS that expires anyway fails the
// download or upload, which Sweep dispatches again with fresh URLs
// (docs/profiles.md).
func (a *app) sasTTL(wall time.Duration) time.Duration {
	ttl := a.cfg.SASExpiry + max(wall-a.cfg.TaskMaxWallClock, 0)
	return min(ttl, storage.MaxSASLifetime)
}

// taskURLs fills the input, output and log URLs: SAS URLs each scoped to
// exactly one blob (read for the input, create/write for each file output
// and the log files) and, for an HLS output, whose segment names are not
// known in advance, create/write on the output container; or plain URLs
// when the pool's identity reaches storage.
func (a *app) taskURLs(ctx context.Context, s *batch.TaskSpec) error {
	src, cont := s.Request.Source, s.Request.Output.Container
	s.OutputURLs = make([]string, len(s.Outputs))
	if a.cfg.NodeIdentity != "" {
		s.InputURL = a.d.SAS.BlobURL(src.Container, src.Blob)
		for i := range s.Outputs {
			s.OutputURLs[i] = a.d.SAS.ContainerURL(cont)
		}
		s.StdoutURL = a.d.SAS.ContainerURL(a.cfg.LogsContainer)
		s.StderrURL, s.ResultURL = s.StdoutURL, s.StdoutURL
		return nil
	}
	ttl := a.sasTTL(s.Constraints.MaxWallClock)
	var err error
	if s.InputURL, err = a.d.SAS.ReadURL(ctx, src.Container, src.Blob, ttl); err != nil {
		return fmt.Errorf("task %s input url: %w", s.Key, err)
	}
	for i, o := range s.Outputs {
		blob := o.Blob
		if o.Folder != "" {
			blob = "" // the container
		}
		if s.OutputURLs[i], err = a.d.SAS.ContainerWriteURL(ctx, cont, blob, ttl); err != nil {
			return fmt.Errorf("task %s output %d url: %w", s.Key, i, err)
		}
	}
	stdout, stderr := batch.LogBlobs(s.Key)
	for _, l := range []struct {
		url  *string
		blob string
	}{{&s.StdoutURL, stdout}, {&s.StderrURL, stderr}, {&s.ResultURL, batch.ResultBlob(s.Key)}} {
		if *l.url, err = a.d.SAS.ContainerWriteURL(ctx, a.cfg.LogsContainer, l.blob, ttl); err != nil {
			return fmt.Errorf("task %s log url %s: %w", s.Key, l.blob, err)
		}
	}
	return nil
}
