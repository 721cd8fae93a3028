package handlers

import (
	"context"
	"errors"
	"fmt"

	"github.com/ffpipe/ffpipe/internal/batch"
	"github.com/ffpipe/ffpipe/internal/presets"
	"github.com/ffpipe/ffpipe/internal/records"
	"github.com/ffpipe/ffpipe/internal/request"
	"github.com/ffpipe/ffpipe/internal/storage"
)

// checkOutputs looks for every output blob a successful task should have
// written: each file output, and for an HLS output its master playlist and
// the playlist of every rung its result file lists (the rungs depend on
// the source's height). Each must exist and be non-empty. It returns the
// outputs for the record, or a description of the first one missing; an
// error is a storage failure (Sweep tries again next run).
//
// The task's own names (EnvOutputs) are used, so a configuration change
// between dispatch and Sweep cannot make it look for other names; a task
// made before profiles has its request's one output.
func (a *app) checkOutputs(ctx context.Context, t batch.CompletedTask, req request.Request, res *presets.Result) ([]records.OutputInfo, string, error) {
	expected := t.Outputs
	if len(expected) == 0 {
		expected = []request.OutputBlob{{Name: req.Named(), Blob: req.Output.Blob}}
	}
	cont := req.Output.Container
	var infos []records.OutputInfo
	check := func(info records.OutputInfo) (string, error) {
		p, err := a.d.Blobs.Properties(ctx, cont, info.Blob)
		switch {
		case errors.Is(err, storage.ErrNotFound) || err == nil && p.Size == 0:
			return fmt.Sprintf("output %s (%s) is missing or empty", info.Name, info.Blob), nil
		case err != nil:
			return "", err
		}
		info.Size = p.Size
		infos = append(infos, info)
		return "", nil
	}
	for i, o := range expected {
		info := records.OutputInfo{Name: o.Name, Blob: o.Blob}
		var rungs []presets.OutputResult
		if res != nil {
			for _, r := range res.Outputs {
				switch {
				case r.Index != i || r.Skipped:
				case r.Rung > 0:
					rungs = append(rungs, r)
				default:
					info.Duration, info.Height = r.Duration, r.Height
				}
			}
			if o.Folder == "" && skipped(res, i) {
				continue // an optional output the source could not give
			}
		}
		if missing, err := check(info); missing != "" || err != nil {
			return nil, missing, err
		}
		if o.Folder == "" {
			continue
		}
		if len(rungs) == 0 {
			return nil, fmt.Sprintf("output %s lists no rung (no result file)", o.Name), nil
		}
		for _, r := range rungs {
			name := presets.Rung{Height: r.Rung}.Name()
			ri := records.OutputInfo{Name: o.Name + "/" + name, Blob: o.Folder + "/" + name + "/" + presets.HLSPlaylist, Duration: r.Duration, Height: r.Height}
			if missing, err := check(ri); missing != "" || err != nil {
				return nil, missing, err
			}
		}
	}
	if len(infos) == 0 {
		return nil, "no output was written", nil
	}
	return infos, "", nil
}

// skipped reports whether the result says output i was left out.
func skipped(res *presets.Result, i int) bool {
	for _, r := range res.Outputs {
		if r.Index == i && r.Skipped {
			return true
		}
	}
	return false
}
