package servicebus_test

import (
	"context"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/ffpipe/ffpipe/internal/emulator/servicebus/sbtest"
)

// target is what a portable conformance scenario runs against: the stand-in
// or, with -tags integration and credentials, a real namespace. The queue
// must start empty and use the default properties.
type target struct {
	connStr string
	queue   string
}

func (tg target) client(t *testing.T) *azservicebus.Client {
	t.Helper()
	c, err := azservicebus.NewClientFromConnectionString(tg.connStr, nil)
	if err != nil {
		t.Fatalf("new client: %v", err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

// portable are the scenarios that make no assumption a real namespace
// breaks (sequence numbers are compared relatively, no custom queue
// properties, no raw AMQP).
var portable = []struct {
	name string
	run  func(*testing.T, target)
}{
	{"SendReceiveComplete", testSendReceiveComplete},
	{"SendBatchKeepsOrder", testSendBatchKeepsOrder},
	{"MessageFieldsPreserved", testMessageFieldsPreserved},
	{"AnnotatedMessageSectionsPreserved", testAnnotatedMessageSectionsPreserved},
	{"MessageIDAssigned", testMessageIDAssigned},
	{"Settlement", testSettlement},
	{"RenewLockAndPeek", testRenewLockAndPeek},
	{"ScheduleAndCancel", testScheduleAndCancel},
	{"SettleAfterReceiverClosed", testSettleAfterReceiverClosed},
	{"ReceiveDeferredAndDeleteMode", testReceiveDeferredAndDeleteMode},
}

// TestConformance runs the portable scenarios against the stand-in, each
// with a fresh in-memory broker.
func TestConformance(t *testing.T) {
	for _, sc := range portable {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			s := sbtest.Start(t)
			sc.run(t, target{connStr: s.ConnectionString(), queue: queue})
		})
	}
}
