package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ffpipe/ffpipe/internal/presets"
	"github.com/ffpipe/ffpipe/internal/records"
	"github.com/ffpipe/ffpipe/internal/tooling/cpuset"
	"github.com/ffpipe/ffpipe/internal/tooling/media"
	"github.com/ffpipe/ffpipe/internal/tooling/stack"
)

// The node phase splits the machine in two, as Azure does: the "node" cores
// run what a Batch node runs (the Batch stand-in's process: its resource
// file downloads, output uploads and every task process), the "cloud" cores
// everything Azure runs elsewhere (Azurite, Service Bus, Event Grid, the
// Functions host, the handler, this process). The baseline runs the same
// argv with `xargs -P <task slots>` semantics, pinned to the node cores. The
// ratio is then what a node spends on anything but ffmpeg: transfers and the
// gaps between tasks.
//
// Pipeline and baseline run interleaved in Options.NodeRounds rounds, for
// each slot count in the study (1 and 2 task slots per node core), each
// pipeline run on a fresh stack; the figure is the median round ratio and
// the spread is reported with it.

// NodeRound is one round of one slot configuration.
type NodeRound struct {
	BaselineSeconds float64 `json:"baseline_seconds"`
	PipelineSeconds float64 `json:"pipeline_seconds"`
	Ratio           float64 `json:"ratio"`
	// BaselineCPUSeconds is ffmpeg's CPU in the baseline; NodeCPUSeconds
	// is the Batch stand-in process with its tasks over the pipeline run.
	BaselineCPUSeconds float64 `json:"baseline_cpu_seconds"`
	NodeCPUSeconds     float64 `json:"node_cpu_seconds"`
	CPURatio           float64 `json:"cpu_ratio"`
}

// NodeStudy is one profile at one slot count: every round, the median and
// the spread of the round ratios.
type NodeStudy struct {
	Profile      string `json:"profile"`
	SlotsPerCore int    `json:"slots_per_node_core"`
	TaskSlots    int    `json:"task_slots"`
	// RequiredSlots of the profile's tasks: TaskSlots / RequiredSlots
	// tasks run at once, on the node and in the baseline.
	RequiredSlots int         `json:"required_slots"`
	Rounds        []NodeRound `json:"rounds"`
	RatioMedian   float64     `json:"ratio_median"`
	RatioMin      float64     `json:"ratio_min"`
	RatioMax      float64     `json:"ratio_max"`
	CPURatioMed   float64     `json:"cpu_ratio_median"`
}

// NodeFigures are the node phase's results (flattened into Result's JSON).
type NodeFigures struct {
	NodeCPUs  string `json:"node_cpus,omitempty"`
	CloudCPUs string `json:"cloud_cpus,omitempty"`
	// NodeThroughputRatio is the best median ratio of the slot study for
	// the audio profile; NodeSlotsPerCore is the slot count that gave it.
	NodeThroughputRatio      float64     `json:"node_throughput_ratio"`
	NodeSlotsPerCore         int         `json:"node_slots_per_core,omitempty"`
	VideoNodeThroughputRatio float64     `json:"video_node_throughput_ratio"`
	VideoNodeSlotsPerCore    int         `json:"video_node_slots_per_core,omitempty"`
	NodeStudies              []NodeStudy `json:"node_slot_study,omitempty"`
}

// nodeSet is what one study runs: a profile, the argv of its baseline and
// the settings its stack needs.
type nodeSet struct {
	profile string
	video   bool
	// script is the profile's task command line (sh -c script): the
	// baseline runs it, in a directory per file, exactly as a node does.
	script string
	// slots is the profile's requiredSlots; perCore the slot counts per
	// node core the study tries.
	slots   int
	perCore []int
	clips   []media.Clip
}

