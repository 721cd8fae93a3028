package batch

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"

	"github.com/ffpipe/ffpipe/internal/secret"
)

// Pool defaults.
const (
	DefaultPoolID             = "ffmpeg"
	DefaultJobID              = "ffpipe"
	DefaultVMSize             = "standard_d2s_v5"
	DefaultMaxNodes           = 10
	DefaultSlotsPerTask       = 2
	DefaultEvaluationInterval = 5 * time.Minute // the service minimum
	// DefaultSlotsPerVCPU is how many task slots a pool gets per vCPU when
	// none are set (DefaultTaskSlotsPerNode).
	DefaultSlotsPerVCPU = 2
	// MaxTaskSlotsPerNode is the service's upper bound (also ≤ 4 × cores).
	MaxTaskSlotsPerNode = 256
)

// DefaultTaskSlotsPerNode is the task slots per node of a pool of VM size
// vmSize when none are set: DefaultSlotsPerVCPU per vCPU (VMCores), within
// Batch's limit of min(4 × vCPUs, 256); false if the size's vCPU count is
// unknown. On Standard_D2s_v5 that is 4: four audio tasks (1 slot each) or
// two video or HLS tasks (2 slots) per node.
//
// Two per vCPU is the slot study of `ffpipe bench`'s node phase
// (docs/performance.md, run G), which pins the node to its own core with
// storage elsewhere, as in Azure: with one audio task per core the node
// idles while each input downloads (mp3 ratio to a bare ffmpeg baseline
// 1.639); with two, one task downloads while the other encodes (0.953).
// It is one run on a shared machine; a CPU-heavy custom profile may want
// fewer slots, set explicitly (infra's taskSlotsPerNode parameter).
func DefaultTaskSlotsPerNode(vmSize string) (int, bool) {
	cores, ok := VMCores(vmSize)
	if !ok {
		return 0, false
	}
	return min(DefaultSlotsPerVCPU*cores, 4*cores, MaxTaskSlotsPerNode), true
}

// Image is a marketplace image and the node agent that goes with it.
type Image struct {
	Publisher, Offer, SKU, Version string
	NodeAgentSKU                   string
}

// Ubuntu2204 is Canonical's Ubuntu 22.04 LTS (supported by Batch until
// 2027-06-30; plan the move to 24.04: canonical/ubuntu-24_04-lts/server
// with "batch.node.ubuntu 24.04").
var Ubuntu2204 = Image{
	Publisher:    "canonical",
	Offer:        "0001-com-ubuntu-server-jammy",
	SKU:          "22_04-lts",
	Version:      "latest",
	NodeAgentSKU: "batch.node.ubuntu 22.04",
}

// StartTaskCommand installs ffmpeg on a node unless it is already there
// (a restarted node, a custom image, the local stand-in running on a
// developer machine), retrying apt (mirrors and the boot-time
// unattended-upgrades lock are the usual failures), and checks that it
// runs. It uses no shell variables: Batch does not expand them.
const StartTaskCommand = `/bin/bash -c "set -u; if command -v ffmpeg >/dev/null; then ffmpeg -hide_banner -version; exit 0; fi; ` +
	`for attempt in 1 2 3 4 5; do ` +
	`if apt-get -o DPkg::Lock::Timeout=300 -q update && ` +
	`apt-get -o DPkg::Lock::Timeout=300 -q install -y --no-install-recommends ffmpeg; ` +
	`then ffmpeg -hide_banner -version && exit 0; fi; sleep 20; done; exit 1"`

// PoolConfig describes the persistent ffmpeg pool.
type PoolConfig struct {
	// ID of the pool; default "ffmpeg".
	ID string
	// VMSize, e.g. "standard_d2s_v5" (default). Avoid retired families (A, D/Dv2, ...).
	VMSize string
	// TaskSlotsPerNode: task slots per node; 0 means
	// DefaultTaskSlotsPerNode(VMSize), two per vCPU. The local stack sets
	// it to the cores explicitly (its storage emulator shares them).
	TaskSlotsPerNode int
	// MaxNodes caps the autoscale target (default 10).
	MaxNodes int
	// DedicatedNodes: how many of the nodes, while there is work, are
	// dedicated rather than spot (default 0: spot only). Idle → 0 nodes.
	DedicatedNodes int
	// SlotsPerTask is how many task slots the autoscale formula counts per
	// pending task (Batch's $PendingTasks counts tasks, not slots): the
	// largest requiredSlots of the profiles in use. Default
	// DefaultSlotsPerTask, the built-in video and HLS profiles' 2; an
	// audio-only deployment can set 1 (docs/profiles.md).
	SlotsPerTask int
	// EvaluationInterval of the autoscale formula (default and minimum 5m).
	EvaluationInterval time.Duration
	// Image defaults to Ubuntu2204.
	Image Image
	// StartTask overrides StartTaskCommand (e.g. for a custom image).
	StartTask string
	// NodeIdentity is the ARM resource id of the user-assigned identity the
	// tasks use for blob access. The Batch data plane cannot assign it, so
	// a pool with an identity is created by infra/; EnsurePool then only
	// checks that the existing pool has it.
	NodeIdentity string
}

