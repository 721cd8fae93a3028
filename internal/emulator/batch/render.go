package batch

import (
	"bytes"
	"encoding/json"
	"iter"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ffpipe/ffpipe/internal/emulator/batch/odata"
)

// Filter schemas per entity (property names are case-sensitive, as in Batch).
var (
	taskSchema = odata.Schema{
		"id":                             {Kind: odata.String, StartsWith: true},
		"displayName":                    {Kind: odata.String, StartsWith: true},
		"state":                          {Kind: odata.String, EqOnly: true},
		"previousState":                  {Kind: odata.String, EqOnly: true},
		"creationTime":                   {Kind: odata.DateTime},
		"lastModified":                   {Kind: odata.DateTime},
		"lastModifiedTime":               {Kind: odata.DateTime},
		"stateTransitionTime":            {Kind: odata.DateTime},
		"executionInfo/startTime":        {Kind: odata.DateTime},
		"executionInfo/endTime":          {Kind: odata.DateTime},
		"executionInfo/exitCode":         {Kind: odata.Int},
		"executionInfo/result":           {Kind: odata.String, EqOnly: true},
		"executionInfo/retryCount":       {Kind: odata.Int},
		"executionInfo/requeueCount":     {Kind: odata.Int},
		"executionInfo/failureInfo/code": {Kind: odata.String, EqOnly: true},
		"nodeInfo/nodeId":                {Kind: odata.String, EqOnly: true},
	}
	jobSchema = odata.Schema{
		"id":                      {Kind: odata.String, StartsWith: true},
		"state":                   {Kind: odata.String, EqOnly: true},
		"priority":                {Kind: odata.Int},
		"creationTime":            {Kind: odata.DateTime},
		"lastModified":            {Kind: odata.DateTime},
		"stateTransitionTime":     {Kind: odata.DateTime},
		"executionInfo/startTime": {Kind: odata.DateTime},
		"executionInfo/endTime":   {Kind: odata.DateTime},
		"executionInfo/poolId":    {Kind: odata.String, EqOnly: true},
		"poolInfo/poolId":         {Kind: odata.String, EqOnly: true},
	}
	poolSchema = odata.Schema{
		"id":                      {Kind: odata.String, StartsWith: true},
		"state":                   {Kind: odata.String, EqOnly: true},
		"allocationState":         {Kind: odata.String, EqOnly: true},
		"vmSize":                  {Kind: odata.String, EqOnly: true},
		"creationTime":            {Kind: odata.DateTime},
		"lastModified":            {Kind: odata.DateTime},
		"stateTransitionTime":     {Kind: odata.DateTime},
		"currentDedicatedNodes":   {Kind: odata.Int},
		"currentLowPriorityNodes": {Kind: odata.Int},
		"enableAutoScale":         {Kind: odata.Bool},
	}
	nodeSchema = odata.Schema{
		"id":              {Kind: odata.String, StartsWith: true},
		"state":           {Kind: odata.String, EqOnly: true},
		"schedulingState": {Kind: odata.String, EqOnly: true},
		"isDedicated":     {Kind: odata.Bool},
	}
)

func taskGetter(t *taskEntry) odata.Getter {
	return func(p string) (any, bool) {
		w := &t.w
		ei := w.ExecutionInfo
		switch p {
		case "id":
			return w.ID, true
		case "displayName":
			return w.DisplayName, w.DisplayName != ""
		case "state":
			return w.State, true
		case "previousState":
			return w.PreviousState, w.PreviousState != ""
		case "creationTime":
			return w.CreationTime, true
		case "lastModified", "lastModifiedTime":
			return w.LastModified, true
		case "stateTransitionTime":
			return w.StateTransitionTime, true
		case "nodeInfo/nodeId":
			if w.NodeInfo == nil {
				return nil, false
			}
			return w.NodeInfo.NodeID, true
		}
		if ei == nil {
			return nil, false
		}
		switch p {
		case "executionInfo/startTime":
			return timeOpt(ei.StartTime)
		case "executionInfo/endTime":
			return timeOpt(ei.EndTime)
		case "executionInfo/exitCode":
			if ei.ExitCode == nil {
				return nil, false
			}
			return int64(*ei.ExitCode), true
		case "executionInfo/result":
			return ei.Result, ei.Result != ""
		case "executionInfo/retryCount":
			return int64(ei.RetryCount), true
		case "executionInfo/requeueCount":
			return int64(ei.RequeueCount), true
		case "executionInfo/failureInfo/code":
			if ei.FailureInfo == nil {
				return nil, false
			}
			return ei.FailureInfo.Code, true
		}
		return nil, false
	}
}

