// Package batch is a local stand-in for the Azure Batch data plane: a REST
// service that the unmodified azbatch v0.1.0 SDK and the Python azure-batch
// 13 SDK talk to (both are tested against it; the Python one runs the ffmpeg
// tutorial's workflow, python_test.go), and that really runs tasks as local
// processes on N local "nodes". docs/batch-standin.md gives the Batch
// behaviour each edge is modelled on, with its source.
//
// It is shaped like httptest.Server:
//
//	s := batch.New(batch.Options{DataDir: dir, MaxSlots: 4, Logger: log})
//	if err := s.Start(ctx); err != nil { ... }
//	defer s.Close()
//	client, _ := azbatch.NewClient(s.URL(), staticToken(s.Token()),
//		&azbatch.ClientOptions{ClientOptions: azcore.ClientOptions{InsecureAllowCredentialWithHTTP: true}})
//
// Every request needs authentication and an api-version query parameter
// (any value; azbatch sends 2024-07-01.20.0, Python azure-batch 13
// 2022-10-01.16.0). Authentication is either Authorization: Bearer
// <Options.Token> (default DefaultToken, "ffpipe-local-batch-token"; azbatch
// with a static token credential) or Batch Shared Key, "SharedKey
// <account>:<signature>", an HMAC-SHA256 with Options.AccountKey (default
// DefaultAccountKey) over the request as Batch defines it, with an ocp-date
// or Date within 15 minutes (the Python SDK's SharedKeyCredentials). The
// routes are a table of http.ServeMux patterns (routes.go) behind that
// middleware; anything the table does not hold is 501 NotImplemented with an
// OData error body, and logged.
//
// Replies carry request-id, DataServiceVersion, client-request-id when the
// request sent return-client-request-id: true, ETag and RFC1123
// Last-Modified on entities, Location and DataServiceId on creates, and OData
// error bodies ({"odata.metadata","code","message":{"lang","value"},"values"})
// with Batch's codes. Times have Batch's 100 ns resolution (at most seven
// fractional digits). Request bodies are decoded strictly: malformed JSON,
// unknown properties, bad ids, bad durations and bad filters are 4xx with a
// message naming the property; a property that is valid in Batch but not
// modelled here (cloudServiceConfiguration, applicationLicenses,
// containerConfiguration, mountConfiguration, applicationPackageReferences,
// dependsOn, jobManagerTask, ...) is 400 UnsupportedProperty naming it.
//
// Account operations: GET /supportedimages lists the images and node agent
// SKUs a pool may use here (Canonical Ubuntu 22.04 and 24.04; a pool with
// another marketplace image or agent is 400 InvalidPropertyValue), and GET
// /nodecounts counts each pool's nodes by state.
//
// Deleting a job or pool moves it to state deleting for
// Options.DeletionDelay (default 1s): its running tasks are killed (a job) or
// requeued (a pool), and writes to it, to its tasks, or a create with its id,
// fail with 409 JobBeingDeleted or PoolBeingDeleted. Then it vanishes (404).
//
// # Nodes and scheduling
//
// A pool's target dedicated and low-priority nodes become local nodes with
// taskSlotsPerNode slots each, while the slots of all nodes of all pools fit
// in Options.MaxSlots (the last node may get fewer slots). Further nodes are
// not created: the pool stays short with allocationState steady and a
// resizeErrors entry AccountCoreQuotaReached (dedicated) or
// AccountLowPriorityCoreQuotaReached, as Batch reports an exhausted core
// quota; a later resize or autoscale evaluation that fits clears it. Node ids look like
// tvmps_<pool>_001_d (dedicated) or _p (low priority). A node runs the pool's
// start task when it joins; with waitForSuccess (the default) it takes tasks
// only after the start task exits 0, and after maxTaskRetryCount failed
// retries it goes to starttaskfailed and never runs tasks.
//
// Autoscale pools: a formula made only of constant assignments
// ($TargetDedicatedNodes = 2; $TargetLowPriorityNodes = 0;
// $NodeDeallocationOption = taskcompletion) is evaluated as written. Any other
// formula (one that reads $PendingTasks, samples, or uses functions) is
// interpreted as "as many nodes as MaxSlots allows", evaluated when autoscale
// is enabled; the formula is stored and returned, and autoScaleRun.results
// shows the local interpretation. EvaluatePoolAutoScale returns the same
// interpretation without applying it.
//
// Tasks are scheduled on events (add, slot freed, node ready), never by
// polling: jobs in priority order, each job's active tasks in order, onto the
// first node with free slots (nodeFillType pack) or the node with the most
// free slots (spread, the default), respecting the job's maxParallelTasks. A
// task occupies requiredSlots slots of one node. As in Batch, a task whose
// requiredSlots exceed the pool's taskSlotsPerNode is accepted and never
// runs (the stand-in logs a warning once); when MaxSlots made a node smaller
// than taskSlotsPerNode, a task that needs more than the node has takes the
// whole node and runs alone on it.
//
// # Task execution
//
// Each attempt runs in <DataDir>/nodes/<pool>/<node>/workitems/<job>/job-1/<task>
// with wd/ (the working directory), stdout.txt and stderr.txt, as on a Linux
// node. The environment is a default PATH, Options.Env, the AZ_BATCH_*
// variables (ACCOUNT_NAME, ACCOUNT_URL, POOL_ID, NODE_ID, NODE_IS_DEDICATED,
// NODE_ROOT_DIR, NODE_SHARED_DIR, NODE_STARTUP_DIR, NODE_MOUNTS_DIR, JOB_ID,
// TASK_ID, TASK_DIR, TASK_WORKING_DIR), the job's commonEnvironmentSettings
// and the task's environmentSettings. The command line runs without a shell:
// it is split into argv (whitespace separates, single quotes are literal,
// double quotes group with \" \\ \$ \` escapes, a backslash escapes the next
// character; no variable expansion, globbing or redirection), so
// /bin/sh -c "..." runs sh just as on a node. Each process gets its own
// process group; kills reach its children.
//
// Resource files are downloaded before the command: httpUrl (any HTTP(S) URL,
// e.g. a blob SAS URL against Azurite) to filePath, or storageContainerUrl
// (with a list+read SAS) with blobPrefix, keeping blob paths under filePath.
// filePath must be relative without "..". A failed download completes the
// task as failed (category usererror, code BlobNotFound, BlobAccessDenied or
// BlobDownloadMiscError), never retried. Output files are uploaded after the
// final attempt with azblob (block blob UploadFile, so large files work):
// filePattern relative to wd (../std*.txt works; *, **, ?, [..]; dot files need
// an explicit dot), containerUrl with a SAS, path as the blob name (no
// wildcard) or prefix (wildcards), uploadCondition tasksuccess, taskfailure or
// taskcompletion, uploadHeaders for the content headers. An upload failure
// completes the task as failed with FileUploadContainerNotFound or
// FileUploadError (usererror), not retried; fileuploadout.txt and
// fileuploaderr.txt are written to the task directory.
//
// A non-zero exit is retried while retryCount < maxTaskRetryCount (-1 =
// forever); then the task completes with result failure and failureInfo
// FailureExitCode. maxWallClockTime kills the process group and completes the
// task with MaxWallClockTimeExpiry (exit code 128+signal). A program that
// cannot be found gives CommandProgramNotFound. Terminate kills a running
// task (TaskEnded). Completed task directories are removed after
// retentionTime (default P7D); deleting a task removes its directory at once.
// executionInfo carries startTime, endTime, exitCode, result, failureInfo,
// retryCount, requeueCount, lastRetryTime and lastRequeueTime; nodeInfo the
// node. Per Batch, eTag and lastModified change only on user writes.
//
// # Durability
//
// With a DataDir, every change is appended to DataDir/state.jsonl (one JSON
// record per entity snapshot, group-committed with one fsync per batch of
// writes) before the request is answered; the log is compacted by writing a
// snapshot to a temporary file and renaming it over the log. On Start the log
// is replayed: tasks that were running go back to active with requeueCount+1
// (as Batch does after node loss), completed tasks stay completed, and nodes
// are re-created (their start tasks run again). DataDir "" keeps state in
// memory and node directories in a temporary directory removed by Close.
//
// # Compatibility
//
//	Area                         Modelled                                           Not modelled
//	---------------------------  -------------------------------------------------  ------------------------------------------------
//	Auth                         Bearer <token> (static dev token, 401); Shared     Entra ID token validation
//	                             Key with the account key, ocp-date within 15 min
//	                             (403 AuthenticationFailed otherwise)
//	api-version                  required (400 MissingRequiredQueryParameter);       version-specific behaviour, UnsupportedRequestVersion
//	                             every value accepted
//	Account                      supportedimages ($filter, paging), nodecounts       applications, certificates, usage
//	Pools                        create (image + agent checked against                update/patch/replace properties, stopresize,
//	                             supportedimages), get (+$select, HEAD exists),      removenodes, node reboot/reimage/users/files,
//	                             list ($filter, $select, paging), delete (state      resizeTimeout, pool stats, the 30 s
//	                             deleting, 409 PoolBeingDeleted, nodes released,     enableautoscale rate limit, formulas with
//	                             running tasks requeued), resize (requeue,           metrics (approximated), containers, mounts,
//	                             terminate, taskcompletion), resizeErrors when       application packages, applicationLicenses,
//	                             --max-slots stops a resize, enable/disable/         cloudServiceConfiguration (UnsupportedProperty)
//	                             evaluate autoscale (formula stored; see above)
//	Nodes                        list ($filter id/state), get; startTaskInfo,        node files, remote login, scheduling toggles,
//	                             running task counts, recentTasks                   preemption, OS-level isolation between tasks
//	Jobs                         create, get, list, update (PATCH), terminate,       job manager/preparation/release tasks, auto pools
//	                             delete (state deleting, tasks killed, 409           (UnsupportedProperty), job maxWallClockTime
//	                             JobBeingDeleted), taskcounts; onAllTasksComplete    enforcement, onTaskFailure exit-condition job
//	                             terminatejob; priority; maxParallelTasks           actions, disable/enable, schedules
//	Tasks                        add, addtaskcollection (≤100 tasks, <1 MB, per-     dependencies, multi-instance, containerSettings,
//	                             item ClientError), list ($filter, $select,          application packages (all UnsupportedProperty),
//	                             maxresults, absolute odata.nextLink), get, delete,  exitConditions (stored, not applied), subtasks,
//	                             replace (constraints), terminate, reactivate,       task stats, file delete
//	                             list files, get file; requiredSlots (one node;
//	                             over taskSlotsPerNode: never runs, warned)
//	Task identity                runs as the stand-in's OS user                      userIdentity (stored only), admin elevation
//	Resource files               httpUrl, storageContainerUrl + blobPrefix,          autoStorageContainerName and identityReference:
//	                             filePath, fileMode                                  the task fails with AutoStorageNotSupported or
//	                                                                                 IdentityReferenceNotSupported (no managed identity)
//	Output files                 filePattern wildcards, container SAS URL, path,     identityReference (task fails with
//	                             uploadCondition, uploadHeaders                      IdentityReferenceNotSupported), upload per retry
//	Errors                       PoolExists, JobExists, TaskExists (case-            throttling (429/503), ServerBusy, quotas
//	                             insensitive ids), PoolNotFound, JobNotFound,
//	                             TaskNotFound, NodeNotFound, FileNotFound,
//	                             InvalidPropertyValue, MissingRequiredProperty,
//	                             InvalidRequestBody, InvalidQueryParameterValue,
//	                             RequestBodyTooLarge (>100 tasks or ≥1 MB),
//	                             JobCompleted, TaskCompleted, TaskNotCompleted,
//	                             TaskSucceeded, ConditionNotMet, NotImplemented,
//	                             JobBeingDeleted, PoolBeingDeleted,
//	                             UnsupportedProperty, AuthenticationFailed
//	$filter                      eq ne gt ge lt le, and or not, parentheses,         any/all lambdas, arithmetic, other functions
//	                             startswith(), DateTime'..', case-insensitive
//	                             values, case-sensitive property names
//	Conditional headers          If-Match, If-None-Match, If-(Un)Modified-Since      –
//	Headers                      client-request-id echoed only with                  ocp-date used only for Shared Key
//	                             return-client-request-id: true
//	Durability                   state log + compaction, running tasks requeued      task directories of a running attempt survive
//	                             on restart (requeueCount+1)                        (they are recreated on the next attempt)
//	Chaos                        KillRunningTasks (node loss: requeue)               network faults, preemption schedules
package batch
