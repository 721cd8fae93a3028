// Package config is the function app's configuration: one documented Config,
// loaded from app settings through a lookup function (only cmd/* reads the
// environment), with every default in one table.
//
// The table returned by Settings is the single source of truth: Load reads
// exactly those names, local.settings.example.json documents them and the
// infrastructure test checks that Bicep sets them.
//
// Two connection styles are supported, chosen by which settings are present:
//
//   - Local (stand-ins): ServiceBusConnection and DataStorage are connection
//     strings, FFPIPE_BATCH_TOKEN is a static bearer token.
//   - Azure: ServiceBusConnection__fullyQualifiedNamespace and
//     DataStorage__blobServiceUri with a managed identity (AZURE_CLIENT_ID for
//     a user-assigned one); Batch uses the same identity.
package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ffpipe/ffpipe/internal/isoduration"
)

// Config is everything the function app reads from its app settings.
type Config struct {
	// ServiceBusConnection is a Service Bus connection string (local).
	ServiceBusConnection string
	// ServiceBusNamespace is <ns>.servicebus.windows.net (Azure, identity).
	ServiceBusNamespace string
	// DataStorage is a storage connection string (local).
	DataStorage string
	// BlobServiceURI is https://<acct>.blob.core.windows.net (Azure, identity).
	BlobServiceURI string
	// ClientID is the client id of the app's user-assigned managed identity.
	ClientID string

	// BatchEndpoint is the Batch account URL or the local stand-in URL.
	BatchEndpoint string
	// BatchToken is a static bearer token for the local Batch stand-in; empty
	// in Azure, where the managed identity is used.
	BatchToken string
	BatchPool  string
	BatchJob   string

	// Queue is the Service Bus queue of request messages.
	Queue string
	// EventsTopic is the Service Bus topic of completion events; empty
	// publishes none.
	EventsTopic string

	InputContainer  string
	OutputContainer string
	StatusContainer string
	// IndexContainer holds the records' index (counts and recent
	// changes per day), which Status reads instead of every record.
	IndexContainer string
	// RecordRetention is how long records are kept (and counted).
	RecordRetention time.Duration
	LogsContainer   string
	// QuarantineContainer receives failed inputs; empty keeps them in place.
	QuarantineContainer string

	// AllowedSuffixes are lower-case blob name suffixes OnBlobCreated accepts.
	AllowedSuffixes []string
	// MaxInputBytes is the largest input accepted.
	MaxInputBytes int64
	DefaultPreset string
	// OutputTemplate names the output blob: {dir}, {stem}, {ext}, {name}.
	OutputTemplate string
	// Presets is optional JSON that overrides or adds presets.
	Presets string
	// Profiles is optional JSON that adds or replaces media profiles.
	Profiles string
	// Routes choose a profile by blob-name prefix (FFPIPE_ROUTES), longest
	// prefix first.
	Routes []Route
	// ProfileMetadata: Dispatch reads an upload's ffpipe_profile metadata
	// when the request names no profile (one Get Blob Properties each).
	ProfileMetadata bool
	// TaskMaxSlots is the pool's taskSlotsPerNode: a profile's
	// requiredSlots is capped to it, or its tasks would never run.
	TaskMaxSlots int

	TaskMaxWallClock time.Duration
	TaskMaxRetries   int
	// SASExpiry is the lifetime of the SAS URLs a task carries.
	SASExpiry time.Duration
	// NodeIdentity is the resource id of the pool's user-assigned identity;
	// when set, tasks reach storage with it instead of SAS URLs.
	NodeIdentity string

	// QueueLockDuration is the lock duration of the request queue (infra's
	// lockDuration); Dispatch keeps each invocation to half of it.
	QueueLockDuration time.Duration

	// SweepMaxTasks bounds the completed tasks one Sweep run handles.
	SweepMaxTasks int
	// SweepParallelism is how many completed tasks Sweep settles at once.
	SweepParallelism int
	// SweepBudget bounds the rounds of one Sweep run (see handlers).
	SweepBudget time.Duration
	// ReconcileAfter is the age after which an input with no task and no
	// record is enqueued again.
	ReconcileAfter time.Duration
	// SweepSchedule is read by the Functions host (%SweepSchedule%), kept
	// here so that it is documented and checked with the rest.
	SweepSchedule string

	// NodePriceSpot and NodePriceDedicated are the price of a node-hour
	// (FFPIPE_NODE_PRICE_PER_HOUR; 0: not set).
	NodePriceSpot, NodePriceDedicated float64
	// DailyBudget is the spend (at the dedicated price, or spot when only
	// that is set) after which Dispatch adds no tasks until the next UTC
	// day; 0: no budget.
	DailyBudget float64

	// LogFormat is json or text.
	LogFormat string
	// LogLevel is debug, info, warn or error.
	LogLevel string
}

