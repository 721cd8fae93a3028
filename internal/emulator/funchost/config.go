package funchost

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// hostConfig is the part of host.json the local host reads.
type hostConfig struct {
	Version         string `json:"version"`
	FunctionTimeout string `json:"functionTimeout"`
	CustomHandler   struct {
		Description struct {
			DefaultExecutablePath string   `json:"defaultExecutablePath"`
			WorkingDirectory      string   `json:"workingDirectory"`
			Arguments             []string `json:"arguments"`
		} `json:"description"`
		EnableForwardingHTTPRequest bool `json:"enableForwardingHttpRequest"`
		Port                        int  `json:"port"`
	} `json:"customHandler"`
	Extensions struct {
		ServiceBus struct {
			MaxAutoLockRenewalDuration string `json:"maxAutoLockRenewalDuration"`
			MaxConcurrentCalls         int    `json:"maxConcurrentCalls"`
			MaxMessageBatchSize        int    `json:"maxMessageBatchSize"`
		} `json:"serviceBus"`
		HTTP struct {
			RoutePrefix *string `json:"routePrefix"`
		} `json:"http"`
	} `json:"extensions"`
}

// binding is one entry of function.json "bindings". Unknown keys are kept in raw.
type binding struct {
	Type             string   `json:"type"`
	Direction        string   `json:"direction"`
	Name             string   `json:"name"`
	DataType         string   `json:"dataType"`
	Cardinality      string   `json:"cardinality"`
	Schedule         string   `json:"schedule"`
	RunOnStartup     bool     `json:"runOnStartup"`
	UseMonitor       *bool    `json:"useMonitor"`
	QueueName        string   `json:"queueName"`
	TopicName        string   `json:"topicName"`
	SubscriptionName string   `json:"subscriptionName"`
	Connection       string   `json:"connection"`
	IsSessionEnabled bool     `json:"isSessionsEnabled"`
	Route            string   `json:"route"`
	Methods          []string `json:"methods"`
	AuthLevel        string   `json:"authLevel"`
}

type functionConfig struct {
	Disabled bool      `json:"disabled"`
	Bindings []binding `json:"bindings"`
}

// function is one loaded function folder.
type function struct {
	Name     string
	Trigger  binding
	Bindings []binding

	// Resolved at load time.
	schedule *Schedule     // timerTrigger cron
	interval time.Duration // timerTrigger TimeSpan schedule
	conn     Connection    // serviceBusTrigger
	entity   Entity        // serviceBusTrigger
}

func (f *function) triggerType() string { return strings.ToLower(f.Trigger.Type) }

// httpOutput returns the name of the output binding of type http, if any.
func (f *function) httpOutput() (string, bool) {
	for _, b := range f.Bindings {
		if strings.EqualFold(b.Type, "http") && strings.EqualFold(b.Direction, "out") {
			return b.Name, true
		}
	}
	return "", false
}

type localSettings struct {
	IsEncrypted bool              `json:"IsEncrypted"`
	Values      map[string]string `json:"Values"`
}

// loadHostJSON reads host.json and applies AzureFunctionsJobHost__a__b overrides
// from the settings (case-insensitive path match, like .NET configuration).
func loadHostJSON(appDir string, settings map[string]string) (hostConfig, error) {
	var hc hostConfig
	raw, err := os.ReadFile(filepath.Join(appDir, "host.json"))
	if err != nil {
		return hc, fmt.Errorf("read host.json: %w", err)
	}
	var tree map[string]any
	if err := json.Unmarshal(raw, &tree); err != nil {
		return hc, fmt.Errorf("parse host.json: %w", err)
	}
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	const prefix = "azurefunctionsjobhost__"
	for _, k := range keys {
		if !strings.HasPrefix(strings.ToLower(k), prefix) {
			continue
		}
		setPath(tree, strings.Split(k[len(prefix):], "__"), settings[k])
	}
	merged, err := json.Marshal(tree)
	if err != nil {
		return hc, fmt.Errorf("merge host.json overrides: %w", err)
	}
	if err := json.Unmarshal(merged, &hc); err != nil {
		return hc, fmt.Errorf("decode host.json: %w", err)
	}
	if hc.CustomHandler.Description.DefaultExecutablePath == "" {
		return hc, fmt.Errorf("host.json: customHandler.description.defaultExecutablePath: %w", ErrConfig)
	}
	return hc, nil
}

