// Package storage is ffpipe's view of Blob Storage (azblob): blob
// properties, conditional delete, copy to quarantine, small JSON blobs for
// records, stderr tails, listings, and narrowly scoped SAS URLs for tasks.
//
// Two credentials are supported. Locally (Azurite) the account key signs
// service SAS tokens. In Azure the managed identity obtains a user
// delegation key, which signs user delegation SAS tokens; no key is stored.
// Either way a task gets read-only access to exactly its input blob and
// create/write access to exactly its output blob, for a short time.
package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"

	"github.com/ffpipe/ffpipe/internal/config"
	"github.com/ffpipe/ffpipe/internal/etags"
	"github.com/ffpipe/ffpipe/internal/request"
	"github.com/ffpipe/ffpipe/internal/secret"
)

// Props are the facts ffpipe needs about a blob.
type Props struct {
	// ETag without quotes.
	ETag         string
	Size         int64
	LastModified time.Time
	ContentType  string
	Metadata     map[string]string
	// CopyStatus is empty, pending, success, aborted or failed.
	CopyStatus string
}

// Item is one entry of a listing.
type Item struct {
	Name         string
	ETag         string
	Size         int64
	LastModified time.Time
	Metadata     map[string]string
}

// Client is a blob service client for one account.
type Client struct {
	svc     *service.Client
	account string
	shared  *azblob.SharedKeyCredential // nil with a token credential
	now     func() time.Time

	mu     sync.Mutex
	udc    *service.UserDelegationCredential
	udcEnd time.Time
}

// Options tune a Client. The zero value is fine.
type Options struct {
	// Now replaces time.Now (tests).
	Now func() time.Time
	// ClientOptions are passed to the SDK.
	ClientOptions *azblob.ClientOptions
}

// NewFromConnectionString connects with an account key (Azurite locally).
func NewFromConnectionString(cs string, o Options) (*Client, error) {
	pc, err := config.ParseStorageConnectionString(cs)
	if err != nil {
		return nil, err
	}
	cred, err := azblob.NewSharedKeyCredential(pc.AccountName, pc.AccountKey)
	if err != nil {
		return nil, fmt.Errorf("storage shared key: %w", errors.New(secret.Redact(err.Error())))
	}
	svc, err := service.NewClientWithSharedKeyCredential(pc.BlobEndpoint+"/", cred, serviceOptions(o))
	if err != nil {
		return nil, fmt.Errorf("storage client: %w", err)
	}
	return &Client{svc: svc, account: pc.AccountName, shared: cred, now: nowFunc(o)}, nil
}

// NewWithCredential connects with an Entra token credential (the managed
// identity in Azure). SAS URLs are user delegation SAS.
func NewWithCredential(serviceURL string, cred azcore.TokenCredential, o Options) (*Client, error) {
	svc, err := service.NewClient(strings.TrimRight(serviceURL, "/")+"/", cred, serviceOptions(o))
	if err != nil {
		return nil, fmt.Errorf("storage client: %w", err)
	}
	return &Client{svc: svc, account: config.AccountFromBlobURL(serviceURL), now: nowFunc(o)}, nil
}

func serviceOptions(o Options) *service.ClientOptions {
	if o.ClientOptions == nil {
		return nil
	}
	so := service.ClientOptions(*o.ClientOptions)
	return &so
}

func nowFunc(o Options) func() time.Time {
	if o.Now != nil {
		return o.Now
	}
	return time.Now
}

// Account is the storage account name.
func (c *Client) Account() string { return c.account }

// URL is the blob service URL (with a trailing slash).
func (c *Client) URL() string { return c.svc.URL() }

// BlobURL is the plain URL of a blob, without any SAS.
func (c *Client) BlobURL(cont, name string) string {
	return c.svc.NewContainerClient(cont).NewBlobClient(name).URL()
}

// ContainerURL is the plain URL of a container.
func (c *Client) ContainerURL(cont string) string { return c.svc.NewContainerClient(cont).URL() }

func (c *Client) blob(cont, name string) *blob.Client {
	return c.svc.NewContainerClient(cont).NewBlobClient(name)
}

func quoteETag(e string) *azcore.ETag {
	q := azcore.ETag(etags.Quote(e))
	return &q
}

