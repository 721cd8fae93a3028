// Package infra holds ffpipe's Azure deployment: Bicep templates and
// deploy.sh. The Bicep compiler cannot run in this project's environment, so
// these tests check what can be checked from the source: the templates are
// well-formed and internally consistent (module parameters and outputs, API
// versions that were reviewed), the Function App sets exactly the settings
// internal/config reads, names agree with the code's defaults and
// local.settings.example.json, every service is Entra ID-only, role
// assignments use known least-privilege built-in roles, no key or SAS appears
// anywhere, and deploy.sh parses.
package infra

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ffpipe/ffpipe/internal/batch"
	"github.com/ffpipe/ffpipe/internal/config"
)

// hostSettings are app settings read by the Functions host itself, not by
// internal/config; the Function App may set them.
var hostSettings = map[string]string{
	"AzureWebJobsStorage__accountName":          "host storage through the managed identity",
	"AzureWebJobsStorage__credential":           "host storage through the managed identity",
	"AzureWebJobsStorage__clientId":             "host storage through the user-assigned identity",
	"ServiceBusConnection__credential":          "Service Bus bindings through the managed identity",
	"ServiceBusConnection__clientId":            "Service Bus bindings through the user-assigned identity",
	"APPLICATIONINSIGHTS_CONNECTION_STRING":     "telemetry endpoint (not a secret with local auth off)",
	"APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "telemetry with Entra ID",
	"FUNCTIONS_EXTENSION_VERSION":               "host version (not used on Flex Consumption)",
}

// aheadOfCode are app settings main.bicep sets before internal/config reads
// them, with the code default they will have; once config reads one, the
// test fails until it is removed from here (and then the usual checks apply).
var aheadOfCode = map[string]string{}

// azureDiffers are settings whose Azure value deliberately differs from the
// code default (the default suits the local stack).
var azureDiffers = map[string]bool{
	"SweepSchedule": true, // every 10 s locally, once a minute in Azure
}

// sharedNames are the names that must agree between Bicep, the code's
// defaults and local.settings.example.json: setting → main.bicep param.
var sharedNames = []struct{ setting, param string }{
	{"FFPIPE_INPUT_CONTAINER", "inputContainerName"},
	{"FFPIPE_OUTPUT_CONTAINER", "outputContainerName"},
	{"FFPIPE_STATUS_CONTAINER", "statusContainerName"},
	{"FFPIPE_INDEX_CONTAINER", "indexContainerName"},
	{"FFPIPE_LOGS_CONTAINER", "logsContainerName"},
	{"FFPIPE_QUARANTINE_CONTAINER", "quarantineContainerName"},
	{"FFPIPE_QUEUE", "queueName"},
	{"FFPIPE_BATCH_POOL", "batchPoolId"},
	{"FFPIPE_BATCH_JOB", "batchJobId"},
}

// builtinRoles are the built-in role definitions the templates may assign,
// by GUID (from Azure's built-in roles list). Broad roles (Owner,
// Contributor, Storage Account Contributor, Service Bus Data Owner, Batch
// Account Contributor) are deliberately absent.
var builtinRoles = map[string]string{
	"b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
	"ba92f5b4-2d11-453d-a403-e96b0029c9fe": "Storage Blob Data Contributor",
	"2a2b9908-6ea1-4ae2-8e65-a410df84e7d1": "Storage Blob Data Reader",
	"db58b8e5-c6ad-4a2a-8342-4190687cbf4a": "Storage Blob Delegator",
	"69a216fc-b8fb-44d8-bc22-1f3c2cd27a39": "Azure Service Bus Data Sender",
	"4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0": "Azure Service Bus Data Receiver",
	"48e5e92e-a480-4e71-aa9c-2778f4c13781": "Azure Batch Job Submitter",
	"3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
}

// reviewedAPIVersions are the resource types and API versions whose
// property names were checked against the ARM template reference; a new
// type or version must be reviewed and added here.
var reviewedAPIVersions = map[string]string{
	"Microsoft.ManagedIdentity/userAssignedIdentities":          "2023-01-31",
	"Microsoft.OperationalInsights/workspaces":                  "2023-09-01",
	"Microsoft.Insights/components":                             "2020-02-02",
	"Microsoft.Storage/storageAccounts":                         "2023-05-01",
	"Microsoft.Storage/storageAccounts/blobServices":            "2023-05-01",
	"Microsoft.Storage/storageAccounts/blobServices/containers": "2023-05-01",
	"Microsoft.Storage/storageAccounts/managementPolicies":      "2023-05-01",
	"Microsoft.ServiceBus/namespaces":                           "2024-01-01",
	"Microsoft.ServiceBus/namespaces/queues":                    "2024-01-01",
	"Microsoft.ServiceBus/namespaces/topics":                    "2024-01-01",
	"Microsoft.ServiceBus/namespaces/topics/subscriptions":      "2024-01-01",
	"Microsoft.Batch/batchAccounts":                             "2024-07-01",
	"Microsoft.Batch/batchAccounts/pools":                       "2024-07-01",
	"Microsoft.Web/serverfarms":                                 "2024-04-01",
	"Microsoft.Web/sites":                                       "2024-04-01",
	"Microsoft.Web/sites/basicPublishingCredentialsPolicies":    "2024-04-01",
	"Microsoft.Authorization/roleAssignments":                   "2022-04-01",
	"Microsoft.EventGrid/systemTopics":                          "2022-06-15",
	"Microsoft.EventGrid/systemTopics/eventSubscriptions":       "2022-06-15",
}

// forbidden are fragments of keys, connection strings and SAS tokens, and
// the ARM functions that read keys. None may appear in infra/.
var forbidden = []string{
	"sig=",
	"sharedaccesskey",
	"accountkey=",
	"defaultendpointsprotocol",
	"instrumentationkey=",
	"listkeys(",
	"listconnectionstrings(",
	"listsecrets(",
	"listaccountsas(",
	"listservicesas(",
	"@secure(",
	"storagekeys",
}

func loadAll(t *testing.T) map[string]*bicepFile {
	t.Helper()
	files := map[string]*bicepFile{}
	paths, err := filepath.Glob("*.bicep")
	if err != nil {
		t.Fatal(err)
	}
	mods, err := filepath.Glob("modules/*.bicep")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range append(paths, mods...) {
		f, err := parseBicep(p)
		if err != nil {
			t.Fatalf("parse: %v", err)
		}
		files[filepath.ToSlash(p)] = f
	}
	for _, want := range []string{"main.bicep", "eventgrid.bicep"} {
		if files[want] == nil {
			t.Fatalf("infra/%s is missing", want)
		}
	}
	return files
}

