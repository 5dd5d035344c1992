package kafka

import (
	"context"
	"errors"
	"fmt"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

// CreateTopic creates topic with the given number of partitions and
// replication factor 1, for tests, development brokers and make targets.
// A topic that already exists is not an error. A broker that is not
// serving yet — unreachable, or just started and still fenced, which it
// reports as an invalid replication factor — is asked again until ctx
// ends.
func CreateTopic(ctx context.Context, brokers []string, sec Security, topic string, partitions int) error {
	c, err := sec.conn("tamperscope-admin")
	if err != nil {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	cl := &kafkago.Client{Addr: kafkago.TCP(brokers...), Transport: c.transport}
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		err = createTopic(ctx, cl, topic, partitions)
		var kerr kafkago.Error
		retry := err != nil && !errors.As(err, &kerr) || errors.Is(err, kafkago.InvalidReplicationFactor) || errors.As(err, &kerr) && kerr.Temporary()
		if !retry {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
}

func createTopic(ctx context.Context, cl *kafkago.Client, topic string, partitions int) error {
	resp, err := cl.CreateTopics(ctx, &kafkago.CreateTopicsRequest{
		Topics: []kafkago.TopicConfig{{Topic: topic, NumPartitions: partitions, ReplicationFactor: 1}},
	})
	if err != nil {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	if err := resp.Errors[topic]; err != nil && !errors.Is(err, kafkago.TopicAlreadyExists) {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	return nil
}

// partitionCount asks the brokers how many partitions topic has.
func partitionCount(ctx context.Context, brokers []string, c conn, topic string) (int, error) {
	cl := &kafkago.Client{Addr: kafkago.TCP(brokers...), Transport: c.transport}
	resp, err := cl.Metadata(ctx, &kafkago.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return 0, fmt.Errorf("read metadata of %s: %w", topic, err)
	}
	for _, t := range resp.Topics {
		if t.Name != topic {
			continue
		}
		if t.Error != nil {
			return 0, fmt.Errorf("read metadata of %s: %w", topic, t.Error)
		}
		if len(t.Partitions) == 0 {
			return 0, fmt.Errorf("read metadata of %s: no partitions", topic)
		}
		return len(t.Partitions), nil
	}
	return 0, fmt.Errorf("read metadata of %s: topic not found", topic)
}
