package infra

import (
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// deployFunc runs one shell function of deploy.sh (with its say and die)
// in a fresh bash and returns stdout, stderr and the error.
func deployFunc(t *testing.T, env []string, call string) (string, string, error) {
	t.Helper()
	raw, err := os.ReadFile("deploy.sh")
	if err != nil {
		t.Fatal(err)
	}
	var defs []string
	for _, name := range []string{"say", "die", "retry", "suffix_filter"} {
		re := regexp.MustCompile(`(?ms)^` + name + `\(\) \{.*?^\}$|^` + name + `\(\) \{[^\n]*\}$`)
		def := re.FindString(string(raw))
		if def == "" {
			t.Fatalf("deploy.sh: function %s not found", name)
		}
		defs = append(defs, def)
	}
	script := "set -euo pipefail\n" + strings.Join(defs, "\n") + "\n" + call + "\n"
	cmd := exec.Command("bash", "-c", script)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	return stdout.String(), stderr.String(), err
}

// The steps that depend on role assignments made moments before (publish,
// the Event Grid subscription) retry with backoff, a bounded number of times.
func TestDeployRetry(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name       string
		failFirst  int // attempts that fail before one succeeds
		tries      int
		wantOK     bool
		wantCalls  int
		wantDelays string
	}{
		{"first try", 0, 5, true, 1, ""},
		{"after two failures", 2, 5, true, 3, "0 0 "},
		{"gives up", 9, 3, false, 3, "0 0 "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			count := dir + "/" + strings.ReplaceAll(tt.name, " ", "-")
			// flaky fails until it has been called failFirst times; sleep
			// records its argument instead of waiting.
			call := `calls=0; flaky() { calls=$((calls+1)); echo $calls > ` + count + `; [ "$calls" -gt ` + strconv.Itoa(tt.failFirst) + ` ]; }
slept=""; sleep() { slept="$slept$1 "; }
rc=0; retry ` + strconv.Itoa(tt.tries) + ` "the step" flaky || rc=$?
echo "delays=$slept"; exit $rc`
			out, errOut, err := deployFunc(t, []string{"FFPIPE_RETRY_DELAY=0"}, call)
			if gotOK := err == nil; gotOK != tt.wantOK {
				t.Fatalf("retry: err = %v, want success %v\nstdout %s\nstderr %s", err, tt.wantOK, out, errOut)
			}
			raw, _ := os.ReadFile(count)
			if got := strings.TrimSpace(string(raw)); got != strconv.Itoa(tt.wantCalls) {
				t.Errorf("calls = %s, want %d", got, tt.wantCalls)
			}
			if !strings.Contains(out, "delays="+tt.wantDelays+"\n") {
				t.Errorf("stdout = %q, want delays=%q", out, tt.wantDelays)
			}
			if !tt.wantOK && !strings.Contains(errOut, "the step failed 3 times") {
				t.Errorf("stderr = %q, want it to say the step failed 3 times", errOut)
			}
		})
	}
	// The delay doubles from FFPIPE_RETRY_DELAY.
	out, _, err := deployFunc(t, []string{"FFPIPE_RETRY_DELAY=7"}, `slept=""; sleep() { slept="$slept$1 "; }
retry 4 x false || true; echo "delays=$slept"`)
	if err != nil || !strings.Contains(out, "delays=7 14 28 \n") {
		t.Errorf("retry 4 with FFPIPE_RETRY_DELAY=7: out %q err %v, want delays 7 14 28", out, err)
	}
}

// suffix_filter turns FFPIPE_ALLOWED_SUFFIXES into eventgrid.bicep's
// subjectSuffixes array (JSON, as az parses array parameters).
func TestDeploySuffixFilter(t *testing.T) {
	many := strings.Repeat(".a,", 22)
	tests := []struct {
		in, want string
		wantErr  bool
	}{
		{".mp4", `[".mp4"]`, false},
		{" .mp4, .MOV ,,", `[".mp4",".MOV"]`, false},
		{"", `[]`, false},
		{many, `[]`, false},
		{`.mp4,.a"b`, "", true},
		{".mp4,.$(x)", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			out, errOut, err := deployFunc(t, nil, `suffix_filter '`+tt.in+`'`)
			if (err != nil) != tt.wantErr {
				t.Fatalf("suffix_filter %q: err = %v (stderr %q), want error %v", tt.in, err, errOut, tt.wantErr)
			}
			if !tt.wantErr && out != tt.want {
				t.Errorf("suffix_filter %q = %q, want %q", tt.in, out, tt.want)
			}
		})
	}
}