func jobGetter(j *jobEntry) odata.Getter {
	return func(p string) (any, bool) {
		w := &j.w
		switch p {
		case "id":
			return w.ID, true
		case "state":
			return w.State, true
		case "priority":
			if w.Priority == nil {
				return int64(0), true
			}
			return int64(*w.Priority), true
		case "creationTime":
			return w.CreationTime, true
		case "lastModified":
			return w.LastModified, true
		case "stateTransitionTime":
			return w.StateTransitionTime, true
		case "poolInfo/poolId":
			if w.PoolInfo == nil {
				return nil, false
			}
			return w.PoolInfo.PoolID, true
		}
		if w.ExecutionInfo == nil {
			return nil, false
		}
		switch p {
		case "executionInfo/startTime":
			return w.ExecutionInfo.StartTime, true
		case "executionInfo/endTime":
			return timeOpt(w.ExecutionInfo.EndTime)
		case "executionInfo/poolId":
			return w.ExecutionInfo.PoolID, true
		}
		return nil, false
	}
}

func poolGetter(p *poolEntry) odata.Getter {
	return func(name string) (any, bool) {
		w := &p.w
		switch name {
		case "id":
			return w.ID, true
		case "state":
			return w.State, true
		case "allocationState":
			return w.AllocationState, true
		case "vmSize":
			return w.VMSize, true
		case "creationTime":
			return w.CreationTime, true
		case "lastModified":
			return w.LastModified, true
		case "stateTransitionTime":
			return w.StateTransitionTime, true
		case "currentDedicatedNodes":
			return int64(w.CurrentDedicatedNodes), true
		case "currentLowPriorityNodes":
			return int64(w.CurrentLowPriorityNodes), true
		case "enableAutoScale":
			return p.autoScale(), true
		}
		return nil, false
	}
}

func nodeGetter(w *nodeWire) odata.Getter {
	return func(name string) (any, bool) {
		switch name {
		case "id":
			return w.ID, true
		case "state":
			return w.State, true
		case "schedulingState":
			return w.SchedulingState, true
		case "isDedicated":
			return w.IsDedicated, true
		}
		return nil, false
	}
}

func timeOpt(t *time.Time) (any, bool) {
	if t == nil {
		return nil, false
	}
	return *t, true
}

// jsonProps lists the top-level JSON names of a wire type (for $select).
var propCache sync.Map

func jsonProps(v any) map[string]bool {
	t := reflect.TypeOf(v)
	if m, ok := propCache.Load(t); ok {
		return m.(map[string]bool)
	}
	m := map[string]bool{}
	var walk func(reflect.Type)
	walk = func(t reflect.Type) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if f.Anonymous {
				walk(f.Type)
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name != "" && name != "-" {
				m[name] = true
			}
		}
	}
	walk(t)
	propCache.Store(t, m)
	return m
}

type listQuery struct {
	filter odata.Expr
	sel    map[string]bool
	max    int
	token  string
}

// parseList reads $filter, $select, $expand, maxresults and $skiptoken.
func (c *reqCtx) parseList(schema odata.Schema, wire any) (*listQuery, *apiError) {
	lq := &listQuery{max: 1000, token: c.q.Get("$skiptoken")}
	if f := c.q.Get("$filter"); strings.TrimSpace(f) != "" {
		e, err := odata.Parse(f, schema)
		if err != nil {
			return nil, errBadQuery("$filter", f, err.Error())
		}
		lq.filter = e
	}
	sel, aerr := c.parseSelect(wire)
	if aerr != nil {
		return nil, aerr
	}
	lq.sel = sel
	if aerr := c.checkExpand(); aerr != nil {
		return nil, aerr
	}
	if m := c.q.Get("maxresults"); m != "" {
		n, err := strconv.Atoi(m)
		if err != nil || n < 1 || n > 1000 {
			return nil, errBadQuery("maxresults", m, "maxresults must be an integer between 1 and 1000")
		}
		lq.max = n
	}
	return lq, nil
}

func (c *reqCtx) parseSelect(wire any) (map[string]bool, *apiError) {
	v := c.q.Get("$select")
	if strings.TrimSpace(v) == "" {
		return nil, nil
	}
	props := jsonProps(wire)
	sel := map[string]bool{}
	for _, p := range strings.Split(v, ",") {
		p = strings.TrimSpace(p)
		if !props[p] {
			return nil, errBadQuery("$select", v, "unknown property "+strconv.Quote(p))
		}
		sel[p] = true
	}
	return sel, nil
}

