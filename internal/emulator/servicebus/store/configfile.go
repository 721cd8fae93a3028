package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ffpipe/ffpipe/internal/isoduration"
)

// LoadConfig reads and parses a Config.json file. An empty path gives
// [DefaultConfig].
func LoadConfig(path string) (*Config, error) {
	if path == "" {
		return DefaultConfig(), nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	c, err := ParseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("load config %s: %w", path, err)
	}
	return c, nil
}

// File shapes (Microsoft's Config-schema.json). Unknown keys are ignored.
type fileConfig struct {
	UserConfig *struct {
		Namespaces []struct {
			Name   string      `json:"Name"`
			Queues []fileQueue `json:"Queues"`
			Topics []fileTopic `json:"Topics"`
		} `json:"Namespaces"`
		Logging *struct {
			Type string `json:"Type"`
		} `json:"Logging"`
	} `json:"UserConfig"`
}

type fileQueue struct {
	Name       string                     `json:"Name"`
	Properties map[string]json.RawMessage `json:"Properties"`
}

type fileTopic struct {
	Name          string                     `json:"Name"`
	Properties    map[string]json.RawMessage `json:"Properties"`
	Subscriptions []fileSubscription         `json:"Subscriptions"`
}

type fileSubscription struct {
	Name       string                     `json:"Name"`
	Properties map[string]json.RawMessage `json:"Properties"`
	Rules      []fileRule                 `json:"Rules"`
}

type fileRule struct {
	Name       string `json:"Name"`
	Properties *struct {
		FilterType        string                     `json:"FilterType"`
		CorrelationFilter map[string]json.RawMessage `json:"CorrelationFilter"`
		SqlFilter         *struct {
			SqlExpression *string `json:"SqlExpression"`
		} `json:"SqlFilter"`
		Action *struct {
			SqlExpression *string `json:"SqlExpression"`
		} `json:"Action"`
	} `json:"Properties"`
}

// ParseConfig parses the official emulator's Config.json. `//` and `/* */`
// comments are stripped (the shipped file has them). Exactly one namespace
// is required. Properties that the store does not model (ForwardTo,
// ForwardDeadLetteredMessagesTo, unknown keys) are accepted and ignored;
// RequiresSession=true is refused. Every rule's filter and action is
// compiled: an unsupported one is refused with its field and position.
// The result is validated.
func ParseConfig(data []byte) (*Config, error) {
	clean, err := StripJSONComments(data)
	if err != nil {
		return nil, fmt.Errorf("parse config: %w", err)
	}
	var f fileConfig
	dec := json.NewDecoder(bytes.NewReader(clean))
	dec.UseNumber()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("parse config: %w", err)
	}
	if dec.More() {
		return nil, errors.New("parse config: trailing data after the JSON object")
	}
	if f.UserConfig == nil {
		return nil, errors.New("parse config: UserConfig: required")
	}
	if n := len(f.UserConfig.Namespaces); n != 1 {
		return nil, fmt.Errorf("parse config: UserConfig.Namespaces: want exactly 1 namespace, got %d", n)
	}
	if l := f.UserConfig.Logging; l != nil && l.Type != "" {
		ok := false
		for _, v := range []string{"File", "Console", "File,Console", "Console,File"} {
			if strings.EqualFold(strings.ReplaceAll(l.Type, " ", ""), v) {
				ok = true
			}
		}
		if !ok {
			return nil, fmt.Errorf("parse config: UserConfig.Logging.Type: %q, want File, Console or File,Console", l.Type)
		}
	}
	ns := f.UserConfig.Namespaces[0]
	c := &Config{Namespace: ns.Name}
	const prefix = "UserConfig.Namespaces[0]."
	for i, fq := range ns.Queues {
		q := QueueConfig{Name: fq.Name}
		if err := parseQueueProps(fmt.Sprintf("%sQueues[%d].Properties", prefix, i), fq.Properties, &q, true); err != nil {
			return nil, fmt.Errorf("parse config: %w", err)
		}
		c.Queues = append(c.Queues, q)
	}
	for i, ft := range ns.Topics {
		t, err := parseTopic(fmt.Sprintf("%sTopics[%d]", prefix, i), ft)
		if err != nil {
			return nil, fmt.Errorf("parse config: %w", err)
		}
		c.Topics = append(c.Topics, t)
	}
	if err := c.validate(prefix); err != nil {
		return nil, fmt.Errorf("parse config%s: %w", filePosition(clean, err), err)
	}
	return c, nil
}

