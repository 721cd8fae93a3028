package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/ffpipe/ffpipe/handlers"
	"github.com/ffpipe/ffpipe/internal/fsutil"
)

func init() {
	commands = append(commands, command{
		name:    "package",
		summary: "build the function app root (host.json, function folders, linux/amd64 handler) for func start / func azure functionapp publish",
		run:     runPackage,
	})
}

// handlerExe is customHandler.description.defaultExecutablePath in host.json.
const handlerExe = "handler"

func runPackage(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("package", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "dist", "output directory (the function app root)")
	root := fs.String("root", "", "repository root (default: the directory holding go.mod, found upwards)")
	goos := fs.String("goos", "linux", "GOOS of the handler (Azure Functions runs linux)")
	goarch := fs.String("goarch", "amd64", "GOARCH of the handler")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("package: unexpected arguments %v", fs.Args())
	}
	repo := *root
	if repo == "" {
		var err error
		if repo, err = fsutil.ModuleRoot(); err != nil {
			return err
		}
	}
	if err := buildPackage(ctx, repo, *out, *goos, *goarch); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "packaged function app in %s (%s/%s handler)\n", *out, *goos, *goarch)
	return nil
}

// buildPackage writes the function app root: host.json, .funcignore, one
// folder per function with its function.json, the handler executable
// (static, with its exec bit) and, if absent, local.settings.json from the
// example. Only the files it owns are replaced.
func buildPackage(ctx context.Context, repo, out, goos, goarch string) error {
	var host struct {
		CustomHandler struct {
			Description struct {
				DefaultExecutablePath string `json:"defaultExecutablePath"`
			} `json:"description"`
		} `json:"customHandler"`
	}
	hostJSON, err := os.ReadFile(filepath.Join(repo, "host.json"))
	if err != nil {
		return fmt.Errorf("package: %w", err)
	}
	if err := json.Unmarshal(hostJSON, &host); err != nil {
		return fmt.Errorf("package: host.json: %w", err)
	}
	if p := host.CustomHandler.Description.DefaultExecutablePath; p != handlerExe {
		return fmt.Errorf("package: host.json customHandler.description.defaultExecutablePath is %q, want %q", p, handlerExe)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return fmt.Errorf("package: %w", err)
	}
	if err := copyFile(filepath.Join(repo, "host.json"), filepath.Join(out, "host.json"), 0o644); err != nil {
		return err
	}
	if err := copyFile(filepath.Join(repo, ".funcignore"), filepath.Join(out, ".funcignore"), 0o644); err != nil {
		return err
	}
	for _, fn := range handlers.Functions {
		src := filepath.Join(repo, "functions", fn, "function.json")
		b, err := os.ReadFile(src)
		if err != nil {
			return fmt.Errorf("package: %w", err)
		}
		if !json.Valid(b) {
			return fmt.Errorf("package: %s is not valid JSON", src)
		}
		dir := filepath.Join(out, fn)
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("package: %w", err)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("package: %w", err)
		}
		if err := os.WriteFile(filepath.Join(dir, "function.json"), b, 0o644); err != nil {
			return fmt.Errorf("package: %w", err)
		}
	}
	settings := filepath.Join(out, "local.settings.json")
	if _, err := os.Stat(settings); errors.Is(err, os.ErrNotExist) {
		if err := copyFile(filepath.Join(repo, "local.settings.example.json"), settings, 0o600); err != nil {
			return err
		}
	}
	exe, err := filepath.Abs(filepath.Join(out, handlerExe))
	if err != nil {
		return fmt.Errorf("package: %w", err)
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", exe, "./cmd/handler")
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+goos, "GOARCH="+goarch)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("package: build handler: %w\n%s", err, b)
	}
	// The host only chmods defaultExecutablePath on some plans; set it here.
	if err := os.Chmod(exe, 0o755); err != nil {
		return fmt.Errorf("package: %w", err)
	}
	return nil
}

func copyFile(src, dst string, mode os.FileMode) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("package: %w", err)
	}
	if err := os.WriteFile(dst, b, mode); err != nil {
		return fmt.Errorf("package: %w", err)
	}
	return nil
}
