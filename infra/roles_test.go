package infra

// Role coverage: every storage operation the production code performs under
// a managed identity is allowed by a role the identity holds, at the scope
// the operation needs. The built-in roles' actions are encoded below from
// Azure's built-in roles reference; the role assignments are read from the
// Bicep; the operations are found in the code by type-checking the
// production packages (every call of a *storage.Client method, directly or
// through an interface it implements). docs/infra.md lists the sources.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/importer"
	"go/parser"
	gotoken "go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
)

const (
	blobRead       = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read"
	blobWrite      = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write"
	blobDelete     = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/delete"
	containerWrite = "Microsoft.Storage/storageAccounts/blobServices/containers/write"
	delegationKey  = "Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey/action"
	sbSend         = "Microsoft.ServiceBus/namespaces/messages/send/action"
	sbReceive      = "Microsoft.ServiceBus/namespaces/messages/receive/action"
	batchJobsRead  = "Microsoft.Batch/batchAccounts/jobs/read"
	batchJobsWrite = "Microsoft.Batch/batchAccounts/jobs/write"
	batchPoolsRead = "Microsoft.Batch/batchAccounts/pools/read"
	telemetry      = "Microsoft.Insights/Telemetry/Write"
)

// roleDef is a built-in role: its control-plane actions and data actions
// (patterns; * matches anything).
type roleDef struct {
	name                 string
	actions, dataActions []string
}

// roleDefs are the roles the templates assign, by GUID, as Azure's
// built-in roles reference defines them (storage.md, integration.md,
// compute.md and monitor.md in MicrosoftDocs/azure-docs
// articles/role-based-access-control/built-in-roles; docs/infra.md).
var roleDefs = map[string]roleDef{
	"b7e6dc6d-f1e8-4753-8033-0f276bb0955b": {"Storage Blob Data Owner",
		[]string{"Microsoft.Storage/storageAccounts/blobServices/containers/*", delegationKey},
		[]string{"Microsoft.Storage/storageAccounts/blobServices/containers/blobs/*"}},
	"ba92f5b4-2d11-453d-a403-e96b0029c9fe": {"Storage Blob Data Contributor",
		[]string{"Microsoft.Storage/storageAccounts/blobServices/containers/delete", "Microsoft.Storage/storageAccounts/blobServices/containers/read", containerWrite, delegationKey},
		[]string{blobDelete, blobRead, blobWrite, "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/move/action", "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/add/action"}},
	"2a2b9908-6ea1-4ae2-8e65-a410df84e7d1": {"Storage Blob Data Reader",
		[]string{"Microsoft.Storage/storageAccounts/blobServices/containers/read", delegationKey},
		[]string{blobRead}},
	"db58b8e5-c6ad-4a2a-8342-4190687cbf4a": {"Storage Blob Delegator",
		[]string{delegationKey}, nil},
	"69a216fc-b8fb-44d8-bc22-1f3c2cd27a39": {"Azure Service Bus Data Sender",
		[]string{"Microsoft.ServiceBus/*/queues/read", "Microsoft.ServiceBus/*/topics/read", "Microsoft.ServiceBus/*/topics/subscriptions/read"},
		[]string{"Microsoft.ServiceBus/*/send/action"}},
	"4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0": {"Azure Service Bus Data Receiver",
		[]string{"Microsoft.ServiceBus/*/queues/read", "Microsoft.ServiceBus/*/topics/read", "Microsoft.ServiceBus/*/topics/subscriptions/read"},
		[]string{"Microsoft.ServiceBus/*/receive/action"}},
	"48e5e92e-a480-4e71-aa9c-2778f4c13781": {"Azure Batch Job Submitter",
		[]string{"Microsoft.Batch/batchAccounts/applications/read", "Microsoft.Batch/batchAccounts/applications/versions/read", "Microsoft.Batch/batchAccounts/pools/read", "Microsoft.Insights/alertRules/*", "Microsoft.Resources/subscriptions/resourceGroups/read"},
		[]string{"Microsoft.Batch/batchAccounts/jobSchedules/*", "Microsoft.Batch/batchAccounts/jobs/*"}},
	"3913510d-42f4-4e42-8a64-420c390055eb": {"Monitoring Metrics Publisher",
		[]string{"Microsoft.Insights/Register/Action", "Microsoft.Support/*", "Microsoft.Resources/subscriptions/resourceGroups/read"},
		[]string{"Microsoft.Insights/Metrics/Write", "Microsoft.Insights/Telemetry/Write"}},
}

