package stack

import (
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/ffpipe/ffpipe/internal/emulator/servicebus/store"
)

// TestServiceBusConfig: the broker declares the transcode queue and the
// completion-events topic with duplicate detection and the subscription
// "all", identically in process and as the Config.json a child reads.
func TestServiceBusConfig(t *testing.T) {
	tests := []struct {
		name      string
		settings  map[string]string
		wantQueue string
		wantTopic string
	}{
		{"defaults", nil, store.DefaultQueueName, store.DefaultEventsTopic},
		{"renamed", map[string]string{"FFPIPE_QUEUE": "jobs", "FFPIPE_EVENTS_TOPIC": "done-events"}, "jobs", "done-events"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Stack{opts: Options{Dir: t.TempDir(), Settings: tt.settings, LockDuration: 30 * time.Second, DuplicateDetectionWindow: 5 * time.Minute}}
			cfg := s.serviceBusConfig()
			if err := cfg.Validate(); err != nil {
				t.Fatalf("validate: %v", err)
			}
			if len(cfg.Queues) != 1 || cfg.Queues[0].Name != tt.wantQueue || !cfg.Queues[0].RequiresDuplicateDetection {
				t.Errorf("queues: got %+v, want %s with duplicate detection", cfg.Queues, tt.wantQueue)
			}
			if len(cfg.Topics) != 1 || cfg.Topics[0].Name != tt.wantTopic || !cfg.Topics[0].RequiresDuplicateDetection ||
				len(cfg.Topics[0].Subscriptions) != 1 || cfg.Topics[0].Subscriptions[0].Name != store.DefaultEventsSubscription {
				t.Errorf("topics: got %+v, want %s with duplicate detection and subscription %s", cfg.Topics, tt.wantTopic, store.DefaultEventsSubscription)
			}
			if err := s.writeServiceBusConfig(); err != nil {
				t.Fatalf("write: %v", err)
			}
			data, err := os.ReadFile(s.serviceBusConfigPath())
			if err != nil {
				t.Fatal(err)
			}
			back, err := store.ParseConfig(data)
			if err != nil {
				t.Fatalf("parse the written Config.json: %v", err)
			}
			if !reflect.DeepEqual(back, cfg) {
				t.Errorf("child config differs:\n got  %+v\n want %+v", back, cfg)
			}
		})
	}
}
