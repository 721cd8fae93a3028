// Package stack runs the whole ffpipe pipeline on one machine: Azurite, the
// Service Bus and Batch stand-ins, the Event Grid stand-in and the local
// Functions host driving the packaged function app (the same handler
// executable that runs in Azure).
//
// The stack is what `ffpipe dev`, `ffpipe demo`, the end-to-end tests, the
// chaos harness and the benchmarks share. Every component keeps its address
// across restarts, so a component can be killed and started again (crash
// tests) without the others noticing more than a dropped connection.
package stack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"

	ffbatch "github.com/ffpipe/ffpipe/internal/batch"
	"github.com/ffpipe/ffpipe/internal/config"
	"github.com/ffpipe/ffpipe/internal/emulator/azurite"
	"github.com/ffpipe/ffpipe/internal/emulator/batch"
	"github.com/ffpipe/ffpipe/internal/emulator/eventgrid"
	"github.com/ffpipe/ffpipe/internal/emulator/funchost"
	"github.com/ffpipe/ffpipe/internal/emulator/servicebus"
	"github.com/ffpipe/ffpipe/internal/ports"
	"github.com/ffpipe/ffpipe/internal/tooling/cpuset"
)

// Component names, as used by Kill and Restart.
const (
	Azurite    = "azurite"
	ServiceBus = "servicebus"
	Batch      = "batch"
	EventGrid  = "eventgrid"
	Host       = "funchost"
)

// Options configure a Stack.
type Options struct {
	// Dir holds every component's state (azurite/, servicebus/, batch/,
	// eventgrid/, funchost/). Required.
	Dir string
	// AppDir is the packaged function app (dist/): host.json, function
	// folders and the handler executable. Required.
	AppDir string
	// Ports pins listen ports; zero values pick free ports once, which are
	// then kept across restarts.
	Ports Ports
	// Slots is the number of local Batch task slots (default: cores), the
	// local pool's taskSlotsPerNode. It is set on the pool explicitly, not
	// left to internal/batch's default of 2 per vCPU: here Azurite shares
	// the task cores, where one slot per core is faster
	// (docs/performance.md, run F); in Azure storage is off the node.
	Slots int
	// SweepSchedule is the Sweep timer (6-field NCRONTAB). Default every second.
	SweepSchedule string
	// LockDuration of the queue. Default 30 s.
	LockDuration time.Duration
	// DuplicateDetectionWindow of the queue. Default 5 min.
	DuplicateDetectionWindow time.Duration
	// Settings override or add app settings for the function app.
	Settings map[string]string
	// InMemoryBroker keeps Service Bus state in memory (faster, not durable).
	InMemoryBroker bool
	// InMemoryStorage runs Azurite with its data in memory
	// (azurite.Options.InMemory): lost when Azurite restarts, so only for
	// runs that never stop it.
	InMemoryStorage bool
	// ServiceBusTLSPort, when not 0, adds the broker's AMQPS listener on
	// 127.0.0.1 with a self-signed certificate generated into Dir/servicebus
	// (see docs/servicebus-clients.md).
	ServiceBusTLSPort int
	// Logger receives every component's logs. Default: discard.
	Logger *slog.Logger
	// AzuriteLog, if set, receives Azurite's own output.
	AzuriteLog *os.File
	// Exec, if set, is the path of the ffpipe binary: the Service Bus,
	// Batch, Functions host and Event Grid stand-ins then run as child
	// processes (`ffpipe emulator …`, see exec.go), so that Stop(name, true)
	// is a real SIGKILL. Their logs go to LogDir()/<component>.log.
	Exec string
	// HostSettings override app settings for the function app only, not for
	// the stack's own clients (Settings, StorageConnectionString, …): a
	// benchmark points the handler at counting proxies with them.
	HostSettings map[string]string
	// NodeCPUs, if set, pins the Batch stand-in's process (Exec mode only)
	// to these CPUs: its file transfers and every task process it starts
	// run there, as on a Batch node; the caller pins the rest.
	NodeCPUs cpuset.Set
	// EventGridEndpoint, if set, maps the host's Event Grid webhook URL to
	// the URL the Event Grid stand-in delivers to (a fault-injecting proxy).
	EventGridEndpoint func(webhook string) string
}

// Ports are the listen ports of the components (0 = choose).
type Ports struct {
	Azurite, ServiceBus, Batch, Host int
}

