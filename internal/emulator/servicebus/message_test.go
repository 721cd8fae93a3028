package servicebus

import (
	"bytes"
	"testing"
	"time"

	"github.com/Azure/go-amqp"

	enc "github.com/ffpipe/ffpipe/internal/emulator/servicebus/amqp/encoding"
	"github.com/ffpipe/ffpipe/internal/emulator/servicebus/sqlfilter"
)

func marshalMsg(t testing.TB, m *amqp.Message) []byte {
	t.Helper()
	b, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseIncomingAssignsMessageID(t *testing.T) {
	ttl := time.Minute
	at := time.UnixMilli(1800000000000).UTC()
	tests := []struct {
		name   string
		msg    *amqp.Message
		wantID string
	}{
		{"keeps id", &amqp.Message{Properties: &amqp.MessageProperties{MessageID: "id-1"}, Data: [][]byte{[]byte("x")}}, "id-1"},
		{"no properties", &amqp.Message{Data: [][]byte{[]byte("x")}, Header: &amqp.MessageHeader{TTL: ttl},
			Annotations: amqp.Annotations{"x-opt-scheduled-enqueue-time": at}}, ""},
		{"properties without id", &amqp.Message{Properties: &amqp.MessageProperties{Subject: ptr("s")}, Data: [][]byte{[]byte("x")},
			ApplicationProperties: map[string]any{"k": "v"}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, err := parseIncoming(marshalMsg(t, tt.msg), true)
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantID != "" && in.messageID != tt.wantID {
				t.Errorf("message id: got %q, want %q", in.messageID, tt.wantID)
			}
			if in.messageID == "" {
				t.Fatal("got empty message id")
			}
			var back amqp.Message
			if err := back.UnmarshalBinary(in.bare); err != nil {
				t.Fatalf("stored bytes do not decode: %v", err)
			}
			if back.Properties == nil || back.Properties.MessageID != in.messageID {
				t.Errorf("stored message id: got %+v, want %q", back.Properties, in.messageID)
			}
			if tt.msg.Properties != nil && tt.msg.Properties.Subject != nil && (back.Properties.Subject == nil || *back.Properties.Subject != "s") {
				t.Errorf("subject lost: %+v", back.Properties)
			}
			if !bytes.Equal(back.GetData(), []byte("x")) {
				t.Errorf("body: got %q, want x", back.GetData())
			}
			if tt.msg.Header != nil && in.ttl != ttl {
				t.Errorf("ttl: got %v, want %v", in.ttl, ttl)
			}
			if tt.msg.Annotations != nil && !in.scheduledAt.Equal(at) {
				t.Errorf("scheduled: got %v, want %v", in.scheduledAt, at)
			}
			if tt.msg.ApplicationProperties != nil && back.ApplicationProperties["k"] != "v" {
				t.Errorf("application properties lost: %v", back.ApplicationProperties)
			}
		})
	}
}

func TestBuildDelivery(t *testing.T) {
	src := &amqp.Message{
		Header:                &amqp.MessageHeader{Durable: true, TTL: time.Hour},
		Annotations:           amqp.Annotations{"x-opt-partition-key": "pk"},
		Properties:            &amqp.MessageProperties{MessageID: "m"},
		ApplicationProperties: map[string]any{"keep": int64(1), "over": "old"},
		Data:                  [][]byte{[]byte("body")},
		Footer:                amqp.Annotations{"f": "v"},
	}
	tok := enc.UUID{0xde, 0xe2, 0x66, 0x71, 6, 8, 0x4c, 0xdb, 0x8b, 2, 0xa7, 0xf5, 0x93, 0xfd, 0x1f, 0x19}
	enq := time.UnixMilli(1700000000000).UTC()
	until := enq.Add(time.Minute)
	out, err := buildDelivery(marshalMsg(t, src), deliveryInfo{seq: 42, enqueued: enq, lockedUntil: until, lockToken: &tok,
		deliveryCount: 2, state: 1, ttl: 30 * time.Minute, appProps: enc.Map{{Key: "over", Value: "new"}}})
	if err != nil {
		t.Fatal(err)
	}
	var got amqp.Message
	if err := got.UnmarshalBinary(out); err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"delivery count", got.Header.DeliveryCount, uint32(2)},
		{"durable kept", got.Header.Durable, true},
		{"ttl capped", got.Header.TTL, 30 * time.Minute},
		{"sequence number", got.Annotations["x-opt-sequence-number"], int64(42)},
		{"enqueued", got.Annotations["x-opt-enqueued-time"], enq},
		{"locked until", got.Annotations["x-opt-locked-until"], until},
		{"state", got.Annotations["x-opt-message-state"], int32(1)},
		{"partition key kept", got.Annotations["x-opt-partition-key"], "pk"},
		{"lock token", got.DeliveryAnnotations["x-opt-lock-token"], amqp.UUID(tok)},
		{"message id", got.Properties.MessageID, "m"},
		{"app prop kept", got.ApplicationProperties["keep"], int64(1)},
		{"app prop merged", got.ApplicationProperties["over"], "new"},
		{"body", string(got.GetData()), "body"},
		{"footer", got.Footer["f"], "v"},
	}
	for _, c := range checks {
		if gt, ok := c.got.(time.Time); ok {
			if !gt.Equal(c.want.(time.Time)) {
				t.Errorf("%s: got %v, want %v", c.name, gt, c.want)
			}
			continue
		}
		if c.got != c.want {
			t.Errorf("%s: got %#v, want %#v", c.name, c.got, c.want)
		}
	}
}

