package batch

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"

	"github.com/ffpipe/ffpipe/internal/isoduration"
	"github.com/ffpipe/ffpipe/internal/presets"
	"github.com/ffpipe/ffpipe/internal/request"
)

// Names of the task environment settings.
const (
	// EnvRequest carries the request JSON, base64url without padding, so
	// that Sweep can recover source, eTag, output, preset and correlation
	// id from the task alone.
	EnvRequest = "FFPIPE_REQUEST"
	// EnvKey carries the request key (also the task id).
	EnvKey = "FFPIPE_KEY"
	// EnvEnqueued carries when the request's message was enqueued in
	// Service Bus (RFC 3339, UTC, nanoseconds), so that Sweep can date a
	// request that reached the queue without OnBlobCreated. Absent when
	// unknown. The value is a time formatted here, never text from a
	// message.
	EnvEnqueued = "FFPIPE_ENQUEUED"
	// EnvOutputs carries the output blob names (JSON of
	// []request.OutputBlob, base64url without padding), so that Sweep
	// checks exactly the names this task wrote whatever the configuration
	// says by then. Absent on tasks made before profiles.
	EnvOutputs = "FFPIPE_OUTPUTS"
)

// Fixed output file patterns.
const (
	// StdoutPattern and StderrPattern are the task's stdout.txt and
	// stderr.txt, which Batch writes one level above the working directory.
	// Each is uploaded on its own, to exactly the blob its SAS names.
	StdoutPattern = "../stdout.txt"
	StderrPattern = "../stderr.txt"
	// ContentTypeHeader and BlobContentTypeHeader set the output blob's
	// content type on upload. Both go out: the docs only say the headers
	// are those of Put Blob, where Content-Type sets the type of a single
	// shot upload and x-ms-blob-content-type also covers block uploads.
	ContentTypeHeader     = "Content-Type"
	BlobContentTypeHeader = "x-ms-blob-content-type"
)

// Task constraint defaults.
const (
	DefaultMaxWallClock = 30 * time.Minute
	DefaultRetention    = time.Hour
	// MaxTaskRetries bounds Constraints.MaxRetries (-1, unlimited, is refused).
	MaxTaskRetries = 10
)

// Constraints bound one task.
type Constraints struct {
	// MaxWallClock is measured from task start; 0 means DefaultMaxWallClock.
	MaxWallClock time.Duration
	// MaxRetries is maxTaskRetryCount: retries after a non-zero exit (0 = run once).
	MaxRetries int
	// RequiredSlots is the task's requiredSlots; 0 means the profile's
	// Slots. It must not exceed the pool's taskSlotsPerNode, or the task
	// never runs.
	RequiredSlots int
	// Retention keeps the task directory on the node after completion; 0
	// means DefaultRetention. Sweep deletes the task sooner anyway.
	Retention time.Duration
}

// TaskSpec is one request turned into Batch terms. Every URL is complete:
// with a SAS (read for the input, write for the containers) unless
// NodeIdentity is set, in which case the pool identity is used and the URLs
// carry no SAS.
type TaskSpec struct {
	// Key is the request key, the task id (32 lowercase hex digits).
	Key string
	// Request is complete (request.WithDefaults applied; eTag resolved).
	Request request.Request
	// Profile is the configured profile named by Request.Profile.
	Profile presets.Profile
	// Outputs are the blob names of the profile's outputs, in its order
	// (request.Request.Outputs).
	Outputs []request.OutputBlob
	// InputURL is the source blob URL.
	InputURL string
	// OutputURLs are the output container's URL, one per output: with a
	// SAS for exactly that output's blob, or for the container for an HLS
	// output (its segment names are not known in advance).
	OutputURLs []string
	// StdoutURL, StderrURL and ResultURL are the logs container URL, each
	// with a SAS for exactly one blob: LogBlobs(Key) and ResultBlob(Key)
	// (or plain with NodeIdentity).
	StdoutURL, StderrURL, ResultURL string
	// NodeIdentity is the ARM resource id of the pool's user-assigned
	// identity, or "" to rely on SAS URLs.
	NodeIdentity string
	Constraints  Constraints
	// Enqueued is when the request's message was enqueued; zero when
	// unknown (then the task has no EnvEnqueued setting).
	Enqueued time.Time
}

