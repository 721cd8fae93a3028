package store

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseConfigFile(t *testing.T) {
	c, err := LoadConfig(filepath.Join("testdata", "Config.json"))
	ok(t, err)
	want := &Config{
		Namespace: "sbemulatorns",
		Queues: []QueueConfig{
			{Name: "queue.1", LockDuration: time.Minute, MaxDeliveryCount: 3, DefaultMessageTimeToLive: time.Hour,
				DuplicateDetectionHistoryTimeWindow: 20 * time.Second},
			{Name: "transcode", LockDuration: 5 * time.Minute, MaxDeliveryCount: 10, DefaultMessageTimeToLive: 30 * time.Minute,
				DeadLetteringOnMessageExpiration: true, RequiresDuplicateDetection: true,
				DuplicateDetectionHistoryTimeWindow: 5 * time.Minute},
		},
		Topics: []TopicConfig{{Name: "topic.1", DefaultMessageTimeToLive: time.Hour, DuplicateDetectionHistoryTimeWindow: 20 * time.Second,
			Subscriptions: []SubscriptionConfig{{
				QueueConfig: QueueConfig{Name: "subscription.1", LockDuration: time.Minute, MaxDeliveryCount: 3, DefaultMessageTimeToLive: time.Hour},
				Rules: []RuleConfig{{Name: "app-prop-filter-1", FilterType: FilterCorrelation, Correlation: CorrelationFilter{
					ContentType: "application/text", CorrelationID: "id1", Label: "subject1", MessageID: "msgid1",
					ReplyTo: "someQueue", ReplyToSessionID: "sessionId", SessionID: "session1", To: "xyz"}}},
			}}}},
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got  %+v\nwant %+v", c, want)
	}
	if q, found := c.Queue("TRANSCODE"); !found || q.Name != "transcode" {
		t.Errorf("Queue(TRANSCODE) = %+v, %v", q, found)
	}
	if _, found := c.Queue("nope"); found {
		t.Errorf("Queue(nope) found")
	}
}

