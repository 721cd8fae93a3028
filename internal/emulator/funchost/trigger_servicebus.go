package funchost

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/ffpipe/ffpipe/internal/secret"
	"github.com/ffpipe/ffpipe/internal/sleep"
)

// Receiver is the consumer side of a serviceBusTrigger; *azservicebus.Receiver
// satisfies it, and tests use a hand-written fake.
type Receiver interface {
	ReceiveMessages(ctx context.Context, maxMessages int, options *azservicebus.ReceiveMessagesOptions) ([]*azservicebus.ReceivedMessage, error)
	CompleteMessage(ctx context.Context, msg *azservicebus.ReceivedMessage, options *azservicebus.CompleteMessageOptions) error
	AbandonMessage(ctx context.Context, msg *azservicebus.ReceivedMessage, options *azservicebus.AbandonMessageOptions) error
	RenewMessageLock(ctx context.Context, msg *azservicebus.ReceivedMessage, options *azservicebus.RenewMessageLockOptions) error
	Close(ctx context.Context) error
}

var _ Receiver = (*azservicebus.Receiver)(nil)

// Connection is a resolved `connection` setting of a serviceBusTrigger.
type Connection struct {
	// Setting is the setting name from function.json (or AzureWebJobsServiceBus).
	Setting string
	// ConnectionString when the setting holds one.
	ConnectionString string
	// FullyQualifiedNamespace for identity-based connections
	// (<Setting>__fullyQualifiedNamespace).
	FullyQualifiedNamespace string
}

// Entity is the queue, or topic and subscription, a trigger listens on.
type Entity struct {
	Queue, Topic, Subscription string
}

func (e Entity) String() string {
	if e.Queue != "" {
		return e.Queue
	}
	return e.Topic + "/Subscriptions/" + e.Subscription
}

func (h *Host) prepareServiceBus(fn *function) error {
	b := fn.Trigger
	if b.IsSessionEnabled {
		return fmt.Errorf("isSessionsEnabled is not modelled by the local host: %w", ErrConfig)
	}
	var err error
	if fn.entity.Queue, err = resolve(b.QueueName, h.lookup); err != nil {
		return fmt.Errorf("queueName: %w", err)
	}
	if fn.entity.Topic, err = resolve(b.TopicName, h.lookup); err != nil {
		return fmt.Errorf("topicName: %w", err)
	}
	if fn.entity.Subscription, err = resolve(b.SubscriptionName, h.lookup); err != nil {
		return fmt.Errorf("subscriptionName: %w", err)
	}
	if fn.entity.Queue == "" && (fn.entity.Topic == "" || fn.entity.Subscription == "") {
		return fmt.Errorf("serviceBusTrigger needs queueName or topicName+subscriptionName: %w", ErrConfig)
	}
	name := b.Connection
	if name == "" {
		name = "AzureWebJobsServiceBus"
	}
	conn := Connection{Setting: name}
	for _, n := range []string{name, "AzureWebJobs" + name} {
		if v, ok := h.lookup(n); ok && v != "" {
			conn.ConnectionString = v
			break
		}
		if v, ok := h.lookup(n + "__fullyQualifiedNamespace"); ok && v != "" {
			conn.FullyQualifiedNamespace = v
			break
		}
	}
	if conn.ConnectionString == "" && conn.FullyQualifiedNamespace == "" {
		return fmt.Errorf("connection setting %q (or %s__fullyQualifiedNamespace) is not set: %w", name, name, ErrConfig)
	}
	fn.conn = conn
	switch strings.ToLower(b.DataType) {
	case "", "string", "binary", "stream":
	default:
		return fmt.Errorf("dataType %q: %w", b.DataType, ErrConfig)
	}
	return nil
}

type azureReceiver struct {
	*azservicebus.Receiver
	client *azservicebus.Client
}

func (r azureReceiver) Close(ctx context.Context) error {
	err := r.Receiver.Close(ctx)
	return errors.Join(err, r.client.Close(ctx))
}

