package store

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestKill9 runs a store in a child process that sends from several
// goroutines and prints every acknowledged send, kills it with SIGKILL
// mid-stream, and checks that every acknowledged message survived.
func TestKill9(t *testing.T) {
	if os.Getenv("STORE_KILL_DIR") != "" {
		t.Skip("helper mode")
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestKill9Helper$", "-test.count=1")
	cmd.Env = append(os.Environ(), "STORE_KILL_DIR="+dir)
	out, err := cmd.StdoutPipe()
	ok(t, err)
	cmd.Stderr = os.Stderr
	ok(t, cmd.Start())
	acked := map[string]int64{}
	sc := bufio.NewScanner(out)
	for sc.Scan() && len(acked) < 2000 {
		var body string
		var seq int64
		if _, err := fmt.Sscanf(sc.Text(), "ack %d %s", &seq, &body); err == nil {
			acked[body] = seq
		}
	}
	ok(t, cmd.Process.Kill())
	_ = cmd.Wait()
	if len(acked) < 2000 {
		t.Fatalf("helper acknowledged only %d sends", len(acked))
	}
	s, err := Open(Options{Dir: dir})
	ok(t, err)
	defer s.Close()
	q := mustQueue(t, s, DefaultQueueName)
	msgs, err := q.Peek(1, 1<<30)
	ok(t, err)
	found := map[string]int64{}
	seen := map[int64]bool{}
	var last int64
	for _, m := range msgs {
		if seen[m.SequenceNumber] {
			t.Fatalf("sequence number %d twice", m.SequenceNumber)
		}
		seen[m.SequenceNumber] = true
		found[string(m.Body)] = m.SequenceNumber
		last = max(last, m.SequenceNumber)
	}
	for body, seq := range acked {
		if got, ok := found[body]; !ok || got != seq {
			t.Errorf("acknowledged %s (sequence %d) after kill -9: found sequence %d, present %v", body, seq, got, ok)
		}
	}
	res, err := q.Send(bg, []Incoming{{Body: []byte("after")}})
	ok(t, err)
	if res[0].SequenceNumber <= last {
		t.Errorf("sequence after recovery %d, want more than %d", res[0].SequenceNumber, last)
	}
}

// TestKill9Helper is the child process of TestKill9.
func TestKill9Helper(t *testing.T) {
	dir := os.Getenv("STORE_KILL_DIR")
	if dir == "" {
		t.Skip("run by TestKill9")
	}
	s, err := Open(Options{Dir: dir})
	ok(t, err)
	q := mustQueue(t, s, DefaultQueueName)
	var mu sync.Mutex
	w := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; ; i++ {
				batch := []Incoming{{Body: []byte(fmt.Sprintf("g%d-%d-a", g, i))}, {Body: []byte(fmt.Sprintf("g%d-%d-b", g, i))}}
				res, err := q.Send(context.Background(), batch)
				if err != nil {
					return
				}
				var b strings.Builder
				for j, r := range res {
					fmt.Fprintf(&b, "ack %d %s\n", r.SequenceNumber, batch[j].Body)
				}
				mu.Lock()
				w.WriteString(b.String())
				w.Flush()
				mu.Unlock()
			}
		}(g)
	}
	wg.Wait() // until killed
}
