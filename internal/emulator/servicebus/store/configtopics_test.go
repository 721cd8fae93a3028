package store

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ffpipe/ffpipe/internal/emulator/servicebus/sqlfilter"
)

// wrapTopics builds a Config.json with one namespace holding the given
// topics JSON and no queues.
func wrapTopics(topics string) string {
	return `{"UserConfig":{"Namespaces":[{"Name":"sbemulatorns","Queues":[],"Topics":[` + topics + `]}],"Logging":{"Type":"File"}}}`
}

func TestParseTopics(t *testing.T) {
	in := wrapTopics(`{"Name":"orders","Properties":{"DefaultMessageTimeToLive":"PT30M","RequiresDuplicateDetection":true,
		"DuplicateDetectionHistoryTimeWindow":"PT2M"},
	  "Subscriptions":[
	    {"Name":"all"},
	    {"Name":"red","Properties":{"LockDuration":"PT2M","MaxDeliveryCount":5,"DeadLetteringOnMessageExpiration":true,
	       "RequiresSession":false,"DefaultMessageTimeToLive":"PT10M","ForwardTo":""},
	     "Rules":[
	       {"Name":"$Default","Properties":{"FilterType":"Correlation","CorrelationFilter":{"Subject":"order","Properties":{"color":"red","n":3,"x":1.5,"ok":true}}}},
	       {"Name":"sql","Properties":{"FilterType":"sql","SqlFilter":{"SqlExpression":"sys.Label LIKE 'order%' AND n > 2"}}}
	     ]}
	  ]}`)
	c, err := ParseConfig([]byte(in))
	ok(t, err)
	red := DefaultSubscriptionConfig("red")
	red.LockDuration = 2 * time.Minute
	red.MaxDeliveryCount = 5
	red.DeadLetteringOnMessageExpiration = true
	red.DefaultMessageTimeToLive = 10 * time.Minute
	red.Rules = []RuleConfig{
		{Name: "$Default", FilterType: FilterCorrelation, Correlation: CorrelationFilter{Label: "order",
			Properties: map[string]any{"color": "red", "n": int64(3), "x": 1.5, "ok": true}}},
		{Name: "sql", FilterType: FilterSQL, SQL: "sys.Label LIKE 'order%' AND n > 2"},
	}
	want := TopicConfig{Name: "orders", DefaultMessageTimeToLive: 30 * time.Minute, RequiresDuplicateDetection: true,
		DuplicateDetectionHistoryTimeWindow: 2 * time.Minute, Subscriptions: []SubscriptionConfig{DefaultSubscriptionConfig("all"), red}}
	if len(c.Topics) != 1 || !reflect.DeepEqual(c.Topics[0], want) {
		t.Fatalf("got  %+v\nwant %+v", c.Topics, want)
	}
	// What was parsed is what FormatConfig writes back.
	b, err := FormatConfig(c)
	ok(t, err)
	back, err := ParseConfig(b)
	ok(t, err)
	if !reflect.DeepEqual(back, c) {
		t.Errorf("round trip:\n got  %+v\n want %+v", back, c)
	}
}

