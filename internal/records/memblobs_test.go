package records

import (
	"context"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ffpipe/ffpipe/internal/storage"
)

// memBlobs is a hand-written in-memory blob store with Blob Storage's
// conditional-write semantics (If-Match on the eTag, create-only with "").
type memBlobs struct {
	mu    sync.Mutex
	seq   int
	blobs map[string]memBlob // container + "/" + name
	// puts counts writes per name (contention checks), reads per
	// container.
	puts  map[string]int
	reads map[string]int
}

type memBlob struct {
	data []byte
	etag string
	md   map[string]string
	mod  time.Time
}

var (
	_ Blobs      = (*memBlobs)(nil)
	_ IndexBlobs = (*memBlobs)(nil)
)

func newMemBlobs() *memBlobs {
	return &memBlobs{blobs: map[string]memBlob{}, puts: map[string]int{}, reads: map[string]int{}}
}

func (m *memBlobs) write(cont, name string, data []byte, md map[string]string) {
	m.seq++
	m.blobs[cont+"/"+name] = memBlob{data: slices.Clone(data), etag: "0x" + strconv.Itoa(m.seq), md: maps.Clone(md), mod: time.Now()}
	m.puts[cont+"/"+name]++
}

func (m *memBlobs) Put(_ context.Context, cont, name string, data []byte, _ string, md map[string]string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.write(cont, name, data, md)
	return nil
}

func (m *memBlobs) PutIf(_ context.Context, cont, name string, data []byte, _ string, md map[string]string, ifMatch string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.blobs[cont+"/"+name]
	if ifMatch == "" && ok || ifMatch != "" && (!ok || b.etag != ifMatch) {
		return storage.ErrConditionNotMet
	}
	m.write(cont, name, data, md)
	return nil
}

func (m *memBlobs) Get(ctx context.Context, cont, name string) ([]byte, error) {
	b, _, err := m.GetWithETag(ctx, cont, name)
	return b, err
}

func (m *memBlobs) GetWithETag(_ context.Context, cont, name string) ([]byte, string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reads[cont]++
	b, ok := m.blobs[cont+"/"+name]
	if !ok {
		return nil, "", storage.ErrNotFound
	}
	return slices.Clone(b.data), b.etag, nil
}

func (m *memBlobs) List(_ context.Context, cont, prefix string, fn func(storage.Item) bool) error {
	m.mu.Lock()
	var items []storage.Item
	for _, k := range slices.Sorted(maps.Keys(m.blobs)) {
		name, ok := strings.CutPrefix(k, cont+"/")
		if !ok || !strings.HasPrefix(name, prefix) {
			continue
		}
		b := m.blobs[k]
		items = append(items, storage.Item{Name: name, ETag: b.etag, Size: int64(len(b.data)), LastModified: b.mod, Metadata: maps.Clone(b.md)})
	}
	m.mu.Unlock()
	for _, it := range items {
		if !fn(it) {
			return nil
		}
	}
	return nil
}

func (m *memBlobs) Delete(_ context.Context, cont, name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.blobs[cont+"/"+name]; !ok {
		return storage.ErrNotFound
	}
	delete(m.blobs, cont+"/"+name)
	return nil
}

func (m *memBlobs) DeleteIfMatch(_ context.Context, cont, name, etag string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.blobs[cont+"/"+name]
	switch {
	case !ok:
		return storage.ErrNotFound
	case b.etag != etag:
		return storage.ErrConditionNotMet
	}
	delete(m.blobs, cont+"/"+name)
	return nil
}

func (m *memBlobs) readsOf(cont string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.reads[cont]
}

func (m *memBlobs) count(cont, prefix string) int {
	n := 0
	_ = m.List(context.Background(), cont, prefix, func(storage.Item) bool { n++; return true })
	return n
}
