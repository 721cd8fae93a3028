package handlers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// BlobEvent is a storage event in either schema (Event Grid or CloudEvents
// 1.0), reduced to what OnBlobCreated needs.
type BlobEvent struct {
	ID string
	// Topic is the Event Grid topic or CloudEvents source: the storage
	// account's resource id.
	Topic      string
	Subject    string
	Type       string
	Time       time.Time
	API        string
	ETag       string
	Size       int64
	HasSize    bool
	URL        string
	BlobType   string
	CloudEvent bool
}

// wireEvent accepts both schemas' field names.
type wireEvent struct {
	ID          string          `json:"id"`
	Topic       string          `json:"topic"`
	Source      string          `json:"source"`
	Subject     string          `json:"subject"`
	EventType   string          `json:"eventType"`
	Type        string          `json:"type"`
	EventTime   string          `json:"eventTime"`
	Time        string          `json:"time"`
	SpecVersion string          `json:"specversion"`
	Data        json.RawMessage `json:"data"`
}

type wireBlobData struct {
	API           string          `json:"api"`
	ETag          string          `json:"eTag"`
	ContentLength json.RawMessage `json:"contentLength"`
	URL           string          `json:"url"`
	BlobType      string          `json:"blobType"`
}

// ParseEvents parses the event text OnBlobCreated receives: one event
// object or an array of them (a batched subscription), in the Event Grid
// or the CloudEvents schema.
func ParseEvents(text []byte) ([]BlobEvent, error) {
	text = bytes.TrimSpace(text)
	if len(text) == 0 {
		return nil, errors.New("parse event: empty")
	}
	var raws []json.RawMessage
	if text[0] == '[' {
		if err := json.Unmarshal(text, &raws); err != nil {
			return nil, fmt.Errorf("parse events: %w", err)
		}
	} else {
		raws = []json.RawMessage{text}
	}
	out := make([]BlobEvent, 0, len(raws))
	for i, raw := range raws {
		e, err := parseEvent(raw)
		if err != nil {
			return nil, fmt.Errorf("parse event %d: %w", i, err)
		}
		out = append(out, e)
	}
	return out, nil
}

func parseEvent(raw json.RawMessage) (BlobEvent, error) {
	var w wireEvent
	if err := json.Unmarshal(raw, &w); err != nil {
		return BlobEvent{}, err
	}
	e := BlobEvent{ID: w.ID, Subject: w.Subject, Topic: w.Topic, Type: w.EventType}
	ts := w.EventTime
	if w.SpecVersion != "" || (w.EventType == "" && w.Type != "") {
		e.CloudEvent = true
		e.Topic, e.Type, ts = w.Source, w.Type, w.Time
	}
	if e.Topic == "" {
		e.Topic = w.Source
	}
	if ts != "" {
		e.Time = parseTime(ts)
	}
	if len(bytes.TrimSpace(w.Data)) > 0 && !bytes.Equal(bytes.TrimSpace(w.Data), []byte("null")) {
		data := w.Data
		// Some producers put the data object in a string.
		if b, err := decodeValue(data); err == nil {
			data = b
		}
		var d wireBlobData
		if err := json.Unmarshal(data, &d); err != nil {
			return BlobEvent{}, fmt.Errorf("event data: %w", err)
		}
		e.API, e.ETag, e.URL, e.BlobType = d.API, d.ETag, d.URL, d.BlobType
		if n, ok, err := parseLength(d.ContentLength); err != nil {
			return BlobEvent{}, fmt.Errorf("event data contentLength: %w", err)
		} else if ok {
			e.Size, e.HasSize = n, true
		}
	}
	return e, nil
}

// parseLength accepts a JSON number or a numeric string.
func parseLength(raw json.RawMessage) (int64, bool, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return 0, false, nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, false, err
		}
		raw = json.RawMessage(s)
	}
	var n int64
	if err := json.Unmarshal(raw, &n); err != nil {
		return 0, false, err
	}
	if n < 0 {
		return 0, false, errors.New("negative")
	}
	return n, true, nil
}

// parseTime is lenient: RFC 3339 with or without offset or fraction.
func parseTime(s string) time.Time {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.9999999", "2006-01-02T15:04:05", "01/02/2006 15:04:05"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC()
		}
	}
	return time.Time{}
}

// SubjectBlob splits a storage event subject,
// /blobServices/default/containers/<container>/blobs/<blob>, into container
// and blob name.
func SubjectBlob(subject string) (container, blob string, ok bool) {
	const prefix = "/blobServices/default/containers/"
	if !strings.HasPrefix(subject, prefix) {
		return "", "", false
	}
	rest := subject[len(prefix):]
	container, blob, ok = strings.Cut(rest, "/blobs/")
	if !ok || container == "" || blob == "" || strings.Contains(container, "/") {
		return "", "", false
	}
	return container, blob, true
}

// TopicAccount returns the storage account name in an event topic
// (/subscriptions/…/providers/Microsoft.Storage/storageAccounts/<name>).
func TopicAccount(topic string) string {
	const marker = "/storageaccounts/"
	i := strings.LastIndex(strings.ToLower(topic), marker)
	if i < 0 {
		return ""
	}
	name, _, _ := strings.Cut(topic[i+len(marker):], "/")
	return name
}
