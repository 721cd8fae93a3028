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
// | Crash / restart (docs/localhost.md, "The handler's lifecycle") | a failure (crash, nonzero exit, not ready) restarts at once, twice; the third stops it (ErrHandlerStopped); the count starts again after 30 min without a failure (RestartWindow); exit 0 is never restarted; exit 200 and functionTimeout restarts are not counted; in-flight invocations fail, new ones wait for the new process; RestartLimit < 0 never gives up (with a 100 ms–5 s backoff); stop and restart are SIGKILL (Process.Kill), never SIGTERM | the host shutting itself down after giving up (here: invocations fail with ErrHandlerStopped) |
// | Invocation envelope (§1.2) | POST /<Function>, Content-Type, X-Azure-Functions-InvocationId/-HostVersion, User-Agent; {"Data","Metadata"}; value encoding of §1.2.1 (double-encoded strings, JSON-text arrays, second-precision DateTime without offset, DateTimeOffset with +00:00, objects embedded, bytes base64); null and "*trigger" keys dropped; sys {MethodName, UtcNow, RandGuid}; metadata pollution from JSON-object string bodies (case-insensitive overwrite; ISO dates re-rendered MM/dd/yyyy HH:mm:ss) | RetryContext (host retry policies) |
// | Response (§2) | 2xx + application/json (or text/json) + non-empty body required; otherwise the invocation fails; Logs logged only on success; functionTimeout (default 30 min) fails the invocation with ErrFunctionTimeout and restarts the handler process, failing the others in flight with ErrHandlerRestarted | an empty body hanging until functionTimeout (fails at once instead, loudly) |
// | eventGridTrigger (§1.3.4) | POST /runtime/webhooks/eventgrid?functionName= (case-insensitive path); aeg-event-type SubscriptionValidation → 200 {"validationResponse"}, Notification → one invocation per event (concurrently) or one for cardinality many, 202 when all succeed, 500 with the first error otherwise; Unsubscribe → 202; missing/unknown header → 400 (whatever the content type); unknown function → 404, functionName case-sensitive; CloudEvents OPTIONS handshake (WebHook-Allowed-Origin); single object or array bodies; event passed as indented JSON text, double-encoded; Metadata data + top-level fields; optional system key eventgrid_extension | 409 for schema mismatch (custom handlers bind strings, so never) |
// | serviceBusTrigger (§1.3.2–3, §2.4) | azservicebus PeekLock receiver on queueName or topicName/subscriptionName (%SETTING%), connection string or <conn>__fullyQualifiedNamespace (azidentity); cardinality one with maxConcurrentCalls, many with maxMessageBatchSize; dataType string/binary/none (object[] fails on non-JSON bodies); complete on success, abandon on failure (whole batch); lock renewal at half the lock until maxAutoLockRenewalDuration for cardinality one only (a batch is never renewed); bodies: data sections (concatenated) or, bound to a string, an AMQP string value; another value or a sequence fails the binding and the whole batch; the metadata keys and *Array keys of extension 5.x with their encodings | sessions, minMessageBatchSize/maxBatchWaitTime, prefetch, the exact content of the SDK-object keys (rendered {}), TransactionPartitionKey values |
// | timerTrigger (§1.3.1) | 6-field (or 5-field) NCRONTAB in UTC, TimeSpan schedules, %Setting% schedules, runOnStartup, useMonitor default (≥ 1 min), ScheduleStatus {Last, Next, LastUpdated} or null, IsPastDue after a missed occurrence (status kept in Options.DataDir), one run at a time | WEBSITE_TIME_ZONE, host retry policies, singleton lock across instances |
// | httpTrigger (§1.3.6) | route templates {p}, {p?}, {*p} (constraints ignored), methods, routePrefix, authLevel anonymous/function/admin with ?code= or x-functions-key (401 without), default envelope {Url, Method, Query, Headers, Params, Identities, Body} with base64 bodies for octet-stream/multipart, Metadata Query/Headers/params/body fields; http output binding {statusCode, body, headers} or $return; enableForwardingHttpRequest for HTTP-only functions | enableProxyingHttpRequest, customHandler.http.routes, Identities contents, CORS |
// | Settings | Options.Settings, then a non-empty process environment variable, then local.settings.json Values (as func start); AzureFunctionsJobHost__a__b host.json overrides; AzureWebJobs.<Name>.Disabled (and AzureWebJobs__<Name>__Disabled) | IsEncrypted files, ConnectionStrings, Host.LocalHttpPort (use ListenAddr) |
// | Other | GET /admin/host/status; POST /admin/host/restart with the master key restarts the handler process (as after a functionTimeout; the real endpoint restarts the whole script host); POST /admin/functions/<name> {"input"} with the master key (timer and Event Grid functions; 202, runs in the background) and Host.Run for the same synchronously; Close drains running invocations (DrainTimeout) before killing the handler (SIGKILL); other /admin and /runtime routes answer 501 | blobTrigger and its /runtime/webhooks/blobs, output bindings other than http (a function using one fails to load), Application Insights |
package funchost
