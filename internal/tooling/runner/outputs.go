package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"

	"github.com/ffpipe/ffpipe/internal/config"
	"github.com/ffpipe/ffpipe/internal/records"
	"github.com/ffpipe/ffpipe/internal/tooling/media"
)

var audioCodecs = map[string]string{".mp3": "mp3", ".opus": "opus", ".m4a": "aac", ".aac": "aac", ".ogg": "", ".wav": "", ".flac": "flac"}

// verifyOutputs downloads and checks every output of a profile's record
// on this machine, independently of the node's own verification: audio
// files (codec, decoded duration), images, videos (height, audio, duration,
// every frame decodes) and HLS outputs (the master lists the rungs the
// record lists; every rung playlist is finished, its segments exist, it
// has the recorded height and decodes).
func verifyOutputs(ctx context.Context, c *azblob.Client, cfg config.Config, r *Result, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for i, o := range r.Outputs {
		if strings.Contains(o.Name, "/") {
			continue // an HLS rung: checked with its master
		}
		ext := path.Ext(o.Blob)
		if ext == ".m3u8" {
			if err := verifyHLS(ctx, c, cfg, r, o, filepath.Join(dir, fmt.Sprint(i))); err != nil {
				return err
			}
			continue
		}
		local := filepath.Join(dir, fmt.Sprint(i)+ext)
		if err := Download(ctx, c, cfg.OutputContainer, o.Blob, local); err != nil {
			return err
		}
		var err error
		switch codec, audio := audioCodecs[ext]; {
		case audio:
			err = media.VerifyAudio(ctx, local, codec, r.AudioDuration, media.DefaultTolerance)
		case ext == ".jpg" || ext == ".png" || ext == ".webp":
			err = media.VerifyImage(ctx, local, "", 0, o.Height)
		default:
			err = media.VerifyVideo(ctx, local, "", o.Height, true, r.AudioDuration)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", o.Name, err)
		}
	}
	return nil
}

// verifyHLS downloads an HLS output's folder and checks its ladder against
// the record's rungs.
func verifyHLS(ctx context.Context, c *azblob.Client, cfg config.Config, r *Result, master records.OutputInfo, dir string) error {
	folder := path.Dir(master.Blob)
	pager := c.NewListBlobsFlatPager(cfg.OutputContainer, &azblob.ListBlobsFlatOptions{Prefix: to.Ptr(folder + "/")})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list %s: %w", folder, err)
		}
		for _, b := range page.Segment.BlobItems {
			rel := strings.TrimPrefix(*b.Name, folder+"/")
			local := filepath.Join(dir, filepath.FromSlash(rel))
			if err := os.MkdirAll(filepath.Dir(local), 0o755); err != nil {
				return err
			}
			if err := Download(ctx, c, cfg.OutputContainer, *b.Name, local); err != nil {
				return err
			}
		}
	}
	rungs, err := media.HLSRungs(filepath.Join(dir, path.Base(master.Blob)))
	if err != nil {
		return err
	}
	var want []records.OutputInfo
	for _, o := range r.Outputs {
		if strings.HasPrefix(o.Name, master.Name+"/") {
			want = append(want, o)
		}
	}
	if len(rungs) != len(want) {
		return fmt.Errorf("%s: the master lists %d rungs, the record %d", master.Name, len(rungs), len(want))
	}
	for i, rung := range rungs {
		if folder+"/"+rung != want[i].Blob {
			return fmt.Errorf("%s: rung %d is %s, the record says %s", master.Name, i, rung, want[i].Blob)
		}
		if err := media.VerifyVideo(ctx, filepath.Join(dir, filepath.FromSlash(rung)), "h264", want[i].Height, true, r.AudioDuration); err != nil {
			return fmt.Errorf("%s: %w", want[i].Name, err)
		}
	}
	return nil
}

// WriteOutputs prints every output of the results that have more than
// one, or another kind than mp3: name, blob, size, height and duration (an
// HLS output's rungs one per line).
func (r Report) WriteOutputs(w io.Writer) error {
	rows := append([]Result(nil), r.Results...)
	sort.Slice(rows, func(i, j int) bool { return rows[i].Blob < rows[j].Blob })
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "INPUT\tPROFILE\tOUTPUT\tBLOB\tSIZE\tHEIGHT\tDURATION\tVERIFIED")
	n := 0
	for _, x := range rows {
		for _, o := range x.Outputs {
			if len(x.Outputs) == 1 && path.Ext(o.Blob) == ".mp3" {
				continue
			}
			n++
			height, dur := "-", "-"
			if o.Height > 0 {
				height = fmt.Sprintf("%dp", o.Height)
			}
			if o.Duration > 0 {
				dur = (time.Duration(o.Duration * float64(time.Second))).Round(10 * time.Millisecond).String()
			}
			ok := "ok"
			if x.Verify != nil {
				ok = "NO"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", x.Blob, x.Profile, o.Name, o.Blob, humanBytes(o.Size), height, dur, ok)
		}
	}
	if n == 0 {
		return errors.New("no profile outputs to show")
	}
	return tw.Flush()
}
