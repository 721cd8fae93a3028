package sbtest_test

import (
	"context"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/ffpipe/ffpipe/internal/emulator/servicebus/sbtest"
)

// In a test, Start gives a private in-memory broker on a random port,
// closed when the test ends; the SDK connects with its connection string
// unchanged. (Start needs the test's t, so this example is compiled, not
// run; TestExampleStart runs the same code.)
func ExampleStart() {
	var t *testing.T // the test's t
	sendOne(t)
}

func sendOne(t testing.TB) {
	s := sbtest.Start(t)
	client, err := azservicebus.NewClientFromConnectionString(s.ConnectionString(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close(context.Background())
	sender, err := client.NewSender("transcode", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sender.Close(context.Background())
	if err := sender.SendMessage(t.Context(), &azservicebus.Message{Body: []byte("hello")}, nil); err != nil {
		t.Fatal(err)
	}
	receiver, err := client.NewReceiverForQueue("transcode", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer receiver.Close(context.Background())
	msgs, err := receiver.ReceiveMessages(t.Context(), 1, nil)
	if err != nil || len(msgs) != 1 || string(msgs[0].Body) != "hello" {
		t.Fatalf("received %v, %v; want one message \"hello\"", msgs, err)
	}
	if err := receiver.CompleteMessage(t.Context(), msgs[0], nil); err != nil {
		t.Fatal(err)
	}
}

func TestExampleStart(t *testing.T) { sendOne(t) }