// need is one permission an operation needs: an action or data action at a
// scope. Scopes: "account" (the data storage account), "container:<c>" (a
// container of it; an account-scoped grant covers it too), "queue",
// "topic".
type need struct{ action, scope string }

func (n need) String() string { return n.action + " at " + n.scope }

// methodNeeds is what each *storage.Client method asks of Azure Storage, by
// the REST operations it calls (each operation's Authorization section in
// the Blob Storage REST reference). args are the containers the call names:
// one, or source and destination for Copy and Move. Methods that make no
// request are absent from requests.
func methodNeeds(method string, args []string) ([]need, error) {
	c := func(i int) string { return "container:" + args[i] }
	want := 1
	if method == "Copy" || method == "Move" {
		want = 2
	}
	if len(args) != want {
		return nil, fmt.Errorf("%s takes %d containers, the table gives %d", method, want, len(args))
	}
	switch method {
	case "Properties", "Get", "GetWithETag", "Tail", "List": // Get Blob (Properties), List Blobs
		return []need{{blobRead, c(0)}}, nil
	case "Put", "PutIf", "UploadFile": // Put Blob, Put Block + Put Block List
		return []need{{blobWrite, c(0)}}, nil
	case "Delete":
		return []need{{blobDelete, c(0)}}, nil
	case "DeleteIfMatch": // Delete Blob, then Get Blob Properties on 412
		return []need{{blobDelete, c(0)}, {blobRead, c(0)}}, nil
	case "ReadURL": // Get User Delegation Key; the SAS grants at most what the signer holds
		return []need{{delegationKey, "account"}, {blobRead, c(0)}}, nil
	case "WriteURL", "ContainerWriteURL":
		return []need{{delegationKey, "account"}, {blobWrite, c(0)}}, nil
	case "Copy": // a read SAS for the source, Copy Blob on the destination, then polls its properties
		return []need{{delegationKey, "account"}, {blobRead, c(0)}, {blobWrite, c(1)}, {blobRead, c(1)}}, nil
	case "Move": // Copy, then Delete Blob (If-Match) on the source
		return []need{{delegationKey, "account"}, {blobRead, c(0)}, {blobWrite, c(1)}, {blobRead, c(1)}, {blobDelete, c(0)}}, nil
	case "EnsureContainer": // Create Container
		return []need{{containerWrite, c(0)}}, nil
	}
	return nil, fmt.Errorf("storage.Client.%s: unknown to methodNeeds; add what it calls", method)
}

// noRequest are *storage.Client methods that build strings and call nothing.
var noRequest = map[string]bool{"Account": true, "URL": true, "BlobURL": true, "ContainerURL": true}

// storageUse is a production package's use of a storage method on named
// containers (FFPIPE_* defaults: input, output, status, index, logs, quarantine).
type storageUse struct {
	pkg, method string
	containers  []string
	mode        string // "" both task blob access modes, or "sas" / "identity" only
	local       bool   // only against Azurite (shared key), never in Azure
	why         string
}

