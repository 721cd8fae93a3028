package batch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"

	"github.com/ffpipe/ffpipe/internal/secret"
)

// Limits of addtaskcollection.
const (
	// MaxTasksPerCollection is the service's limit per addtaskcollection call.
	MaxTasksPerCollection = 100
	// MinTasksPerRequest: collections are split over concurrent requests
	// down to this size (see perRequest).
	MinTasksPerRequest = 50
	// MaxCollectionBytes keeps a collection body safely under the 1 MB limit.
	MaxCollectionBytes = 900 << 10
	// DefaultParallelism bounds concurrent addtaskcollection calls.
	DefaultParallelism = 8
	// serverErrorAttempts is how often tasks that got a per-item
	// ServerError are sent again within one AddTasks call.
	serverErrorAttempts = 3
)

// Options configure a Client. The zero value is usable.
type Options struct {
	// Parallelism bounds concurrent addtaskcollection calls (default 8, at most 64).
	Parallelism int
	// APIVersion overrides the SDK's api-version (2024-07-01.20.0) when set.
	APIVersion string
	// Retry overrides the azcore retry policy when non-nil.
	Retry *policy.RetryOptions
	// Transport replaces the HTTP client (tests).
	Transport policy.Transporter
	// Logger receives debug and warning lines; nil discards them.
	Logger *slog.Logger
	// serverErrorBackoff is the pause before resending ServerError items
	// (tests shorten it); 0 means one second.
	serverErrorBackoff time.Duration
}

// Client is the domain wrapper around azbatch: it speaks keys, TaskSpecs
// and CompletedTasks, hides enum casing and error codes, and is safe for
// concurrent use.
type Client struct {
	c           *azbatch.Client
	parallelism int
	log         *slog.Logger
	backoff     time.Duration
}

// NewClient connects to a Batch account endpoint
// ("https://<account>.<region>.batch.azure.com") or a local stand-in
// ("http://127.0.0.1:8090"). cred is azidentity in Azure or a StaticToken
// locally; a credential over plain http is allowed (the stand-in only).
func NewClient(endpoint string, cred azcore.TokenCredential, opts Options) (*Client, error) {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("new batch client: endpoint %q is not an absolute http(s) URL", secret.RedactURL(endpoint))
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" {
		return nil, fmt.Errorf("new batch client: endpoint %q must have no path or query", secret.RedactURL(endpoint))
	}
	endpoint = strings.TrimSuffix(endpoint, "/")
	co := &azbatch.ClientOptions{} // never nil: azbatch.NewClient dereferences it
	co.InsecureAllowCredentialWithHTTP = u.Scheme == "http"
	if opts.APIVersion != "" {
		co.APIVersion = opts.APIVersion
	}
	if opts.Retry != nil {
		co.Retry = *opts.Retry
	}
	if opts.Transport != nil {
		co.Transport = opts.Transport
	}
	co.PerCallPolicies = append(co.PerCallPolicies, collectionBodyPolicy{})
	c, err := azbatch.NewClient(endpoint, cred, co)
	if err != nil {
		return nil, fmt.Errorf("new batch client: %w", err)
	}
	p := opts.Parallelism
	if p <= 0 {
		p = DefaultParallelism
	}
	p = min(p, 64)
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	backoff := opts.serverErrorBackoff
	if backoff == 0 {
		backoff = time.Second
	}
	return &Client{c: c, parallelism: p, log: log, backoff: backoff}, nil
}

// SDK returns the underlying azbatch client for operations this package
// does not wrap.
func (c *Client) SDK() *azbatch.Client { return c.c }

// StaticToken is an azcore.TokenCredential that always returns the same
// bearer token: the local Batch stand-in's shared token. Its String form
// hides the token.
type StaticToken struct{ token string }

// NewStaticToken returns a credential for token.
func NewStaticToken(token string) *StaticToken { return &StaticToken{token: token} }

// GetToken returns the token, valid for an hour from now.
func (t *StaticToken) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: t.token, ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// String hides the token.
func (t *StaticToken) String() string { return "StaticToken(redacted)" }

var _ azcore.TokenCredential = (*StaticToken)(nil)

// errorCode returns the Batch error code and HTTP status of err, or "" and 0.
func errorCode(err error) (string, int) {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return re.ErrorCode, re.StatusCode
	}
	return "", 0
}

