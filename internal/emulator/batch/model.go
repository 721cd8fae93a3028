package batch

import (
	"encoding/json"
	"time"
)

// Wire types. They mirror the azbatch v0.1.0 models (camelCase JSON names,
// absent fields omitted). Request bodies are decoded strictly into the *Spec
// types; properties the stand-in does not model but accepts are kept as raw
// JSON and echoed back.

type envSetting struct {
	Name  string  `json:"name"`
	Value *string `json:"value,omitempty"`
}

type autoUserSpec struct {
	Scope          string `json:"scope,omitempty"`
	ElevationLevel string `json:"elevationLevel,omitempty"`
}

type userIdentity struct {
	Username string        `json:"username,omitempty"`
	AutoUser *autoUserSpec `json:"autoUser,omitempty"`
}

type identityReference struct {
	ResourceID string `json:"resourceId,omitempty"`
}

type resourceFile struct {
	AutoStorageContainerName string             `json:"autoStorageContainerName,omitempty"`
	BlobPrefix               string             `json:"blobPrefix,omitempty"`
	FileMode                 string             `json:"fileMode,omitempty"`
	FilePath                 string             `json:"filePath,omitempty"`
	HTTPURL                  string             `json:"httpUrl,omitempty"`
	IdentityReference        *identityReference `json:"identityReference,omitempty"`
	StorageContainerURL      string             `json:"storageContainerUrl,omitempty"`
}

type httpHeader struct {
	Name  string  `json:"name"`
	Value *string `json:"value,omitempty"`
}

type containerDestination struct {
	ContainerURL      string             `json:"containerUrl"`
	IdentityReference *identityReference `json:"identityReference,omitempty"`
	Path              string             `json:"path,omitempty"`
	UploadHeaders     []httpHeader       `json:"uploadHeaders,omitempty"`
}

type outputFileDestination struct {
	Container *containerDestination `json:"container,omitempty"`
}

type uploadOptions struct {
	UploadCondition string `json:"uploadCondition"`
}

type outputFile struct {
	FilePattern   string                 `json:"filePattern"`
	Destination   *outputFileDestination `json:"destination,omitempty"`
	UploadOptions *uploadOptions         `json:"uploadOptions,omitempty"`
}

type taskConstraints struct {
	MaxTaskRetryCount *int32 `json:"maxTaskRetryCount,omitempty"`
	MaxWallClockTime  string `json:"maxWallClockTime,omitempty"`
	RetentionTime     string `json:"retentionTime,omitempty"`
}

// taskSpec is the CreateTaskContent body.
type taskSpec struct {
	ID                           string           `json:"id"`
	DisplayName                  string           `json:"displayName,omitempty"`
	CommandLine                  string           `json:"commandLine"`
	ResourceFiles                []resourceFile   `json:"resourceFiles,omitempty"`
	OutputFiles                  []outputFile     `json:"outputFiles,omitempty"`
	EnvironmentSettings          []envSetting     `json:"environmentSettings,omitempty"`
	Constraints                  *taskConstraints `json:"constraints,omitempty"`
	UserIdentity                 *userIdentity    `json:"userIdentity,omitempty"`
	RequiredSlots                *int32           `json:"requiredSlots,omitempty"`
	ExitConditions               json.RawMessage  `json:"exitConditions,omitempty"`
	AffinityInfo                 json.RawMessage  `json:"affinityInfo,omitempty"`
	ApplicationPackageReferences json.RawMessage  `json:"applicationPackageReferences,omitempty"`
	AuthenticationTokenSettings  json.RawMessage  `json:"authenticationTokenSettings,omitempty"`
	ContainerSettings            json.RawMessage  `json:"containerSettings,omitempty"`
	DependsOn                    json.RawMessage  `json:"dependsOn,omitempty"`
	MultiInstanceSettings        json.RawMessage  `json:"multiInstanceSettings,omitempty"`
}

type failureInfo struct {
	Category string      `json:"category"`
	Code     string      `json:"code,omitempty"`
	Message  string      `json:"message,omitempty"`
	Details  []nameValue `json:"details,omitempty"`
}

type nameValue struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type taskExecutionInfo struct {
	StartTime       *time.Time   `json:"startTime,omitempty"`
	EndTime         *time.Time   `json:"endTime,omitempty"`
	ExitCode        *int32       `json:"exitCode,omitempty"`
	Result          string       `json:"result,omitempty"`
	FailureInfo     *failureInfo `json:"failureInfo,omitempty"`
	RetryCount      int32        `json:"retryCount"`
	RequeueCount    int32        `json:"requeueCount"`
	LastRetryTime   *time.Time   `json:"lastRetryTime,omitempty"`
	LastRequeueTime *time.Time   `json:"lastRequeueTime,omitempty"`
}

