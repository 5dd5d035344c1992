package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

// Record is one keyed message for a RecordWriter.
type Record struct {
	Key, Value []byte
}

// RecordWriter produces small keyed records (findings as JSON) to a topic,
// waiting for every write to be acknowledged by all in-sync replicas.
type RecordWriter struct {
	w *kafkago.Writer
}

// NewRecordWriter returns a writer to topic, which must exist; records are
// partitioned by a hash of their key.
func NewRecordWriter(brokers []string, sec Security, topic string, log *slog.Logger) (*RecordWriter, error) {
	if len(brokers) == 0 || topic == "" {
		return nil, errors.New("new record writer: brokers and topic are required")
	}
	if log == nil {
		log = slog.Default()
	}
	c, err := sec.conn("tamperscope-analyze")
	if err != nil {
		return nil, fmt.Errorf("new record writer: %w", err)
	}
	return &RecordWriter{w: &kafkago.Writer{
		Addr:         kafkago.TCP(brokers...),
		Topic:        topic,
		Balancer:     &kafkago.Hash{},
		Transport:    c.transport,
		BatchTimeout: time.Millisecond,
		RequiredAcks: kafkago.RequireAll,
		ErrorLogger:  kafkaLogger(log.With("topic", topic)),
	}}, nil
}

// Write produces recs and returns once the broker has acknowledged them.
func (w *RecordWriter) Write(ctx context.Context, recs ...Record) error {
	if len(recs) == 0 {
		return nil
	}
	msgs := make([]kafkago.Message, len(recs))
	for i, r := range recs {
		msgs[i] = kafkago.Message{Key: r.Key, Value: r.Value}
	}
	if err := w.w.WriteMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("write %d records to %s: %w", len(recs), w.w.Topic, err)
	}
	return nil
}

// Close flushes and releases the writer.
func (w *RecordWriter) Close() error {
	if err := w.w.Close(); err != nil {
		return fmt.Errorf("close record writer: %w", err)
	}
	return nil
}
