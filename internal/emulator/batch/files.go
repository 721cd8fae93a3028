package batch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
)

var downloadClient = &http.Client{Timeout: 30 * time.Minute}

func storageOptions() azcore.ClientOptions {
	return azcore.ClientOptions{Retry: policy.RetryOptions{MaxRetries: 2, RetryDelay: 100 * time.Millisecond, MaxRetryDelay: time.Second}}
}

// safeRel checks a resource file path: relative, no "..", stays in wd.
func safeRel(p string) error {
	if p == "" {
		return nil
	}
	if filepath.IsAbs(p) || strings.HasPrefix(p, "/") || strings.HasPrefix(p, "\\") {
		return errors.New("must be relative to the task working directory")
	}
	for _, part := range strings.FieldsFunc(p, func(r rune) bool { return r == '/' || r == '\\' }) {
		if part == ".." {
			return errors.New("must not contain '..'")
		}
	}
	return nil
}

func preprocessingError(code, msg string, rf resourceFile) *failureInfo {
	src := rf.HTTPURL
	if src == "" {
		src = rf.StorageContainerURL
	}
	return &failureInfo{Category: "usererror", Code: code, Message: redact(msg),
		Details: []nameValue{{Name: "FilePath", Value: rf.FilePath}, {Name: "Url", Value: redact(src)}}}
}

// downloadResourceFiles fetches every resource file into wd. A failure is a
// pre-processing error: the task completes as failed (usererror), no retry.
func (s *Server) downloadResourceFiles(ctx context.Context, wd string, files []resourceFile) *failureInfo {
	for _, rf := range files {
		if rf.IdentityReference != nil && rf.IdentityReference.ResourceID != "" {
			return preprocessingError("IdentityReferenceNotSupported",
				"resource file identityReference cannot be honoured by the local Batch stand-in (no managed identities); use a SAS URL", rf)
		}
		if err := safeRel(rf.FilePath); err != nil {
			return preprocessingError("ResourceFileCreateFailed", "filePath "+err.Error(), rf)
		}
		switch {
		case rf.HTTPURL != "":
			if err := s.fetch(ctx, rf.HTTPURL, filepath.Join(wd, filepath.FromSlash(rf.FilePath)), rf.FileMode); err != nil {
				return downloadFailure(err, rf)
			}
		case rf.StorageContainerURL != "":
			if fi := s.fetchContainer(ctx, wd, rf); fi != nil {
				return fi
			}
		default:
			return preprocessingError("AutoStorageNotSupported",
				"autoStorageContainerName cannot be honoured by the local Batch stand-in (no linked storage account); use storageContainerUrl with a SAS", rf)
		}
	}
	return nil
}

type httpStatusError struct {
	status int
	url    string
}

func (e *httpStatusError) Error() string {
	return fmt.Sprintf("GET %s: HTTP %d", redact(e.url), e.status)
}

func downloadFailure(err error, rf resourceFile) *failureInfo {
	var se *httpStatusError
	code := "BlobDownloadMiscError"
	if errors.As(err, &se) {
		switch se.status {
		case http.StatusNotFound:
			code = "BlobNotFound"
		case http.StatusForbidden, http.StatusUnauthorized:
			code = "BlobAccessDenied"
		}
	}
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		switch re.StatusCode {
		case http.StatusNotFound:
			code = "BlobNotFound"
		case http.StatusForbidden, http.StatusUnauthorized:
			code = "BlobAccessDenied"
		}
		err = fmt.Errorf("%s (HTTP %d)", re.ErrorCode, re.StatusCode)
	}
	return preprocessingError(code, "resource file download failed: "+err.Error(), rf)
}

func (s *Server) fetch(ctx context.Context, src, dst, mode string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src, nil)
	if err != nil {
		return fmt.Errorf("bad url: %s", redact(err.Error()))
	}
	req.Header.Set("x-ms-version", "2021-12-02")
	resp, err := downloadClient.Do(req)
	if err != nil {
		return errors.New(redact(err.Error()))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		return &httpStatusError{status: resp.StatusCode, url: src}
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	perm := os.FileMode(0o770)
	if mode != "" {
		if m, err := strconv.ParseUint(mode, 8, 32); err == nil {
			perm = os.FileMode(m) & os.ModePerm
		}
	}
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return errors.New(redact(err.Error()))
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Chmod(dst, perm)
}