// Validate checks that the spec is complete and consistent.
func (s TaskSpec) Validate() error {
	invalid := func(format string, args ...any) error {
		return fmt.Errorf("%w: task %s: %s", ErrInvalidSpec, s.Key, fmt.Sprintf(format, args...))
	}
	if !request.IsKey(s.Key) {
		return fmt.Errorf("%w: task id %q is not a request key", ErrInvalidSpec, s.Key)
	}
	if err := s.Request.Validate(); err != nil {
		return invalid("%v", err)
	}
	if s.Request.Output.Container == "" || s.Request.Output.Blob == "" {
		return invalid("request has no output (apply request.WithDefaults first)")
	}
	if s.Request.Source.ETag == "" {
		return invalid("request has no source eTag")
	}
	if s.Request.Named() != s.Profile.Name {
		return invalid("request profile %q differs from spec profile %q", s.Request.Named(), s.Profile.Name)
	}
	if err := s.Profile.Validate(); err != nil {
		return invalid("%v", err)
	}
	if len(s.Outputs) != len(s.Profile.Outputs) || len(s.OutputURLs) != len(s.Outputs) {
		return invalid("%d outputs with %d names and %d URLs", len(s.Profile.Outputs), len(s.Outputs), len(s.OutputURLs))
	}
	urls := []struct{ name, v string }{
		{"input URL", s.InputURL}, {"stdout URL", s.StdoutURL}, {"stderr URL", s.StderrURL}, {"result URL", s.ResultURL},
	}
	for i, o := range s.Outputs {
		if err := request.ValidateBlob(o.Blob); err != nil {
			return invalid("output %d: %v", i, err)
		}
		if hls := s.Profile.Outputs[i].Kind == presets.KindHLS; hls != (o.Folder != "") || hls && o.Blob != o.Folder+"/"+request.HLSMaster {
			return invalid("output %d: an HLS output needs a folder and its master playlist, a file output neither", i)
		}
		urls = append(urls, struct{ name, v string }{fmt.Sprintf("output %d URL", i), s.OutputURLs[i]})
	}
	if s.Outputs[0].Blob != s.Request.Output.Blob {
		return invalid("request output %q differs from the first output %q", s.Request.Output.Blob, s.Outputs[0].Blob)
	}
	for _, u := range urls {
		pu, err := url.Parse(u.v)
		if err != nil || (pu.Scheme != "https" && pu.Scheme != "http") || pu.Host == "" {
			return invalid("%s is not an absolute http(s) URL", u.name)
		}
	}
	c := s.Constraints
	if c.MaxWallClock < 0 || c.Retention < 0 {
		return invalid("negative duration in constraints")
	}
	if c.MaxRetries < 0 || c.MaxRetries > MaxTaskRetries {
		return invalid("max retries %d outside [0, %d]", c.MaxRetries, MaxTaskRetries)
	}
	if c.RequiredSlots < 0 || c.RequiredSlots > presets.MaxSlots {
		return invalid("required slots %d outside [0, %d]", c.RequiredSlots, presets.MaxSlots)
	}
	return nil
}

