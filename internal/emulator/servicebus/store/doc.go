// Package store is the broker state of the local Service Bus stand-in:
// queues, topics and their subscriptions, dead-letter subqueues, locks,
// deferral, scheduling, TTL, duplicate detection and an optional durable
// log. It knows nothing about
// AMQP: a message is an opaque encoded body plus metadata. The AMQP engine
// in the parent package translates links, dispositions and management
// requests into these calls.
//
// # API summary (for the engine)
//
//	cfg, err := store.LoadConfig(path)         // "" → DefaultConfig(): queue "transcode"
//	s, err := store.Open(store.Options{Dir: dir, Config: cfg, Logger: log}) // Dir "" → memory
//	defer s.Close()
//	q, err := s.Queue("transcode")              // or "transcode/$DeadLetterQueue"; ignores case; ErrNotFound
//	e, err := s.Entity(path)                    // the one resolver: queue, topic, subscription, DLQ
//	//   e.Kind (KindQueue/KindTopic/KindSubscription), e.DeadLetter, e.Queue (receive side), e.Topic
//	t, err := s.Topic("transcode-events")       // t.Send / t.CancelScheduled, as on a queue
//	sq, err := s.Queue("transcode-events/Subscriptions/all") // a subscription is a *Queue
//
//	// sender link transfer / schedule-message (ScheduledAt from x-opt-scheduled-enqueue-time):
//	res, err := q.Send(ctx, []store.Incoming{{Body: enc, MessageID: id, TTL: ttl, ScheduledAt: t}})
//	//   returns after fsync; res[i].SequenceNumber, res[i].Duplicate (ack duplicates as accepted)
//	//   ErrMessageTooLarge, ErrQuotaExceeded, ErrNotAllowed (DLQ)
//	err = q.CancelScheduled(ctx, seqs)         // unknown numbers ignored
//
//	// receiver link with credit n:
//	ch := q.Wait()                              // closed when messages may be available
//	msgs, err := q.Receive(n, store.PeekLock)   // non-blocking; or store.ReceiveAndDelete
//	if len(msgs) == 0 { <-ch (or ctx / link closed); retry }
//	msgs, err = q.ReceiveWait(ctx, n, mode)     // blocking convenience
//	//   Message: SequenceNumber, Body, MessageID, EnqueuedAt, TTL, ExpiresAt, ScheduledAt,
//	//   DeliveryCount (header delivery-count), State (x-opt-message-state), LockToken,
//	//   LockedUntil, DeadLettered, DeadLetterReason, DeadLetterDescription
//
//	// settlement (link disposition or update-disposition), by lock token, any link:
//	err = q.Complete(ctx, tok)                  // accepted / "completed"
//	err = q.Abandon(ctx, tok, modify)           // modified{!undeliverable} / "abandoned"
//	err = q.Release(ctx, tok)                   // released (no delivery-count change)
//	err = q.Defer(ctx, tok, modify)             // modified{undeliverable-here} / "defered"
//	err = q.DeadLetter(ctx, tok, reason, desc, modify) // rejected / "suspended"
//	until, err := q.RenewLock(tok)              // renew-lock
//	//   ErrLockLost → com.microsoft:message-lock-lost / status 410
//	//   modify is a store.Modify: func(body) (newBody, error) merging properties-to-modify
//
//	msgs, err = q.ReceiveDeferred(ctx, seqs, store.PeekLock) // ErrMessageNotFound → 404
//	msgs, err = q.Peek(fromSeq, max)            // any state, no locks, no tokens
//	c := q.Counts()                             // Active, Locked, Deferred, Scheduled, Bytes
//
//	err = s.Sync(ctx)                           // everything so far is on disk
//	err = s.Compact(ctx)                        // rewrite the log as a snapshot now
//
// LockToken is a [16]byte UUID in RFC order (the AMQP uuid);
// tok.DotNetBytes() and LockTokenFromDotNet convert to and from the
// delivery-tag layout.
//
// # Model
//
// Each configured queue has a main entity and a dead-letter subqueue
// ("<q>/$DeadLetterQueue"). A message is active (available or locked),
// deferred or scheduled. Sequence numbers are int64, start at 1, increase
// per queue and are assigned at Send (scheduled messages included); a
// dead-lettered message keeps its number.
//
//   - Receive hands out available messages in ascending sequence number.
//     PeekLock locks each for LockDuration with a fresh random lock token;
//     ReceiveAndDelete removes them.
//   - Complete removes; Abandon unlocks and raises the delivery count;
//     Release unlocks without raising it; Defer makes the message deferred
//     (receivable only with ReceiveDeferred); DeadLetter moves it to the
//     dead-letter subqueue. Lock tokens are looked up per entity, so any
//     link or connection may settle while the lock is valid.
//   - A lock that expires acts like Abandon. When the delivery count
//     reaches MaxDeliveryCount the message moves to the dead-letter
//     subqueue with reason MaxDeliveryCountExceeded (with MaxDeliveryCount
//     3 a message is delivered three times).
//   - TTL: effective TTL = min(message TTL, DefaultMessageTimeToLive),
//     counted from EnqueuedAt. An expired available message is dropped, or
//     dead-lettered with TTLExpiredException when
//     DeadLetteringOnMessageExpiration is set. Locked messages expire only
//     when unlocked; deferred and dead-lettered messages never expire.
//   - Scheduled messages become active at ScheduledAt (EnqueuedAt is then
//     the scheduled time); CancelScheduled removes them.
//   - With RequiresDuplicateDetection, a Send whose MessageID was accepted
//     within DuplicateDetectionHistoryTimeWindow is reported as a duplicate
//     and not stored.
//   - Inside the dead-letter subqueue: no TTL, no MaxDeliveryCount, abandon
//     does not raise the count, dead-lettering is ErrNotAllowed, sending is
//     ErrNotAllowed.
//   - Deferred messages: a lapsed lock leaves them deferred with the same
//     count; Abandon raises the count and keeps them deferred.
//
// # Topics and subscriptions
//
// A subscription is a queue (with its dead-letter subqueue
// "<topic>/Subscriptions/<name>/$DeadLetterQueue") that only its topic
// fills: it has every queue semantic above, but Send on it is
// ErrNotAllowed. Topic.Send evaluates each subscription's rules on the
// message's Incoming.Props (a subscription without rules has $Default, a
// true filter; rules without actions combine with OR into one copy; each
// matching rule with an action adds a copy that Incoming.Annotate
// rewrites, with a sequence number of its own) and
// stores a copy in every matching subscription. The topic hands out the
// sequence numbers, so every copy has the same number and
// Topic.CancelScheduled reaches all of them. Duplicate detection is the
// topic's. TTL = min(message TTL, topic default, subscription default).
// A message no rule matches is accepted and dropped, as in Service Bus.
// All copies of a Send are one log frame: a crash keeps all or none.
//
// Time-driven changes (lock expiry, scheduled activation, TTL) are applied
// lazily by every operation and also by one timer per queue, which wakes
// the channels returned by Wait.
//
// # Durability
//
// With Options.Dir empty everything is in memory. Otherwise every change
// is appended to Dir/servicebus.log as a length-prefixed, CRC-32C
// checksummed record. One writer goroutine collects the records of all
// concurrent operations and writes them with one write and one fsync
// (group commit), so concurrent and batched sends share the cost of a
// sync.
//
//   - Send and CancelScheduled return only after their records are synced:
//     an acknowledged message survives kill -9 and power loss (given an
//     honest fsync). A message is visible to receivers as soon as it is
//     stored, possibly a moment before its sync completes. The records of
//     one operation (a whole batch) share one checksummed frame, so a
//     batch is recovered entirely or not at all.
//   - Settlements, receive-and-delete removals, dead-lettering and
//     delivery-count changes are logged too but, unless
//     Options.SyncSettlements is set, do not wait for the sync: they are
//     written at once and synced by the next batch that needs a sync or
//     within 10 ms, so they add almost no fsyncs. A crash can undo the
//     last few milliseconds of them, which redelivers messages
//     (at-least-once) but never loses an acknowledged send.
//   - Locks are not durable: after a restart every locked message is
//     available again, with an unchanged delivery count.
//   - Recovery on Open replays the log, stops at the first torn or corrupt
//     record (a write cut short by a crash) and truncates the file there.
//   - Dir/LOCK is flock'ed while the store is open, so a second process
//     cannot open the same directory (the lock dies with the process).
//   - When the log is at least CompactMinBytes (64 MiB) and four times the
//     live data, the writer rewrites it as a snapshot (a new file, synced,
//     renamed over the old one), so the log does not grow forever.
//
// # Compatibility
//
//	modelled                                     | not modelled
//	---------------------------------------------+-----------------------------------------
//	queues + dead-letter subqueues               | rule changes at run time (Config only)
//	PeekLock, ReceiveAndDelete, lock renewal     | sessions (RequiresSession is refused)
//	abandon/defer/dead-letter/complete/release   | ForwardTo, ForwardDeadLetteredMessagesTo
//	MaxDeliveryCount, TTL, dead-letter on expiry | auto-delete on idle, partitioning
//	scheduled (and cancel), deferred messages    | durable locks
//	duplicate detection by MessageId             | transactions
//	256 KB message limit, optional queue quota   | on-the-fly entity management
//	Config.json (with // comments), ISO-8601     |
//	topics, subscriptions, correlation and SQL   |
//	rules (package sqlfilter)                    |
package store
