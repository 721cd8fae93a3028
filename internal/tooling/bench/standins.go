package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/ffpipe/ffpipe/internal/emulator/azurite"
	"github.com/ffpipe/ffpipe/internal/emulator/batch"
	"github.com/ffpipe/ffpipe/internal/emulator/servicebus"
	"github.com/ffpipe/ffpipe/internal/storage"
)

// standins measures the Service Bus and Batch stand-ins on their own,
// durable (state on disk, fsync before ack) as in the stack.
func (r *runner) standins(ctx context.Context) error {
	if err := r.serviceBusAlone(ctx); err != nil {
		return fmt.Errorf("service bus: %w", err)
	}
	if err := r.serviceBusJS(ctx); err != nil {
		return fmt.Errorf("service bus through the JavaScript SDK: %w", err)
	}
	if err := r.batchAlone(ctx); err != nil {
		return fmt.Errorf("batch: %w", err)
	}
	if err := r.azuriteAlone(ctx); err != nil {
		return fmt.Errorf("azurite: %w", err)
	}
	return nil
}

// azuriteAlone measures the storage operations Dispatch makes per task:
// blob properties (reads, 16 in flight as Dispatch) and small record
// writes (Azurite fdatasyncs every blob it writes), 16 and 64 in flight.
func (r *runner) azuriteAlone(ctx context.Context) error {
	n := min(r.o.StandinMessages, 5000)
	az := azurite.New(azurite.Options{Dir: filepath.Join(r.o.WorkDir, "standin-azurite")})
	if err := az.Start(ctx); err != nil {
		return err
	}
	defer az.Close()
	st, err := storage.NewFromConnectionString(az.ConnectionString(), storage.Options{})
	if err != nil {
		return err
	}
	if err := st.EnsureContainer(ctx, "bench"); err != nil {
		return err
	}
	r.progress("azurite alone: %d writes and reads …", n)
	rec := []byte(`{"key":"00000000000000000000000000000000","state":"dispatched","timings":{}}`)
	put := func(inFlight int, prefix string) (float64, error) {
		t0 := time.Now()
		err := parallelN(ctx, n, inFlight, func(i int) error {
			return st.Put(ctx, "bench", fmt.Sprintf("%s%06d", prefix, i), rec, "application/json", map[string]string{"state": "dispatched"})
		})
		return round(Rate(n, time.Since(t0)), 1), err
	}
	if r.res.AzuritePutPerS, err = put(16, "a"); err != nil {
		return err
	}
	if r.res.AzuritePut64PerS, err = put(64, "b"); err != nil {
		return err
	}
	t0 := time.Now()
	if err := parallelN(ctx, n, 16, func(i int) error {
		_, err := st.Properties(ctx, "bench", fmt.Sprintf("a%06d", i))
		return err
	}); err != nil {
		return err
	}
	r.res.AzuriteReadPerS = round(Rate(n, time.Since(t0)), 1)
	r.progress("azurite alone: write %.0f/s (16 in flight), %.0f/s (64), properties %.0f/s",
		r.res.AzuritePutPerS, r.res.AzuritePut64PerS, r.res.AzuriteReadPerS)
	return nil
}

// serviceBusAlone sends N messages in batches of 100 (8 senders), then
// receives them in batches of 100 and completes each (concurrently, as the
// host does).
func (r *runner) serviceBusAlone(ctx context.Context) error {
	n := r.o.StandinMessages
	dir := filepath.Join(r.o.WorkDir, "standin-servicebus")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	sb, err := servicebus.New(servicebus.Options{DataDir: dir, Logger: r.o.Logger.With("standin", "servicebus")})
	if err != nil {
		return err
	}
	if err := sb.Start(ctx); err != nil {
		return err
	}
	defer sb.Close()
	body := make([]byte, 256) // about a request message
	bodies := make([][]byte, n)
	for i := range bodies {
		bodies[i] = body
	}
	r.progress("service bus alone: %d messages …", n)
	t0 := time.Now()
	if err := sendAll(ctx, sb.ConnectionString(), "transcode", bodies, nil, 8); err != nil {
		return err
	}
	send := time.Since(t0)

	c, err := azservicebus.NewClientFromConnectionString(sb.ConnectionString(), nil)
	if err != nil {
		return err
	}
	defer c.Close(context.WithoutCancel(ctx))
	recv, err := c.NewReceiverForQueue("transcode", nil)
	if err != nil {
		return err
	}
	defer recv.Close(context.WithoutCancel(ctx))
	t1 := time.Now()
	for got := 0; got < n; {
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		msgs, err := recv.ReceiveMessages(rctx, min(100, n-got), nil)
		cancel()
		if err != nil {
			return fmt.Errorf("receive after %d: %w", got, err)
		}
		var wg sync.WaitGroup
		errs := make([]error, len(msgs))
		for i, m := range msgs {
			wg.Go(func() { errs[i] = recv.CompleteMessage(ctx, m, nil) })
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return err
		}
		got += len(msgs)
	}
	rc := time.Since(t1)
	r.res.ServiceBusSendPerS = round(Rate(n, send), 1)
	r.res.ServiceBusReceivePerS = round(Rate(n, rc), 1)
	r.res.ServiceBusMsgsPerS = round(Rate(n, send+rc), 1)
	r.progress("service bus alone: send %.0f msg/s, receive+complete %.0f msg/s, overall %.0f msg/s",
		r.res.ServiceBusSendPerS, r.res.ServiceBusReceivePerS, r.res.ServiceBusMsgsPerS)
	return nil
}