// EnsureContainer creates a container if it does not exist.
func (c *Client) EnsureContainer(ctx context.Context, name string) error {
	_, err := c.svc.CreateContainer(ctx, name, nil)
	if err != nil && !bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
		return fmt.Errorf("create container %s: %w", name, classify(err))
	}
	return nil
}

// Properties returns a blob's properties, ErrNotFound if it is missing.
func (c *Client) Properties(ctx context.Context, cont, name string) (Props, error) {
	r, err := c.blob(cont, name).GetProperties(ctx, nil)
	if err != nil {
		return Props{}, fmt.Errorf("get properties %s/%s: %w", cont, name, classify(err))
	}
	p := Props{Metadata: map[string]string{}}
	if r.ETag != nil {
		p.ETag = etags.Normalize(string(*r.ETag))
	}
	if r.ContentLength != nil {
		p.Size = *r.ContentLength
	}
	if r.LastModified != nil {
		p.LastModified = *r.LastModified
	}
	if r.ContentType != nil {
		p.ContentType = *r.ContentType
	}
	if r.CopyStatus != nil {
		p.CopyStatus = strings.ToLower(string(*r.CopyStatus))
	}
	for k, v := range r.Metadata {
		if v != nil {
			p.Metadata[strings.ToLower(k)] = *v
		}
	}
	return p, nil
}

// DeleteIfMatch deletes a blob only if its eTag still is etag (If-Match).
// A blob that is already gone returns ErrNotFound; a changed one
// ErrConditionNotMet. Snapshots are deleted with it.
func (c *Client) DeleteIfMatch(ctx context.Context, cont, name, etag string) error {
	_, err := c.blob(cont, name).Delete(ctx, &blob.DeleteOptions{
		DeleteSnapshots:  to.Ptr(blob.DeleteSnapshotsOptionTypeInclude),
		AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfMatch: quoteETag(etag)}},
	})
	err = classify(err)
	if errors.Is(err, ErrConditionNotMet) {
		// Azurite (and HTTP semantics) answer 412 for If-Match on a missing
		// blob; report that as ErrNotFound so callers can treat it as done.
		if _, perr := c.Properties(ctx, cont, name); errors.Is(perr, ErrNotFound) {
			err = errors.Join(ErrNotFound, err)
		}
	}
	if err != nil {
		return fmt.Errorf("delete %s/%s if-match %s: %w", cont, name, etags.Normalize(etag), err)
	}
	return nil
}

// Delete removes a blob unconditionally; a missing blob is not an error.
func (c *Client) Delete(ctx context.Context, cont, name string) error {
	_, err := c.blob(cont, name).Delete(ctx, nil)
	if err = classify(err); err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("delete %s/%s: %w", cont, name, err)
	}
	return nil
}

// Copy copies src to dst inside the account (server side) if src still has
// srcETag, and waits until the copy has finished or ctx ends. The source is
// read through a short-lived read SAS, which works with both credentials.
func (c *Client) Copy(ctx context.Context, srcCont, srcName, srcETag, dstCont, dstName string) error {
	src, err := c.ReadURL(ctx, srcCont, srcName, 15*time.Minute)
	if err != nil {
		return err
	}
	opts := &blob.StartCopyFromURLOptions{}
	if srcETag != "" {
		opts.SourceModifiedAccessConditions = &blob.SourceModifiedAccessConditions{SourceIfMatch: quoteETag(srcETag)}
	}
	dst := c.blob(dstCont, dstName)
	r, err := dst.StartCopyFromURL(ctx, src, opts)
	if err != nil {
		return fmt.Errorf("copy %s/%s to %s/%s: %w", srcCont, srcName, dstCont, dstName, classify(err))
	}
	status := ""
	if r.CopyStatus != nil {
		status = strings.ToLower(string(*r.CopyStatus))
	}
	for delay := 100 * time.Millisecond; status == "pending"; delay = min(2*delay, 5*time.Second) {
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("copy %s/%s to %s/%s: %w", srcCont, srcName, dstCont, dstName, ctx.Err())
		case <-t.C:
		}
		p, err := c.Properties(ctx, dstCont, dstName)
		if err != nil {
			return fmt.Errorf("copy %s/%s to %s/%s: %w", srcCont, srcName, dstCont, dstName, err)
		}
		status = p.CopyStatus
	}
	if status != "" && status != "success" {
		return fmt.Errorf("copy %s/%s to %s/%s: copy status %s", srcCont, srcName, dstCont, dstName, status)
	}
	return nil
}