// Setting documents one app setting.
type Setting struct {
	Name    string
	Default string
	Doc     string
	// Secret marks settings whose values must never be logged.
	Secret bool
}

type setting struct {
	Setting
	set func(c *Config, v string) error
}

const gib = 1 << 30

// table is the single list of settings: names, defaults, docs and parsers.
var table = []setting{
	{Setting{"ServiceBusConnection", "", "local: Service Bus connection string", true}, func(c *Config, v string) error { c.ServiceBusConnection = v; return nil }},
	{Setting{"ServiceBusConnection__fullyQualifiedNamespace", "", "Azure: <ns>.servicebus.windows.net, reached with the managed identity", false}, func(c *Config, v string) error { c.ServiceBusNamespace = v; return nil }},
	{Setting{"DataStorage", "", "local: storage connection string of the data account", true}, func(c *Config, v string) error { c.DataStorage = v; return nil }},
	{Setting{"DataStorage__blobServiceUri", "", "Azure: https://<acct>.blob.core.windows.net, reached with the managed identity", false}, func(c *Config, v string) error { c.BlobServiceURI = strings.TrimRight(v, "/"); return nil }},
	{Setting{"AZURE_CLIENT_ID", "", "client id of the function app's user-assigned managed identity", false}, func(c *Config, v string) error { c.ClientID = v; return nil }},
	{Setting{"FFPIPE_BATCH_ENDPOINT", "", "Batch account URL (https://<acct>.<region>.batch.azure.com) or the local stand-in URL", false}, func(c *Config, v string) error { c.BatchEndpoint = strings.TrimRight(v, "/"); return nil }},
	{Setting{"FFPIPE_BATCH_TOKEN", "", "local stand-in only: static bearer token; absent in Azure (managed identity)", true}, func(c *Config, v string) error { c.BatchToken = v; return nil }},
	{Setting{"FFPIPE_BATCH_POOL", "ffmpeg", "Batch pool id", false}, func(c *Config, v string) error { c.BatchPool = v; return nil }},
	{Setting{"FFPIPE_BATCH_JOB", "ffpipe", "Batch job id (long-lived, created if missing)", false}, func(c *Config, v string) error { c.BatchJob = v; return nil }},
	{Setting{"FFPIPE_QUEUE", "transcode", "Service Bus queue of request messages (also %FFPIPE_QUEUE% in Dispatch's function.json)", false}, func(c *Config, v string) error { c.Queue = v; return nil }},
	{Setting{"FFPIPE_QUEUE_LOCK_DURATION", "PT5M", "lock duration of FFPIPE_QUEUE (infra: lockDuration); a Dispatch invocation stops within half of it, because the host never renews the locks of a batch", false}, func(c *Config, v string) error {
		if err := setDuration(&c.QueueLockDuration, v); err != nil {
			return err
		}
		if c.QueueLockDuration < 2*time.Second {
			return fmt.Errorf("want at least 2 s, got %s", c.QueueLockDuration)
		}
		return nil
	}},
	{Setting{"FFPIPE_EVENTS_TOPIC", "transcode-events", "Service Bus topic of completion events (one CloudEvent per file that reaches a final state, docs/events.md); empty publishes none", false}, func(c *Config, v string) error { c.EventsTopic = v; return nil }},
	{Setting{"FFPIPE_INPUT_CONTAINER", "input", "container watched for uploads", false}, func(c *Config, v string) error { c.InputContainer = v; return nil }},
	{Setting{"FFPIPE_OUTPUT_CONTAINER", "output", "container for transcoded files", false}, func(c *Config, v string) error { c.OutputContainer = v; return nil }},
	{Setting{"FFPIPE_STATUS_CONTAINER", "status", "container of status records (one JSON blob per key)", false}, func(c *Config, v string) error { c.StatusContainer = v; return nil }},
	{Setting{"FFPIPE_INDEX_CONTAINER", "status-index", "container of the records' index: counts and latest changes per day, read by Status (docs/status-index.md)", false}, func(c *Config, v string) error { c.IndexContainer = v; return nil }},
	{Setting{"FFPIPE_RECORD_RETENTION", "P90D", "records last updated longer ago than this are deleted by Sweep and no longer counted: ISO 8601 (P90D) or Go duration", false}, func(c *Config, v string) error { return setDuration(&c.RecordRetention, v) }},
	{Setting{"FFPIPE_LOGS_CONTAINER", "logs", "container of task stdout/stderr (<key>/stdout.txt, <key>/stderr.txt)", false}, func(c *Config, v string) error { c.LogsContainer = v; return nil }},
	{Setting{"FFPIPE_QUARANTINE_CONTAINER", "quarantine", "failed inputs are moved here; set it empty to keep them in place", false}, func(c *Config, v string) error { c.QuarantineContainer = v; return nil }},
	{Setting{"FFPIPE_ALLOWED_SUFFIXES", ".mp4", "comma-separated blob name suffixes OnBlobCreated accepts (case-insensitive)", false}, setSuffixes},
	{Setting{"FFPIPE_MAX_INPUT_BYTES", strconv.FormatInt(4*gib, 10), "largest input in bytes; bigger uploads are rejected before dispatch", false}, func(c *Config, v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return fmt.Errorf("want a positive number of bytes, got %q", v)
		}
		c.MaxInputBytes = n
		return nil
	}},
	{Setting{"FFPIPE_DEFAULT_PRESET", "mp3", "profile (or preset) used when neither the request, the upload's metadata nor FFPIPE_ROUTES names one", false}, func(c *Config, v string) error { c.DefaultPreset = v; return nil }},
	{Setting{"FFPIPE_OUTPUT_TEMPLATE", "{dir}/{stem}.{ext}", "output blob name template ({dir}, {stem}, {ext})", false}, func(c *Config, v string) error { c.OutputTemplate = v; return nil }},
	{Setting{"FFPIPE_PRESETS", "", "optional JSON object overriding or adding presets", false}, func(c *Config, v string) error {
		if v != "" && !json.Valid([]byte(v)) {
			return errors.New("not valid JSON")
		}
		c.Presets = v
		return nil
	}},
	{Setting{"FFPIPE_PROFILES", "", "optional JSON object adding or replacing media profiles (docs/profiles.md)", false}, func(c *Config, v string) error {
		if v != "" && !json.Valid([]byte(v)) {
			return errors.New("not valid JSON")
		}
		c.Profiles = v
		return nil
	}},
	{Setting{"FFPIPE_ROUTES", "", `optional JSON object from blob-name prefix to profile, e.g. {"videos/": "web"}; the longest matching prefix wins`, false}, setRoutes},
	{Setting{"FFPIPE_PROFILE_METADATA", "true", "read an upload's ffpipe_profile metadata when the request names no profile (one Get Blob Properties per upload)", false}, func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("want true or false, got %q", v)
		}
		c.ProfileMetadata = b
		return nil
	}},
	// The default is the Azure pool's: 2 × the 2 vCPUs of the default
	// Standard_D2s_v5 (internal/batch.DefaultTaskSlotsPerNode, which a test
	// keeps equal). The local stack sets it to its own slots.
	{Setting{"FFPIPE_TASK_MAX_SLOTS", "4", "the pool's taskSlotsPerNode: a profile's requiredSlots is capped to it", false}, func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 256 {
			return fmt.Errorf("want a number in [1, 256], got %q", v)
		}
		c.TaskMaxSlots = n
		return nil
	}},
	{Setting{"FFPIPE_TASK_MAX_WALLCLOCK", "PT30M", "task maxWallClockTime: ISO 8601 (PT30M) or Go duration (30m)", false}, func(c *Config, v string) error { return setDuration(&c.TaskMaxWallClock, v) }},
	{Setting{"FFPIPE_TASK_MAX_RETRIES", "2", "task maxTaskRetryCount", false}, func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return fmt.Errorf("want a number ≥ 0, got %q", v)
		}
		c.TaskMaxRetries = n
		return nil
	}},
	{Setting{"FFPIPE_SAS_EXPIRY", "2h", "lifetime of the SAS URLs a task carries (must cover queue wait + wall clock)", false}, func(c *Config, v string) error { return setDuration(&c.SASExpiry, v) }},
	{Setting{"FFPIPE_NODE_IDENTITY", "", "Azure: resource id of the pool's user-assigned identity; when set, tasks use it instead of SAS URLs", false}, func(c *Config, v string) error { c.NodeIdentity = v; return nil }},
	{Setting{"FFPIPE_SWEEP_MAX_TASKS", "500", "completed tasks listed and settled per round of a Sweep run (see FFPIPE_SWEEP_BUDGET)", false}, func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return fmt.Errorf("want a positive number, got %q", v)
		}
		c.SweepMaxTasks = n
		return nil
	}},
	{Setting{"FFPIPE_SWEEP_PARALLELISM", "16", "completed tasks one Sweep run settles at the same time (each is ~5 storage and Batch calls in sequence)", false}, func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 || n > 256 {
			return fmt.Errorf("want a number from 1 to 256, got %q", v)
		}
		c.SweepParallelism = n
		return nil
	}},
	{Setting{"FFPIPE_SWEEP_BUDGET", "30s", "a Sweep run lists and settles more rounds of FFPIPE_SWEEP_MAX_TASKS while rounds come back full, until this much time has passed (keep it under the timer period and functionTimeout)", false}, func(c *Config, v string) error { return setDuration(&c.SweepBudget, v) }},
	{Setting{"FFPIPE_RECONCILE_AFTER", "15m", "inputs older than this with no task and no record are enqueued again", false}, func(c *Config, v string) error { return setDuration(&c.ReconcileAfter, v) }},
	{Setting{"SweepSchedule", "*/10 * * * * *", "Sweep's 6-field NCRONTAB schedule (read by the Functions host); Azure: e.g. 0 */1 * * * *", false}, func(c *Config, v string) error {
		if len(strings.Fields(v)) != 6 {
			return fmt.Errorf("want a 6-field NCRONTAB expression, got %q", v)
		}
		c.SweepSchedule = v
		return nil
	}},
	{Setting{"FFPIPE_NODE_PRICE_PER_HOUR", "", "price of one node-hour for the cost estimate of each file: spot=<p>,dedicated=<p>, or one price for both; empty: node time only", false}, func(c *Config, v string) error {
		var err error
		c.NodePriceSpot, c.NodePriceDedicated, err = ParsePrices(v)
		return err
	}},
	{Setting{"FFPIPE_DAILY_BUDGET", "0", "estimated spend per UTC day after which Dispatch adds no tasks and reschedules its messages to the next day (0: no budget; needs FFPIPE_NODE_PRICE_PER_HOUR)", false}, func(c *Config, v string) error {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < 0 {
			return fmt.Errorf("want an amount ≥ 0, got %q", v)
		}
		c.DailyBudget = f
		return nil
	}},
	{Setting{"FFPIPE_LOG_FORMAT", "json", "json (Azure) or text (local)", false}, func(c *Config, v string) error {
		v = strings.ToLower(v)
		if v != "json" && v != "text" {
			return fmt.Errorf("want json or text, got %q", v)
		}
		c.LogFormat = v
		return nil
	}},
	{Setting{"FFPIPE_LOG_LEVEL", "info", "debug, info, warn or error", false}, func(c *Config, v string) error {
		v = strings.ToLower(v)
		switch v {
		case "debug", "info", "warn", "error":
		default:
			return fmt.Errorf("want debug, info, warn or error, got %q", v)
		}
		c.LogLevel = v
		return nil
	}},
}

