package funchost

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
)

var update = flag.Bool("update", false, "rewrite testdata/golden")

// TestGoldenPayloads renders the invocation bodies the host sends for fixed
// inputs (the examples of docs/functions-host-protocol.md#trigger-payloads) and compares them with
// testdata/golden/*.json, which handler tests may reuse. sys and the SDK
// Client object are normalised because they hold a time and random ids.
func TestGoldenPayloads(t *testing.T) {
	now := time.Date(2026, 3, 1, 9, 12, 34, 10000000, time.UTC)
	sbFn := func(card, dataType string) *function {
		return &function{Name: "ProcessOrder", Trigger: binding{Type: "serviceBusTrigger", Name: "msg", Cardinality: card, DataType: dataType},
			conn: Connection{ConnectionString: "Endpoint=sb://mybus.servicebus.windows.net/;SharedAccessKeyName=a;SharedAccessKey=b"}}
	}
	m1 := sbMessage("c0ffee00-1234-4abc-9def-000000000001", `{"orderId":"A-1001","qty":2}`, 1)
	m2 := sbMessage("id-2", "plain text body", 3)
	m2.ContentType = nil
	m2.ApplicationProperties = nil
	tests := []struct {
		name string
		body func() (map[string]json.RawMessage, metadata)
		fn   string
	}{
		{"servicebus-one", func() (map[string]json.RawMessage, metadata) {
			d, m, err := sbSinglePayload(sbFn("", ""), m1)
			must(t, err)
			return d, m
		}, "ProcessOrder"},
		{"servicebus-many", func() (map[string]json.RawMessage, metadata) {
			d, m, err := sbBatchPayload(sbFn("many", "string"), []*azservicebus.ReceivedMessage{m1, m2})
			must(t, err)
			return d, m
		}, "ProcessOrder"},
		{"eventgrid-one", func() (map[string]json.RawMessage, metadata) {
			text := indentEvent(json.RawMessage(blobCreated))
			meta := metadata{}
			var top struct{ Data json.RawMessage }
			must(t, json.Unmarshal([]byte(blobCreated), &top))
			meta["data"] = top.Data
			meta.applyBindingData(text)
			return map[string]json.RawMessage{"event": encJSONText(text)}, meta
		}, "OnBlobCreated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, meta := tt.body()
			md := meta.finish(tt.fn, now)
			md["sys"] = marshal(map[string]string{"MethodName": tt.fn, "UtcNow": netUtcNow(now), "RandGuid": "00000000-0000-0000-0000-000000000000"})
			if _, ok := md["Client"]; ok {
				md["Client"] = json.RawMessage(`{"FullyQualifiedNamespace":"mybus.servicebus.windows.net","IsClosed":false,"TransportType":0,"Identifier":"…"}`)
			}
			var got bytes.Buffer
			must(t, json.Indent(&got, marshal(map[string]any{"Data": data, "Metadata": md}), "", "  "))
			got.WriteByte('\n')
			path := filepath.Join("testdata", "golden", tt.name+".json")
			if *update {
				must(t, os.WriteFile(path, got.Bytes(), 0o644))
			}
			want, err := os.ReadFile(path)
			must(t, err)
			if !bytes.Equal(got.Bytes(), want) {
				t.Errorf("payload differs from %s (run with -update after checking):\ngot:\n%s", path, got.Bytes())
			}
		})
	}
}