// setPath sets tree[path...] = value, matching existing keys case-insensitively.
// Numbers and booleans in value are stored typed so they decode into ints.
func setPath(tree map[string]any, path []string, value string) {
	for i, p := range path {
		key := p
		for k := range tree {
			if strings.EqualFold(k, p) {
				key = k
				break
			}
		}
		if i == len(path)-1 {
			var v any = value
			if n, err := strconv.Atoi(value); err == nil {
				v = n
			} else if b, err := strconv.ParseBool(value); err == nil {
				v = b
			}
			tree[key] = v
			return
		}
		next, ok := tree[key].(map[string]any)
		if !ok {
			next = map[string]any{}
			tree[key] = next
		}
		tree = next
	}
}

// loadLocalSettings reads local.settings.json if present.
func loadLocalSettings(appDir string) (map[string]string, error) {
	raw, err := os.ReadFile(filepath.Join(appDir, "local.settings.json"))
	if os.IsNotExist(err) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read local.settings.json: %w", err)
	}
	var ls localSettings
	if err := json.Unmarshal(raw, &ls); err != nil {
		return nil, fmt.Errorf("parse local.settings.json: %w", err)
	}
	if ls.IsEncrypted {
		return nil, fmt.Errorf("local.settings.json: IsEncrypted true is not supported: %w", ErrConfig)
	}
	if ls.Values == nil {
		ls.Values = map[string]string{}
	}
	return ls.Values, nil
}

// loadFunctions reads every <dir>/function.json directly under appDir.
func loadFunctions(appDir string) ([]*function, error) {
	entries, err := os.ReadDir(appDir)
	if err != nil {
		return nil, fmt.Errorf("read app dir: %w", err)
	}
	var fns []*function
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(appDir, e.Name(), "function.json"))
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read %s/function.json: %w", e.Name(), err)
		}
		fn, err := parseFunction(e.Name(), raw)
		if err != nil {
			return nil, err
		}
		fns = append(fns, fn)
	}
	return fns, nil
}

func parseFunction(name string, raw []byte) (*function, error) {
	var fc functionConfig
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&fc); err != nil {
		return nil, fmt.Errorf("parse %s/function.json: %w", name, err)
	}
	fn := &function{Name: name, Bindings: fc.Bindings}
	n := 0
	for _, b := range fc.Bindings {
		if strings.HasSuffix(strings.ToLower(b.Type), "trigger") {
			fn.Trigger = b
			n++
		}
	}
	if n != 1 {
		return nil, fmt.Errorf("%s/function.json: want exactly one trigger binding, got %d: %w", name, n, ErrConfig)
	}
	return fn, nil
}

var settingRef = regexp.MustCompile(`%([^%\s]+)%`)

// resolve expands %NAME% references from lookup. It fails when a reference
// does not resolve, as the host's name resolver does for binding expressions.
func resolve(s string, lookup func(string) (string, bool)) (string, error) {
	var missing string
	out := settingRef.ReplaceAllStringFunc(s, func(m string) string {
		v, ok := lookup(m[1 : len(m)-1])
		if !ok {
			missing = m
			return m
		}
		return v
	})
	if missing != "" {
		return "", fmt.Errorf("%q does not resolve to a value: %w", missing, ErrConfig)
	}
	return out, nil
}

// expandArg expands %NAME% in a handler argument; unresolved references are
// removed, as the host does.
func expandArg(s string, lookup func(string) (string, bool)) string {
	return settingRef.ReplaceAllStringFunc(s, func(m string) string {
		v, _ := lookup(m[1 : len(m)-1])
		return v
	})
}

// parseTimeSpan parses a .NET TimeSpan "[d.]hh:mm:ss[.fffffff]" or "-1".
func parseTimeSpan(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "-1" {
		return 0, nil
	}
	var days int
	if i := strings.IndexByte(s, '.'); i >= 0 && i < strings.IndexByte(s, ':') {
		d, err := strconv.Atoi(s[:i])
		if err != nil {
			return 0, fmt.Errorf("timespan %q: %w", s, ErrConfig)
		}
		days, s = d, s[i+1:]
	}
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return 0, fmt.Errorf("timespan %q: %w", s, ErrConfig)
	}
	h, err1 := strconv.Atoi(parts[0])
	m, err2 := strconv.Atoi(parts[1])
	sec, err3 := strconv.ParseFloat(parts[2], 64)
	if err1 != nil || err2 != nil || err3 != nil || h < 0 || m < 0 || m > 59 || sec < 0 || sec >= 60 {
		return 0, fmt.Errorf("timespan %q: %w", s, ErrConfig)
	}
	return time.Duration(days)*24*time.Hour + time.Duration(h)*time.Hour + time.Duration(m)*time.Minute +
		time.Duration(sec*float64(time.Second)), nil
}