func (r *runner) nodePhase(ctx context.Context) error {
	if r.o.Exec == "" {
		return errors.New("node phase: Options.Exec (the ffpipe binary) is required: the Batch stand-in runs as its own process on the node cores")
	}
	all, err := cpuset.Allowed()
	if err != nil {
		return err
	}
	node, cloud, err := cpuset.Split(all)
	if err != nil {
		return fmt.Errorf("node phase: %w", err)
	}
	r.res.NodeCPUs, r.res.CloudCPUs = node.String(), cloud.String()
	if err := r.generate(ctx); err != nil {
		return err
	}
	if err := cpuset.PinProcess(cloud); err != nil {
		return fmt.Errorf("node phase: %w", err)
	}
	defer func() { _ = cpuset.PinProcess(all) }()
	r.progress("node phase: node cpus %s, cloud cpus %s, %d rounds", node, cloud, r.o.NodeRounds)

	audio, err := r.profileSet(r.o.Preset, r.clips)
	if err != nil {
		return err
	}
	sets := []nodeSet{audio}
	if v, err := r.videoSet(); err == nil {
		sets = append(sets, v)
	} else {
		r.res.Notes = append(r.res.Notes, "video_node_throughput_ratio not measured: "+err.Error())
	}
	for _, set := range sets {
		studies := make([]*NodeStudy, 0, len(set.perCore))
		for _, k := range set.perCore {
			studies = append(studies, &NodeStudy{Profile: set.profile, SlotsPerCore: k, TaskSlots: k * len(node), RequiredSlots: set.slots})
		}
		for round := range r.o.NodeRounds {
			for _, st := range studies {
				nr, err := r.nodeRound(ctx, set, st.TaskSlots, node, cloud, round)
				if err != nil {
					return fmt.Errorf("node phase %s, %d slots, round %d: %w", set.profile, st.TaskSlots, round+1, err)
				}
				st.Rounds = append(st.Rounds, nr)
				r.progress("node %s %d slot(s)/core round %d: pipeline %.2fs / baseline %.2fs = %.3f (CPU %.2f / %.2f = %.3f)",
					set.profile, st.SlotsPerCore, round+1, nr.PipelineSeconds, nr.BaselineSeconds, nr.Ratio,
					nr.NodeCPUSeconds, nr.BaselineCPUSeconds, nr.CPURatio)
			}
		}
		best := -1
		for i, st := range studies {
			st.summarise()
			r.res.NodeStudies = append(r.res.NodeStudies, *st)
			if best < 0 || st.RatioMedian < studies[best].RatioMedian {
				best = i
			}
		}
		if set.video {
			r.res.VideoNodeThroughputRatio, r.res.VideoNodeSlotsPerCore = studies[best].RatioMedian, studies[best].SlotsPerCore
		} else {
			r.res.NodeThroughputRatio, r.res.NodeSlotsPerCore = studies[best].RatioMedian, studies[best].SlotsPerCore
		}
	}
	return nil
}

// summarise fills the median and spread from the rounds.
func (st *NodeStudy) summarise() {
	var ratios, cpu []float64
	for _, nr := range st.Rounds {
		ratios, cpu = append(ratios, nr.Ratio), append(cpu, nr.CPURatio)
	}
	st.RatioMedian, st.CPURatioMed = round(Median(ratios), 4), round(Median(cpu), 4)
	if len(ratios) > 0 {
		st.RatioMin, st.RatioMax = slices.Min(ratios), slices.Max(ratios)
	}
}

// Median is the middle value of xs (the mean of the two middle ones for an
// even count), or 0 for none.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if n := len(s); n%2 == 1 {
		return s[n/2]
	} else {
		return (s[n/2-1] + s[n/2]) / 2
	}
}

// nodeRound runs the baseline on the node cores, then the pipeline on a
// fresh stack whose Batch stand-in runs on them.
func (r *runner) nodeRound(ctx context.Context, set nodeSet, slots int, node, cloud cpuset.Set, rnd int) (NodeRound, error) {
	var nr NodeRound
	// The baseline's processes inherit this process's mask at fork: pin
	// it to the node for the baseline, then back to the cloud.
	if err := cpuset.PinProcess(node); err != nil {
		return nr, err
	}
	wall, cpu, err := r.scriptBaseline(ctx, set, max(1, slots/set.slots))
	if perr := cpuset.PinProcess(cloud); err == nil {
		err = perr
	}
	if err != nil {
		return nr, err
	}
	nr.BaselineSeconds, nr.BaselineCPUSeconds = round(wall.Seconds(), 3), round(cpu.Seconds(), 3)

	opts := stack.Options{Exec: r.o.Exec, NodeCPUs: node}
	saved := r.o.TaskSlots
	r.o.TaskSlots = slots
	p, err := r.startStack(ctx, fmt.Sprintf("node-%s-%d-%d", set.profile, slots, rnd), opts)
	r.o.TaskSlots = saved
	if err != nil {
		return nr, err
	}
	defer func() { _ = p.s.Close() }()
	if err := r.warmUp(ctx, p); err != nil {
		return nr, err
	}
	batchPid := p.s.Pid(stack.Batch)
	cpu0 := procCPU(batchPid)
	run, err := r.runSet(ctx, p, fmt.Sprintf("node/%d-%d", slots, rnd), set)
	if err != nil {
		return nr, err
	}
	nr.NodeCPUSeconds = round((procCPU(batchPid) - cpu0).Seconds(), 3)
	nr.PipelineSeconds = round(run.Seconds(), 3)
	nr.Ratio = round(Ratio(nr.PipelineSeconds, nr.BaselineSeconds), 4)
	nr.CPURatio = round(Ratio(nr.NodeCPUSeconds, nr.BaselineCPUSeconds), 4)
	return nr, nil
}

// procCPU is the CPU time of pid with its reaped children (0 if unknown).
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	_, ticks, ok := parseStat(string(b))
	if !ok {
		return 0
	}
	return time.Duration(ticks) * time.Second / clockTicks
}