func openAzureReceiver(_ context.Context, conn Connection, entity Entity) (Receiver, error) {
	var client *azservicebus.Client
	var err error
	if conn.ConnectionString != "" {
		client, err = azservicebus.NewClientFromConnectionString(conn.ConnectionString, nil)
	} else {
		var cred *azidentity.DefaultAzureCredential
		if cred, err = azidentity.NewDefaultAzureCredential(nil); err == nil {
			client, err = azservicebus.NewClient(conn.FullyQualifiedNamespace, cred, nil)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("service bus client for %s: %s", conn.Setting, redact(err.Error()))
	}
	opts := &azservicebus.ReceiverOptions{ReceiveMode: azservicebus.ReceiveModePeekLock}
	var r *azservicebus.Receiver
	if entity.Queue != "" {
		r, err = client.NewReceiverForQueue(entity.Queue, opts)
	} else {
		r, err = client.NewReceiverForSubscription(entity.Topic, entity.Subscription, opts)
	}
	if err != nil {
		_ = client.Close(context.Background())
		return nil, fmt.Errorf("service bus receiver for %s: %w", entity, err)
	}
	return azureReceiver{Receiver: r, client: client}, nil
}

// redact hides keys and signatures in text that may hold a connection string.
func redact(s string) string { return secret.Redact(s) }

// serviceBus settings from host.json with the extension's defaults.
func (h *Host) sbSettings() (maxConcurrent, maxBatch int, maxRenew time.Duration) {
	sb := h.hc.Extensions.ServiceBus
	maxConcurrent, maxBatch, maxRenew = sb.MaxConcurrentCalls, sb.MaxMessageBatchSize, 5*time.Minute
	if maxConcurrent <= 0 {
		maxConcurrent = 16
	}
	if maxBatch <= 0 {
		maxBatch = 1000
	}
	if sb.MaxAutoLockRenewalDuration != "" {
		if d, err := parseTimeSpan(sb.MaxAutoLockRenewalDuration); err == nil {
			maxRenew = d
		}
	}
	return
}

// runServiceBus is the listener of one serviceBusTrigger function.
func (h *Host) runServiceBus(ctx context.Context, fn *function) {
	log := h.log.With("function", fn.Name, "entity", fn.entity.String())
	maxConcurrent, maxBatch, maxRenew := h.sbSettings()
	many := strings.EqualFold(fn.Trigger.Cardinality, "many")
	for ctx.Err() == nil {
		recv, err := h.opts.OpenReceiver(ctx, fn.conn, fn.entity)
		if err != nil {
			log.Error("service bus: open receiver", "err", redact(err.Error()))
			if !sleepCtx(ctx, h.opts.ServiceBusRetryDelay) {
				return
			}
			continue
		}
		log.Info("service bus listener started", "cardinality", map[bool]string{true: "many", false: "one"}[many])
		if many {
			err = h.sbBatchLoop(ctx, fn, recv, maxBatch, maxRenew)
		} else {
			err = h.sbSingleLoop(ctx, fn, recv, maxConcurrent, maxRenew)
		}
		closeCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = recv.Close(closeCtx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		log.Error("service bus: receive failed; reopening", "err", redact(err.Error()))
		if !sleepCtx(ctx, h.opts.ServiceBusRetryDelay) {
			return
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool { return sleep.For(ctx, d) }

// sbSingleLoop receives with up to maxConcurrent invocations in flight.
func (h *Host) sbSingleLoop(ctx context.Context, fn *function, recv Receiver, maxConcurrent int, maxRenew time.Duration) error {
	slots := make(chan struct{}, maxConcurrent)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		n := 1
	more:
		for n < maxConcurrent {
			select {
			case slots <- struct{}{}:
				n++
			default:
				break more
			}
		}
		msgs, err := recv.ReceiveMessages(ctx, n, nil)
		for i := len(msgs); i < n; i++ {
			<-slots
		}
		for _, m := range msgs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-slots }()
				h.sbProcess(fn, recv, []*azservicebus.ReceivedMessage{m}, maxRenew)
			}()
		}
		if err != nil {
			return err
		}
	}
}

// sbBatchLoop receives up to maxBatch messages and invokes once per batch.
func (h *Host) sbBatchLoop(ctx context.Context, fn *function, recv Receiver, maxBatch int, maxRenew time.Duration) error {
	for {
		msgs, err := recv.ReceiveMessages(ctx, maxBatch, nil)
		if len(msgs) > 0 {
			h.sbProcess(fn, recv, msgs, maxRenew)
		}
		if err != nil {
			return err
		}
	}
}

// sbProcess invokes for msgs (one, or a batch), then completes all on
// success or abandons all on failure. Only a single-message invocation has
// its lock renewed (up to maxAutoLockRenewalDuration): the extension's
// batch loop (ServiceBusListener.RunBatchReceiveLoopAsync) uses a plain
// receiver that never renews, so a batch that outlives the lock loses it
// and its completions fail (docs/localhost.md).
// Invocations run on the host's invoke context, so messages already
// received finish during Close's drain instead of being abandoned.
func (h *Host) sbProcess(fn *function, recv Receiver, msgs []*azservicebus.ReceivedMessage, maxRenew time.Duration) {
	ctx := h.invokeCtx
	var data map[string]json.RawMessage
	var meta metadata
	var err error
	many := strings.EqualFold(fn.Trigger.Cardinality, "many")
	if many {
		data, meta, err = sbBatchPayload(fn, msgs)
	} else {
		data, meta, err = sbSinglePayload(fn, msgs[0])
	}
	switch {
	case err != nil:
		h.log.Error("service bus: bind trigger", "function", fn.Name, "err", err)
	case many:
		_, err = h.invoke(ctx, fn, data, meta)
	default:
		stop := h.renewLocks(ctx, fn, recv, msgs, maxRenew)
		_, err = h.invoke(ctx, fn, data, meta)
		stop()
	}
	settleCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Settle the batch concurrently, as the extension does (Task.WhenAll
	// over the completions): one round trip per message in sequence would
	// cost a broker fsync each and dominate a 100-message batch.
	sem := make(chan struct{}, settleParallelism)
	var wg sync.WaitGroup
	for _, m := range msgs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			var serr error
			if err == nil {
				serr = recv.CompleteMessage(settleCtx, m, nil)
			} else {
				serr = recv.AbandonMessage(settleCtx, m, nil)
			}
			if serr != nil {
				h.log.Error("service bus: settle message", "function", fn.Name, "messageId", m.MessageID,
					"complete", err == nil, "err", serr)
			}
		})
	}
	wg.Wait()
}

