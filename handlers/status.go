package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/ffpipe/ffpipe/internal/batch"
	"github.com/ffpipe/ffpipe/internal/records"
	"github.com/ffpipe/ffpipe/internal/request"
)

// statusRecent is how many recent records the Status page lists.
const statusRecent = 50

// httpRequest is the host's rendering of an HTTP trigger request.
type httpRequest struct {
	URL     string              `json:"Url"`
	Method  string              `json:"Method"`
	Query   json.RawMessage     `json:"Query"`
	Headers map[string][]string `json:"Headers"`
	Params  map[string]string   `json:"Params"`
}

// httpResponse is the value of the http output binding.
type httpResponse struct {
	StatusCode int               `json:"statusCode"`
	Headers    map[string]string `json:"headers"`
	Body       string            `json:"body"`
}

// status handles the httpTrigger (GET status/{key?}): counts by state,
// recent records, or one record; JSON for tools (Accept: application/json
// or ?format=json), HTML for people. The HTTP status goes in the output
// binding; the invocation itself always succeeds.
func (a *app) status(r *http.Request, inv *invocation) error {
	ctx := r.Context()
	hr, err := decodeHTTPRequest(inv.req)
	if err != nil {
		inv.output(BindingResponse, jsonResponse(http.StatusBadRequest, map[string]string{"error": "unreadable request"}))
		return nil
	}
	method := strings.ToUpper(hr.Method)
	if method != "" && method != http.MethodGet && method != http.MethodHead && method != http.MethodPost {
		inv.output(BindingResponse, jsonResponse(http.StatusMethodNotAllowed, map[string]string{"error": "GET, or POST to redrive one file"}))
		return nil
	}
	query := hr.query()
	wantJSON := strings.EqualFold(query.Get("format"), "json") || acceptsJSON(hr.Headers)
	key := hr.Params["key"]
	if key == "" {
		key = query.Get("key")
	}
	if key == "" {
		key = keyFromPath(hr.URL)
	}
	if method == http.MethodPost {
		// The only change Status makes, and never on a GET.
		inv.output(BindingResponse, a.redriveOne(ctx, strings.ToLower(key)))
		return nil
	}
	if key != "" {
		inv.output(BindingResponse, a.statusRecord(ctx, strings.ToLower(key), wantJSON))
		return nil
	}
	inv.output(BindingResponse, a.statusSummary(ctx, query, wantJSON))
	return nil
}

// statusRecord is the page of one key: its record, or while a Batch task
// holds the work, the record overlaid with the task.
func (a *app) statusRecord(ctx context.Context, key string, wantJSON bool) httpResponse {
	if !request.IsKey(key) {
		return a.render(wantJSON, http.StatusBadRequest, map[string]string{"error": "a key is 32 hex characters"}, nil)
	}
	rec, err := a.d.Records.Get(ctx, key)
	if err != nil && !errors.Is(err, records.ErrNotFound) {
		a.log.Warn("status: read record", "key", key, "err", err)
		return a.render(wantJSON, http.StatusServiceUnavailable, map[string]string{"error": "storage unavailable"}, nil)
	}
	found := err == nil
	if !found || !rec.State.Terminal() {
		// Between the queue and Sweep the work is a Batch task.
		live, ok, err := InFlight(ctx, a.d.Tasks, a.cfg.BatchJob, key, rec)
		if err != nil {
			a.log.Warn("status: read task", "key", key, "err", err)
		}
		if ok {
			rec, found = live, true
		}
	}
	if !found {
		return a.render(wantJSON, http.StatusNotFound, map[string]string{"error": "no record or task for key " + key}, nil)
	}
	return a.render(wantJSON, http.StatusOK, rec, &page{Record: &rec})
}

