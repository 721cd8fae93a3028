package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/ffpipe/ffpipe/handlers"
	"github.com/ffpipe/ffpipe/internal/records"
)

func init() {
	commands = append(commands, command{name: "redrive", summary: "send failed files again: --state failed [--reason CODE] [--since DURATION] [--dry-run]", run: runRedrive})
}

// planned is one record and what redriving it does.
type planned struct {
	rec records.Record
	act handlers.RedriveAction
}

// planRedrives reads the records of keys, keeps those with reason code
// (any when ""), and plans each.
func planRedrives(ctx context.Context, d handlers.RedriveDeps, recs *records.Store, keys []string, code string) ([]planned, error) {
	var plan []planned
	for _, k := range keys {
		rec, err := recs.Get(ctx, k)
		if errors.Is(err, records.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("redrive: %w", err)
		}
		// The code Status groups failures by (a reason's failure code, else
		// the state), so any code the status view shows selects its records.
		if code != "" && rec.FailureCode() != code {
			continue
		}
		act, err := handlers.PlanRedrive(ctx, d, rec)
		if err != nil {
			return nil, fmt.Errorf("redrive: %w", err)
		}
		plan = append(plan, planned{rec, act})
	}
	return plan, nil
}

func runRedrive(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("redrive", flag.ContinueOnError)
	fs.SetOutput(stderr)
	info := fs.String("info", defaultStackInfo, "stack info written by `ffpipe dev`")
	state := fs.String("state", string(records.StateFailed), "final state of the records to redrive (failed, input_missing, bad_request, rejected)")
	reason := fs.String("reason", "", "only records whose failure code is this, as Status groups them (e.g. decode_error; docs/reasons.md; a record whose reason has no code counts as its state)")
	since := fs.Duration("since", 0, "only records updated within this duration (e.g. 24h; 0: any)")
	dryRun := fs.Bool("dry-run", false, "show what would be done and do nothing")
	if err := fs.Parse(args); err != nil {
		return err
	}
	st := records.State(*state)
	if !st.Terminal() || st == records.StateDone {
		return fmt.Errorf("redrive: --state %q: want a final state other than done", *state)
	}
	cfg, set, err := connect(*info)
	if err != nil {
		return err
	}
	defer set.Close(context.WithoutCancel(ctx))
	var from time.Time
	if *since > 0 {
		from = time.Now().Add(-*since)
	}
	keys, err := set.Records.Matching(ctx, st, from)
	if err != nil {
		return fmt.Errorf("redrive: %w", err)
	}
	d := handlers.RedriveDeps{Blobs: set.Blobs, Queue: set.Queue, Records: set.Records, Config: cfg, Account: cfg.StorageAccount()}
	plan, err := planRedrives(ctx, d, set.Records, keys, *reason)
	if err != nil {
		return err
	}
	if len(plan) == 0 {
		fmt.Fprintf(stdout, "no %s records match\n", st)
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tINPUT\tREASON\tACTION")
	for _, p := range plan {
		what := p.act.Kind
		if p.act.Reason != "" {
			what += ": " + p.act.Reason
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", p.rec.Key, p.act.Blob, p.rec.Reason, what)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if *dryRun {
		fmt.Fprintln(stdout, "dry run: nothing done")
		return nil
	}
	done := 0
	for _, p := range plan {
		if p.act.Kind == handlers.RedriveSkip {
			continue
		}
		act, err := handlers.ApplyRedrive(ctx, d, p.rec, p.act)
		if err != nil {
			return fmt.Errorf("redrive: %d done, then: %w", done, err)
		}
		done++
		if act.NewKey != "" {
			fmt.Fprintf(stdout, "%s: moved back; new key %s\n", p.rec.Key, act.NewKey)
		} else {
			fmt.Fprintf(stdout, "%s: request sent again\n", p.rec.Key)
		}
	}
	fmt.Fprintf(stdout, "%d of %d redriven\n", done, len(plan))
	return nil
}
