package handlers_test

import (
	"fmt"
	"io"
	"net/http/httptest"

	"github.com/ffpipe/ffpipe/handlers"
	"github.com/ffpipe/ffpipe/internal/clients"
	"github.com/ffpipe/ffpipe/internal/config"
	"github.com/ffpipe/ffpipe/internal/presets"
)

// The handler binary wires New like this (cmd/handler): configuration from
// the app settings, the Azure clients (nothing is contacted until a
// function runs), the presets, then one http.Handler that serves the
// Functions host: GET / for readiness and POST /<Function> per function.
func ExampleNew() {
	cfg, err := config.Load(config.FromMap(map[string]string{
		// The local stack's settings (make dev prints them); in Azure, the
		// identity-based ones (docs/functions.md).
		"DataStorage":           "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;",
		"ServiceBusConnection":  "Endpoint=sb://127.0.0.1:5672;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;",
		"FFPIPE_BATCH_ENDPOINT": "http://127.0.0.1:8090",
		"FFPIPE_BATCH_TOKEN":    "ffpipe-local-batch-token",
	}))
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		fmt.Println("configuration:", err)
		return
	}
	set, err := clients.New(cfg, clients.Options{})
	if err != nil {
		fmt.Println("clients:", err)
		return
	}
	ps, err := presets.Load(cfg.Presets)
	if err != nil {
		fmt.Println("presets:", err)
		return
	}
	deps := handlers.Deps{
		Queue: set.Queue, Blobs: set.Blobs, SAS: set.Blobs, Records: set.Records,
		Submitter: set.Batch, Sweeper: set.Batch, Tasks: set.Batch, Presets: ps,
	}
	if err := handlers.Check(cfg, deps); err != nil {
		fmt.Println("check:", err)
		return
	}
	srv := httptest.NewServer(handlers.New(cfg, deps))
	defer srv.Close()

	resp, err := srv.Client().Get(srv.URL + "/")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.StatusCode, string(body))
	fmt.Println(handlers.Functions)
	// Output:
	// 200 {"status":"ready"}
	// [OnBlobCreated Dispatch Sweep Status]
}