// WithDefaults fills in the zero fields and validates the result.
func (c PoolConfig) WithDefaults() (PoolConfig, error) {
	if c.ID == "" {
		c.ID = DefaultPoolID
	}
	if c.VMSize == "" {
		c.VMSize = DefaultVMSize
	}
	if c.TaskSlotsPerNode == 0 {
		slots, ok := DefaultTaskSlotsPerNode(c.VMSize)
		if !ok {
			return c, fmt.Errorf("%w: pool %s: cannot tell the vCPU count of VM size %q; set the task slots per node", ErrInvalidSpec, c.ID, c.VMSize)
		}
		c.TaskSlotsPerNode = slots
	}
	if c.MaxNodes == 0 {
		c.MaxNodes = DefaultMaxNodes
	}
	if c.SlotsPerTask == 0 {
		c.SlotsPerTask = DefaultSlotsPerTask
	}
	if c.EvaluationInterval == 0 {
		c.EvaluationInterval = DefaultEvaluationInterval
	}
	if c.Image == (Image{}) {
		c.Image = Ubuntu2204
	}
	if c.StartTask == "" {
		c.StartTask = StartTaskCommand
	}
	return c, c.Validate()
}

var idRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// Validate checks a filled-in PoolConfig.
func (c PoolConfig) Validate() error {
	invalid := func(format string, args ...any) error {
		return fmt.Errorf("%w: pool %s: %s", ErrInvalidSpec, c.ID, fmt.Sprintf(format, args...))
	}
	switch {
	case !idRE.MatchString(c.ID):
		return invalid("id must be 1-64 of [A-Za-z0-9_-]")
	case c.VMSize == "":
		return invalid("no VM size")
	case c.TaskSlotsPerNode < 1 || c.TaskSlotsPerNode > MaxTaskSlotsPerNode:
		return invalid("task slots per node %d outside [1, %d]", c.TaskSlotsPerNode, MaxTaskSlotsPerNode)
	case c.MaxNodes < 1 || c.MaxNodes > 1000:
		return invalid("max nodes %d outside [1, 1000]", c.MaxNodes)
	case c.SlotsPerTask < 1 || c.SlotsPerTask > 256:
		return invalid("slots per task %d outside [1, 256]", c.SlotsPerTask)
	case c.DedicatedNodes < 0 || c.DedicatedNodes > c.MaxNodes:
		return invalid("dedicated nodes %d outside [0, max nodes %d]", c.DedicatedNodes, c.MaxNodes)
	case c.EvaluationInterval < 5*time.Minute || c.EvaluationInterval > 168*time.Hour:
		return invalid("autoscale evaluation interval %s outside [5m, 168h]", c.EvaluationInterval)
	case c.Image.Publisher == "" || c.Image.Offer == "" || c.Image.SKU == "" || c.Image.NodeAgentSKU == "":
		return invalid("incomplete image reference")
	}
	return nil
}

var vmCoresRE = regexp.MustCompile(`(?i)^standard_[a-z]+?([0-9]+)(?:-([0-9]+))?[a-z]*(?:_[a-z0-9]+)*$`)

// VMCores returns the vCPU count encoded in an Azure VM size name
// ("Standard_D4s_v5" → 4, "Standard_F8s_v2" → 8, constrained
// "Standard_E8-4ds_v5" → 4), or false if the name does not follow the
// pattern.
func VMCores(size string) (int, bool) {
	m := vmCoresRE.FindStringSubmatch(size)
	if m == nil {
		return 0, false
	}
	s := m[1]
	if m[2] != "" {
		s = m[2]
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, false
	}
	return n, true
}

