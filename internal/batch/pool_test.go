package batch

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ffpipe/ffpipe/internal/config"
)

func TestAutoScaleFormulaGolden(t *testing.T) {
	checkGolden(t, "formula.golden", []byte(AutoScaleFormula(DefaultMaxNodes, 0, DefaultSlotsPerTask)))
	f := AutoScaleFormula(20, 2, DefaultSlotsPerTask)
	for _, want := range []string{"maxNodes = 20;", "dedicatedNodes = 2;", "$TargetLowPriorityNodes = total - dedicated;", "$NodeDeallocationOption = taskcompletion;"} {
		if !strings.Contains(f, want) {
			t.Errorf("formula lacks %q:\n%s", want, f)
		}
	}
	if len(f) > 8<<10 {
		t.Errorf("formula is %d bytes, the service allows 8 KiB", len(f))
	}
	if n := strings.Count(f, ";"); n > 100 {
		t.Errorf("formula has %d statements, the service allows 100", n)
	}
}

func TestPoolSpecGolden(t *testing.T) {
	spec, err := PoolSpec(PoolConfig{})
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "pool.json", marshalIndent(t, spec))
}

func TestPoolConfigDefaults(t *testing.T) {
	c, err := PoolConfig{VMSize: "Standard_F8s_v2"}.WithDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if c.ID != "ffmpeg" || c.TaskSlotsPerNode != 16 || c.MaxNodes != DefaultMaxNodes || c.EvaluationInterval != 5*time.Minute || c.Image != Ubuntu2204 || c.StartTask != StartTaskCommand {
		t.Errorf("WithDefaults = %+v", c)
	}
}

func TestPoolConfigInvalid(t *testing.T) {
	tests := []struct {
		name string
		c    PoolConfig
	}{
		{"unknown size without slots", PoolConfig{VMSize: "custom"}},
		{"bad id", PoolConfig{ID: "ff mpeg"}},
		{"too many slots", PoolConfig{TaskSlotsPerNode: 257}},
		{"negative slots", PoolConfig{TaskSlotsPerNode: -1}},
		{"negative max nodes", PoolConfig{MaxNodes: -1}},
		{"dedicated above max", PoolConfig{MaxNodes: 2, DedicatedNodes: 3}},
		{"short interval", PoolConfig{EvaluationInterval: time.Minute}},
		{"incomplete image", PoolConfig{Image: Image{Publisher: "canonical"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.c.WithDefaults(); !errors.Is(err, ErrInvalidSpec) {
				t.Errorf("WithDefaults error = %v, want ErrInvalidSpec", err)
			}
		})
	}
}

// A pool gets two task slots per vCPU unless set, within Batch's limit of
// min(4 × vCPUs, 256) (docs/performance.md, the node phase's slot study).
func TestDefaultTaskSlotsPerNode(t *testing.T) {
	tests := []struct {
		size string
		want int
		ok   bool
	}{
		{"standard_d2s_v5", 4, true}, // DefaultVMSize: 4 audio or 2 video tasks
		{"Standard_A1_v2", 2, true},
		{"Standard_F8s_v2", 16, true},
		{"Standard_E8-4ds_v5", 8, true}, // constrained: 4 active vCPUs
		{"Standard_HB120rs_v3", 240, true},
		{"Standard_HB176rs_v4", 256, true}, // capped at Batch's 256
		{"custom", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		got, ok := DefaultTaskSlotsPerNode(tt.size)
		if got != tt.want || ok != tt.ok {
			t.Errorf("DefaultTaskSlotsPerNode(%q) = %d, %v; want %d, %v", tt.size, got, ok, tt.want, tt.ok)
		}
		if cores, _ := VMCores(tt.size); ok && (got > 4*cores || got > MaxTaskSlotsPerNode) {
			t.Errorf("DefaultTaskSlotsPerNode(%q) = %d, above Batch's min(4 × %d vCPUs, %d)", tt.size, got, cores, MaxTaskSlotsPerNode)
		}
	}
	c, err := PoolConfig{}.WithDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if c.TaskSlotsPerNode != 4 {
		t.Errorf("PoolConfig{}.WithDefaults().TaskSlotsPerNode = %d, want 4 (2 per vCPU of %s)", c.TaskSlotsPerNode, DefaultVMSize)
	}
	// FFPIPE_TASK_MAX_SLOTS (cost per file, the requiredSlots cap) defaults
	// to the same slots, for deployments that do not set it.
	app, err := config.Load(config.FromMap(nil))
	if err != nil {
		t.Fatal(err)
	}
	if app.TaskMaxSlots != c.TaskSlotsPerNode {
		t.Errorf("FFPIPE_TASK_MAX_SLOTS defaults to %d, want the default pool's %d slots", app.TaskMaxSlots, c.TaskSlotsPerNode)
	}
	if c, err := (PoolConfig{TaskSlotsPerNode: 2}).WithDefaults(); err != nil || c.TaskSlotsPerNode != 2 {
		t.Errorf("WithDefaults with 2 slots set = %d, %v; want 2 kept (the local stack sets slots = cores)", c.TaskSlotsPerNode, err)
	}
}

func TestVMCores(t *testing.T) {
	tests := []struct {
		size string
		want int
		ok   bool
	}{
		{"standard_d2s_v5", 2, true},
		{"Standard_D4s_v5", 4, true},
		{"Standard_D16ds_v5", 16, true},
		{"Standard_D2as_v5", 2, true},
		{"Standard_F8s_v2", 8, true},
		{"Standard_E8-4ds_v5", 4, true},
		{"Standard_HB120rs_v3", 120, true},
		{"Standard_DC2s_v3", 2, true},
		{"Standard_A1_v2", 1, true},
		{"Standard_D4", 4, true},
		{"basic_a1", 0, false},
		{"custom", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		got, ok := VMCores(tt.size)
		if got != tt.want || ok != tt.ok {
			t.Errorf("VMCores(%q) = %d, %v; want %d, %v", tt.size, got, ok, tt.want, tt.ok)
		}
	}
}
