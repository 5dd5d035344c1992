package kafka

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

// CreateTopic creates topic with the given number of partitions and
// replication factor 1, for tests, development brokers and make targets.
// A topic that already exists is not an error. A broker that is not
// serving yet — unreachable, or just started and still fenced, which it
// reports as an invalid replication factor — is asked again until ctx
// ends. Settings that can never work are not: a broker certificate that
// does not verify, a broker that expects TLS from a plaintext client, a
// TLS handshake the broker ends with an alert (a client certificate it
// requires and is not given, or does not trust), or SASL credentials it
// refuses end the call with the error that says so.
func CreateTopic(ctx context.Context, brokers []string, sec Security, topic string, partitions int) error {
	c, err := sec.conn("tamperscope-admin")
	if err != nil {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	cl := &kafkago.Client{Addr: kafkago.TCP(brokers...), Transport: c.transport}
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		err = createTopic(ctx, cl, topic, partitions)
		if err == nil {
			return nil
		}
		if errors.Is(err, kafkago.BrokerNotAvailable) {
			// kafka-go's Transport answers BrokerNotAvailable to every
			// request while it has never reached the cluster; the error
			// that says why is in the metadata it keeps.
			if _, merr := cl.Metadata(ctx, &kafkago.MetadataRequest{}); merr != nil {
				err = merr
			}
		}
		if remoteAlert(err) {
			// The alert says what the broker disliked, not in which
			// certificate; naming the client's points at what to check.
			cert := "no client certificate given"
			if sec.CertFile != "" {
				cert = "client certificate " + sec.CertFile
			}
			err = fmt.Errorf("TLS handshake refused by the broker, %s: %w", cert, err)
		}
		err = fmt.Errorf("create topic %s: %w", topic, err)
		if !askAgain(err) {
			return err
		}
		select {
		case <-ctx.Done():
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) {
				// A restarting broker and a listener that drops clients
				// whose TLS or SASL settings it does not take look alike
				// (a close with the request unread is a reset).
				return fmt.Errorf("%w (the broker closed every connection: if it is up, check that the TLS and SASL settings match its listener)", err)
			}
			return err
		case <-time.After(wait):
		}
	}
}

// askAgain reports whether CreateTopic's attempt failed in a way that a
// broker still starting may cure: a connection failure, a temporary Kafka
// error, or the invalid replication factor of a fenced broker. A broker
// certificate that does not verify (unknown authority, wrong name,
// expired), a TLS alert from the broker, a TLS listener's answer to a
// plaintext request, and every other Kafka error, SASL refusals among
// them, are final.
func askAgain(err error) bool {
	if err == nil {
		return false
	}
	var kerr kafkago.Error
	if errors.As(err, &kerr) {
		return kerr.Temporary() || errors.Is(err, kafkago.InvalidReplicationFactor)
	}
	var verify *tls.CertificateVerificationError
	// kafka-go tells a TLS listener's answer from a closed connection only
	// in words.
	return !errors.As(err, &verify) && !remoteAlert(err) &&
		!(errors.Is(err, io.ErrUnexpectedEOF) && strings.Contains(err.Error(), "expecting TLS"))
}

// remoteAlert reports whether err is a fatal TLS alert from the broker. A
// listener that answers with one is up and has judged the handshake —
// most often a client certificate missing or signed by a CA it does not
// trust, which no wait cures. crypto/tls keeps the alert's type to itself;
// the operation it reports is its only mark, and a connection's own
// net.OpError may wrap it.
func remoteAlert(err error) bool {
	var op *net.OpError
	for errors.As(err, &op) {
		if op.Op == "remote error" {
			return true
		}
		err = op.Err
	}
	return false
}

func createTopic(ctx context.Context, cl *kafkago.Client, topic string, partitions int) error {
	resp, err := cl.CreateTopics(ctx, &kafkago.CreateTopicsRequest{
		Topics: []kafkago.TopicConfig{{Topic: topic, NumPartitions: partitions, ReplicationFactor: 1}},
	})
	if err != nil {
		return err
	}
	if err := resp.Errors[topic]; err != nil && !errors.Is(err, kafkago.TopicAlreadyExists) {
		return err
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
