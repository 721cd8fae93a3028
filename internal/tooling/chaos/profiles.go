// Media profiles in a chaos run: video clips uploaded with a profile in
// their metadata (`ffpipe upload --profile`), so that multi-output tasks,
// video encodes and HLS folders go through the same faults.

package chaos

import (
	"context"
	"fmt"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/ffpipe/ffpipe/internal/emulator/azurite"
	"github.com/ffpipe/ffpipe/internal/presets"
	"github.com/ffpipe/ffpipe/internal/request"
	"github.com/ffpipe/ffpipe/internal/tooling/media"
)

// chaosProfiles are the built-in profiles the profile rows cycle through.
var chaosProfiles = []string{"web", "hls"}

// profileRows uploads Options.Profiles video clips, each naming a profile
// in its metadata, and adds their rows: done, with every output of the
// profile verified.
func (h *harness) profileRows(ctx context.Context) error {
	defaults, err := h.requestDefaults()
	if err != nil {
		return err
	}
	for i := range h.opts.Profiles {
		profile := chaosProfiles[i%len(chaosProfiles)]
		// 360 lines: HLS's lowest rung (it never upscales: a smaller
		// source fails no_rung, rightly).
		spec := media.ClipSpec{CacheDir: h.opts.CacheDir, Name: fmt.Sprintf("prof-%d.mp4", i), Duration: 2 * time.Second,
			ToneHz: 700 + i, Width: 640, Height: 360}
		p, err := media.Generate(ctx, filepath.Join(h.dir, "media", "profiles"), spec)
		if err != nil {
			return err
		}
		name := fmt.Sprintf("profiles/prof-%d.mp4", i)
		r := &Row{ID: fmt.Sprintf("profile-%d-%s", i, profile), Kind: KindProfile, Name: name, Profile: profile,
			expect: media.Expect{Outcome: media.Done}, Expect: "done (" + profile + ")"}
		if sum, err := fileSHA(p); err == nil {
			r.SHA256 = sum
		}
		if err := h.upload(ctx, r, p); err != nil {
			return err
		}
		req := request.Request{V: request.Version, Profile: profile,
			Source: request.Source{Container: h.cfg.InputContainer, Blob: name, ETag: r.ETag}}
		outs, err := req.Outputs(defaults)
		if err != nil {
			return fmt.Errorf("chaos: outputs of %s: %w", r.ID, err)
		}
		for _, o := range outs {
			r.Outputs = append(r.Outputs, o.Blob)
			if o.Folder != "" {
				r.folders = append(r.folders, o.Folder+"/")
			}
		}
		h.addRow(r)
	}
	return nil
}

// requestDefaults names outputs as the function app does, with the
// built-in profiles (the chaos stack configures no others).
func (h *harness) requestDefaults() (request.Defaults, error) {
	tmpl, err := request.ParseTemplate(h.cfg.OutputTemplate)
	if err != nil {
		return request.Defaults{}, err
	}
	return request.Defaults{Account: azurite.Account, Preset: h.cfg.DefaultPreset, OutputContainer: h.cfg.OutputContainer,
		Template: tmpl, Profile: presets.DefaultProfiles().Lookup, Suffixes: h.cfg.AllowedSuffixes}, nil
}

// verifyOutput checks one downloaded output by its kind: MP3 audio (with
// its decoded duration), an MP4 video with audio, an image, or a piece of
// an HLS folder (non-empty: the rungs are checked by the pipeline's own
// wrapper, and their segments need the whole folder).
func verifyOutput(ctx context.Context, local, blob string, size int64) OutputBlob {
	ob := OutputBlob{Size: size}
	switch strings.ToLower(path.Ext(blob)) {
	case "." + outputExt:
		if ob.Err = media.VerifyAudio(ctx, local, outputExt, 0, 0); ob.Err == nil {
			ob.Duration, ob.Err = media.DecodedAudioDuration(ctx, local)
		}
	case ".mp4":
		ob.Err = media.VerifyVideo(ctx, local, "", 0, true, 0)
	case ".jpg", ".jpeg", ".png", ".webp":
		ob.Err = media.VerifyImage(ctx, local, "", 0, 0)
	default:
		if size <= 0 {
			ob.Err = fmt.Errorf("empty output %q", blob)
		}
	}
	return ob
}

// profileOutput checks a profile row's outputs: when done, every one of
// them is there and verifies; otherwise none of them is there.
func (c *checker) profileOutput(rs rowState) {
	r := rs.r
	if !rs.done() {
		for _, o := range r.Outputs {
			if _, ok := c.obs.Outputs[o]; ok {
				c.res.add("unexpected_outputs", r.ID, "%s: output %q exists but the record is %s", r.Name, o, rs.state)
			}
		}
		return
	}
	c.res.Converted++
	for _, o := range r.Outputs {
		ob, ok := c.obs.Outputs[o]
		switch {
		case !ok && c.obs.taskUploadsRolledBack(rs.rec):
			c.res.rolledBack(r, "output %q uploaded, then lost by an Azurite SIGKILL before Sweep recorded it done", o)
		case !ok:
			c.res.add("lost", r.ID, "%s: record done but output %q (profile %s) missing", r.Name, o, r.Profile)
		case ob.Err != nil:
			c.res.add("invalid_outputs", r.ID, "%s: output %q: %v", r.Name, o, ob.Err)
		}
	}
}

// folderOwner is the row whose HLS folder holds blob, or nil.
func (idx ledgerIndex) folderOwner(blob string) *Row {
	for dir, r := range idx.folders {
		if strings.HasPrefix(blob, dir) {
			return r
		}
	}
	return nil
}