// storageUses lists every storage call of the production code. A new call
// (a new method in a package) fails TestStorageCallsListed until it is
// added here, with the containers it touches, and so checked against the
// roles.
var storageUses = []storageUse{
	{pkg: "handlers", method: "Properties", containers: []string{"input"}, why: "OnBlobCreated, Dispatch and Sweep read the input's eTag and size"},
	{pkg: "handlers", method: "Properties", containers: []string{"output"}, why: "Sweep checks the output exists and is not empty"},
	{pkg: "handlers", method: "DeleteIfMatch", containers: []string{"input"}, why: "Sweep deletes a done input if its eTag still matches"},
	{pkg: "handlers", method: "Move", containers: []string{"input", "quarantine"}, why: "Sweep quarantines a failed input"},
	{pkg: "handlers", method: "Tail", containers: []string{"logs"}, why: "Sweep reads a failed task's stderr tail"},
	{pkg: "handlers", method: "List", containers: []string{"input"}, why: "Sweep reconciles inputs that have no task and no record"},
	{pkg: "handlers", method: "ReadURL", containers: []string{"input"}, mode: "sas", why: "Dispatch signs the task's input URL"},
	{pkg: "handlers", method: "ReadURL", containers: []string{"output"}, why: "Status signs a read-only download link per done output"},
	{pkg: "handlers", method: "ContainerWriteURL", containers: []string{"output"}, mode: "sas", why: "Dispatch signs the task's output URL"},
	{pkg: "handlers", method: "ContainerWriteURL", containers: []string{"logs"}, mode: "sas", why: "Dispatch signs the task's stdout and stderr URLs"},
	{pkg: "internal/records", method: "Put", containers: []string{"status", "index"}, why: "status records; the index's day buckets (rebuild)"},
	{pkg: "internal/records", method: "PutIf", containers: []string{"status", "index"}, why: "status records and the index's day buckets, optimistic concurrency"},
	{pkg: "internal/records", method: "Delete", containers: []string{"index"}, why: "the index's day buckets that left the retention window"},
	{pkg: "internal/records", method: "DeleteIfMatch", containers: []string{"status"}, why: "records that left the retention window (FFPIPE_RECORD_RETENTION)"},
	{pkg: "internal/records", method: "Get", containers: []string{"status"}, why: "status records"},
	{pkg: "internal/records", method: "GetWithETag", containers: []string{"status", "index"}, why: "status records and day buckets before an update"},
	{pkg: "internal/records", method: "List", containers: []string{"status", "index"}, why: "Status counts (day buckets); expiry and rebuild (records)"},
	{pkg: "cmd/handler", method: "EnsureContainer", containers: []string{"input", "output", "status", "index", "logs", "quarantine"}, local: true, why: "Azurite starts empty; in Azure main.bicep creates the containers"},
}

// otherNeeds are permissions the Bicep must grant for work that is not a
// storage.Client call: Batch moving task files with the pool identity,
// Event Grid dead-lettering, and Service Bus.
var otherNeeds = []struct {
	principal, mode, why string
	need
}{
	{"pool", "identity", "Batch downloads the input resource file", need{blobRead, "container:input"}},
	{"pool", "identity", "Batch uploads the output file", need{blobWrite, "container:output"}},
	{"pool", "identity", "Batch uploads stdout and stderr", need{blobWrite, "container:logs"}},
	{"eventgrid", "", "Event Grid writes dead-lettered events", need{blobWrite, "container:deadletter"}},
	{"func", "", "OnBlobCreated and Sweep send requests", need{sbSend, "queue"}},
	{"func", "", "Dispatch receives requests", need{sbReceive, "queue"}},
	{"func", "", "Sweep publishes completion events", need{sbSend, "topic"}},
	{"func", "", "Dispatch creates the job and adds tasks", need{batchJobsWrite, "batch"}},
	{"func", "", "Sweep and Status list and read tasks", need{batchJobsRead, "batch"}},
	{"func", "", "Dispatch checks the pool", need{batchPoolsRead, "batch"}},
	{"func", "", "the host sends telemetry with Entra ID", need{telemetry, "appinsights"}},
}

// grant is one role assignment: principal (func, pool, eventgrid,
// operator), role GUID and scope (as in need; "host" for the Functions host
// account, "batch" the Batch account, "appinsights" the component).
type grant struct{ principal, role, scope string }

func (g grant) allows(n need) bool {
	if g.scope != n.scope && !(g.scope == "account" && strings.HasPrefix(n.scope, "container:")) {
		return false
	}
	def := roleDefs[g.role]
	for _, p := range append(slices.Clone(def.actions), def.dataActions...) {
		if actionMatches(p, n.action) {
			return true
		}
	}
	return false
}

