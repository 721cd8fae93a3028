package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Defaults of Microsoft's Service Bus emulator (Config.json schema).
const (
	DefaultNamespace                = "sbemulatorns"
	DefaultQueueName                = "transcode"
	DefaultLockDuration             = time.Minute
	DefaultMaxDeliveryCount         = 3
	DefaultMessageTimeToLive        = time.Hour
	DefaultDuplicateDetectionWindow = 20 * time.Second
)

// Config is the entity configuration: the parsed form of the official
// emulator's Config.json (UserConfig → Namespaces[0] → Queues/Topics).
type Config struct {
	// Namespace is the namespace name (informational).
	Namespace string
	// Queues are the queues the broker serves, names unique ignoring case.
	Queues []QueueConfig
	// Topics are the topics the file declares. The store does not model
	// them; the engine reports them as unsupported.
	Topics []TopicConfig
}

// QueueConfig holds one queue's properties. Durations are ISO-8601 in the
// file. Zero values are replaced by the defaults in [Config.Validate].
type QueueConfig struct {
	Name                                string
	LockDuration                        time.Duration // default PT1M
	MaxDeliveryCount                    int           // default 3
	DefaultMessageTimeToLive            time.Duration // default PT1H
	DeadLetteringOnMessageExpiration    bool
	RequiresDuplicateDetection          bool
	DuplicateDetectionHistoryTimeWindow time.Duration // default PT20S
	// ForwardTo and ForwardDeadLetteredMessagesTo are accepted and ignored.
	ForwardTo                     string
	ForwardDeadLetteredMessagesTo string
}

// TopicConfig is a declared topic (not modelled).
type TopicConfig struct {
	Name          string
	Subscriptions []string
}

// DefaultQueueConfig returns a queue named name with Microsoft's defaults.
func DefaultQueueConfig(name string) QueueConfig {
	return QueueConfig{
		Name:                                name,
		LockDuration:                        DefaultLockDuration,
		MaxDeliveryCount:                    DefaultMaxDeliveryCount,
		DefaultMessageTimeToLive:            DefaultMessageTimeToLive,
		DuplicateDetectionHistoryTimeWindow: DefaultDuplicateDetectionWindow,
	}
}

// DefaultConfig is used when no Config.json is given: one queue
// "transcode" with Microsoft's defaults.
func DefaultConfig() *Config {
	return &Config{Namespace: DefaultNamespace, Queues: []QueueConfig{DefaultQueueConfig(DefaultQueueName)}}
}

// Queue returns the configuration of the queue named name (ignoring case).
func (c *Config) Queue(name string) (QueueConfig, bool) {
	for _, q := range c.Queues {
		if strings.EqualFold(q.Name, name) {
			return q, true
		}
	}
	return QueueConfig{}, false
}

var entityName = regexp.MustCompile(`^[A-Za-z0-9]$|^[A-Za-z0-9][\w\-./]*[A-Za-z0-9]$`)

// Validate fills in defaults for zero values and checks every field. The
// error names the bad field, e.g. "Queues[1].Properties.LockDuration".
func (c *Config) Validate() error { return c.validate("") }