// AutoScaleFormula is the queue-driven formula: enough nodes for the
// pending (active + running) tasks at TaskSlotsPerNode each, spot
// (low-priority) nodes except for up to dedicatedNodes dedicated ones,
// capped at maxNodes, and zero nodes when nothing was pending for the last
// five minutes. Nodes are released only when their tasks finish
// (taskcompletion), so scale-in never kills a running ffmpeg.
func AutoScaleFormula(maxNodes, dedicatedNodes, slotsPerTask int) string {
	return fmt.Sprintf(`// ffpipe: queue-driven autoscale, spot first, zero nodes when idle.
maxNodes = %d;
dedicatedNodes = %d;
slots = max(1, $TaskSlotsPerNode);
// $PendingTasks counts tasks, not slots: each is counted as the largest requiredSlots in use (capped to a node)
perTask = min(slots, max(1, %d));
// demand = active + running tasks: the last sample, or the 5-minute peak when samples are complete
pct = $PendingTasks.GetSamplePercent(TimeInterval_Minute * 5);
last = max(0, $PendingTasks.GetSample(1));
recent = pct < 70 ? last : max(last, max($PendingTasks.GetSample(TimeInterval_Minute * 5)));
// nodes for all pending tasks; (n + slots - 1) / slots rounds up when targets are truncated
wanted = recent > 0 ? max(1, (recent * perTask + slots - 1) / slots) : 0;
total = min(maxNodes, wanted);
dedicated = min(total, dedicatedNodes);
$TargetDedicatedNodes = dedicated;
$TargetLowPriorityNodes = total - dedicated;
$NodeDeallocationOption = taskcompletion;
`, maxNodes, dedicatedNodes, slotsPerTask)
}

// PoolSpec builds the CreatePoolContent for cfg (defaults applied).
func PoolSpec(cfg PoolConfig) (azbatch.CreatePoolContent, error) {
	c, err := cfg.WithDefaults()
	if err != nil {
		return azbatch.CreatePoolContent{}, err
	}
	img := &azbatch.ImageReference{
		Publisher: to.Ptr(c.Image.Publisher),
		Offer:     to.Ptr(c.Image.Offer),
		SKU:       to.Ptr(c.Image.SKU),
	}
	if c.Image.Version != "" {
		img.Version = to.Ptr(c.Image.Version)
	}
	return azbatch.CreatePoolContent{
		ID:          to.Ptr(c.ID),
		DisplayName: to.Ptr("ffpipe ffmpeg pool"),
		VMSize:      to.Ptr(c.VMSize),
		VirtualMachineConfiguration: &azbatch.VirtualMachineConfiguration{
			ImageReference: img,
			NodeAgentSKUID: to.Ptr(c.Image.NodeAgentSKU),
		},
		TargetNodeCommunicationMode: to.Ptr(azbatch.NodeCommunicationModeSimplified),
		TaskSlotsPerNode:            to.Ptr(int32(c.TaskSlotsPerNode)),
		// pack fills a node before using the next, so idle nodes can go
		TaskSchedulingPolicy:        &azbatch.TaskSchedulingPolicy{NodeFillType: to.Ptr(azbatch.NodeFillTypePack)},
		EnableAutoScale:             to.Ptr(true),
		AutoScaleFormula:            to.Ptr(AutoScaleFormula(c.MaxNodes, c.DedicatedNodes, c.SlotsPerTask)),
		AutoScaleEvaluationInterval: to.Ptr(ISODuration(c.EvaluationInterval)),
		StartTask: &azbatch.StartTask{
			CommandLine:         to.Ptr(c.StartTask),
			EnvironmentSettings: []azbatch.EnvironmentSetting{{Name: to.Ptr("DEBIAN_FRONTEND"), Value: to.Ptr("noninteractive")}},
			WaitForSuccess:      to.Ptr(true),
			MaxTaskRetryCount:   to.Ptr[int32](3),
			UserIdentity: &azbatch.UserIdentity{AutoUser: &azbatch.AutoUserSpecification{
				Scope:          to.Ptr(azbatch.AutoUserScopePool),
				ElevationLevel: to.Ptr(azbatch.ElevationLevelAdmin),
			}},
		},
	}, nil
}

// EnsurePoolResult reports what EnsurePool did.
type EnsurePoolResult struct {
	Created        bool // the pool was created
	FormulaUpdated bool // autoscale was (re-)enabled with the current formula
	// Evaluation is the service's evaluation of the formula
	// ("$TargetDedicatedNodes=0;..."); EvaluationErr is set instead when the
	// evaluation failed or is not supported (the local stand-in).
	Evaluation    string
	EvaluationErr string
	// Drift lists settings of an existing pool that differ from cfg and
	// that only re-creating the pool can change (VM size, slots, image).
	Drift []string
}

