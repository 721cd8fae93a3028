// Package funchost is a local stand-in for the Azure Functions host running a
// custom handler: it reads host.json, the <Function>/function.json folders and
// local.settings.json from an app root (e.g. dist/), starts the handler
// executable with FUNCTIONS_CUSTOMHANDLER_PORT and the app settings, waits for
// it (GET / every 25 ms), restarts it when it exits, and drives it through the
// triggers with the same request/response shapes and quirks as the real host,
// so a handler that works here works in Azure.
//
//	h := funchost.New(funchost.Options{AppDir: "dist", Logger: log})
//	if err := h.Start(ctx); err != nil { ... }
//	defer h.Close()
//	webhook := h.EventGridWebhookURL("OnBlobCreated")
//
// The wire facts come from docs reference/functions-custom-handlers.md; the
// section numbers below refer to it.
//
// # Compatibility
//
// | Area | Modelled | Not modelled |
// |---|---|---|
// | Handler process (§1.1) | defaultExecutablePath (relative to the app root, else PATH), workingDirectory, arguments with %SETTING% expansion (unresolved tokens removed), customHandler.port, env FUNCTIONS_CUSTOMHANDLER_PORT / _WORKER_ID, FUNCTIONS_HTTPWORKER_PORT / _ID, FUNCTIONS_APP_ROOT_PATH, app settings; stdout logged at Info, stderr at Error | workerArguments |
// | Readiness | GET / every 25 ms until any HTTP response, 30 s (Options.StartTimeout) | |
// | Crash / restart | restart with backoff (100 ms doubling to 5 s); in-flight invocations fail, new ones wait for the new process; give up after 3 exits in 30 min (configurable) like the host | the host shutting itself down after giving up (here: invocations fail with ErrHandlerStopped) |
// | Invocation envelope (§1.2) | POST /<Function>, Content-Type, X-Azure-Functions-InvocationId/-HostVersion, User-Agent; {"Data","Metadata"}; value encoding of §1.2.1 (double-encoded strings, JSON-text arrays, second-precision DateTime without offset, DateTimeOffset with +00:00, objects embedded, bytes base64); null and "*trigger" keys dropped; sys {MethodName, UtcNow, RandGuid}; metadata pollution from JSON-object string bodies (case-insensitive overwrite; ISO dates re-rendered MM/dd/yyyy HH:mm:ss) | RetryContext (host retry policies) |
// | Response (§2) | 2xx + application/json (or text/json) + non-empty body required; otherwise the invocation fails; Logs logged only on success; functionTimeout (default 30 min) | an empty body hanging until functionTimeout (fails at once instead, loudly) |
// | eventGridTrigger (§1.3.4) | POST /runtime/webhooks/eventgrid?functionName= (case-insensitive path); aeg-event-type SubscriptionValidation → 200 {"validationResponse"}, Notification → one invocation per event (concurrently) or one for cardinality many, 202 when all succeed, 500 with the first error otherwise; Unsubscribe → 202; missing/unknown header → 400; unknown function → 404; CloudEvents OPTIONS handshake (WebHook-Allowed-Origin); single object or array bodies; event passed as indented JSON text, double-encoded; Metadata data + top-level fields; optional system key eventgrid_extension | 409 for schema mismatch (custom handlers bind strings, so never) |
// | serviceBusTrigger (§1.3.2–3, §2.4) | azservicebus PeekLock receiver on queueName or topicName/subscriptionName (%SETTING%), connection string or <conn>__fullyQualifiedNamespace (azidentity); cardinality one with maxConcurrentCalls, many with maxMessageBatchSize; dataType string/binary/none (object[] fails on non-JSON bodies); complete on success, abandon on failure (whole batch); lock renewal at half the lock until maxAutoLockRenewalDuration (batches too); the metadata keys and *Array keys of extension 5.x with their encodings | sessions, minMessageBatchSize/maxBatchWaitTime, prefetch, the exact content of the SDK-object keys (rendered {}), TransactionPartitionKey values |
// | timerTrigger (§1.3.1) | 6-field (or 5-field) NCRONTAB in UTC, TimeSpan schedules, %Setting% schedules, runOnStartup, useMonitor default (≥ 1 min), ScheduleStatus {Last, Next, LastUpdated} or null, IsPastDue after a missed occurrence (status kept in Options.DataDir), one run at a time | WEBSITE_TIME_ZONE, host retry policies, singleton lock across instances |
// | httpTrigger (§1.3.6) | route templates {p}, {p?}, {*p} (constraints ignored), methods, routePrefix, authLevel anonymous/function/admin with ?code= or x-functions-key (401 without), default envelope {Url, Method, Query, Headers, Params, Identities, Body} with base64 bodies for octet-stream/multipart, Metadata Query/Headers/params/body fields; http output binding {statusCode, body, headers} or $return; enableForwardingHttpRequest for HTTP-only functions | enableProxyingHttpRequest, customHandler.http.routes, Identities contents, CORS |
// | Settings | local.settings.json Values, Options.Settings overrides, process env; AzureFunctionsJobHost__a__b host.json overrides; AzureWebJobs.<Name>.Disabled (and AzureWebJobs__<Name>__Disabled) | IsEncrypted files, ConnectionStrings, Host.LocalHttpPort (use ListenAddr) |
// | Other | GET /admin/host/status; POST /admin/functions/<name> {"input"} with the master key (timer and Event Grid functions; 202, runs in the background) and Host.Run for the same synchronously; Close drains running invocations (DrainTimeout) before stopping the handler; other /admin and /runtime routes answer 501 | blobTrigger and its /runtime/webhooks/blobs, output bindings other than http (a function using one fails to load), Application Insights |
package funchost