type taskNodeInfo struct {
	AffinityID           string `json:"affinityId,omitempty"`
	NodeURL              string `json:"nodeUrl,omitempty"`
	PoolID               string `json:"poolId,omitempty"`
	NodeID               string `json:"nodeId,omitempty"`
	TaskRootDirectory    string `json:"taskRootDirectory,omitempty"`
	TaskRootDirectoryURL string `json:"taskRootDirectoryUrl,omitempty"`
}

// taskWire is the Task read model (and the persisted form).
type taskWire struct {
	taskSpec
	URL                         string             `json:"url,omitempty"`
	ETag                        string             `json:"eTag,omitempty"`
	CreationTime                time.Time          `json:"creationTime"`
	LastModified                time.Time          `json:"lastModified"`
	State                       string             `json:"state"`
	StateTransitionTime         time.Time          `json:"stateTransitionTime"`
	PreviousState               string             `json:"previousState,omitempty"`
	PreviousStateTransitionTime *time.Time         `json:"previousStateTransitionTime,omitempty"`
	ExecutionInfo               *taskExecutionInfo `json:"executionInfo,omitempty"`
	NodeInfo                    *taskNodeInfo      `json:"nodeInfo,omitempty"`
}

type jobConstraints struct {
	MaxTaskRetryCount *int32 `json:"maxTaskRetryCount,omitempty"`
	MaxWallClockTime  string `json:"maxWallClockTime,omitempty"`
}

type poolInfo struct {
	PoolID                string          `json:"poolId,omitempty"`
	AutoPoolSpecification json.RawMessage `json:"autoPoolSpecification,omitempty"`
}

// jobSpec is the CreateJobContent body.
type jobSpec struct {
	ID                        string          `json:"id"`
	DisplayName               string          `json:"displayName,omitempty"`
	Priority                  *int32          `json:"priority,omitempty"`
	MaxParallelTasks          *int32          `json:"maxParallelTasks,omitempty"`
	AllowTaskPreemption       *bool           `json:"allowTaskPreemption,omitempty"`
	UsesTaskDependencies      *bool           `json:"usesTaskDependencies,omitempty"`
	Constraints               *jobConstraints `json:"constraints,omitempty"`
	PoolInfo                  *poolInfo       `json:"poolInfo,omitempty"`
	OnAllTasksComplete        string          `json:"onAllTasksComplete,omitempty"`
	OnTaskFailure             string          `json:"onTaskFailure,omitempty"`
	CommonEnvironmentSettings []envSetting    `json:"commonEnvironmentSettings,omitempty"`
	Metadata                  json.RawMessage `json:"metadata,omitempty"`
	NetworkConfiguration      json.RawMessage `json:"networkConfiguration,omitempty"`
	JobManagerTask            json.RawMessage `json:"jobManagerTask,omitempty"`
	JobPreparationTask        json.RawMessage `json:"jobPreparationTask,omitempty"`
	JobReleaseTask            json.RawMessage `json:"jobReleaseTask,omitempty"`
}

type jobExecutionInfo struct {
	StartTime       time.Time       `json:"startTime"`
	EndTime         *time.Time      `json:"endTime,omitempty"`
	PoolID          string          `json:"poolId,omitempty"`
	SchedulingError json.RawMessage `json:"schedulingError,omitempty"`
	TerminateReason string          `json:"terminateReason,omitempty"`
}

type jobWire struct {
	jobSpec
	URL                         string            `json:"url,omitempty"`
	ETag                        string            `json:"eTag,omitempty"`
	LastModified                time.Time         `json:"lastModified"`
	CreationTime                time.Time         `json:"creationTime"`
	State                       string            `json:"state"`
	StateTransitionTime         time.Time         `json:"stateTransitionTime"`
	PreviousState               string            `json:"previousState,omitempty"`
	PreviousStateTransitionTime *time.Time        `json:"previousStateTransitionTime,omitempty"`
	ExecutionInfo               *jobExecutionInfo `json:"executionInfo,omitempty"`
}

