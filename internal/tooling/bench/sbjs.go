package bench

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ffpipe/ffpipe/internal/emulator/azurite"
	"github.com/ffpipe/ffpipe/internal/emulator/servicebus"
)

// servicebusBenchJS is the JavaScript half of serviceBusJS.
//
//go:embed servicebus_bench.js
var servicebusBenchJS []byte

// jsResult is what servicebus_bench.js prints.
type jsResult struct {
	N         int     `json:"n"`
	SendMs    float64 `json:"sendMs"`
	ReceiveMs float64 `json:"receiveMs"`
}

// serviceBusJS measures the durable broker through the JavaScript SDK:
// N messages sent in batches of 100, then received in batches of 100 and
// completed (docs/servicebus-clients.md).
func (r *runner) serviceBusJS(ctx context.Context) error {
	modules, err := findNodeModules("@azure/service-bus")
	if err != nil {
		return err
	}
	n := r.o.StandinMessages
	dir := filepath.Join(r.o.WorkDir, "standin-servicebus-js")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	script := filepath.Join(dir, "servicebus_bench.js")
	if err := os.WriteFile(script, servicebusBenchJS, 0o644); err != nil {
		return err
	}
	sb, err := servicebus.New(servicebus.Options{DataDir: filepath.Join(dir, "data"), Logger: r.o.Logger.With("standin", "servicebus-js")})
	if err != nil {
		return err
	}
	if err := sb.Start(ctx); err != nil {
		return err
	}
	defer sb.Close()
	r.progress("service bus alone, JavaScript SDK: %d messages …", n)
	cctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(cctx, "node", script, strconv.Itoa(n))
	cmd.Env = append(os.Environ(), "NODE_PATH="+modules, "SB_CONNECTION="+sb.ConnectionString(), "SB_QUEUE=transcode")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("node servicebus_bench.js: %w: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	var res jsResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil || res.N != n || res.SendMs <= 0 || res.ReceiveMs <= 0 {
		return fmt.Errorf("node servicebus_bench.js: got %q (%v), want the counts and times of %d messages", stdout.Bytes(), err, n)
	}
	send, recv := time.Duration(res.SendMs*float64(time.Millisecond)), time.Duration(res.ReceiveMs*float64(time.Millisecond))
	r.res.ServiceBusJSSendPerS = round(Rate(n, send), 1)
	r.res.ServiceBusJSReceivePerS = round(Rate(n, recv), 1)
	r.res.ServiceBusJSMsgsPerS = round(Rate(n, send+recv), 1)
	r.progress("service bus alone, JavaScript SDK: send %.0f msg/s, receive+complete %.0f msg/s, overall %.0f msg/s",
		r.res.ServiceBusJSSendPerS, r.res.ServiceBusJSReceivePerS, r.res.ServiceBusJSMsgsPerS)
	return nil
}

// findNodeModules returns the node_modules directory that holds pkg
// (azurite.FindInNodeModules: the working directory, the executable's, and
// their parents).
func findNodeModules(pkg string) (string, error) {
	rel := filepath.Join(pkg, "package.json")
	if p, ok := azurite.FindInNodeModules(rel); ok {
		return strings.TrimSuffix(p, string(filepath.Separator)+rel), nil
	}
	if _, err := exec.LookPath("node"); err != nil {
		return "", errors.New("node is not installed")
	}
	return "", fmt.Errorf("node_modules/%s not found; run `make deps` (npm ci) in the repository root", pkg)
}
