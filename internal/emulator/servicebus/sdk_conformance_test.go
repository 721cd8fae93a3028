package servicebus_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ffpipe/ffpipe/internal/emulator/servicebus"
	"github.com/ffpipe/ffpipe/internal/fsutil"
)

// conformanceDir holds the suite written once: scenarios.json (what each
// scenario does), Config.json (the entities) and one runner per SDK.
const conformanceDir = "testdata/conformance"

type conformanceSpec struct {
	RefusalTimeoutMs int `json:"refusalTimeoutMs"`
	RoundTrip        struct {
		Body                  string                `json:"body"`
		MessageID             string                `json:"messageId"`
		CorrelationID         string                `json:"correlationId"`
		Subject               string                `json:"subject"`
		ContentType           string                `json:"contentType"`
		To                    string                `json:"to"`
		ReplyTo               string                `json:"replyTo"`
		TimeToLiveMs          int64                 `json:"timeToLiveMs"`
		ApplicationProperties []conformanceProperty `json:"applicationProperties"`
	} `json:"roundTrip"`
	Scenarios []struct {
		Name           string `json:"name"`
		TimeoutSeconds int    `json:"timeoutSeconds"`
		Queue          string `json:"queue"`
		Does           string `json:"does"`
	} `json:"scenarios"`
}

// conformanceProperty is one typed application property of the round trip.
type conformanceProperty struct {
	Name  string `json:"name"`
	Type  string `json:"type"`
	Value any    `json:"value"`
}

// sdkRunner runs one scenario through one official SDK.
type sdkRunner struct {
	name string
	// missing says why the SDK cannot run here ("" = it can).
	missing func() string
	// trustEnv, when set, runs the client over AMQPS: the broker listens
	// on port 5671 of a loopback address of its own (the connection string
	// names no port), and this environment variable names its certificate
	// for the client to trust, with no client code change.
	trustEnv string
	// command is the runner's command line; the scenario name follows.
	command func(spec string) []string
}

// debianPython is Debian's interpreter, where python3-azure installs the
// SDK (a python3 earlier in PATH may be another installation).
const debianPython = "/usr/bin/python3"

var sdkRunners = []sdkRunner{
	{
		name:    "javascript",
		missing: javascriptMissing,
		command: func(spec string) []string {
			return []string{"node", filepath.Join(conformanceDir, "conformance.js"), spec}
		},
	},
	{
		// The same runner over AMQPS: Node adds the broker's certificate
		// to its roots from NODE_EXTRA_CA_CERTS.
		name:     "javascript-tls",
		trustEnv: "NODE_EXTRA_CA_CERTS",
		missing:  javascriptMissing,
		command: func(spec string) []string {
			return []string{"node", "--no-deprecation", filepath.Join(conformanceDir, "conformance.js"), spec}
		},
	},
	{
		name:     "python",
		trustEnv: "SSL_CERT_FILE",
		missing: func() string {
			if err := exec.Command(debianPython, "-c", "import azure.servicebus, uamqp").Run(); err != nil {
				return "Debian's python3-azure is not installed (make deps installs it): " + err.Error()
			}
			return ""
		},
		command: func(spec string) []string {
			return []string{debianPython, filepath.Join(conformanceDir, "conformance.py"), spec}
		},
	},
}

// javascriptMissing says why the JavaScript SDK cannot run ("" = it can).
func javascriptMissing() string {
	if _, err := exec.LookPath("node"); err != nil {
		return "node is not installed"
	}
	root, err := fsutil.ModuleRoot()
	if err != nil {
		return err.Error()
	}
	if _, err := os.Stat(filepath.Join(root, "node_modules", "@azure", "service-bus", "package.json")); err != nil {
		return "@azure/service-bus is not installed (make deps runs npm ci)"
	}
	return ""
}