// actionMatches reports whether an action pattern (with * wildcards, as in
// role definitions) matches an action, case-insensitively.
func actionMatches(pattern, action string) bool {
	pattern, action = strings.ToLower(pattern), strings.ToLower(action)
	parts := strings.Split(pattern, "*")
	if !strings.HasPrefix(action, parts[0]) {
		return false
	}
	rest := action[len(parts[0]):]
	for i, p := range parts[1:] {
		if i == len(parts)-2 {
			return strings.HasSuffix(rest, p) && len(rest) >= len(p)
		}
		j := strings.Index(rest, p)
		if j < 0 {
			return false
		}
		rest = rest[j+len(p):]
	}
	return rest == ""
}

// missing returns the needs that no grant of principal allows.
func missing(grants []grant, principal string, needs []need) []need {
	var out []need
	for _, n := range needs {
		if !slices.ContainsFunc(grants, func(g grant) bool { return g.principal == principal && g.allows(n) }) {
			out = append(out, n)
		}
	}
	return out
}

// coverageProblems checks storageUses and otherNeeds against grants made in
// one task blob access mode.
func coverageProblems(grants []grant, mode string) []string {
	var out []string
	for _, u := range storageUses {
		if u.local || (u.mode != "" && u.mode != mode) {
			continue
		}
		args := [][]string{u.containers}
		if u.method != "Copy" && u.method != "Move" {
			args = nil
			for _, c := range u.containers {
				args = append(args, []string{c})
			}
		}
		for _, a := range args {
			needs, err := methodNeeds(u.method, a)
			if err != nil {
				out = append(out, err.Error())
				continue
			}
			for _, n := range missing(grants, "func", needs) {
				out = append(out, fmt.Sprintf("%s mode: %s %s(%s) (%s) needs %s; the function identity holds no role that allows it there",
					mode, u.pkg, u.method, strings.Join(a, " → "), u.why, n))
			}
		}
	}
	for _, o := range otherNeeds {
		if o.mode != "" && o.mode != mode {
			continue
		}
		for _, n := range missing(grants, o.principal, []need{o.need}) {
			out = append(out, fmt.Sprintf("%s mode: %s (%s identity) needs %s; no role allows it", mode, o.why, o.principal, n))
		}
	}
	return out
}

// principals maps the Bicep principal id parameters to principal names.
var principals = map[string]string{
	"funcPrincipalId":      "func",
	"poolPrincipalId":      "pool",
	"eventGridPrincipalId": "eventgrid",
	"operatorPrincipalId":  "operator",
}

// resourceScopes maps roles.bicep's existing resources to scopes.
var resourceScopes = map[string]string{
	"dataStorage":  "account",
	"hostStorage":  "host",
	"queue":        "queue",
	"eventsTopic":  "topic",
	"batchAccount": "batch",
	"appInsights":  "appinsights",
}

// bicepEval evaluates the few expressions roles.bicep uses in conditions
// and grant lists, for one mode and with an operator principal set.
type bicepEval struct {
	f    *bicepFile
	mode string
}

func (e bicepEval) cond(r [2]int) (bool, error) {
	for r[1]-r[0] > 1 && e.f.toks[r[0]].text == "(" && e.f.match[r[0]] == r[1]-1 {
		r = [2]int{r[0] + 1, r[1] - 1}
	}
	switch s := e.f.text(r); s {
	case "useSas":
		return e.mode == "sas", nil
	case "! useSas":
		return e.mode != "sas", nil
	case "empty ( operatorPrincipalId )":
		return false, nil
	case "! empty ( operatorPrincipalId )":
		return true, nil
	default:
		return false, fmt.Errorf("%s: cannot evaluate condition %q", e.f.path, s)
	}
}