func TestLoadConfigDefaults(t *testing.T) {
	c, err := LoadConfig("")
	ok(t, err)
	if !reflect.DeepEqual(c, DefaultConfig()) {
		t.Errorf("LoadConfig(\"\") = %+v, want DefaultConfig", c)
	}
	_, err = LoadConfig(filepath.Join(t.TempDir(), "missing.json"))
	if err == nil || !os.IsNotExist(unwrapAll(err)) {
		t.Errorf("missing file: got %v, want a not-exist error", err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}

// wrap builds a Config.json with one namespace holding the given queues JSON.
func wrap(queues string) string {
	return `{"UserConfig":{"Namespaces":[{"Name":"sbemulatorns","Queues":[` + queues + `],"Topics":[]}],"Logging":{"Type":"File"}}}`
}

func TestParseConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string // substring of the error
	}{
		{"not json", `{`, "parse config"},
		{"no UserConfig", `{}`, "UserConfig: required"},
		{"two namespaces", `{"UserConfig":{"Namespaces":[{"Name":"a"},{"Name":"b"}]}}`, "UserConfig.Namespaces: want exactly 1"},
		{"no namespace", `{"UserConfig":{"Namespaces":[]}}`, "UserConfig.Namespaces: want exactly 1"},
		{"no queues", `{"UserConfig":{"Namespaces":[{"Name":"a"}]}}`, "UserConfig.Namespaces[0].Queues: at least one"},
		{"sessions", wrap(`{"Name":"q","Properties":{"RequiresSession":true}}`), "Queues[0].Properties.RequiresSession: sessions are not supported"},
		{"bad duration", wrap(`{"Name":"q","Properties":{"LockDuration":"1m"}}`), "Queues[0].Properties.LockDuration"},
		{"duration not string", wrap(`{"Name":"q","Properties":{"LockDuration":60}}`), "Queues[0].Properties.LockDuration: want a string"},
		{"lock too long", wrap(`{"Name":"q","Properties":{"LockDuration":"PT6M"}}`), "Queues[0].Properties.LockDuration: PT6M out of range"},
		{"lock too short", wrap(`{"Name":"q","Properties":{"LockDuration":"PT0.5S"}}`), "Queues[0].Properties.LockDuration"},
		{"max delivery zero", wrap(`{"Name":"q","Properties":{"MaxDeliveryCount":0}}`), "Queues[0].Properties.MaxDeliveryCount"},
		{"max delivery fraction", wrap(`{"Name":"q","Properties":{"MaxDeliveryCount":1.5}}`), "Queues[0].Properties.MaxDeliveryCount: want an integer"},
		{"ttl too short", wrap(`{"Name":"q","Properties":{"DefaultMessageTimeToLive":"PT0S"}}`), "DefaultMessageTimeToLive"},
		{"dup window", wrap(`{"Name":"q","Properties":{"DuplicateDetectionHistoryTimeWindow":"P8D"}}`), "Queues[0].Properties.DuplicateDetectionHistoryTimeWindow"},
		{"bad bool", wrap(`{"Name":"q","Properties":{"RequiresDuplicateDetection":"maybe"}}`), "Queues[0].Properties.RequiresDuplicateDetection: want true or false"},
		{"no name", wrap(`{"Properties":{}}`), "Queues[0].Name: required"},
		{"bad name", wrap(`{"Name":"-q"}`), "Queues[0].Name"},
		{"dollar name", wrap(`{"Name":"a$b"}`), "Queues[0].Name"},
		{"duplicate name", wrap(`{"Name":"Q"},{"Name":"q"}`), `Queues[1].Name: "q" duplicates "Q"`},
		{"bad forward", wrap(`{"Name":"q","Properties":{"ForwardTo":"-x"}}`), "Queues[0].Properties.ForwardTo"},
		{"bad logging", `{"UserConfig":{"Namespaces":[{"Name":"a","Queues":[{"Name":"q"}]}],"Logging":{"Type":"Syslog"}}}`, "UserConfig.Logging.Type"},
		{"topic clashes with queue", `{"UserConfig":{"Namespaces":[{"Name":"a","Queues":[{"Name":"q"}],"Topics":[{"Name":"Q"}]}]}}`, "Topics[0].Name"},
		{"unterminated comment", `{ /* `, "unterminated"},
		{"trailing data", `{"UserConfig":{}} {}`, "trailing data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestParseConfigLenient(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want QueueConfig
	}{
		{"defaults", wrap(`{"Name":"q"}`), DefaultQueueConfig("q")},
		{"unknown properties ignored", wrap(`{"Name":"q","Properties":{"AutoDeleteOnIdle":"PT1H","Whatever":[1]}}`), DefaultQueueConfig("q")},
		{"string numbers and bools", wrap(`{"Name":"q","Properties":{"MaxDeliveryCount":"7","RequiresDuplicateDetection":"true"}}`),
			func() QueueConfig {
				q := DefaultQueueConfig("q")
				q.MaxDeliveryCount = 7
				q.RequiresDuplicateDetection = true
				return q
			}()},
		{"forwarding accepted", wrap(`{"Name":"q","Properties":{"ForwardTo":"other","ForwardDeadLetteredMessagesTo":"dlq.x"}}`),
			func() QueueConfig {
				q := DefaultQueueConfig("q")
				q.ForwardTo = "other"
				q.ForwardDeadLetteredMessagesTo = "dlq.x"
				return q
			}()},
		{"session false", wrap(`{"Name":"a.b-c_d/e","Properties":{"RequiresSession":false}}`), DefaultQueueConfig("a.b-c_d/e")},
		{"block comment", strings.Replace(wrap(`{"Name":"q"}`), `"Queues"`, `/* c "x" */ "Queues"`, 1), DefaultQueueConfig("q")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(tt.in))
			ok(t, err)
			if len(c.Queues) != 1 || c.Queues[0] != tt.want {
				t.Fatalf("got %+v, want %+v", c.Queues, tt.want)
			}
		})
	}
}