func TestParseTopicErrors(t *testing.T) {
	const sub0 = "UserConfig.Namespaces[0].Topics[0].Subscriptions[0]"
	rule := func(props string) string {
		return wrapTopics(`{"Name":"t","Subscriptions":[{"Name":"s","Rules":[{"Name":"r","Properties":` + props + `}]}]}`)
	}
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"topic name", wrapTopics(`{"Name":"-t"}`), "Topics[0].Name"},
		{"topic ttl", wrapTopics(`{"Name":"t","Properties":{"DefaultMessageTimeToLive":"soon"}}`), "Topics[0].Properties.DefaultMessageTimeToLive"},
		{"topic window", wrapTopics(`{"Name":"t","Properties":{"DuplicateDetectionHistoryTimeWindow":"P30D"}}`), "Topics[0].Properties.DuplicateDetectionHistoryTimeWindow"},
		{"subscription name", wrapTopics(`{"Name":"t","Subscriptions":[{"Name":""}]}`), sub0 + ".Name: required"},
		{"subscription slash", wrapTopics(`{"Name":"t","Subscriptions":[{"Name":"a/b"}]}`), sub0 + `.Name: "a/b": a subscription name cannot contain '/'`},
		{"subscription twice", wrapTopics(`{"Name":"t","Subscriptions":[{"Name":"s"},{"Name":"S"}]}`), `Subscriptions[1].Name: "S" duplicates "s"`},
		{"subscription sessions", wrapTopics(`{"Name":"t","Subscriptions":[{"Name":"s","Properties":{"RequiresSession":true}}]}`), sub0 + ".Properties.RequiresSession"},
		{"subscription lock", wrapTopics(`{"Name":"t","Subscriptions":[{"Name":"s","Properties":{"LockDuration":"PT10M"}}]}`), sub0 + ".Properties.LockDuration"},
		{"queue under topic", `{"UserConfig":{"Namespaces":[{"Name":"a","Queues":[{"Name":"t/Subscriptions/s"}],"Topics":[{"Name":"T"}]}]}}`, `Topics[0].Name: queue "t/Subscriptions/s" lies under topic "T"`},
		{"rule without properties", wrapTopics(`{"Name":"t","Subscriptions":[{"Name":"s","Rules":[{"Name":"r"}]}]}`), sub0 + ".Rules[0].Properties: required"},
		{"rule twice", wrapTopics(`{"Name":"t","Subscriptions":[{"Name":"s","Rules":[
			{"Name":"r","Properties":{"FilterType":"Sql","SqlFilter":{"SqlExpression":"1=1"}}},
			{"Name":"R","Properties":{"FilterType":"Sql","SqlFilter":{"SqlExpression":"1=1"}}}]}]}`), `Rules[1].Name: "R" duplicates "r"`},
		{"no filter type", rule(`{}`), sub0 + ".Rules[0].Properties.FilterType: required"},
		{"bad filter type", rule(`{"FilterType":"Boolean"}`), `Properties.FilterType: "Boolean", want Correlation or Sql`},
		{"correlation missing", rule(`{"FilterType":"Correlation"}`), "Properties.CorrelationFilter: required"},
		{"correlation unknown key", rule(`{"FilterType":"Correlation","CorrelationFilter":{"Colour":"red"}}`), "CorrelationFilter.Colour: unknown correlation filter property"},
		{"correlation not string", rule(`{"FilterType":"Correlation","CorrelationFilter":{"To":5}}`), "CorrelationFilter.To: want a string"},
		{"correlation property null", rule(`{"FilterType":"Correlation","CorrelationFilter":{"Properties":{"a":null}}}`), "CorrelationFilter.Properties: a: want a string, number or boolean"},
		{"correlation properties empty", rule(`{"FilterType":"Correlation","CorrelationFilter":{"Properties":{}}}`), "CorrelationFilter.Properties: want at least one"},
		{"sql missing", rule(`{"FilterType":"Sql"}`), "Properties.SqlFilter.SqlExpression: required"},
		{"sql syntax", rule(`{"FilterType":"Sql","SqlFilter":{"SqlExpression":"color = = 'red'"}}`),
			sub0 + ".Rules[0].Properties.SqlFilter.SqlExpression: line 1, column 9: expected a value"},
		{"sql unsupported", rule(`{"FilterType":"Sql","SqlFilter":{"SqlExpression":"a = 1 AND\nsys.Nope = 2"}}`),
			"SqlFilter.SqlExpression: line 2, column 5: unknown system property sys.Nope"},
		{"sql not a condition", rule(`{"FilterType":"Sql","SqlFilter":{"SqlExpression":"color"}}`), "line 1, column 1: a filter must be a condition"},
		{"action syntax", rule(`{"FilterType":"Sql","SqlFilter":{"SqlExpression":"1=1"},"Action":{"SqlExpression":"SET a == 1"}}`),
			sub0 + ".Rules[0].Properties.Action.SqlExpression: line 1, column 8: expected a value"},
		{"action on sys", rule(`{"FilterType":"Correlation","CorrelationFilter":{"To":"x"},"Action":{"SqlExpression":"SET sys.Label = 'x'"}}`),
			"Action.SqlExpression: line 1, column 5: SET on a system property is not supported"},
		{"action position in file", rule(`{"FilterType":"Sql","SqlFilter":{"SqlExpression":"1=1"},"Action":{"SqlExpression":"REMOVE 1"}}`),
			"(Config.json line 1, column 240)"}, // the "1" after REMOVE
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

// TestValidateRules: a programmatic configuration gets the same checks.
func TestValidateRules(t *testing.T) {
	s := DefaultSubscriptionConfig("s")
	s.Rules = []RuleConfig{{Name: "r", FilterType: FilterSQL, SQL: "a IN ("}}
	c := &Config{Topics: []TopicConfig{{Name: "t", Subscriptions: []SubscriptionConfig{s}}}}
	err := c.Validate()
	var pe *sqlfilter.Error
	if !errors.As(err, &pe) || pe.Column != 7 || !strings.Contains(err.Error(), "Topics[0].Subscriptions[0].Rules[0].Properties.SqlFilter.SqlExpression") {
		t.Fatalf("got %v, want a *sqlfilter.Error at column 7 naming the field", err)
	}
	s.Rules = []RuleConfig{{Name: "r", FilterType: FilterCorrelation, Correlation: CorrelationFilter{Properties: map[string]any{"a": []int{1}}}}}
	c = &Config{Topics: []TopicConfig{{Name: "t", Subscriptions: []SubscriptionConfig{s}}}}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "CorrelationFilter.Properties.a") {
		t.Fatalf("got %v, want the bad property named", err)
	}
	s.RequiresDuplicateDetection = true
	s.Rules = nil
	c = &Config{Topics: []TopicConfig{{Name: "t", Subscriptions: []SubscriptionConfig{s}}}}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "subscriptions do not detect duplicates") {
		t.Fatalf("got %v, want duplicate detection refused on a subscription", err)
	}
}

// TestConfigFilePosition: a refused SQL filter is reported at its place
// in the file as well as inside the expression.
func TestConfigFilePosition(t *testing.T) {
	_, err := LoadConfig("testdata/ConfigBadSQL.json")
	// The '~' is on line 2, column 7 of the expression, which starts on line
	// 17 of the file; the \n escape keeps the file on one line: the '~' is
	// at file column 84.
	for _, want := range []string{
		"(Config.json line 17, column 84)",
		"UserConfig.Namespaces[0].Topics[0].Subscriptions[1].Rules[1].Properties.SqlFilter.SqlExpression: line 2, column 7: unexpected character '~'",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want it to contain %q", err, want)
		}
	}
}
