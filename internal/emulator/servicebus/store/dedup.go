package store

import (
	"sort"
	"time"
)

type dupEntry struct {
	seq int64
	at  int64
}

type dupRec struct {
	id string
	at int64
}

// dedup is the duplicate-detection history of one queue or topic: the
// message ids accepted within the window, oldest first. The owner's mutex
// guards it.
type dedup struct {
	window time.Duration
	ids    map[string]dupEntry
	fifo   []dupRec
	head   int
}

func newDedup(window time.Duration) dedup {
	return dedup{window: window, ids: map[string]dupEntry{}}
}

// lookup reports whether id was accepted within the window before now,
// and the sequence number it was given.
func (d *dedup) lookup(id string, now int64) (int64, bool) {
	e, ok := d.ids[id]
	if ok && now < e.at+int64(d.window) {
		return e.seq, true
	}
	return 0, false
}

// remember records id as accepted at at with sequence number seq. During
// recovery an older record never replaces a newer one.
func (d *dedup) remember(id string, seq, at int64) {
	if e, ok := d.ids[id]; ok && e.at > at {
		return
	}
	d.ids[id] = dupEntry{seq: seq, at: at}
	d.fifo = append(d.fifo, dupRec{id: id, at: at})
}

// pending reports whether prune may have work to do.
func (d *dedup) pending() bool { return d.head < len(d.fifo) }

// prune forgets the ids whose window ended by now.
func (d *dedup) prune(now int64) {
	w := int64(d.window)
	for d.head < len(d.fifo) && d.fifo[d.head].at+w <= now {
		r := d.fifo[d.head]
		if e, ok := d.ids[r.id]; ok && e.at == r.at {
			delete(d.ids, r.id)
		}
		d.fifo[d.head] = dupRec{}
		d.head++
	}
	if d.head > 1024 && d.head*2 > len(d.fifo) {
		n := copy(d.fifo, d.fifo[d.head:])
		d.fifo = d.fifo[:n]
		d.head = 0
	}
}

// sortFIFO restores time order after recovery replayed records out of
// order (a compaction writes them by id).
func (d *dedup) sortFIFO() {
	f := d.fifo[d.head:]
	sort.SliceStable(f, func(i, j int) bool { return f[i].at < f[j].at })
}

// snapshot returns the live entries (for compaction).
func (d *dedup) snapshot() ([]dupRec, []int64) {
	recs := make([]dupRec, 0, len(d.ids))
	seqs := make([]int64, 0, len(d.ids))
	for id, e := range d.ids {
		recs = append(recs, dupRec{id: id, at: e.at})
		seqs = append(seqs, e.seq)
	}
	return recs, seqs
}
