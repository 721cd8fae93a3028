package store

import (
	"context"
	"fmt"
	"testing"

	"github.com/ffpipe/ffpipe/internal/emulator/servicebus/sqlfilter"
)

// BenchmarkTopicFanOut measures a topic send of a batch of 100 messages to
// two subscriptions (one $Default, one SQL filter that keeps half), then a
// receive-and-delete of every copy. It reports messages sent per second.
func BenchmarkTopicFanOut(b *testing.B) {
	half := DefaultSubscriptionConfig("even")
	half.Rules = []RuleConfig{{Name: "even", FilterType: FilterSQL, SQL: "n % 2 = 0 AND sys.Label LIKE 'order.%'"}}
	tc := TopicConfig{Name: "t", Subscriptions: []SubscriptionConfig{DefaultSubscriptionConfig("all"), half}}
	s, err := Open(Options{Config: &Config{Topics: []TopicConfig{tc}}})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	top, _ := s.Topic("t")
	all, _ := s.Queue("t/Subscriptions/all")
	even, _ := s.Queue("t/Subscriptions/even")
	body := make([]byte, 300)
	batch := make([]Incoming, 100)
	props := make([]*sqlfilter.Message, len(batch))
	for j := range props {
		props[j] = &sqlfilter.Message{}
		props[j].SetSystem(sqlfilter.SysLabel, "order.created")
		props[j].SetUser("n", j)
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := range batch {
			batch[j] = Incoming{Body: body, Props: props[j]}
		}
		if _, err := top.Send(ctx, batch); err != nil {
			b.Fatal(err)
		}
		for _, c := range []struct {
			q    *Queue
			want int
		}{{all, len(batch)}, {even, len(batch) / 2}} {
			for got := 0; got < c.want; {
				msgs, err := c.q.Receive(c.want-got, ReceiveAndDelete)
				if err != nil || len(msgs) == 0 {
					b.Fatal(fmt.Errorf("receive: %d messages, %v", len(msgs), err))
				}
				got += len(msgs)
			}
		}
	}
	b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "msg/s")
}
