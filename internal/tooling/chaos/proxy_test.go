package chaos

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	return ln.Addr().String()
}

func roundTrip(t *testing.T, c net.Conn, msg string) error {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(msg + "\n")); err != nil {
		return err
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if got != msg+"\n" {
		t.Fatalf("echo: got %q, want %q", got, msg)
	}
	return nil
}

func TestTCPProxyDrop(t *testing.T) {
	p, err := newTCPProxy(echoServer(t), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	addr := "127.0.0.1:" + strconv.Itoa(p.port())
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := roundTrip(t, c, "before"); err != nil {
		t.Fatalf("through the proxy: %v", err)
	}
	if n := p.drop(); n != 1 {
		t.Errorf("drop() = %d connections, want 1", n)
	}
	if err := roundTrip(t, c, "after"); err == nil {
		t.Error("connection still works after drop, want it cut")
	}
	c2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if err := roundTrip(t, c2, "again"); err != nil {
		t.Errorf("new connection after drop: %v", err)
	}
}

func TestEGProxyDuplicatesAndReplay(t *testing.T) {
	var mu sync.Mutex
	var got []string
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.URL.Query().Get("functionName") != "OnBlobCreated" {
			t.Errorf("query lost: %q", r.URL.RawQuery)
		}
		mu.Lock()
		got = append(got, r.Header.Get("aeg-event-type")+":"+string(b))
		mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	defer target.Close()
	p, err := newEGProxy(1, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	ep := p.endpoint(target.URL + "/runtime/webhooks/eventgrid?functionName=OnBlobCreated")
	p.dupProb, p.delayProb = 1, 0
	p.setFaults(true)
	post := func(kind, body string) int {
		req, _ := http.NewRequest(http.MethodPost, ep, strings.NewReader(body))
		req.Header.Set("aeg-event-type", kind)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post("SubscriptionValidation", `[{"v":1}]`); code != http.StatusAccepted {
		t.Fatalf("validation: got %d, want the target's 202", code)
	}
	if code := post("Notification", `[{"id":"a"}]`); code != http.StatusAccepted {
		t.Fatalf("notification: got %d, want 202", code)
	}
	count := func(s string) int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, g := range got {
			if g == s {
				n++
			}
		}
		return n
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for count(`Notification:[{"id":"a"}]`) < 2 {
		if !waitCtx(ctx, 20*time.Millisecond) {
			t.Fatalf("duplicate never delivered: %q", got)
		}
	}
	if n := count(`SubscriptionValidation:[{"v":1}]`); n != 1 {
		t.Errorf("validation delivered %d times, want 1 (never duplicated)", n)
	}
	p.setFaults(false)
	if n := p.replay(ctx, 1); n != 1 {
		t.Errorf("replay(1) = %d, want 1 captured notification", n)
	}
	if n := count(`Notification:[{"id":"a"}]`); n != 3 {
		t.Errorf("after replay: notification delivered %d times, want 3", n)
	}
}
