package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ffpipe/ffpipe/handlers"
	"github.com/ffpipe/ffpipe/internal/clients"
	"github.com/ffpipe/ffpipe/internal/config"
	"github.com/ffpipe/ffpipe/internal/queue"
	"github.com/ffpipe/ffpipe/internal/records"
	"github.com/ffpipe/ffpipe/internal/request"
	"github.com/ffpipe/ffpipe/internal/storage"
	"github.com/ffpipe/ffpipe/internal/tooling/stack"
)

func init() {
	commands = append(commands,
		command{name: "upload", summary: "upload files into the input container (they are transcoded)", run: runUpload},
		command{name: "submit", summary: "send a request message for <container>/<blob> [--profile P]", run: runSubmit},
		command{name: "status", summary: "counts by state and recent records, or one record (--key)", run: runStatus},
	)
}

// clientConfig loads the function app's settings: from the stack info file
// written by `ffpipe dev` when it exists, otherwise from the environment
// (the same app settings as the Function App, e.g. against Azure with
// DataStorage__blobServiceUri, ServiceBusConnection__fullyQualifiedNamespace
// and FFPIPE_BATCH_ENDPOINT; the identity is DefaultAzureCredential, such as
// `az login`).
func clientConfig(infoPath string) (config.Config, error) {
	lookup := os.LookupEnv
	if _, err := os.Stat(infoPath); err == nil || infoPath != defaultStackInfo {
		info, err := stack.ReadInfo(infoPath)
		if err != nil {
			return config.Config{}, err
		}
		lookup = config.FromMap(info.Settings)
	}
	cfg, err := config.Load(lookup)
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		return cfg, fmt.Errorf("configuration (no %s: start `ffpipe dev`, or set the app settings in the environment): %w", infoPath, err)
	}
	return cfg, nil
}

// connect loads the configuration and builds the clients.
func connect(infoPath string) (config.Config, *clients.Set, error) {
	cfg, err := clientConfig(infoPath)
	if err != nil {
		return cfg, nil, err
	}
	set, err := clients.New(cfg, clients.Options{})
	return cfg, set, err
}

func runUpload(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("upload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	info := fs.String("info", defaultStackInfo, "stack info written by `ffpipe dev`")
	prefix := fs.String("prefix", "", "blob name prefix (a folder), e.g. videos/")
	profile := fs.String("profile", "", "media profile (the blob's ffpipe_profile metadata; default: FFPIPE_ROUTES, then FFPIPE_DEFAULT_PRESET)")
	if err := fs.Parse(reorderFlags(args)); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("upload: name one or more files")
	}
	var meta map[string]string
	if *profile != "" {
		if !request.ValidPresetName(*profile) {
			return fmt.Errorf("upload: --profile %q: want 1-32 of [a-z0-9-]", *profile)
		}
		meta = map[string]string{request.MetadataProfile: *profile}
	}
	cfg, set, err := connect(*info)
	if err != nil {
		return err
	}
	defer set.Close(context.WithoutCancel(ctx))
	for _, file := range fs.Args() {
		name := path.Join(*prefix, filepath.Base(file))
		if err := uploadFile(ctx, set.Blobs, cfg, file, name, meta, stdout); err != nil {
			return err
		}
	}
	return nil
}

func uploadFile(ctx context.Context, c *storage.Client, cfg config.Config, file, name string, meta map[string]string, stdout io.Writer) error {
	f, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	defer f.Close()
	etag, err := c.UploadFile(ctx, cfg.InputContainer, name, f, "video/mp4", meta)
	if err != nil {
		return fmt.Errorf("upload %s: %w", file, err)
	}
	key := request.Key(c.Account(), cfg.InputContainer, name, etag)
	fmt.Fprintf(stdout, "%s → %s/%s  key %s\n", file, cfg.InputContainer, name, key)
	return nil
}

func runSubmit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("submit", flag.ContinueOnError)
	fs.SetOutput(stderr)
	info := fs.String("info", defaultStackInfo, "stack info written by `ffpipe dev`")
	profile := fs.String("profile", "", "media profile (default: the upload's ffpipe_profile metadata, FFPIPE_ROUTES, then FFPIPE_DEFAULT_PRESET)")
	preset := fs.String("preset", "", "older name of --profile")
	output := fs.String("output", "", "output as <container>/<blob> (default: from the output name template)")
	correlation := fs.String("correlation-id", "", "correlation id (default: random)")
	if err := fs.Parse(reorderFlags(args)); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("submit: want exactly one <container>/<blob>")
	}
	cont, name, ok := strings.Cut(fs.Arg(0), "/")
	if !ok || cont == "" || name == "" {
		return fmt.Errorf("submit: %q is not <container>/<blob>", fs.Arg(0))
	}
	_, set, err := connect(*info)
	if err != nil {
		return err
	}
	defer set.Close(context.WithoutCancel(ctx))
	props, err := set.Blobs.Properties(ctx, cont, name)
	if err != nil {
		return fmt.Errorf("submit: %s/%s: %w", cont, name, err)
	}
	req := request.Request{V: 1, Source: request.Source{Container: cont, Blob: name, ETag: props.ETag, Size: props.Size},
		Profile: *profile, Preset: *preset, CorrelationID: *correlation}
	if req.CorrelationID == "" {
		req.CorrelationID = randomID()
	}
	if *output != "" {
		oc, ob, ok := strings.Cut(*output, "/")
		if !ok {
			return fmt.Errorf("submit: --output %q is not <container>/<blob>", *output)
		}
		req.Output = request.Output{Container: oc, Blob: ob}
	}
	if err := req.Validate(); err != nil {
		return fmt.Errorf("submit: %w", err)
	}
	body, err := req.Encode()
	if err != nil {
		return fmt.Errorf("submit: %w", err)
	}
	key := req.Key(set.Blobs.Account())
	if err := set.Queue.Send(ctx, queue.Message{ID: key, CorrelationID: req.CorrelationID, Body: body}); err != nil {
		return fmt.Errorf("submit: %w", err)
	}
	fmt.Fprintf(stdout, "submitted %s/%s  key %s  correlation %s\n", cont, name, key, req.CorrelationID)
	return nil
}

