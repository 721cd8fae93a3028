package handlers

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ffpipe/ffpipe/internal/batch"
	"github.com/ffpipe/ffpipe/internal/queue"
	"github.com/ffpipe/ffpipe/internal/records"
	"github.com/ffpipe/ffpipe/internal/request"
)

// SpendReader tells the budget guard today's node time (records.Index).
type SpendReader interface {
	NodeSecondsToday(ctx context.Context) (float64, error)
}

var _ SpendReader = (*records.Index)(nil)

// spendCacheFor is how long Dispatch trusts the spend it read: a budget is
// a guard, not an invoice, and reading it for every batch would cost a
// storage call per invocation.
const spendCacheFor = 10 * time.Second

func (a *app) prices() records.Prices {
	return records.Prices{Spot: a.cfg.NodePriceSpot, Dedicated: a.cfg.NodePriceDedicated}
}

// CostView is what Status says about cost: node time and the estimates
// at the configured prices, today and over the last 30 days (UTC), and
// the daily budget.
type CostView struct {
	NodeHoursToday      float64  `json:"nodeHoursToday"`
	NodeHoursLast30Days float64  `json:"nodeHoursLast30Days"`
	SpotToday           *float64 `json:"spotToday,omitempty"`
	DedicatedToday      *float64 `json:"dedicatedToday,omitempty"`
	SpotLast30Days      *float64 `json:"spotLast30Days,omitempty"`
	DedicatedLast30Days *float64 `json:"dedicatedLast30Days,omitempty"`
	DailyBudget         float64  `json:"dailyBudget,omitempty"`
	BudgetSpentToday    float64  `json:"budgetSpentToday,omitempty"`
	DispatchPausedUntil string   `json:"dispatchPausedUntil,omitempty"`
}

func (a *app) costView(sum records.Summary) *CostView {
	if !sum.Indexed {
		return nil
	}
	p := a.prices()
	money := func(ns, perHour float64) *float64 {
		if perHour <= 0 {
			return nil
		}
		v := round2(ns / 3600 * perHour)
		return &v
	}
	c := &CostView{
		NodeHoursToday: round2(sum.NodeSecondsToday / 3600), NodeHoursLast30Days: round2(sum.NodeSecondsLast30Days / 3600),
		SpotToday: money(sum.NodeSecondsToday, p.Spot), DedicatedToday: money(sum.NodeSecondsToday, p.Dedicated),
		SpotLast30Days: money(sum.NodeSecondsLast30Days, p.Spot), DedicatedLast30Days: money(sum.NodeSecondsLast30Days, p.Dedicated),
	}
	if a.cfg.DailyBudget > 0 {
		c.DailyBudget = a.cfg.DailyBudget
		c.BudgetSpentToday = round2(sum.NodeSecondsToday / 3600 * p.Budgeted())
		if c.BudgetSpentToday >= a.cfg.DailyBudget {
			c.DispatchPausedUntil = nextUTCDay(a.now()).Format(time.RFC3339)
		}
	}
	return c
}

func round2(v float64) float64 { return float64(int64(v*100+0.5)) / 100 }

func nextUTCDay(now time.Time) time.Time {
	return now.UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
}

// budgetGuard caches today's spend for Dispatch.
type budgetGuard struct {
	mu     sync.Mutex
	read   time.Time
	day    string
	spent  float64
	warned string
}

// budgetSpent reports whether FFPIPE_DAILY_BUDGET is spent today. A spend
// that cannot be read does not stop the pipeline (the guard is a limit on
// cost, and storage trouble shows elsewhere).
func (a *app) budgetSpent(ctx context.Context) (bool, float64) {
	if a.cfg.DailyBudget <= 0 || a.d.Spend == nil {
		return false, 0
	}
	now := a.now()
	g := &a.budget
	g.mu.Lock()
	defer g.mu.Unlock()
	today := now.UTC().Format(time.DateOnly)
	if g.day != today || now.Sub(g.read) >= spendCacheFor || now.Before(g.read) {
		ns, err := a.d.Spend.NodeSecondsToday(ctx)
		if err != nil {
			a.log.Warn("dispatch: today's spend not read; the budget is not checked", "err", err)
			return false, 0
		}
		g.read, g.day, g.spent = now, today, ns/3600*a.prices().Budgeted()
	}
	return g.spent >= a.cfg.DailyBudget, g.spent
}

// deferForBudget sends every request of specs again, scheduled for the
// start of the next UTC day when the budget resets, and so lets Dispatch
// complete the messages without adding tasks: nothing is dropped. The new
// message id is the key and the day, so a redelivered batch schedules each
// request once per day (duplicate detection).
func (a *app) deferForBudget(ctx context.Context, inv *invocation, specs []batch.TaskSpec, logs map[string]*slog.Logger, spent float64) error {
	resume := nextUTCDay(a.now())
	for _, s := range specs {
		body, err := s.Request.Encode()
		if err != nil {
			return fmt.Errorf("budget: encode %s: %w", s.Key, err)
		}
		msg := queue.Message{ID: s.Key + "-budget-" + resume.Format("20060102"), CorrelationID: s.Request.CorrelationID, Body: body,
			Properties: map[string]any{"v": int64(request.Version), "key": s.Key, "origin": FuncDispatch, "deferred": "budget"},
			NotBefore:  resume}
		if err := a.d.Queue.Send(ctx, msg); err != nil {
			return fmt.Errorf("budget: reschedule %s: %w", s.Key, err)
		}
		if l := logs[s.Key]; l != nil {
			l.Debug("daily budget spent: rescheduled", "notBefore", resume)
		}
	}
	a.budget.mu.Lock()
	first := a.budget.warned != resume.Format(time.DateOnly)
	a.budget.warned = resume.Format(time.DateOnly)
	a.budget.mu.Unlock()
	msg := fmt.Sprintf("dispatch: daily budget spent (%.2f of %.2f, FFPIPE_DAILY_BUDGET): %d requests rescheduled to %s, no tasks added",
		spent, a.cfg.DailyBudget, len(specs), resume.Format(time.RFC3339))
	if first {
		a.log.Warn(msg)
	}
	inv.logf("%s", msg)
	return nil
}