// pick resolves `cond ? a : b` at the top level of r to a or b; other
// expressions are returned unchanged.
func (e bicepEval) pick(r [2]int) ([2]int, error) {
	for i := r[0]; i < r[1]; i++ {
		t := e.f.toks[i]
		if t.kind == tPunct && (t.text == "(" || t.text == "[" || t.text == "{") {
			i = e.f.match[i]
			continue
		}
		if t.text != "?" {
			continue
		}
		c, err := e.cond([2]int{r[0], i})
		if err != nil {
			return r, err
		}
		for j := i + 1; j < r[1]; j++ {
			u := e.f.toks[j]
			if u.kind == tPunct && (u.text == "(" || u.text == "[" || u.text == "{") {
				j = e.f.match[j]
				continue
			}
			if u.text == ":" {
				if c {
					return e.pick([2]int{i + 1, j})
				}
				return e.pick([2]int{j + 1, r[1]})
			}
		}
		return r, fmt.Errorf("%s:%d: ? without :", e.f.path, t.line)
	}
	return r, nil
}

// role resolves `role.name` (possibly behind conditions or inside
// subscriptionResourceId(…)) to the GUID in roles.bicep's var role.
func (e bicepEval) role(r [2]int, roles map[string]string) (string, error) {
	r, err := e.pick(r)
	if err != nil {
		return "", err
	}
	for i := r[0]; i+2 < r[1]; i++ {
		if e.f.toks[i].text == "role" && e.f.toks[i+1].text == "." {
			if g, ok := roles[e.f.toks[i+2].text]; ok {
				return g, nil
			}
			return "", fmt.Errorf("%s:%d: role.%s is not in var role", e.f.path, e.f.toks[i].line, e.f.toks[i+2].text)
		}
	}
	return "", fmt.Errorf("%s: no role.<name> in %q", e.f.path, e.f.text(r))
}

// objects returns the object literals of an array expression.
func (e bicepEval) objects(r [2]int) ([]int, error) {
	r, err := e.pick(r)
	if err != nil {
		return nil, err
	}
	if r[0] >= r[1] || e.f.toks[r[0]].text != "[" {
		return nil, fmt.Errorf("%s: want an array, got %q", e.f.path, e.f.text(r))
	}
	var out []int
	for i := r[0] + 1; i < e.f.match[r[0]]; i++ {
		if e.f.toks[i].text == "{" {
			out = append(out, i)
			i = e.f.match[i]
		}
	}
	return out, nil
}

func (e bicepEval) prop(open int, key string) ([2]int, error) {
	r, ok := e.f.lookup(open, key)
	if !ok {
		return r, fmt.Errorf("%s:%d: no %s", e.f.path, e.f.toks[open].line, key)
	}
	return r, nil
}

func containerScope(f *bicepFile, r [2]int) (string, error) {
	id, ok := f.identValue(r)
	if !ok || !strings.HasSuffix(id, "ContainerName") {
		return "", fmt.Errorf("%s: container %q is not a <name>ContainerName param", f.path, f.text(r))
	}
	return "container:" + strings.ToLower(strings.TrimSuffix(id, "ContainerName")), nil
}

// roleGrants reads every role assignment roles.bicep makes in one mode.
func roleGrants(f *bicepFile, mode string) ([]grant, error) {
	e := bicepEval{f, mode}
	rv, ok := f.find("var", "role")
	if !ok || rv.body < 0 {
		return nil, fmt.Errorf("%s: no var role = { … }", f.path)
	}
	ps, err := f.props(rv.body)
	if err != nil {
		return nil, err
	}
	roles := map[string]string{}
	for _, p := range ps {
		roles[p.key], _ = f.stringValue(p.value)
	}
	var out []grant
	for _, d := range f.all("module") {
		gs, err := e.moduleGrants(d, roles)
		if err != nil {
			return nil, err
		}
		out = append(out, gs...)
	}
	for _, d := range f.resources("Microsoft.Authorization/roleAssignments") {
		g, ok, err := e.resourceGrant(d, roles)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, g)
		}
	}
	return out, nil
}

