package store

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/ffpipe/ffpipe/internal/isoduration"
)

// FormatConfig writes c as a Config.json in the official emulator's format
// (what [ParseConfig] reads back). c is validated first, so defaults are
// written out explicitly.
func FormatConfig(c *Config) ([]byte, error) {
	v := c.Clone()
	if err := v.Validate(); err != nil {
		return nil, fmt.Errorf("format config: %w", err)
	}
	queues := make([]any, 0, len(v.Queues))
	for _, q := range v.Queues {
		queues = append(queues, map[string]any{"Name": q.Name, "Properties": queueProps(q, true)})
	}
	topics := make([]any, 0, len(v.Topics))
	for _, t := range v.Topics {
		subs := make([]any, 0, len(t.Subscriptions))
		for _, s := range t.Subscriptions {
			rules := make([]any, 0, len(s.Rules))
			for _, r := range s.Rules {
				rules = append(rules, map[string]any{"Name": r.Name, "Properties": ruleProps(r)})
			}
			subs = append(subs, map[string]any{"Name": s.Name, "Properties": queueProps(s.QueueConfig, false), "Rules": rules})
		}
		topics = append(topics, map[string]any{
			"Name": t.Name,
			"Properties": map[string]any{
				"DefaultMessageTimeToLive":            isoduration.Format(t.DefaultMessageTimeToLive),
				"DuplicateDetectionHistoryTimeWindow": isoduration.Format(t.DuplicateDetectionHistoryTimeWindow),
				"RequiresDuplicateDetection":          t.RequiresDuplicateDetection,
			},
			"Subscriptions": subs,
		})
	}
	f := map[string]any{"UserConfig": map[string]any{
		"Namespaces": []any{map[string]any{"Name": v.Namespace, "Queues": queues, "Topics": topics}},
		"Logging":    map[string]any{"Type": "File"},
	}}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("format config: %w", err)
	}
	return append(b, '\n'), nil
}

func queueProps(q QueueConfig, dedup bool) map[string]any {
	p := map[string]any{
		"DeadLetteringOnMessageExpiration": q.DeadLetteringOnMessageExpiration,
		"DefaultMessageTimeToLive":         isoduration.Format(q.DefaultMessageTimeToLive),
		"ForwardDeadLetteredMessagesTo":    q.ForwardDeadLetteredMessagesTo,
		"ForwardTo":                        q.ForwardTo,
		"LockDuration":                     isoduration.Format(q.LockDuration),
		"MaxDeliveryCount":                 q.MaxDeliveryCount,
		"RequiresSession":                  false,
	}
	if dedup {
		p["DuplicateDetectionHistoryTimeWindow"] = isoduration.Format(q.DuplicateDetectionHistoryTimeWindow)
		p["RequiresDuplicateDetection"] = q.RequiresDuplicateDetection
	}
	return p
}

func ruleProps(r RuleConfig) map[string]any {
	p := map[string]any{}
	switch r.FilterType {
	case FilterCorrelation:
		cf := map[string]any{}
		for _, f := range []struct{ key, v string }{
			{"CorrelationId", r.Correlation.CorrelationID}, {"MessageId", r.Correlation.MessageID},
			{"To", r.Correlation.To}, {"ReplyTo", r.Correlation.ReplyTo}, {"Label", r.Correlation.Label},
			{"SessionId", r.Correlation.SessionID}, {"ReplyToSessionId", r.Correlation.ReplyToSessionID},
			{"ContentType", r.Correlation.ContentType},
		} {
			if f.v != "" {
				cf[f.key] = f.v
			}
		}
		if len(r.Correlation.Properties) > 0 {
			props := make(map[string]any, len(r.Correlation.Properties))
			for k, v := range r.Correlation.Properties {
				if f, ok := v.(float64); ok {
					v = floatJSON(f)
				}
				props[k] = v
			}
			cf["Properties"] = props
		}
		p["FilterType"] = string(FilterCorrelation)
		p["CorrelationFilter"] = cf
	case FilterSQL:
		p["FilterType"] = string(FilterSQL)
		p["SqlFilter"] = map[string]any{"SqlExpression": r.SQL}
	case FilterFalse:
		// Config.json has no boolean filters: write their SQL form.
		p["FilterType"] = string(FilterSQL)
		p["SqlFilter"] = map[string]any{"SqlExpression": "1=0"}
	default:
		p["FilterType"] = string(FilterSQL)
		p["SqlFilter"] = map[string]any{"SqlExpression": "1=1"}
	}
	if r.Action != "" {
		p["Action"] = map[string]any{"SqlExpression": r.Action}
	}
	return p
}

// floatJSON writes a float so that it reads back as a float: 1 is written
// 1.0 (ParseConfig reads numbers without a point or exponent as int64).
// JSON has no NaN or infinities; they are written as strings, which the
// configuration refuses.
func floatJSON(f float64) any {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return strconv.FormatFloat(f, 'g', -1, 64)
	}
	s := strconv.FormatFloat(f, 'g', -1, 64)
	if !strings.ContainsAny(s, ".eE") {
		s += ".0"
	}
	return json.Number(s)
}
