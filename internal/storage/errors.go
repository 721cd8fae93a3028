package storage

import (
	"errors"
	"net/http"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
)

var (
	// ErrNotFound: the blob (or its container) does not exist.
	ErrNotFound = errors.New("blob not found")
	// ErrConditionNotMet: an If-Match precondition failed (the blob changed).
	ErrConditionNotMet = errors.New("blob condition not met")
)

// classify maps SDK errors onto the package sentinels, keeping the cause.
func classify(err error) error {
	if err == nil {
		return nil
	}
	if bloberror.HasCode(err, bloberror.BlobNotFound, bloberror.ContainerNotFound, bloberror.ResourceNotFound) {
		return errors.Join(ErrNotFound, err)
	}
	if bloberror.HasCode(err, bloberror.ConditionNotMet, bloberror.SourceConditionNotMet, bloberror.TargetConditionNotMet, bloberror.BlobAlreadyExists) {
		return errors.Join(ErrConditionNotMet, err)
	}
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		switch re.StatusCode {
		case http.StatusNotFound:
			return errors.Join(ErrNotFound, err)
		case http.StatusPreconditionFailed:
			return errors.Join(ErrConditionNotMet, err)
		}
	}
	return err
}

// Transient reports whether err is worth retrying (throttling, server
// errors, timeouts, connection failures): anything that is not a 4xx answer.
func Transient(err error) bool {
	if err == nil {
		return false
	}
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode == http.StatusTooManyRequests || re.StatusCode == http.StatusRequestTimeout || re.StatusCode >= 500
	}
	return !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrConditionNotMet)
}
