package batch

import (
	"bytes"
	"encoding/json"
	"testing"
)

// TestRecordLine: a log line spliced by appendLine is byte for byte what
// json.Marshal of the record gives, and it reads back to the same record.
func TestRecordLine(t *testing.T) {
	v, err := json.Marshal(map[string]any{"commandLine": `/bin/sh -c 'a > b && c < d; echo "x"'`, "n": 1})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		rec  record
	}{
		{"put with a value", record{Kind: "task", Op: "put", Job: "j", Key: "t1", Seq: 7, Dir: "d/t1", V: v}},
		{"delete without a value", record{Kind: "task", Op: "del", Job: "j", Key: "t1"}},
		{"pool", record{Kind: "pool", Op: "put", Key: "p<1>", V: json.RawMessage(`{"id":"p"}`)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.rec.appendLine([]byte("prev\n"))
			if err != nil {
				t.Fatal(err)
			}
			want, err := json.Marshal(&tt.rec)
			if err != nil {
				t.Fatal(err)
			}
			want = append([]byte("prev\n"), append(want, '\n')...)
			if !bytes.Equal(got, want) {
				t.Fatalf("appendLine:\ngot  %s\nwant %s", got, want)
			}
			var back record
			if err := json.Unmarshal(bytes.TrimPrefix(bytes.TrimSpace(got), []byte("prev\n")), &back); err != nil {
				t.Fatalf("read back: %v", err)
			}
			if back.Kind != tt.rec.Kind || back.Key != tt.rec.Key || back.Seq != tt.rec.Seq || !bytes.Equal(back.V, tt.rec.V) {
				t.Errorf("read back %+v, want %+v", back, tt.rec)
			}
		})
	}
}
