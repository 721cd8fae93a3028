// Package clients builds ffpipe's Azure clients from the configuration:
// connection strings and a static Batch token for the local stand-ins, a
// Microsoft Entra ID credential (azidentity) in Azure. The handler and the
// CLI share it, so both reach Azure and the local stack the same way.
package clients

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/ffpipe/ffpipe/internal/batch"
	"github.com/ffpipe/ffpipe/internal/config"
	"github.com/ffpipe/ffpipe/internal/queue"
	"github.com/ffpipe/ffpipe/internal/records"
	"github.com/ffpipe/ffpipe/internal/secret"
	"github.com/ffpipe/ffpipe/internal/storage"
)

// Set is every client ffpipe uses.
type Set struct {
	Blobs   *storage.Client
	Queue   *queue.Sender
	Batch   *batch.Client
	Records *records.Store
	// Events publishes completion events; nil when FFPIPE_EVENTS_TOPIC is
	// empty.
	Events *queue.Sender
}

// Options configure New.
type Options struct {
	// Logger for the Batch client. Default: discard.
	Logger *slog.Logger
	// Credential replaces the default identity: a managed identity
	// (AZURE_CLIENT_ID for a user-assigned one) or, outside Azure,
	// DefaultAzureCredential (az login, environment, ...).
	Credential azcore.TokenCredential
}

// New builds the clients. Nothing is contacted yet.
func New(cfg config.Config, o Options) (*Set, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	id := identity{cfg: cfg, cred: o.Credential}
	var s Set
	var err error
	if cfg.DataStorage != "" {
		s.Blobs, err = storage.NewFromConnectionString(cfg.DataStorage, storage.Options{})
	} else if c, cerr := id.get(); cerr != nil {
		err = cerr
	} else {
		s.Blobs, err = storage.NewWithCredential(cfg.BlobServiceURI, c, storage.Options{})
	}
	if err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	if cfg.ServiceBusConnection != "" {
		s.Queue, err = queue.NewFromConnectionString(cfg.ServiceBusConnection, cfg.Queue)
	} else if c, cerr := id.get(); cerr != nil {
		err = cerr
	} else {
		s.Queue, err = queue.NewWithCredential(cfg.ServiceBusNamespace, cfg.Queue, c)
	}
	if err != nil {
		return nil, fmt.Errorf("service bus: %w", err)
	}
	if cfg.EventsTopic != "" {
		// Quick retries: the outbox takes what the topic cannot.
		if cfg.ServiceBusConnection != "" {
			s.Events, err = queue.NewFromConnectionStringOptions(cfg.ServiceBusConnection, cfg.EventsTopic, queue.QuickRetries)
		} else if c, cerr := id.get(); cerr != nil {
			err = cerr
		} else {
			s.Events, err = queue.NewWithCredentialOptions(cfg.ServiceBusNamespace, cfg.EventsTopic, c, queue.QuickRetries)
		}
		if err != nil {
			return nil, fmt.Errorf("service bus events topic: %w", err)
		}
	}
	var batchCred azcore.TokenCredential
	if cfg.BatchToken != "" {
		batchCred = batch.NewStaticToken(cfg.BatchToken)
	} else if batchCred, err = id.get(); err != nil {
		return nil, fmt.Errorf("batch: %w", err)
	}
	if s.Batch, err = batch.NewClient(cfg.BatchEndpoint, batchCred, batch.Options{Logger: o.Logger}); err != nil {
		return nil, fmt.Errorf("batch: %w", err)
	}
	log := o.Logger
	s.Records = records.New(s.Blobs, cfg.StatusContainer, nil).WithIndex(
		records.NewIndex(s.Blobs, cfg.IndexContainer, cfg.RecordRetention, nil),
		func(key string, err error) {
			// The record is written and stays the truth; the counts are
			// off until `ffpipe status --rebuild`.
			log.Warn("record index not updated; ffpipe status --rebuild repairs it", "key", key, "err", secret.Redact(err.Error()))
		})
	return &s, nil
}

// Close releases the Service Bus connection.
func (s *Set) Close(ctx context.Context) error {
	var errs []error
	if s.Events != nil {
		errs = append(errs, s.Events.Close(ctx))
	}
	return errors.Join(append(errs, s.Queue.Close(ctx))...)
}

// identity creates the Entra ID credential once, on first use, so a fully
// local configuration never touches azidentity.
type identity struct {
	cfg  config.Config
	once sync.Once
	cred azcore.TokenCredential
	err  error
}

func (i *identity) get() (azcore.TokenCredential, error) {
	i.once.Do(func() {
		if i.cred != nil {
			return
		}
		if i.cfg.ClientID != "" {
			i.cred, i.err = azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{ID: azidentity.ClientID(i.cfg.ClientID)})
		} else {
			i.cred, i.err = azidentity.NewDefaultAzureCredential(nil)
		}
		if i.err != nil {
			i.err = fmt.Errorf("azure identity: %w", i.err)
		}
	})
	return i.cred, i.err
}