func settingsByName() map[string]config.Setting {
	m := map[string]config.Setting{}
	for _, s := range config.Settings() {
		m[s.Name] = s
	}
	return m
}

// appSettings returns main.bicep's appSettings object: name → value range.
func appSettings(t *testing.T, main *bicepFile) map[string][2]int {
	t.Helper()
	d, ok := main.find("var", "appSettings")
	if !ok || d.body < 0 || d.body != d.value[0] {
		t.Fatal("main.bicep: want var appSettings = { … }")
	}
	ps, err := main.props(d.body)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][2]int{}
	for _, p := range ps {
		if _, dup := out[p.key]; dup {
			t.Errorf("main.bicep: app setting %s is set twice", p.key)
		}
		out[p.key] = p.value
	}
	return out
}

func TestAppSettingsMatchConfig(t *testing.T) {
	main := loadAll(t)["main.bicep"]
	set := appSettings(t, main)
	read := settingsByName()

	for _, s := range config.Settings() {
		_, isSet := set[s.Name]
		switch {
		case s.Secret && isSet:
			t.Errorf("app setting %s is set in Azure, want it absent: it is a local-only secret (connection string or token)", s.Name)
		case !s.Secret && !isSet:
			t.Errorf("app setting %s is read by internal/config but not set in main.bicep", s.Name)
		}
	}
	for name := range set {
		if _, ok := read[name]; ok {
			continue
		}
		if _, ok := hostSettings[name]; ok {
			continue
		}
		if _, ok := aheadOfCode[name]; ok {
			continue
		}
		t.Errorf("app setting %s is set in main.bicep but nothing reads it (not in internal/config, not a host setting)", name)
	}
	for name, def := range aheadOfCode {
		if s, ok := read[name]; ok {
			// Reported, not failed: the helper adding the setting to
			// internal/config need not edit this file.
			t.Logf("internal/config now reads %s: remove it from aheadOfCode", name)
			if s.Default != def {
				t.Errorf("internal/config's default for %s is %q, main.bicep's %q", name, s.Default, def)
			}
		}
		if _, ok := set[name]; !ok {
			t.Errorf("app setting %s is listed in aheadOfCode but not set in main.bicep", name)
		}
	}
	if got := main.text(set["FFPIPE_EVENTS_TOPIC"]); got != "serviceBus . outputs . eventsTopicName" {
		t.Errorf("main.bicep FFPIPE_EVENTS_TOPIC = %s, want serviceBus.outputs.eventsTopicName", got)
	}
	sb := loadAll(t)["modules/servicebus.bicep"]
	for f, name := range map[*bicepFile]string{main: "main.bicep", sb: "modules/servicebus.bicep"} {
		if got, _ := f.paramDefault("eventsTopicName"); got != read["FFPIPE_EVENTS_TOPIC"].Default {
			t.Errorf("%s eventsTopicName = %q, want %q (internal/config's default)", name, got, read["FFPIPE_EVENTS_TOPIC"].Default)
		}
		if got, _ := f.paramDefault("eventsSubscriptionName"); got != "all" {
			t.Errorf("%s eventsSubscriptionName = %q, want all (the local stack's subscription)", name, got)
		}
	}
	if got := moduleParamText(t, main, "serviceBus", "eventsTopicName"); got != "eventsTopicName" {
		t.Errorf("main.bicep: module serviceBus eventsTopicName = %s, want eventsTopicName", got)
	}
	// The Function App must take its settings from that object, verbatim.
	fa, ok := main.find("module", "functionApp")
	if !ok {
		t.Fatal("main.bicep: module functionApp is missing")
	}
	r, ok := main.lookup(fa.body, "params.appSettings")
	if got, _ := main.identValue(r); !ok || got != "appSettings" {
		t.Errorf("module functionApp params.appSettings = %q, want appSettings", main.text(r))
	}
}

func TestAppSettingValuesMatchDefaults(t *testing.T) {
	main := loadAll(t)["main.bicep"]
	set := appSettings(t, main)
	compared := 0
	for name, r := range set {
		s, ok := settingsByName()[name]
		if !ok {
			continue
		}
		v, isLit := main.stringValue(r)
		if param, isIdent := main.identValue(r); isIdent {
			if d, ok := main.find("param", param); ok {
				if !d.hasValue {
					continue // required parameter: no default to compare
				}
				v, isLit = main.stringValue(d.value)
			}
		}
		if !isLit {
			continue // computed from resources (endpoints, identities)
		}
		if azureDiffers[name] {
			if len(strings.Fields(v)) != 6 {
				t.Errorf("%s = %q in Azure, want a 6-field NCRONTAB expression", name, v)
			}
			continue
		}
		compared++
		if v != s.Default {
			t.Errorf("%s = %q in main.bicep, want the code default %q", name, v, s.Default)
		}
	}
	if compared < 15 {
		t.Errorf("compared %d app settings with code defaults, want the literal FFPIPE_* settings (at least 15)", compared)
	}
}

