package azurite

import (
	"bufio"
	"bytes"
	"context"
	"crypto/md5"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Seeding: Azurite 3.35's metadata store (LokiJS) looks every blob up by
// filtering the whole collection, and each write rebuilds part of an index,
// so writing N blobs through the API costs O(N²): 100,000 small blobs take
// hours (docs/performance.md, "Status at scale"). Seed writes them into a
// stopped Azurite's data directory instead: their bytes into one extent file
// and their documents into Azurite's databases through Azurite's own LokiJS
// (seed.js), so ids and indices are exactly what Azurite would make. After a
// restart Azurite serves them like any blob it wrote.

//go:embed seed.js
var seedScript []byte

// The files of Azurite's --location that Seed changes.
const (
	blobDBFile   = "__azurite_db_blob__.json"
	extentDBFile = "__azurite_db_blob_extent__.json"
	extentDir    = "__blobstorage__"
)

// SeedBlob is one block blob for Seed.
type SeedBlob struct {
	Name        string
	Body        []byte
	ContentType string
	Metadata    map[string]string
}

// Seed adds blobs to container in the data directory dir of an Azurite that
// has run there and is stopped now (Close saves its databases; a running
// one would overwrite what Seed writes). The container must exist and none
// of the blobs may: Seed only adds, and on any error changes nothing that
// Azurite reads. modified is every blob's creation and last-modified time.
func Seed(ctx context.Context, dir, container string, blobs []SeedBlob, modified time.Time) error {
	if len(blobs) == 0 {
		return nil
	}
	for _, f := range []string{blobDBFile, extentDBFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return fmt.Errorf("seed azurite: %w (start and Close Azurite on %s first)", err, dir)
		}
	}
	node, err := exec.LookPath("node")
	if err != nil {
		return fmt.Errorf("seed azurite: %w", err)
	}
	pkg, ok := FindInNodeModules("azurite")
	if !ok {
		return errors.New("seed azurite: node_modules/azurite not found; run `make deps` (npm ci)")
	}
	work, err := os.MkdirTemp(dir, "seed-")
	if err != nil {
		return fmt.Errorf("seed azurite: %w", err)
	}
	defer os.RemoveAll(work)

	extentID := uuid.NewString()
	extentPath := filepath.Join(dir, extentDir, extentID)
	docs := filepath.Join(work, "docs.jsonl")
	size, err := writeSeed(docs, extentPath, extentID, container, blobs, modified)
	if err != nil {
		_ = os.Remove(extentPath)
		return fmt.Errorf("seed azurite: %w", err)
	}
	extent, _ := json.Marshal(map[string]any{"id": extentID, "locationId": "Default", "path": extentID,
		"size": size, "lastModifiedInMS": modified.UnixMilli()})
	script := filepath.Join(work, "seed.js")
	if err := os.WriteFile(script, seedScript, 0o644); err != nil {
		return fmt.Errorf("seed azurite: %w", err)
	}
	cmd := exec.CommandContext(ctx, node, script, pkg, filepath.Join(dir, blobDBFile), filepath.Join(dir, extentDBFile), docs, string(extent))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		_ = os.Remove(extentPath)
		return fmt.Errorf("seed azurite: %s (%w)", firstLine(stderr.Bytes()), err)
	}
	return nil
}

// writeSeed writes the blobs' bytes to one extent file and their documents,
// one JSON object per line, to docsPath. It returns the extent's size.
func writeSeed(docsPath, extentPath, extentID, container string, blobs []SeedBlob, modified time.Time) (int64, error) {
	ext, err := os.OpenFile(extentPath, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return 0, err
	}
	defer ext.Close()
	df, err := os.Create(docsPath)
	if err != nil {
		return 0, err
	}
	defer df.Close()
	ew, dw := bufio.NewWriterSize(ext, 1<<20), bufio.NewWriterSize(df, 1<<20)
	enc := json.NewEncoder(dw)
	var off int64
	for i, b := range blobs {
		if b.Name == "" {
			return 0, fmt.Errorf("blob %d has no name", i)
		}
		if _, err := ew.Write(b.Body); err != nil {
			return 0, err
		}
		if err := enc.Encode(blobDoc(container, b, extentID, off, modified, i)); err != nil {
			return 0, err
		}
		off += int64(len(b.Body))
	}
	for _, w := range []*bufio.Writer{ew, dw} {
		if err := w.Flush(); err != nil {
			return 0, err
		}
	}
	if err := ext.Sync(); err != nil {
		return 0, err
	}
	return off, df.Close()
}

// blobDoc is Azurite's document for a committed block blob (the fields and
// formats Azurite 3.35 writes for a Put Blob, LokiBlobMetadataStore.createBlob).
func blobDoc(container string, b SeedBlob, extentID string, off int64, modified time.Time, i int) map[string]any {
	ts := modified.UTC().Format("2006-01-02T15:04:05.000Z")
	sum := md5.Sum(b.Body)
	md := b.Metadata
	if md == nil {
		md = map[string]string{}
	}
	ct := b.ContentType
	if ct == "" {
		ct = "application/octet-stream"
	}
	return map[string]any{
		"deleted": false, "metadata": md, "accountName": Account, "containerName": container, "name": b.Name,
		"properties": map[string]any{
			"creationTime": ts, "lastModified": ts,
			// Azurite's eTags are "0x" and 15 hex digits; these are unique per blob.
			"etag":          fmt.Sprintf("\"0x%07X%08X\"", modified.Unix()&0xFFFFFFF, i),
			"contentLength": len(b.Body), "contentType": ct,
			"contentMD5": map[string]any{"type": "Buffer", "data": bytesAsInts(sum[:])},
			"blobType":   "BlockBlob", "leaseStatus": "unlocked", "leaseState": "available",
			"serverEncrypted": true, "accessTier": "Hot", "accessTierInferred": true, "accessTierChangeTime": ts,
		},
		"snapshot": "", "isCommitted": true,
		"persistency": map[string]any{"id": extentID, "offset": off, "count": len(b.Body)},
	}
}

func bytesAsInts(b []byte) []int {
	out := make([]int, len(b))
	for i, v := range b {
		out[i] = int(v)
	}
	return out
}

// firstLine is the script's message (its first line: the rest is a trace).
func firstLine(b []byte) string {
	line, _, _ := strings.Cut(strings.TrimSpace(string(bytes.ToValidUTF8(b, nil))), "\n")
	return line
}