// parseQueueProps reads the Properties object of a queue or subscription.
func parseQueueProps(field string, props map[string]json.RawMessage, q *QueueConfig, dedup bool) error {
	for key, raw := range props {
		var err error
		switch key {
		case "LockDuration":
			q.LockDuration, err = jsonDuration(raw)
		case "DefaultMessageTimeToLive":
			q.DefaultMessageTimeToLive, err = jsonDuration(raw)
		case "DuplicateDetectionHistoryTimeWindow":
			if dedup {
				q.DuplicateDetectionHistoryTimeWindow, err = jsonDuration(raw)
			}
		case "MaxDeliveryCount":
			q.MaxDeliveryCount, err = jsonInt(raw)
			if err == nil && q.MaxDeliveryCount <= 0 {
				err = fmt.Errorf("%d: must be at least 1", q.MaxDeliveryCount)
			}
		case "DeadLetteringOnMessageExpiration":
			q.DeadLetteringOnMessageExpiration, err = jsonBool(raw)
		case "RequiresDuplicateDetection":
			q.RequiresDuplicateDetection, err = jsonBool(raw)
		case "RequiresSession":
			var v bool
			v, err = jsonBool(raw)
			if err == nil && v {
				err = errors.New("sessions are not supported by this emulator; set RequiresSession to false")
			}
		case "ForwardTo":
			q.ForwardTo, err = jsonString(raw)
		case "ForwardDeadLetteredMessagesTo":
			q.ForwardDeadLetteredMessagesTo, err = jsonString(raw)
		default:
			// Accepted and ignored, like the official emulator's
			// "other supported properties".
		}
		if err != nil {
			return fmt.Errorf("%s.%s: %w", field, key, err)
		}
	}
	return nil
}

func parseTopic(field string, ft fileTopic) (TopicConfig, error) {
	t := TopicConfig{Name: ft.Name}
	for key, raw := range ft.Properties {
		var err error
		switch key {
		case "DefaultMessageTimeToLive":
			t.DefaultMessageTimeToLive, err = jsonDuration(raw)
		case "DuplicateDetectionHistoryTimeWindow":
			t.DuplicateDetectionHistoryTimeWindow, err = jsonDuration(raw)
		case "RequiresDuplicateDetection":
			t.RequiresDuplicateDetection, err = jsonBool(raw)
		}
		if err != nil {
			return t, fmt.Errorf("%s.Properties.%s: %w", field, key, err)
		}
	}
	for i, fs := range ft.Subscriptions {
		sf := fmt.Sprintf("%s.Subscriptions[%d]", field, i)
		s := SubscriptionConfig{QueueConfig: QueueConfig{Name: fs.Name}}
		if err := parseQueueProps(sf+".Properties", fs.Properties, &s.QueueConfig, false); err != nil {
			return t, err
		}
		for j, fr := range fs.Rules {
			r, err := parseRule(fmt.Sprintf("%s.Rules[%d]", sf, j), fr)
			if err != nil {
				return t, err
			}
			s.Rules = append(s.Rules, r)
		}
		t.Subscriptions = append(t.Subscriptions, s)
	}
	return t, nil
}

func parseRule(field string, fr fileRule) (RuleConfig, error) {
	r := RuleConfig{Name: fr.Name}
	p := fr.Properties
	if p == nil {
		return r, fmt.Errorf("%s.Properties: required", field)
	}
	field += ".Properties"
	switch {
	case strings.EqualFold(p.FilterType, string(FilterCorrelation)):
		r.FilterType = FilterCorrelation
		if len(p.CorrelationFilter) == 0 {
			return r, fmt.Errorf("%s.CorrelationFilter: required with FilterType Correlation, with at least one property", field)
		}
		cf, err := parseCorrelation(field+".CorrelationFilter", p.CorrelationFilter)
		if err != nil {
			return r, err
		}
		r.Correlation = cf
	case strings.EqualFold(p.FilterType, string(FilterSQL)):
		r.FilterType = FilterSQL
		if p.SqlFilter == nil || p.SqlFilter.SqlExpression == nil {
			return r, fmt.Errorf("%s.SqlFilter.SqlExpression: required with FilterType Sql", field)
		}
		r.SQL = *p.SqlFilter.SqlExpression
	case p.FilterType == "":
		return r, fmt.Errorf("%s.FilterType: required: Correlation or Sql", field)
	default:
		return r, fmt.Errorf("%s.FilterType: %q, want Correlation or Sql", field, p.FilterType)
	}
	if p.Action != nil && p.Action.SqlExpression != nil {
		r.Action = *p.Action.SqlExpression
	}
	return r, nil
}