// Settings lists every app setting the function app reads, in a stable order.
func Settings() []Setting {
	out := make([]Setting, len(table))
	for i, s := range table {
		out[i] = s.Setting
	}
	return out
}

// Load builds a Config from lookup (os.LookupEnv in cmd/handler, a map in
// tests). A setting that is absent gets its default; a setting that is
// present but empty is empty (FFPIPE_QUARANTINE_CONTAINER= disables
// quarantine). Load does not call Validate.
func Load(lookup func(string) (string, bool)) (Config, error) {
	var c Config
	var errs []error
	for _, s := range table {
		v, ok := lookup(s.Name)
		if !ok {
			v = s.Default
		}
		v = strings.TrimSpace(v)
		if v == "" && s.Default != "" && s.Name != "FFPIPE_QUARANTINE_CONTAINER" {
			v = s.Default
		}
		if err := s.set(&c, v); err != nil {
			errs = append(errs, fmt.Errorf("setting %s: %w", s.Name, err))
		}
	}
	return c, errors.Join(errs...)
}

// FromMap is a lookup over a map, for tests and for local.settings.json Values.
func FromMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// Validate reports every missing or inconsistent setting by name.
func (c Config) Validate() error {
	var errs []error
	if c.ServiceBusConnection == "" && c.ServiceBusNamespace == "" {
		errs = append(errs, errors.New("setting ServiceBusConnection or ServiceBusConnection__fullyQualifiedNamespace is required"))
	}
	if c.DataStorage == "" && c.BlobServiceURI == "" {
		errs = append(errs, errors.New("setting DataStorage or DataStorage__blobServiceUri is required"))
	}
	if c.BlobServiceURI != "" {
		if u, err := url.Parse(c.BlobServiceURI); err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
			errs = append(errs, fmt.Errorf("setting DataStorage__blobServiceUri: want https://<account>.blob.core.windows.net, got %q", c.BlobServiceURI))
		}
	}
	if c.DataStorage != "" {
		if _, err := ParseStorageConnectionString(c.DataStorage); err != nil {
			errs = append(errs, fmt.Errorf("setting DataStorage: %w", err))
		}
	}
	if c.BatchEndpoint == "" {
		errs = append(errs, errors.New("setting FFPIPE_BATCH_ENDPOINT is required"))
	} else if u, err := url.Parse(c.BatchEndpoint); err != nil || u.Host == "" {
		errs = append(errs, fmt.Errorf("setting FFPIPE_BATCH_ENDPOINT: want a URL, got %q", c.BatchEndpoint))
	}
	for name, v := range map[string]string{
		"FFPIPE_BATCH_POOL": c.BatchPool, "FFPIPE_BATCH_JOB": c.BatchJob, "FFPIPE_QUEUE": c.Queue,
		"FFPIPE_INPUT_CONTAINER": c.InputContainer, "FFPIPE_OUTPUT_CONTAINER": c.OutputContainer,
		"FFPIPE_STATUS_CONTAINER": c.StatusContainer, "FFPIPE_LOGS_CONTAINER": c.LogsContainer,
		"FFPIPE_INDEX_CONTAINER": c.IndexContainer,
		"FFPIPE_DEFAULT_PRESET":  c.DefaultPreset, "FFPIPE_OUTPUT_TEMPLATE": c.OutputTemplate,
	} {
		if v == "" {
			errs = append(errs, fmt.Errorf("setting %s must not be empty", name))
		}
	}
	seen := map[string]string{}
	for name, v := range map[string]string{
		"FFPIPE_INPUT_CONTAINER": c.InputContainer, "FFPIPE_OUTPUT_CONTAINER": c.OutputContainer,
		"FFPIPE_STATUS_CONTAINER": c.StatusContainer, "FFPIPE_LOGS_CONTAINER": c.LogsContainer,
		"FFPIPE_QUARANTINE_CONTAINER": c.QuarantineContainer, "FFPIPE_INDEX_CONTAINER": c.IndexContainer,
	} {
		if v == "" {
			continue
		}
		if !validContainer(v) {
			errs = append(errs, fmt.Errorf("setting %s: %q is not a valid container name", name, v))
		}
		if other, ok := seen[v]; ok {
			// Sort the pair so the message is stable.
			a, b := other, name
			if a > b {
				a, b = b, a
			}
			errs = append(errs, fmt.Errorf("settings %s and %s name the same container %q", a, b, v))
		}
		seen[v] = name
	}
	if len(c.AllowedSuffixes) == 0 {
		errs = append(errs, errors.New("setting FFPIPE_ALLOWED_SUFFIXES must list at least one suffix"))
	}
	if c.SASExpiry > 0 && c.TaskMaxWallClock > 0 && c.SASExpiry <= c.TaskMaxWallClock {
		errs = append(errs, fmt.Errorf("setting FFPIPE_SAS_EXPIRY (%s) must exceed FFPIPE_TASK_MAX_WALLCLOCK (%s)", c.SASExpiry, c.TaskMaxWallClock))
	}
	if c.SASExpiry > 7*24*time.Hour {
		errs = append(errs, fmt.Errorf("setting FFPIPE_SAS_EXPIRY (%s) must be at most 7 days (user delegation key lifetime)", c.SASExpiry))
	}
	if c.DailyBudget > 0 && c.NodePriceSpot == 0 && c.NodePriceDedicated == 0 {
		errs = append(errs, errors.New("setting FFPIPE_DAILY_BUDGET needs FFPIPE_NODE_PRICE_PER_HOUR (a budget of money needs a price)"))
	}
	return errors.Join(errs...)
}