// Stack is a running local pipeline.
type Stack struct {
	opts     Options
	log      *slog.Logger
	settings map[string]string

	mu   sync.Mutex
	az   *azurite.Server
	sb   *servicebus.Server
	bt   *batch.Server
	host *funchost.Host
	eg   *eventgrid.Server
	ctx  context.Context // lifetime of components started by Start/Restart
	stop context.CancelFunc

	// Subprocess mode (Options.Exec).
	procs     map[string]*child
	masterKey string
}

// Start brings every component up in dependency order, creates the
// containers, the pool and the job, and returns when the function host is
// ready and the Event Grid subscription is validated.
func Start(ctx context.Context, opts Options) (*Stack, error) {
	if opts.Dir == "" || opts.AppDir == "" {
		return nil, errors.New("start stack: Options.Dir and Options.AppDir are required")
	}
	if len(opts.NodeCPUs) > 0 && opts.Exec == "" {
		return nil, errors.New("start stack: Options.NodeCPUs needs Options.Exec (the Batch stand-in in its own process)")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Slots <= 0 {
		opts.Slots = runtime.NumCPU()
	}
	if opts.SweepSchedule == "" {
		opts.SweepSchedule = "* * * * * *"
	}
	if opts.LockDuration <= 0 {
		opts.LockDuration = 30 * time.Second
	}
	if opts.DuplicateDetectionWindow <= 0 {
		opts.DuplicateDetectionWindow = 5 * time.Minute
	}
	for _, p := range []*int{&opts.Ports.Azurite, &opts.Ports.ServiceBus, &opts.Ports.Batch, &opts.Ports.Host} {
		if *p == 0 {
			port, err := freePort()
			if err != nil {
				return nil, fmt.Errorf("start stack: %w", err)
			}
			*p = port
		}
	}
	life, stop := context.WithCancel(context.WithoutCancel(ctx))
	s := &Stack{opts: opts, log: opts.Logger, ctx: life, stop: stop, procs: map[string]*child{}}
	if opts.Exec != "" {
		if err := s.prepareExec(); err != nil {
			stop()
			return nil, fmt.Errorf("start stack: %w", err)
		}
	}
	ok := false
	defer func() {
		if !ok {
			_ = s.Close()
		}
	}()
	for _, c := range []string{Azurite, ServiceBus, Batch} {
		if err := s.startComponent(ctx, c); err != nil {
			return nil, err
		}
	}
	s.settings = s.appSettings()
	if err := s.provision(ctx); err != nil {
		return nil, err
	}
	for _, c := range []string{Host, EventGrid} {
		if err := s.startComponent(ctx, c); err != nil {
			return nil, err
		}
	}
	ok = true
	return s, nil
}

// Settings returns the app settings the function app runs with (connection
// strings included: this is a local, throw-away stack).
func (s *Stack) Settings() map[string]string {
	out := make(map[string]string, len(s.settings))
	for k, v := range s.settings {
		out[k] = v
	}
	return out
}

// hostSettings are the app settings with Options.HostSettings on top.
func (s *Stack) hostSettings() map[string]string {
	out := s.Settings()
	for k, v := range s.opts.HostSettings {
		out[k] = v
	}
	return out
}

// Config is the function app's configuration, as the handler loads it.
func (s *Stack) Config() (config.Config, error) {
	return config.Load(config.FromMap(s.settings))
}

// AzuriteDir is Azurite's data directory (its --location), for
// azurite.Seed while Azurite is stopped.
func (s *Stack) AzuriteDir() string { return s.dir("azurite") }

// StorageConnectionString is Azurite's connection string.
func (s *Stack) StorageConnectionString() string { return s.settings["DataStorage"] }

// ServiceBusConnectionString is the Service Bus stand-in's connection string.
func (s *Stack) ServiceBusConnectionString() string { return s.settings["ServiceBusConnection"] }

// BatchURL and BatchToken reach the Batch stand-in.
func (s *Stack) BatchURL() string   { return s.settings["FFPIPE_BATCH_ENDPOINT"] }
func (s *Stack) BatchToken() string { return s.settings["FFPIPE_BATCH_TOKEN"] }

// HostURL is the local Functions host's base URL.
func (s *Stack) HostURL() string { return fmt.Sprintf("http://127.0.0.1:%d", s.opts.Ports.Host) }

// HostMasterKey is the key for function-level HTTP endpoints such as Status.
func (s *Stack) HostMasterKey() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.opts.Exec != "" {
		return s.masterKey
	}
	if s.host == nil {
		return ""
	}
	return s.host.MasterKey()
}

