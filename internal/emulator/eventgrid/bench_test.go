package eventgrid

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
)

// BenchmarkUploadToDelivery measures upload → webhook delivery, one blob at
// a time: "poll" waits for the next listing (PollInterval 100 ms, the
// default), "poke" asks for a scan right after the upload.
func BenchmarkUploadToDelivery(b *testing.B) {
	for _, mode := range []string{"poll", "poke"} {
		b.Run(mode, func(b *testing.B) {
			az := sharedAzuriteTB(b)
			client, err := azblob.NewClientFromConnectionString(az.ConnectionString(), nil)
			if err != nil {
				b.Fatal(err)
			}
			cont := fmt.Sprintf("bench-%s-%d", mode, containerSeq.Add(1))
			if _, err := client.CreateContainer(context.Background(), cont, nil); err != nil {
				b.Fatal(err)
			}
			got := make(chan string, 1024)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				if r.Header.Get("aeg-event-type") == "SubscriptionValidation" {
					var evs []struct {
						Data struct{ ValidationCode string }
					}
					_ = json.Unmarshal(body, &evs)
					_ = json.NewEncoder(w).Encode(map[string]string{"validationResponse": evs[0].Data.ValidationCode})
					return
				}
				var evs []Event
				_ = json.Unmarshal(body, &evs)
				got <- evs[0].Subject
			}))
			defer srv.Close()
			s := New(Options{ConnectionString: az.ConnectionString(), Containers: []string{cont},
				Subscriptions: []Subscription{{Name: "bench", Endpoint: srv.URL}}, PollInterval: 100 * time.Millisecond})
			if err := s.Start(context.Background()); err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				name := fmt.Sprintf("f%06d.mp4", i)
				if _, err := client.UploadBuffer(context.Background(), cont, name, []byte("x"), nil); err != nil {
					b.Fatal(err)
				}
				if mode == "poke" {
					s.Poke()
				}
				want := "/blobServices/default/containers/" + cont + "/blobs/" + name
				for subj := range got {
					if subj == want {
						break
					}
				}
			}
		})
	}
}