// Content builds the Batch task. The command line, the resource file path
// and the output file patterns are functions of the preset only: no byte of
// a container or blob name reaches them. The real output blob name travels
// only in the output destination path and, encoded, in EnvRequest.
func (s TaskSpec) Content() (azbatch.CreateTaskContent, error) {
	if err := s.Validate(); err != nil {
		return azbatch.CreateTaskContent{}, err
	}
	reqJSON, err := s.Request.Encode()
	if err != nil {
		return azbatch.CreateTaskContent{}, fmt.Errorf("build task %s: encode request: %w", s.Key, err)
	}
	var ident *azbatch.NodeIdentityReference
	if s.NodeIdentity != "" {
		ident = &azbatch.NodeIdentityReference{ResourceID: to.Ptr(s.NodeIdentity)}
	}
	stdoutBlob, stderrBlob := LogBlobs(s.Key)
	wall := s.Constraints.MaxWallClock
	if wall == 0 {
		wall = DefaultMaxWallClock
	}
	retention := s.Constraints.Retention
	if retention == 0 {
		retention = DefaultRetention
	}
	p := s.Profile
	outputs := make([]azbatch.OutputFile, 0, len(p.Outputs)+5)
	for i, o := range p.Outputs {
		outputs = append(outputs, s.outputFiles(i, o, ident)...)
	}
	outputs = append(outputs,
		logFile(StdoutPattern, s.StdoutURL, stdoutBlob, ident),
		logFile(StderrPattern, s.StderrURL, stderrBlob, ident),
		logFile(presets.ResultFile, s.ResultURL, ResultBlob(s.Key), ident))
	slots := s.Constraints.RequiredSlots
	if slots == 0 {
		slots = p.Slots
	}
	outJSON, err := json.Marshal(s.Outputs)
	if err != nil {
		return azbatch.CreateTaskContent{}, fmt.Errorf("build task %s: encode outputs: %w", s.Key, err)
	}
	return azbatch.CreateTaskContent{
		ID:          to.Ptr(s.Key),
		DisplayName: to.Ptr("ffpipe " + p.Name),
		CommandLine: to.Ptr(p.TaskCommandLine()),
		ResourceFiles: []azbatch.ResourceFile{{
			HTTPURL:           to.Ptr(s.InputURL),
			FilePath:          to.Ptr(presets.InputFile),
			IdentityReference: ident,
		}},
		OutputFiles:         outputs,
		EnvironmentSettings: s.env(reqJSON, outJSON),
		Constraints: &azbatch.TaskConstraints{
			MaxWallClockTime:  to.Ptr(ISODuration(wall)),
			RetentionTime:     to.Ptr(ISODuration(retention)),
			MaxTaskRetryCount: to.Ptr(int32(s.Constraints.MaxRetries)),
		},
		// A per-task, non-admin auto-user: concurrent tasks on one node
		// cannot read each other's inputs or outputs.
		UserIdentity: &azbatch.UserIdentity{AutoUser: &azbatch.AutoUserSpecification{
			Scope:          to.Ptr(azbatch.AutoUserScopeTask),
			ElevationLevel: to.Ptr(azbatch.ElevationLevelNonAdmin),
		}},
		RequiredSlots: to.Ptr(int32(slots)),
	}, nil
}

// outputFiles are the upload rules of output i: its file to exactly its
// blob; an HLS output's master playlist, rung playlists and segments under
// its folder, each kind with its content type. Only on task success: a
// failed or deterministic-failure run leaves nothing to upload anyway.
func (s TaskSpec) outputFiles(i int, o presets.Output, ident *azbatch.NodeIdentityReference) []azbatch.OutputFile {
	upload := func(pattern, path, contentType string) azbatch.OutputFile {
		dest := &azbatch.OutputFileBlobContainerDestination{
			ContainerURL:      to.Ptr(s.OutputURLs[i]),
			Path:              to.Ptr(path),
			IdentityReference: ident,
		}
		if contentType != "" {
			dest.UploadHeaders = []azbatch.HTTPHeader{
				{Name: to.Ptr(ContentTypeHeader), Value: to.Ptr(contentType)},
				{Name: to.Ptr(BlobContentTypeHeader), Value: to.Ptr(contentType)},
			}
		}
		return azbatch.OutputFile{
			FilePattern:   to.Ptr(pattern),
			Destination:   &azbatch.OutputFileDestination{Container: dest},
			UploadOptions: &azbatch.OutputFileUploadConfig{UploadCondition: to.Ptr(azbatch.OutputFileUploadConditionTaskSuccess)},
		}
	}
	if o.Kind == presets.KindHLS {
		folder := s.Outputs[i].Folder
		return []azbatch.OutputFile{
			// Segments first: a player that finds a playlist finds its segments.
			upload(presets.HLSSegmentsPattern, folder, presets.SegmentContentType),
			upload(presets.HLSPlaylistsPattern, folder, presets.PlaylistContentType),
			upload(presets.HLSMasterPattern, folder, presets.PlaylistContentType),
		}
	}
	return []azbatch.OutputFile{upload(s.Profile.OutputFile(i), s.Outputs[i].Blob, o.ContentType)}
}

