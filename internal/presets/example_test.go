package presets_test

import (
	"fmt"
	"strings"

	"github.com/ffpipe/ffpipe/internal/presets"
)

// A preset turns a name into a fixed ffmpeg argv: the input is always the
// task's input.mp4, the output output.<ext>, and no byte of a request
// reaches it. Load adds custom presets (FFPIPE_PRESETS) to the built-ins.
func Example() {
	set, err := presets.Load(`{"mp3-low": {"ext": "mp3", "args": ["-c:a", "libmp3lame", "-b:a", "96k"]}}`)
	if err != nil {
		fmt.Println(err)
		return
	}
	p, ok := set.Get("mp3-low")
	fmt.Println(ok, p.Ext, p.OutputFile())
	argv := p.Argv()
	fmt.Println(argv[0], strings.Contains(strings.Join(argv, " "), "-i input.mp4"))

	// Only allow-listed options with valid values are accepted.
	_, err = presets.Load(`{"evil": {"ext": "mp3", "args": ["-i", "/etc/passwd"]}}`)
	fmt.Println(err != nil)
	// Output:
	// true mp3 output.mp3
	// ffmpeg true
	// true
}