// reorderFlags lets flags follow positional arguments (submit a/b --preset opus).
func reorderFlags(args []string) []string {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			pos = append(pos, args[i+1:]...)
			i = len(args)
		case strings.HasPrefix(a, "-") && len(a) > 1:
			flags = append(flags, a)
			if !strings.Contains(a, "=") && i+1 < len(args) {
				flags = append(flags, args[i+1])
				i++
			}
		default:
			pos = append(pos, a)
		}
	}
	return append(flags, pos...)
}

func randomID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	info := fs.String("info", defaultStackInfo, "stack info written by `ffpipe dev`")
	key := fs.String("key", "", "show one record")
	recent := fs.Int("recent", 15, "how many recent records to list")
	asJSON := fs.Bool("json", false, "print JSON")
	watch := fs.Bool("watch", false, "refresh the counts, the last hour's throughput and the failures by reason every 5 s, with a progress bar per running file, until interrupted")
	rebuild := fs.Bool("rebuild", false, "rebuild the records' index from the records (after a crash or to start one over old records; run it when the pipeline is quiet)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, set, err := connect(*info)
	if err != nil {
		return err
	}
	defer set.Close(context.WithoutCancel(ctx))
	switch {
	case *watch:
		return statusWatch(ctx, cfg, set, *recent, stdout)
	case *rebuild:
		return statusRebuild(ctx, set.Records, stdout)
	case *key != "":
		return statusKey(ctx, cfg, set, *key, stdout, stderr)
	}
	sum, err := set.Records.Summarize(ctx, *recent)
	if err != nil {
		return fmt.Errorf("status: %w", err)
	}
	// Work between the queue and Sweep is a Batch task, not a record.
	view, err := handlers.WithTasks(ctx, set.Batch, cfg.BatchJob, sum)
	if err != nil {
		fmt.Fprintf(stderr, "status: batch: %v\n", err)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(view)
	}
	writeSummary(stdout, view)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "UPDATED\tSTATE\tSOURCE\tOUTPUT\tREASON\tKEY")
	for _, r := range sum.Recent {
		out := joinBlob(r.Output)
		if n := len(r.Outputs); n > 1 {
			out += fmt.Sprintf(" (+%d)", n-1)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s/%s\t%s\t%s\t%s\n", r.Updated.Local().Format(time.TimeOnly), r.State,
			r.Source.Container, r.Source.Blob, out, r.Reason, r.Key)
	}
	return tw.Flush()
}

// statusWatch is `ffpipe status --watch`: bars on a terminal, plain lines elsewhere.
func statusWatch(ctx context.Context, cfg config.Config, set *clients.Set, recent int, stdout io.Writer) error {
	summarize := func(ctx context.Context) (handlers.Summary, error) {
		sum, err := set.Records.Summarize(ctx, recent)
		if err != nil {
			return handlers.Summary{}, err
		}
		view, _ := handlers.WithTasks(ctx, set.Batch, cfg.BatchJob, sum) // without task counts when Batch does not answer
		return view, nil
	}
	if !isTerminal(stdout) {
		return logStatus(ctx, summarize, set.Batch, cfg.BatchJob, stdout, time.Second, 5*time.Second)
	}
	return watchStatus(ctx, summarize, set.Batch, cfg.BatchJob, stdout, time.Second, 5*time.Second)
}

// statusRebuild is `ffpipe status --rebuild`.
func statusRebuild(ctx context.Context, recs *records.Store, stdout io.Writer) error {
	t0 := time.Now()
	res, err := recs.Rebuild(ctx)
	if err != nil {
		return fmt.Errorf("status: %w", err)
	}
	fmt.Fprintf(stdout, "index rebuilt from %d records over %d days in %.1fs\n", res.Records, res.Days, time.Since(t0).Seconds())
	for _, s := range records.States {
		if b, a := res.Before[s], res.After[s]; a != 0 || b != 0 {
			fmt.Fprintf(stdout, "  %-14s %d (index said %d)\n", s, a, b)
		}
	}
	return nil
}

// statusKey is `ffpipe status --key KEY`: the record, or the Batch task
// while the work is in flight.
func statusKey(ctx context.Context, cfg config.Config, set *clients.Set, key string, stdout, stderr io.Writer) error {
	r, err := set.Records.Get(ctx, key)
	if err != nil && !errors.Is(err, records.ErrNotFound) {
		return fmt.Errorf("status: %w", err)
	}
	if err != nil || !r.State.Terminal() {
		// Dispatched work is a Batch task until Sweep settles it.
		live, ok, terr := handlers.InFlight(ctx, set.Batch, cfg.BatchJob, key, r)
		if terr != nil {
			fmt.Fprintf(stderr, "status: batch: %v\n", terr)
		}
		if ok {
			r, err = live, nil
		}
	}
	if err != nil {
		return fmt.Errorf("status: no record or task for key %s: %w", key, err)
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func joinBlob(b records.Blob) string {
	if b.Blob == "" {
		return "-"
	}
	return b.Container + "/" + b.Blob
}