// TestSDKConformance runs every scenario of scenarios.json through every
// SDK, each against a fresh broker: Go in process (goScenarios), the others
// through their runner scripts. An SDK that is not installed
// skips, unless FFPIPE_REQUIRE_SDKS=1 (make test sets it) makes that a
// failure.
func TestSDKConformance(t *testing.T) {
	specPath, spec := loadConformanceSpec(t)
	t.Run("go", func(t *testing.T) {
		for _, sc := range spec.Scenarios {
			t.Run(sc.Name, func(t *testing.T) {
				t.Parallel()
				run := goScenarios[sc.Name]
				if run == nil {
					t.Fatalf("the Go runner does not implement scenario %s", sc.Name)
				}
				s := startConformanceBroker(t, false)
				ctx := ctxT(t, time.Duration(sc.TimeoutSeconds)*time.Second)
				c := target{connStr: s.ConnectionString()}.client(t)
				run(t, ctx, c, s.ConnectionString(), sc.Queue, spec)
			})
		}
	})
	for _, sdk := range sdkRunners {
		t.Run(sdk.name, func(t *testing.T) {
			if why := sdk.missing(); why != "" {
				if os.Getenv("FFPIPE_REQUIRE_SDKS") == "1" {
					t.Fatalf("%s SDK required: %s", sdk.name, why)
				}
				t.Skipf("%s SDK: %s", sdk.name, why)
			}
			for _, sc := range spec.Scenarios {
				t.Run(sc.Name, func(t *testing.T) {
					t.Parallel()
					s := startConformanceBroker(t, sdk.trustEnv != "")
					env := []string{"SB_CONNECTION=" + s.ConnectionString()}
					if sdk.trustEnv != "" {
						env = []string{"SB_CONNECTION=" + s.TLSConnectionString(), sdk.trustEnv + "=" + s.CertFile()}
					}
					ctx, cancel := context.WithTimeout(context.Background(), time.Duration(sc.TimeoutSeconds)*time.Second)
					defer cancel()
					argv := append(sdk.command(specPath), sc.Name)
					cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
					cmd.Env = append(os.Environ(), env...)
					cmd.WaitDelay = 5 * time.Second
					out, err := cmd.CombinedOutput()
					var exit *exec.ExitError
					switch {
					case err == nil:
					case ctx.Err() != nil:
						t.Fatalf("%s: no result within %d s (%s)\n%s", sc.Name, sc.TimeoutSeconds, sc.Does, out)
					case errors.As(err, &exit) && exit.ExitCode() == 3:
						t.Fatalf("the %s runner does not implement scenario %s\n%s", sdk.name, sc.Name, out)
					default:
						t.Fatalf("%s (%s): %v\n%s", sc.Name, sc.Does, err, out)
					}
				})
			}
		})
	}
}

func loadConformanceSpec(t *testing.T) (string, conformanceSpec) {
	t.Helper()
	specPath := filepath.Join(conformanceDir, "scenarios.json")
	raw, err := os.ReadFile(specPath)
	if err != nil {
		t.Fatal(err)
	}
	var spec conformanceSpec
	if err := json.Unmarshal(raw, &spec); err != nil {
		t.Fatalf("parse %s: %v", specPath, err)
	}
	if len(spec.Scenarios) == 0 || spec.RefusalTimeoutMs <= 0 || len(spec.RoundTrip.ApplicationProperties) == 0 {
		t.Fatalf("%s: want scenarios, refusalTimeoutMs and roundTrip properties", specPath)
	}
	return specPath, spec
}

// startConformanceBroker starts an in-memory broker with the suite's
// entities. With tls it also listens on 5671 of a random loopback address
// (127.x.y.z), retrying when another test already holds that one.
func startConformanceBroker(t *testing.T, tls bool) *servicebus.Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for attempt := 0; ; attempt++ {
		opts := servicebus.Options{Config: filepath.Join(conformanceDir, "Config.json")}
		if tls {
			opts.TLSAddr = fmt.Sprintf("127.%d.%d.%d:5671", 1+rand.IntN(254), rand.IntN(256), 1+rand.IntN(254))
			opts.TLSDir = t.TempDir()
		}
		s, err := servicebus.New(opts)
		if err != nil {
			t.Fatal(err)
		}
		err = s.Start(ctx)
		if err == nil {
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("close broker: %v", err)
				}
			})
			return s
		}
		if !errors.Is(err, syscall.EADDRINUSE) || attempt >= 20 {
			t.Fatalf("start broker: %v", err)
		}
		if !strings.Contains(err.Error(), "5671") {
			t.Fatalf("start broker: %v", err)
		}
	}
}
