package store

import (
	"context"
	"testing"
)

func TestSmoke(t *testing.T) {
	for _, dir := range []string{"", t.TempDir()} {
		s, err := Open(Options{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		q, err := s.Queue("Transcode")
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		res, err := q.Send(ctx, []Incoming{{Body: []byte("a")}, {Body: []byte("b")}})
		if err != nil || len(res) != 2 || res[1].SequenceNumber != 2 {
			t.Fatalf("send: %v %v", res, err)
		}
		msgs, err := q.Receive(10, PeekLock)
		if err != nil || len(msgs) != 2 {
			t.Fatalf("receive: %v %v", msgs, err)
		}
		if err := q.Complete(ctx, msgs[0].LockToken); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if dir == "" {
			continue
		}
		s, err = Open(Options{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		q, _ = s.Queue("transcode")
		msgs, _ = q.Receive(10, PeekLock)
		if len(msgs) != 1 || string(msgs[0].Body) != "b" {
			t.Fatalf("after reopen: %v", msgs)
		}
		res, _ = q.Send(ctx, []Incoming{{Body: []byte("c")}})
		if res[0].SequenceNumber != 3 {
			t.Fatalf("seq after reopen %d", res[0].SequenceNumber)
		}
		s.Close()
	}
}
