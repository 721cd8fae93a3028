package store

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func TestRecordRoundTrip(t *testing.T) {
	e := &entry{seq: 42, body: []byte("body"), messageID: "mid", acceptedAt: 1700000000123456789,
		scheduledAt: 1700000001000000000, ttl: time.Hour, deliveryCount: 7, sub: subDLQ,
		state: StateDeferred, reason: "r", desc: "d"}
	tests := []struct {
		name string
		enc  []byte
		want record
	}{
		{"put", appendPut(nil, "q.1", e), record{kind: recPut, queue: "q.1", seq: 42, sub: subDLQ, state: StateDeferred,
			deliveryCount: 7, acceptedAt: e.acceptedAt, scheduledAt: e.scheduledAt, ttl: time.Hour, messageID: "mid",
			reason: "r", desc: "d", hasBody: true, body: []byte("body")}},
		{"update with body", appendUpdate(nil, "q", e, true), record{kind: recUpdate, queue: "q", seq: 42, sub: subDLQ,
			state: StateDeferred, deliveryCount: 7, reason: "r", desc: "d", hasBody: true, body: []byte("body")}},
		{"update", appendUpdate(nil, "q", e, false), record{kind: recUpdate, queue: "q", seq: 42, sub: subDLQ,
			state: StateDeferred, deliveryCount: 7, reason: "r", desc: "d"}},
		{"delete", appendDelete(nil, "q", 9), record{kind: recDelete, queue: "q", seq: 9}},
		{"seq", appendSeq(nil, "q", 1<<40), record{kind: recSeq, queue: "q", seq: 1 << 40}},
		{"dup", appendDup(nil, "q", 3, "id", -5), record{kind: recDup, queue: "q", seq: 3, messageID: "id", at: -5}},
	}
	var all []byte
	var want []record
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			frame := appendFrame(nil, tt.enc)
			payload, n, err := readFrame(frame)
			ok(t, err)
			if n != len(frame) {
				t.Fatalf("frame used %d of %d bytes", n, len(frame))
			}
			got, err := decodeFrame(payload)
			ok(t, err)
			if len(got) != 1 || !reflect.DeepEqual(got[0], tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
		all = append(all, tt.enc...)
		want = append(want, tt.want)
	}
	// Several records in one frame (one operation).
	got, err := decodeFrame(all)
	ok(t, err)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("multi-record frame: got %+v, want %+v", got, want)
	}
	// Any damage to a frame is detected.
	frame := appendFrame(nil, all)
	for i := range frame {
		bad := bytes.Clone(frame)
		bad[i] ^= 0x10
		if p, _, err := readFrame(bad); err == nil {
			if _, err := decodeFrame(p); err == nil && i >= frameHeader {
				t.Errorf("flipping a bit at %d went unnoticed", i)
			}
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	e := &entry{seq: 1, ttl: time.Second}
	good := appendPut(nil, "q", e)
	tests := []struct {
		name string
		rec  []byte
	}{
		{"unknown kind", []byte{1, 0, 0, 0, 99}},
		{"empty record", []byte{0, 0, 0, 0}},
		{"short length", []byte{1, 0}},
		{"length past end", []byte{9, 0, 0, 0, recDelete}},
		{"truncated put", good[:len(good)-1]},
		{"trailing bytes", append(appendDelete(nil, "q", 1)[:4:4], append(appendDelete(nil, "q", 1)[4:], 0)...)},
		{"zero ttl", appendPut(nil, "q", &entry{seq: 1})},
		{"bad sub", appendPut(nil, "q", &entry{seq: 1, ttl: 1, sub: 7})},
		{"bad state", appendPut(nil, "q", &entry{seq: 1, ttl: 1, state: 9})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name == "trailing bytes" {
				// Fix the length so only the extra byte is wrong.
				tt.rec[0]++
			}
			if recs, err := decodeFrame(tt.rec); err == nil {
				t.Fatalf("decoded %+v, want an error", recs)
			}
		})
	}
	if _, err := decodeFrame(nil); err == nil {
		t.Errorf("empty frame decoded")
	}
}

func FuzzDecodeFrame(f *testing.F) {
	e := &entry{seq: 5, body: []byte("hello"), messageID: "m", acceptedAt: 1, ttl: time.Minute, state: StateScheduled, scheduledAt: 9}
	f.Add(appendFrame(nil, appendPut(nil, "q", e)))
	f.Add(appendFrame(nil, append(appendUpdate(nil, "q", e, true), appendDelete(nil, "q", 5)...)))
	f.Add(appendFrame(nil, appendDup(nil, "q", 1, "x", 3)))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		for off := 0; off < len(data); {
			payload, n, err := readFrame(data[off:])
			if err != nil {
				return
			}
			if n <= 0 || n > len(data)-off {
				t.Fatalf("readFrame used %d bytes of %d", n, len(data)-off)
			}
			recs, err := decodeFrame(payload)
			if err == nil && len(recs) == 0 {
				t.Fatal("decodeFrame: no records and no error")
			}
			off += n
		}
	})
}

// FuzzRecover opens a store on an arbitrary log: it must never panic, and
// when it opens, the store must work and survive a reopen.
func FuzzRecover(f *testing.F) {
	e := &entry{seq: 2, body: []byte("hello"), messageID: "m", acceptedAt: 1, ttl: time.Minute}
	good := appendFrame(nil, appendPut(nil, "transcode", e))
	f.Add(good)
	f.Add(append(bytes.Clone(good), appendFrame(nil, appendUpdate(nil, "transcode", &entry{seq: 2, sub: subDLQ}, false))...))
	f.Add(append(bytes.Clone(good), appendFrame(nil, appendDelete(nil, "transcode", 2))...))
	f.Add(appendFrame(nil, appendPut(nil, "transcode", &entry{seq: 1 << 62, ttl: 1, state: StateScheduled, scheduledAt: 1 << 62})))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		path := filepath.Join(dir, logName)
		if err := os.WriteFile(path, append([]byte(logMagic), data...), 0o644); err != nil {
			t.Fatal(err)
		}
		s, err := Open(Options{Dir: dir})
		if err != nil {
			return
		}
		q := mustQueue(t, s, DefaultQueueName)
		before, err := q.Peek(1, 100)
		ok(t, err)
		if _, err := q.Receive(10, PeekLock); err != nil {
			t.Fatal(err)
		}
		if _, err := q.Send(bg, []Incoming{{Body: []byte("new")}}); err != nil {
			// Sequence numbers exhausted is the only acceptable refusal.
			t.Logf("send: %v", err)
		}
		ok(t, s.Close())
		s, err = Open(Options{Dir: dir})
		if err != nil {
			t.Fatalf("reopen after a successful open: %v", err)
		}
		defer s.Close()
		after, err := mustQueue(t, s, DefaultQueueName).Peek(1, 100)
		ok(t, err)
		if len(after) < len(before) {
			t.Fatalf("reopen lost messages: %d before, %d after", len(before), len(after))
		}
	})
}
