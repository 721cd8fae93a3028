package batch

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
)

// record is one line of the state log. Kind is "pool", "job" or "task"; Op is
// "put" (full snapshot of the entity) or "del".
type record struct {
	Kind string          `json:"k"`
	Op   string          `json:"op"`
	Job  string          `json:"job,omitempty"` // job key, for tasks
	Key  string          `json:"key"`
	Seq  uint64          `json:"seq,omitempty"`
	Dir  string          `json:"dir,omitempty"` // task directory on disk
	V    json.RawMessage `json:"v,omitempty"`
}

const journalName = "state.jsonl"

// journal is an append-only log of records with group commit: writers enqueue
// encoded lines while holding the server lock (so the log order is the
// mutation order), and a single flusher writes and fsyncs whatever is pending,
// then wakes everyone waiting for those lines. Compaction rewrites the live
// state to a temporary file and renames it over the log.
type journal struct {
	path string

	mu       sync.Mutex
	cond     *sync.Cond
	f        *os.File
	buf      []byte
	enqueued uint64 // number of the last enqueued line
	durable  uint64 // number of the last durable line
	written  int64  // bytes in the current file
	err      error
	closed   bool
	done     chan struct{}
}

// readJournal returns the records of the log in dir (a truncated last line,
// from a crash mid-write, is ignored).
func readJournal(dir string) ([]record, error) {
	f, err := os.Open(filepath.Join(dir, journalName))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open state log: %w", err)
	}
	defer f.Close()
	var recs []record
	r := bufio.NewReaderSize(f, 1<<20)
	for {
		line, err := r.ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			// A line without its newline was cut by a crash: drop it.
			return recs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read state log: %w", err)
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		var rec record
		if err := json.Unmarshal(line, &rec); err != nil {
			return nil, fmt.Errorf("read state log: bad record: %w", err)
		}
		recs = append(recs, rec)
	}
}

// openJournal writes snapshot as the new log (atomically) and opens it for
// appending.
func openJournal(dir string, snapshot []record) (*journal, error) {
	j := &journal{path: filepath.Join(dir, journalName), done: make(chan struct{})}
	j.cond = sync.NewCond(&j.mu)
	if err := j.rewriteLocked(snapshot); err != nil {
		return nil, err
	}
	go j.flusher()
	return j, nil
}

func encodeRecords(recs []record) ([]byte, error) {
	var b []byte
	for i := range recs {
		var err error
		if b, err = recs[i].appendLine(b); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// appendLine appends rec as one line of the log. V is always the output of
// json.Marshal here (or a line read back from the log, which is that), so
// it is spliced in as is: json.Marshal would validate and re-compact every
// byte of a RawMessage, which for a task with its ~3 KB command line was a
// fifth of the stand-in's CPU while Dispatch adds tasks
// (docs/performance.md). The bytes are the same as json.Marshal's.
func (rec *record) appendLine(dst []byte) ([]byte, error) {
	head := *rec
	head.V = nil
	b, err := json.Marshal(&head)
	if err != nil {
		return dst, err
	}
	if len(rec.V) == 0 {
		dst = append(dst, b...)
	} else {
		dst = append(dst, b[:len(b)-1]...) // without the closing brace
		dst = append(dst, `,"v":`...)
		dst = append(dst, rec.V...)
		dst = append(dst, '}')
	}
	return append(dst, '\n'), nil
}

// rewriteLocked replaces the log with snapshot. Callers hold j.mu or own j.
func (j *journal) rewriteLocked(snapshot []record) error {
	data, err := encodeRecords(snapshot)
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	tmp := j.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write state: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync state: %w", err)
	}
	if err := os.Rename(tmp, j.path); err != nil {
		f.Close()
		return fmt.Errorf("rename state: %w", err)
	}
	if d, err := os.Open(filepath.Dir(j.path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	if j.f != nil {
		j.f.Close()
	}
	j.f = f
	j.written = int64(len(data))
	return nil
}

// enqueue appends one record; it returns the line number to wait for.
func (j *journal) enqueue(rec record) uint64 {
	if j == nil {
		return 0
	}
	line, err := rec.appendLine(nil)
	j.mu.Lock()
	defer j.mu.Unlock()
	if err != nil {
		j.err = fmt.Errorf("encode record: %w", err)
		j.cond.Broadcast()
		return j.enqueued
	}
	j.buf = append(j.buf, line...)
	j.enqueued++
	j.cond.Broadcast()
	return j.enqueued
}

// wait blocks until line n is durable.
func (j *journal) wait(n uint64) error {
	if j == nil {
		return nil
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	for j.durable < n && j.err == nil && !j.closed {
		j.cond.Wait()
	}
	if j.err != nil {
		return j.err
	}
	if j.durable < n {
		return ErrClosed
	}
	return nil
}

// compact replaces the log by snapshot, which must reflect every enqueued
// record. It is called with the server lock held.
func (j *journal) compact(snapshot []record) error {
	if j == nil {
		return nil
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return ErrClosed
	}
	if err := j.rewriteLocked(snapshot); err != nil {
		j.err = err
		j.cond.Broadcast()
		return err
	}
	j.buf = j.buf[:0]
	j.durable = j.enqueued
	j.cond.Broadcast()
	return nil
}

func (j *journal) flusher() {
	defer close(j.done)
	j.mu.Lock()
	defer j.mu.Unlock()
	for {
		for len(j.buf) == 0 && !j.closed {
			j.cond.Wait()
		}
		if len(j.buf) == 0 && j.closed {
			return
		}
		buf, upto, f := j.buf, j.enqueued, j.f
		j.buf = nil
		j.mu.Unlock()
		_, err := f.Write(buf)
		if err == nil {
			err = f.Sync()
		}
		j.mu.Lock()
		if err != nil && j.f == f {
			j.err = fmt.Errorf("append state log: %w", err)
		}
		if j.f == f {
			j.written += int64(len(buf))
		}
		if upto > j.durable {
			j.durable = upto
		}
		j.cond.Broadcast()
	}
}

// close flushes pending lines and closes the file.
func (j *journal) close() error {
	if j == nil {
		return nil
	}
	j.mu.Lock()
	j.closed = true
	j.cond.Broadcast()
	j.mu.Unlock()
	<-j.done
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f != nil {
		err := j.f.Close()
		j.f = nil
		return err
	}
	return nil
}
