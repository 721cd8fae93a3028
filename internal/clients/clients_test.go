package clients

import (
	"context"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/ffpipe/ffpipe/internal/config"
)

// fakeCred stands in for a managed identity; New contacts nothing.
type fakeCred struct{}

func (fakeCred) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: "t"}, nil
}

func load(t *testing.T, m map[string]string) config.Config {
	t.Helper()
	cfg, err := config.Load(config.FromMap(m))
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestNew(t *testing.T) {
	local := map[string]string{
		"DataStorage":           "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;",
		"ServiceBusConnection":  "Endpoint=sb://127.0.0.1:5672;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;",
		"FFPIPE_BATCH_ENDPOINT": "http://127.0.0.1:8090",
		"FFPIPE_BATCH_TOKEN":    "tok",
	}
	azure := map[string]string{
		"DataStorage__blobServiceUri":                   "https://acct.blob.core.windows.net",
		"ServiceBusConnection__fullyQualifiedNamespace": "ns.servicebus.windows.net",
		"FFPIPE_BATCH_ENDPOINT":                         "https://acct.westeurope.batch.azure.com",
	}
	tests := []struct {
		name        string
		settings    map[string]string
		wantAccount string
	}{
		{"local stand-ins: connection strings and a static token", local, "devstoreaccount1"},
		{"azure: identity for storage, service bus and batch", azure, "acct"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, err := New(load(t, tt.settings), Options{Credential: fakeCred{}})
			if err != nil {
				t.Fatal(err)
			}
			defer set.Close(context.Background())
			if set.Blobs == nil || set.Queue == nil || set.Batch == nil || set.Records == nil {
				t.Fatalf("missing client: %+v", set)
			}
			if got := set.Blobs.Account(); got != tt.wantAccount {
				t.Errorf("account: got %q, want %q", got, tt.wantAccount)
			}
			if !strings.HasPrefix(set.Blobs.URL(), "http") {
				t.Errorf("blob URL: got %q", set.Blobs.URL())
			}
		})
	}
}