// EnsureJob makes sure the long-lived job exists on poolID and accepts
// tasks. A missing pool gives ErrPoolNotFound; a job that exists but is
// terminating or completed gives ErrJobNotActive; an existing job on
// another pool is an error too.
func (c *Client) EnsureJob(ctx context.Context, jobID, poolID string) error {
	if _, err := c.c.GetPool(ctx, poolID, &azbatch.GetPoolOptions{SelectParam: []string{"id", "state"}}); err != nil {
		if code, _ := errorCode(err); strings.EqualFold(code, "PoolNotFound") {
			return fmt.Errorf("ensure job %s: pool %s: %w", jobID, poolID, ErrPoolNotFound)
		}
		return fmt.Errorf("ensure job %s: get pool %s: %w", jobID, poolID, err)
	}
	_, err := c.c.CreateJob(ctx, azbatch.CreateJobContent{
		ID:                 to.Ptr(jobID),
		PoolInfo:           &azbatch.PoolInfo{PoolID: to.Ptr(poolID)},
		OnAllTasksComplete: to.Ptr(azbatch.OnAllTasksCompleteNoAction),
		OnTaskFailure:      to.Ptr(azbatch.OnTaskFailureNoAction),
	}, nil)
	if err == nil {
		c.log.InfoContext(ctx, "batch job created", "job", jobID, "pool", poolID)
		return nil
	}
	code, _ := errorCode(err)
	switch {
	case strings.EqualFold(code, "PoolNotFound"):
		return fmt.Errorf("ensure job %s: pool %s: %w", jobID, poolID, ErrPoolNotFound)
	case !strings.EqualFold(code, "JobExists"):
		return fmt.Errorf("ensure job %s: create: %w", jobID, secret.RedactError(err))
	}
	job, err := c.c.GetJob(ctx, jobID, &azbatch.GetJobOptions{SelectParam: []string{"id", "state", "poolInfo"}})
	if err != nil {
		return fmt.Errorf("ensure job %s: get: %w", jobID, err)
	}
	if st := string(deref(job.State)); !strings.EqualFold(st, string(azbatch.JobStateActive)) {
		return fmt.Errorf("ensure job %s: state %q: %w", jobID, st, ErrJobNotActive)
	}
	if job.PoolInfo != nil && job.PoolInfo.PoolID != nil && !strings.EqualFold(*job.PoolInfo.PoolID, poolID) {
		return fmt.Errorf("ensure job %s: it runs on pool %q, not %q", jobID, *job.PoolInfo.PoolID, poolID)
	}
	return nil
}

// AddResult is the outcome for one TaskSpec of AddTasks.
type AddResult struct {
	Key string
	// Existed: the task was already there (TaskExists); this counts as
	// success, since task ids are deterministic.
	Existed bool
	// Err is nil when the task is in the job.
	Err error
	// Permanent: Err will not go away by retrying (an invalid spec or a
	// ClientError from Batch); the caller records a failure.
	Permanent bool
}

