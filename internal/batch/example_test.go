package batch_test

import (
	"fmt"
	"strings"
	"time"

	"github.com/ffpipe/ffpipe/internal/batch"
	"github.com/ffpipe/ffpipe/internal/presets"
	"github.com/ffpipe/ffpipe/internal/request"
)

// A TaskSpec is what Dispatch makes of one request: the key is the task id,
// the profile gives a fixed command line, and the URLs (here with stand-in
// SAS signatures) are the only place a blob name appears. Content turns it
// into the SDK's CreateTaskContent for AddTasks.
func ExampleTaskSpec() {
	profiles := presets.DefaultProfiles()
	d := request.Defaults{Account: "devstoreaccount1", Preset: "mp3", OutputContainer: "output", Profile: profiles.Lookup}
	r, err := request.Request{
		Source: request.Source{Container: "input", Blob: "talks/$(rm -rf ~).mp4", ETag: "0x8DC1234567890AB", Size: 1234},
	}.WithDefaults(d)
	if err != nil {
		fmt.Println(err)
		return
	}
	outs, err := r.Outputs(d)
	if err != nil {
		fmt.Println(err)
		return
	}
	profile, _ := profiles.Get(r.Profile)
	spec := batch.TaskSpec{
		Key:         r.Key("devstoreaccount1"),
		Request:     r,
		Profile:     profile,
		Outputs:     outs,
		InputURL:    "https://acct.blob.core.windows.net/input/talks/x.mp4?sv=2024&sig=READ",
		OutputURLs:  []string{"https://acct.blob.core.windows.net/output?sv=2024&sig=WRITE"},
		StdoutURL:   "https://acct.blob.core.windows.net/logs?sv=2024&sig=OUT",
		StderrURL:   "https://acct.blob.core.windows.net/logs?sv=2024&sig=ERR",
		ResultURL:   "https://acct.blob.core.windows.net/logs?sv=2024&sig=RES",
		Constraints: batch.Constraints{MaxWallClock: 30 * time.Minute, MaxRetries: 1},
	}
	content, err := spec.Content()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("task id:", *content.ID == spec.Key)
	fmt.Println("output:", outs[0].Blob)
	fmt.Println("name in the command line:", strings.Contains(*content.CommandLine, "talks/"))
	fmt.Println("wall clock:", *content.Constraints.MaxWallClockTime)
	// Output:
	// task id: true
	// output: talks/$(rm -rf ~).mp3
	// name in the command line: false
	// wall clock: PT30M
}