type staticToken string

func (t staticToken) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: string(t), ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// batchAlone adds N tasks (collections of 100, 16 in flight) to a job on
// a zero-node pool, through azbatch.
func (r *runner) batchAlone(ctx context.Context) error {
	n := r.o.StandinTasks
	dir := filepath.Join(r.o.WorkDir, "standin-batch")
	bt := batch.New(batch.Options{DataDir: dir, MaxSlots: r.o.Slots, Logger: r.o.Logger.With("standin", "batch")})
	if err := bt.Start(ctx); err != nil {
		return err
	}
	defer bt.Close()
	c, err := azbatch.NewClient(bt.URL(), staticToken(bt.Token()),
		&azbatch.ClientOptions{ClientOptions: azcore.ClientOptions{InsecureAllowCredentialWithHTTP: true}})
	if err != nil {
		return err
	}
	if _, err := c.CreatePool(ctx, azbatch.CreatePoolContent{
		ID: to.Ptr("bench"), VMSize: to.Ptr("standard_d2s_v5"),
		TargetDedicatedNodes: to.Ptr[int32](0), TaskSlotsPerNode: to.Ptr[int32](int32(r.o.Slots)),
		VirtualMachineConfiguration: &azbatch.VirtualMachineConfiguration{
			ImageReference: &azbatch.ImageReference{Publisher: to.Ptr("canonical"), Offer: to.Ptr("ubuntu-24_04-lts"), SKU: to.Ptr("server")},
			NodeAgentSKUID: to.Ptr("batch.node.ubuntu 24.04"),
		},
	}, nil); err != nil {
		return err
	}
	if _, err := c.CreateJob(ctx, azbatch.CreateJobContent{ID: to.Ptr("bench"), PoolInfo: &azbatch.PoolInfo{PoolID: to.Ptr("bench")}}, nil); err != nil {
		return err
	}
	r.progress("batch alone: %d tasks …", n)
	const size = 100
	chunks := (n + size - 1) / size
	var failed atomic.Int64
	t0 := time.Now()
	err = parallelN(ctx, chunks, 16, func(k int) error {
		g := azbatch.TaskGroup{}
		for i := k * size; i < min((k+1)*size, n); i++ {
			g.Value = append(g.Value, azbatch.CreateTaskContent{
				ID:          to.Ptr(fmt.Sprintf("t%06d", i)),
				CommandLine: to.Ptr(r.preset.TaskCommandLine()),
				EnvironmentSettings: []azbatch.EnvironmentSetting{
					{Name: to.Ptr("FFPIPE_KEY"), Value: to.Ptr(fmt.Sprintf("%032d", i))},
				},
				Constraints: &azbatch.TaskConstraints{MaxWallClockTime: to.Ptr("PT30M"), MaxTaskRetryCount: to.Ptr[int32](2)},
			})
		}
		res, err := c.CreateTaskCollection(ctx, "bench", g, nil)
		if err != nil {
			return err
		}
		for _, x := range res.Value {
			if x.Status == nil || !strings.EqualFold(string(*x.Status), "success") {
				failed.Add(1)
			}
		}
		return nil
	})
	d := time.Since(t0)
	if err != nil {
		return err
	}
	if f := failed.Load(); f > 0 {
		return fmt.Errorf("%d of %d tasks not added", f, n)
	}
	r.res.BatchTasksPerS = round(Rate(n, d), 1)
	r.progress("batch alone: %d tasks in %.2fs = %.0f tasks/s", n, d.Seconds(), r.res.BatchTasksPerS)
	return nil
}
