package store

import (
	"errors"
	"fmt"

	"github.com/ffpipe/ffpipe/internal/emulator/servicebus/sqlfilter"
)

// rule is a compiled subscription rule.
type rule struct {
	name   string
	match  func(m *sqlfilter.Message) (bool, error)
	action *sqlfilter.Action // nil: the rule copies the message unchanged
}

// errNoAnnotate: a rule action applied to a message sent without
// Incoming.Annotate.
var errNoAnnotate = errors.New("the message cannot be rewritten by a rule action (no Incoming.Annotate)")

// trueRule is the $Default rule of a subscription configured without rules.
var trueRule = &rule{name: DefaultRuleName, match: func(*sqlfilter.Message) (bool, error) { return true, nil }}

// compileRule checks a rule and builds its matcher. Errors name the field
// under the rule's Properties ("SqlFilter.SqlExpression: ...").
func compileRule(r *RuleConfig) (*rule, error) {
	out := &rule{name: r.Name}
	switch r.FilterType {
	case FilterTrue, "":
		out.match = trueRule.match
	case FilterFalse:
		out.match = func(*sqlfilter.Message) (bool, error) { return false, nil }
	case FilterCorrelation:
		cf := r.Correlation
		if cf.empty() {
			return nil, errors.New("CorrelationFilter: set at least one property")
		}
		for k, v := range cf.Properties {
			switch v.(type) {
			case string, bool, int64, float64:
			default:
				return nil, fmt.Errorf("CorrelationFilter.Properties.%s: %T, want string, int64, float64 or bool", k, v)
			}
		}
		out.match = func(m *sqlfilter.Message) (bool, error) { return cf.matches(m), nil }
	case FilterSQL:
		f, err := sqlfilter.Parse(r.SQL)
		if err != nil {
			return nil, &ruleError{field: "SqlFilter.SqlExpression", err: err}
		}
		out.match = f.Match
	default:
		return nil, fmt.Errorf("FilterType: %q, want Correlation or Sql", r.FilterType)
	}
	if r.Action != "" {
		a, err := sqlfilter.ParseAction(r.Action)
		if err != nil {
			return nil, &ruleError{field: "Action.SqlExpression", err: err}
		}
		out.action = a
	}
	return out, nil
}

func (cf *CorrelationFilter) empty() bool {
	return cf.CorrelationID == "" && cf.MessageID == "" && cf.To == "" && cf.ReplyTo == "" && cf.Label == "" &&
		cf.SessionID == "" && cf.ReplyToSessionID == "" && cf.ContentType == "" && len(cf.Properties) == 0
}

// matches is true when every property the filter sets equals the
// message's: strings case-sensitively, numbers by value (an int64 filter
// value matches the same number sent as a double), booleans exactly.
func (cf *CorrelationFilter) matches(m *sqlfilter.Message) bool {
	sys := []struct{ name, want string }{
		{sqlfilter.SysCorrelationID, cf.CorrelationID}, {sqlfilter.SysMessageID, cf.MessageID},
		{sqlfilter.SysTo, cf.To}, {sqlfilter.SysReplyTo, cf.ReplyTo}, {sqlfilter.SysLabel, cf.Label},
		{sqlfilter.SysSessionID, cf.SessionID}, {sqlfilter.SysReplyToSessionID, cf.ReplyToSessionID},
		{sqlfilter.SysContentType, cf.ContentType},
	}
	for _, p := range sys {
		if p.want == "" {
			continue
		}
		v, ok := m.System(p.name)
		if s, isString := v.(string); !ok || !isString || s != p.want {
			return false
		}
	}
	for k, want := range cf.Properties {
		got, ok := m.User(k)
		if !ok || !sameValue(got, want) {
			return false
		}
	}
	return true
}

func sameValue(got, want any) bool {
	switch w := want.(type) {
	case int64:
		switch g := got.(type) {
		case int64:
			return g == w
		case float64:
			return g == float64(w)
		}
		return false
	case float64:
		switch g := got.(type) {
		case int64:
			return float64(g) == w
		case float64:
			return g == w
		}
		return false
	}
	return got == want
}