// runSet sends the clips through the pipeline under prefix/ (uploaded with
// Event Grid paused, then released at once) and returns all uploaded →
// the last task's end, after checking every output.
func (r *runner) runSet(ctx context.Context, p *pipe, prefix string, set nodeSet) (time.Duration, error) {
	profile := ""
	if set.video {
		profile = set.profile // as the upload's ffpipe_profile metadata
	}
	keys, blobs, _, err := r.uploadClips(ctx, p, prefix, set.clips, profile)
	if err != nil {
		return 0, err
	}
	uploaded := time.Now()
	if err := p.s.Restart(ctx, stack.EventGrid); err != nil {
		return 0, err
	}
	if !set.video {
		end, _, err := r.verifyAudioSet(ctx, p, keys, blobs)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", prefix, err)
		}
		return end.Sub(uploaded), nil
	}
	// The node verified every output (decodes, streams, duration,
	// height) before the task succeeded; the record lists them.
	var end time.Time
	for i, key := range keys {
		rec, err := p.waitTerminal(ctx, key, 100*time.Millisecond)
		if err != nil {
			return 0, err
		}
		if rec.State != records.StateDone || rec.Timings.Ended == nil || len(rec.Outputs) == 0 {
			return 0, fmt.Errorf("%s: %s: %s: %s (%d outputs)", prefix, blobs[i], rec.State, rec.Reason, len(rec.Outputs))
		}
		if rec.Timings.Ended.After(end) {
			end = *rec.Timings.Ended
		}
	}
	return end.Sub(uploaded), nil
}

// VideoProfile is the profile of the video study.
const VideoProfile = "web"

// profileSet is the study of a built-in profile on clips.
func (r *runner) profileSet(name string, clips []media.Clip) (nodeSet, error) {
	prof, ok := presets.DefaultProfiles().Get(name)
	if !ok {
		return nodeSet{}, fmt.Errorf("no built-in profile %q", name)
	}
	set := nodeSet{profile: name, script: prof.TaskCommandLine(), slots: max(1, prof.Slots), clips: clips}
	for _, o := range prof.Outputs {
		if o.Kind != presets.KindAudio && o.Kind != presets.KindImage {
			set.video = true
		}
	}
	// 1 and 2 tasks per node core.
	set.perCore = []int{set.slots, 2 * set.slots}
	return set, nil
}

// videoSet is the web profile's study on the first Options.VideoFiles
// clips (a video encode costs ~25× an MP3's).
func (r *runner) videoSet() (nodeSet, error) {
	n := min(r.o.VideoFiles, len(r.clips))
	if n <= 0 {
		return nodeSet{}, errors.New("no video files asked for (--video-files -1)")
	}
	return r.profileSet(VideoProfile, r.clips[:n])
}

// scriptBaseline runs the set's task command line over its clips, each in
// a directory of its own holding input.mp4 (a hard link, or a symlink
// across file systems), parallel at a time: what the node runs, without
// the transfers, the scheduling and the gaps. It returns the wall time
// and the CPU of the scripts with everything they ran.
func (r *runner) scriptBaseline(ctx context.Context, set nodeSet, parallel int) (wall, cpu time.Duration, err error) {
	script, ok := strings.CutPrefix(set.script, "/bin/sh -c '")
	if !ok || !strings.HasSuffix(script, "'") {
		return 0, 0, fmt.Errorf("baseline %s: the command line is not one sh -c script", set.profile)
	}
	script = strings.TrimSuffix(script, "'")
	r.progress("baseline %s: %d files, %d task(s) at a time …", set.profile, len(set.clips), parallel)
	root, err := os.MkdirTemp(r.o.WorkDir, "baseline-")
	if err != nil {
		return 0, 0, err
	}
	defer os.RemoveAll(root)
	var mu sync.Mutex
	var errs []error
	jobs := make(chan int)
	var wg sync.WaitGroup
	start := time.Now()
	for range min(parallel, len(set.clips)) {
		wg.Go(func() {
			for i := range jobs {
				c, err := runScript(ctx, filepath.Join(root, strconv.Itoa(i)), set.clips[i].Path, script)
				mu.Lock()
				cpu += c
				if err != nil {
					errs = append(errs, fmt.Errorf("%s: %w", set.clips[i].Name, err))
				}
				mu.Unlock()
			}
		})
	}
	for i := range set.clips {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	wall = time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return 0, 0, fmt.Errorf("baseline %s: %w", set.profile, err)
	}
	r.progress("baseline %s: %.2fs wall, %.2fs CPU", set.profile, wall.Seconds(), cpu.Seconds())
	return wall, cpu, nil
}

// runScript runs a task script in dir on input and checks its verdict.
// The CPU is the script's with every process it waited for (wait4's
// rusage includes the children a process reaped).
func runScript(ctx context.Context, dir, input, script string) (time.Duration, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	in := filepath.Join(dir, presets.InputFile)
	if err := os.Link(input, in); err != nil {
		if err := os.Symlink(input, in); err != nil {
			return 0, err
		}
	}
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", script)
	cmd.Dir = dir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err := cmd.Run()
	var cpu time.Duration
	if cmd.ProcessState != nil {
		cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	if err != nil {
		return cpu, fmt.Errorf("%w: %s", err, lastLines(stderr.String(), 3))
	}
	b, err := os.ReadFile(filepath.Join(dir, presets.ResultFile))
	if err != nil {
		return cpu, err
	}
	res, err := presets.ParseResult(b)
	if err != nil {
		return cpu, err
	}
	if !res.OK {
		return cpu, fmt.Errorf("the task script failed: %s %s", res.Code, res.Message)
	}
	return cpu, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], " | ")
}
