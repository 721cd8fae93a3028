package batch

import (
	"net/http"
	"time"

	"github.com/ffpipe/ffpipe/internal/emulator/batch/odata"
)

// The REST handlers of pools, jobs and tasks share one shape: find the
// entity by id (ignoring case, as Batch does) or reply with its 404, apply
// the conditional headers, render with $select. The helpers below hold that
// shape; the handlers keep only what differs per entity.

// entityWire is the read model of a pool, job or task.
type entityWire interface {
	// version is what the conditional headers compare: ETag and
	// last-modified time.
	version() (etag string, lastModified time.Time)
	// dataServiceID is the DataServiceId header of a GET, "" for none.
	dataServiceID() string
}

func (w *poolWire) version() (string, time.Time) { return w.ETag, w.LastModified }
func (w *jobWire) version() (string, time.Time)  { return w.ETag, w.LastModified }
func (w *taskWire) version() (string, time.Time) { return w.ETag, w.LastModified }

func (w *poolWire) dataServiceID() string { return "" }
func (w *jobWire) dataServiceID() string  { return "" }
func (w *taskWire) dataServiceID() string { return w.URL }

// findPool, findJob and findTask run with s.mu held.
func (s *Server) findPool(id string) (*poolEntry, *apiError) {
	if p, ok := s.pools[lower(id)]; ok {
		return p, nil
	}
	return nil, errPoolNotFound
}

func (s *Server) findJob(id string) (*jobEntry, *apiError) {
	if j, ok := s.jobs[lower(id)]; ok {
		return j, nil
	}
	return nil, errJobNotFound
}

func (s *Server) findTask(jobID, taskID string) (*taskEntry, *apiError) {
	j, aerr := s.findJob(jobID)
	if aerr != nil {
		return nil, aerr
	}
	if t, ok := j.tasks[lower(taskID)]; ok {
		return t, nil
	}
	return nil, errTaskNotFound
}

// lockPool, lockJob and lockTask take s.mu and find the entity. When it is
// missing they release s.mu, reply with the 404 and return false.
func (s *Server) lockPool(c *reqCtx, id string) (*poolEntry, bool) {
	s.mu.Lock()
	p, aerr := s.findPool(id)
	return p, s.proceed(c, aerr)
}

func (s *Server) lockJob(c *reqCtx, id string) (*jobEntry, bool) {
	s.mu.Lock()
	j, aerr := s.findJob(id)
	return j, s.proceed(c, aerr)
}

func (s *Server) lockTask(c *reqCtx, jobID, taskID string) (*taskEntry, bool) {
	s.mu.Lock()
	t, aerr := s.findTask(jobID, taskID)
	return t, s.proceed(c, aerr)
}

// proceed reports whether aerr is nil; otherwise it releases s.mu and
// replies with aerr.
func (s *Server) proceed(c *reqCtx, aerr *apiError) bool {
	if aerr != nil {
		s.mu.Unlock()
		c.fail(aerr)
		return false
	}
	return true
}

// writable applies a write's conditional headers (412) to an entity found
// by lockPool, lockJob or lockTask. When they fail it releases s.mu; the
// reply is written.
func (s *Server) writable(c *reqCtx, w entityWire) bool {
	etag, lm := w.version()
	if !c.checkConditions(etag, lm, false) {
		s.mu.Unlock()
		return false
	}
	return true
}

// getEntity answers GET and HEAD of one entity: $select and $expand, find
// and render under s.mu, the conditional headers (304/412), ETag and
// Last-Modified. A HEAD gets the status alone, also for a missing entity.
func getEntity[E any, W any, PW interface {
	*W
	entityWire
}](s *Server, c *reqCtx, metadata string, find func() (E, *apiError), render func(E) PW) {
	var zero W
	sel, aerr := c.parseSelect(zero)
	if aerr == nil {
		aerr = c.checkExpand()
	}
	if aerr != nil {
		c.fail(aerr)
		return
	}
	head := c.r.Method == http.MethodHead
	s.mu.Lock()
	e, aerr := find()
	if aerr != nil {
		s.mu.Unlock()
		if head {
			c.w.WriteHeader(aerr.status)
			return
		}
		c.fail(aerr)
		return
	}
	w := render(e)
	body := marshalEntity(w, sel)
	s.mu.Unlock()
	etag, lm := w.version()
	if !c.checkConditions(etag, lm, true) {
		return
	}
	c.entityHeaders(etag, lm)
	if id := w.dataServiceID(); id != "" {
		c.w.Header().Set("DataServiceId", id)
	}
	if head {
		c.w.WriteHeader(http.StatusOK)
		return
	}
	c.writeJSON(http.StatusOK, metadata, body)
}

// listByKey answers a list of a small collection paged by key ($filter,
// $select, maxresults, $skiptoken). members runs with s.mu held and returns
// the collection or its parent's 404; item gives a member's key, filter
// getter and read model.
func listByKey[E any](s *Server, c *reqCtx, metadata string, schema odata.Schema, wire any,
	members func() ([]E, *apiError), item func(E) keyed) {
	lq, aerr := c.parseList(schema, wire)
	if aerr != nil {
		c.fail(aerr)
		return
	}
	s.mu.Lock()
	list, aerr := members()
	if !s.proceed(c, aerr) {
		return
	}
	items := make([]keyed, 0, len(list))
	for _, e := range list {
		items = append(items, item(e))
	}
	s.mu.Unlock()
	c.listKeyed(metadata, lq, items)
}