// Blob returns an azblob client for Azurite.
func (s *Stack) Blob() (*azblob.Client, error) {
	return azblob.NewClientFromConnectionString(s.StorageConnectionString(), nil)
}

// BatchClient returns ffpipe's own Batch client for the stand-in.
func (s *Stack) BatchClient() (*ffbatch.Client, error) {
	return ffbatch.NewClient(s.BatchURL(), ffbatch.NewStaticToken(s.BatchToken()), ffbatch.Options{})
}

// Info is what `ffpipe dev` writes for clients (upload, submit, status).
type Info struct {
	Settings   map[string]string `json:"settings"`
	HostURL    string            `json:"hostUrl"`
	MasterKey  string            `json:"masterKey"`
	StartedAt  time.Time         `json:"startedAt"`
	Components map[string]string `json:"components"`
	// ServiceBusTLS is the AMQPS connection string and ServiceBusCert the
	// certificate clients trust, when the broker has a TLS listener.
	ServiceBusTLS  string `json:"serviceBusTls,omitempty"`
	ServiceBusCert string `json:"serviceBusCert,omitempty"`
}

// Info describes the running stack.
func (s *Stack) Info() Info {
	return Info{
		Settings:  s.Settings(),
		HostURL:   s.HostURL(),
		MasterKey: s.HostMasterKey(),
		StartedAt: time.Now().UTC(),
		Components: map[string]string{
			Azurite:    fmt.Sprintf("http://127.0.0.1:%d/%s", s.opts.Ports.Azurite, azurite.Account),
			ServiceBus: fmt.Sprintf("sb://127.0.0.1:%d", s.opts.Ports.ServiceBus),
			Batch:      s.BatchURL(),
			Host:       s.HostURL(),
		},
		ServiceBusTLS:  s.sbTLSConnectionString(),
		ServiceBusCert: s.sbCertFile(),
	}
}

// sbTLSConnectionString is the broker's AMQPS connection string, or "".
func (s *Stack) sbTLSConnectionString() string {
	p := s.opts.ServiceBusTLSPort
	if p == 0 {
		return ""
	}
	host := "127.0.0.1"
	if p != 5671 {
		host += ":" + strconv.Itoa(p)
	}
	return fmt.Sprintf("Endpoint=sb://%s/;SharedAccessKeyName=%s;SharedAccessKey=%s", host, servicebus.DefaultKeyName, servicebus.DefaultKey)
}

// sbCertFile is the certificate the AMQPS listener serves, or "".
func (s *Stack) sbCertFile() string {
	if s.opts.ServiceBusTLSPort == 0 {
		return ""
	}
	return filepath.Join(s.dir("servicebus"), servicebus.GeneratedCertFile)
}