// settleParallelism bounds the concurrent completions of one batch.
const settleParallelism = 128

// renewLocks renews each message lock at half its remaining duration until
// stop is called or maxRenew has passed since the receive.
func (h *Host) renewLocks(ctx context.Context, fn *function, recv Receiver, msgs []*azservicebus.ReceivedMessage, maxRenew time.Duration) (stop func()) {
	if maxRenew <= 0 {
		return func() {}
	}
	rctx, cancel := context.WithCancel(ctx)
	deadline := time.Now().Add(maxRenew)
	var wg sync.WaitGroup
	for _, m := range msgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				wait := 15 * time.Second
				if m.LockedUntil != nil {
					wait = time.Until(*m.LockedUntil) / 2
				}
				wait = max(wait, 10*time.Millisecond)
				if time.Now().Add(wait).After(deadline) {
					return
				}
				if !sleepCtx(rctx, wait) {
					return
				}
				if err := recv.RenewMessageLock(rctx, m, nil); err != nil {
					if rctx.Err() == nil {
						h.log.Warn("service bus: renew lock", "function", fn.Name, "messageId", m.MessageID, "err", err)
					}
					return
				}
			}
		}()
	}
	return func() { cancel(); wg.Wait() }
}

func strOrNil(p *string) any {
	if p == nil {
		return nil
	}
	return *p
}

func appProps(m *azservicebus.ReceivedMessage) map[string]any {
	if m.ApplicationProperties == nil {
		return map[string]any{}
	}
	return m.ApplicationProperties
}

// sbBody returns a message body the way the extension's converters bind it
// (docs/localhost.md): the data sections, concatenated; for string binding
// an AMQP value that is a string; anything else (another value type, a
// sequence) cannot be bound and fails the invocation, and with it the
// whole batch.
func sbBody(fn *function, m *azservicebus.ReceivedMessage) ([]byte, error) {
	raw := m.RawAMQPMessage
	if raw == nil {
		return m.Body, nil
	}
	switch b := raw.Body; {
	case len(b.Data) > 0:
		if len(b.Data) == 1 {
			return b.Data[0], nil
		}
		var out []byte
		for _, d := range b.Data {
			out = append(out, d...)
		}
		return out, nil
	case b.Sequence != nil:
		return nil, fmt.Errorf("message %s: a sequence body message cannot be bound to a %s: %w", m.MessageID, bindType(fn), ErrInvocation)
	case b.Value != nil:
		if v, ok := b.Value.(string); ok && bindType(fn) == "string" {
			return []byte(v), nil
		}
		return nil, fmt.Errorf("message %s: a message with a value of type %T cannot be bound to a %s: %w", m.MessageID, b.Value, bindType(fn), ErrInvocation)
	}
	return m.Body, nil
}

