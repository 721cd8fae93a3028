// Package events builds ffpipe's completion events: one CloudEvents 1.0
// event (JSON, structured mode) for each file that reaches a final state,
// published to the Service Bus topic FFPIPE_EVENTS_TOPIC. docs/events.md
// is the schema.
//
// The event id is the key and the final state, and it is the Service Bus
// MessageId: a Sweep that publishes the same outcome again (after a crash,
// or from its outbox) is dropped by the topic's duplicate detection, and a
// consumer that sees an id twice (outside that window) can drop it too.
package events

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/ffpipe/ffpipe/internal/records"
)

// SpecVersion is the CloudEvents version.
const SpecVersion = "1.0"

// ContentType of an event message (structured mode).
const ContentType = "application/cloudevents+json"

// TypePrefix begins every event type: ffpipe.transcode.done, .failed, …
const TypePrefix = "ffpipe.transcode."

// Event is a CloudEvents 1.0 event whose data is the file's record.
type Event struct {
	SpecVersion     string         `json:"specversion"`
	Type            string         `json:"type"`
	Source          string         `json:"source"`
	Subject         string         `json:"subject"`
	ID              string         `json:"id"`
	Time            time.Time      `json:"time"`
	DataContentType string         `json:"datacontenttype"`
	Data            records.Record `json:"data"`
}

// Type is the event type of a final state.
func Type(s records.State) string { return TypePrefix + string(s) }

// ID is the event id of key reaching state: stable, so a repeated
// publish is a duplicate.
func ID(key string, s records.State) string { return key + "-" + string(s) }

// Source names the ffpipe deployment that publishes: its data storage
// account, which every key is made from.
func Source(account string) string { return "/ffpipe/" + account }

// Subject is the source blob as Event Grid names blobs:
// /blobServices/default/containers/<container>/blobs/<name>, so it ends
// with the blob's name.
func Subject(container, blob string) string {
	return "/blobServices/default/containers/" + container + "/blobs/" + blob
}

// New is the event of a terminal record; account names the deployment.
func New(account string, r records.Record) (Event, error) {
	if !r.State.Terminal() {
		return Event{}, fmt.Errorf("event for %s: state %q is not final", r.Key, r.State)
	}
	if r.Key == "" {
		return Event{}, fmt.Errorf("event: record without a key")
	}
	return Event{
		SpecVersion:     SpecVersion,
		Type:            Type(r.State),
		Source:          Source(account),
		Subject:         Subject(r.Source.Container, r.Source.Blob),
		ID:              ID(r.Key, r.State),
		Time:            r.Updated.UTC(),
		DataContentType: "application/json",
		Data:            r,
	}, nil
}

// Parse reads an event and checks the attributes CloudEvents requires.
func Parse(b []byte) (Event, error) {
	var e Event
	if err := json.Unmarshal(b, &e); err != nil {
		return Event{}, fmt.Errorf("parse event: %w", err)
	}
	switch {
	case e.SpecVersion != SpecVersion:
		return Event{}, fmt.Errorf("parse event: specversion %q, want %q", e.SpecVersion, SpecVersion)
	case e.ID == "" || e.Source == "" || e.Type == "":
		return Event{}, fmt.Errorf("parse event: id, source and type are required")
	case !strings.HasPrefix(e.Type, TypePrefix):
		return Event{}, fmt.Errorf("parse event: type %q is not an ffpipe transcode event", e.Type)
	}
	return e, nil
}
