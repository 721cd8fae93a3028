package servicebus_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/ffpipe/ffpipe/internal/emulator/servicebus"
)

// childEnv makes the test binary run a durable broker instead of the tests
// (see TestMain), so a test can kill -9 it.
const childEnv = "FFPIPE_SB_CHILD_DATA"

func TestMain(m *testing.M) {
	if dir := os.Getenv(childEnv); dir != "" {
		runChild(dir)
		return
	}
	os.Exit(m.Run())
}

func runChild(dir string) {
	s, err := servicebus.New(servicebus.Options{DataDir: dir})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if err := s.Start(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fmt.Println(s.ConnectionString())
	select {} // until killed
}

// startChild starts a broker process on dir and returns its connection string.
func startChild(t *testing.T, dir string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("read child connection string: %v", err)
	}
	return cmd, strings.TrimSpace(line)
}

func TestKill9LosesNoAcknowledgedMessage(t *testing.T) {
	if testing.Short() {
		t.Skip("starts broker processes")
	}
	t.Parallel()
	dir := t.TempDir()
	cmd, cs := startChild(t, dir)
	ctx := ctxT(t, 60*time.Second)

	var mu sync.Mutex
	acked := map[string]bool{}
	const senders = 4
	var wg sync.WaitGroup
	stop := make(chan struct{})
	reached := make(chan struct{})
	const killAfter = 300
	for i := 0; i < senders; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := azservicebus.NewClientFromConnectionString(cs, &azservicebus.ClientOptions{RetryOptions: azservicebus.RetryOptions{MaxRetries: -1}})
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close(context.Background())
			snd, err := c.NewSender(queue, nil)
			if err != nil {
				t.Error(err)
				return
			}
			for j := 0; ; j++ {
				mu.Lock()
				tooMany := len(acked) > 100*killAfter
				mu.Unlock()
				if tooMany {
					return
				}
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("s%d-%d", i, j)
				sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				err := snd.SendMessage(sctx, &azservicebus.Message{Body: []byte(id), MessageID: &id}, nil)
				cancel()
				if err != nil {
					return // the broker died
				}
				mu.Lock()
				acked[id] = true
				if len(acked) == killAfter {
					close(reached)
				}
				mu.Unlock()
			}
		}()
	}
	// Kill the broker in the middle of the stream.
	select {
	case <-reached:
	case <-ctx.Done():
		t.Fatal("sends were not acknowledged before the deadline")
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	close(stop)
	wg.Wait()

	_, cs2 := startChild(t, dir)
	c, err := azservicebus.NewClientFromConnectionString(cs2, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	r, err := c.NewReceiverForQueue(queue, &azservicebus.ReceiverOptions{ReceiveMode: azservicebus.ReceiveModeReceiveAndDelete})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for {
		short, cancel := context.WithTimeout(ctx, 2*time.Second)
		msgs, err := r.ReceiveMessages(short, 500, nil)
		cancel()
		if err != nil || len(msgs) == 0 {
			break
		}
		for _, m := range msgs {
			got[string(m.Body)] = true
		}
	}
	lost := 0
	for id := range acked {
		if !got[id] {
			lost++
		}
	}
	if lost > 0 {
		t.Fatalf("lost %d of %d acknowledged messages after kill -9 (recovered %d)", lost, len(acked), len(got))
	}
	t.Logf("acknowledged %d, recovered %d (unacknowledged in-flight sends may also survive)", len(acked), len(got))
}

func TestKill9KeepsSettlements(t *testing.T) {
	if testing.Short() {
		t.Skip("starts broker processes")
	}
	t.Parallel()
	dir := t.TempDir()
	cmd, cs := startChild(t, dir)
	ctx := ctxT(t, 60*time.Second)
	c, err := azservicebus.NewClientFromConnectionString(cs, nil)
	if err != nil {
		t.Fatal(err)
	}
	snd := sender(t, c, queue)
	const n = 100
	batch, err := snd.NewMessageBatch(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if err := batch.AddMessage(&azservicebus.Message{Body: []byte(fmt.Sprint(i))}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := snd.SendMessageBatch(ctx, batch, nil); err != nil {
		t.Fatalf("send: %v", err)
	}
	r := receiver(t, c, queue, nil)
	msgs := receiveN(t, ctx, r, n)
	completed := map[string]bool{}
	for _, m := range msgs[:n/2] {
		if err := r.CompleteMessage(ctx, m, nil); err != nil {
			t.Fatalf("complete: %v", err)
		}
		completed[string(m.Body)] = true
	}
	// The other half stays locked when the broker dies.
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	_ = c.Close(ctx)

	_, cs2 := startChild(t, dir)
	c2, err := azservicebus.NewClientFromConnectionString(cs2, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close(context.Background())
	r2 := receiver(t, c2, queue, &azservicebus.ReceiverOptions{ReceiveMode: azservicebus.ReceiveModeReceiveAndDelete})
	got := receiveN(t, ctx, r2, n/2)
	for _, m := range got {
		if completed[string(m.Body)] {
			t.Errorf("completed message %s came back after kill -9", m.Body)
		}
	}
	if p, err := r2.PeekMessages(ctx, 10, nil); err != nil || len(p) != 0 {
		t.Errorf("after receiving the %d unsettled messages: %d more, %v; want none", n/2, len(p), err)
	}
}

func TestClientRecoversAfterBrokerRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s1, err := servicebus.New(servicebus.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t, 60*time.Second)
	if err := s1.Start(ctx); err != nil {
		t.Fatal(err)
	}
	addr := s1.Addr()
	c, err := azservicebus.NewClientFromConnectionString(s1.ConnectionString(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	snd := sender(t, c, queue)
	if err := snd.SendMessage(ctx, &azservicebus.Message{Body: []byte("one")}, nil); err != nil {
		t.Fatalf("send: %v", err)
	}
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	// Same address and data: the SDK reconnects on its own.
	s2, err := servicebus.New(servicebus.Options{Addr: addr, DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if err := snd.SendMessage(ctx, &azservicebus.Message{Body: []byte("two")}, nil); err != nil {
		t.Fatalf("send after restart: %v", err)
	}
	r := receiver(t, c, queue, &azservicebus.ReceiverOptions{ReceiveMode: azservicebus.ReceiveModeReceiveAndDelete})
	got := receiveN(t, ctx, r, 2)
	if string(got[0].Body) != "one" || string(got[1].Body) != "two" {
		t.Fatalf("got %q %q, want one two", got[0].Body, got[1].Body)
	}
}
