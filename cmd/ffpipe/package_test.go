package main

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ffpipe/ffpipe/handlers"
	"github.com/ffpipe/ffpipe/internal/config"
)

type binding struct {
	Type         string   `json:"type"`
	Direction    string   `json:"direction"`
	Name         string   `json:"name"`
	QueueName    string   `json:"queueName"`
	Connection   string   `json:"connection"`
	Cardinality  string   `json:"cardinality"`
	DataType     string   `json:"dataType"`
	Schedule     string   `json:"schedule"`
	AuthLevel    string   `json:"authLevel"`
	Methods      []string `json:"methods"`
	Route        string   `json:"route"`
	RunOnStartup bool     `json:"runOnStartup"`
}

// TestPackage builds dist/ once (the handler build is the slow part) and
// checks everything the Functions host and `func publish` rely on.
func TestPackage(t *testing.T) {
	out := filepath.Join(t.TempDir(), "dist")
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"package", "--out", out, "--root", "../.."}, &stdout, &stderr); err != nil {
		t.Fatalf("ffpipe package: %v\n%s", err, stderr.String())
	}

	t.Run("host.json", func(t *testing.T) {
		var host struct {
			Version       string `json:"version"`
			CustomHandler struct {
				Description struct {
					DefaultExecutablePath string `json:"defaultExecutablePath"`
				} `json:"description"`
				EnableForwardingHTTPRequest bool `json:"enableForwardingHttpRequest"`
			} `json:"customHandler"`
			ExtensionBundle struct{ ID, Version string } `json:"extensionBundle"`
			Extensions      struct {
				ServiceBus struct {
					MaxMessageBatchSize  int  `json:"maxMessageBatchSize"`
					AutoCompleteMessages bool `json:"autoCompleteMessages"`
				} `json:"serviceBus"`
			} `json:"extensions"`
		}
		readJSON(t, filepath.Join(out, "host.json"), &host)
		checks := []struct {
			name      string
			got, want any
		}{
			{"version", host.Version, "2.0"},
			{"defaultExecutablePath", host.CustomHandler.Description.DefaultExecutablePath, "handler"},
			{"forwarding", host.CustomHandler.EnableForwardingHTTPRequest, false},
			{"bundle", host.ExtensionBundle.Version, "[4.*, 5.0.0)"},
			{"autoComplete", host.Extensions.ServiceBus.AutoCompleteMessages, true},
		}
		for _, c := range checks {
			if c.got != c.want {
				t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
			}
		}
		if n := host.Extensions.ServiceBus.MaxMessageBatchSize; n < 1 || n > 100 {
			t.Errorf("maxMessageBatchSize: got %d, want 1..100 (one AddTaskCollection call)", n)
		}
	})

	t.Run("function.json bindings", func(t *testing.T) {
		want := map[string][]binding{
			handlers.FuncOnBlobCreated: {{Type: "eventGridTrigger", Direction: "in", Name: handlers.BindingEvent}},
			handlers.FuncDispatch: {{Type: "serviceBusTrigger", Direction: "in", Name: handlers.BindingMessages,
				QueueName: "%FFPIPE_QUEUE%", Connection: "ServiceBusConnection", Cardinality: "many", DataType: "string"}},
			handlers.FuncSweep: {{Type: "timerTrigger", Direction: "in", Name: handlers.BindingTimer, Schedule: "%SweepSchedule%"}},
			handlers.FuncStatus: {
				{Type: "httpTrigger", Direction: "in", Name: handlers.BindingRequest, AuthLevel: "function", Methods: []string{"get", "post"}, Route: "status/{key?}"},
				{Type: "http", Direction: "out", Name: handlers.BindingResponse},
			},
		}
		entries, err := os.ReadDir(out)
		if err != nil {
			t.Fatal(err)
		}
		var dirs []string
		for _, e := range entries {
			if e.IsDir() {
				dirs = append(dirs, e.Name())
			}
		}
		if len(dirs) != len(want) {
			t.Errorf("function folders: got %v, want %d", dirs, len(want))
		}
		for fn, wb := range want {
			var f struct {
				Bindings []binding `json:"bindings"`
			}
			readJSON(t, filepath.Join(out, fn, "function.json"), &f)
			got, _ := json.Marshal(f.Bindings)
			exp, _ := json.Marshal(wb)
			if !bytes.Equal(got, exp) {
				t.Errorf("%s bindings:\n got %s\nwant %s", fn, got, exp)
			}
		}
	})

	t.Run("handler executable", func(t *testing.T) {
		exe := filepath.Join(out, "handler")
		fi, err := os.Stat(exe)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o111 != 0o111 {
			t.Errorf("mode: got %v, want executable by all", fi.Mode())
		}
		f, err := elf.Open(exe)
		if err != nil {
			t.Fatalf("not an ELF binary: %v", err)
		}
		defer f.Close()
		if f.Machine != elf.EM_X86_64 || f.OSABI != elf.ELFOSABI_NONE && f.OSABI != elf.ELFOSABI_LINUX {
			t.Errorf("target: got %v/%v, want x86-64 linux", f.Machine, f.OSABI)
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Errorf("binary has a dynamic loader; want static (CGO_ENABLED=0)")
			}
		}
	})

	t.Run("funcignore and local settings", func(t *testing.T) {
		ig, err := os.ReadFile(filepath.Join(out, ".funcignore"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(ig), "local.settings.json") {
			t.Errorf(".funcignore does not exclude local.settings.json")
		}
		for _, name := range []string{"host.json", "handler"} {
			for _, line := range strings.Split(string(ig), "\n") {
				if strings.TrimSpace(line) == name {
					t.Errorf(".funcignore excludes %s", name)
				}
			}
		}
		var ls struct {
			Values map[string]string `json:"Values"`
		}
		readJSON(t, filepath.Join(out, "local.settings.json"), &ls)
		if ls.Values["FUNCTIONS_WORKER_RUNTIME"] != "custom" {
			t.Errorf("FUNCTIONS_WORKER_RUNTIME: got %q, want custom", ls.Values["FUNCTIONS_WORKER_RUNTIME"])
		}
		for _, s := range config.Settings() {
			if _, ok := ls.Values[s.Name]; !ok {
				t.Errorf("local.settings.example.json lacks %s", s.Name)
			}
		}
		c, err := config.Load(config.FromMap(ls.Values))
		if err == nil {
			err = c.Validate()
		}
		if err != nil {
			t.Errorf("example settings do not load: %v", err)
		}
	})

	t.Run("repackaging keeps local.settings.json", func(t *testing.T) {
		p := filepath.Join(out, "local.settings.json")
		if err := os.WriteFile(p, []byte(`{"Values":{"mine":"1"}}`), 0o600); err != nil {
			t.Fatal(err)
		}
		// The second build hits the Go build cache.
		if err := run(context.Background(), []string{"package", "--out", out, "--root", "../.."}, &stdout, &stderr); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(p)
		if !strings.Contains(string(b), "mine") {
			t.Errorf("local.settings.json overwritten: %s", b)
		}
	})
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