func TestNamesAgree(t *testing.T) {
	files := loadAll(t)
	main := files["main.bicep"]
	set := appSettings(t, main)
	read := settingsByName()

	var local map[string]string
	raw, err := os.ReadFile("../local.settings.example.json")
	switch {
	case err != nil:
		t.Fatal(err)
	default:
		var doc struct{ Values map[string]string }
		if err := json.Unmarshal(raw, &doc); err != nil {
			t.Fatalf("local.settings.example.json: %v", err)
		}
		local = doc.Values
	}

	for _, n := range sharedNames {
		s, ok := read[n.setting]
		if !ok {
			t.Errorf("internal/config no longer reads %s", n.setting)
			continue
		}
		got, ok := main.paramDefault(n.param)
		if !ok {
			t.Errorf("main.bicep: param %s has no string default", n.param)
			continue
		}
		if got != s.Default {
			t.Errorf("main.bicep param %s = %q, want the code default of %s, %q", n.param, got, n.setting, s.Default)
		}
		if id, _ := main.identValue(set[n.setting]); id != n.param {
			t.Errorf("main.bicep app setting %s = %q, want param %s", n.setting, main.text(set[n.setting]), n.param)
		}
		if v, ok := local[n.setting]; ok && v != s.Default {
			t.Errorf("local.settings.example.json %s = %q, want the code default %q", n.setting, v, s.Default)
		}
	}

	for param, want := range map[string]string{"batchPoolId": batch.DefaultPoolID, "batchJobId": batch.DefaultJobID} {
		if got, _ := main.paramDefault(param); got != want {
			t.Errorf("main.bicep param %s = %q, want internal/batch's default %q", param, got, want)
		}
	}

	// main.bicep's pool parameters override the batch module's defaults,
	// which the pool test compares with internal/batch.
	batchMod := files["modules/batch.bicep"]
	for mainParam, modParam := range map[string]string{"poolVmSize": "vmSize", "taskSlotsPerNode": "taskSlotsPerNode", "poolMaxNodes": "maxNodes", "poolDedicatedNodes": "dedicatedNodes"} {
		md, ok1 := main.find("param", mainParam)
		bd, ok2 := batchMod.find("param", modParam)
		if !ok1 || !ok2 || !md.hasValue || !bd.hasValue {
			t.Errorf("main.bicep %s / modules/batch.bicep %s: want both declared with defaults", mainParam, modParam)
			continue
		}
		if got, want := main.text(md.value), batchMod.text(bd.value); got != want {
			t.Errorf("main.bicep %s = %s, want the batch module's default %s", mainParam, got, want)
		}
		if got := moduleParamText(t, main, "batch", modParam); got != mainParam {
			t.Errorf("main.bicep: module batch %s = %s, want %s", modParam, got, mainParam)
		}
	}

	// The resources are named from the same params.
	moduleParam := func(module, key string) string {
		t.Helper()
		return moduleParamText(t, main, module, key)
	}
	containers := moduleParam("dataStorage", "containers")
	for _, p := range []string{"inputContainerName", "outputContainerName", "statusContainerName", "logsContainerName", "quarantineContainerName", "deadLetterContainerName"} {
		if !slices.Contains(strings.Fields(strings.Trim(containers, "[]")), p) {
			t.Errorf("main.bicep: module dataStorage containers = %s, want it to list %s", containers, p)
		}
	}
	if got := moduleParam("serviceBus", "queueName"); got != "queueName" {
		t.Errorf("main.bicep: module serviceBus queueName = %s, want queueName", got)
	}
	if got := moduleParam("batch", "poolId"); got != "batchPoolId" {
		t.Errorf("main.bicep: module batch poolId = %s, want batchPoolId", got)
	}
	named := []struct{ file, typ, param string }{
		{"modules/servicebus.bicep", "Microsoft.ServiceBus/namespaces/queues", "queueName"},
		{"modules/batch.bicep", "Microsoft.Batch/batchAccounts/pools", "poolId"},
		{"modules/storage.bicep", "Microsoft.Storage/storageAccounts/blobServices/containers", "c"},
	}
	for _, n := range named {
		f := files[n.file]
		rs := f.resources(n.typ)
		if len(rs) != 1 {
			t.Errorf("%s: got %d %s resources, want 1", n.file, len(rs), n.typ)
			continue
		}
		r, _ := f.lookup(rs[0].body, "name")
		if got, _ := f.identValue(r); got != n.param {
			t.Errorf("%s: %s name = %q, want %s", n.file, n.typ, f.text(r), n.param)
		}
	}

	// Event Grid watches the same input container and suffix.
	eg := files["eventgrid.bicep"]
	if got, _ := eg.paramDefault("inputContainerName"); got != read["FFPIPE_INPUT_CONTAINER"].Default {
		t.Errorf("eventgrid.bicep inputContainerName = %q, want %q", got, read["FFPIPE_INPUT_CONTAINER"].Default)
	}
	if got, want := eg.paramStrings("subjectSuffixes"), strings.Split(read["FFPIPE_ALLOWED_SUFFIXES"].Default, ","); !slices.Equal(got, want) {
		t.Errorf("eventgrid.bicep subjectSuffixes = %q, want the code's allowed suffixes %q", got, want)
	}
	mainDL, _ := main.paramDefault("deadLetterContainerName")
	if got, _ := eg.paramDefault("deadLetterContainerName"); got != mainDL || got == "" {
		t.Errorf("eventgrid.bicep deadLetterContainerName = %q, want main.bicep's %q", got, mainDL)
	}
	fn, _ := eg.paramDefault("functionName")
	if fn != "OnBlobCreated" {
		t.Errorf("eventgrid.bicep functionName = %q, want OnBlobCreated", fn)
	}
	if raw, err := os.ReadFile(filepath.Join("..", "functions", fn, "function.json")); err == nil {
		var fj struct{ Bindings []struct{ Type string } }
		if err := json.Unmarshal(raw, &fj); err != nil {
			t.Fatalf("functions/%s/function.json: %v", fn, err)
		}
		if len(fj.Bindings) == 0 || !strings.EqualFold(fj.Bindings[0].Type, "eventGridTrigger") {
			t.Errorf("functions/%s/function.json: want an eventGridTrigger, got %+v", fn, fj.Bindings)
		}
	} else {
		t.Logf("functions/%s/function.json not found: not checking its trigger", fn)
	}
}

// moduleParamText returns the source of the value f passes to a module param.
func moduleParamText(t *testing.T, f *bicepFile, module, key string) string {
	t.Helper()
	d, ok := f.find("module", module)
	if !ok {
		t.Fatalf("%s: module %s is missing", f.path, module)
	}
	r, ok := f.lookup(d.body, "params."+key)
	if !ok {
		t.Fatalf("%s: module %s has no param %s", f.path, module, key)
	}
	return f.text(r)
}

// TestFunctionBindingsUseInfraSettings reads every functions/*/function.json
// and host.json: each binding connection must have identity-based settings
// in main.bicep, each %SETTING% it names must be set, and the Service Bus
// batch wait must fit in the queue's lock.
func TestFunctionBindingsUseInfraSettings(t *testing.T) {
	files := loadAll(t)
	set := appSettings(t, files["main.bicep"])
	lock, _ := files["modules/servicebus.bicep"].paramDefault("lockDuration")
	n, problems, err := bindingProblems(set, lock, "..")
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Skip("no functions/*/function.json yet")
	}
	for _, p := range problems {
		t.Error(p)
	}
}