// Move copies src to dst and then deletes src if it still has srcETag. Each
// step is idempotent: after a crash, calling Move again finishes the job
// (a missing source whose copy exists counts as moved).
func (c *Client) Move(ctx context.Context, srcCont, srcName, srcETag, dstCont, dstName string) error {
	err := c.Copy(ctx, srcCont, srcName, srcETag, dstCont, dstName)
	if errors.Is(err, ErrNotFound) {
		if _, perr := c.Properties(ctx, dstCont, dstName); perr == nil {
			return nil // moved before
		}
		return err
	}
	if err != nil {
		return err
	}
	if err := c.DeleteIfMatch(ctx, srcCont, srcName, srcETag); err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	return nil
}

// Put uploads a small blob in one request, replacing any existing one.
func (c *Client) Put(ctx context.Context, cont, name string, data []byte, contentType string, metadata map[string]string) error {
	return c.put(ctx, cont, name, data, contentType, metadata, nil)
}

// PutIf is Put with optimistic concurrency: it replaces the blob only if its
// eTag still is ifMatch, or, with ifMatch "", creates it only if it does not
// exist. A lost race returns ErrConditionNotMet.
func (c *Client) PutIf(ctx context.Context, cont, name string, data []byte, contentType string, metadata map[string]string, ifMatch string) error {
	mac := &blob.ModifiedAccessConditions{}
	if ifMatch == "" {
		mac.IfNoneMatch = to.Ptr(azcore.ETagAny)
	} else {
		mac.IfMatch = quoteETag(ifMatch)
	}
	return c.put(ctx, cont, name, data, contentType, metadata, &blob.AccessConditions{ModifiedAccessConditions: mac})
}

func (c *Client) put(ctx context.Context, cont, name string, data []byte, contentType string, metadata map[string]string, ac *blob.AccessConditions) error {
	md := make(map[string]*string, len(metadata))
	for k, v := range metadata {
		md[k] = to.Ptr(v)
	}
	bb := c.svc.NewContainerClient(cont).NewBlockBlobClient(name)
	_, err := bb.Upload(ctx, nopCloser{bytes.NewReader(data)}, &blockblob.UploadOptions{
		HTTPHeaders:      &blob.HTTPHeaders{BlobContentType: to.Ptr(contentType)},
		Metadata:         md,
		AccessConditions: ac,
	})
	if err != nil {
		return fmt.Errorf("put %s/%s: %w", cont, name, classify(err))
	}
	return nil
}

// UploadFile streams a local file into a block blob (in blocks, in
// parallel, so any size works) and returns the new blob's eTag without quotes.
func (c *Client) UploadFile(ctx context.Context, cont, name string, f *os.File, contentType string, metadata map[string]string) (string, error) {
	bb := c.svc.NewContainerClient(cont).NewBlockBlobClient(name)
	var md map[string]*string
	for k, v := range metadata {
		if md == nil {
			md = map[string]*string{}
		}
		md[k] = to.Ptr(v)
	}
	// The metadata is committed with the blob (Put Block List), so it is
	// there when BlobCreated fires.
	resp, err := bb.UploadFile(ctx, f, &blockblob.UploadFileOptions{
		HTTPHeaders: &blob.HTTPHeaders{BlobContentType: to.Ptr(contentType)},
		Metadata:    md,
	})
	if err != nil {
		return "", fmt.Errorf("upload %s/%s: %w", cont, name, classify(err))
	}
	if resp.ETag == nil {
		return "", fmt.Errorf("upload %s/%s: no eTag in the response", cont, name)
	}
	return etags.Normalize(string(*resp.ETag)), nil
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

// Get downloads a whole (small) blob.
func (c *Client) Get(ctx context.Context, cont, name string) ([]byte, error) {
	b, _, err := c.GetWithETag(ctx, cont, name)
	return b, err
}

// GetWithETag downloads a whole (small) blob and returns its eTag, for a
// later PutIf.
func (c *Client) GetWithETag(ctx context.Context, cont, name string) ([]byte, string, error) {
	r, err := c.blob(cont, name).DownloadStream(ctx, nil)
	if err != nil {
		return nil, "", fmt.Errorf("get %s/%s: %w", cont, name, classify(err))
	}
	defer r.Body.Close()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, "", fmt.Errorf("get %s/%s: %w", cont, name, err)
	}
	etag := ""
	if r.ETag != nil {
		etag = etags.Normalize(string(*r.ETag))
	}
	return b, etag, nil
}