func parseCorrelation(field string, props map[string]json.RawMessage) (CorrelationFilter, error) {
	var cf CorrelationFilter
	for key, raw := range props {
		var dst *string
		switch key {
		case "CorrelationId":
			dst = &cf.CorrelationID
		case "MessageId":
			dst = &cf.MessageID
		case "To":
			dst = &cf.To
		case "ReplyTo":
			dst = &cf.ReplyTo
		case "Label", "Subject":
			dst = &cf.Label
		case "SessionId":
			dst = &cf.SessionID
		case "ReplyToSessionId":
			dst = &cf.ReplyToSessionID
		case "ContentType":
			dst = &cf.ContentType
		case "Properties":
			m, err := jsonProperties(raw)
			if err != nil {
				return cf, fmt.Errorf("%s.Properties: %w", field, err)
			}
			cf.Properties = m
			continue
		default:
			return cf, fmt.Errorf("%s.%s: unknown correlation filter property; want CorrelationId, MessageId, To, ReplyTo, Label, SessionId, ReplyToSessionId, ContentType or Properties", field, key)
		}
		v, err := jsonString(raw)
		if err != nil {
			return cf, fmt.Errorf("%s.%s: %w", field, key, err)
		}
		*dst = v
	}
	return cf, nil
}

// jsonProperties reads the user properties of a correlation filter:
// strings, integers (int64), other numbers (float64) and booleans.
func jsonProperties(raw json.RawMessage) (map[string]any, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("want an object, got %s", truncate(raw))
	}
	if len(m) == 0 {
		return nil, errors.New("want at least one property")
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		dec := json.NewDecoder(bytes.NewReader(v))
		dec.UseNumber()
		var x any
		if err := dec.Decode(&x); err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		switch x := x.(type) {
		case string, bool:
			out[k] = x
		case json.Number:
			if n, err := strconv.ParseInt(string(x), 10, 64); err == nil {
				out[k] = n
			} else if f, err := strconv.ParseFloat(string(x), 64); err == nil {
				out[k] = f
			} else {
				return nil, fmt.Errorf("%s: %s is not a number", k, x)
			}
		default:
			return nil, fmt.Errorf("%s: want a string, number or boolean, got %s", k, truncate(v))
		}
	}
	return out, nil
}

func jsonDuration(raw json.RawMessage) (time.Duration, error) {
	s, err := jsonString(raw)
	if err != nil {
		return 0, err
	}
	d, err := isoduration.Parse(s)
	if err == nil && d <= 0 {
		err = fmt.Errorf("%q: must be longer than zero", s)
	}
	return d, err
}

func jsonString(raw json.RawMessage) (string, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("want a string, got %s", truncate(raw))
	}
	return s, nil
}

func jsonInt(raw json.RawMessage) (int, error) {
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return 0, fmt.Errorf("want an integer, got %s", truncate(raw))
		}
		n = json.Number(s)
	}
	v, err := strconv.ParseInt(string(n), 10, 32)
	if err != nil {
		return 0, fmt.Errorf("want an integer, got %s", truncate(raw))
	}
	return int(v), nil
}

func jsonBool(raw json.RawMessage) (bool, error) {
	var b bool
	if err := json.Unmarshal(raw, &b); err == nil {
		return b, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if v, err := strconv.ParseBool(s); err == nil {
			return v, nil
		}
	}
	return false, fmt.Errorf("want true or false, got %s", truncate(raw))
}

func truncate(raw []byte) string {
	if len(raw) > 40 {
		return string(raw[:40]) + "…"
	}
	return string(raw)
}

// StripJSONComments removes `//` line comments and `/* */` block comments
// outside JSON strings, replacing them with spaces so that byte offsets in
// later JSON errors still match the input. An unterminated block comment is
// an error.
func StripJSONComments(data []byte) ([]byte, error) {
	out := make([]byte, len(data))
	copy(out, data)
	inString := false
	for i := 0; i < len(out); i++ {
		c := out[i]
		if inString {
			switch c {
			case '\\':
				i++
			case '"':
				inString = false
			}
			continue
		}
		switch {
		case c == '"':
			inString = true
		case c == '/' && i+1 < len(out) && out[i+1] == '/':
			for i < len(out) && out[i] != '\n' {
				out[i] = ' '
				i++
			}
		case c == '/' && i+1 < len(out) && out[i+1] == '*':
			j := bytes.Index(out[i+2:], []byte("*/"))
			if j < 0 {
				return nil, errors.New("unterminated /* comment")
			}
			end := i + 2 + j + 2
			for ; i < end; i++ {
				if out[i] != '\n' {
					out[i] = ' '
				}
			}
			i--
		}
	}
	return out, nil
}