// fetchContainer downloads every blob under blobPrefix, keeping the blob
// directory structure under filePath.
func (s *Server) fetchContainer(ctx context.Context, wd string, rf resourceFile) *failureInfo {
	cc, err := container.NewClientWithNoCredential(rf.StorageContainerURL, &container.ClientOptions{ClientOptions: storageOptions()})
	if err != nil {
		return preprocessingError("BlobDownloadMiscError", "bad storageContainerUrl: "+err.Error(), rf)
	}
	opts := &container.ListBlobsFlatOptions{}
	if rf.BlobPrefix != "" {
		opts.Prefix = &rf.BlobPrefix
	}
	pager := cc.NewListBlobsFlatPager(opts)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return downloadFailure(err, rf)
		}
		for _, item := range page.Segment.BlobItems {
			if item.Name == nil {
				continue
			}
			name := *item.Name
			if safeRel(name) != nil {
				return preprocessingError("ResourceFileCreateFailed", fmt.Sprintf("blob name %q escapes the working directory", name), rf)
			}
			dst := filepath.Join(wd, filepath.FromSlash(rf.FilePath), filepath.FromSlash(name))
			if err := s.fetch(ctx, blobURL(rf.StorageContainerURL, name), dst, rf.FileMode); err != nil {
				return downloadFailure(err, rf)
			}
		}
	}
	return nil
}

// blobURL inserts a blob name into a container URL, keeping its query (SAS).
func blobURL(containerURL, name string) string {
	u, err := url.Parse(containerURL)
	if err != nil {
		return containerURL
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/" + name
	u.RawPath = ""
	return u.String()
}

type outputMatch struct {
	file string // absolute path
	blob string // blob name
}

func hasWildcard(s string) bool { return strings.ContainsAny(s, "*?[") }

// matchOutputs resolves an output filePattern (relative to wd, may start
// with ../) to files and their blob names under destPath.
func matchOutputs(wd, pattern, destPath string) ([]outputMatch, error) {
	full := pattern
	if !filepath.IsAbs(full) {
		full = filepath.Join(wd, filepath.FromSlash(pattern))
	}
	full = filepath.Clean(full)
	segs := strings.Split(full, string(filepath.Separator))
	first := -1
	for i, sg := range segs {
		if hasWildcard(sg) {
			first = i
			break
		}
	}
	destPath = strings.Trim(destPath, "/")
	if first < 0 {
		fi, err := os.Stat(full)
		if err != nil || !fi.Mode().IsRegular() {
			return nil, nil // a pattern matching nothing is fine
		}
		name := destPath
		if name == "" {
			name = filepath.Base(full)
		}
		return []outputMatch{{file: full, blob: name}}, nil
	}
	base := string(filepath.Separator) + filepath.Join(segs[:first]...)
	rest := segs[first:]
	var out []outputMatch
	err := filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == base {
				return fs.SkipAll
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(base, p)
		if err != nil {
			return nil
		}
		if matchSegs(rest, strings.Split(rel, string(filepath.Separator))) {
			name := filepath.ToSlash(rel)
			if destPath != "" {
				name = destPath + "/" + name
			}
			out = append(out, outputMatch{file: p, blob: name})
		}
		return nil
	})
	return out, err
}

// matchSegs matches path segments with ** (any number of directories), and
// path.Match per segment; names starting with "." need an explicit dot.
func matchSegs(pat, name []string) bool {
	if len(pat) == 0 {
		return len(name) == 0
	}
	if pat[0] == "**" {
		for i := 0; i <= len(name); i++ {
			if i > 0 && strings.HasPrefix(name[i-1], ".") {
				return false
			}
			if matchSegs(pat[1:], name[i:]) {
				return true
			}
		}
		return false
	}
	if len(name) == 0 {
		return false
	}
	if strings.HasPrefix(name[0], ".") && !strings.HasPrefix(pat[0], ".") {
		return false
	}
	ok, err := path.Match(pat[0], name[0])
	if err != nil || !ok {
		return false
	}
	return matchSegs(pat[1:], name[1:])
}

func uploadWanted(cond string, success bool) bool {
	switch strings.ToLower(cond) {
	case "tasksuccess":
		return success
	case "taskfailure":
		return !success
	default:
		return true
	}
}

