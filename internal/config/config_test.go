package config

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func localSettings() map[string]string {
	return map[string]string{
		"ServiceBusConnection":  "Endpoint=sb://127.0.0.1:5672;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;",
		"DataStorage":           "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=" + devKey + ";BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;",
		"FFPIPE_BATCH_ENDPOINT": "http://127.0.0.1:8090",
		"FFPIPE_BATCH_TOKEN":    "ffpipe-local-batch-token",
	}
}

func TestLoadDefaults(t *testing.T) {
	c, err := Load(FromMap(localSettings()))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"pool", c.BatchPool, "ffmpeg"},
		{"job", c.BatchJob, "ffpipe"},
		{"queue", c.Queue, "transcode"},
		{"input", c.InputContainer, "input"},
		{"quarantine", c.QuarantineContainer, "quarantine"},
		{"suffixes", strings.Join(c.AllowedSuffixes, ","), ".mp4"},
		{"max bytes", c.MaxInputBytes, int64(4 << 30)},
		{"wallclock", c.TaskMaxWallClock, 30 * time.Minute},
		{"retries", c.TaskMaxRetries, 2},
		{"sas", c.SASExpiry, 2 * time.Hour},
		{"sweep max", c.SweepMaxTasks, 500},
		{"sweep parallelism", c.SweepParallelism, 16},
		{"reconcile", c.ReconcileAfter, 15 * time.Minute},
		{"queue lock", c.QueueLockDuration, 5 * time.Minute},
		{"template", c.OutputTemplate, "{dir}/{stem}.{ext}"},
		{"account", c.StorageAccount(), "devstoreaccount1"},
		{"local", c.Local(), true},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s: got %v, want %v", ch.name, ch.got, ch.want)
		}
	}
}

func TestLoadOverrides(t *testing.T) {
	m := localSettings()
	m["FFPIPE_ALLOWED_SUFFIXES"] = ".MP4, .mov ,"
	m["FFPIPE_QUARANTINE_CONTAINER"] = ""
	m["FFPIPE_TASK_MAX_WALLCLOCK"] = "PT1H30M"
	m["FFPIPE_SAS_EXPIRY"] = "P1D"
	c, err := Load(FromMap(m))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(c.AllowedSuffixes, ","), ".mp4,.mov"; got != want {
		t.Errorf("suffixes: got %q, want %q", got, want)
	}
	if c.QuarantineContainer != "" {
		t.Errorf("quarantine: got %q, want empty (explicitly disabled)", c.QuarantineContainer)
	}
	if got, want := c.TaskMaxWallClock, 90*time.Minute; got != want {
		t.Errorf("wallclock: got %v, want %v", got, want)
	}
	if got, want := c.SASExpiry, 24*time.Hour; got != want {
		t.Errorf("sas: got %v, want %v", got, want)
	}
}

