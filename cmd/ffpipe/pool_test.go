package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/ffpipe/ffpipe/internal/batch"
	emubatch "github.com/ffpipe/ffpipe/internal/emulator/batch"
	"github.com/ffpipe/ffpipe/internal/emulator/batch/batchtest"
)

func TestPoolEnsure(t *testing.T) {
	emu := batchtest.Start(t, emubatch.Options{MaxSlots: 2})
	t.Setenv("FFPIPE_BATCH_ENDPOINT", emu.URL())
	t.Setenv("FFPIPE_BATCH_TOKEN", emu.Token())
	t.Setenv("FFPIPE_NODE_IDENTITY", "")
	ctx := context.Background()
	runCmd := func(args ...string) (string, string, error) {
		var out, errOut bytes.Buffer
		err := run(ctx, append([]string{"pool", "ensure"}, args...), &out, &errOut)
		return out.String(), errOut.String(), err
	}

	out, _, err := runCmd("--slots", "2", "--max-nodes", "1")
	if err != nil {
		t.Fatalf("pool ensure: %v", err)
	}
	for _, want := range []string{"pool ffmpeg created", "job ffpipe ready on pool ffmpeg"} {
		if !strings.Contains(out, want) {
			t.Errorf("output %q lacks %q", out, want)
		}
	}
	out, _, err = runCmd("--slots", "2", "--max-nodes", "1")
	if err != nil || !strings.Contains(out, "up to date") {
		t.Errorf("second pool ensure = %q, %v; want up to date", out, err)
	}
	out, errOut, err := runCmd("--slots", "4", "--max-nodes", "3")
	if err != nil || !strings.Contains(out, "formula updated") || !strings.Contains(errOut, "taskSlotsPerNode is 2, want 4") {
		t.Errorf("pool ensure with new settings = %q / %q, %v; want formula updated and a slots warning", out, errOut, err)
	}
	if _, _, err := runCmd("--node-identity", "/subscriptions/x/identity"); err == nil || !strings.Contains(err.Error(), "Resource Manager") {
		t.Errorf("pool ensure with an identity the pool lacks = %v, want an ARM error", err)
	}
	if _, _, err := runCmd("--token", "wrong"); err == nil {
		t.Errorf("pool ensure with a wrong token: nil error, want one")
	}
}

func TestPoolEnsurePrintAndErrors(t *testing.T) {
	t.Setenv("FFPIPE_BATCH_ENDPOINT", "")
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"pool", "ensure", "--print", "--max-nodes", "7"}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if out.String() != batch.AutoScaleFormula(7, 0, batch.DefaultSlotsPerTask) {
		t.Errorf("--print = %q, want the formula", out.String())
	}
	tests := [][]string{
		{},                        // no endpoint
		{"--vm-size", "custom"},   // unknown vCPUs
		{"--interval", "1m"},      // below the service minimum
		{"--max-nodes", "0", "x"}, // stray argument
		{"--dedicated", "5", "--max-nodes", "2"},
	}
	for _, args := range tests {
		if err := run(context.Background(), append([]string{"pool", "ensure"}, args...), &out, &errOut); err == nil {
			t.Errorf("pool ensure %v: nil error, want one", args)
		}
	}
}