// jobUpdate is the UpdateJob (PATCH) body.
type jobUpdate struct {
	Priority             *int32          `json:"priority,omitempty"`
	MaxParallelTasks     *int32          `json:"maxParallelTasks,omitempty"`
	Constraints          *jobConstraints `json:"constraints,omitempty"`
	PoolInfo             *poolInfo       `json:"poolInfo,omitempty"`
	OnAllTasksComplete   string          `json:"onAllTasksComplete,omitempty"`
	Metadata             json.RawMessage `json:"metadata,omitempty"`
	NetworkConfiguration json.RawMessage `json:"networkConfiguration,omitempty"`
	AllowTaskPreemption  *bool           `json:"allowTaskPreemption,omitempty"`
}

type startTask struct {
	CommandLine         string          `json:"commandLine"`
	ContainerSettings   json.RawMessage `json:"containerSettings,omitempty"`
	EnvironmentSettings []envSetting    `json:"environmentSettings,omitempty"`
	MaxTaskRetryCount   *int32          `json:"maxTaskRetryCount,omitempty"`
	ResourceFiles       []resourceFile  `json:"resourceFiles,omitempty"`
	UserIdentity        *userIdentity   `json:"userIdentity,omitempty"`
	WaitForSuccess      *bool           `json:"waitForSuccess,omitempty"`
}

type schedulingPolicy struct {
	NodeFillType string `json:"nodeFillType"`
}

// poolSpec is the CreatePoolContent body.
type poolSpec struct {
	ID                           string            `json:"id"`
	DisplayName                  string            `json:"displayName,omitempty"`
	VMSize                       string            `json:"vmSize"`
	VirtualMachineConfiguration  json.RawMessage   `json:"virtualMachineConfiguration,omitempty"`
	TargetDedicatedNodes         *int32            `json:"targetDedicatedNodes,omitempty"`
	TargetLowPriorityNodes       *int32            `json:"targetLowPriorityNodes,omitempty"`
	EnableAutoScale              *bool             `json:"enableAutoScale,omitempty"`
	AutoScaleFormula             string            `json:"autoScaleFormula,omitempty"`
	AutoScaleEvaluationInterval  string            `json:"autoScaleEvaluationInterval,omitempty"`
	ResizeTimeout                string            `json:"resizeTimeout,omitempty"`
	StartTask                    *startTask        `json:"startTask,omitempty"`
	TaskSlotsPerNode             *int32            `json:"taskSlotsPerNode,omitempty"`
	TaskSchedulingPolicy         *schedulingPolicy `json:"taskSchedulingPolicy,omitempty"`
	TargetNodeCommunicationMode  string            `json:"targetNodeCommunicationMode,omitempty"`
	EnableInterNodeCommunication *bool             `json:"enableInterNodeCommunication,omitempty"`
	NetworkConfiguration         json.RawMessage   `json:"networkConfiguration,omitempty"`
	MountConfiguration           json.RawMessage   `json:"mountConfiguration,omitempty"`
	Metadata                     json.RawMessage   `json:"metadata,omitempty"`
	UserAccounts                 json.RawMessage   `json:"userAccounts,omitempty"`
	ResourceTags                 json.RawMessage   `json:"resourceTags,omitempty"`
	UpgradePolicy                json.RawMessage   `json:"upgradePolicy,omitempty"`
	ApplicationPackageReferences json.RawMessage   `json:"applicationPackageReferences,omitempty"`
	CertificateReferences        json.RawMessage   `json:"certificateReferences,omitempty"`
}

type autoScaleRun struct {
	Timestamp time.Time       `json:"timestamp"`
	Results   string          `json:"results,omitempty"`
	Error     json.RawMessage `json:"error,omitempty"`
}

type poolWire struct {
	poolSpec
	URL                           string        `json:"url,omitempty"`
	ETag                          string        `json:"eTag,omitempty"`
	LastModified                  time.Time     `json:"lastModified"`
	CreationTime                  time.Time     `json:"creationTime"`
	State                         string        `json:"state"`
	StateTransitionTime           time.Time     `json:"stateTransitionTime"`
	AllocationState               string        `json:"allocationState"`
	AllocationStateTransitionTime time.Time     `json:"allocationStateTransitionTime"`
	CurrentDedicatedNodes         int32         `json:"currentDedicatedNodes"`
	CurrentLowPriorityNodes       int32         `json:"currentLowPriorityNodes"`
	CurrentNodeCommunicationMode  string        `json:"currentNodeCommunicationMode,omitempty"`
	AutoScaleRun                  *autoScaleRun `json:"autoScaleRun,omitempty"`
	ResizeErrors                  []resizeError `json:"resizeErrors,omitempty"`
}

