// Loading the app: settings, host.json, the handler process and the functions.

package funchost

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// lookup resolves an app setting: Options.Settings, then the process
// environment (when not empty), then local.settings.json Values. Core
// Tools skips a local setting "as it's already defined in current
// environment variables" (docs/localhost.md).
func (h *Host) lookup(name string) (string, bool) {
	if v, ok := h.opts.Settings[name]; ok {
		return v, true
	}
	if v := os.Getenv(name); v != "" {
		return v, true
	}
	v, ok := h.settings[name]
	return v, ok
}

// load reads the app: settings, host.json, the handler's process and the
// functions.
func (h *Host) load() error {
	appDir, err := filepath.Abs(h.opts.AppDir)
	if err != nil {
		return fmt.Errorf("app dir: %w", err)
	}
	env, err := h.loadSettings(appDir)
	if err != nil {
		return err
	}
	hc, err := loadHostJSON(appDir, env)
	if err != nil {
		return err
	}
	h.hc = hc
	if err := h.applyHostJSON(hc); err != nil {
		return err
	}
	h.worker = h.newWorker(appDir, hc, env)
	return h.loadAll(appDir)
}

// loadSettings reads local.settings.json into h.settings and returns every
// setting the handler's environment gets, with lookup's precedence.
func (h *Host) loadSettings(appDir string) (map[string]string, error) {
	values, err := loadLocalSettings(appDir)
	if err != nil {
		return nil, err
	}
	h.settings = map[string]string{}
	env := map[string]string{}
	for k, v := range values {
		h.settings[k] = v
		env[k] = ""
	}
	for _, kv := range os.Environ() {
		if k, _, ok := strings.Cut(kv, "="); ok {
			env[k] = ""
		}
	}
	for k := range h.opts.Settings {
		env[k] = ""
	}
	for k := range env {
		env[k], _ = h.lookup(k)
	}
	return env, nil
}

// applyHostJSON takes functionTimeout, the route prefix and forwarding
// from host.json.
func (h *Host) applyHostJSON(hc hostConfig) error {
	h.functionTimeout = 30 * time.Minute
	if hc.FunctionTimeout != "" {
		d, err := parseTimeSpan(hc.FunctionTimeout)
		if err != nil {
			return fmt.Errorf("host.json functionTimeout: %w", err)
		}
		if d > 0 {
			h.functionTimeout = d
		}
	}
	// Transport timeout is functionTimeout + 1 minute, as on the host; the
	// invocation context enforces functionTimeout itself.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64 // up to maxConcurrentCalls invocations at once, without reconnecting
	h.client = &http.Client{Timeout: h.functionTimeout + time.Minute, Transport: tr}
	h.routePrefix = "api"
	if p := hc.Extensions.HTTP.RoutePrefix; p != nil {
		h.routePrefix = strings.Trim(*p, "/")
	}
	h.forwarding = hc.CustomHandler.EnableForwardingHTTPRequest
	return nil
}

// newWorker describes the handler process: executable, working directory,
// arguments and environment (docs/functions-host-protocol.md#startup).
func (h *Host) newWorker(appDir string, hc hostConfig, settings map[string]string) *worker {
	desc := hc.CustomHandler.Description
	exe := expandArg(desc.DefaultExecutablePath, h.lookup)
	if !filepath.IsAbs(exe) {
		if st, err := os.Stat(filepath.Join(appDir, exe)); err == nil && !st.IsDir() {
			exe = filepath.Join(appDir, exe)
		}
	}
	dir := appDir
	if wd := desc.WorkingDirectory; wd != "" {
		if filepath.IsAbs(wd) {
			dir = wd
		} else {
			dir = filepath.Join(appDir, wd)
		}
	}
	var args []string
	for _, a := range desc.Arguments {
		if a = expandArg(a, h.lookup); a != "" {
			args = append(args, a)
		}
	}
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	env := make([]string, 0, len(keys)+1)
	for _, k := range keys {
		env = append(env, k+"="+settings[k])
	}
	env = append(env, "FUNCTIONS_APP_ROOT_PATH="+appDir)
	return &worker{
		log:          h.log.With("component", "handler"),
		exe:          exe,
		args:         args,
		dir:          dir,
		env:          env,
		fixedPort:    hc.CustomHandler.Port,
		readyTimeout: h.opts.StartTimeout,
		restartLimit: h.opts.RestartLimit,
		errorWindow:  h.opts.RestartWindow,
		minBackoff:   h.opts.RestartBackoff,
		maxBackoff:   5 * time.Second,
		changed:      make(chan struct{}),
	}
}

// loadAll loads every function folder; one that does not load is logged
// and skipped.
func (h *Host) loadAll(appDir string) error {
	fns, err := loadFunctions(appDir)
	if err != nil {
		return err
	}
	h.functions = map[string]*function{}
	for _, fn := range fns {
		if h.disabled(fn.Name) {
			h.log.Info("function disabled", "function", fn.Name)
			continue
		}
		if err := h.prepare(fn); err != nil {
			h.loadErrs[fn.Name] = err
			h.log.Error("function not loaded", "function", fn.Name, "err", err)
			continue
		}
		h.functions[strings.ToLower(fn.Name)] = fn
	}
	return nil
}

func (h *Host) disabled(name string) bool {
	v, ok := h.lookup("AzureWebJobs." + name + ".Disabled")
	if !ok {
		// Linux app settings cannot contain dots; the host also reads "__".
		v, ok = h.lookup("AzureWebJobs__" + name + "__Disabled")
	}
	return ok && (strings.EqualFold(strings.TrimSpace(v), "true") || strings.TrimSpace(v) == "1")
}

// prepare validates a function's trigger and output bindings.
func (h *Host) prepare(fn *function) error {
	for _, b := range fn.Bindings {
		if !strings.EqualFold(b.Direction, "out") {
			continue
		}
		if !strings.EqualFold(b.Type, "http") {
			return fmt.Errorf("output binding %q of type %q is not modelled by the local host: %w", b.Name, b.Type, ErrConfig)
		}
	}
	switch fn.triggerType() {
	case "httptrigger":
		r, err := newHTTPRoute(fn)
		if err != nil {
			return err
		}
		h.routes = append(h.routes, r)
	case "eventgridtrigger", "timertrigger", "servicebustrigger":
		return h.prepareTrigger(fn)
	default:
		return fmt.Errorf("trigger type %q is not modelled by the local host: %w", fn.Trigger.Type, ErrConfig)
	}
	return nil
}
