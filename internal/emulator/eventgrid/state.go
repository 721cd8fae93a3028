package eventgrid

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/ffpipe/ffpipe/internal/fsutil"
)

// state is the persisted cursor.
type state struct {
	// Seen maps "container/blob" to the last eTag an event was created for.
	Seen      map[string]string   `json:"seen"`
	Sequencer uint64              `json:"sequencer"`
	Outbox    map[string]*pending `json:"outbox"` // by delivery id
}

// pending is one event awaiting delivery to one subscription.
type pending struct {
	ID           string          `json:"id"`
	Subscription string          `json:"subscription"`
	Event        json.RawMessage `json:"event"` // rendered in the subscription's schema
	Attempts     int             `json:"attempts"`
	Published    time.Time       `json:"published"`
}

func (s *Server) statePath() string {
	if s.opts.DataDir == "" {
		return ""
	}
	return filepath.Join(s.opts.DataDir, "state.json")
}

// load reads the cursor; it reports whether there was none.
func (s *Server) load() (bool, error) {
	s.st = state{Seen: map[string]string{}, Outbox: map[string]*pending{}}
	p := s.statePath()
	if p == "" {
		return true, nil
	}
	raw, err := os.ReadFile(p)
	if os.IsNotExist(err) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("eventgrid: read state: %w", err)
	}
	if err := json.Unmarshal(raw, &s.st); err != nil {
		return false, fmt.Errorf("eventgrid: parse state %s: %w", p, err)
	}
	if s.st.Seen == nil {
		s.st.Seen = map[string]string{}
	}
	if s.st.Outbox == nil {
		s.st.Outbox = map[string]*pending{}
	}
	// A damaged or hand-edited cursor: an entry without an event cannot be
	// delivered (a null one crashed Start), and delivery removes an entry
	// by its id, so the key must be it.
	for id, p := range s.st.Outbox {
		if p == nil || len(p.Event) == 0 {
			delete(s.st.Outbox, id)
			continue
		}
		p.ID = id
	}
	return false, nil
}

func (s *Server) markDirty() {
	select {
	case s.dirty <- struct{}{}:
	default:
	}
}

// flushLoop writes the cursor whenever it changed; writes coalesce.
func (s *Server) flushLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			s.flush()
			return
		case <-s.dirty:
			s.flush()
		}
	}
}

func (s *Server) flush() {
	p := s.statePath()
	if p == "" {
		return
	}
	s.mu.Lock()
	raw, err := json.Marshal(&s.st)
	s.mu.Unlock()
	if err == nil {
		err = fsutil.WriteFileAtomic(p, raw)
	}
	if err != nil {
		s.log.Error("eventgrid: save state", "err", err)
	}
}