// moduleGrants reads a container-role.bicep module: one assignment, or a
// loop over a grant list (`[for (g, i) in list: {…}]`).
func (e bicepEval) moduleGrants(d decl, roles map[string]string) ([]grant, error) {
	f := e.f
	if d.typ != "container-role.bicep" {
		return nil, fmt.Errorf("%s:%d: module %s: only container-role.bicep is understood here", f.path, d.line, d.name)
	}
	principal, err := e.prop(d.body, "params.principalId")
	if err != nil {
		return nil, err
	}
	pid, _ := f.identValue(principal)
	who, ok := principals[pid]
	if !ok {
		return nil, fmt.Errorf("%s:%d: principal %q unknown", f.path, d.line, f.text(principal))
	}
	v := f.toks[d.value[0]]
	if v.text != "[" { // one assignment
		cr, err := e.prop(d.body, "params.containerName")
		if err != nil {
			return nil, err
		}
		scope, err := containerScope(f, cr)
		if err != nil {
			return nil, err
		}
		rr, err := e.prop(d.body, "params.roleDefinitionId")
		if err != nil {
			return nil, err
		}
		role, err := e.role(rr, roles)
		return []grant{{who, role, scope}}, err
	}
	// [for (g, i) in list: { … }]
	i := d.value[0] + 1
	for i < d.body && f.toks[i].text != "in" {
		i++
	}
	list := f.toks[i+1].text
	lv, ok := f.find("var", list)
	if !ok {
		return nil, fmt.Errorf("%s:%d: module %s loops over %s, not a var", f.path, d.line, d.name, list)
	}
	objs, err := e.objects(lv.value)
	if err != nil {
		return nil, err
	}
	var out []grant
	for _, o := range objs {
		cr, err := e.prop(o, "container")
		if err != nil {
			return nil, err
		}
		scope, err := containerScope(f, cr)
		if err != nil {
			return nil, err
		}
		rr, err := e.prop(o, "role")
		if err != nil {
			return nil, err
		}
		role, err := e.role(rr, roles)
		if err != nil {
			return nil, err
		}
		out = append(out, grant{who, role, scope})
	}
	return out, nil
}

// resourceGrant reads one roleAssignments resource; ok is false when its
// condition is false in this mode.
func (e bicepEval) resourceGrant(d decl, roles map[string]string) (grant, bool, error) {
	f := e.f
	if v := d.value[0]; f.toks[v].text == "if" {
		c, err := e.cond([2]int{v + 1, f.match[v+1] + 1})
		if err != nil || !c {
			return grant{}, false, err
		}
	}
	pr, err := e.prop(d.body, "properties.principalId")
	if err != nil {
		return grant{}, false, err
	}
	pid, _ := f.identValue(pr)
	who, ok := principals[pid]
	if !ok {
		return grant{}, false, fmt.Errorf("%s:%d: principal %q unknown", f.path, d.line, f.text(pr))
	}
	sr, err := e.prop(d.body, "scope")
	if err != nil {
		return grant{}, false, err
	}
	sid, _ := f.identValue(sr)
	scope, ok := resourceScopes[sid]
	if !ok {
		return grant{}, false, fmt.Errorf("%s:%d: scope %q unknown", f.path, d.line, f.text(sr))
	}
	rr, err := e.prop(d.body, "properties.roleDefinitionId")
	if err != nil {
		return grant{}, false, err
	}
	role, err := e.role(rr, roles)
	return grant{who, role, scope}, true, err
}

func grantsFor(t *testing.T, mode string) []grant {
	t.Helper()
	gs, err := roleGrants(loadAll(t)["modules/roles.bicep"], mode)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range gs {
		if _, ok := roleDefs[g.role]; !ok {
			t.Fatalf("roles.bicep assigns role %s, which roleDefs does not define", g.role)
		}
	}
	return gs
}

// Every storage operation of the production code, and what Batch, Event
// Grid and Service Bus do with the identities, is allowed by a role the
// identity holds at the scope it needs, in both task blob access modes.
func TestRolesCoverOperations(t *testing.T) {
	for _, mode := range []string{"identity", "sas"} {
		t.Run(mode, func(t *testing.T) {
			gs := grantsFor(t, mode)
			if len(gs) < 10 {
				t.Fatalf("read %d role assignments from roles.bicep, want all of them", len(gs))
			}
			for _, p := range coverageProblems(gs, mode) {
				t.Error(p)
			}
		})
	}
}