// WriteInfo writes Info as JSON to path (0600: it holds local keys).
func (s *Stack) WriteInfo(path string) error {
	b, err := json.MarshalIndent(s.Info(), "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

// ReadInfo reads a file written by WriteInfo.
func ReadInfo(path string) (Info, error) {
	var info Info
	b, err := os.ReadFile(path)
	if err != nil {
		return info, fmt.Errorf("read stack info: %w (is `ffpipe dev` running?)", err)
	}
	if err := json.Unmarshal(b, &info); err != nil {
		return info, fmt.Errorf("read stack info %s: %w", path, err)
	}
	return info, nil
}

func (s *Stack) appSettings() map[string]string {
	m := map[string]string{
		"FUNCTIONS_WORKER_RUNTIME": "custom",
		"AzureWebJobsStorage":      azurite.ConnectionString(fmt.Sprintf("http://127.0.0.1:%d/%s", s.opts.Ports.Azurite, azurite.Account)),
		"DataStorage":              azurite.ConnectionString(fmt.Sprintf("http://127.0.0.1:%d/%s", s.opts.Ports.Azurite, azurite.Account)),
		"ServiceBusConnection":     s.sbConnectionString(),
		"FFPIPE_BATCH_ENDPOINT":    fmt.Sprintf("http://127.0.0.1:%d", s.opts.Ports.Batch),
		"FFPIPE_BATCH_TOKEN":       batch.DefaultToken,
		"SweepSchedule":            s.opts.SweepSchedule,
		"FFPIPE_LOG_FORMAT":        "text",
		"FFPIPE_RECONCILE_AFTER":   "2m",
		// Dispatch's time budget is half the lock (handlers/budget.go).
		"FFPIPE_QUEUE_LOCK_DURATION": s.opts.LockDuration.String(),
		// The pool's taskSlotsPerNode: a video profile's requiredSlots is
		// capped to it, so one local node can run it.
		"FFPIPE_TASK_MAX_SLOTS": strconv.Itoa(s.opts.Slots),
	}
	for k, v := range s.opts.Settings {
		m[k] = v
	}
	return m
}

// provision creates the containers, the pool and the job, as infra/ and
// `ffpipe pool ensure` do in Azure.
func (s *Stack) provision(ctx context.Context) error {
	cfg, err := s.Config()
	if err != nil {
		return fmt.Errorf("provision: %w", err)
	}
	blob, err := s.Blob()
	if err != nil {
		return fmt.Errorf("provision: %w", err)
	}
	for _, c := range []string{cfg.InputContainer, cfg.OutputContainer, cfg.StatusContainer, cfg.IndexContainer, cfg.LogsContainer, cfg.QuarantineContainer} {
		if c == "" {
			continue
		}
		if _, err := blob.CreateContainer(ctx, c, nil); err != nil && !bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
			return fmt.Errorf("provision: create container %s: %w", c, err)
		}
	}
	bc, err := s.BatchClient()
	if err != nil {
		return fmt.Errorf("provision: %w", err)
	}
	if _, err := bc.EnsurePool(ctx, ffbatch.PoolConfig{ID: cfg.BatchPool, TaskSlotsPerNode: s.opts.Slots, MaxNodes: 1}); err != nil {
		return fmt.Errorf("provision: %w", err)
	}
	if err := bc.EnsureJob(ctx, cfg.BatchJob, cfg.BatchPool); err != nil {
		return fmt.Errorf("provision: %w", err)
	}
	return nil
}

func (s *Stack) dir(name string) string { return filepath.Join(s.opts.Dir, name) }

func (s *Stack) logger(name string) *slog.Logger { return s.log.With("component", name) }

// startComponent starts one component (not yet running) and waits until ready.
func (s *Stack) startComponent(ctx context.Context, name string) error {
	if s.opts.Exec != "" && name != Azurite {
		return s.startChild(ctx, name)
	}
	switch name {
	case Azurite:
		az := azurite.New(azurite.Options{Dir: s.dir("azurite"), InMemory: s.opts.InMemoryStorage, Port: s.opts.Ports.Azurite, Logger: s.logger(name), Stdout: s.opts.AzuriteLog, Stderr: s.opts.AzuriteLog})
		if err := az.Start(ctx); err != nil {
			return err
		}
		s.mu.Lock()
		s.az = az
		s.mu.Unlock()
	case ServiceBus:
		return s.startServiceBus(ctx)
	case Batch:
		bt := batch.New(batch.Options{
			Addr:     "127.0.0.1:" + strconv.Itoa(s.opts.Ports.Batch),
			DataDir:  s.dir("batch"),
			MaxSlots: s.opts.Slots,
			Logger:   s.logger(name),
			Env:      []string{"PATH=" + os.Getenv("PATH")},
		})
		if err := bt.Start(ctx); err != nil {
			return fmt.Errorf("start batch: %w", err)
		}
		s.mu.Lock()
		s.bt = bt
		s.mu.Unlock()
	case Host:
		h := funchost.New(funchost.Options{
			AppDir:       s.opts.AppDir,
			Settings:     s.hostSettings(),
			ListenAddr:   "127.0.0.1:" + strconv.Itoa(s.opts.Ports.Host),
			Logger:       s.logger(name),
			DataDir:      s.dir("funchost"),
			RestartLimit: -1,
		})
		if err := h.Start(s.ctx); err != nil {
			return fmt.Errorf("start functions host: %w", err)
		}
		s.mu.Lock()
		s.host = h
		s.mu.Unlock()
	case EventGrid:
		return s.startEventGrid()
	default:
		return fmt.Errorf("unknown component %q", name)
	}
	return nil
}

// startServiceBus starts the Service Bus stand-in on its port (and its TLS
// port when set), with the stack's queues and topics.
func (s *Stack) startServiceBus(ctx context.Context) error {
	dataDir := s.dir("servicebus")
	if s.opts.InMemoryBroker {
		dataDir = ""
	}
	sbOpts := servicebus.Options{
		Addr:    "127.0.0.1:" + strconv.Itoa(s.opts.Ports.ServiceBus),
		Config:  s.serviceBusConfig(),
		DataDir: dataDir,
		Logger:  s.logger(ServiceBus),
	}
	if s.opts.ServiceBusTLSPort != 0 {
		sbOpts.TLSAddr, sbOpts.TLSDir = "127.0.0.1:"+strconv.Itoa(s.opts.ServiceBusTLSPort), s.dir("servicebus")
	}
	sb, err := servicebus.New(sbOpts)
	if err != nil {
		return fmt.Errorf("start service bus: %w", err)
	}
	if err := sb.Start(ctx); err != nil {
		return fmt.Errorf("start service bus: %w", err)
	}
	s.mu.Lock()
	s.sb = sb
	s.mu.Unlock()
	return nil
}

// startEventGrid starts the Event Grid stand-in, subscribed for the input
// container's blobs.
func (s *Stack) startEventGrid() error {
	cfg, err := s.Config()
	if err != nil {
		return err
	}
	eg := eventgrid.New(eventgrid.Options{
		ConnectionString: s.StorageConnectionString(),
		Containers:       []string{cfg.InputContainer},
		Subscriptions: []eventgrid.Subscription{{
			Name:              "onblobcreated",
			Endpoint:          s.eventGridEndpoint(),
			SubjectBeginsWith: "/blobServices/default/containers/" + cfg.InputContainer + "/blobs/",
		}},
		DataDir: s.dir("eventgrid"),
		Logger:  s.logger(EventGrid),
	})
	if err := eg.Start(s.ctx); err != nil {
		return fmt.Errorf("start event grid: %w", err)
	}
	s.mu.Lock()
	s.eg = eg
	s.mu.Unlock()
	return nil
}

// Components lists the component names in start order.
func Components() []string { return []string{Azurite, ServiceBus, Batch, Host, EventGrid} }

// Stop stops one component. With kill, it goes down the hard way where
// that means something: Azurite gets SIGKILL, the host's handler process
// gets SIGKILL, the Batch stand-in loses its running tasks (node loss).
func (s *Stack) Stop(name string, kill bool) error {
	if s.opts.Exec != "" && name != Azurite {
		return s.stopChild(name, kill)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch name {
	case Azurite:
		if s.az == nil {
			return nil
		}
		var err error
		if kill {
			err = s.az.Kill()
		} else {
			err = s.az.Close()
		}
		s.az = nil
		return err
	case ServiceBus:
		if s.sb == nil {
			return nil
		}
		err := s.sb.Close()
		s.sb = nil
		return err
	case Batch:
		if s.bt == nil {
			return nil
		}
		if kill {
			s.bt.KillRunningTasks()
		}
		err := s.bt.Close()
		s.bt = nil
		return err
	case Host:
		if s.host == nil {
			return nil
		}
		err := s.host.Close()
		s.host = nil
		return err
	case EventGrid:
		if s.eg == nil {
			return nil
		}
		err := s.eg.Close()
		s.eg = nil
		return err
	}
	return fmt.Errorf("unknown component %q", name)
}

// Restart starts a stopped component again on the same address and state.
func (s *Stack) Restart(ctx context.Context, name string) error {
	return s.startComponent(ctx, name)
}

// HandlerPid is the handler process's pid (0 when not running).
func (s *Stack) HandlerPid() int {
	if s.opts.Exec != "" {
		return s.childHandlerPid()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.host == nil {
		return 0
	}
	return s.host.HandlerPid()
}

// BatchServer, EventGridServer and Host expose the running stand-ins for
// harnesses (nil while stopped).
func (s *Stack) BatchServer() *batch.Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bt
}

// EventGridServer returns the running Event Grid stand-in.
func (s *Stack) EventGridServer() *eventgrid.Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.eg
}

// FunctionsHost returns the running local Functions host.
func (s *Stack) FunctionsHost() *funchost.Host {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.host
}

// Close stops every component in reverse order.
func (s *Stack) Close() error {
	var errs []error
	comps := Components()
	for i := len(comps) - 1; i >= 0; i-- {
		if err := s.Stop(comps[i], false); err != nil {
			errs = append(errs, fmt.Errorf("stop %s: %w", comps[i], err))
		}
	}
	s.stop()
	return errors.Join(errs...)
}

// FreePort is a free TCP port on 127.0.0.1 (for a component or a proxy
// whose port must be known before the stack starts).
func FreePort() (int, error) { return freePort() }

func freePort() (int, error) { return ports.Free() }