type resizeError struct {
	Code    string      `json:"code"`
	Message string      `json:"message,omitempty"`
	Values  []nameValue `json:"values,omitempty"`
}

type resizeSpec struct {
	TargetDedicatedNodes   *int32 `json:"targetDedicatedNodes,omitempty"`
	TargetLowPriorityNodes *int32 `json:"targetLowPriorityNodes,omitempty"`
	ResizeTimeout          string `json:"resizeTimeout,omitempty"`
	NodeDeallocationOption string `json:"nodeDeallocationOption,omitempty"`
}

type autoScaleSpec struct {
	AutoScaleFormula            string `json:"autoScaleFormula,omitempty"`
	AutoScaleEvaluationInterval string `json:"autoScaleEvaluationInterval,omitempty"`
}

type terminateJobSpec struct {
	TerminateReason string `json:"terminateReason,omitempty"`
}

type startTaskInfo struct {
	State         string       `json:"state"`
	StartTime     time.Time    `json:"startTime"`
	EndTime       *time.Time   `json:"endTime,omitempty"`
	ExitCode      *int32       `json:"exitCode,omitempty"`
	FailureInfo   *failureInfo `json:"failureInfo,omitempty"`
	RetryCount    int32        `json:"retryCount"`
	Result        string       `json:"result,omitempty"`
	LastRetryTime *time.Time   `json:"lastRetryTime,omitempty"`
}

type recentTask struct {
	TaskURL   string `json:"taskUrl,omitempty"`
	JobID     string `json:"jobId,omitempty"`
	TaskID    string `json:"taskId,omitempty"`
	TaskState string `json:"taskState"`
}

type nodeWire struct {
	ID                    string         `json:"id"`
	URL                   string         `json:"url,omitempty"`
	State                 string         `json:"state"`
	SchedulingState       string         `json:"schedulingState"`
	StateTransitionTime   time.Time      `json:"stateTransitionTime"`
	LastBootTime          time.Time      `json:"lastBootTime"`
	AllocationTime        time.Time      `json:"allocationTime"`
	IPAddress             string         `json:"ipAddress"`
	AffinityID            string         `json:"affinityId"`
	VMSize                string         `json:"vmSize,omitempty"`
	TotalTasksRun         int32          `json:"totalTasksRun"`
	RunningTasksCount     int32          `json:"runningTasksCount"`
	RunningTaskSlotsCount int32          `json:"runningTaskSlotsCount"`
	TotalTasksSucceeded   int32          `json:"totalTasksSucceeded"`
	RecentTasks           []recentTask   `json:"recentTasks,omitempty"`
	StartTask             *startTask     `json:"startTask,omitempty"`
	StartTaskInfo         *startTaskInfo `json:"startTaskInfo,omitempty"`
	IsDedicated           bool           `json:"isDedicated"`
}

type taskCounts struct {
	Active    int32 `json:"active"`
	Running   int32 `json:"running"`
	Completed int32 `json:"completed"`
	Succeeded int32 `json:"succeeded"`
	Failed    int32 `json:"failed"`
}

type addResult struct {
	Status       string      `json:"status"`
	TaskID       string      `json:"taskId"`
	ETag         string      `json:"eTag,omitempty"`
	LastModified *time.Time  `json:"lastModified,omitempty"`
	Location     string      `json:"location,omitempty"`
	Error        *odataError `json:"error,omitempty"`
}

type odataMessage struct {
	Lang  string `json:"lang"`
	Value string `json:"value"`
}

type keyValue struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

type odataError struct {
	Metadata string       `json:"odata.metadata,omitempty"`
	Code     string       `json:"code"`
	Message  odataMessage `json:"message"`
	Values   []keyValue   `json:"values,omitempty"`
}

type nodeFile struct {
	Name        string          `json:"name"`
	URL         string          `json:"url,omitempty"`
	IsDirectory bool            `json:"isDirectory"`
	Properties  *fileProperties `json:"properties,omitempty"`
}

type fileProperties struct {
	CreationTime  *time.Time `json:"creationTime,omitempty"`
	LastModified  time.Time  `json:"lastModified"`
	ContentLength string     `json:"contentLength"`
	ContentType   string     `json:"contentType,omitempty"`
	FileMode      string     `json:"fileMode,omitempty"`
}