// The check fails when a needed role is taken away, so it cannot pass by
// accident: without the account-scoped Delegator, quarantine (Move) cannot
// get its user delegation key in either mode.
func TestRolesCoverageDetectsGaps(t *testing.T) {
	tests := []struct {
		name, mode string
		drop       func(grant) bool
		want       string
	}{
		{"no delegator", "identity", func(g grant) bool { return roleDefs[g.role].name == "Storage Blob Delegator" },
			"handlers Move(input → quarantine) (Sweep quarantines a failed input) needs " + delegationKey + " at account"},
		{"no delegator, sas", "sas", func(g grant) bool { return roleDefs[g.role].name == "Storage Blob Delegator" },
			"handlers ReadURL(input) (Dispatch signs the task's input URL) needs " + delegationKey + " at account"},
		{"quarantine not writable", "identity", func(g grant) bool { return g.principal == "func" && g.scope == "container:quarantine" },
			"needs " + blobWrite + " at container:quarantine"},
		{"no events sender", "identity", func(g grant) bool { return g.scope == "topic" },
			"Sweep publishes completion events (func identity) needs " + sbSend + " at topic"},
		{"no batch role", "sas", func(g grant) bool { return g.scope == "batch" && g.principal == "func" },
			"Dispatch creates the job and adds tasks (func identity) needs " + batchJobsWrite + " at batch"},
		{"pool cannot read", "identity", func(g grant) bool { return g.principal == "pool" && g.scope == "container:input" },
			"Batch downloads the input resource file (pool identity) needs " + blobRead + " at container:input"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gs := slices.DeleteFunc(grantsFor(t, tt.mode), tt.drop)
			got := strings.Join(coverageProblems(gs, tt.mode), "\n")
			if !strings.Contains(got, tt.want) {
				t.Errorf("problems:\n%s\nwant one containing %q", got, tt.want)
			}
		})
	}
}

// The user delegation key is an account-level action: a role at container
// scope does not grant it, so the Delegator must sit on the account.
func TestDelegatorAtAccountScope(t *testing.T) {
	for _, mode := range []string{"identity", "sas"} {
		n := 0
		for _, g := range grantsFor(t, mode) {
			if roleDefs[g.role].name != "Storage Blob Delegator" {
				continue
			}
			n++
			if g.principal != "func" || g.scope != "account" {
				t.Errorf("%s mode: Storage Blob Delegator granted to %s at %s, want the function at the data account", mode, g.principal, g.scope)
			}
		}
		if n != 1 {
			t.Errorf("%s mode: %d Storage Blob Delegator assignments, want 1", mode, n)
		}
	}
}

func TestActionMatches(t *testing.T) {
	tests := []struct {
		pattern, action string
		want            bool
	}{
		{blobRead, blobRead, true},
		{"Microsoft.Storage/storageAccounts/blobServices/containers/blobs/*", blobDelete, true},
		{"Microsoft.Storage/storageAccounts/blobServices/containers/*", blobWrite, true},
		{"Microsoft.Storage/storageAccounts/blobServices/containers/*", delegationKey, false},
		{"Microsoft.ServiceBus/*/send/action", sbSend, true},
		{"Microsoft.ServiceBus/*/send/action", sbReceive, false},
		{blobRead, blobWrite, false},
		{"microsoft.storage/storageaccounts/blobservices/containers/blobs/read", blobRead, true},
	}
	for _, tt := range tests {
		if got := actionMatches(tt.pattern, tt.action); got != tt.want {
			t.Errorf("actionMatches(%q, %q) = %v, want %v", tt.pattern, tt.action, got, tt.want)
		}
	}
}

// Every call of a *storage.Client method in the production code (directly
// or through an interface the client implements) is listed in storageUses,
// and every listed use still exists.
func TestStorageCallsListed(t *testing.T) {
	found := storageCalls(t)
	listed := map[string]bool{}
	for _, u := range storageUses {
		listed[u.pkg+" "+u.method] = true
	}
	for key, where := range found {
		if !listed[key] {
			t.Errorf("%s calls storage %s (%s): add it to storageUses with the containers it touches", strings.Fields(key)[0], strings.Fields(key)[1], strings.Join(where, ", "))
		}
	}
	for key := range listed {
		if _, ok := found[key]; !ok {
			t.Errorf("storageUses lists %s, but the code no longer calls it: remove it", key)
		}
	}
}

