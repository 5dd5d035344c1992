package kafka

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/tamperscope/tamperscope/schemas/wire"
)

// TestChunkOneBatchPerPartition checks the property that keeps a
// partition in order across failed writes: the messages of one partition
// that a write takes fit in one kafka-go batch, all taken or all refused.
func TestChunkOneBatchPerPartition(t *testing.T) {
	const maxBytes = 10_000
	msg := func(part, size int) queued {
		key := make([]byte, 4)
		binary.BigEndian.PutUint32(key, uint32(part))
		return queued{msg: kafkago.Message{Key: key, Value: make([]byte, size)}, rows: 1}
	}
	for _, tc := range []struct {
		name  string
		queue []queued
		want  int
	}{
		{"empty", nil, 0},
		{"one message", []queued{msg(0, 9000)}, 1},
		{"small messages of one partition", []queued{msg(0, 1000), msg(0, 1000), msg(0, 1000)}, 3},
		{"second would overflow the batch", []queued{msg(0, 5000), msg(1, 8000), msg(0, 5000), msg(1, 10)}, 2},
		{"other partitions have their own batch", []queued{msg(0, 8000), msg(1, 8000), msg(2, 8000), msg(3, 8000)}, 4},
		{"many tiny messages stop under the batch count", func() []queued {
			var q []queued
			for range 2 * sendChunk {
				q = append(q, msg(0, 1))
			}
			return q
		}(), 9}, // 9 of 1+1024 bytes stay under 10000
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &Publisher{cfg: PublisherConfig{MaxMessageBytes: maxBytes}, pending: make([]pendingMsg, 4), queue: tc.queue}
			n := p.chunkLocked()
			if n != tc.want {
				t.Errorf("chunk of %d messages, want %d", n, tc.want)
			}
			bytes, msgs := map[int]int{}, map[int]int{}
			for _, q := range tc.queue[:n] {
				part := int(binary.BigEndian.Uint32(q.msg.Key))
				bytes[part] += len(q.msg.Value) + maxOverhead
				msgs[part]++
			}
			for part := range msgs {
				if msgs[part] > 1 && (bytes[part] >= maxBytes || msgs[part] >= sendChunk) {
					t.Errorf("partition %d: %d messages, %d bytes do not fit in one batch", part, msgs[part], bytes[part])
				}
			}
		})
	}
}

// TestMessagesFitMaxMessageBytes: a pending message is closed before a
// row could take its encoding past MaxMessageBytes, with any codec and
// whatever the payloads, so no message is ever too large to send.
func TestMessagesFitMaxMessageBytes(t *testing.T) {
	const limit = 200_000
	rng := rand.New(rand.NewPCG(31, 32))
	batch := makeBatch(rng, 0, 300)
	for i := range batch.Packets {
		p := make([]byte, rng.IntN(40_000))
		for j := range p {
			p[j] = byte(rng.Uint32()) // incompressible
		}
		batch.Packets[i].Payload = p
	}
	for _, c := range []wire.Codec{wire.LZ4, wire.Zstd, wire.Uncompressed} {
		enc, err := wire.NewEncoder(wire.EncoderOptions{Codec: c})
		if err != nil {
			t.Fatal(err)
		}
		p := &Publisher{cfg: PublisherConfig{MaxMessageBytes: limit, MaxRows: 4096}, enc: enc, pending: []pendingMsg{{rows: &wire.Rows{}}}}
		for i := range batch.Packets {
			p.addLocked(&p.pending[0], 0, &batch.Packets[i])
		}
		p.flushLocked(&p.pending[0], 0)
		rows := 0
		for _, j := range p.toEncode {
			m := p.encodeRows(j.rows)
			if m.err != nil || len(m.value) > limit-maxOverhead {
				t.Errorf("%v: %d rows encode to %d bytes (%v), over %d", c, m.rows, len(m.value), m.err, limit-maxOverhead)
			}
			rows += m.rows
		}
		if rows != len(batch.Packets) || len(p.toEncode) < 2 {
			t.Errorf("%v: %d messages of %d rows, want all %d rows in several", c, len(p.toEncode), rows, len(batch.Packets))
		}
	}
}