func TestLoadAndValidateErrorsNameTheSetting(t *testing.T) {
	tests := []struct {
		name    string
		change  func(m map[string]string)
		wantErr string
	}{
		{"bad size", func(m map[string]string) { m["FFPIPE_MAX_INPUT_BYTES"] = "lots" }, "FFPIPE_MAX_INPUT_BYTES"},
		{"bad retries", func(m map[string]string) { m["FFPIPE_TASK_MAX_RETRIES"] = "-1" }, "FFPIPE_TASK_MAX_RETRIES"},
		{"bad duration", func(m map[string]string) { m["FFPIPE_RECONCILE_AFTER"] = "soon" }, "FFPIPE_RECONCILE_AFTER"},
		{"bad schedule", func(m map[string]string) { m["SweepSchedule"] = "* * * * *" }, "SweepSchedule"},
		{"queue lock too short", func(m map[string]string) { m["FFPIPE_QUEUE_LOCK_DURATION"] = "1s" }, "FFPIPE_QUEUE_LOCK_DURATION"},
		{"bad presets", func(m map[string]string) { m["FFPIPE_PRESETS"] = "{" }, "FFPIPE_PRESETS"},
		{"bad log format", func(m map[string]string) { m["FFPIPE_LOG_FORMAT"] = "xml" }, "FFPIPE_LOG_FORMAT"},
		{"no service bus", func(m map[string]string) { delete(m, "ServiceBusConnection") }, "ServiceBusConnection"},
		{"no storage", func(m map[string]string) { delete(m, "DataStorage") }, "DataStorage"},
		{"no batch", func(m map[string]string) { delete(m, "FFPIPE_BATCH_ENDPOINT") }, "FFPIPE_BATCH_ENDPOINT"},
		{"bad container", func(m map[string]string) { m["FFPIPE_OUTPUT_CONTAINER"] = "Out_Put" }, "FFPIPE_OUTPUT_CONTAINER"},
		{"same container", func(m map[string]string) { m["FFPIPE_OUTPUT_CONTAINER"] = "input" }, "FFPIPE_INPUT_CONTAINER and FFPIPE_OUTPUT_CONTAINER"},
		{"sas shorter than task", func(m map[string]string) { m["FFPIPE_SAS_EXPIRY"] = "10m" }, "FFPIPE_SAS_EXPIRY"},
		{"bad blob uri", func(m map[string]string) { delete(m, "DataStorage"); m["DataStorage__blobServiceUri"] = "nope" }, "DataStorage__blobServiceUri"},
		{"bad connection string", func(m map[string]string) { m["DataStorage"] = "AccountName=x" }, "DataStorage"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := localSettings()
			tt.change(m)
			c, err := Load(FromMap(m))
			if err == nil {
				err = c.Validate()
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got error %v, want one naming %q", err, tt.wantErr)
			}
		})
	}
}