// env is the task's environment: the key, the request, the output names
// and, when known, the enqueued time.
func (s TaskSpec) env(reqJSON, outJSON []byte) []azbatch.EnvironmentSetting {
	env := make([]azbatch.EnvironmentSetting, 3, 4)
	env[0] = azbatch.EnvironmentSetting{Name: to.Ptr(EnvKey), Value: to.Ptr(s.Key)}
	env[1] = azbatch.EnvironmentSetting{Name: to.Ptr(EnvRequest), Value: to.Ptr(base64.RawURLEncoding.EncodeToString(reqJSON))}
	env[2] = azbatch.EnvironmentSetting{Name: to.Ptr(EnvOutputs), Value: to.Ptr(base64.RawURLEncoding.EncodeToString(outJSON))}
	if v := FormatEnqueuedEnv(s.Enqueued); v != "" {
		env = append(env, azbatch.EnvironmentSetting{Name: to.Ptr(EnvEnqueued), Value: to.Ptr(v)})
	}
	return env
}

// FormatEnqueuedEnv is the EnvEnqueued value for t: RFC 3339 in UTC with
// nanoseconds, or "" for the zero time and years RFC 3339 cannot carry.
func FormatEnqueuedEnv(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	t = t.UTC()
	if t.Year() < 1 || t.Year() > 9999 {
		return ""
	}
	return t.Format(time.RFC3339Nano)
}

// ParseEnqueuedEnv parses an EnvEnqueued value; anything that is not an
// RFC 3339 time gives the zero time.
func ParseEnqueuedEnv(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(s))
	if err != nil {
		return time.Time{}
	}
	return t.UTC()
}

// EncodeRequestEnv is the EnvRequest value for r.
func EncodeRequestEnv(r request.Request) (string, error) {
	b, err := r.Encode()
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// DecodeOutputsEnv parses an EnvOutputs value (padding tolerated): every
// name must be a valid blob name, an HLS output's master must be in its
// folder.
func DecodeOutputsEnv(s string) ([]request.OutputBlob, error) {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", EnvOutputs, err)
	}
	var outs []request.OutputBlob
	if err := json.Unmarshal(b, &outs); err != nil {
		return nil, fmt.Errorf("decode %s: %w", EnvOutputs, err)
	}
	if len(outs) == 0 || len(outs) > presets.MaxOutputs {
		return nil, fmt.Errorf("decode %s: %d outputs", EnvOutputs, len(outs))
	}
	for _, o := range outs {
		if err := request.ValidateBlob(o.Blob); err != nil {
			return nil, fmt.Errorf("decode %s: %w", EnvOutputs, err)
		}
		if o.Folder != "" && o.Blob != o.Folder+"/"+request.HLSMaster {
			return nil, fmt.Errorf("decode %s: master %q is not in folder %q", EnvOutputs, o.Blob, o.Folder)
		}
	}
	return outs, nil
}

// DecodeRequestEnv parses an EnvRequest value (padding tolerated).
func DecodeRequestEnv(s string) (request.Request, error) {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil {
		return request.Request{}, fmt.Errorf("decode %s: %w", EnvRequest, err)
	}
	r, err := request.Decode(b)
	if err != nil {
		return request.Request{}, fmt.Errorf("decode %s: %w", EnvRequest, err)
	}
	return r, nil
}

// ISODuration formats d as an ISO-8601 duration ("PT1H30M", "PT45S"),
// rounded up to whole seconds. Zero or negative gives "PT0S".
func ISODuration(d time.Duration) string { return isoduration.FormatSeconds(d) }

// logFile uploads one of the task's log files, whatever the outcome, to
// exactly the blob path in the logs container.
func logFile(pattern, containerURL, blobPath string, ident *azbatch.NodeIdentityReference) azbatch.OutputFile {
	return azbatch.OutputFile{
		FilePattern: to.Ptr(pattern),
		Destination: &azbatch.OutputFileDestination{Container: &azbatch.OutputFileBlobContainerDestination{
			ContainerURL:      to.Ptr(containerURL),
			Path:              to.Ptr(blobPath),
			IdentityReference: ident,
		}},
		UploadOptions: &azbatch.OutputFileUploadConfig{UploadCondition: to.Ptr(azbatch.OutputFileUploadConditionTaskCompletion)},
	}
}
