package eventgrid

import (
	"context"
	"net/url"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/ffpipe/ffpipe/internal/etags"
)

// Poke asks for a scan now instead of at the next poll.
func (s *Server) Poke() {
	select {
	case s.poke <- struct{}{}:
	default:
	}
}

// Scan runs one listing pass and waits for it (for tests and tools).
func (s *Server) Scan(ctx context.Context) error {
	s.mu.Lock()
	ch := s.scanned
	s.mu.Unlock()
	// The scan that is running may have listed before the caller's change;
	// wait for two completions after the poke.
	for range 2 {
		s.Poke()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		s.mu.Lock()
		ch = s.scanned
		s.mu.Unlock()
	}
	return nil
}

func (s *Server) scanLoop(ctx context.Context, skip bool) {
	t := time.NewTicker(s.opts.PollInterval)
	defer t.Stop()
	for {
		s.scan(ctx, skip)
		skip = false
		s.mu.Lock()
		close(s.scanned)
		s.scanned = make(chan struct{})
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.poke:
		}
	}
}

// scan lists every container and publishes events for new or changed blobs.
func (s *Server) scan(ctx context.Context, skip bool) {
	if s.listErrs == nil {
		s.listErrs = map[string]listErr{}
	}
	for _, c := range s.opts.Containers {
		err := s.scanContainer(ctx, c, skip)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			if _, failed := s.listErrs[c]; failed {
				s.log.Info("eventgrid: listing works again", "container", c)
				delete(s.listErrs, c)
			}
			continue
		}
		if bloberror.HasCode(err, bloberror.ContainerNotFound) {
			s.log.Debug("eventgrid: container does not exist yet", "container", c)
			continue
		}
		// Storage down: say so once, then every 10 s, not at every poll.
		msg := redact(err.Error())
		if last, ok := s.listErrs[c]; ok && last.msg == msg && time.Since(last.at) < 10*time.Second {
			continue
		}
		s.listErrs[c] = listErr{msg: msg, at: time.Now()}
		s.log.Warn("eventgrid: list container", "container", c, "err", msg)
	}
}

type blobInfo struct {
	name, etag, contentType, blobType, api, url string
	length                                      int64
}

// scanContainer lists one container and publishes events for its new or
// changed blobs.
func (s *Server) scanContainer(ctx context.Context, name string, skip bool) error {
	found, err := s.listContainer(ctx, name)
	if err != nil {
		return err
	}
	s.publish(name, found, skip)
	return nil
}

// listContainer returns the committed blobs of a container.
func (s *Server) listContainer(ctx context.Context, name string) ([]blobInfo, error) {
	cc := s.client.ServiceClient().NewContainerClient(name)
	pager := cc.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Include: container.ListBlobsInclude{Copy: true}})
	var found []blobInfo
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, it := range page.Segment.BlobItems {
			if b, ok := committedBlob(it); ok {
				b.url = blobURL(cc.URL(), b.name)
				found = append(found, b)
			}
		}
	}
	return found, nil
}

// committedBlob describes a listed blob; it reports false for an item
// without a name or eTag and for a copy still pending (not committed yet).
func committedBlob(it *container.BlobItem) (blobInfo, bool) {
	if it.Name == nil || it.Properties == nil || it.Properties.ETag == nil {
		return blobInfo{}, false
	}
	p := it.Properties
	b := blobInfo{name: *it.Name, etag: etags.Normalize(string(*p.ETag)), blobType: "BlockBlob", api: "PutBlob"}
	if p.ContentType != nil {
		b.contentType = *p.ContentType
	}
	if p.ContentLength != nil {
		b.length = *p.ContentLength
	}
	if p.BlobType != nil {
		b.blobType = string(*p.BlobType)
	}
	switch {
	case p.CopyID != nil && p.CopyStatus != nil && string(*p.CopyStatus) == "success":
		b.api = "CopyBlob"
	case p.CopyID != nil:
		return blobInfo{}, false
	case b.length > 256<<20:
		b.api = "PutBlockList" // larger than one Put Blob: SDK uploads in blocks
	}
	return b, true
}

// publish compares a container's listing with the cursor: a new or changed
// eTag creates one event per matching subscription (unless skip), and a
// blob that is gone is forgotten, so a re-upload is a new blob.
func (s *Server) publish(name string, found []blobInfo, skip bool) {
	now := time.Now().UTC()
	var newPending []*pending
	s.mu.Lock()
	present := make(map[string]bool, len(found))
	for _, b := range found {
		key := name + "/" + b.name
		present[key] = true
		if s.st.Seen[key] == b.etag {
			continue
		}
		s.st.Seen[key] = b.etag
		if skip {
			continue
		}
		s.st.Sequencer++
		ev := s.blobCreated(name, b, s.st.Sequencer, now)
		for _, sub := range s.opts.Subscriptions {
			if !sub.matches(ev.Subject) {
				continue
			}
			p := &pending{ID: newUUID(), Subscription: sub.Name, Event: render(ev, sub.Schema), Published: now}
			s.st.Outbox[p.ID] = p
			newPending = append(newPending, p)
			s.stats.Published++
		}
	}
	prefix := name + "/"
	for key := range s.st.Seen {
		if strings.HasPrefix(key, prefix) && !present[key] {
			delete(s.st.Seen, key)
		}
	}
	for _, p := range newPending {
		s.queues[p.Subscription].push(p)
	}
	s.mu.Unlock()
	if len(newPending) > 0 || skip {
		s.markDirty()
	}
	for _, p := range newPending {
		s.log.Debug("eventgrid: published", "subscription", p.Subscription, "id", p.ID)
	}
}

// blobURL escapes each path segment but keeps the slashes, like the url
// field of real events.
func blobURL(containerURL, name string) string {
	segs := strings.Split(name, "/")
	for i, seg := range segs {
		segs[i] = url.PathEscape(seg)
	}
	return strings.TrimSuffix(containerURL, "/") + "/" + strings.Join(segs, "/")
}
