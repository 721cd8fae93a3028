package store

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

const (
	logName     = "servicebus.log"
	compactName = "servicebus.log.compact"
	// syncInterval bounds how long records that nobody waits for
	// (settlements) stay written but not synced.
	syncInterval = 10 * time.Millisecond
)

// batch is one group commit: every record appended while it was current
// is written and synced together.
type batch struct {
	done chan struct{}
	err  error
	sync bool // someone waits for durability: fsync before done
}

func newBatch() *batch { return &batch{done: make(chan struct{})} }

// failed reports whether the batch is done with an error.
func (b *batch) failed() bool {
	select {
	case <-b.done:
		return b.err != nil
	default:
		return false
	}
}

// wal is the append-only log with a single writer goroutine. Appenders
// (holding their queue's lock, so records are in the order of the state
// changes) copy records into buf; the writer swaps buf out, writes it with
// one write and one fsync, and completes the batch.
type wal struct {
	s    *Store
	dir  string
	path string
	f    *os.File
	lock *os.File // dir/LOCK, held while open

	mu     sync.Mutex
	buf    []byte
	cur    *batch
	err    error // sticky: after a write error the log refuses changes
	closed bool
	size   int64 // bytes in the file
	spare  []byte

	dirty bool // written but not synced (writer goroutine only)

	kick    chan struct{}
	force   chan chan error // compaction requests (Store.Compact)
	stop    chan struct{}
	stopped chan struct{}
	closing sync.Once

	// compactions counts finished compactions (tests read it).
	compactions int
}

