package store

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/ffpipe/ffpipe/internal/isoduration"
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

// The topic and subscription of ffpipe's completion events in
// [DefaultConfig].
const (
	DefaultEventsTopic        = "transcode-events"
	DefaultEventsSubscription = "all"
	// DefaultEventsWindow is the events topic's duplicate-detection window:
	// a publisher that retries an event within it is not heard twice.
	DefaultEventsWindow = 10 * time.Minute
	// DefaultEventsTTL keeps unread events for a day.
	DefaultEventsTTL = 24 * time.Hour
)

// DefaultRuleName is the name of the rule a subscription gets when its
// configuration lists none: a true filter that accepts every message.
const DefaultRuleName = "$Default"

// Config is the entity configuration: the parsed form of the official
// emulator's Config.json (UserConfig → Namespaces[0] → Queues/Topics).
type Config struct {
	// Namespace is the namespace name (informational).
	Namespace string
	// Queues are the queues the broker serves.
	Queues []QueueConfig
	// Topics are the topics with their subscriptions. Queue and topic
	// names share one namespace and are unique ignoring case.
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

// TopicConfig is a topic: the entity senders send to. Every subscription
// whose rules match gets its own copy of each message.
type TopicConfig struct {
	Name                                string
	DefaultMessageTimeToLive            time.Duration // default PT1H
	RequiresDuplicateDetection          bool
	DuplicateDetectionHistoryTimeWindow time.Duration // default PT20S
	Subscriptions                       []SubscriptionConfig
}

// SubscriptionConfig is one subscription of a topic. It has the
// properties of a queue (QueueConfig.Name is the subscription's name)
// except duplicate detection, which belongs to the topic. A message's
// TTL is the smallest of its own, the topic's and the subscription's.
type SubscriptionConfig struct {
	QueueConfig
	// Rules select the messages the subscription gets: a message is
	// copied once if any rule matches. No rules means one rule
	// "$Default" with a true filter.
	Rules []RuleConfig
}

// FilterType selects how a rule matches messages.
type FilterType string

// Filter types. Config.json knows Correlation and Sql; True and False are
// the boolean filters of the Service Bus API ($Default is True).
const (
	FilterTrue        FilterType = "True"
	FilterFalse       FilterType = "False"
	FilterCorrelation FilterType = "Correlation"
	FilterSQL         FilterType = "Sql"
)

// RuleConfig is one subscription rule: a filter and an optional action.
type RuleConfig struct {
	Name       string
	FilterType FilterType
	// Correlation is the filter of FilterCorrelation.
	Correlation CorrelationFilter
	// SQL is the expression of FilterSQL (SqlFilter.SqlExpression).
	SQL string
	// Action is the rule's SQL action (Action.SqlExpression), "" for none.
	Action string
}

// CorrelationFilter matches when every property it sets equals the
// message's (strings compare case-sensitively). Empty strings are unset.
type CorrelationFilter struct {
	CorrelationID    string
	MessageID        string
	To               string
	ReplyTo          string
	Label            string // the message's subject
	SessionID        string
	ReplyToSessionID string
	ContentType      string
	// Properties are application properties: string, int64, float64 or
	// bool values compared with the message's.
	Properties map[string]any
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

// DefaultSubscriptionConfig returns a subscription named name with
// Microsoft's defaults and the $Default rule.
func DefaultSubscriptionConfig(name string) SubscriptionConfig {
	q := DefaultQueueConfig(name)
	q.DuplicateDetectionHistoryTimeWindow = 0
	return SubscriptionConfig{QueueConfig: q}
}

// DefaultEventsTopicConfig is ffpipe's completion-events topic: duplicate
// detection on (events carry stable message ids) and one subscription
// "all" that gets every event.
func DefaultEventsTopicConfig() TopicConfig {
	sub := DefaultSubscriptionConfig(DefaultEventsSubscription)
	sub.MaxDeliveryCount = 10
	sub.DefaultMessageTimeToLive = DefaultEventsTTL
	return TopicConfig{
		Name:                                DefaultEventsTopic,
		DefaultMessageTimeToLive:            DefaultEventsTTL,
		RequiresDuplicateDetection:          true,
		DuplicateDetectionHistoryTimeWindow: DefaultEventsWindow,
		Subscriptions:                       []SubscriptionConfig{sub},
	}
}

// DefaultConfig is used when no Config.json is given: the queue
// "transcode" with Microsoft's defaults and the events topic
// (see [DefaultEventsTopicConfig]).
func DefaultConfig() *Config {
	return &Config{
		Namespace: DefaultNamespace,
		Queues:    []QueueConfig{DefaultQueueConfig(DefaultQueueName)},
		Topics:    []TopicConfig{DefaultEventsTopicConfig()},
	}
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

// Topic returns the configuration of the topic named name (ignoring case).
func (c *Config) Topic(name string) (TopicConfig, bool) {
	for _, t := range c.Topics {
		if strings.EqualFold(t.Name, name) {
			return t, true
		}
	}
	return TopicConfig{}, false
}

// Clone returns a deep copy of c.
func (c *Config) Clone() *Config {
	n := *c
	n.Queues = append([]QueueConfig(nil), c.Queues...)
	n.Topics = make([]TopicConfig, len(c.Topics))
	for i, t := range c.Topics {
		t.Subscriptions = append([]SubscriptionConfig(nil), t.Subscriptions...)
		for j := range t.Subscriptions {
			s := &t.Subscriptions[j]
			s.Rules = append([]RuleConfig(nil), s.Rules...)
			for k := range s.Rules {
				r := &s.Rules[k]
				if r.Correlation.Properties != nil {
					p := make(map[string]any, len(r.Correlation.Properties))
					for key, v := range r.Correlation.Properties {
						p[key] = v
					}
					r.Correlation.Properties = p
				}
			}
		}
		n.Topics[i] = t
	}
	if c.Topics == nil {
		n.Topics = nil
	}
	return &n
}

// SubscriptionPath is the entity path of a subscription,
// "<topic>/Subscriptions/<subscription>".
func SubscriptionPath(topic, subscription string) string {
	return topic + "/Subscriptions/" + subscription
}

var entityName = regexp.MustCompile(`^[A-Za-z0-9]$|^[A-Za-z0-9][\w\-./]*[A-Za-z0-9]$`)

// Validate fills in defaults for zero values and checks every field,
// compiling every rule's filter and action. The error names the bad
// field, e.g. "Queues[1].Properties.LockDuration", and for a SQL
// expression the line and column inside it.
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
		if err := claimName(seen, field, q.Name); err != nil {
			return err
		}
		if err := validateQueue(field+".Properties", q, true); err != nil {
			return err
		}
	}
	for i := range c.Topics {
		field := fmt.Sprintf("%sTopics[%d]", prefix, i)
		if err := claimName(seen, field, c.Topics[i].Name); err != nil {
			return err
		}
	}
	for i := range c.Topics {
		if err := validateTopic(fmt.Sprintf("%sTopics[%d]", prefix, i), i, &c.Topics[i], seen); err != nil {
			return err
		}
	}
	return nil
}

// claimName checks an entity name and that no other entity has it.
func claimName(seen map[string]string, field, name string) error {
	if err := checkName(name); err != nil {
		return fmt.Errorf("validate config: %s.Name: %w", field, err)
	}
	key := strings.ToLower(name)
	if prev, ok := seen[key]; ok {
		return fmt.Errorf("validate config: %s.Name: %q duplicates %q (names ignore case)", field, name, prev)
	}
	seen[key] = name
	return nil
}

func validateQueue(p string, q *QueueConfig, dedup bool) error {
	if q.LockDuration == 0 {
		q.LockDuration = DefaultLockDuration
	}
	if q.LockDuration < time.Second || q.LockDuration > 5*time.Minute {
		return fmt.Errorf("validate config: %s.LockDuration: %s out of range PT1S…PT5M", p, isoduration.Format(q.LockDuration))
	}
	if q.MaxDeliveryCount == 0 {
		q.MaxDeliveryCount = DefaultMaxDeliveryCount
	}
	if q.MaxDeliveryCount < 1 || q.MaxDeliveryCount > 2000 {
		return fmt.Errorf("validate config: %s.MaxDeliveryCount: %d out of range 1…2000", p, q.MaxDeliveryCount)
	}
	if err := validateTTL(p, &q.DefaultMessageTimeToLive); err != nil {
		return err
	}
	if !dedup {
		if q.RequiresDuplicateDetection {
			return fmt.Errorf("validate config: %s.RequiresDuplicateDetection: subscriptions do not detect duplicates; set it on the topic", p)
		}
		q.DuplicateDetectionHistoryTimeWindow = 0
	} else if err := validateWindow(p, &q.DuplicateDetectionHistoryTimeWindow); err != nil {
		return err
	}
	for _, fwd := range []struct{ name, v string }{{"ForwardTo", q.ForwardTo}, {"ForwardDeadLetteredMessagesTo", q.ForwardDeadLetteredMessagesTo}} {
		if fwd.v != "" {
			if err := checkName(fwd.v); err != nil {
				return fmt.Errorf("validate config: %s.%s: %w", p, fwd.name, err)
			}
		}
	}
	return nil
}

func validateTTL(p string, ttl *time.Duration) error {
	if *ttl == 0 {
		*ttl = DefaultMessageTimeToLive
	}
	if *ttl < time.Second {
		return fmt.Errorf("validate config: %s.DefaultMessageTimeToLive: %s is shorter than PT1S", p, isoduration.Format(*ttl))
	}
	return nil
}

func validateWindow(p string, w *time.Duration) error {
	if *w == 0 {
		*w = DefaultDuplicateDetectionWindow
	}
	if *w < time.Second || *w > 7*24*time.Hour {
		return fmt.Errorf("validate config: %s.DuplicateDetectionHistoryTimeWindow: %s out of range PT1S…P7D", p, isoduration.Format(*w))
	}
	return nil
}

func validateTopic(field string, index int, t *TopicConfig, entities map[string]string) error {
	p := field + ".Properties"
	if err := validateTTL(p, &t.DefaultMessageTimeToLive); err != nil {
		return err
	}
	if err := validateWindow(p, &t.DuplicateDetectionHistoryTimeWindow); err != nil {
		return err
	}
	lower := strings.ToLower(t.Name) + "/"
	for key, name := range entities {
		if strings.HasPrefix(key, lower) {
			return fmt.Errorf("validate config: %s.Name: queue %q lies under topic %q", field, name, t.Name)
		}
	}
	seen := map[string]string{}
	for i := range t.Subscriptions {
		s := &t.Subscriptions[i]
		sf := fmt.Sprintf("%s.Subscriptions[%d]", field, i)
		if err := claimName(seen, sf, s.Name); err != nil {
			return err
		}
		if strings.Contains(s.Name, "/") {
			return fmt.Errorf("validate config: %s.Name: %q: a subscription name cannot contain '/'", sf, s.Name)
		}
		if err := validateQueue(sf+".Properties", &s.QueueConfig, false); err != nil {
			return err
		}
		if err := validateRules(sf, index, i, s); err != nil {
			return err
		}
	}
	return nil
}

func validateRules(field string, topic, sub int, s *SubscriptionConfig) error {
	seen := map[string]string{}
	for i := range s.Rules {
		r := &s.Rules[i]
		rf := fmt.Sprintf("%s.Rules[%d]", field, i)
		if !strings.EqualFold(r.Name, DefaultRuleName) {
			if err := claimName(seen, rf, r.Name); err != nil {
				return err
			}
		} else if err := claimRuleName(seen, rf, r.Name); err != nil {
			return err
		}
		if _, err := compileRule(r); err != nil {
			var re *ruleError
			if errors.As(err, &re) {
				re.topic, re.sub, re.rule = topic, sub, i
			}
			return fmt.Errorf("validate config: %s.Properties.%w", rf, err)
		}
	}
	return nil
}

func claimRuleName(seen map[string]string, field, name string) error {
	key := strings.ToLower(name)
	if prev, ok := seen[key]; ok {
		return fmt.Errorf("validate config: %s.Name: %q duplicates %q (names ignore case)", field, name, prev)
	}
	seen[key] = name
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