// Local reports whether the app uses connection strings (the local stack)
// rather than identity-based connections.
func (c Config) Local() bool { return c.DataStorage != "" }

// StorageAccount is the data storage account name, from the connection
// string's AccountName, the blob service URI's host, or (Azurite style
// http://127.0.0.1:10000/devstoreaccount1) its first path segment.
func (c Config) StorageAccount() string {
	if c.DataStorage != "" {
		if cs, err := ParseStorageConnectionString(c.DataStorage); err == nil {
			return cs.AccountName
		}
	}
	if c.BlobServiceURI != "" {
		return AccountFromBlobURL(c.BlobServiceURI)
	}
	return ""
}

// AccountFromBlobURL returns the account name of a blob service, container
// or blob URL: the first label of <acct>.blob.core.windows.net, or the first
// path segment of an IP-style (emulator) URL.
func AccountFromBlobURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return ""
	}
	host := u.Hostname()
	if isIPOrLocal(host) {
		seg, _, _ := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
		return seg
	}
	label, _, _ := strings.Cut(host, ".")
	return label
}

func isIPOrLocal(host string) bool {
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	if strings.Contains(host, ":") {
		return true
	}
	for _, r := range host {
		if (r < '0' || r > '9') && r != '.' {
			return false
		}
	}
	return true
}