func TestMergeAppProps(t *testing.T) {
	src := marshalMsg(t, &amqp.Message{Properties: &amqp.MessageProperties{MessageID: "m"}, Value: "v"})
	out, err := mergeAppProps(src, enc.Map{{Key: "a", Value: int64(1)}})
	if err != nil {
		t.Fatal(err)
	}
	var got amqp.Message
	if err := got.UnmarshalBinary(out); err != nil {
		t.Fatal(err)
	}
	if got.ApplicationProperties["a"] != int64(1) || got.Value != "v" || got.Properties.MessageID != "m" {
		t.Fatalf("got props %v value %v id %v", got.ApplicationProperties, got.Value, got.Properties.MessageID)
	}
}

func FuzzParseMessage(f *testing.F) {
	f.Add(marshalMsg(f, &amqp.Message{Properties: &amqp.MessageProperties{MessageID: "id"}, Data: [][]byte{[]byte("x")}}))
	f.Add(marshalMsg(f, &amqp.Message{Header: &amqp.MessageHeader{TTL: time.Second}, Value: int64(1), ApplicationProperties: map[string]any{"a": "b"}}))
	f.Add([]byte{0x00, 0x53, 0x75, 0xa0, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		in, err := parseIncoming(b, true)
		if err != nil {
			return
		}
		if in.props == nil {
			t.Fatal("parsed message without its filter view")
		}
		changed, err := annotate(in.bare, []sqlfilter.Change{{Name: "a", Value: int64(1)}, {Name: "b", Remove: true}})
		if err != nil {
			t.Fatalf("annotate a parsed message: %v", err)
		}
		if again, err := parseIncoming(changed, true); err != nil {
			t.Fatalf("parse the annotated message: %v", err)
		} else if v, _ := again.props.User("A"); v != int64(1) {
			t.Fatalf("annotated property a = %v, want 1", v)
		}
		if in.messageID == "" {
			t.Fatal("parsed message without a message id")
		}
		if _, err := buildDelivery(in.bare, deliveryInfo{seq: 1, enqueued: time.Unix(0, 0)}); err != nil {
			t.Fatalf("build delivery from a parsed message: %v", err)
		}
		_, _ = splitBatch(b)
		_, _ = parseRequest(b)
	})
}
func ptr[T any](v T) *T { return &v }