func TestAzureSettings(t *testing.T) {
	c, err := Load(FromMap(map[string]string{
		"ServiceBusConnection__fullyQualifiedNamespace": "ffpipe.servicebus.windows.net",
		"DataStorage__blobServiceUri":                   "https://ffpipedata.blob.core.windows.net/",
		"FFPIPE_BATCH_ENDPOINT":                         "https://ffpipe.westeurope.batch.azure.com",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if got, want := c.StorageAccount(), "ffpipedata"; got != want {
		t.Errorf("account: got %q, want %q", got, want)
	}
	if c.Local() {
		t.Errorf("Local: got true, want false")
	}
}

func TestSettingsTableIsComplete(t *testing.T) {
	// Every setting the team contract names must be in the table.
	want := []string{"ServiceBusConnection", "ServiceBusConnection__fullyQualifiedNamespace", "DataStorage",
		"DataStorage__blobServiceUri", "AZURE_CLIENT_ID", "FFPIPE_BATCH_ENDPOINT", "FFPIPE_BATCH_TOKEN",
		"FFPIPE_BATCH_POOL", "FFPIPE_BATCH_JOB", "FFPIPE_QUEUE", "FFPIPE_QUEUE_LOCK_DURATION", "FFPIPE_EVENTS_TOPIC", "FFPIPE_INPUT_CONTAINER", "FFPIPE_OUTPUT_CONTAINER",
		"FFPIPE_STATUS_CONTAINER", "FFPIPE_INDEX_CONTAINER", "FFPIPE_RECORD_RETENTION", "FFPIPE_LOGS_CONTAINER", "FFPIPE_QUARANTINE_CONTAINER", "FFPIPE_ALLOWED_SUFFIXES",
		"FFPIPE_MAX_INPUT_BYTES", "FFPIPE_DEFAULT_PRESET", "FFPIPE_OUTPUT_TEMPLATE", "FFPIPE_PRESETS",
		"FFPIPE_PROFILES", "FFPIPE_ROUTES", "FFPIPE_PROFILE_METADATA", "FFPIPE_TASK_MAX_SLOTS",
		"FFPIPE_TASK_MAX_WALLCLOCK", "FFPIPE_TASK_MAX_RETRIES", "FFPIPE_SAS_EXPIRY", "FFPIPE_NODE_IDENTITY",
		"FFPIPE_SWEEP_MAX_TASKS", "FFPIPE_SWEEP_PARALLELISM", "FFPIPE_SWEEP_BUDGET", "FFPIPE_RECONCILE_AFTER", "SweepSchedule", "FFPIPE_NODE_PRICE_PER_HOUR", "FFPIPE_DAILY_BUDGET", "FFPIPE_LOG_FORMAT", "FFPIPE_LOG_LEVEL"}
	have := map[string]Setting{}
	for _, s := range Settings() {
		if _, dup := have[s.Name]; dup {
			t.Errorf("setting %s listed twice", s.Name)
		}
		if s.Doc == "" {
			t.Errorf("setting %s has no doc", s.Name)
		}
		have[s.Name] = s
	}
	for _, n := range want {
		if _, ok := have[n]; !ok {
			t.Errorf("setting %s missing from Settings()", n)
		}
	}
	if len(have) != len(want) {
		t.Errorf("got %d settings, want %d", len(have), len(want))
	}
	// Load must read exactly the table's names.
	var read []string
	_, _ = Load(func(k string) (string, bool) { read = append(read, k); return "", false })
	if len(read) != len(have) {
		t.Errorf("Load read %d names, want %d", len(read), len(have))
	}
	for _, k := range read {
		if _, ok := have[k]; !ok {
			t.Errorf("Load read %s, which is not in Settings()", k)
		}
	}
}

func TestAccountFromBlobURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://acct.blob.core.windows.net", "acct"},
		{"https://acct.blob.core.windows.net/input/a.mp4", "acct"},
		{"http://127.0.0.1:10000/devstoreaccount1", "devstoreaccount1"},
		{"http://127.0.0.1:10000/devstoreaccount1/input/a.mp4", "devstoreaccount1"},
		{"http://localhost:10000/devstoreaccount1/input", "devstoreaccount1"},
		{"not a url", ""},
	}
	for _, tt := range tests {
		if got := AccountFromBlobURL(tt.in); got != tt.want {
			t.Errorf("AccountFromBlobURL(%q): got %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"30m", 30 * time.Minute, true},
		{"PT30M", 30 * time.Minute, true},
		{"PT1H30M15S", time.Hour + 30*time.Minute + 15*time.Second, true},
		{"P1DT1H", 25 * time.Hour, true},
		{"pt0.5s", 500 * time.Millisecond, true},
		{"P", 0, false},
		{"PT", 0, false},
		{"P1H", 0, false},
		{"PT1D", 0, false},
		{"PT5", 0, false},
		{"PTM", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseDuration(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseDuration(%q): got %v, %v; want %v, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestLoggerRedacts(t *testing.T) {
	var buf bytes.Buffer
	log := NewLogger(Config{LogFormat: "json", LogLevel: "info"}, &buf)
	log = log.With("conn", "AccountName=a;AccountKey=topsecret1;")
	log.Info("send failed https://x/y?sig=topsecret2", "err", errString("Bearer topsecret3"), "url", "https://x/y?sp=r&sig=topsecret4")
	out := buf.String()
	for _, s := range []string{"topsecret1", "topsecret2", "topsecret3", "topsecret4"} {
		if strings.Contains(out, s) {
			t.Errorf("log line leaks %s: %s", s, out)
		}
	}
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatalf("want JSON log line, got %q: %v", out, err)
	}
	buf.Reset()
	NewLogger(Config{LogFormat: "text", LogLevel: "warn"}, &buf).Info("quiet")
	if buf.Len() != 0 {
		t.Errorf("info logged at warn level: %q", buf.String())
	}
}

type errString string

func (e errString) Error() string { return string(e) }

func TestParseStorageConnectionString(t *testing.T) {
	tests := []struct {
		in            string
		account, blob string
		ok            bool
	}{
		{"UseDevelopmentStorage=true", "devstoreaccount1", "http://127.0.0.1:10000/devstoreaccount1", true},
		{"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5;EndpointSuffix=core.windows.net", "acct", "https://acct.blob.core.windows.net", true},
		{"AccountName=acct;AccountKey=a2V5", "acct", "https://acct.blob.core.windows.net", true},
		{"DefaultEndpointsProtocol=http;AccountKey=a2V5;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1/;", "devstoreaccount1", "http://127.0.0.1:10000/devstoreaccount1", true},
		{"AccountName=acct", "", "", false},
		{"BlobEndpoint=http://127.0.0.1:1;AccountKey=k", "", "", false},
		{"nonsense", "", "", false},
		{"", "", "", false},
	}
	for _, tt := range tests {
		got, err := ParseStorageConnectionString(tt.in)
		if (err == nil) != tt.ok || got.AccountName != tt.account || got.BlobEndpoint != tt.blob {
			t.Errorf("ParseStorageConnectionString(%q): got %+v, %v; want %s %s ok=%v", tt.in, got, err, tt.account, tt.blob, tt.ok)
		}
		if err != nil && strings.Contains(err.Error(), "a2V5") {
			t.Errorf("error leaks the key: %v", err)
		}
	}
}

func FuzzParseStorageConnectionString(f *testing.F) {
	f.Add("DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5;EndpointSuffix=core.windows.net")
	f.Add("UseDevelopmentStorage=true")
	f.Add("BlobEndpoint=http://127.0.0.1:1/x;AccountKey=k")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseStorageConnectionString(s)
		if err == nil && (c.AccountName == "" || c.AccountKey == "" || c.BlobEndpoint == "") {
			t.Fatalf("ParseStorageConnectionString(%q) = %+v without error", s, c)
		}
	})
}

func TestRoutes(t *testing.T) {
	tests := []struct {
		routes string
		blob   string
		want   string
		err    bool
	}{
		{routes: "", blob: "a.mp4", want: ""},
		{routes: `{"videos/": "web", "videos/hls/": "hls", "pod": "podcast"}`, blob: "videos/hls/a.mp4", want: "hls"},
		{routes: `{"videos/": "web", "videos/hls/": "hls"}`, blob: "videos/a.mp4", want: "web"},
		{routes: `{"videos/": "web"}`, blob: "Videos/a.mp4", want: ""},
		{routes: `{"pod": "podcast"}`, blob: "podcasts/x.mp4", want: "podcast"},
		{routes: `{"": "web"}`, err: true},
		{routes: `["web"]`, err: true},
		{routes: `{"a/": 1}`, err: true},
	}
	for _, tt := range tests {
		m := localSettings()
		m["FFPIPE_ROUTES"] = tt.routes
		c, err := Load(FromMap(m))
		if tt.err {
			if err == nil {
				t.Errorf("Load(routes %s) = nil error, want one", tt.routes)
			}
			continue
		}
		if err != nil {
			t.Fatalf("Load(routes %s): %v", tt.routes, err)
		}
		if got := c.Route(tt.blob); got != tt.want {
			t.Errorf("routes %s: Route(%q) = %q, want %q", tt.routes, tt.blob, got, tt.want)
		}
	}
}

func TestParsePrices(t *testing.T) {
	for _, tc := range []struct {
		in        string
		spot, ded float64
		wantErr   bool
	}{
		{"", 0, 0, false},
		{"0.1", 0.1, 0.1, false},
		{"spot=0.02, dedicated=0.1", 0.02, 0.1, false},
		{"dedicated=0.3", 0, 0.3, false},
		{"spot=x", 0, 0, true},
		{"cheap=1", 0, 0, true},
		{"-1", 0, 0, true},
	} {
		spot, ded, err := ParsePrices(tc.in)
		if (err != nil) != tc.wantErr || spot != tc.spot || ded != tc.ded {
			t.Errorf("ParsePrices(%q): got %v, %v, %v; want %v, %v, error %v", tc.in, spot, ded, err, tc.spot, tc.ded, tc.wantErr)
		}
	}
}

func TestDailyBudgetNeedsAPrice(t *testing.T) {
	m := map[string]string{"DataStorage": "UseDevelopmentStorage=true", "ServiceBusConnection": "Endpoint=sb://127.0.0.1;SharedAccessKeyName=k;SharedAccessKey=v;UseDevelopmentEmulator=true",
		"FFPIPE_BATCH_ENDPOINT": "http://127.0.0.1:1", "FFPIPE_DAILY_BUDGET": "5"}
	c, err := Load(FromMap(m))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "FFPIPE_DAILY_BUDGET") {
		t.Errorf("budget without a price: got %v, want an error naming FFPIPE_DAILY_BUDGET", err)
	}
	m["FFPIPE_NODE_PRICE_PER_HOUR"] = "spot=0.02,dedicated=0.1"
	if c, err = Load(FromMap(m)); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil || c.DailyBudget != 5 || c.NodePriceDedicated != 0.1 {
		t.Errorf("budget with prices: got %v (%+v)", err, c)
	}
}
