package chaos

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ffpipe/ffpipe/internal/sleep"
)

// tcpProxy forwards 127.0.0.1:<port> to a target address and can drop
// every connection at once (a network fault between the function app and
// the Service Bus stand-in: the AMQP connections die, the broker lives).
type tcpProxy struct {
	ln     net.Listener
	target string
	log    *slog.Logger

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
	drops atomic.Int64
}

func newTCPProxy(target string, log *slog.Logger) (*tcpProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &tcpProxy{ln: ln, target: target, log: log, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

func (p *tcpProxy) port() int { return p.ln.Addr().(*net.TCPAddr).Port }

func (p *tcpProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

func (p *tcpProxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *tcpProxy) serve(c net.Conn) {
	defer p.wg.Done()
	d := net.Dialer{Timeout: 5 * time.Second}
	up, err := d.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	if !p.track(c, up) {
		c.Close()
		up.Close()
		return
	}
	var wg sync.WaitGroup
	wg.Add(2)
	pipe := func(dst, src net.Conn) {
		defer wg.Done()
		_, _ = io.Copy(dst, src)
		dst.Close()
		src.Close()
	}
	go pipe(up, c)
	go pipe(c, up)
	wg.Wait()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, up)
	p.mu.Unlock()
}

// drop closes every proxied connection; new ones are accepted.
func (p *tcpProxy) drop() int {
	p.mu.Lock()
	n := 0
	for c := range p.conns {
		c.Close()
		n++
	}
	p.mu.Unlock()
	p.drops.Add(1)
	return n / 2
}

func (p *tcpProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.wg.Wait()
}

// egProxy sits between the Event Grid stand-in and the host's webhook. It
// records every notification and, while faults are on, delivers some late
// (reordering them) and posts some again (duplicates), as Event Grid may.
type egProxy struct {
	srv    *http.Server
	ln     net.Listener
	target string // host webhook URL (without query)
	client *http.Client
	log    *slog.Logger

	mu       sync.Mutex
	rng      *rand.Rand
	faults   bool
	captured [][]byte // notification bodies
	query    string   // the webhook's query (functionName, code)
	wg       sync.WaitGroup
	ctx      context.Context
	cancel   context.CancelFunc

	dupProb, delayProb float64
	maxDelay           time.Duration

	duplicates, delayed, replayed, inflight atomic.Int64
}

func newEGProxy(seed uint64, log *slog.Logger) (*egProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &egProxy{ln: ln, log: log, client: &http.Client{Timeout: 30 * time.Second},
		rng: rand.New(rand.NewPCG(seed, 0xe6)), ctx: ctx, cancel: cancel,
		dupProb: 0.2, delayProb: 0.2, maxDelay: 3 * time.Second}
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	p.wg.Add(1)
	go func() { defer p.wg.Done(); _ = p.srv.Serve(ln) }()
	return p, nil
}

// endpoint maps the host's webhook URL to the proxy's.
func (p *egProxy) endpoint(webhook string) string {
	u, err := url.Parse(webhook)
	if err != nil {
		return webhook
	}
	p.mu.Lock()
	p.target = u.Scheme + "://" + u.Host + u.Path
	p.query = u.RawQuery
	p.mu.Unlock()
	return "http://" + p.ln.Addr().String() + u.Path + "?" + u.RawQuery
}

func (p *egProxy) setFaults(on bool) {
	p.mu.Lock()
	p.faults = on
	p.mu.Unlock()
}

func (p *egProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.inflight.Add(1)
	defer p.inflight.Add(-1)
	body, err := io.ReadAll(io.LimitReader(r.Body, 8<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	notification := r.Header.Get("aeg-event-type") == "Notification"
	var delay time.Duration
	dup := false
	p.mu.Lock()
	if notification {
		p.captured = append(p.captured, body)
		if p.faults {
			if p.rng.Float64() < p.delayProb {
				delay = time.Duration(p.rng.Int64N(int64(p.maxDelay)))
			}
			dup = p.rng.Float64() < p.dupProb
		}
	}
	p.mu.Unlock()
	if delay > 0 {
		// Hold this delivery while others pass: reordering.
		p.delayed.Add(1)
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	status, respBody, err := p.forward(r.Context(), r.Method, r.URL.RawQuery, r.Header, body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	if dup {
		p.duplicates.Add(1)
		p.later(body, time.Duration(p.int64n(int64(5*time.Second))))
	}
	w.WriteHeader(status)
	_, _ = w.Write(respBody)
}

func (p *egProxy) int64n(n int64) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rng.Int64N(n)
}

// later re-posts a notification after d (a duplicate delivery).
func (p *egProxy) later(body []byte, d time.Duration) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.inflight.Add(1)
		defer p.inflight.Add(-1)
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-p.ctx.Done():
			return
		}
		p.mu.Lock()
		q := p.query
		p.mu.Unlock()
		h := http.Header{"Content-Type": {"application/json"}, "Aeg-Event-Type": {"Notification"}}
		// Best effort, like a duplicate: a failure here is not retried.
		_, _, _ = p.forward(p.ctx, http.MethodPost, q, h, body)
	}()
}

// replay re-posts a random fraction of every captured notification now:
// late duplicates arriving after the work is long done.
func (p *egProxy) replay(ctx context.Context, fraction float64) int {
	p.mu.Lock()
	var pick [][]byte
	for _, b := range p.captured {
		if p.rng.Float64() < fraction {
			pick = append(pick, b)
		}
	}
	p.rng.Shuffle(len(pick), func(i, j int) { pick[i], pick[j] = pick[j], pick[i] })
	q := p.query
	p.mu.Unlock()
	n := 0
	h := http.Header{"Content-Type": {"application/json"}, "Aeg-Event-Type": {"Notification"}}
	for _, b := range pick {
		// Retry like Event Grid until the host takes it (bounded).
		for attempt := 0; attempt < 20; attempt++ {
			status, _, err := p.forward(ctx, http.MethodPost, q, h, b)
			if err == nil && status >= 200 && status <= 204 {
				n++
				break
			}
			if !waitCtx(ctx, 250*time.Millisecond) {
				return n
			}
		}
	}
	p.replayed.Add(int64(n))
	return n
}

func (p *egProxy) forward(ctx context.Context, method, query string, hdr http.Header, body []byte) (int, []byte, error) {
	p.mu.Lock()
	target := p.target
	p.mu.Unlock()
	if target == "" {
		return 0, nil, errors.New("event grid proxy: no target yet")
	}
	u := target
	if query != "" {
		u += "?" + query
	}
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	for k, vs := range hdr {
		switch http.CanonicalHeaderKey(k) {
		case "Content-Length", "Host", "Connection":
			continue
		}
		req.Header[k] = vs
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, b, err
}

func (p *egProxy) close() {
	p.cancel()
	ctx, c := context.WithTimeout(context.Background(), 5*time.Second)
	_ = p.srv.Shutdown(ctx)
	c()
	p.wg.Wait()
}

// waitCtx waits d or until ctx ends; false if ctx ended.
func waitCtx(ctx context.Context, d time.Duration) bool { return sleep.For(ctx, d) }
