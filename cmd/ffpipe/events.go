package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/ffpipe/ffpipe/internal/events"
	"github.com/ffpipe/ffpipe/internal/secret"
)

func init() {
	commands = append(commands, command{name: "events", summary: "print completion events from a subscription of the events topic [--follow] [--json]", run: runEvents})
}

func runEvents(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("events", flag.ContinueOnError)
	fs.SetOutput(stderr)
	info := fs.String("info", defaultStackInfo, "stack info written by `ffpipe dev`")
	sub := fs.String("subscription", "all", "subscription of the events topic to read (the events are taken from it)")
	follow := fs.Bool("follow", false, "keep waiting for events until interrupted")
	asJSON := fs.Bool("json", false, "print one CloudEvent per line (JSON)")
	idle := fs.Duration("wait", 3*time.Second, "without --follow: exit once no event arrived for this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := clientConfig(*info)
	if err != nil {
		return err
	}
	if cfg.EventsTopic == "" {
		return errors.New("events: FFPIPE_EVENTS_TOPIC is empty: no events are published")
	}
	var client *azservicebus.Client
	if cfg.ServiceBusConnection != "" {
		client, err = azservicebus.NewClientFromConnectionString(cfg.ServiceBusConnection, nil)
	} else if cred, cerr := azidentity.NewDefaultAzureCredential(nil); cerr != nil {
		err = cerr
	} else {
		client, err = azservicebus.NewClient(cfg.ServiceBusNamespace, cred, nil)
	}
	if err != nil {
		return fmt.Errorf("events: %s", secret.Redact(err.Error()))
	}
	defer client.Close(context.WithoutCancel(ctx))
	rcv, err := client.NewReceiverForSubscription(cfg.EventsTopic, *sub, nil)
	if err != nil {
		return fmt.Errorf("events: %w", err)
	}
	defer rcv.Close(context.WithoutCancel(ctx))
	return readEvents(ctx, rcv, *follow, *idle, func(m *azservicebus.ReceivedMessage) error {
		return printEvent(stdout, m.Body, *asJSON)
	})
}

// eventReceiver is what readEvents needs of a subscription receiver.
type eventReceiver interface {
	ReceiveMessages(ctx context.Context, max int, o *azservicebus.ReceiveMessagesOptions) ([]*azservicebus.ReceivedMessage, error)
	CompleteMessage(ctx context.Context, m *azservicebus.ReceivedMessage, o *azservicebus.CompleteMessageOptions) error
}

// readEvents hands each event to show and then completes it; without
// follow it returns once nothing arrived for idle.
func readEvents(ctx context.Context, rcv eventReceiver, follow bool, idle time.Duration, show func(*azservicebus.ReceivedMessage) error) error {
	for {
		rctx, cancel := ctx, context.CancelFunc(func() {})
		if !follow {
			rctx, cancel = context.WithTimeout(ctx, idle)
		}
		msgs, err := rcv.ReceiveMessages(rctx, 100, nil)
		cancel()
		switch {
		case ctx.Err() != nil:
			return nil // interrupted: a clean end
		case errors.Is(err, context.DeadlineExceeded) || err == nil && len(msgs) == 0 && !follow:
			return nil // nothing more is waiting
		case err != nil:
			return fmt.Errorf("events: receive: %w", err)
		}
		for _, m := range msgs {
			if err := show(m); err != nil {
				return err
			}
			if err := rcv.CompleteMessage(ctx, m, nil); err != nil {
				return fmt.Errorf("events: complete %s: %w", m.MessageID, err)
			}
		}
	}
}

// printEvent writes one event: the CloudEvent as one line of JSON, or a
// line for people. A body that is not an ffpipe event is shown as such.
func printEvent(w io.Writer, body []byte, asJSON bool) error {
	if asJSON {
		var buf bytes.Buffer
		if cerr := json.Compact(&buf, body); cerr != nil {
			return fmt.Errorf("events: a message that is not JSON: %w", cerr)
		}
		buf.WriteByte('\n')
		_, werr := w.Write(buf.Bytes())
		return werr
	}
	ev, err := events.Parse(body)
	if err != nil {
		_, werr := fmt.Fprintf(w, "(not an ffpipe event: %v)\n", err)
		return werr
	}
	blob := ev.Data.Source.Container + "/" + ev.Data.Source.Blob
	line := fmt.Sprintf("%s  %-13s %s", ev.Time.Local().Format(time.DateTime), strings.TrimPrefix(ev.Type, events.TypePrefix), blob)
	if ev.Data.Output.Blob != "" {
		line += " → " + ev.Data.Output.Container + "/" + ev.Data.Output.Blob
	}
	if ev.Data.Reason != "" {
		line += "  (" + ev.Data.Reason + ")"
	}
	_, err = fmt.Fprintf(w, "%s  %s\n", line, ev.Data.Key)
	return err
}