// AddTasks submits specs to jobID with addtaskcollection: at most 100 tasks
// and 900 KiB a call, several calls in parallel. It returns one AddResult
// per spec, in order. Duplicate keys are sent once.
//
// Per-task problems (invalid spec, ClientError) are AddResults with
// Permanent set. Whole-request problems are the returned error: the job is
// missing (ErrJobNotFound: EnsureJob and retry) or not active
// (ErrJobNotActive), throttling or server errors that outlasted the SDK's
// retries, or items that kept getting ServerError. The caller then fails
// the invocation so the messages are redelivered; resubmitting is safe
// because existing tasks report TaskExists. On error the results of the
// chunks that completed are still filled in.
func (c *Client) AddTasks(ctx context.Context, jobID string, specs []TaskSpec) ([]AddResult, error) {
	results := make([]AddResult, len(specs))
	first := map[string]int{} // key → index of the first spec with it
	var todo []encodedTask
	for i, s := range specs {
		results[i].Key = s.Key
		if _, dup := first[s.Key]; dup {
			continue // sent once; its outcome is copied below
		}
		content, err := s.Content()
		if err != nil {
			results[i].Err, results[i].Permanent = err, true
			continue
		}
		t, err := encodeTask(content)
		if err != nil {
			results[i].Err, results[i].Permanent = fmt.Errorf("encode task %s: %w", s.Key, err), true
			continue
		}
		first[s.Key] = i
		todo = append(todo, t)
	}

	chunks := chunk(todo, perRequest(len(todo), c.parallelism))
	outcomes := make(map[string]AddResult, len(todo))
	var mu sync.Mutex
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
		sem      = make(chan struct{}, c.parallelism)
	)
	for _, ch := range chunks {
		sem <- struct{}{}
		if ctx.Err() != nil { // an earlier chunk failed: stop submitting
			<-sem
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			got, err := c.addChunk(ctx, jobID, ch)
			err = secret.RedactError(err)
			mu.Lock()
			for k, r := range got {
				outcomes[k] = r
			}
			mu.Unlock()
			if err != nil {
				errOnce.Do(func() { firstErr = err; cancel() })
			}
		}()
	}
	wg.Wait()
	if firstErr == nil && len(outcomes) < len(todo) {
		// Only possible when the caller's context ended before every
		// chunk was started.
		firstErr = ctx.Err()
		if firstErr == nil {
			firstErr = errors.New("tasks left unsubmitted") // defensive; not expected
		}
	}
	for i := range results {
		if results[i].Err != nil {
			continue
		}
		if r, ok := outcomes[results[i].Key]; ok {
			results[i] = r
		} else if firstErr != nil {
			results[i].Err = fmt.Errorf("add task %s: not submitted: %w", results[i].Key, firstErr)
		}
	}
	if firstErr != nil {
		return results, fmt.Errorf("add tasks to job %s: %w", jobID, firstErr)
	}
	return results, nil
}

// perRequest is how many tasks one addtaskcollection request carries for
// n tasks: at most MaxTasksPerCollection, spread over up to parallelism
// concurrent requests of at least MinTasksPerRequest. Encoding a request
// (here) and decoding it (in the service) each take one core; two halves
// of a collection of 100 take two, which made Dispatch about 1.5 times
// faster (docs/performance.md).
func perRequest(n, parallelism int) int {
	reqs := max((n+MaxTasksPerCollection-1)/MaxTasksPerCollection, min(parallelism, n/MinTasksPerRequest))
	if reqs <= 0 {
		return MaxTasksPerCollection
	}
	return (n + reqs - 1) / reqs
}

// chunk splits tasks into groups of at most per tasks and
// MaxCollectionBytes of JSON.
func chunk(tasks []encodedTask, per int) [][]encodedTask {
	per = min(max(per, 1), MaxTasksPerCollection)
	var out [][]encodedTask
	start, bytes := 0, 0
	for i, t := range tasks {
		if i > start && (i-start == per || bytes+len(t.json)+1 > MaxCollectionBytes) {
			out = append(out, tasks[start:i])
			start, bytes = i, 0
		}
		bytes += len(t.json) + 1
	}
	if start < len(tasks) {
		out = append(out, tasks[start:])
	}
	return out
}