func (c *reqCtx) checkExpand() *apiError {
	v := c.q.Get("$expand")
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" && p != "stats" {
			return errBadQuery("$expand", v, "only stats can be expanded")
		}
	}
	return nil
}

// marshalEntity encodes v, keeping only the selected top-level properties.
func marshalEntity(v any, sel map[string]bool) []byte {
	b, err := json.Marshal(v)
	if err != nil || sel == nil {
		return b
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(b, &m) != nil {
		return b
	}
	for k := range m {
		if !sel[k] {
			delete(m, k)
		}
	}
	out, _ := json.Marshal(m)
	return out
}

// nextLink is the absolute URL of the next page (same query plus $skiptoken).
func (c *reqCtx) nextLink(token string) string {
	q := url.Values{}
	for k, v := range c.q {
		q[k] = v
	}
	q.Set("$skiptoken", token)
	return c.s.url + c.r.URL.EscapedPath() + "?" + q.Encode()
}

// writeList sends {"odata.metadata","value":[...],"odata.nextLink"}.
func (c *reqCtx) writeList(metadata string, items [][]byte, next string) {
	var b bytes.Buffer
	b.WriteString(`{"value":[`)
	for i, it := range items {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(it)
	}
	b.WriteByte(']')
	if next != "" {
		nl, _ := json.Marshal(next)
		b.WriteString(`,"odata.nextLink":`)
		b.Write(nl)
	}
	b.WriteByte('}')
	c.writeJSON(http.StatusOK, metadata, b.Bytes())
}

// listKeyed pages a small collection ordered by key.
type keyed struct {
	key string
	get odata.Getter
	v   any
}

func (c *reqCtx) listKeyed(metadata string, lq *listQuery, items []keyed) {
	sort.Slice(items, func(a, b int) bool { return items[a].key < items[b].key })
	start := 0
	if lq.token != "" {
		start = sort.Search(len(items), func(i int) bool { return items[i].key > lq.token })
	}
	out, next := page(c, lq, slices.Values(items[start:]),
		func(it keyed) odata.Getter { return it.get },
		func(it keyed) any { return it.v },
		func(it keyed) string { return it.key })
	c.writeList(metadata, out, next)
}

// page marshals the members that pass lq's filter, lq.max at most, and
// links the next page after the last one sent. get gives a member's filter
// getter (called only when there is a filter), render its read model and
// token its $skiptoken.
func page[E any](c *reqCtx, lq *listQuery, members iter.Seq[E], get func(E) odata.Getter,
	render func(E) any, token func(E) string) (out [][]byte, next string) {
	var last E
	for e := range members {
		if lq.filter != nil && !lq.filter.Eval(get(e)) {
			continue
		}
		if len(out) == lq.max {
			return out, c.nextLink(token(last))
		}
		out = append(out, marshalEntity(render(e), lq.sel))
		last = e
	}
	return out, ""
}

// conditions applies If-Match, If-None-Match, If-Modified-Since and
// If-Unmodified-Since. read selects 304 (GET) over 412 (writes).
func (c *reqCtx) conditions(etag string, lm time.Time, read bool) (status int, aerr *apiError) {
	h := c.r.Header
	match := func(v string) bool {
		for _, e := range strings.Split(v, ",") {
			e = strings.Trim(strings.TrimSpace(e), `"`)
			if e == "*" || e == etag {
				return true
			}
		}
		return false
	}
	if v := h.Get("If-Match"); v != "" && !match(v) {
		return http.StatusPreconditionFailed, errCondition
	}
	if v := h.Get("If-Unmodified-Since"); v != "" {
		if t, err := http.ParseTime(v); err == nil && lm.Truncate(time.Second).After(t) {
			return http.StatusPreconditionFailed, errCondition
		}
	}
	if v := h.Get("If-None-Match"); v != "" && match(v) {
		if read {
			return http.StatusNotModified, nil
		}
		return http.StatusPreconditionFailed, errCondition
	}
	if v := h.Get("If-Modified-Since"); v != "" && read {
		if t, err := http.ParseTime(v); err == nil && !lm.Truncate(time.Second).After(t) {
			return http.StatusNotModified, nil
		}
	}
	return 0, nil
}

// checkConditions writes the 304/412 reply and returns false when the
// request must stop.
func (c *reqCtx) checkConditions(etag string, lm time.Time, read bool) bool {
	status, aerr := c.conditions(etag, lm, read)
	switch {
	case aerr != nil:
		c.fail(aerr)
		return false
	case status == http.StatusNotModified:
		c.entityHeaders(etag, lm)
		c.w.WriteHeader(http.StatusNotModified)
		return false
	}
	return true
}
