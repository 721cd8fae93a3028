package handlers

import (
	"context"
	"math/rand/v2"
	"sync/atomic"

	"github.com/ffpipe/ffpipe/internal/records"
)

// expirePrefixes are the parts of the records Sweep expires, one per run.
var expirePrefixes = records.ExpirePrefixes()

// expireCursor picks the next part; it starts at random so that several
// instances do not all begin with the same one.
type expireCursor struct{ next atomic.Uint64 }

func newExpireCursor() *expireCursor {
	c := &expireCursor{}
	c.next.Store(rand.Uint64N(uint64(len(expirePrefixes))))
	return c
}

func (c *expireCursor) take() string {
	return expirePrefixes[(c.next.Add(1)-1)%uint64(len(expirePrefixes))]
}

// expire deletes the records of one key prefix that left the retention
// window (FFPIPE_RECORD_RETENTION): each run lists a 256th of the records,
// whatever their number, and every record is looked at once every 256
// runs. A failure is logged and the part is tried again on its next turn:
// old records waiting a little longer harm nothing.
func (a *app) expire(ctx context.Context) {
	prefix := a.expireAt.take()
	n, err := a.d.Records.Expire(ctx, prefix)
	switch {
	case err != nil:
		a.log.Warn("sweep: expire records", "prefix", prefix, "err", err)
	case n > 0:
		a.log.Info("sweep: expired records past the retention", "prefix", prefix, "deleted", n, "retention", a.cfg.RecordRetention)
	}
}
