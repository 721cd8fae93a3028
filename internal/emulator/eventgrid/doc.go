// Package eventgrid is a local stand-in for Event Grid's Blob Storage system
// topic: it lists Azurite containers (Azurite has no Event Grid integration),
// detects new and changed committed blobs by eTag, and delivers
// Microsoft.Storage.BlobCreated events to webhook subscriptions with Event
// Grid's delivery contract: validation handshake first, at least once,
// retries with backoff on failure, dead-lettering when attempts run out.
//
//	eg := eventgrid.New(eventgrid.Options{
//		ConnectionString: azuriteConnString,
//		Containers:       []string{"input"},
//		Subscriptions: []eventgrid.Subscription{{
//			Name:              "ffpipe-input",
//			Endpoint:          host.EventGridWebhookURL("OnBlobCreated"),
//			SubjectBeginsWith: "/blobServices/default/containers/input/",
//			SubjectEndsWith:   ".mp4",
//		}},
//		DataDir: dir,
//	})
//	err := eg.Start(ctx)
//	defer eg.Close()
//	eg.Poke() // after an upload, to skip the rest of the poll interval
//
// The cursor (state.json in DataDir) holds the last eTag seen per blob and
// the outbox of events not yet acknowledged; it is written atomically after
// every change, so a restart neither loses an event nor replays them all
// (an event may be delivered again if the process died between delivery and
// the write: at least once, as in Azure).
//
// # Compatibility
//
// | Area | Modelled | Not modelled |
// |---|---|---|
// | Source | listing errors (storage down) logged once per 10 s and recovered from; block/append/page blobs in the listed containers, committed only (uncommitted blocks and pending copies are invisible); a new eTag (overwrite) is a new event; a deleted and re-uploaded blob is a new event | BlobDeleted, BlobTierChanged and the other Storage event types; $logs/$blobchangefeed are simply not listed; hierarchical-namespace (dfs) APIs |
// | Event fields | topic /subscriptions/…/storageAccounts/<account> (Options.Topic), subject /blobServices/default/containers/<c>/blobs/<name>, eventType, eventTime (detection time, 7 decimals, Z), id, dataVersion "", metadataVersion "1"; data: api, clientRequestId, requestId, eTag (quoted), contentType, contentLength, blobType, url, sequencer (32 hex digits, increasing), storageDiagnostics.batchId | data.api is inferred: CopyBlob for completed copies, PutBlockList above 256 MiB, else PutBlob (the listing does not say which API wrote the blob); eventTime is when the change was seen, up to one poll after the write |
// | Schemas | Event Grid schema (array of one event, application/json) and CloudEvents 1.0 structured (one event, application/cloudevents+json) | batching (maxEventsPerBatch), custom input schema |
// | Subscriptions | webhook endpoint, subjectBeginsWith/subjectEndsWith (case-insensitive by default, as isSubjectCaseSensitive=false) | advanced filters, includedEventTypes (only BlobCreated exists here), Service Bus/queue endpoints, Entra ID auth |
// | Handshake | SubscriptionValidation event with aeg-event-type header, 200 + validationResponse required; CloudEvents OPTIONS with WebHook-Request-Origin, WebHook-Allowed-Origin required; repeated with backoff until it succeeds, once per run | validationUrl (asynchronous manual validation) |
// | Delivery | headers aeg-event-type, aeg-subscription-name (upper case), aeg-delivery-count, aeg-data-version, aeg-metadata-version; success = 200–204; 30 s timeout; retries with exponential backoff and jitter (200 ms doubling to 10 s by default: a time-compressed schedule); 400/401/403/413 dead-letter at once; MaxDeliveryAttempts (30, as in Azure; about 4.5 minutes with the compressed schedule) then dead-letter to DataDir/deadletter/<SUBSCRIPTION>.jsonl with deadLetterReason, deliveryAttempts, lastDeliveryOutcome, publishTime, lastDeliveryAttemptTime, plus an error log; no ordering guarantee (Concurrency deliveries in flight) | TTL (eventTimeToLive), the real schedule's minutes-to-hours delays, delayed delivery for unhealthy endpoints, the 5-minute dead-letter delay |
package eventgrid
