package funchost

import (
	"encoding/json"
	"strings"
	"testing"
)

// FuzzSplitEvents: the webhook body parser never panics, and every event it
// returns is a JSON object that renders to indented text which parses back.
func FuzzSplitEvents(f *testing.F) {
	f.Add([]byte("[" + blobCreated + "]"))
	f.Add([]byte(blobCreated))
	f.Add([]byte(`[]`))
	f.Add([]byte(`[{"a":1},2]`))
	f.Add([]byte(`{"a":`))
	f.Fuzz(func(t *testing.T, body []byte) {
		events, err := splitEvents(body)
		if err != nil {
			return
		}
		for _, ev := range events {
			text := indentEvent(ev)
			var m map[string]any
			if err := json.Unmarshal([]byte(text), &m); err != nil {
				t.Fatalf("event %s renders to %q which does not parse: %v", ev, text, err)
			}
		}
	})
}

// FuzzApplyBindingData: metadata pollution never panics and only ever adds
// double-encoded strings or objects.
func FuzzApplyBindingData(f *testing.F) {
	f.Add(`{"orderId":"A-1001","qty":2,"ok":true,"when":"2026-03-01T09:12:33Z","o":{"a":1},"arr":[1]}`)
	f.Add(`plain text`)
	f.Add(`{"MessageId":null}`)
	f.Fuzz(func(t *testing.T, body string) {
		m := metadata{}
		m.applyBindingData(body)
		for k, v := range m {
			switch {
			case len(v) > 0 && v[0] == '{':
				if !json.Valid(v) {
					t.Fatalf("%s: invalid object %s", k, v)
				}
			default:
				var outer string
				if err := json.Unmarshal(v, &outer); err != nil {
					t.Fatalf("%s: %s is not a JSON string", k, v)
				}
				var inner string
				if err := json.Unmarshal([]byte(outer), &inner); err != nil {
					t.Fatalf("%s: %s is not double-encoded", k, v)
				}
			}
		}
	})
}

// FuzzRoute: route templates either fail with ErrConfig or match paths
// without panicking; a template without parameters matches itself.
func FuzzRoute(f *testing.F) {
	f.Add("orders/{id?}", "/orders/7")
	f.Add("files/{*rest}", "/files/a/b")
	f.Add("{a}/{b:int}", "/x/1")
	f.Add("status", "/status")
	f.Fuzz(func(t *testing.T, tmpl, path string) {
		r, err := newHTTPRoute(&function{Name: "F", Trigger: binding{Route: tmpl}})
		if err != nil {
			return
		}
		r.match(path)
		if !strings.ContainsAny(tmpl, "{}%") && strings.Trim(tmpl, "/") != "" && !strings.Contains(strings.Trim(tmpl, "/"), "//") {
			if _, ok := r.match("/" + strings.Trim(tmpl, "/")); !ok {
				t.Fatalf("literal route %q does not match itself", tmpl)
			}
		}
	})
}

// FuzzParseTimeSpan never panics and never returns a negative duration.
func FuzzParseTimeSpan(f *testing.F) {
	for _, s := range []string{"00:05:00", "1.00:00:00", "-1", "00:00:00.5", "99:59:59"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := parseTimeSpan(s)
		if err == nil && d < 0 {
			t.Fatalf("parseTimeSpan(%q) = %v", s, d)
		}
	})
}
