// Package batch turns requests into Azure Batch tasks and wraps the azbatch
// SDK in domain terms: keys, TaskSpecs, AddResults and CompletedTasks.
//
// The task is the security boundary of ffpipe. TaskSpec.Content builds a
// task whose id is the request key, whose command line is the profile's
// fixed wrapper script around its ffmpeg argvs (packed: gzip and base64
// behind a fixed loader, presets.Profile.TaskCommandLine), whose input is downloaded to the fixed name input.mp4
// and whose output output.<ext> is uploaded on success to the real output
// blob path; stdout and stderr go to the logs container under "<key>/".
// No byte of a container or blob name reaches the command line or a
// node-local path (FuzzTaskSpec checks this). The request itself travels in
// the task's environment (EnvRequest), so Sweep can settle a task from the
// task alone.
//
// Client hides the SDK's sharp edges: it always passes non-nil client
// options, allows a bearer token over plain http for the local stand-in
// (StaticToken), compares enums case-insensitively (the service answers
// "Success" where the SDK's constant is "success"), submits collections of
// at most 100 tasks and 900 KiB in parallel (each task encoded once by the
// SDK's own method; the body is those encodings joined, byte for byte what
// the SDK would send, without its re-compaction at every level), treats TaskExists, JobExists,
// PoolExists and TaskNotFound-on-delete as success, isolates tasks the
// service rejects, and maps whole-request failures to ErrJobNotFound,
// ErrJobNotActive, ErrPoolNotFound or a transient error.
//
// PoolSpec, AutoScaleFormula and Client.EnsurePool describe and maintain
// the persistent pool: Ubuntu 22.04, ffmpeg installed by the start task,
// two task slots per vCPU (DefaultTaskSlotsPerNode), simplified node communication and a queue-driven
// autoscale formula that prefers spot nodes and scales to zero. infra/
// creates the same pool (and is tested to agree with AutoScaleFormula and
// StartTaskCommand); a pool with a user-assigned identity can only be
// created there.
package batch
