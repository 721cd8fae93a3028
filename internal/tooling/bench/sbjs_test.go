package bench

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"
)

// TestServiceBusJS runs the stand-ins phase's JavaScript SDK measurement on
// a few hundred messages: every message is sent, received and completed
// (the script fails otherwise) and the rates are filled in. It skips when
// the SDK is not installed, unless FFPIPE_REQUIRE_SDKS=1 (make test).
func TestServiceBusJS(t *testing.T) {
	if _, err := findNodeModules("@azure/service-bus"); err != nil {
		if os.Getenv("FFPIPE_REQUIRE_SDKS") == "1" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var progress bytes.Buffer
	r := &runner{o: Options{StandinMessages: 250, WorkDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler), Progress: &progress}, res: &Result{}}
	if err := r.serviceBusJS(ctx); err != nil {
		t.Fatalf("serviceBusJS: %v", err)
	}
	if r.res.ServiceBusJSSendPerS <= 0 || r.res.ServiceBusJSReceivePerS <= 0 || r.res.ServiceBusJSMsgsPerS <= 0 {
		t.Fatalf("got rates %+v, want all three set", r.res)
	}
	if !strings.Contains(progress.String(), "JavaScript SDK: send") {
		t.Errorf("progress: got %q, want the measured rates", progress.String())
	}
}
