// Package servicebus is a local stand-in for Azure Service Bus: an AMQP 1.0
// broker for queues, topics and subscriptions that the official SDKs use
// unchanged: Go's azservicebus and JavaScript's @azure/service-bus through a
// connection string with UseDevelopmentEmulator=true (plain AMQP), and
// Python's azure-servicebus (uamqp) through the AMQPS listener
// (Options.TLSAddr). docs/servicebus-clients.md lists the versions tested,
// how each client differs on the wire and the conformance suite that runs
// through every SDK.
//
//	s, _ := servicebus.New(servicebus.Options{DataDir: dir}) // "" = in memory
//	_ = s.Start(ctx)
//	defer s.Close()
//	client, _ := azservicebus.NewClientFromConnectionString(s.ConnectionString(), nil)
//
// The package is split like go-amqp and nats-server: amqp/encoding (the
// AMQP type system), amqp/frames (frames and performatives), the server
// (accept loop, lifecycle), conn (SASL, open, sessions, links, flow
// control, heartbeats), cbs (SAS verification), mgmt ($management
// operations) and the store subpackage (queues, locks, durability), which
// keeps each message's bare AMQP bytes opaque; this package adds the
// broker annotations when it delivers them.
//
// Durability: with a DataDir, a send is acknowledged only once the store
// has the message on disk (fsync with group commit); acknowledged messages
// and settlements survive kill -9, locks do not.
//
// # Compatibility
//
// SDKs tested: Go azservicebus v1.11.0 (every feature below), JavaScript
// @azure/service-bus 7.9.5 and Python azure-servicebus 7.8.2 on uamqp
// 1.5.3 (the scenarios of testdata/conformance/scenarios.json). .NET
// Azure.Messaging.ServiceBus is modelled from its source, not run.
//
//	| Feature                                                           | Status   |
//	|-------------------------------------------------------------------|----------|
//	| SASL ANONYMOUS, MSSBCBS (uamqp, .NET) and PLAIN (key name / key)  | modelled |
//	| plain AMQP, and AMQPS with a given or generated certificate       | modelled |
//	| CBS/management responses by reply-to = target address or link     | modelled |
//	| name (rhea); without reply-to, on the paired receiver (uamqp)     |          |
//	| an unanswerable request rejected at once (never dropped)          | modelled |
//	| link addresses relative, absolute (amqps://host/q) or /q (.NET)   | modelled |
//	| put-token for a missing entity: 404, after the signature check    | modelled |
//	| a claim covers its path and below (namespace token: everything)   | modelled |
//	| open/begin/attach/flow/transfer/disposition/detach/end/close      | modelled |
//	| heartbeats (15 s, or half the client idle-time-out; ours is 60 s) | modelled |
//	| max-frame-size 65536, multi-frame transfers both ways             | modelled |
//	| session windows, link credit, drain                               | modelled |
//	| $cbs put-token with HMAC-SHA256 SAS check (key, expiry, audience) | modelled |
//	| entity attach needs a claim (amqp:unauthorized-access)            | modelled |
//	| send, batch (format 0x80013700), 256 KB limit                     | modelled |
//	| missing MessageId assigned                                        | modelled |
//	| duplicate detection window                                        | modelled |
//	| PeekLock, ReceiveAndDelete, lock tokens (.NET GUID tag layout)    | modelled |
//	| complete, abandon, dead-letter, defer, released                   | modelled |
//	| PropertiesToModify merged into application properties             | modelled |
//	| $management: renew-lock, peek-message, schedule-message,          | modelled |
//	| cancel-scheduled-message, receive-by-sequence-number,             |          |
//	| update-disposition                                                |          |
//	| lock expiry, MaxDeliveryCount → DLQ, TTL → DLQ or drop            | modelled |
//	| <queue>/$DeadLetterQueue                                          | modelled |
//	| topics: send to <topic>, a copy to every matching subscription    | modelled |
//	| subscriptions <topic>/Subscriptions/<s>: every queue semantic,    | modelled |
//	| their $DeadLetterQueue and $management; addresses ignore case     |          |
//	| rules: $Default, correlation and SQL filters (package sqlfilter)  | modelled |
//	| rule actions (SET/REMOVE of user properties; RuleName copies)     | modelled |
//	| sender on a subscription, receiver on a topic: amqp:not-allowed   | modelled |
//	| Config.json of Microsoft's emulator (// comments allowed)         | modelled |
//	| durable log (fsync, group commit) or in-memory                    | modelled |
//
// Not modelled:
//
//	| Feature                                             | Behaviour                            |
//	|-----------------------------------------------------|--------------------------------------|
//	| rule management ($management add-rule, ...)         | status 501; rules come from Config   |
//	| sessions (RequiresSession)                          | configuration refused                |
//	| session receivers (com.microsoft:session-filter)    | attach refused: amqp:not-implemented |
//	| other $management operations (sessions, rules, ...) | status 501                           |
//	| transactions, ForwardTo, auto-forwarding            | not implemented (ForwardTo ignored)  |
//	| WebSockets, the HTTP management API on 5300         | not implemented                      |
//	| per-claim rights (Send/Listen/Manage)               | any valid token grants all           |
//	| the real service's 20 s put-token deadline          | not enforced                         |
//	| quotas other than message size                      | not enforced                         |
package servicebus