func setSuffixes(c *Config, v string) error {
	c.AllowedSuffixes = nil
	for _, s := range strings.Split(v, ",") {
		s = strings.ToLower(strings.TrimSpace(s))
		if s == "" {
			continue
		}
		c.AllowedSuffixes = append(c.AllowedSuffixes, s)
	}
	return nil
}

// setDuration accepts Go durations (90s, 30m, 2h) and the ISO 8601 forms
// Batch uses (PT30M, PT1H30M, P1D).
// Route maps a blob-name prefix of the input container to a profile.
type Route struct {
	Prefix  string
	Profile string
}

// MaxRoutes bounds FFPIPE_ROUTES.
const MaxRoutes = 256

func setRoutes(c *Config, v string) error {
	c.Routes = nil
	if strings.TrimSpace(v) == "" {
		return nil
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(v), &m); err != nil {
		return fmt.Errorf("want a JSON object from prefix to profile name: %w", err)
	}
	if len(m) > MaxRoutes {
		return fmt.Errorf("%d routes, at most %d", len(m), MaxRoutes)
	}
	for prefix, profile := range m {
		if prefix == "" || len(prefix) > 1024 {
			return fmt.Errorf("route prefix %q: want 1-1024 characters", prefix)
		}
		c.Routes = append(c.Routes, Route{Prefix: prefix, Profile: profile})
	}
	// Longest prefix first; equal lengths in byte order, so the choice is stable.
	slices.SortFunc(c.Routes, func(a, b Route) int {
		if n := len(b.Prefix) - len(a.Prefix); n != 0 {
			return n
		}
		return strings.Compare(a.Prefix, b.Prefix)
	})
	return nil
}

