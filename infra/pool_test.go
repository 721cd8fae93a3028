package infra

import (
	"strconv"
	"testing"

	"github.com/ffpipe/ffpipe/internal/batch"
	"github.com/ffpipe/ffpipe/internal/presets"
)

// The default pool can run every built-in profile: a task's requiredSlots
// must fit one node's taskSlotsPerNode, or Batch leaves it active for ever;
// and the slots stay within Batch's limit of 4 per vCPU.
func TestPoolFitsProfiles(t *testing.T) {
	files := loadAll(t)
	main := files["main.bicep"]
	d, ok := main.find("param", "taskSlotsPerNode")
	if !ok || !d.hasValue {
		t.Fatal("main.bicep: param taskSlotsPerNode has no default")
	}
	slots, err := strconv.Atoi(main.text(d.value))
	if err != nil {
		t.Fatalf("main.bicep taskSlotsPerNode = %q: %v", main.text(d.value), err)
	}
	size, _ := main.paramDefault("poolVmSize")
	cpus, ok := batch.VMCores(size)
	if !ok {
		t.Fatalf("main.bicep poolVmSize = %q: no vCPU count in the name", size)
	}
	if slots > 4*cpus || slots > 256 {
		t.Errorf("taskSlotsPerNode %d exceeds Batch's min(4 x %d vCPUs, 256)", slots, cpus)
	}
	ps := presets.DefaultProfiles()
	heaviest := 0
	for _, name := range ps.Names() {
		p, _ := ps.Get(name)
		heaviest = max(heaviest, p.Slots)
		if p.Slots > slots {
			t.Errorf("profile %s needs %d slots; the default pool has %d per node, so its tasks would never run", name, p.Slots, slots)
		}
	}
	if heaviest < 2 {
		t.Errorf("no built-in profile needs more than %d slot; want the video profiles at 2 (is the profile set empty?)", heaviest)
	}
	// Both templates refuse a pool that cannot run a video task.
	for _, f := range []*bicepFile{main, files["modules/batch.bicep"]} {
		if !hasDecorator(f, "taskSlotsPerNode", "minValue", strconv.Itoa(heaviest)) {
			t.Errorf("%s: param taskSlotsPerNode wants @minValue(%d), the heaviest built-in profile", f.path, heaviest)
		}
	}
}

// hasDecorator reports whether param name is preceded by @dec(arg).
func hasDecorator(f *bicepFile, name, dec, arg string) bool {
	d, ok := f.find("param", name)
	if !ok {
		return false
	}
	i := 0
	for i < len(f.toks) && f.toks[i].line < d.line {
		i++
	}
	// Walk back over the decorators right above the declaration.
	for j := i - 1; j >= 0; j-- {
		t := f.toks[j]
		if t.kind == tIdent && t.text == dec && j > 0 && f.toks[j-1].text == "@" &&
			j+2 < len(f.toks) && f.toks[j+2].text == arg {
			return true
		}
		if t.kind == tIdent && (t.text == "param" || t.text == "var" || t.text == "resource" || t.text == "module" || t.text == "output") {
			return false
		}
	}
	return false
}
