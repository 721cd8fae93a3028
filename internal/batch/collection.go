package batch

import (
	"bytes"
	"context"
	"net/http"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
)

// encodedTask is one task of an addtaskcollection body: its id and its JSON
// exactly as the SDK encodes it (CreateTaskContent.MarshalJSON).
type encodedTask struct {
	id   string
	json []byte
}

func encodeTask(c azbatch.CreateTaskContent) (encodedTask, error) {
	b, err := c.MarshalJSON()
	return encodedTask{id: deref(c.ID), json: b}, err
}

// collectionBody is the addtaskcollection body of tasks, byte for byte what
// the SDK sends for azbatch.TaskGroup{Value: tasks}: {"value":[t1,t2,…]}.
//
// The SDK's models encode by nested MarshalJSON calls, and encoding/json
// validates and re-compacts the output of each: every byte of a task is
// scanned again at the TaskGroup level and once more by
// runtime.MarshalAsJSON. That was a fifth of the handler's CPU while
// Dispatch adds tasks (docs/performance.md). Each task is encoded once
// here, by the SDK's own method, so its size is exact for chunking and
// resending a part of a collection encodes nothing again.
func collectionBody(tasks []encodedTask) []byte {
	n := len(`{"value":[]}`)
	for _, t := range tasks {
		n += len(t.json) + 1
	}
	b := make([]byte, 0, n)
	b = append(b, `{"value":[`...)
	for i, t := range tasks {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, t.json...)
	}
	return append(b, "]}"...)
}

// collectionBodyKey carries a pre-encoded addtaskcollection body in the
// context of one CreateTaskCollection call.
type collectionBodyKey struct{}

func withCollectionBody(ctx context.Context, body []byte) context.Context {
	return context.WithValue(ctx, collectionBodyKey{}, body)
}

// collectionBodyPolicy is a per-call pipeline policy: on an
// addtaskcollection request whose context carries a body (AddTasks passes
// the SDK an empty TaskGroup with it), the request carries that body, with
// the SDK's content type. The retry policy after it rewinds the body for
// every attempt, as for the SDK's own.
type collectionBodyPolicy struct{}

func (collectionBodyPolicy) Do(req *policy.Request) (*http.Response, error) {
	raw := req.Raw()
	if body, ok := raw.Context().Value(collectionBodyKey{}).([]byte); ok &&
		raw.Method == http.MethodPost && strings.HasSuffix(raw.URL.Path, "/addtaskcollection") {
		if err := req.SetBody(streaming.NopCloser(bytes.NewReader(body)), "application/json; odata=minimalmetadata"); err != nil {
			return nil, err
		}
	}
	return req.Next()
}