// addChunk submits one collection, resending ServerError items, and
// splitting the collection when the service rejects it as a whole with 400
// or 413 (so one bad task cannot poison its neighbours).
func (c *Client) addChunk(ctx context.Context, jobID string, tasks []encodedTask) (map[string]AddResult, error) {
	out := make(map[string]AddResult, len(tasks))
	pending := tasks
	for attempt := 1; len(pending) > 0; attempt++ {
		if attempt > 1 {
			select {
			case <-ctx.Done():
				return out, ctx.Err()
			case <-time.After(c.backoff * time.Duration(attempt-1)):
			}
		}
		// The SDK encodes an empty group; collectionBodyPolicy sends ours.
		resp, err := c.c.CreateTaskCollection(withCollectionBody(ctx, collectionBody(pending)), jobID, azbatch.TaskGroup{}, nil)
		if err != nil {
			code, status := errorCode(err)
			switch {
			case strings.EqualFold(code, "JobNotFound"):
				return out, fmt.Errorf("job %s: %w", jobID, ErrJobNotFound)
			case status == http.StatusConflict:
				return out, fmt.Errorf("job %s: %s: %w", jobID, code, ErrJobNotActive)
			case status == http.StatusBadRequest && requestLevelCodes[strings.ToLower(code)]:
				// Not about any task (e.g. a retired api-version): failing
				// every task permanently would lose work, so fail the call.
				return out, fmt.Errorf("addtaskcollection: %w", err)
			case status == http.StatusBadRequest || status == http.StatusRequestEntityTooLarge:
				if len(pending) == 1 {
					id := pending[0].id
					out[id] = AddResult{Key: id, Err: &TaskError{Code: code, Message: responseMessage(err)}, Permanent: true}
					return out, nil
				}
				half := len(pending) / 2
				for _, part := range [][]encodedTask{pending[:half], pending[half:]} {
					got, err := c.addChunk(ctx, jobID, part)
					for k, r := range got {
						out[k] = r
					}
					if err != nil {
						return out, err
					}
				}
				return out, nil
			default:
				return out, fmt.Errorf("addtaskcollection (%d tasks): %w", len(pending), err)
			}
		}
		retry, lastServerErr := sortReplies(pending, resp.Value, out)
		if len(retry) > 0 && attempt >= serverErrorAttempts {
			return out, fmt.Errorf("addtaskcollection: %d tasks still failing after %d attempts (last: %s)", len(retry), attempt, lastServerErr)
		}
		if len(retry) > 0 {
			c.log.WarnContext(ctx, "batch addtaskcollection: resending tasks", "job", jobID, "tasks", len(retry), "attempt", attempt, "last", lastServerErr)
		}
		pending = retry
	}
	return out, nil
}

// sortReplies files each pending task's reply into out (added, existed or
// rejected for good) and returns the tasks to send again (a server error,
// a status this code does not know, or no reply) with the last reason.
func sortReplies(pending []encodedTask, replies []azbatch.TaskAddResult, out map[string]AddResult) (retry []encodedTask, lastServerErr string) {
	byID := make(map[string]azbatch.TaskAddResult, len(replies))
	for _, r := range replies {
		byID[strings.ToLower(deref(r.TaskID))] = r
	}
	for _, t := range pending {
		id := t.id
		r, ok := byID[strings.ToLower(id)]
		if !ok {
			retry = append(retry, t) // not in the reply: treat as not applied
			lastServerErr = "missing from the reply"
			continue
		}
		status := string(deref(r.Status))
		code, msg := batchError(r.Error)
		switch {
		case strings.EqualFold(status, string(azbatch.TaskAddStatusSuccess)):
			out[id] = AddResult{Key: id}
		case strings.EqualFold(status, string(azbatch.TaskAddStatusClientError)) && strings.EqualFold(code, "TaskExists"):
			out[id] = AddResult{Key: id, Existed: true}
		case strings.EqualFold(status, string(azbatch.TaskAddStatusClientError)):
			out[id] = AddResult{Key: id, Err: &TaskError{Code: code, Message: msg}, Permanent: true}
		default: // ServerError, or a status this code does not know
			retry = append(retry, t)
			lastServerErr = fmt.Sprintf("%s %s: %s", status, code, msg)
		}
	}
	return retry, lastServerErr
}

// requestLevelCodes are 400 codes about the request itself (URL, headers,
// version), never about one task's content. Lowercase.
var requestLevelCodes = map[string]bool{
	"unsupportedrequestversion":     true,
	"missingrequiredqueryparameter": true,
	"invalidqueryparametervalue":    true,
	"missingrequiredheader":         true,
	"invalidheadervalue":            true,
	"invalidauthenticationinfo":     true,
	"invalidurl":                    true,
}

func batchError(e *azbatch.Error) (code, msg string) {
	if e == nil {
		return "", ""
	}
	code = deref(e.Code)
	if e.Message != nil {
		msg = secret.Redact(firstLine(deref(e.Message.Value)))
	}
	return code, msg
}

// responseMessage extracts the Batch message from a ResponseError body.
func responseMessage(err error) string {
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.RawResponse == nil {
		return ""
	}
	var e azbatch.Error
	if raw, rerr := runtime.Payload(re.RawResponse); rerr == nil && json.Unmarshal(raw, &e) == nil {
		_, msg := batchError(&e)
		return msg
	}
	return ""
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return strings.TrimSpace(s)
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
