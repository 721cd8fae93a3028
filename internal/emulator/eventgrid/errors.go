package eventgrid

import "errors"

var (
	// ErrConfig reports invalid Options.
	ErrConfig = errors.New("eventgrid: invalid configuration")
	// ErrClosed is returned by Start after Close.
	ErrClosed = errors.New("eventgrid: closed")
)