func (c *Config) validate(prefix string) error {
	if c.Namespace == "" {
		c.Namespace = DefaultNamespace
	}
	if len(c.Queues) == 0 && len(c.Topics) == 0 {
		return fmt.Errorf("validate config: %sQueues: at least one queue is required", prefix)
	}
	seen := map[string]string{}
	for i := range c.Queues {
		q := &c.Queues[i]
		field := fmt.Sprintf("%sQueues[%d]", prefix, i)
		if err := checkName(q.Name); err != nil {
			return fmt.Errorf("validate config: %s.Name: %w", field, err)
		}
		key := strings.ToLower(q.Name)
		if prev, ok := seen[key]; ok {
			return fmt.Errorf("validate config: %s.Name: %q duplicates %q (names ignore case)", field, q.Name, prev)
		}
		seen[key] = q.Name
		p := field + ".Properties"
		if q.LockDuration == 0 {
			q.LockDuration = DefaultLockDuration
		}
		if q.LockDuration < time.Second || q.LockDuration > 5*time.Minute {
			return fmt.Errorf("validate config: %s.LockDuration: %s out of range PT1S…PT5M", p, FormatISODuration(q.LockDuration))
		}
		if q.MaxDeliveryCount == 0 {
			q.MaxDeliveryCount = DefaultMaxDeliveryCount
		}
		if q.MaxDeliveryCount < 1 || q.MaxDeliveryCount > 2000 {
			return fmt.Errorf("validate config: %s.MaxDeliveryCount: %d out of range 1…2000", p, q.MaxDeliveryCount)
		}
		if q.DefaultMessageTimeToLive == 0 {
			q.DefaultMessageTimeToLive = DefaultMessageTimeToLive
		}
		if q.DefaultMessageTimeToLive < time.Second {
			return fmt.Errorf("validate config: %s.DefaultMessageTimeToLive: %s is shorter than PT1S", p, FormatISODuration(q.DefaultMessageTimeToLive))
		}
		if q.DuplicateDetectionHistoryTimeWindow == 0 {
			q.DuplicateDetectionHistoryTimeWindow = DefaultDuplicateDetectionWindow
		}
		if q.DuplicateDetectionHistoryTimeWindow < time.Second || q.DuplicateDetectionHistoryTimeWindow > 7*24*time.Hour {
			return fmt.Errorf("validate config: %s.DuplicateDetectionHistoryTimeWindow: %s out of range PT1S…P7D", p, FormatISODuration(q.DuplicateDetectionHistoryTimeWindow))
		}
		for _, fwd := range []struct{ name, v string }{{"ForwardTo", q.ForwardTo}, {"ForwardDeadLetteredMessagesTo", q.ForwardDeadLetteredMessagesTo}} {
			if fwd.v != "" {
				if err := checkName(fwd.v); err != nil {
					return fmt.Errorf("validate config: %s.%s: %w", p, fwd.name, err)
				}
			}
		}
	}
	for i, t := range c.Topics {
		field := fmt.Sprintf("%sTopics[%d]", prefix, i)
		if err := checkName(t.Name); err != nil {
			return fmt.Errorf("validate config: %s.Name: %w", field, err)
		}
		key := strings.ToLower(t.Name)
		if prev, ok := seen[key]; ok {
			return fmt.Errorf("validate config: %s.Name: %q duplicates %q (names ignore case)", field, t.Name, prev)
		}
		seen[key] = t.Name
	}
	return nil
}

func checkName(n string) error {
	if n == "" {
		return errors.New("required")
	}
	if len(n) > 260 {
		return fmt.Errorf("%q is longer than 260 characters", n)
	}
	if !entityName.MatchString(n) {
		return fmt.Errorf("%q: letters, digits, '.', '-', '_' and '/' only, starting and ending with a letter or digit", n)
	}
	if strings.Contains(strings.ToLower(n), "$") {
		return fmt.Errorf("%q: '$' is reserved", n)
	}
	return nil
}

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
	Name          string `json:"Name"`
	Subscriptions []struct {
		Name string `json:"Name"`
	} `json:"Subscriptions"`
}

// ParseConfig parses the official emulator's Config.json. `//` and `/* */`
// comments are stripped (the shipped file has them). Exactly one namespace
// is required. Queue properties that the store does not model
// (ForwardTo, ForwardDeadLetteredMessagesTo, unknown keys) are accepted and
// ignored; RequiresSession=true is refused. The result is validated.
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
	for i, fq := range ns.Queues {
		field := fmt.Sprintf("UserConfig.Namespaces[0].Queues[%d]", i)
		q := QueueConfig{Name: fq.Name}
		for key, raw := range fq.Properties {
			pf := field + ".Properties." + key
			var err error
			switch key {
			case "LockDuration":
				q.LockDuration, err = jsonDuration(raw)
			case "DefaultMessageTimeToLive":
				q.DefaultMessageTimeToLive, err = jsonDuration(raw)
			case "DuplicateDetectionHistoryTimeWindow":
				q.DuplicateDetectionHistoryTimeWindow, err = jsonDuration(raw)
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
				return nil, fmt.Errorf("parse config: %s: %w", pf, err)
			}
		}
		c.Queues = append(c.Queues, q)
	}
	for _, ft := range ns.Topics {
		t := TopicConfig{Name: ft.Name}
		for _, s := range ft.Subscriptions {
			t.Subscriptions = append(t.Subscriptions, s.Name)
		}
		c.Topics = append(c.Topics, t)
	}
	if err := c.validate("UserConfig.Namespaces[0]."); err != nil {
		return nil, fmt.Errorf("parse config: %w", err)
	}
	return c, nil
}

func jsonDuration(raw json.RawMessage) (time.Duration, error) {
	s, err := jsonString(raw)
	if err != nil {
		return 0, err
	}
	d, err := ParseISODuration(s)
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