// Route returns the profile of the longest FFPIPE_ROUTES prefix of blob,
// or "".
func (c Config) Route(blob string) string {
	for _, r := range c.Routes {
		if strings.HasPrefix(blob, r.Prefix) {
			return r.Profile
		}
	}
	return ""
}

func setDuration(d *time.Duration, v string) error {
	x, err := ParseDuration(v)
	if err != nil {
		return err
	}
	if x <= 0 {
		return fmt.Errorf("want a positive duration, got %q", v)
	}
	*d = x
	return nil
}

// ParseDuration parses a Go duration (90s, 30m, 2h) or an ISO 8601
// duration (PT30M, P1DT2H; package isoduration).
func ParseDuration(v string) (time.Duration, error) {
	if d, err := time.ParseDuration(v); err == nil {
		return d, nil
	}
	d, err := isoduration.Parse(v)
	if err != nil {
		return 0, fmt.Errorf("want a duration like 30m or PT30M, got %q", v)
	}
	return d, nil
}

// validContainer checks Azure's container naming rules: 3–63 characters,
// lower-case letters, digits and single hyphens, starting and ending with a
// letter or digit.
func validContainer(s string) bool {
	if len(s) < 3 || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' || strings.Contains(s, "--") {
		return false
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' {
			return false
		}
	}
	return true
}

// ParsePrices reads FFPIPE_NODE_PRICE_PER_HOUR: "spot=0.02,dedicated=0.10"
// (either may be left out), or one number for both; "" sets none.
func ParsePrices(v string) (spot, dedicated float64, err error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, 0, nil
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		if f < 0 {
			return 0, 0, fmt.Errorf("want a price ≥ 0, got %q", v)
		}
		return f, f, nil
	}
	for _, part := range strings.Split(v, ",") {
		k, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		f, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if !ok || err != nil || f < 0 {
			return 0, 0, fmt.Errorf("want spot=<price>,dedicated=<price> or one price, got %q", v)
		}
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "spot", "lowpriority":
			spot = f
		case "dedicated":
			dedicated = f
		default:
			return 0, 0, fmt.Errorf("unknown price %q (want spot or dedicated)", k)
		}
	}
	return spot, dedicated, nil
}
