// The harness: the stack under test, its clients, and the shared state of a run.

package chaos

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"

	"github.com/ffpipe/ffpipe/internal/config"
	"github.com/ffpipe/ffpipe/internal/emulator/servicebus"
	"github.com/ffpipe/ffpipe/internal/ports"
	"github.com/ffpipe/ffpipe/internal/queue"
	"github.com/ffpipe/ffpipe/internal/storage"
	"github.com/ffpipe/ffpipe/internal/tooling/media"
	"github.com/ffpipe/ffpipe/internal/tooling/stack"
)

type harness struct {
	opts   Options
	dir    string
	log    *slog.Logger
	report *Report

	rngMu sync.Mutex
	rng   *rand.Rand

	clips  []media.Clip
	poison []media.Case

	st      *stack.Stack
	azLog   *os.File
	sbProxy *tcpProxy
	egProxy *egProxy
	cfg     config.Config
	blob    *azblob.Client
	store   *storage.Client
	sender  *queue.Sender
	sbConn  string // direct (not proxied) connection string

	mu   sync.Mutex
	rows []*Row
	// ops remembers when the harness last wrote each row's blob, to
	// repeat what an Azurite SIGKILL rolled back.
	ops map[*Row]time.Time

	recovMu sync.Mutex
	recov   map[string][]time.Duration

	faultsStart, faultsEnd time.Time
	// inFlight: the keys work was still in flight for when the drain
	// reached its cap (nil otherwise).
	inFlight     map[string]bool
	storageKills []time.Time
	// storageRestarts[i]: when Azurite was started again after
	// storageKills[i] (zero until it listened).
	storageRestarts []time.Time
}

func (h *harness) randIntN(n int) int {
	h.rngMu.Lock()
	defer h.rngMu.Unlock()
	return h.rng.IntN(n)
}

func freePort() (int, error) { return ports.Free() }

func (h *harness) startStack(ctx context.Context) error {
	sbPort, err := freePort()
	if err != nil {
		return err
	}
	h.sbProxy, err = newTCPProxy("127.0.0.1:"+strconv.Itoa(sbPort), h.log)
	if err != nil {
		return err
	}
	h.egProxy, err = newEGProxy(h.opts.Seed, h.log)
	if err != nil {
		return err
	}
	stackDir := filepath.Join(h.dir, "stack")
	if err := os.MkdirAll(filepath.Join(stackDir, "logs"), 0o755); err != nil {
		return err
	}
	azLog, err := os.OpenFile(filepath.Join(stackDir, "logs", "azurite.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	h.azLog = azLog // restarts of Azurite write to it too; closed by close()
	proxied := fmt.Sprintf("Endpoint=sb://127.0.0.1:%d;SharedAccessKeyName=%s;SharedAccessKey=%s;UseDevelopmentEmulator=true;",
		h.sbProxy.port(), servicebus.DefaultKeyName, servicebus.DefaultKey)
	h.sbConn = fmt.Sprintf("Endpoint=sb://127.0.0.1:%d;SharedAccessKeyName=%s;SharedAccessKey=%s;UseDevelopmentEmulator=true;",
		sbPort, servicebus.DefaultKeyName, servicebus.DefaultKey)
	sctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	h.st, err = stack.Start(sctx, stack.Options{
		Dir:                      stackDir,
		AppDir:                   h.opts.AppDir,
		Exec:                     h.opts.Exec,
		Ports:                    stack.Ports{ServiceBus: sbPort},
		Slots:                    h.opts.Slots,
		LockDuration:             lockDuration,
		DuplicateDetectionWindow: dupWindow,
		Settings: map[string]string{
			"ServiceBusConnection":    proxied,
			"FFPIPE_MAX_INPUT_BYTES":  strconv.FormatInt(h.opts.MaxInputBytes, 10),
			"FFPIPE_RECONCILE_AFTER":  reconcileAfter.String(),
			"FFPIPE_TASK_MAX_RETRIES": strconv.Itoa(taskMaxRetries),
			"FFPIPE_LOG_LEVEL":        "info",
		},
		EventGridEndpoint: h.egProxy.endpoint,
		Logger:            h.log,
		AzuriteLog:        azLog,
	})
	if err != nil {
		h.sbProxy.close()
		h.egProxy.close()
		return fmt.Errorf("chaos: %w", err)
	}
	if h.cfg, err = h.st.Config(); err != nil {
		return err
	}
	if h.blob, err = h.st.Blob(); err != nil {
		return err
	}
	if h.store, err = storage.NewFromConnectionString(h.st.StorageConnectionString(), storage.Options{}); err != nil {
		return err
	}
	if h.sender, err = queue.NewFromConnectionString(h.sbConn, h.cfg.Queue); err != nil {
		return err
	}
	return nil
}

func (h *harness) close() {
	if h.sender != nil {
		ctx, c := context.WithTimeout(context.Background(), 5*time.Second)
		_ = h.sender.Close(ctx)
		c()
	}
	if h.st != nil {
		if err := h.st.Close(); err != nil {
			h.log.Warn("close stack", "err", err)
		}
	}
	if h.egProxy != nil {
		h.egProxy.close()
	}
	if h.sbProxy != nil {
		h.sbProxy.close()
	}
	if h.azLog != nil {
		h.azLog.Close()
	}
}

// retry runs op until it succeeds or the deadline passes (components
// come and go while faults run).
func retry(ctx context.Context, what string, op func(context.Context) error) error {
	return retryEach(ctx, what, 15*time.Second, op)
}

// retryEach is retry with each attempt bounded by each.
func retryEach(ctx context.Context, what string, each time.Duration, op func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, opRetryDeadline)
	defer cancel()
	var err error
	for attempt := 0; ; attempt++ {
		actx, c := context.WithTimeout(ctx, each)
		err = op(actx)
		c()
		if err == nil {
			return nil
		}
		if !waitCtx(ctx, min(time.Duration(attempt+1)*200*time.Millisecond, 2*time.Second)) {
			return fmt.Errorf("%s: %w (last error: %v)", what, ctx.Err(), err)
		}
	}
}

func (h *harness) note(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	h.log.Info(msg)
	h.mu.Lock()
	h.report.Notes = append(h.report.Notes, msg)
	h.mu.Unlock()
}

func (h *harness) count(m map[string]int, k string) {
	h.mu.Lock()
	m[k]++
	h.mu.Unlock()
}

func (h *harness) event(fault, format string, args ...any) {
	h.mu.Lock()
	h.report.Timeline = append(h.report.Timeline, FaultEvent{At: time.Since(h.faultsStart).Seconds(), Fault: fault, Detail: fmt.Sprintf(format, args...)})
	h.mu.Unlock()
}