// bindType is what the trigger binds each body to.
func bindType(fn *function) string {
	switch strings.ToLower(fn.Trigger.DataType) {
	case "binary", "stream":
		return "byte[]"
	}
	return "string"
}

// sbTriggerValue renders one body for dataType (docs/functions-host-protocol.md#value-encoding).
func sbTriggerValue(fn *function, body []byte) json.RawMessage {
	switch strings.ToLower(fn.Trigger.DataType) {
	case "binary", "stream":
		return marshal(base64.StdEncoding.EncodeToString(body))
	default:
		return encJSONText(string(body))
	}
}

func sdkObjects(meta metadata, fn *function) {
	for _, k := range []string{"MessageReceiver", "MessageSession", "MessageActions", "SessionActions", "ReceiveActions"} {
		meta[k] = json.RawMessage(`{}`)
	}
	ns := fn.conn.FullyQualifiedNamespace
	if ns == "" {
		for _, part := range strings.Split(fn.conn.ConnectionString, ";") {
			if k, v, ok := strings.Cut(part, "="); ok && strings.EqualFold(strings.TrimSpace(k), "Endpoint") {
				ns = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(v), "sb://"), "/")
			}
		}
	}
	meta["Client"] = encObject(map[string]any{"FullyQualifiedNamespace": ns, "IsClosed": false, "TransportType": 0, "Identifier": ns + "-" + newUUID()})
}

// sbSinglePayload builds Data and Metadata for cardinality one.
func sbSinglePayload(fn *function, m *azservicebus.ReceivedMessage) (map[string]json.RawMessage, metadata, error) {
	body, err := sbBody(fn, m)
	if err != nil {
		return nil, nil, err
	}
	meta := metadata{}
	meta["DeliveryCount"] = encJSONText(m.DeliveryCount)
	if m.DeadLetterSource != nil {
		meta["DeadLetterSource"] = encJSONText(*m.DeadLetterSource)
	}
	meta["LockToken"] = encJSONText(formatUUID(m.LockToken))
	if m.ExpiresAt != nil {
		meta["ExpiresAtUtc"] = encDateTime(*m.ExpiresAt)
		meta["ExpiresAt"] = encDateTimeOffset(*m.ExpiresAt)
	}
	if m.EnqueuedTime != nil {
		meta["EnqueuedTimeUtc"] = encDateTime(*m.EnqueuedTime)
		meta["EnqueuedTime"] = encDateTimeOffset(*m.EnqueuedTime)
	}
	meta["MessageId"] = encJSONText(m.MessageID)
	for k, v := range map[string]*string{
		"ContentType": m.ContentType, "ReplyTo": m.ReplyTo, "To": m.To, "Subject": m.Subject, "Label": m.Subject,
		"CorrelationId": m.CorrelationID, "SessionId": m.SessionID, "ReplyToSessionId": m.ReplyToSessionID,
		"PartitionKey": m.PartitionKey,
	} {
		if v != nil {
			meta[k] = encJSONText(*v)
		}
	}
	if m.SequenceNumber != nil {
		meta["SequenceNumber"] = encJSONText(*m.SequenceNumber)
	}
	meta["ApplicationProperties"] = encObject(appProps(m))
	meta["UserProperties"] = encObject(appProps(m))
	sdkObjects(meta, fn)
	dt := strings.ToLower(fn.Trigger.DataType)
	if dt != "binary" && dt != "stream" {
		meta.applyBindingData(string(body))
	}
	return map[string]json.RawMessage{fn.Trigger.Name: sbTriggerValue(fn, body)}, meta, nil
}