// statusSummary is the summary page: counts by state, task counts, cost,
// running files, failures by reason and the recent records, filtered as
// the query asks.
func (a *app) statusSummary(ctx context.Context, query url.Values, wantJSON bool) httpResponse {
	sum, err := a.d.Records.Summarize(ctx, statusRecent)
	if err != nil {
		a.log.Warn("status: summarize", "err", err)
		return a.render(wantJSON, http.StatusServiceUnavailable, map[string]string{"error": "storage unavailable"}, nil)
	}
	view, err := WithTasks(ctx, a.d.Tasks, a.cfg.BatchJob, sum)
	if err != nil {
		a.log.Warn("status: batch task counts", "err", err)
	}
	view.Cost = a.costView(sum)
	code, fstate, fname := pageQuery(query)
	if fstate != "" || fname != "" {
		view.Recent = filterRecent(view.Recent, fstate, fname)
	}
	view.Running = a.running(ctx)
	view.Failures = failuresByReason(view.Recent)
	pg := &page{Summary: &view, States: storedStates, Code: code, FilterState: fstate, FilterName: fname, Refresh: refreshSeconds,
		Chart: newThroughputChart(view.Throughput), Reasons: reasonRows(view.FailureCounts, view.Failures)}
	if !wantJSON {
		pg.Downloads = a.downloads(ctx, view.Recent)
	}
	return a.render(wantJSON, http.StatusOK, view, pg)
}

// storedStates are the states records are written in: "dispatched" is
// not one (the page shows Batch's task counts for it).
var storedStates = slices.DeleteFunc(slices.Clone(records.States), func(s records.State) bool { return s == records.StateDispatched })

// Summary is the Status summary: record counts and recent records, and
// the job's task counts (work dispatched and not yet swept); Batch is nil
// when Batch could not be asked.
type Summary struct {
	records.Summary
	Batch *batch.TaskCounts `json:"batch,omitempty"`
	// Cost is node time and estimated cost today and over 30 days, and the
	// daily budget (budget.go); nil without the records' index.
	Cost *CostView `json:"cost,omitempty"`
	// Running are the files Batch runs now, with their progress;
	// Failures the recent failures grouped by reason code (the records'
	// FailureCounts has them over every record kept).
	Running  []records.Record `json:"running,omitempty"`
	Failures []ReasonCount    `json:"failuresByReason,omitempty"`
}

// WithTasks adds the job's task counts to sum. The error says why they
// are missing (a job that does not exist yet counts as no tasks).
func WithTasks(ctx context.Context, tasks TaskReader, jobID string, sum records.Summary) (Summary, error) {
	tc, err := tasks.TaskCounts(ctx, jobID)
	switch {
	case err == nil:
		return Summary{Summary: sum, Batch: &tc}, nil
	case errors.Is(err, batch.ErrJobNotFound):
		return Summary{Summary: sum, Batch: &batch.TaskCounts{}}, nil
	}
	return Summary{Summary: sum}, err
}

// InFlight shows key's work as Status does while a Batch task holds it
// (Dispatch writes no record: the task is the record of the dispatch): rec
// (the key's non-terminal record, or zero) overlaid with the task's state
// and times. A request sent straight to the queue has no record yet: its
// source, output, preset, correlation id and enqueued time come from the
// task. ok is false when there is no task; err when Batch could not be
// asked.
func InFlight(ctx context.Context, tasks TaskReader, jobID, key string, rec records.Record) (live records.Record, ok bool, err error) {
	ti, err := tasks.Task(ctx, jobID, key)
	switch {
	case err == nil:
		if rec.Source.Blob == "" && ti.Request.Source.Blob != "" {
			rec = recordFrom(rec, ti.Request)
		}
		if rec.Timings.Enqueued == nil {
			rec.Timings.Enqueued = tp(ti.Enqueued)
		}
		live := rec.InFlight(key, ti.State, ti.Created, ti.Started)
		if strings.EqualFold(ti.State, "running") {
			// Progress is a view: a task between its start and ffmpeg's
			// first block has none yet, and a read that fails shows none.
			if p, perr := tasks.Progress(ctx, jobID, key, ti.Started); perr == nil {
				live.Progress = progressView(p)
			}
		}
		return live, true, nil
	case errors.Is(err, batch.ErrTaskNotFound), errors.Is(err, batch.ErrJobNotFound):
		return rec, false, nil
	}
	return rec, false, err
}

