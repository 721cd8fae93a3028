package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"
)

// Log format. The file starts with logMagic. Then frames follow, each
//
//	uint32 length of payload (little endian)
//	uint32 CRC-32C of payload
//	payload: one or more records, each a uint32 length and the record
//
// A frame holds every record of one operation (a whole Send batch, a
// dead-lettering), so an operation is recovered entirely or not at all.
// A record is a kind byte and fields; strings and byte slices are a
// uvarint length and the bytes; times are varint Unix nanoseconds
// (0 = none); counts are uvarints.
//
//	recPut     queue, seq, sub, state, deliveryCount, acceptedAt, scheduledAt, ttl, messageID, reason, desc, body
//	recUpdate  queue, seq, sub, state, deliveryCount, reason, desc, hasBody byte, [body]
//	recDelete  queue, seq
//	recSeq     queue, seq (the last sequence number handed out)
//	recDup     queue, seq, messageID, at (a duplicate-detection entry)
//
// Every record states the complete new state it sets, so replaying a
// record twice (as after a compaction, see wal.compact) is harmless.
const logMagic = "FFSBLOG1"

const (
	recPut    byte = 1
	recUpdate byte = 2
	recDelete byte = 3
	recSeq    byte = 4
	recDup    byte = 5
)

const (
	frameHeader    = 8
	maxFrameSize   = 1 << 30
	recordOverhead = 64 // approximate bytes of a put record besides the body
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// record is a decoded log record.
type record struct {
	kind          byte
	queue         string
	seq           int64
	sub           subID
	state         State
	deliveryCount uint32
	acceptedAt    int64
	scheduledAt   int64
	ttl           time.Duration
	messageID     string
	reason, desc  string
	hasBody       bool
	body          []byte
	at            int64
}

func beginRecord(b []byte, kind byte, queue string, seq int64) ([]byte, int) {
	start := len(b)
	b = append(b, 0, 0, 0, 0)
	b = append(b, kind)
	b = appendString(b, queue)
	b = binary.AppendUvarint(b, uint64(seq))
	return b, start
}

func finishRecord(b []byte, start int) []byte {
	binary.LittleEndian.PutUint32(b[start:], uint32(len(b)-start-4))
	return b
}

// appendFrame appends a frame holding the records in recs.
func appendFrame(b []byte, recs []byte) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(len(recs)))
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(recs, castagnoli))
	return append(b, recs...)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBytes(b []byte, p []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(p)))
	return append(b, p...)
}

func appendPut(b []byte, queue string, e *entry) []byte {
	b, start := beginRecord(b, recPut, queue, e.seq)
	b = append(b, byte(e.sub), byte(e.state))
	b = binary.AppendUvarint(b, uint64(e.deliveryCount))
	b = binary.AppendVarint(b, e.acceptedAt)
	b = binary.AppendVarint(b, e.scheduledAt)
	b = binary.AppendVarint(b, int64(e.ttl))
	b = appendString(b, e.messageID)
	b = appendString(b, e.reason)
	b = appendString(b, e.desc)
	b = appendBytes(b, e.body)
	return finishRecord(b, start)
}

func appendUpdate(b []byte, queue string, e *entry, withBody bool) []byte {
	b, start := beginRecord(b, recUpdate, queue, e.seq)
	b = append(b, byte(e.sub), byte(e.state))
	b = binary.AppendUvarint(b, uint64(e.deliveryCount))
	b = appendString(b, e.reason)
	b = appendString(b, e.desc)
	if withBody {
		b = append(b, 1)
		b = appendBytes(b, e.body)
	} else {
		b = append(b, 0)
	}
	return finishRecord(b, start)
}

func appendDelete(b []byte, queue string, seq int64) []byte {
	b, start := beginRecord(b, recDelete, queue, seq)
	return finishRecord(b, start)
}

func appendSeq(b []byte, queue string, seq int64) []byte {
	b, start := beginRecord(b, recSeq, queue, seq)
	return finishRecord(b, start)
}

func appendDup(b []byte, queue string, seq int64, id string, at int64) []byte {
	b, start := beginRecord(b, recDup, queue, seq)
	b = appendString(b, id)
	b = binary.AppendVarint(b, at)
	return finishRecord(b, start)
}

// errTorn marks an incomplete or corrupt frame: recovery stops there.
var errTorn = errors.New("torn or corrupt record")

// readFrame splits the first frame off data. It returns the payload and
// the number of bytes used, or errTorn.
func readFrame(data []byte) ([]byte, int, error) {
	if len(data) < frameHeader {
		return nil, 0, errTorn
	}
	n := binary.LittleEndian.Uint32(data)
	sum := binary.LittleEndian.Uint32(data[4:])
	if n == 0 || n > maxFrameSize || uint64(len(data)-frameHeader) < uint64(n) {
		return nil, 0, errTorn
	}
	payload := data[frameHeader : frameHeader+int(n)]
	if crc32.Checksum(payload, castagnoli) != sum {
		return nil, 0, errTorn
	}
	return payload, frameHeader + int(n), nil
}

// decodeFrame parses every record of a frame payload; any malformed
// record fails the whole frame. Body slices alias payload.
func decodeFrame(payload []byte) ([]record, error) {
	var recs []record
	for len(payload) > 0 {
		if len(payload) < 4 {
			return nil, fmt.Errorf("decode frame: %w", errTorn)
		}
		n := binary.LittleEndian.Uint32(payload)
		if n == 0 || uint64(n) > uint64(len(payload)-4) {
			return nil, fmt.Errorf("decode frame: %w", errTorn)
		}
		r, err := decodeRecord(payload[4 : 4+n])
		if err != nil {
			return nil, err
		}
		recs = append(recs, r)
		payload = payload[4+n:]
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("decode frame: empty: %w", errTorn)
	}
	return recs, nil
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = errTorn
	}
}

func (d *decoder) byte() byte {
	if d.err != nil || len(d.b) < 1 {
		d.fail()
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil || n > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	p := d.b[:n:n]
	d.b = d.b[n:]
	return p
}

func (d *decoder) string() string { return string(d.bytes()) }

// decodeRecord parses a record payload. Body slices alias payload.
func decodeRecord(payload []byte) (record, error) {
	d := &decoder{b: payload}
	var r record
	r.kind = d.byte()
	r.queue = d.string()
	seq := d.uvarint()
	if seq > 1<<63-1 {
		d.fail()
	}
	r.seq = int64(seq)
	switch r.kind {
	case recPut, recUpdate:
		r.sub = subID(d.byte())
		r.state = State(d.byte())
		dc := d.uvarint()
		if dc > 1<<32-1 {
			d.fail()
		}
		r.deliveryCount = uint32(dc)
		if r.kind == recPut {
			r.acceptedAt = d.varint()
			r.scheduledAt = d.varint()
			r.ttl = time.Duration(d.varint())
			r.messageID = d.string()
		}
		r.reason = d.string()
		r.desc = d.string()
		if r.kind == recPut {
			r.hasBody = true
			r.body = d.bytes()
		} else {
			switch d.byte() {
			case 0:
			case 1:
				r.hasBody = true
				r.body = d.bytes()
			default:
				d.fail()
			}
		}
		if r.sub > subDLQ || r.state < StateActive || r.state > StateScheduled || (r.kind == recPut && r.ttl <= 0) {
			d.fail()
		}
	case recDelete, recSeq:
	case recDup:
		r.messageID = d.string()
		r.at = d.varint()
	default:
		d.fail()
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail()
	}
	if d.err != nil {
		return record{}, fmt.Errorf("decode record: %w", d.err)
	}
	return r, nil
}
