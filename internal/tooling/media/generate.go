package media

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"
)

// Generate writes the MP4 described by spec to dir (created if missing) and
// returns its path. With spec.CacheDir set, the clip is made once per
// spec.Key() in the cache and hard-linked (or copied) into dir, so repeated
// bench and chaos runs reuse it; cache entries are read-only (0444) because
// a link shares bytes with every run. Files appear atomically (temp file and
// rename): a cancelled run never leaves a half-written clip behind.
func Generate(ctx context.Context, dir string, spec ClipSpec) (string, error) {
	name := spec.fileName()
	spec = spec.withDefaults()
	if err := spec.validate(); err != nil {
		return "", err
	}
	if name != filepath.Base(name) || name == "." || name == ".." {
		return "", fmt.Errorf("generate %q: %w: name must be a plain file name", name, ErrBadSpec)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("generate %s: %w", name, err)
	}
	dst := filepath.Join(dir, name)
	if spec.CacheDir == "" {
		if err := encode(ctx, spec, dst); err != nil {
			return "", fmt.Errorf("generate %s: %w", name, err)
		}
		return dst, nil
	}
	cached, err := cachedClip(ctx, spec)
	if err != nil {
		return "", fmt.Errorf("generate %s: %w", name, err)
	}
	if err := linkOrCopy(cached, dst); err != nil {
		return "", fmt.Errorf("generate %s: %w", name, err)
	}
	return dst, nil
}

// cachedClip returns the cache entry for spec, encoding it if missing.
// Concurrent callers may both encode; the rename makes the last one win with
// identical bytes.
func cachedClip(ctx context.Context, spec ClipSpec) (string, error) {
	if err := os.MkdirAll(spec.CacheDir, 0o755); err != nil {
		return "", fmt.Errorf("cache dir: %w", err)
	}
	path := filepath.Join(spec.CacheDir, spec.Key()+".mp4")
	if st, err := os.Stat(path); err == nil && st.Mode().IsRegular() && st.Size() > 0 {
		return path, nil
	}
	if err := encode(ctx, spec, path); err != nil {
		return "", err
	}
	if err := os.Chmod(path, 0o444); err != nil {
		return "", fmt.Errorf("cache entry: %w", err)
	}
	return path, nil
}

// encode runs ffmpeg into a temp file beside dst and renames it into place.
func encode(ctx context.Context, spec ClipSpec, dst string) error {
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".gen-*.mp4")
	if err != nil {
		return err
	}
	tmpName := tmp.Name()
	_ = tmp.Close()
	defer func() { _ = os.Remove(tmpName) }() // no-op after a successful rename
	abs, err := filepath.Abs(tmpName)         // "/…" is neither an option nor a protocol
	if err != nil {
		return err
	}
	if err := runFFmpeg(ctx, spec.ffmpegArgs(abs)); err != nil {
		return err
	}
	if err := os.Chmod(tmpName, 0o644); err != nil {
		return err
	}
	return os.Rename(tmpName, dst)
}

// linkOrCopy makes dst hold src's bytes: a hard link when the file system
// allows, a copy otherwise. An existing dst is replaced atomically.
func linkOrCopy(src, dst string) error {
	tmp := filepath.Join(filepath.Dir(dst), fmt.Sprintf(".link-%d-%d", os.Getpid(), rand.Uint64()))
	if err := os.Link(src, tmp); err != nil {
		if err := copyFile(src, tmp); err != nil {
			_ = os.Remove(tmp)
			return err
		}
	}
	if err := os.Rename(tmp, dst); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer func() { _ = in.Close() }()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return err
	}
	return out.Close()
}

// SetOptions shape GenerateSet. The zero value makes 1–5 s clips of the
// default ClipSpec, as many at a time as there are CPUs.
type SetOptions struct {
	// Base is the spec every clip starts from; Name, Duration and ToneHz are
	// set per clip. Base.CacheDir enables the cache.
	Base ClipSpec
	// MinDuration and MaxDuration bound the per-clip durations, which are
	// drawn from the seed in 100 ms steps. Defaults 1 s and 5 s.
	MinDuration, MaxDuration time.Duration
	// Prefix starts every file name. Default "clip-".
	Prefix string
	// Parallel caps concurrent ffmpeg processes. Default runtime.NumCPU().
	Parallel int
}

// Clip is one generated file.
type Clip struct {
	// Name is the file name (also a natural blob name), e.g. "clip-007.mp4".
	Name string
	// Path is the local file.
	Path string
	// Spec is the spec it was made from (defaults applied), so Spec.Duration
	// is the audio duration asked for.
	Spec ClipSpec
}

// GenerateSet makes n varied clips in dir named <Prefix><index>.mp4 with
// zero-padded indexes (clip-000.mp4 …). Durations and tones come from seed
// alone, so the same (n, seed, opts) always yields the same set, and with a
// cache the same bytes. Every clip differs in content (its tone), so each
// has its own SHA-256. The first error cancels the remaining work.
func GenerateSet(ctx context.Context, dir string, n int, seed uint64, opts SetOptions) ([]Clip, error) {
	if n < 0 {
		return nil, fmt.Errorf("generate set: %w: n = %d", ErrBadSpec, n)
	}
	if opts.MinDuration <= 0 {
		opts.MinDuration = time.Second
	}
	if opts.MaxDuration <= 0 {
		opts.MaxDuration = 5 * time.Second
	}
	if opts.MaxDuration < opts.MinDuration {
		return nil, fmt.Errorf("generate set: %w: MaxDuration %v < MinDuration %v", ErrBadSpec, opts.MaxDuration, opts.MinDuration)
	}
	if opts.Prefix == "" {
		opts.Prefix = "clip-"
	}
	if opts.Parallel <= 0 {
		opts.Parallel = runtime.NumCPU()
	}
	width := max(3, len(fmt.Sprint(max(n-1, 0))))
	rng := rand.New(rand.NewPCG(seed, 0x66667069706521)) // "ffpipe!"
	const step = 100 * time.Millisecond
	steps := int64((opts.MaxDuration - opts.MinDuration) / step)
	clips := make([]Clip, n)
	for i := range clips {
		s := opts.Base
		s.Name = fmt.Sprintf("%s%0*d.mp4", opts.Prefix, width, i)
		s.Duration = opts.MinDuration + time.Duration(rng.Int64N(steps+1))*step
		s.ToneHz = 200 + i%1800 // distinct content for every clip up to 1800, then repeats with other durations
		clips[i] = Clip{Name: s.Name, Spec: s}
	}

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	sem := make(chan struct{}, opts.Parallel)
	var wg sync.WaitGroup
	for i := range clips {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			p, err := Generate(ctx, dir, clips[i].Spec)
			if err != nil {
				cancel(err)
				return
			}
			clips[i].Path = p
			clips[i].Spec = clips[i].Spec.withDefaults()
		}()
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return nil, fmt.Errorf("generate set: %w", err)
	}
	return clips, nil
}