// uploadOutputFiles uploads the outputs whose condition matches. The first
// failure is returned as a FileUpload* failureInfo (never retried).
func (s *Server) uploadOutputFiles(ctx context.Context, r *run, success bool) *failureInfo {
	if len(r.spec.OutputFiles) == 0 {
		return nil
	}
	wd := filepath.Join(r.taskDir, "wd")
	var logOut, logErr strings.Builder
	var fail *failureInfo
	for _, of := range r.spec.OutputFiles {
		cond := "taskcompletion"
		if of.UploadOptions != nil && of.UploadOptions.UploadCondition != "" {
			cond = of.UploadOptions.UploadCondition
		}
		if !uploadWanted(cond, success) || of.Destination == nil || of.Destination.Container == nil {
			continue
		}
		dest := of.Destination.Container
		if dest.IdentityReference != nil && dest.IdentityReference.ResourceID != "" {
			fail = &failureInfo{Category: "usererror", Code: "IdentityReferenceNotSupported",
				Message: "output file identityReference cannot be honoured by the local Batch stand-in (no managed identities); use a containerUrl with a SAS",
				Details: []nameValue{{Name: "FilePattern", Value: of.FilePattern}}}
			fmt.Fprintf(&logErr, "%s: %s\n", of.FilePattern, fail.Message)
			break
		}
		matches, err := matchOutputs(wd, of.FilePattern, dest.Path)
		if err != nil {
			fmt.Fprintf(&logErr, "%s: %v\n", of.FilePattern, err)
		}
		for _, m := range matches {
			if err := s.upload(ctx, dest, m); err != nil {
				code := "FileUploadError"
				if bloberror.HasCode(err, bloberror.ContainerNotFound) {
					code = "FileUploadContainerNotFound"
				}
				var re *azcore.ResponseError
				if errors.As(err, &re) {
					err = fmt.Errorf("%s (HTTP %d)", re.ErrorCode, re.StatusCode)
				}
				msg := redact(fmt.Sprintf("upload of %s to blob %q failed: %v", filepath.Base(m.file), m.blob, err))
				if len(msg) > 1024 {
					msg = msg[:1024]
				}
				fail = &failureInfo{Category: "usererror", Code: code, Message: msg,
					Details: []nameValue{{Name: "FilePattern", Value: of.FilePattern}, {Name: "BlobName", Value: m.blob}}}
				fmt.Fprintf(&logErr, "%s\n", msg)
				break
			}
			fmt.Fprintf(&logOut, "uploaded %s to %s\n", m.file, m.blob)
		}
		if fail != nil {
			break
		}
	}
	_ = os.WriteFile(filepath.Join(r.taskDir, "fileuploadout.txt"), []byte(logOut.String()), 0o644)
	_ = os.WriteFile(filepath.Join(r.taskDir, "fileuploaderr.txt"), []byte(logErr.String()), 0o644)
	if fail != nil {
		s.log.Warn("batch output upload failed", "job", r.jobID, "task", r.spec.ID, "code", fail.Code, "err", fail.Message)
	}
	return fail
}

func (s *Server) upload(ctx context.Context, dest *containerDestination, m outputMatch) error {
	bc, err := blockblob.NewClientWithNoCredential(blobURL(dest.ContainerURL, m.blob), &blockblob.ClientOptions{ClientOptions: storageOptions()})
	if err != nil {
		return err
	}
	f, err := os.Open(m.file)
	if err != nil {
		return err
	}
	defer f.Close()
	opts := &blockblob.UploadFileOptions{}
	var hh blob.HTTPHeaders
	set := false
	for _, h := range dest.UploadHeaders {
		if h.Value == nil {
			continue
		}
		v := *h.Value
		switch strings.ToLower(h.Name) {
		case "content-type":
			hh.BlobContentType, set = &v, true
		case "content-encoding":
			hh.BlobContentEncoding, set = &v, true
		case "content-language":
			hh.BlobContentLanguage, set = &v, true
		case "content-disposition":
			hh.BlobContentDisposition, set = &v, true
		case "cache-control":
			hh.BlobCacheControl, set = &v, true
		}
	}
	if set {
		opts.HTTPHeaders = &hh
	}
	_, err = bc.UploadFile(ctx, f, opts)
	return err
}
