package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/ffpipe/ffpipe/internal/batch"
)

func init() {
	commands = append(commands, command{
		name:    "pool ensure",
		summary: "create the ffmpeg Batch pool (and job) or update its autoscale formula",
		run:     runPoolEnsure,
	})
}

// poolEnvOr returns the environment variable name, or def when it is unset.
func poolEnvOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}

func runPoolEnsure(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("pool ensure", flag.ContinueOnError)
	fs.SetOutput(stderr)
	endpoint := fs.String("endpoint", poolEnvOr("FFPIPE_BATCH_ENDPOINT", ""), "Batch account URL or local stand-in URL (env FFPIPE_BATCH_ENDPOINT)")
	token := fs.String("token", poolEnvOr("FFPIPE_BATCH_TOKEN", ""), "static bearer token for the local stand-in (env FFPIPE_BATCH_TOKEN); empty = Azure identity")
	poolID := fs.String("pool", poolEnvOr("FFPIPE_BATCH_POOL", batch.DefaultPoolID), "pool id (env FFPIPE_BATCH_POOL)")
	jobID := fs.String("job", poolEnvOr("FFPIPE_BATCH_JOB", batch.DefaultJobID), "job id to ensure on the pool; empty = skip (env FFPIPE_BATCH_JOB)")
	vmSize := fs.String("vm-size", batch.DefaultVMSize, "VM size")
	slots := fs.Int("slots", 0, "task slots per node (0 = two per vCPU of the VM size, batch.DefaultTaskSlotsPerNode)")
	maxNodes := fs.Int("max-nodes", batch.DefaultMaxNodes, "autoscale upper bound")
	dedicated := fs.Int("dedicated", 0, "dedicated (non-spot) nodes while there is work")
	perTask := fs.Int("slots-per-task", batch.DefaultSlotsPerTask, "task slots the autoscale formula counts per pending task: the largest requiredSlots of the profiles in use")
	interval := fs.Duration("interval", batch.DefaultEvaluationInterval, "autoscale evaluation interval (≥ 5m)")
	identity := fs.String("node-identity", poolEnvOr("FFPIPE_NODE_IDENTITY", ""), "resource id of the pool's user-assigned identity; checked, not set (env FFPIPE_NODE_IDENTITY)")
	printSpec := fs.Bool("print", false, "print the autoscale formula and exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("pool ensure: unexpected arguments %q", fs.Args())
	}
	cfg := batch.PoolConfig{
		ID: *poolID, VMSize: *vmSize, TaskSlotsPerNode: *slots, MaxNodes: *maxNodes,
		DedicatedNodes: *dedicated, EvaluationInterval: *interval, NodeIdentity: *identity, SlotsPerTask: *perTask,
	}
	cfg, err := cfg.WithDefaults()
	if err != nil {
		return fmt.Errorf("pool ensure: %w", err)
	}
	if *printSpec {
		fmt.Fprint(stdout, batch.AutoScaleFormula(cfg.MaxNodes, cfg.DedicatedNodes, cfg.SlotsPerTask))
		return nil
	}
	if *endpoint == "" {
		return errors.New("pool ensure: no Batch endpoint: pass --endpoint or set FFPIPE_BATCH_ENDPOINT")
	}
	var cred azcore.TokenCredential
	if *token != "" {
		cred = batch.NewStaticToken(*token)
	} else {
		c, err := azidentity.NewDefaultAzureCredential(nil)
		if err != nil {
			return fmt.Errorf("pool ensure: azure credential: %w", err)
		}
		cred = c
	}
	client, err := batch.NewClient(*endpoint, cred, batch.Options{})
	if err != nil {
		return fmt.Errorf("pool ensure: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	res, err := client.EnsurePool(ctx, cfg)
	if err != nil {
		return fmt.Errorf("pool ensure: %w", err)
	}
	switch {
	case res.Created:
		fmt.Fprintf(stdout, "pool %s created (vm %s, %d slots/node, ≤ %d nodes, %d dedicated)\n", cfg.ID, cfg.VMSize, cfg.TaskSlotsPerNode, cfg.MaxNodes, cfg.DedicatedNodes)
	case res.FormulaUpdated:
		fmt.Fprintf(stdout, "pool %s exists; autoscale formula updated\n", cfg.ID)
	default:
		fmt.Fprintf(stdout, "pool %s exists and is up to date\n", cfg.ID)
	}
	for _, d := range res.Drift {
		fmt.Fprintf(stderr, "warning: pool %s: %s (re-create the pool to change it)\n", cfg.ID, d)
	}
	if res.EvaluationErr != "" {
		fmt.Fprintf(stderr, "note: autoscale evaluation: %s\n", res.EvaluationErr)
	} else if res.Evaluation != "" {
		fmt.Fprintf(stdout, "autoscale evaluation: %s\n", res.Evaluation)
	}
	if *jobID != "" {
		if err := client.EnsureJob(ctx, *jobID, cfg.ID); err != nil {
			return fmt.Errorf("pool ensure: %w", err)
		}
		fmt.Fprintf(stdout, "job %s ready on pool %s\n", *jobID, cfg.ID)
	}
	return nil
}