// Tail returns at most the last n bytes of a blob. It asks for the first
// n bytes, whose answer gives the blob's size (Content-Range): a blob of at
// most n bytes (a task's result file) costs one request, a longer one a
// second request for its last n bytes.
func (c *Client) Tail(ctx context.Context, cont, name string, n int64) ([]byte, error) {
	if n <= 0 {
		return nil, nil
	}
	b, size, err := c.readRange(ctx, cont, name, 0, n)
	switch {
	case bloberror.HasCode(err, bloberror.InvalidRange):
		// Only a blob with no byte at offset 0 answers 416 here: an
		// empty one (docs/platform.md#a-ranged-read-of-an-empty-blob-answers-416).
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("tail %s/%s: %w", cont, name, classify(err))
	case size <= n:
		return b, nil
	}
	if b, _, err = c.readRange(ctx, cont, name, size-n, n); err != nil {
		return nil, fmt.Errorf("tail %s/%s: %w", cont, name, classify(err))
	}
	return b, nil
}

// readRange reads at most count bytes from off and returns them with the
// blob's whole size (from Content-Range; a server that ignored the range
// sent the whole blob, whose last count bytes are kept).
func (c *Client) readRange(ctx context.Context, cont, name string, off, count int64) ([]byte, int64, error) {
	r, err := c.blob(cont, name).DownloadStream(ctx, &blob.DownloadStreamOptions{Range: blob.HTTPRange{Offset: off, Count: count}})
	if err != nil {
		return nil, 0, err
	}
	defer r.Body.Close()
	if r.ContentRange == nil {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			return nil, 0, err
		}
		return b[max(int64(len(b))-count, 0):], int64(len(b)), nil
	}
	size, err := rangeSize(*r.ContentRange)
	if err != nil {
		return nil, 0, err
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, count))
	return b, size, err
}

// rangeSize is the complete length of a Content-Range ("bytes 0-99/1234").
func rangeSize(cr string) (int64, error) {
	_, total, ok := strings.Cut(cr, "/")
	size, err := strconv.ParseInt(total, 10, 64)
	if !ok || err != nil || size < 0 {
		return 0, fmt.Errorf("unreadable Content-Range %q", cr)
	}
	return size, nil
}

// List calls fn for each blob under prefix (with metadata) until fn returns
// false. A missing container lists nothing.
func (c *Client) List(ctx context.Context, cont, prefix string, fn func(Item) bool) error {
	opts := &container.ListBlobsFlatOptions{Include: container.ListBlobsInclude{Metadata: true}}
	if prefix != "" {
		opts.Prefix = to.Ptr(prefix)
	}
	pager := c.svc.NewContainerClient(cont).NewListBlobsFlatPager(opts)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			if err = classify(err); errors.Is(err, ErrNotFound) {
				return nil
			}
			return fmt.Errorf("list %s: %w", cont, err)
		}
		for _, b := range page.Segment.BlobItems {
			if b == nil || b.Name == nil {
				continue
			}
			it := Item{Name: *b.Name, Metadata: map[string]string{}}
			if p := b.Properties; p != nil {
				if p.ETag != nil {
					it.ETag = etags.Normalize(string(*p.ETag))
				}
				if p.ContentLength != nil {
					it.Size = *p.ContentLength
				}
				if p.LastModified != nil {
					it.LastModified = *p.LastModified
				}
			}
			for k, v := range b.Metadata {
				if v != nil {
					it.Metadata[strings.ToLower(k)] = *v
				}
			}
			if !fn(it) {
				return nil
			}
		}
	}
	return nil
}