func decodeHTTPRequest(req InvokeRequest) (httpRequest, error) {
	var hr httpRequest
	raw, ok := req.Data[BindingRequest]
	if !ok {
		return hr, errors.New("no request")
	}
	text, err := decodeValue(raw)
	if err != nil {
		return hr, err
	}
	if err := json.Unmarshal(text, &hr); err != nil {
		return hr, err
	}
	return hr, nil
}

// query accepts Query as an object (current hosts) or a JSON string
// holding one (older hosts), and falls back on the URL's query.
func (hr httpRequest) query() url.Values {
	v := url.Values{}
	if u, err := url.Parse(hr.URL); err == nil {
		v = u.Query()
	}
	if len(hr.Query) > 0 {
		if text, err := decodeValue(hr.Query); err == nil {
			var m map[string]string
			if json.Unmarshal(text, &m) == nil {
				for k, s := range m {
					v.Set(k, s)
				}
			}
		}
	}
	return v
}

func acceptsJSON(h map[string][]string) bool {
	for k, vs := range h {
		if !strings.EqualFold(k, "Accept") {
			continue
		}
		for _, s := range vs {
			if strings.Contains(strings.ToLower(s), "application/json") {
				return true
			}
		}
	}
	return false
}

// keyFromPath takes the segment after "status/" in the URL path.
func keyFromPath(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	segs := strings.Split(strings.Trim(u.Path, "/"), "/")
	for i := 0; i+1 < len(segs); i++ {
		if strings.EqualFold(segs[i], "status") {
			return segs[i+1]
		}
	}
	return ""
}

