package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/tamperscope/tamperscope/schemas"
	"github.com/tamperscope/tamperscope/transport/kafka"
)

// defaultTopic is the packet topic of the distributed mode.
const defaultTopic = "tamperscope.packets"

// passwordEnv holds the SASL password when --kafka-password-file is not
// given: secrets never go on the command line.
const passwordEnv = "TAMPERSCOPE_KAFKA_PASSWORD"

// kafkaFlags are the Kafka connection flags that capture, replay and
// analyze share.
type kafkaFlags struct {
	brokers, topic            string
	tls                       bool
	ca, cert, key, serverName string
	sasl, user, passwordFile  string
	partitions                int
}

// register adds the flags to fs; withPartitions adds --partitions, for the
// commands that create the packet topic.
func (k *kafkaFlags) register(fs *flag.FlagSet, withPartitions bool) {
	fs.StringVar(&k.brokers, "kafka", "", "Kafka bootstrap `BROKERS` (comma-separated host:port): the distributed mode")
	fs.StringVar(&k.topic, "topic", defaultTopic, "Kafka packet `TOPIC`")
	fs.BoolVar(&k.tls, "kafka-tls", false, "connect to Kafka over TLS")
	fs.StringVar(&k.ca, "kafka-ca", "", "CA certificates (PEM) `FILE` for the brokers' TLS certificates (default: system roots)")
	fs.StringVar(&k.cert, "kafka-cert", "", "client certificate (PEM) `FILE` for TLS client authentication")
	fs.StringVar(&k.key, "kafka-key", "", "client key (PEM) `FILE` for TLS client authentication")
	fs.StringVar(&k.serverName, "kafka-server-name", "", "name to check the brokers' TLS certificates against (default: the broker host)")
	fs.StringVar(&k.sasl, "kafka-sasl", "", "SASL mechanism: scram-sha-512, scram-sha-256 or plain (plain only over TLS)")
	fs.StringVar(&k.user, "kafka-user", "", "SASL user name")
	fs.StringVar(&k.passwordFile, "kafka-password-file", "", "read the SASL password from `FILE` (default: environment variable "+passwordEnv+")")
	if withPartitions {
		fs.IntVar(&k.partitions, "partitions", 4, "partitions of the packet topic when it has to be created")
	}
}

func (k *kafkaFlags) enabled() bool { return k.brokers != "" }

// findingsTopic is the topic findings are produced to: flag when given
// (--findings-topic), <topic>.findings otherwise.
func (k *kafkaFlags) findingsTopic(flag string) string {
	if flag != "" {
		return flag
	}
	return k.topic + ".findings"
}

func (k *kafkaFlags) brokerList() []string {
	var out []string
	for _, b := range strings.Split(k.brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

// security checks the flags and turns them into a kafka.Security.
func (k *kafkaFlags) security() (kafka.Security, error) {
	s := kafka.Security{TLS: k.tls, CAFile: k.ca, CertFile: k.cert, KeyFile: k.key, ServerName: k.serverName}
	switch {
	case !k.enabled():
		return s, errors.New("--kafka is required")
	case k.topic == "":
		return s, errors.New("--topic must not be empty")
	case !k.tls && (k.ca != "" || k.cert != "" || k.key != "" || k.serverName != ""):
		return s, errors.New("--kafka-ca, --kafka-cert, --kafka-key and --kafka-server-name need --kafka-tls")
	case (k.cert == "") != (k.key == ""):
		return s, errors.New("--kafka-cert and --kafka-key go together")
	}
	switch strings.ToLower(k.sasl) {
	case "":
		if k.user != "" || k.passwordFile != "" {
			return s, errors.New("--kafka-user and --kafka-password-file need --kafka-sasl")
		}
		return s, nil
	case "plain":
		if !k.tls {
			return s, errors.New("--kafka-sasl plain sends the password in the clear: use it with --kafka-tls, or use scram-sha-512")
		}
	case "scram-sha-256", "scram-sha-512":
	default:
		return s, fmt.Errorf("unknown --kafka-sasl %q: want scram-sha-512, scram-sha-256 or plain", k.sasl)
	}
	if k.user == "" {
		return s, errors.New("--kafka-sasl needs --kafka-user")
	}
	s.SASL, s.Username = strings.ToUpper(k.sasl), k.user
	if k.passwordFile != "" {
		s.PasswordFile = k.passwordFile
	} else if _, ok := os.LookupEnv(passwordEnv); ok {
		s.PasswordEnv = passwordEnv
	} else {
		return s, fmt.Errorf("--kafka-sasl needs --kafka-password-file or the %s environment variable", passwordEnv)
	}
	return s, nil
}

// newKafkaPublisher creates the packet topic when it is missing and
// returns a Publisher to it. block makes Publish wait for the broker
// instead of dropping: for files, never for a live capture.
func newKafkaPublisher(ctx context.Context, k *kafkaFlags, block bool) (*kafka.Publisher, error) {
	sec, err := k.security()
	if err != nil {
		return nil, usageError{err}
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := kafka.CreateTopic(cctx, k.brokerList(), sec, k.topic, max(k.partitions, 1)); err != nil {
		return nil, err
	}
	pub, err := kafka.NewPublisher(cctx, kafka.PublisherConfig{Brokers: k.brokerList(), Topic: k.topic, Security: sec, Block: block})
	if err != nil {
		return nil, err
	}
	slog.Info("kafka publisher ready", "topic", k.topic)
	return pub, nil
}

// publishFindings produces findings as JSON, keyed by target IP, and
// returns once the broker has them. Findings are published before the
// files holding them are committed, so a signal does not cut it short.
func publishFindings(ctx context.Context, w *kafka.RecordWriter, fs []schemas.Finding) error {
	recs := make([]kafka.Record, len(fs))
	for i := range fs {
		v, err := json.Marshal(&fs[i])
		if err != nil {
			return fmt.Errorf("encode finding: %w", err)
		}
		recs[i] = kafka.Record{Key: []byte(fs[i].TargetIP), Value: v}
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	return w.Write(wctx, recs...)
}

// closePublisher closes pub and logs what it delivered.
func closePublisher(pub *kafka.Publisher) error {
	err := pub.Close()
	st := pub.Stats()
	slog.Info("kafka publisher closed", "rows", st.Rows, "acked_rows", st.AckedRows, "messages", st.AckedMsgs,
		"dropped_rows", st.DroppedRows, "failed_rows", st.FailedRows, "retries", st.Retries, "clocks", st.Clocks)
	return err
}