const modulePath = "github.com/ffpipe/ffpipe"

type listedPkg struct {
	ImportPath, Dir, Export string
	GoFiles                 []string
}

func goList(t *testing.T, args ...string) []listedPkg {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list", "-json"}, args...)...)
	cmd.Dir = ".."
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %v: %v\n%s", args, err, stderr.String())
	}
	var pkgs []listedPkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listedPkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// isProduction is docs/architecture.md's production layer.
func isProduction(path string) bool {
	rel, ok := strings.CutPrefix(path, modulePath+"/")
	if !ok {
		return false
	}
	switch {
	case rel == "cmd/handler" || rel == "handlers" || strings.HasPrefix(rel, "handlers/"):
		return true
	case strings.HasPrefix(rel, "internal/emulator/") || strings.HasPrefix(rel, "internal/tooling/"):
		return false
	}
	return strings.HasPrefix(rel, "internal/")
}

// storageCalls type-checks every production package but internal/storage
// against compiled export data and returns "pkg method" → call positions.
func storageCalls(t *testing.T) map[string][]string {
	t.Helper()
	var prod []string
	for _, p := range goList(t, "./...") {
		if isProduction(p.ImportPath) && p.ImportPath != modulePath+"/internal/storage" {
			prod = append(prod, p.ImportPath)
		}
	}
	if len(prod) < 5 {
		t.Fatalf("found %d production packages, want cmd/handler, handlers and internal/*", len(prod))
	}
	exports := map[string]string{}
	pkgs := map[string]listedPkg{}
	for _, p := range goList(t, append([]string{"-export", "-deps"}, prod...)...) {
		exports[p.ImportPath] = p.Export
		pkgs[p.ImportPath] = p
	}
	fset := gotoken.NewFileSet()
	imp := importer.ForCompiler(fset, "gc", func(path string) (io.ReadCloser, error) {
		if exports[path] == "" {
			return nil, fmt.Errorf("no export data for %s", path)
		}
		return os.Open(exports[path])
	})
	st, err := imp.Import(modulePath + "/internal/storage")
	if err != nil {
		t.Fatal(err)
	}
	client := types.NewPointer(st.Scope().Lookup("Client").Type())
	found := map[string][]string{}
	for _, path := range prod {
		p := pkgs[path]
		var files []*ast.File
		for _, name := range p.GoFiles {
			f, err := parser.ParseFile(fset, filepath.Join(p.Dir, name), nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			files = append(files, f)
		}
		info := &types.Info{Selections: map[*ast.SelectorExpr]*types.Selection{}}
		conf := types.Config{Importer: imp}
		if _, err := conf.Check(path, fset, files, info); err != nil {
			t.Fatalf("type-check %s: %v", path, err)
		}
		rel := strings.TrimPrefix(path, modulePath+"/")
		for sel, s := range info.Selections {
			if s.Kind() != types.MethodVal || noRequest[s.Obj().Name()] || !isStorageClient(s.Recv(), client) {
				continue
			}
			pos := fset.Position(sel.Sel.Pos())
			key := rel + " " + s.Obj().Name()
			found[key] = append(found[key], fmt.Sprintf("%s:%d", filepath.Base(pos.Filename), pos.Line))
		}
	}
	for _, w := range found {
		sort.Strings(w)
	}
	return found
}

// isStorageClient reports whether a method receiver is *storage.Client or
// an interface it implements (how handlers and records reach it).
func isStorageClient(recv, client types.Type) bool {
	if types.Identical(recv, client) || types.Identical(recv, client.(*types.Pointer).Elem()) {
		return true
	}
	iface, ok := recv.Underlying().(*types.Interface)
	return ok && iface.NumMethods() > 0 && types.Implements(client, iface)
}