func jsonResponse(code int, v any) httpResponse {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"error":"encode"}`)
	}
	return httpResponse{StatusCode: code, Headers: map[string]string{"Content-Type": "application/json; charset=utf-8", "Cache-Control": "no-store"}, Body: string(b)}
}

type page struct {
	Summary *Summary
	States  []records.State
	Record  *records.Record
	Error   string
	// The summary page's function key (kept in its links and form), its
	// filter, its refresh period and the output download links by key.
	Code                    string
	FilterState, FilterName string
	Refresh                 int
	Downloads               map[string]string
	// Chart is the last hour's throughput; Reasons the failures by reason
	// over the records kept and the latest ones.
	Chart   *throughputChart
	Reasons []reasonRow
}

func (a *app) render(wantJSON bool, code int, v any, p *page) httpResponse {
	if wantJSON {
		return jsonResponse(code, v)
	}
	if p == nil {
		msg := ""
		if m, ok := v.(map[string]string); ok {
			msg = m["error"]
		}
		p = &page{Error: msg}
	}
	var buf bytes.Buffer
	if err := statusPage.Execute(&buf, p); err != nil {
		a.log.Error("status: render", "err", err)
		return jsonResponse(http.StatusInternalServerError, map[string]string{"error": "render"})
	}
	return httpResponse{StatusCode: code, Headers: map[string]string{"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"}, Body: buf.String()}
}

var statusPage = template.Must(template.New("status").Funcs(template.FuncMap{
	"count":   func(s *Summary, st records.State) int { return s.Counts[st] },
	"timings": timingLine,
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ffpipe status</title>
{{- if .Refresh}}<meta http-equiv="refresh" content="{{.Refresh}}">{{end}}
<style>body{font-family:system-ui,sans-serif;margin:2rem;color:#222}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3rem .6rem;text-align:left;vertical-align:top}th{background:#f4f4f4}.done{color:#070}.failed,.rejected,.bad_request,.input_missing{color:#b00}code{font-size:.9em}</style>
</head><body>
<h1>ffpipe status</h1>
{{- with .Error}}<p class="failed">{{.}}</p>{{end}}
{{- with .Summary}}
<h2>Counts ({{.Total}} records)</h2>
<table><tr>{{range $.States}}<th>{{.}}</th>{{end}}</tr>
<tr>{{range $.States}}<td>{{count $.Summary .}}</td>{{end}}</tr></table>
{{- with .Batch}}
<h2>Batch tasks (dispatched, not yet swept)</h2>
<table><tr><th>active</th><th>running</th><th>completed</th></tr>
<tr><td>{{.Active}}</td><td>{{.Running}}</td><td>{{.Completed}}</td></tr></table>
{{- end}}
{{- if .Indexed}}
<p>Ended in the last hour: <span id="ended-last-hour">{{.EndedLastHour}}</span> · records of the last {{.RetentionDays}} days</p>
{{- end}}
{{- with .Cost}}
<h2>Cost (node time, estimates)</h2>
<table><tr><th></th><th>node hours</th><th>at spot prices</th><th>at dedicated prices</th></tr>
<tr><th>today (UTC)</th><td>{{.NodeHoursToday}}</td><td>{{with .SpotToday}}{{.}}{{end}}</td><td>{{with .DedicatedToday}}{{.}}{{end}}</td></tr>
<tr><th>last 30 days</th><td>{{.NodeHoursLast30Days}}</td><td>{{with .SpotLast30Days}}{{.}}{{end}}</td><td>{{with .DedicatedLast30Days}}{{.}}{{end}}</td></tr></table>
{{- if .DailyBudget}}<p>Daily budget: {{.BudgetSpentToday}} of {{.DailyBudget}} spent today{{with .DispatchPausedUntil}}; <strong class="failed">dispatch paused until {{.}}</strong>: new work is rescheduled, not dropped{{end}}.</p>{{end}}
{{- end}}
<h2>Running</h2>
<table id="running"><tr><th>source</th><th>progress</th><th>started</th><th>key</th></tr>
{{- range .Running}}
<tr><td>{{.Source.Container}}/{{.Source.Blob}}</td><td>{{with .Progress}}<progress max="100" value="{{.Percent}}">{{.Percent}}%</progress> {{.Percent}}%{{if .ETASeconds}} · {{.ETASeconds}} s left{{end}}{{else}}starting{{end}}</td><td>{{with .Timings.Started}}{{.Format "15:04:05Z"}}{{end}}</td><td><code>{{.Key}}</code></td></tr>
{{- else}}
<tr><td colspan="4">nothing running</td></tr>
{{- end}}
</table>
{{- with $.Chart}}
<h2>Throughput, last hour</h2>
<figure><svg id="throughput" xmlns="http://www.w3.org/2000/svg" width="{{.Width}}" height="{{.Height}}" viewBox="0 0 {{.Width}} {{.Height}}" role="img" aria-label="files ended per {{.BinMinutes}} minutes, {{.From}} to {{.To}} UTC">
<line x1="0" y1="{{.BaseY}}" x2="{{.Width}}" y2="{{.BaseY}}" stroke="#999"/>
{{- range .Bars}}
<rect class="bar" x="{{.X}}" y="{{.Y}}" width="{{.W}}" height="{{.H}}" fill="#2a6db0" data-count="{{.Count}}"><title>{{.Label}}</title></rect>
{{- end}}
<text x="0" y="{{.Height}}" font-size="11">{{.From}}</text><text x="{{.Width}}" y="{{.Height}}" font-size="11" text-anchor="end">{{.To}}</text>
</svg>
<figcaption>files ended per {{.BinMinutes}} minutes, {{.From}}–{{.To}} UTC bins (the last still filling): <span id="throughput-total">{{.Total}}</span> in all, at most {{.Max}} in a bin</figcaption></figure>
{{- end}}
{{- if or $.Reasons .Indexed}}
<h2>Failures by reason</h2>
<table id="failures"><tr><th>reason</th>{{if .Indexed}}<th>records of the last {{.RetentionDays}} days</th>{{end}}<th>latest {{len .Recent}} records</th></tr>
{{- range $.Reasons}}
<tr data-reason="{{.Reason}}"><td>{{.Reason}}</td>{{if .HasKeptInfo}}<td>{{.Kept}}</td>{{end}}<td>{{.Latest}}</td></tr>
{{- else}}
<tr><td colspan="3">no failures</td></tr>
{{- end}}
</table>
{{- end}}
<h2>Recent</h2>
<form method="get" id="filter">{{if $.Code}}<input type="hidden" name="code" value="{{$.Code}}">{{end}}
<label>state <select name="state"><option value="">any</option>{{range $.States}}<option{{if eq (print .) $.FilterState}} selected{{end}}>{{.}}</option>{{end}}</select></label>
<label>name <input name="name" value="{{$.FilterName}}"></label> <button type="submit">filter</button></form>
<table id="recent"><tr><th>updated</th><th>state</th><th>source</th><th>output</th><th>reason</th><th>queued → dispatched → started → ended → swept</th><th>key</th></tr>
{{- range .Recent}}
<tr><td>{{.Updated.Format "2006-01-02 15:04:05Z"}}</td><td class="{{.State}}">{{.State}}</td><td>{{.Source.Container}}/{{.Source.Blob}}</td><td>{{if .Output.Blob}}{{with index $.Downloads .Key}}<a href="{{.}}">{{end}}{{.Output.Container}}/{{.Output.Blob}}{{with index $.Downloads .Key}}</a>{{end}}{{end}}</td><td>{{.Reason}}</td><td>{{timings .Timings}}</td><td><a href="status/{{.Key}}{{if $.Code}}?code={{$.Code}}{{end}}"><code>{{.Key}}</code></a></td></tr>
{{- end}}
</table>
{{- end}}
{{- with .Record}}
<h2>Record <code>{{.Key}}</code></h2>
<table>
<tr><th>state</th><td class="{{.State}}">{{.State}}</td></tr>
{{- if and .State.Terminal (ne .State "done")}}{{if not .RedrivenTo}}
<tr><th>redrive</th><td><form method="post"><button type="submit" id="redrive">Redrive this file</button></form></td></tr>
{{- end}}{{end}}
{{- with .RedrivenTo}}
<tr><th>redriven as</th><td><a href="{{.}}"><code>{{.}}</code></a></td></tr>
{{- end}}
{{- with .Progress}}
<tr><th>progress</th><td><progress max="100" value="{{.Percent}}">{{.Percent}}%</progress> {{.Percent}}% · {{.DoneSeconds}} of {{.DurationSeconds}} s{{if .ETASeconds}} · about {{.ETASeconds}} s left{{end}}</td></tr>
{{- end}}
<tr><th>reason</th><td>{{.Reason}}</td></tr>
<tr><th>source</th><td>{{.Source.Container}}/{{.Source.Blob}} ({{.Source.Size}} bytes, eTag {{.Source.ETag}})</td></tr>
<tr><th>output</th><td>{{.Output.Container}}/{{.Output.Blob}}{{if .Output.Size}} ({{.Output.Size}} bytes){{end}}</td></tr>
<tr><th>profile</th><td>{{.Preset}}</td></tr>
{{- with .Outputs}}
<tr><th>outputs</th><td>{{range .}}{{.Name}}: {{.Blob}}{{if .Size}} · {{.Size}} bytes{{end}}{{if .Height}} · {{.Height}}p{{end}}{{if .Duration}} · {{printf "%.2f" .Duration}} s{{end}}<br>{{end}}</td></tr>
{{- end}}
<tr><th>exit code</th><td>{{with .ExitCode}}{{.}}{{end}}</td></tr>
<tr><th>attempts</th><td>{{.Attempts}}</td></tr>
<tr><th>correlation id</th><td><code>{{.CorrelationID}}</code></td></tr>
{{- with .Timings}}
<tr><th>event</th><td>{{with .Event}}{{.}}{{end}}</td></tr>
<tr><th>enqueued</th><td>{{with .Enqueued}}{{.}}{{end}}</td></tr>
<tr><th>dispatched</th><td>{{with .Dispatched}}{{.}}{{end}}</td></tr>
<tr><th>started</th><td>{{with .Started}}{{.}}{{end}}</td></tr>
<tr><th>ended</th><td>{{with .Ended}}{{.}}{{end}}</td></tr>
<tr><th>swept</th><td>{{with .Swept}}{{.}}{{end}}</td></tr>
{{- end}}
<tr><th>updated</th><td>{{.Updated}}</td></tr>
</table>
{{- end}}
</body></html>
`))