func openWAL(s *Store, dir string) (*wal, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	_ = os.Remove(filepath.Join(dir, compactName)) // an unfinished compaction
	w := &wal{
		lock:    lock,
		s:       s,
		dir:     dir,
		path:    filepath.Join(dir, logName),
		cur:     newBatch(),
		kick:    make(chan struct{}, 1),
		force:   make(chan chan error),
		stop:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	f, err := os.OpenFile(w.path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		w.unlock()
		return nil, err
	}
	w.f = f
	if err := w.recover(); err != nil {
		f.Close()
		w.unlock()
		return nil, err
	}
	go w.run()
	return w, nil
}

// recover replays the log into the store's queues and truncates a torn
// tail.
func (w *wal) recover() error {
	data, err := io.ReadAll(w.f)
	if err != nil {
		return fmt.Errorf("read log: %w", err)
	}
	if len(data) < len(logMagic) {
		if string(data) != logMagic[:len(data)] {
			return fmt.Errorf("%s is not a store log", w.path)
		}
		// New, or torn while the header was written.
		if err := w.f.Truncate(0); err != nil {
			return err
		}
		if _, err := w.f.WriteAt([]byte(logMagic), 0); err != nil {
			return err
		}
		if err := w.f.Sync(); err != nil {
			return err
		}
		if err := syncDir(w.dir); err != nil {
			return err
		}
		w.size = int64(len(logMagic))
		_, err := w.f.Seek(w.size, io.SeekStart)
		return err
	}
	if string(data[:len(logMagic)]) != logMagic {
		return fmt.Errorf("%s is not a store log", w.path)
	}
	off := len(logMagic)
	records, unknown := 0, 0
	for off < len(data) {
		payload, n, err := readFrame(data[off:])
		if err != nil {
			break
		}
		recs, err := decodeFrame(payload)
		if err != nil {
			break
		}
		for i := range recs {
			if !w.s.apply(&recs[i]) {
				unknown++
			}
		}
		records += len(recs)
		off += n
	}
	if off < len(data) {
		w.s.log.Warn("store log: dropping torn or corrupt tail", "path", w.path, "offset", off, "bytes", len(data)-off)
		if err := w.f.Truncate(int64(off)); err != nil {
			return fmt.Errorf("truncate torn tail: %w", err)
		}
		if err := w.f.Sync(); err != nil {
			return err
		}
	}
	if unknown > 0 {
		w.s.log.Warn("store log: records for queues not in the configuration were ignored", "records", unknown)
	}
	w.size = int64(off)
	if _, err := w.f.Seek(w.size, io.SeekStart); err != nil {
		return err
	}
	for _, q := range w.s.order {
		q.rebuild()
	}
	for _, t := range w.s.topicOrder {
		t.rebuild()
	}
	w.s.log.Info("store log recovered", "path", w.path, "records", records, "bytes", off)
	return nil
}

// appendOp adds one operation's records as one frame to the current batch
// and returns the batch.
func (w *wal) appendOp(sync bool, recs []byte) *batch {
	var hdr [frameHeader]byte
	binary.LittleEndian.PutUint32(hdr[:], uint32(len(recs)))
	binary.LittleEndian.PutUint32(hdr[4:], crc32.Checksum(recs, castagnoli))
	return w.append(sync, hdr[:], recs)
}

// append adds bytes to the current batch and returns it. sync asks for
// the batch to be fsynced before it completes.
func (w *wal) append(sync bool, parts ...[]byte) *batch {
	w.mu.Lock()
	if w.err != nil || w.closed {
		err := w.err
		if err == nil {
			err = ErrClosed
		}
		b := &batch{done: make(chan struct{}), err: err}
		close(b.done)
		w.mu.Unlock()
		return b
	}
	for _, p := range parts {
		w.buf = append(w.buf, p...)
	}
	b := w.cur
	b.sync = b.sync || sync
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
	return b
}

// barrier returns a batch that completes after everything appended so far.
func (w *wal) barrier() *batch { return w.append(true) }

func (w *wal) wait(ctx context.Context, b *batch) error {
	select {
	case <-b.done:
		return b.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (w *wal) run() {
	defer close(w.stopped)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	armed := false
	for {
		if w.dirty && !armed {
			timer.Reset(syncInterval)
			armed = true
		}
		select {
		case <-timer.C:
			armed = false
			w.syncDirty()
		case <-w.kick:
			w.flush()
			if w.shouldCompact() {
				if err := w.compact(); err != nil {
					w.s.log.Error("store log: compaction failed", "err", err)
				}
			}
		case reply := <-w.force:
			w.flush()
			reply <- w.compact()
		case <-w.stop:
			w.flush()
			w.syncDirty()
			return
		}
	}
}

// flush writes and syncs the current batch.
func (w *wal) flush() {
	w.mu.Lock()
	data, b := w.buf, w.cur
	w.buf, w.cur = w.spare[:0], newBatch()
	failed := w.err
	w.mu.Unlock()
	var err error
	if failed != nil {
		err = failed
	} else {
		if len(data) > 0 {
			if _, err = w.f.Write(data); err == nil {
				w.dirty = true
			}
		}
		if err == nil && b.sync && w.dirty {
			if err = w.f.Sync(); err == nil {
				w.dirty = false
			}
		}
		if err != nil {
			err = fmt.Errorf("write store log: %w", err)
			w.fail(err)
		}
	}
	w.mu.Lock()
	w.size += int64(len(data))
	w.spare = data[:0]
	if cap(w.spare) > 4<<20 {
		w.spare = nil
	}
	w.mu.Unlock()
	b.err = err
	close(b.done)
}

// syncDirty fsyncs records that were written without a sync.
func (w *wal) syncDirty() {
	if !w.dirty {
		return
	}
	w.mu.Lock()
	failed := w.err
	w.mu.Unlock()
	if failed != nil {
		return
	}
	if err := w.f.Sync(); err != nil {
		w.fail(fmt.Errorf("sync store log: %w", err))
		return
	}
	w.dirty = false
}

func (w *wal) fail(err error) {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.mu.Unlock()
	w.s.log.Error("store log failed; refusing further changes", "err", err)
}

func (w *wal) shouldCompact() bool {
	w.mu.Lock()
	size, failed := w.size, w.err != nil
	w.mu.Unlock()
	if failed || size < w.s.opts.CompactMinBytes {
		return false
	}
	var live int64
	for _, q := range w.s.order {
		live += q.live.Load()
	}
	return size >= 4*live
}

// qsnap is the state of one queue or topic copied for a compaction.
type qsnap struct {
	key     string
	lastSeq int64
	entries []entry
	dups    []dupRec
	dupSeq  []int64
}

// snapshot copies the state of every topic and queue and takes the
// pending log records and their batch, with every lock held (topics, then
// queues, then the log: the lock order).
func (w *wal) snapshot() ([]qsnap, []byte, *batch) {
	for _, t := range w.s.topicOrder {
		t.mu.Lock()
	}
	for _, q := range w.s.order {
		q.mu.Lock()
	}
	w.mu.Lock()
	snaps := make([]qsnap, 0, len(w.s.order)+len(w.s.topicOrder))
	for _, t := range w.s.topicOrder {
		ts := qsnap{key: t.key, lastSeq: t.lastSeq}
		ts.dups, ts.dupSeq = t.dd.snapshot()
		snaps = append(snaps, ts)
	}
	for _, q := range w.s.order {
		qs := qsnap{key: q.key, lastSeq: q.lastSeq, entries: make([]entry, 0, len(q.msgs))}
		for _, e := range q.msgs {
			qs.entries = append(qs.entries, *e)
		}
		qs.dups, qs.dupSeq = q.dd.snapshot()
		snaps = append(snaps, qs)
	}
	pending, b := w.buf, w.cur
	w.buf, w.cur = nil, newBatch()
	w.mu.Unlock()
	for i := len(w.s.order) - 1; i >= 0; i-- {
		w.s.order[i].mu.Unlock()
	}
	for i := len(w.s.topicOrder) - 1; i >= 0; i-- {
		w.s.topicOrder[i].mu.Unlock()
	}
	return snaps, pending, b
}

// compact rewrites the log as a snapshot of the current state. With every
// queue lock held it copies the state and takes the pending records; then,
// without locks, it writes snapshot + pending records to a new file, syncs
// it and renames it over the log. The pending records' effects are already
// in the snapshot, and replaying them again is harmless because every
// record sets an absolute state. A crash before the rename leaves the old
// log, which lacks only the pending (not yet acknowledged) records.
func (w *wal) compact() error {
	w.mu.Lock()
	failed := w.err
	w.mu.Unlock()
	if failed != nil {
		return failed
	}
	snaps, pending, b := w.snapshot()
	err := w.replace(snaps, pending)
	if err != nil {
		// Keep the old log; the pending records still belong to it.
		w.keepPending(pending, b)
	}
	close(b.done)
	return err
}

// replace writes snaps and the pending records to a new file, syncs it and
// renames it over the log. On error the old log stays the log and the new
// file is removed.
func (w *wal) replace(snaps []qsnap, pending []byte) error {
	tmp := filepath.Join(w.dir, compactName)
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	size, err := writeSnapshot(f, snaps, pending)
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = os.Rename(tmp, w.path)
	}
	if err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	// From here on the new file is the log, whatever happens.
	if err := syncDir(w.dir); err != nil {
		w.s.log.Warn("store log: sync directory after compaction", "err", err)
	}
	old := w.f
	w.f = f
	w.dirty = false
	old.Close()
	w.mu.Lock()
	w.size = size
	w.compactions++
	w.mu.Unlock()
	w.s.log.Info("store log compacted", "path", w.path, "bytes", size)
	return nil
}

// writeSnapshot writes the log magic, then per queue or topic its last
// sequence number, its messages in sequence order and its duplicate
// detection history, then pending, a MiB at a time; it returns the bytes
// written.
func writeSnapshot(f io.Writer, snaps []qsnap, pending []byte) (int64, error) {
	buf := []byte(logMagic)
	var rec []byte
	var size int64
	write := func(force bool) error {
		if len(buf) >= 1<<20 || force && len(buf) > 0 {
			if _, err := f.Write(buf); err != nil {
				return err
			}
			size += int64(len(buf))
			buf = buf[:0]
		}
		return nil
	}
	for _, qs := range snaps {
		rec = appendSeq(rec[:0], qs.key, qs.lastSeq)
		buf = appendFrame(buf, rec)
		sort.Slice(qs.entries, func(i, j int) bool { return qs.entries[i].seq < qs.entries[j].seq })
		for i := range qs.entries {
			e := &qs.entries[i]
			e.locked = false
			rec = appendPut(rec[:0], qs.key, e)
			buf = appendFrame(buf, rec)
			if err := write(false); err != nil {
				return size, err
			}
		}
		for i, d := range qs.dups {
			rec = appendDup(rec[:0], qs.key, qs.dupSeq[i], d.id, d.at)
			buf = appendFrame(buf, rec)
			if err := write(false); err != nil {
				return size, err
			}
		}
	}
	buf = append(buf, pending...)
	err := write(true)
	return size, err
}

// keepPending appends the pending records of a failed compaction to the
// old log, which they belong to; if that fails too, the log is failed
// and so is their batch.
func (w *wal) keepPending(pending []byte, b *batch) {
	if len(pending) == 0 {
		return
	}
	_, err := w.f.Write(pending)
	if err == nil {
		err = w.f.Sync()
	}
	if err != nil {
		w.fail(err)
		b.err = err
	}
	w.mu.Lock()
	w.size += int64(len(pending))
	w.mu.Unlock()
}

func (w *wal) close() error {
	var err error
	w.closing.Do(func() {
		w.mu.Lock()
		w.closed = true
		w.mu.Unlock()
		close(w.stop)
		<-w.stopped
		w.mu.Lock()
		err = w.err
		w.mu.Unlock()
		if cerr := w.f.Close(); err == nil {
			err = cerr
		}
		w.unlock()
	})
	return err
}

func (w *wal) unlock() {
	if w.lock != nil {
		w.lock.Close() // releases the flock
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
