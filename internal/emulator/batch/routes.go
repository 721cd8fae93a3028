package batch

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// routes is the route table: every Batch operation the stand-in models, as
// an http.ServeMux pattern. Anything else reaches the catch-all, which
// answers 501 NotImplemented with an OData error body and logs it. The
// middleware around the table runs in this order: envelope (request-id,
// DataServiceVersion, client-request-id, panics), authentication, then the
// api-version and query check.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	op := func(pattern string, fn func(c *reqCtx)) {
		mux.Handle(pattern, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c := reqFrom(r)
			c.r = r // the mux set the path values on r
			fn(c)
		}))
	}
	path := func(c *reqCtx, name string) string { return c.r.PathValue(name) }

	// Pools. A GET pattern also matches HEAD (pool exists).
	op("GET /pools", s.listPools)
	op("POST /pools", s.createPool)
	op("GET /pools/{pool}", func(c *reqCtx) { s.getPool(c, path(c, "pool")) })
	op("DELETE /pools/{pool}", func(c *reqCtx) { s.deletePool(c, path(c, "pool")) })
	op("POST /pools/{pool}/resize", func(c *reqCtx) { s.resizePool(c, path(c, "pool")) })
	op("POST /pools/{pool}/enableautoscale", func(c *reqCtx) { s.enableAutoScale(c, path(c, "pool")) })
	op("POST /pools/{pool}/disableautoscale", func(c *reqCtx) { s.disableAutoScale(c, path(c, "pool")) })
	op("POST /pools/{pool}/evaluateautoscale", func(c *reqCtx) { s.evaluateAutoScale(c, path(c, "pool")) })
	op("GET /pools/{pool}/nodes", func(c *reqCtx) { s.listNodes(c, path(c, "pool")) })
	op("GET /pools/{pool}/nodes/{node}", func(c *reqCtx) { s.getNode(c, path(c, "pool"), path(c, "node")) })

	// Jobs.
	op("GET /jobs", s.listJobs)
	op("POST /jobs", s.createJob)
	op("GET /jobs/{job}", func(c *reqCtx) { s.getJob(c, path(c, "job")) })
	op("PATCH /jobs/{job}", func(c *reqCtx) { s.updateJob(c, path(c, "job")) })
	op("DELETE /jobs/{job}", func(c *reqCtx) { s.deleteJob(c, path(c, "job")) })
	op("POST /jobs/{job}/terminate", func(c *reqCtx) { s.terminateJob(c, path(c, "job")) })
	op("GET /jobs/{job}/taskcounts", func(c *reqCtx) { s.taskCounts(c, path(c, "job")) })

	// Tasks.
	op("POST /jobs/{job}/addtaskcollection", func(c *reqCtx) { s.addTaskCollection(c, path(c, "job")) })
	op("POST /jobs/{job}/tasks", func(c *reqCtx) { s.createTask(c, path(c, "job")) })
	op("GET /jobs/{job}/tasks", func(c *reqCtx) { s.listTasks(c, path(c, "job")) })
	op("GET /jobs/{job}/tasks/{task}", func(c *reqCtx) { s.getTask(c, path(c, "job"), path(c, "task")) })
	op("PUT /jobs/{job}/tasks/{task}", func(c *reqCtx) { s.replaceTask(c, path(c, "job"), path(c, "task")) })
	op("DELETE /jobs/{job}/tasks/{task}", func(c *reqCtx) { s.deleteTask(c, path(c, "job"), path(c, "task")) })
	op("POST /jobs/{job}/tasks/{task}/terminate", func(c *reqCtx) { s.terminateTask(c, path(c, "job"), path(c, "task")) })
	op("POST /jobs/{job}/tasks/{task}/reactivate", func(c *reqCtx) { s.reactivateTask(c, path(c, "job"), path(c, "task")) })
	op("GET /jobs/{job}/tasks/{task}/files", func(c *reqCtx) { s.listTaskFiles(c, path(c, "job"), path(c, "task")) })
	op("GET /jobs/{job}/tasks/{task}/files/{file...}", func(c *reqCtx) {
		if path(c, "file") == "" {
			s.listTaskFiles(c, path(c, "job"), path(c, "task"))
			return
		}
		s.getTaskFile(c, path(c, "job"), path(c, "task"), path(c, "file"))
	})

	// Account.
	op("GET /supportedimages", s.listSupportedImages)
	op("GET /nodecounts", s.listPoolNodeCounts)

	op("/", s.notImplemented)
	return s.envelope(s.authenticate(s.requireAPIVersion(mux)))
}

// notImplemented is the catch-all: an operation the stand-in does not model.
func (s *Server) notImplemented(c *reqCtx) {
	s.log.Warn("batch emulator: operation not implemented", "method", c.r.Method, "path", c.r.URL.Path)
	c.fail(newErr(http.StatusNotImplemented, "NotImplemented",
		fmt.Sprintf("The local Batch stand-in does not implement %s %s.", c.r.Method, c.r.URL.Path)))
}

type reqCtxKey struct{}

// reqFrom returns the reqCtx that envelope attached to r.
func reqFrom(r *http.Request) *reqCtx { return r.Context().Value(reqCtxKey{}).(*reqCtx) }

// envelope starts every reply: a new request-id, DataServiceVersion, the
// client-request-id echo when return-client-request-id is true, and a 500 InternalError instead of a panic.
func (s *Server) envelope(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := &reqCtx{s: s, w: w, r: r, rid: newGUID()}
		h := w.Header()
		h.Set("request-id", c.rid)
		h.Set("DataServiceVersion", "3.0")
		h.Set("X-Content-Type-Options", "nosniff")
		if crid := r.Header.Get("client-request-id"); crid != "" && strings.EqualFold(r.Header.Get("return-client-request-id"), "true") {
			h.Set("client-request-id", crid)
		}
		defer func() {
			if v := recover(); v != nil {
				s.log.Error("batch emulator panic", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(v))
				c.fail(newErr(http.StatusInternalServerError, "InternalError", "The server encountered an internal error."))
			}
		}()
		r = r.WithContext(context.WithValue(r.Context(), reqCtxKey{}, c))
		c.r = r
		next.ServeHTTP(w, r)
	})
}

// authenticate answers 401/403 AuthenticationFailed unless the request
// carries the configured bearer token or a valid Shared Key signature.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if aerr := s.authError(r); aerr != nil {
			reqFrom(r).fail(aerr)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// requireAPIVersion parses the query once for the handlers and answers 400
// MissingRequiredQueryParameter without an api-version (any value is
// accepted).
func (s *Server) requireAPIVersion(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := reqFrom(r)
		q, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil {
			c.fail(errBadQuery("query", redact(r.URL.RawQuery), err.Error()))
			return
		}
		c.q = q
		if q.Get("api-version") == "" {
			c.fail(newErr(http.StatusBadRequest, "MissingRequiredQueryParameter",
				"A query parameter that's mandatory for this request is not specified.", "QueryParameterName", "api-version"))
			return
		}
		next.ServeHTTP(w, r)
	})
}