func TestBindingProblems(t *testing.T) {
	set := map[string][2]int{
		"ServiceBusConnection__fullyQualifiedNamespace": {}, "ServiceBusConnection__credential": {}, "ServiceBusConnection__clientId": {},
		"FFPIPE_QUEUE": {}, "SweepSchedule": {},
	}
	tests := []struct {
		root      string
		functions int
		problems  []string // substrings, one per expected problem
	}{
		{"testdata/bindings/good", 2, nil},
		{"testdata/bindings/bad", 2, []string{"FFPIPE_MISSING", "connection \"DataStorage\" has no identity-based settings", "maxBatchWaitTime 00:03:00"}},
	}
	for _, tt := range tests {
		t.Run(tt.root, func(t *testing.T) {
			n, problems, err := bindingProblems(set, "PT5M", tt.root)
			if err != nil {
				t.Fatal(err)
			}
			if n != tt.functions {
				t.Errorf("read %d function.json files, want %d", n, tt.functions)
			}
			if len(problems) != len(tt.problems) {
				t.Fatalf("got %d problems %q, want %d", len(problems), problems, len(tt.problems))
			}
			for i, want := range tt.problems {
				if !strings.Contains(problems[i], want) {
					t.Errorf("problem %d = %q, want it to mention %q", i, problems[i], want)
				}
			}
		})
	}
}

// bindingProblems checks root/functions/*/function.json and
// root/functions/host.json or root/host.json against the app settings set
// in Azure and the queue's lock duration. It returns how many function.json
// files it read and the problems, in a stable order.
func bindingProblems(set map[string][2]int, lockISO, root string) (int, []string, error) {
	paths, err := filepath.Glob(filepath.Join(root, "functions", "*", "function.json"))
	if err != nil {
		return 0, nil, err
	}
	sort.Strings(paths)
	percent := regexp.MustCompile(`%([A-Za-z0-9_.]+)%`)
	var problems []string
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			return 0, nil, err
		}
		var fj struct{ Bindings []map[string]any }
		if err := json.Unmarshal(raw, &fj); err != nil {
			return 0, nil, fmt.Errorf("%s: %w", p, err)
		}
		for _, b := range fj.Bindings {
			keys := make([]string, 0, len(b))
			for k := range b {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				s, ok := b[k].(string)
				if !ok {
					continue
				}
				for _, m := range percent.FindAllStringSubmatch(s, -1) {
					if _, ok := set[m[1]]; !ok {
						problems = append(problems, fmt.Sprintf("%s: %s = %q names app setting %s, which main.bicep does not set", p, k, s, m[1]))
					}
				}
				if k != "connection" {
					continue
				}
				_, ns := set[s+"__fullyQualifiedNamespace"]
				_, blob := set[s+"__blobServiceUri"]
				_, uri := set[s+"__serviceUri"]
				if !ns && !blob && !uri {
					problems = append(problems, fmt.Sprintf("%s: connection %q has no identity-based settings (%s__fullyQualifiedNamespace or __blobServiceUri) in main.bicep", p, s, s))
					continue
				}
				for _, suffix := range []string{"__credential", "__clientId"} {
					if _, ok := set[s+suffix]; !ok {
						problems = append(problems, fmt.Sprintf("%s: connection %q: main.bicep sets no %s%s for the host's user-assigned identity", p, s, s, suffix))
					}
				}
			}
		}
	}
	for _, hp := range []string{filepath.Join(root, "functions", "host.json"), filepath.Join(root, "host.json")} {
		raw, err := os.ReadFile(hp)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, nil, err
		}
		var host struct {
			Extensions struct {
				ServiceBus struct {
					MaxBatchWaitTime string `json:"maxBatchWaitTime"`
				} `json:"serviceBus"`
			} `json:"extensions"`
		}
		if err := json.Unmarshal(raw, &host); err != nil {
			return 0, nil, fmt.Errorf("%s: %w", hp, err)
		}
		wait := host.Extensions.ServiceBus.MaxBatchWaitTime
		if wait == "" {
			continue
		}
		lock, err1 := config.ParseDuration(lockISO)
		w, err2 := parseTimeSpan(wait)
		if err := errors.Join(err1, err2); err != nil {
			problems = append(problems, fmt.Sprintf("%s: maxBatchWaitTime %q / lockDuration %q: %v", hp, wait, lockISO, err))
			continue
		}
		if w > lock/2 {
			problems = append(problems, fmt.Sprintf("%s: maxBatchWaitTime %s exceeds half the queue lock duration %s", hp, wait, lockISO))
		}
	}
	return len(paths), problems, nil
}

// parseTimeSpan reads a .NET TimeSpan "hh:mm:ss" as in host.json.
func parseTimeSpan(s string) (time.Duration, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return 0, fmt.Errorf("want hh:mm:ss, got %q", s)
	}
	h, err1 := strconv.Atoi(parts[0])
	m, err2 := strconv.Atoi(parts[1])
	sec, err3 := strconv.ParseFloat(parts[2], 64)
	if err := errors.Join(err1, err2, err3); err != nil {
		return 0, fmt.Errorf("want hh:mm:ss, got %q: %w", s, err)
	}
	return time.Duration(h)*time.Hour + time.Duration(m)*time.Minute + time.Duration(sec*float64(time.Second)), nil
}