// EnsurePool makes the pool exist with cfg's autoscale settings. A missing
// pool is created (PoolExists from a concurrent create is fine); an
// existing one keeps its VM size, slots and image (differences are
// reported as Drift) and gets the formula and interval re-applied if they
// differ. Finally the formula is evaluated, for information.
func (c *Client) EnsurePool(ctx context.Context, cfg PoolConfig) (EnsurePoolResult, error) {
	var res EnsurePoolResult
	cfg, err := cfg.WithDefaults()
	if err != nil {
		return res, err
	}
	spec, err := PoolSpec(cfg)
	if err != nil {
		return res, err
	}
	pool, err := c.c.GetPool(ctx, cfg.ID, nil)
	if err != nil {
		if code, _ := errorCode(err); !strings.EqualFold(code, "PoolNotFound") {
			return res, fmt.Errorf("ensure pool %s: get: %w", cfg.ID, err)
		}
		if cfg.NodeIdentity != "" {
			return res, fmt.Errorf("ensure pool %s: it does not exist and a node identity is configured: %w (deploy infra/, or unset the node identity to use SAS URLs)", cfg.ID, ErrNodeIdentityNeedsARM)
		}
		_, err := c.c.CreatePool(ctx, spec, nil)
		code, _ := errorCode(err)
		switch {
		case err == nil:
			res.Created = true
			c.log.InfoContext(ctx, "batch pool created", "pool", cfg.ID, "vmSize", cfg.VMSize, "slots", cfg.TaskSlotsPerNode)
		case strings.EqualFold(code, "PoolExists"):
			if pool, err = c.c.GetPool(ctx, cfg.ID, nil); err != nil {
				return res, fmt.Errorf("ensure pool %s: get after PoolExists: %w", cfg.ID, err)
			}
		default:
			return res, fmt.Errorf("ensure pool %s: create: %w", cfg.ID, secret.RedactError(err))
		}
	}
	if !res.Created {
		if st := string(deref(pool.State)); strings.EqualFold(st, string(azbatch.PoolStateDeleting)) {
			return res, fmt.Errorf("ensure pool %s: the pool is being deleted; retry when it is gone", cfg.ID)
		}
		if cfg.NodeIdentity != "" && !hasIdentity(pool.Pool, cfg.NodeIdentity) {
			return res, fmt.Errorf("ensure pool %s: the pool does not have identity %s: %w", cfg.ID, cfg.NodeIdentity, ErrNodeIdentityNeedsARM)
		}
		res.Drift = drift(pool.Pool, spec)
		if !deref(pool.EnableAutoScale) || normFormula(deref(pool.AutoScaleFormula)) != normFormula(deref(spec.AutoScaleFormula)) ||
			!strings.EqualFold(deref(pool.AutoScaleEvaluationInterval), deref(spec.AutoScaleEvaluationInterval)) {
			_, err := c.c.EnablePoolAutoScale(ctx, cfg.ID, azbatch.EnablePoolAutoScaleContent{
				AutoScaleFormula:            spec.AutoScaleFormula,
				AutoScaleEvaluationInterval: spec.AutoScaleEvaluationInterval,
			}, nil)
			if err != nil {
				return res, fmt.Errorf("ensure pool %s: enable autoscale: %w", cfg.ID, err)
			}
			res.FormulaUpdated = true
		}
	}
	ev, err := c.c.EvaluatePoolAutoScale(ctx, cfg.ID, azbatch.EvaluatePoolAutoScaleContent{AutoScaleFormula: spec.AutoScaleFormula}, nil)
	switch {
	case err != nil:
		res.EvaluationErr = secret.Redact(err.Error())
	case ev.Error != nil:
		res.EvaluationErr = fmt.Sprintf("%s: %s", deref(ev.Error.Code), deref(ev.Error.Message))
	default:
		res.Evaluation = deref(ev.Results)
	}
	return res, nil
}

// normFormula ignores line-ending and surrounding white-space differences
// (ARM templates may store the formula with CRLF or without the final
// newline), so an unchanged formula is not re-applied.
func normFormula(f string) string {
	return strings.TrimSpace(strings.ReplaceAll(f, "\r\n", "\n"))
}

func hasIdentity(p azbatch.Pool, resourceID string) bool {
	if p.Identity == nil {
		return false
	}
	for _, id := range p.Identity.UserAssignedIdentities {
		if strings.EqualFold(deref(id.ResourceID), resourceID) {
			return true
		}
	}
	return false
}

func drift(p azbatch.Pool, want azbatch.CreatePoolContent) []string {
	var d []string
	if got := deref(p.VMSize); !strings.EqualFold(got, deref(want.VMSize)) {
		d = append(d, fmt.Sprintf("vmSize is %q, want %q", got, deref(want.VMSize)))
	}
	if got := deref(p.TaskSlotsPerNode); got != 0 && got != deref(want.TaskSlotsPerNode) {
		d = append(d, fmt.Sprintf("taskSlotsPerNode is %d, want %d", got, deref(want.TaskSlotsPerNode)))
	}
	if vm := p.VirtualMachineConfiguration; vm != nil && vm.ImageReference != nil {
		gi, wi := vm.ImageReference, want.VirtualMachineConfiguration.ImageReference
		if !strings.EqualFold(deref(gi.Offer), deref(wi.Offer)) || !strings.EqualFold(deref(gi.SKU), deref(wi.SKU)) {
			d = append(d, fmt.Sprintf("image is %s/%s, want %s/%s", deref(gi.Offer), deref(gi.SKU), deref(wi.Offer), deref(wi.SKU)))
		}
	}
	return d
}