// sbBatchPayload builds Data and Metadata for cardinality many: every array
// is JsonConvert-serialized into a string; no body fields are merged.
func sbBatchPayload(fn *function, msgs []*azservicebus.ReceivedMessage) (map[string]json.RawMessage, metadata, error) {
	n := len(msgs)
	raw := make([][]byte, n)
	for i, m := range msgs {
		b, err := sbBody(fn, m)
		if err != nil {
			return nil, nil, err
		}
		raw[i] = b
	}
	var (
		delivery   = make([]uint32, n)
		dlSource   = make([]any, n)
		lockTokens = make([]string, n)
		expUtc     = make([]any, n)
		exp        = make([]any, n)
		enqUtc     = make([]any, n)
		enq        = make([]any, n)
		ids        = make([]string, n)
		ctype      = make([]any, n)
		replyTo    = make([]any, n)
		seq        = make([]any, n)
		to         = make([]any, n)
		subject    = make([]any, n)
		corr       = make([]any, n)
		props      = make([]map[string]any, n)
		session    = make([]any, n)
		replySess  = make([]any, n)
		pkey       = make([]any, n)
		txKey      = make([]any, n)
	)
	for i, m := range msgs {
		delivery[i] = m.DeliveryCount
		dlSource[i] = strOrNil(m.DeadLetterSource)
		lockTokens[i] = formatUUID(m.LockToken)
		if m.ExpiresAt != nil {
			expUtc[i], exp[i] = netDateTime(*m.ExpiresAt), netDateTimeOffset(*m.ExpiresAt)
		}
		if m.EnqueuedTime != nil {
			enqUtc[i], enq[i] = netDateTime(*m.EnqueuedTime), netDateTimeOffset(*m.EnqueuedTime)
		}
		ids[i] = m.MessageID
		ctype[i], replyTo[i], to[i], subject[i] = strOrNil(m.ContentType), strOrNil(m.ReplyTo), strOrNil(m.To), strOrNil(m.Subject)
		corr[i], session[i], replySess[i], pkey[i] = strOrNil(m.CorrelationID), strOrNil(m.SessionID), strOrNil(m.ReplyToSessionID), strOrNil(m.PartitionKey)
		if m.SequenceNumber != nil {
			seq[i] = *m.SequenceNumber
		}
		props[i] = appProps(m)
	}
	meta := metadata{
		"DeliveryCountArray":           encJSONText(delivery),
		"DeadLetterSourceArray":        encJSONText(dlSource),
		"LockTokenArray":               encJSONText(lockTokens),
		"ExpiresAtUtcArray":            encJSONText(expUtc),
		"ExpiresAtArray":               encJSONText(exp),
		"EnqueuedTimeUtcArray":         encJSONText(enqUtc),
		"EnqueuedTimeArray":            encJSONText(enq),
		"MessageIdArray":               encJSONText(ids),
		"ContentTypeArray":             encJSONText(ctype),
		"ReplyToArray":                 encJSONText(replyTo),
		"SequenceNumberArray":          encJSONText(seq),
		"ToArray":                      encJSONText(to),
		"SubjectArray":                 encJSONText(subject),
		"LabelArray":                   encJSONText(subject),
		"CorrelationIdArray":           encJSONText(corr),
		"ApplicationPropertiesArray":   encJSONText(props),
		"UserPropertiesArray":          encJSONText(props),
		"SessionIdArray":               encJSONText(session),
		"ReplyToSessionIdArray":        encJSONText(replySess),
		"PartitionKeyArray":            encJSONText(pkey),
		"TransactionPartitionKeyArray": encJSONText(txKey),
	}
	sdkObjects(meta, fn)
	value, err := sbBatchValue(fn, msgs, raw)
	if err != nil {
		return nil, nil, err
	}
	return map[string]json.RawMessage{fn.Trigger.Name: value}, meta, nil
}

// sbBatchValue renders the bodies of a batch for dataType: string[],
// byte[][] (base64), or object[] (every body must be JSON).
func sbBatchValue(fn *function, msgs []*azservicebus.ReceivedMessage, raw [][]byte) (json.RawMessage, error) {
	n := len(msgs)
	var value json.RawMessage
	switch strings.ToLower(fn.Trigger.DataType) {
	case "string":
		bodies := make([]string, n)
		for i := range msgs {
			bodies[i] = string(raw[i])
		}
		value = encJSONText(bodies)
	case "binary", "stream":
		bodies := raw
		value = encJSONText(bodies)
	default:
		// object[]: every body must be JSON (JsonConvert.DeserializeObject).
		bodies := make([]json.RawMessage, n)
		for i, m := range msgs {
			if !json.Valid(raw[i]) {
				return nil, fmt.Errorf("message %s: body is not JSON and the binding has no dataType (object[]): %w", m.MessageID, ErrInvocation)
			}
			bodies[i] = raw[i]
		}
		value = encJSONText(bodies)
	}
	return value, nil
}