func TestParametersExample(t *testing.T) {
	main := loadAll(t)["main.bicep"]
	raw, err := os.ReadFile("main.parameters.example.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Parameters map[string]struct {
			Value any `json:"value"`
		} `json:"parameters"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("main.parameters.example.json: %v", err)
	}
	if len(doc.Parameters) == 0 {
		t.Fatal("main.parameters.example.json has no parameters")
	}
	for name, p := range doc.Parameters {
		d, ok := main.find("param", name)
		if !ok {
			t.Errorf("main.parameters.example.json sets %s, which main.bicep does not declare", name)
			continue
		}
		if s, isString := p.Value.(string); isString && d.typ != "string" {
			t.Errorf("main.parameters.example.json %s = %q, but main.bicep declares it %s", name, s, d.typ)
		}
	}
	for _, n := range sharedNames {
		if p, ok := doc.Parameters[n.param]; ok && p.Value != settingsByName()[n.setting].Default {
			t.Errorf("main.parameters.example.json %s = %v, want %q", n.param, p.Value, settingsByName()[n.setting].Default)
		}
	}
}

// TestModulesWire checks what the Bicep compiler would: module paths exist,
// every param passed is declared, every required param is passed, and every
// <module>.outputs.<name> reference names a declared output.
func TestModulesWire(t *testing.T) {
	files := loadAll(t)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		f := files[name]
		modPath := map[string]string{}
		for _, m := range f.all("module") {
			target := filepath.ToSlash(filepath.Join(filepath.Dir(name), m.typ))
			mod := files[target]
			if mod == nil {
				t.Errorf("%s:%d: module %s: no file %s", name, m.line, m.name, target)
				continue
			}
			modPath[m.name] = target
			r, ok := f.lookup(m.body, "params")
			if !ok {
				t.Errorf("%s:%d: module %s has no params", name, m.line, m.name)
				continue
			}
			ps, err := f.props(r[0])
			if err != nil {
				t.Fatal(err)
			}
			passed := map[string]bool{}
			for _, p := range ps {
				passed[p.key] = true
				if _, ok := mod.find("param", p.key); !ok {
					t.Errorf("%s:%d: module %s passes %s, which %s does not declare", name, m.line, m.name, p.key, target)
				}
			}
			for _, p := range mod.all("param") {
				if !p.hasValue && !passed[p.name] {
					t.Errorf("%s:%d: module %s does not pass required param %s of %s", name, m.line, m.name, p.name, target)
				}
			}
		}
		for i := 0; i+4 < len(f.toks); i++ {
			a, dot1, out, dot2, o := f.toks[i], f.toks[i+1], f.toks[i+2], f.toks[i+3], f.toks[i+4]
			if a.kind != tIdent || dot1.text != "." || out.text != "outputs" || dot2.text != "." || o.kind != tIdent {
				continue
			}
			target, ok := modPath[a.text]
			if !ok {
				continue
			}
			if _, ok := files[target].find("output", o.text); !ok {
				t.Errorf("%s:%d: %s.outputs.%s: %s declares no output %s", name, a.line, a.text, o.text, target, o.text)
			}
		}
	}
}

func TestIdentifiersDeclared(t *testing.T) {
	for name, f := range loadAll(t) {
		for _, u := range f.undeclared() {
			t.Errorf("%s (in %s)", u, name)
		}
	}
	bad, err := parseBicepSource("typo.bicep", "param inputName string\nvar x = {\n  a: inputNme\n  b: [for (c, i) in range(0, 2): c + i]\n  d: cond ? inputName : 'x'\n  e: '${inputName}-${prefx}'\n}\n")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"typo.bicep:6: prefx is not declared", "typo.bicep:3: inputNme is not declared", "typo.bicep:5: cond is not declared"}
	if got := bad.undeclared(); !slices.Equal(got, want) {
		t.Errorf("undeclared() = %q, want %q", got, want)
	}
}

func TestAPIVersionsReviewed(t *testing.T) {
	files := loadAll(t)
	for name, f := range files {
		for _, r := range f.all("resource") {
			typ, version, ok := strings.Cut(r.typ, "@")
			if !ok {
				t.Errorf("%s:%d: resource %s has no API version", name, r.line, r.name)
				continue
			}
			want, known := reviewedAPIVersions[typ]
			switch {
			case !known:
				t.Errorf("%s:%d: resource type %s has not been reviewed (add it to reviewedAPIVersions after checking its properties)", name, r.line, typ)
			case version != want:
				t.Errorf("%s:%d: %s@%s, want the reviewed version %s", name, r.line, typ, version, want)
			}
		}
	}
}

// TestEntraIDOnly checks the settings that turn shared keys and local
// authentication off, and the security-relevant shape of each service.
func TestEntraIDOnly(t *testing.T) {
	files := loadAll(t)
	checks := []struct {
		file, typ, path, want string
	}{
		{"modules/storage.bicep", "Microsoft.Storage/storageAccounts", "properties.allowSharedKeyAccess", "false"},
		{"modules/storage.bicep", "Microsoft.Storage/storageAccounts", "properties.minimumTlsVersion", "'TLS1_2'"},
		{"modules/storage.bicep", "Microsoft.Storage/storageAccounts", "properties.allowBlobPublicAccess", "false"},
		{"modules/storage.bicep", "Microsoft.Storage/storageAccounts", "properties.supportsHttpsTrafficOnly", "true"},
		{"modules/servicebus.bicep", "Microsoft.ServiceBus/namespaces", "properties.disableLocalAuth", "true"},
		{"modules/servicebus.bicep", "Microsoft.ServiceBus/namespaces/queues", "properties.requiresDuplicateDetection", "true"},
		{"modules/servicebus.bicep", "Microsoft.ServiceBus/namespaces/queues", "properties.deadLetteringOnMessageExpiration", "true"},
		{"modules/servicebus.bicep", "Microsoft.ServiceBus/namespaces/queues", "properties.lockDuration", "lockDuration"},
		{"modules/servicebus.bicep", "Microsoft.ServiceBus/namespaces/queues", "properties.maxDeliveryCount", "maxDeliveryCount"},
		{"modules/servicebus.bicep", "Microsoft.ServiceBus/namespaces/queues", "properties.duplicateDetectionHistoryTimeWindow", "duplicateDetectionWindow"},
		{"modules/batch.bicep", "Microsoft.Batch/batchAccounts", "properties.allowedAuthenticationModes", "[ 'AAD' ]"},
		{"modules/batch.bicep", "Microsoft.Batch/batchAccounts", "properties.poolAllocationMode", "'BatchService'"},
		{"modules/batch.bicep", "Microsoft.Batch/batchAccounts/pools", "identity.type", "'UserAssigned'"},
		{"modules/batch.bicep", "Microsoft.Batch/batchAccounts/pools", "properties.targetNodeCommunicationMode", "'Simplified'"},
		{"modules/batch.bicep", "Microsoft.Batch/batchAccounts/pools", "properties.deploymentConfiguration.virtualMachineConfiguration.nodeAgentSkuId", "'batch.node.ubuntu 22.04'"},
		{"modules/batch.bicep", "Microsoft.Batch/batchAccounts/pools", "properties.deploymentConfiguration.virtualMachineConfiguration.imageReference.publisher", "'canonical'"},
		{"modules/batch.bicep", "Microsoft.Batch/batchAccounts/pools", "properties.deploymentConfiguration.virtualMachineConfiguration.imageReference.offer", "'0001-com-ubuntu-server-jammy'"},
		{"modules/batch.bicep", "Microsoft.Batch/batchAccounts/pools", "properties.deploymentConfiguration.virtualMachineConfiguration.imageReference.sku", "'22_04-lts'"},
		{"modules/batch.bicep", "Microsoft.Batch/batchAccounts/pools", "properties.taskSlotsPerNode", "taskSlotsPerNode"},
		{"modules/batch.bicep", "Microsoft.Batch/batchAccounts/pools", "properties.startTask.waitForSuccess", "true"},
		{"modules/batch.bicep", "Microsoft.Batch/batchAccounts/pools", "properties.startTask.userIdentity.autoUser.elevationLevel", "'Admin'"},
		{"modules/batch.bicep", "Microsoft.Batch/batchAccounts/pools", "properties.scaleSettings.autoScale.formula", "autoScaleFormula"},
		{"modules/monitoring.bicep", "Microsoft.Insights/components", "properties.DisableLocalAuth", "true"},
		{"modules/functionapp.bicep", "Microsoft.Web/serverfarms", "sku.name", "'FC1'"},
		{"modules/functionapp.bicep", "Microsoft.Web/sites", "identity.type", "'UserAssigned'"},
		{"modules/functionapp.bicep", "Microsoft.Web/sites", "properties.httpsOnly", "true"},
		{"modules/functionapp.bicep", "Microsoft.Web/sites", "properties.functionAppConfig.runtime.name", "'custom'"},
		{"modules/functionapp.bicep", "Microsoft.Web/sites", "properties.functionAppConfig.runtime.version", "'1.0'"},
		{"modules/functionapp.bicep", "Microsoft.Web/sites", "properties.functionAppConfig.deployment.storage.authentication.type", "'UserAssignedIdentity'"},
		{"eventgrid.bicep", "Microsoft.EventGrid/systemTopics/eventSubscriptions", "properties.destination.endpointType", "'AzureFunction'"},
		{"eventgrid.bicep", "Microsoft.EventGrid/systemTopics/eventSubscriptions", "properties.filter.includedEventTypes", "[ 'Microsoft.Storage.BlobCreated' ]"},
		{"eventgrid.bicep", "Microsoft.EventGrid/systemTopics/eventSubscriptions", "properties.filter.subjectBeginsWith", "'/blobServices/default/containers/${inputContainerName}/blobs/'"},
		{"eventgrid.bicep", "Microsoft.EventGrid/systemTopics/eventSubscriptions", "properties.filter.advancedFilters", "empty ( subjectSuffixes ) ? [ apiFilter ] : [ apiFilter suffixFilter ]"},
		{"modules/servicebus.bicep", "Microsoft.ServiceBus/namespaces/topics", "name", "eventsTopicName"},
		{"modules/servicebus.bicep", "Microsoft.ServiceBus/namespaces/topics", "properties.requiresDuplicateDetection", "true"},
		{"modules/servicebus.bicep", "Microsoft.ServiceBus/namespaces/topics", "properties.duplicateDetectionHistoryTimeWindow", "eventsDuplicateDetectionWindow"},
		{"modules/servicebus.bicep", "Microsoft.ServiceBus/namespaces/topics/subscriptions", "parent", "eventsTopic"},
		{"modules/servicebus.bicep", "Microsoft.ServiceBus/namespaces/topics/subscriptions", "name", "eventsSubscriptionName"},
		{"modules/servicebus.bicep", "Microsoft.ServiceBus/namespaces/topics/subscriptions", "properties.deadLetteringOnMessageExpiration", "true"},
		{"modules/functionapp.bicep", "Microsoft.Web/sites/basicPublishingCredentialsPolicies", "location", "location"},
		{"modules/functionapp.bicep", "Microsoft.Web/sites/basicPublishingCredentialsPolicies", "properties.allow", "false"},
		{"eventgrid.bicep", "Microsoft.EventGrid/systemTopics/eventSubscriptions", "properties.filter.isSubjectCaseSensitive", "false"},
		{"eventgrid.bicep", "Microsoft.EventGrid/systemTopics/eventSubscriptions", "properties.retryPolicy.maxDeliveryAttempts", "maxDeliveryAttempts"},
		{"eventgrid.bicep", "Microsoft.EventGrid/systemTopics/eventSubscriptions", "properties.deadLetterWithResourceIdentity.identity.type", "'UserAssigned'"},
		{"eventgrid.bicep", "Microsoft.EventGrid/systemTopics/eventSubscriptions", "properties.deadLetterWithResourceIdentity.deadLetterDestination.endpointType", "'StorageBlob'"},
	}
	files["modules/batch.bicep"].checkPool(t)
	for _, c := range checks {
		f := files[c.file]
		rs := f.resources(c.typ)
		if len(rs) == 0 {
			t.Errorf("%s: no %s resource", c.file, c.typ)
			continue
		}
		for _, r := range rs {
			v, ok := f.lookup(r.body, c.path)
			if got := f.text(v); !ok || got != c.want {
				t.Errorf("%s:%d: %s %s = %q, want %q", c.file, r.line, r.name, c.path, got, c.want)
			}
		}
	}
	// A dead-letter destination without an identity would need a key.
	for _, r := range files["eventgrid.bicep"].resources("Microsoft.EventGrid/systemTopics/eventSubscriptions") {
		if _, ok := files["eventgrid.bicep"].lookup(r.body, "properties.deadLetterDestination"); ok {
			t.Errorf("eventgrid.bicep: %s sets deadLetterDestination, want only deadLetterWithResourceIdentity", r.name)
		}
	}
}

// checkPool compares the pool in modules/batch.bicep with internal/batch,
// whose EnsurePool re-applies its own formula when the two differ and
// reports VM size, slots and image as drift.
func (f *bicepFile) checkPool(t *testing.T) {
	t.Helper()
	intDefault := func(name string) int {
		t.Helper()
		d, ok := f.find("param", name)
		if !ok || !d.hasValue {
			t.Fatalf("modules/batch.bicep: param %s has no default", name)
		}
		n, err := strconv.Atoi(f.text(d.value))
		if err != nil {
			t.Fatalf("modules/batch.bicep: param %s = %s, want a number", name, f.text(d.value))
		}
		return n
	}
	d, ok := f.find("var", "autoScaleFormulaTemplate")
	if !ok {
		t.Fatal("modules/batch.bicep: var autoScaleFormulaTemplate is missing")
	}
	template, ok := f.stringValue(d.value)
	if !ok {
		t.Fatal("modules/batch.bicep: autoScaleFormulaTemplate is not a plain string")
	}
	maxNodes, dedicated, perTask := intDefault("maxNodes"), intDefault("dedicatedNodes"), intDefault("slotsPerTask")
	formula := strings.NewReplacer("{maxNodes}", strconv.Itoa(maxNodes), "{dedicatedNodes}", strconv.Itoa(dedicated), "{slotsPerTask}", strconv.Itoa(perTask)).Replace(template)
	if want := batch.AutoScaleFormula(maxNodes, dedicated, perTask); formula != want {
		t.Errorf("modules/batch.bicep autoscale formula differs from internal/batch AutoScaleFormula(%d, %d, %d):\n got: %q\nwant: %q", maxNodes, dedicated, perTask, formula, want)
	}
	if perTask != batch.DefaultSlotsPerTask {
		t.Errorf("modules/batch.bicep slotsPerTask defaults to %d, internal/batch to %d", perTask, batch.DefaultSlotsPerTask)
	}
	statements := 0
	for _, s := range strings.Split(formula, ";") {
		if strings.TrimSpace(s) != "" {
			statements++
		}
	}
	if statements > 100 || len(formula) > 8<<10 {
		t.Errorf("autoscale formula has %d statements and %d bytes, want at most 100 and 8 KiB", statements, len(formula))
	}
	for _, want := range []string{
		"$PendingTasks",           // queue-driven
		"$TargetLowPriorityNodes", // Spot nodes
		": 0;",                    // scales to zero
		"$NodeDeallocationOption = taskcompletion", // never kills a running ffmpeg
	} {
		if !strings.Contains(formula, want) {
			t.Errorf("autoscale formula lacks %q:\n%s", want, formula)
		}
	}
	if maxNodes != batch.DefaultMaxNodes {
		t.Errorf("modules/batch.bicep maxNodes = %d, want internal/batch DefaultMaxNodes %d", maxNodes, batch.DefaultMaxNodes)
	}

	cmd, ok := f.find("var", "startTaskCommand")
	if got, _ := f.stringValue(cmd.value); !ok || got != batch.StartTaskCommand {
		t.Errorf("modules/batch.bicep startTaskCommand = %q, want internal/batch StartTaskCommand %q", got, batch.StartTaskCommand)
	}

	vm, _ := f.paramDefault("vmSize")
	if !strings.EqualFold(vm, batch.DefaultVMSize) {
		t.Errorf("modules/batch.bicep vmSize = %q, want internal/batch DefaultVMSize %q", vm, batch.DefaultVMSize)
	}
	// The same default slots as a pool `ffpipe pool ensure` creates: two
	// per vCPU (docs/performance.md, the node phase's slot study).
	if slots, ok := batch.DefaultTaskSlotsPerNode(vm); !ok || slots != intDefault("taskSlotsPerNode") {
		t.Errorf("modules/batch.bicep taskSlotsPerNode = %d, want %d for %s, internal/batch DefaultTaskSlotsPerNode (%d per vCPU)", intDefault("taskSlotsPerNode"), slots, vm, batch.DefaultSlotsPerVCPU)
	}
	pools := f.resources("Microsoft.Batch/batchAccounts/pools")
	if len(pools) != 1 {
		t.Fatalf("modules/batch.bicep: got %d pools, want 1", len(pools))
	}
	img := "properties.deploymentConfiguration.virtualMachineConfiguration."
	for path, want := range map[string]string{
		img + "imageReference.publisher":                        batch.Ubuntu2204.Publisher,
		img + "imageReference.offer":                            batch.Ubuntu2204.Offer,
		img + "imageReference.sku":                              batch.Ubuntu2204.SKU,
		img + "imageReference.version":                          batch.Ubuntu2204.Version,
		img + "nodeAgentSkuId":                                  batch.Ubuntu2204.NodeAgentSKU,
		"properties.scaleSettings.autoScale.evaluationInterval": "", // a param, checked below
	} {
		r, ok := f.lookup(pools[0].body, path)
		if !ok {
			t.Errorf("modules/batch.bicep: pool has no %s", path)
			continue
		}
		if want == "" {
			continue
		}
		if got, _ := f.stringValue(r); got != want {
			t.Errorf("modules/batch.bicep: pool %s = %s, want %q (internal/batch Ubuntu2204)", path, f.text(r), want)
		}
	}
	if got, _ := f.paramDefault("autoScaleEvaluationInterval"); got != batch.ISODuration(batch.DefaultEvaluationInterval) {
		t.Errorf("modules/batch.bicep autoScaleEvaluationInterval = %q, want %q", got, batch.ISODuration(batch.DefaultEvaluationInterval))
	}
}

func TestRoleAssignments(t *testing.T) {
	guid := regexp.MustCompile(`[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}`)
	files := loadAll(t)
	used := map[string]bool{}
	for name := range files {
		raw, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		for n, line := range strings.Split(string(raw), "\n") {
			for _, g := range guid.FindAllString(line, -1) {
				role, ok := builtinRoles[strings.ToLower(g)]
				if !ok {
					t.Errorf("%s:%d: role definition %s is not an allowed least-privilege built-in role", name, n+1, g)
					continue
				}
				used[role] = true
				if !strings.Contains(line, "// "+role) {
					t.Errorf("%s:%d: role %s lacks the comment // %s", name, n+1, g, role)
				}
			}
		}
	}
	for _, want := range []string{"Storage Blob Data Contributor", "Storage Blob Data Reader", "Storage Blob Delegator", "Azure Service Bus Data Sender", "Azure Service Bus Data Receiver", "Azure Batch Job Submitter", "Monitoring Metrics Publisher", "Storage Blob Data Owner"} {
		if !used[want] {
			t.Errorf("role %s is never assigned", want)
		}
	}
	// Blob data roles on the data account go through container-role.bicep
	// (container scope), except the Delegator, which only exists at account
	// scope; the host account (no pipeline data) gets its own.
	roles := files["modules/roles.bicep"]
	for _, r := range roles.resources("Microsoft.Authorization/roleAssignments") {
		scope, _ := roles.lookup(r.body, "scope")
		role, _ := roles.lookup(r.body, "properties.roleDefinitionId")
		s, rl := roles.text(scope), roles.text(role)
		if s == "dataStorage" && !strings.Contains(rl, "blobDelegator") {
			t.Errorf("modules/roles.bicep:%d: %s assigns %s on the whole data account, want a container scope", r.line, r.name, rl)
		}
		if p, _ := roles.lookup(r.body, "properties.principalType"); roles.text(p) == "" {
			t.Errorf("modules/roles.bicep:%d: %s has no principalType", r.line, r.name)
		}
	}
	cr := files["modules/container-role.bicep"]
	rs := cr.resources("Microsoft.Authorization/roleAssignments")
	if len(rs) != 1 {
		t.Fatalf("modules/container-role.bicep: got %d role assignments, want 1", len(rs))
	}
	if scope, _ := cr.lookup(rs[0].body, "scope"); cr.text(scope) != "container" {
		t.Errorf("modules/container-role.bicep: scope = %q, want container", cr.text(scope))
	}
}

func TestNoKeysOrSAS(t *testing.T) {
	var scanned int
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || strings.HasSuffix(path, ".go") {
			return nil
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		scanned++
		for _, hit := range secretHits(string(raw)) {
			t.Errorf("%s: %s", path, hit)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if scanned < 5 {
		t.Fatalf("scanned %d files in infra/, want the Bicep, JSON and shell files", scanned)
	}
}

// secretHits reports lines holding a forbidden fragment.
func secretHits(s string) []string {
	var hits []string
	for n, line := range strings.Split(s, "\n") {
		l := strings.ToLower(line)
		for _, f := range forbidden {
			if strings.Contains(l, f) {
				hits = append(hits, "line "+strconv.Itoa(n+1)+": contains "+f)
			}
		}
	}
	return hits
}

func TestSecretScanner(t *testing.T) {
	tests := []struct {
		in   string
		hits int
	}{
		{"value: 'https://a.blob.core.windows.net/c?sv=2022&sig=abc'", 1},
		{"Endpoint=sb://x/;SharedAccessKeyName=r;SharedAccessKey=k", 1},
		{"DefaultEndpointsProtocol=https;AccountName=a;AccountKey=k", 2},
		{"value: storage.listKeys().keys[0].value", 1},
		{"cs: sb.listConnectionStrings()", 1},
		{"InstrumentationKey=0000", 1},
		{"@secure()\nparam p string", 1},
		{"AzureWebJobsStorage__accountName: host.name", 0},
		{"APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'Authorization=AAD;ClientId=x'", 0},
	}
	for _, tt := range tests {
		if got := len(secretHits(tt.in)); got != tt.hits {
			t.Errorf("secretHits(%q) = %d hits, want %d", tt.in, got, tt.hits)
		}
	}
}

func TestDeployScript(t *testing.T) {
	info, err := os.Stat("deploy.sh")
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm()&0o111 == 0 {
		t.Errorf("deploy.sh mode = %v, want executable", info.Mode().Perm())
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatalf("bash not found: %v", err)
	}
	if out, err := exec.Command(bash, "-n", "deploy.sh").CombinedOutput(); err != nil {
		t.Errorf("bash -n deploy.sh: %v\n%s", err, out)
	}
	if sc, err := exec.LookPath("shellcheck"); err == nil {
		if out, err := exec.Command(sc, "deploy.sh").CombinedOutput(); err != nil {
			t.Errorf("shellcheck deploy.sh: %v\n%s", err, out)
		}
	} else {
		t.Log("shellcheck not installed: skipping it")
	}
	raw, err := os.ReadFile("deploy.sh")
	if err != nil {
		t.Fatal(err)
	}
	s := string(raw)
	order := []string{
		"set -euo pipefail",
		"az group create",
		"az deployment group create",
		"main.bicep",
		"make -C",
		"func azure functionapp publish \"$app\" --custom",
		"eventgrid.bicep",
		"az group delete",
	}
	at := -1
	for _, want := range order {
		i := strings.Index(s[at+1:], want)
		if i < 0 {
			t.Errorf("deploy.sh: want %q after the previous step", want)
			continue
		}
		at += 1 + i
	}
	for _, want := range []string{"need az", "need func", "deploy) deploy", "destroy) destroy"} {
		if !strings.Contains(s, want) {
			t.Errorf("deploy.sh lacks %q", want)
		}
	}
}

// TestDeployScriptChecks runs deploy.sh with a PATH holding only what it
// needs to start, plus fake az tools, so no test ever reaches Azure.
func TestDeployScriptChecks(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatalf("bash not found: %v", err)
	}
	base := t.TempDir()
	for _, tool := range []string{"dirname", "cat", "grep"} {
		p, err := exec.LookPath(tool)
		if err != nil {
			t.Fatalf("%s not found: %v", tool, err)
		}
		if err := os.Symlink(p, filepath.Join(base, tool)); err != nil {
			t.Fatal(err)
		}
	}
	fake := func(t *testing.T, tools map[string]string) string {
		t.Helper()
		dir := t.TempDir()
		for name, body := range tools {
			if err := os.WriteFile(filepath.Join(dir, name), []byte("#!"+bash+"\n"+body+"\n"), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	tests := []struct {
		name  string
		args  []string
		tools map[string]string
		want  string
	}{
		{"no az", []string{"deploy", "rg", "westeurope", "ffpipe"}, nil, "az is not installed"},
		{"not signed in", []string{"deploy", "rg", "westeurope", "ffpipe"}, map[string]string{"az": "exit 1"}, "not signed in: run 'az login'"},
		{"no func", []string{"deploy", "rg", "westeurope", "ffpipe"}, map[string]string{"az": "exit 0"}, "func is not installed"},
		{"destroy missing group", []string{"destroy", "rg", "westeurope", "ffpipe"}, map[string]string{"az": `[ "$1 $2" = "group exists" ] && echo false; exit 0`}, "does not exist: nothing to do"},
		{"destroy needs a terminal", []string{"destroy", "rg", "westeurope", "ffpipe"}, map[string]string{"az": `[ "$1 $2" = "group exists" ] && echo true; exit 0`}, "refusing to delete rg without a terminal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := base
			if tt.tools != nil {
				path = fake(t, tt.tools) + ":" + base
			}
			cmd := exec.Command(bash, "deploy.sh")
			cmd.Args = append(cmd.Args, tt.args...)
			cmd.Env = []string{"PATH=" + path, "HOME=" + t.TempDir()}
			// Stdin stays nil (/dev/null): not a terminal.
			out, err := cmd.CombinedOutput()
			if !strings.Contains(string(out), tt.want) {
				t.Errorf("deploy.sh %v: output = %q (err %v), want it to contain %q", tt.args, out, err, tt.want)
			}
			wantOK := strings.Contains(tt.want, "nothing to do")
			if gotOK := err == nil; gotOK != wantOK {
				t.Errorf("deploy.sh %v: err = %v, want success %v", tt.args, err, wantOK)
			}
		})
	}
}

func TestDeployScriptUsage(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatalf("bash not found: %v", err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no arguments", nil, "usage: infra/deploy.sh"},
		{"unknown action", []string{"upgrade", "rg", "westeurope", "ffpipe"}, "usage: infra/deploy.sh"},
		{"bad prefix", []string{"deploy", "rg", "westeurope", "Bad-Prefix"}, "PREFIX must be"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(bash, append([]string{"deploy.sh"}, tt.args...)...)
			// No az on PATH: the script must stop before calling Azure.
			cmd.Env = []string{"PATH=" + filepath.Dir(bash) + ":/usr/bin:/bin", "HOME=" + t.TempDir()}
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() == 0 {
				t.Fatalf("deploy.sh %v: err = %v, want a non-zero exit\n%s", tt.args, err, out)
			}
			if !strings.Contains(string(out), tt.want) {
				t.Errorf("deploy.sh %v output = %q, want it to contain %q", tt.args, out, tt.want)
			}
		})
	}
}