func TestStripJSONComments(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"a":"b"} // c`, `{"a":"b"}     `},
		{`{"a":"http://x"}`, `{"a":"http://x"}`},
		{`{"a":"q\"//"}//x`, `{"a":"q\"//"}   `},
		{"{/* x\ny */}", "{    \n    }"},
		{`{"a":"/* no */"}`, `{"a":"/* no */"}`},
		{"// only\n{}", "       \n{}"},
		{`{"a":"\\"}//z`, `{"a":"\\"}   `},
	}
	for _, tt := range tests {
		got, err := StripJSONComments([]byte(tt.in))
		ok(t, err)
		if string(got) != tt.want {
			t.Errorf("StripJSONComments(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestConfigValidateDirect(t *testing.T) {
	c := &Config{Queues: []QueueConfig{{Name: "x"}}}
	ok(t, c.Validate())
	if c.Namespace != DefaultNamespace || c.Queues[0] != DefaultQueueConfig("x") {
		t.Errorf("defaults not filled: %+v", c)
	}
	bad := &Config{Queues: []QueueConfig{{Name: "x", MaxDeliveryCount: -1}}}
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "Queues[0].Properties.MaxDeliveryCount") {
		t.Errorf("got %v, want an error naming Queues[0].Properties.MaxDeliveryCount", err)
	}
	_, err := Open(Options{Config: bad})
	if err == nil {
		t.Errorf("Open with an invalid config: no error")
	}
}

func FuzzParseConfig(f *testing.F) {
	data, err := os.ReadFile(filepath.Join("testdata", "Config.json"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add([]byte(wrap(`{"Name":"q","Properties":{"LockDuration":"PT30S"}}`)))
	f.Add([]byte(`{"UserConfig":{"Namespaces":[{"Name":"a","Queues":[{"Name":"q"}]}]}} // x`))
	f.Add([]byte(`{ /* "x" */ }`))
	if bad, err := os.ReadFile(filepath.Join("testdata", "ConfigBadSQL.json")); err == nil {
		f.Add(bad)
	}
	f.Add([]byte(wrapTopics(`{"Name":"t","Properties":{"RequiresDuplicateDetection":true},"Subscriptions":[{"Name":"s","Rules":[
		{"Name":"r","Properties":{"FilterType":"Sql","SqlFilter":{"SqlExpression":"a = 1 OR sys.Label LIKE 'x%'"},"Action":{"SqlExpression":"SET b = 2"}}},
		{"Name":"c","Properties":{"FilterType":"Correlation","CorrelationFilter":{"To":"x","Properties":{"n":1,"f":1.0,"g":2e30}}}}]}]}`)))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig(data)
		if err != nil {
			return
		}
		// A parsed config is valid and opens.
		if err := c.Validate(); err != nil {
			t.Fatalf("parsed config does not validate: %v", err)
		}
		for _, q := range c.Queues {
			if q.LockDuration <= 0 || q.MaxDeliveryCount <= 0 || q.DefaultMessageTimeToLive <= 0 || q.DuplicateDetectionHistoryTimeWindow <= 0 {
				t.Fatalf("queue %+v has a zero or negative property", q)
			}
		}
		if len(c.Queues) > 0 || len(c.Topics) > 0 {
			s, err := Open(Options{Config: c})
			if err != nil {
				t.Fatalf("Open(parsed config): %v", err)
			}
			s.Close()
		}
		// What FormatConfig writes parses back to the same configuration.
		out, err := FormatConfig(c)
		if err != nil {
			t.Fatalf("FormatConfig(parsed config): %v", err)
		}
		back, err := ParseConfig(out)
		if err != nil {
			t.Fatalf("parse FormatConfig's output: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(back, c) {
			t.Fatalf("round trip:\n got  %+v\n want %+v", back, c)
		}
	})
}