// ReadURL is the blob's URL with a SAS that allows reading exactly that
// blob for ttl.
func (c *Client) ReadURL(ctx context.Context, cont, name string, ttl time.Duration) (string, error) {
	q, err := c.sign(ctx, cont, name, sas.BlobPermissions{Read: true}, ttl)
	if err != nil {
		return "", err
	}
	return c.BlobURL(cont, name) + "?" + q, nil
}

// WriteURL is the blob's URL with a SAS that allows creating and writing
// exactly that blob for ttl.
func (c *Client) WriteURL(ctx context.Context, cont, name string, ttl time.Duration) (string, error) {
	q, err := c.sign(ctx, cont, name, sas.BlobPermissions{Create: true, Write: true}, ttl)
	if err != nil {
		return "", err
	}
	return c.BlobURL(cont, name) + "?" + q, nil
}

// ContainerWriteURL is the container's URL carrying a SAS that allows
// creating and writing exactly one blob, name, in it. Batch output files
// take a container URL and append the blob path; the signature only
// validates for that path.
func (c *Client) ContainerWriteURL(ctx context.Context, cont, name string, ttl time.Duration) (string, error) {
	q, err := c.sign(ctx, cont, name, sas.BlobPermissions{Create: true, Write: true}, ttl)
	if err != nil {
		return "", err
	}
	return c.ContainerURL(cont) + "?" + q, nil
}

// skew backdates SAS start times against clock differences.
const skew = 5 * time.Minute

// MaxSASLifetime caps every SAS: a user delegation key lives at most 7 days.
const MaxSASLifetime = 7 * 24 * time.Hour

func (c *Client) sign(ctx context.Context, cont, name string, perm sas.BlobPermissions, ttl time.Duration) (string, error) {
	if ttl <= 0 || ttl > MaxSASLifetime {
		return "", fmt.Errorf("sign %s/%s: ttl %v outside (0, %v]", cont, name, ttl, MaxSASLifetime)
	}
	// A SAS is only ever built for a valid container and blob name: anything
	// else could move the query into the path or a fragment.
	if err := request.ValidateContainer(cont); err != nil {
		return "", fmt.Errorf("sign: %w", err)
	}
	if name != "" {
		if err := request.ValidateBlob(name); err != nil {
			return "", fmt.Errorf("sign: %w", err)
		}
	}
	now := c.now().UTC()
	// An empty BlobName signs the container (sr=c), a set one the blob (sr=b).
	v := sas.BlobSignatureValues{
		Protocol:      sas.ProtocolHTTPS,
		StartTime:     now.Add(-skew),
		ExpiryTime:    now.Add(ttl),
		Permissions:   perm.String(),
		ContainerName: cont,
		BlobName:      name,
	}
	if u, err := url.Parse(c.svc.URL()); err == nil && u.Scheme == "http" {
		v.Protocol = sas.ProtocolHTTPSandHTTP // Azurite and other local endpoints
	}
	var q sas.QueryParameters
	var err error
	if c.shared != nil {
		q, err = v.SignWithSharedKey(c.shared)
	} else {
		var udc *service.UserDelegationCredential
		udc, err = c.delegation(ctx, now, ttl)
		if err == nil {
			q, err = v.SignWithUserDelegation(udc)
		}
	}
	if err != nil {
		return "", fmt.Errorf("sign %s/%s: %w", cont, name, err)
	}
	return q.Encode(), nil
}

// maxDelegation is the longest user delegation key Azure issues.
const maxDelegation = 7 * 24 * time.Hour

// delegation returns a cached user delegation key that outlives now+ttl,
// fetching a new one (valid for a day, at most 7) when needed.
func (c *Client) delegation(ctx context.Context, now time.Time, ttl time.Duration) (*service.UserDelegationCredential, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.udc != nil && c.udcEnd.After(now.Add(ttl+skew)) {
		return c.udc, nil
	}
	life := min(max(24*time.Hour, 2*ttl+skew), maxDelegation)
	end := now.Add(life)
	udc, err := c.svc.GetUserDelegationCredential(ctx, service.KeyInfo{
		Start:  to.Ptr(now.Add(-skew).Format(sas.TimeFormat)),
		Expiry: to.Ptr(end.Format(sas.TimeFormat)),
	}, nil)
	if err != nil {
		return nil, fmt.Errorf("get user delegation key: %w", classify(err))
	}
	c.udc, c.udcEnd = udc, end
	return udc, nil
}
