package eventgrid

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// Event is an Event Grid schema event.
type Event struct {
	Topic           string    `json:"topic"`
	Subject         string    `json:"subject"`
	EventType       string    `json:"eventType"`
	EventTime       string    `json:"eventTime"`
	ID              string    `json:"id"`
	Data            BlobEvent `json:"data"`
	DataVersion     string    `json:"dataVersion"`
	MetadataVersion string    `json:"metadataVersion"`
}

// BlobEvent is the data of Microsoft.Storage.BlobCreated.
type BlobEvent struct {
	API                string             `json:"api"`
	ClientRequestID    string             `json:"clientRequestId"`
	RequestID          string             `json:"requestId"`
	ETag               string             `json:"eTag"`
	ContentType        string             `json:"contentType"`
	ContentLength      int64              `json:"contentLength"`
	BlobType           string             `json:"blobType"`
	URL                string             `json:"url"`
	Sequencer          string             `json:"sequencer"`
	StorageDiagnostics StorageDiagnostics `json:"storageDiagnostics"`
}

// StorageDiagnostics is data.storageDiagnostics.
type StorageDiagnostics struct {
	BatchID string `json:"batchId"`
}

// cloudEvent is the CloudEvents 1.0 rendering.
type cloudEvent struct {
	Source      string    `json:"source"`
	Subject     string    `json:"subject"`
	Type        string    `json:"type"`
	Time        string    `json:"time"`
	ID          string    `json:"id"`
	Data        BlobEvent `json:"data"`
	SpecVersion string    `json:"specversion"`
}

func (s *Server) blobCreated(containerName string, b blobInfo, seq uint64, now time.Time) Event {
	return Event{
		Topic:     s.topic,
		Subject:   "/blobServices/default/containers/" + containerName + "/blobs/" + b.name,
		EventType: BlobCreated,
		EventTime: now.Format("2006-01-02T15:04:05.0000000Z"),
		ID:        newUUID(),
		Data: BlobEvent{
			API:                b.api,
			ClientRequestID:    newUUID(),
			RequestID:          newUUID(),
			ETag:               `"` + b.etag + `"`,
			ContentType:        b.contentType,
			ContentLength:      b.length,
			BlobType:           b.blobType,
			URL:                b.url,
			Sequencer:          fmt.Sprintf("%032x", seq),
			StorageDiagnostics: StorageDiagnostics{BatchID: newUUID()},
		},
		DataVersion:     "",
		MetadataVersion: "1",
	}
}

func render(ev Event, schema Schema) json.RawMessage {
	var v any = ev
	if schema == SchemaCloudEvents {
		v = cloudEvent{Source: ev.Topic, Subject: ev.Subject, Type: ev.EventType, Time: ev.EventTime, ID: ev.ID, Data: ev.Data, SpecVersion: "1.0"}
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	return bytes.TrimRight(b.Bytes(), "\n")
}
