package handlers

import (
	"encoding/json"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ffpipe/ffpipe/internal/batch"
	"github.com/ffpipe/ffpipe/internal/request"
)

// TestDailyBudget: a settled task carries its node time and cost; once the
// day's spend reaches FFPIPE_DAILY_BUDGET, Dispatch adds no task and
// reschedules every request to the next UTC day (nothing dropped), and
// Status says dispatch is paused. Below the budget, Dispatch works.
func TestDailyBudget(t *testing.T) {
	for _, tc := range []struct {
		name       string
		budget     string
		wantPaused bool
	}{
		{"budget spent", "1.5", true},
		{"budget left", "5", false},
		{"no budget", "0", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(m map[string]string) {
				m["FFPIPE_NODE_PRICE_PER_HOUR"] = "spot=0.5,dedicated=1"
				m["FFPIPE_DAILY_BUDGET"] = tc.budget
				m["FFPIPE_TASK_MAX_SLOTS"] = "2" // a two-slot node
			})
			// Two hours on both slots of a two-slot node: 2 node hours,
			// 1.00 at spot prices and 2.00 at dedicated ones.
			f := e.dispatched("v/long.mp4")
			e.blobs.put("output", "v/long.mp3", []byte("mp3-bytes"), e.now)
			e.complete(f, true, 0, func(ct *batch.CompletedTask) {
				ct.Start, ct.End, ct.RequiredSlots = e.now.Add(-150*time.Minute), e.now.Add(-30*time.Minute), 2
			})
			if code := e.sweep(); code != http.StatusOK {
				t.Fatalf("sweep: got %d", code)
			}
			c := e.record(f.key).Cost
			if c == nil || c.NodeSeconds != 7200 || c.RequiredSlots != 2 || c.SlotsPerNode != 2 || c.Spot == nil || math.Abs(*c.Spot-1) > 1e-9 || c.Dedicated == nil || math.Abs(*c.Dedicated-2) > 1e-9 {
				t.Fatalf("record cost: got %+v, want 7200 node seconds, 1.00 spot, 2.00 dedicated", c)
			}

			e.blobs.put("input", "next.mp4", []byte("0123456789"), e.now)
			before := len(e.queue.messages())
			code, resp := e.invoke(FuncDispatch, batchEnvelope([]string{"m1"}, body("next.mp4", "")))
			if code != http.StatusOK {
				t.Fatalf("dispatch: got %d (%v), want 200", code, resp.Logs)
			}
			key := request.Key("ingestacct", "input", "next.mp4", e.blobs.blobs["input/next.mp4"].etag)
			sent := e.queue.messages()[before:]
			if tc.wantPaused {
				resume := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
				if e.batch.has(key) {
					t.Errorf("a task was added although the budget is spent")
				}
				if len(sent) != 1 || sent[0].ID != key+"-budget-20260302" || !sent[0].NotBefore.Equal(resume) {
					t.Fatalf("rescheduled: got %+v, want one message for %s at %v", sent, key, resume)
				}
				var req request.Request
				if err := json.Unmarshal(sent[0].Body, &req); err != nil || req.Source.Blob != "next.mp4" {
					t.Errorf("rescheduled body: got %s, %v", sent[0].Body, err)
				}
				if !strings.Contains(strings.Join(resp.Logs, "\n"), "daily budget spent") {
					t.Errorf("dispatch logs do not say why: %v", resp.Logs)
				}
			} else if !e.batch.has(key) || len(sent) != 0 {
				t.Errorf("below the budget: task added %v, messages sent %d; want a task and none", e.batch.has(key), len(sent))
			}

			hr := e.status(statusEnvelope("http://localhost/api/status?format=json", map[string]string{"format": "json"}, nil))
			var sum Summary
			if err := json.Unmarshal([]byte(hr.Body), &sum); err != nil {
				t.Fatal(err)
			}
			if sum.Cost == nil || sum.Cost.NodeHoursToday != 2 || sum.Cost.DedicatedToday == nil || *sum.Cost.DedicatedToday != 2 || (sum.Cost.DispatchPausedUntil != "") != tc.wantPaused {
				t.Errorf("status cost: got %+v, want 2 node hours, 2.00 dedicated, paused %v", sum.Cost, tc.wantPaused)
			}
		})
	}
}
