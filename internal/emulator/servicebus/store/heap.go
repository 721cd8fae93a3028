package store

// seqHeap is a min-heap of sequence numbers: the available messages of one
// subqueue. Sends push increasing numbers, so a push usually costs O(1).
type seqHeap []int64

func (h *seqHeap) push(v int64) {
	*h = append(*h, v)
	s := *h
	i := len(s) - 1
	for i > 0 {
		p := (i - 1) / 2
		if s[p] <= s[i] {
			break
		}
		s[p], s[i] = s[i], s[p]
		i = p
	}
}

func (h *seqHeap) pop() (int64, bool) {
	s := *h
	if len(s) == 0 {
		return 0, false
	}
	top := s[0]
	n := len(s) - 1
	s[0] = s[n]
	s = s[:n]
	i := 0
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && s[r] < s[l] {
			m = r
		}
		if s[i] <= s[m] {
			break
		}
		s[i], s[m] = s[m], s[i]
		i = m
	}
	*h = s
	return top, true
}

type eventKind uint8

const (
	evLock     eventKind = iota + 1 // a lock may expire
	evSchedule                      // a scheduled message may become active
	evExpire                        // an active message may expire (TTL)
)

// event is a point in time at which a message may change state. Events are
// never removed early; when one fires it is checked against the message's
// current state, so stale events are harmless.
type event struct {
	at   int64 // unix nanoseconds
	seq  int64
	kind eventKind
}

func (a event) less(b event) bool {
	if a.at != b.at {
		return a.at < b.at
	}
	return a.seq < b.seq
}

type eventHeap []event

func (h *eventHeap) push(e event) {
	*h = append(*h, e)
	h.up(len(*h) - 1)
}

func (h eventHeap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !h[i].less(h[p]) {
			break
		}
		h[p], h[i] = h[i], h[p]
		i = p
	}
}

func (h eventHeap) down(i int) {
	n := len(h)
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && h[r].less(h[l]) {
			m = r
		}
		if !h[m].less(h[i]) {
			break
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}

func (h *eventHeap) pop() event {
	s := *h
	top := s[0]
	n := len(s) - 1
	s[0] = s[n]
	s = s[:n]
	s.down(0)
	*h = s
	return top
}

// filter keeps the events for which keep returns true and restores the
// heap order.
func (h *eventHeap) filter(keep func(event) bool) {
	s := (*h)[:0]
	for _, e := range *h {
		if keep(e) {
			s = append(s, e)
		}
	}
	for i := len(s) - 1; i >= 0; i-- {
		s.down(i)
	}
	*h = s
}
