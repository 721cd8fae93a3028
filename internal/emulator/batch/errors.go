package batch

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/ffpipe/ffpipe/internal/secret"
)

// Sentinels returned by the Go API of the stand-in.
var (
	// ErrClosed is returned when the server is used after Close.
	ErrClosed = errors.New("batch emulator closed")
	// ErrStarted is returned by a second Start.
	ErrStarted = errors.New("batch emulator already started")
)

// apiError is an OData error reply: HTTP status, Batch error code, message and
// detail values (PropertyName, Reason, ...).
type apiError struct {
	status int
	code   string
	msg    string
	values []keyValue
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s: %s", e.status, e.code, e.msg) }

func newErr(status int, code, msg string, kv ...string) *apiError {
	e := &apiError{status: status, code: code, msg: msg}
	for i := 0; i+1 < len(kv); i += 2 {
		e.values = append(e.values, keyValue{Key: kv[i], Value: kv[i+1]})
	}
	return e
}

func errBadProperty(name, value, reason string) *apiError {
	return newErr(http.StatusBadRequest, "InvalidPropertyValue",
		"The value provided for one of the properties in the request body is invalid.",
		"PropertyName", name, "PropertyValue", value, "Reason", reason)
}

func errMissingProperty(name string) *apiError {
	return newErr(http.StatusBadRequest, "MissingRequiredProperty",
		"A required property was not specified in the request body.", "PropertyName", name)
}

// errUnsupported refuses a property that is valid in the Batch API but that
// the stand-in does not model, by name.
func errUnsupported(name, reason string) *apiError {
	return newErr(http.StatusBadRequest, "UnsupportedProperty",
		"A property specified in the request body is valid in Azure Batch but not supported by the local Batch stand-in.",
		"PropertyName", name, "Reason", reason)
}

func errBadBody(reason string) *apiError {
	return newErr(http.StatusBadRequest, "InvalidRequestBody",
		"The specified Request Body is not syntactically valid.", "Reason", reason)
}

func errBadQuery(name, value, reason string) *apiError {
	return newErr(http.StatusBadRequest, "InvalidQueryParameterValue",
		"Value for one of the query parameters specified in the request URI is invalid.",
		"QueryParameterName", name, "QueryParameterValue", value, "Reason", reason)
}

var (
	errPoolNotFound = newErr(http.StatusNotFound, "PoolNotFound", "The specified pool does not exist.")
	errJobNotFound  = newErr(http.StatusNotFound, "JobNotFound", "The specified job does not exist.")
	errTaskNotFound = newErr(http.StatusNotFound, "TaskNotFound", "The specified task does not exist.")
	errNodeNotFound = newErr(http.StatusNotFound, "NodeNotFound", "The specified node does not exist.")
	errFileNotFound = newErr(http.StatusNotFound, "FileNotFound", "The specified file does not exist.")
	errPoolExists   = newErr(http.StatusConflict, "PoolExists", "The specified pool already exists.")
	errJobExists    = newErr(http.StatusConflict, "JobExists", "The specified job already exists.")
	errTaskExists   = newErr(http.StatusConflict, "TaskExists", "The specified task already exists.")
	errJobCompleted = newErr(http.StatusConflict, "JobCompleted", "The specified job is already in a completed state.")
	errCondition    = newErr(http.StatusPreconditionFailed, "ConditionNotMet", "The condition specified using HTTP conditional header(s) is not met.")
)

// redact hides SAS signatures in URLs and error texts.
func redact(s string) string { return secret.Redact(s) }
