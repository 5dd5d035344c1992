package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"time"

	"github.com/tamperscope/tamperscope/analyzer"
	"github.com/tamperscope/tamperscope/analyzer/detect"
	"github.com/tamperscope/tamperscope/analyzer/flow"
	"github.com/tamperscope/tamperscope/analyzer/partitioned"
	"github.com/tamperscope/tamperscope/metrics"
	"github.com/tamperscope/tamperscope/schemas"
	"github.com/tamperscope/tamperscope/sink"
	"github.com/tamperscope/tamperscope/transport/kafka"
)

const analyzeExamples = `  tamperscope analyze --kafka 127.0.0.1:9092 --group analyzers --out /var/lib/tamperscope/datasets
  tamperscope analyze --kafka kafka1:9093 --kafka-tls --kafka-ca ca.pem --kafka-sasl scram-sha-512 \
      --kafka-user analyzer --kafka-password-file /etc/tamperscope/kafka.pw --group analyzers --out datasets/
  tamperscope analyze --kafka 127.0.0.1:9092 --group once --out datasets/ --idle-exit 30s   # a replayed topic, then stop
`

type analyzeConfig struct {
	kafka         kafkaFlags
	metrics       string
	group, out    string
	findingsTopic string
	idleExit      time.Duration
	checkpoint    time.Duration
	maxOpen       time.Duration
	session       time.Duration
	maxFlows      int
	quiet         bool
	prof          profiles
}

func runAnalyze(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg analyzeConfig
	fs := newFlagSet("analyze", "analyze --kafka BROKERS --group G --out DIR [flags]", analyzeExamples, stderr)
	cfg.kafka.register(fs, true)
	fs.StringVar(&cfg.group, "group", "", "Kafka consumer `GROUP`: analyzers of one group share the topic's partitions (required)")
	fs.StringVar(&cfg.out, "out", "", "write Parquet datasets (flows/, findings/) under `DIR` (required)")
	fs.StringVar(&cfg.findingsTopic, "findings-topic", "", "also produce findings as JSON, keyed by target IP, to `TOPIC` (default <topic>.findings; \"-\" for none)")
	fs.DurationVar(&cfg.idleExit, "idle-exit", 0, "end the stream after this long without a message: end every open flow, commit and exit (default: run until signalled)")
	fs.DurationVar(&cfg.checkpoint, "checkpoint", 10*time.Second, "commit datasets and offsets of a partition this often")
	fs.DurationVar(&cfg.maxOpen, "max-open", 30*time.Minute, "at a checkpoint, split flows open longer than this (packet time; end reason split), so that one long-lived connection does not hold back the offsets a restart resumes from (0: never split)")
	fs.DurationVar(&cfg.session, "session-timeout", 10*time.Second, "consumer group session timeout: how soon the group notices a dead analyzer")
	fs.IntVar(&cfg.maxFlows, "max-flows", 0, "flow table cap per partition (default 262144)")
	fs.BoolVar(&cfg.quiet, "quiet", false, "print nothing but errors")
	fs.StringVar(&cfg.metrics, "metrics", "", "serve Prometheus metrics (consumer lag included) at http://`ADDR`/metrics")
	cfg.prof.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	sec, err := cfg.kafka.security()
	switch {
	case err != nil:
		return usageError{err}
	case cfg.group == "":
		return usageError{errors.New("--group is required")}
	case cfg.out == "":
		return usageError{errors.New("--out is required")}
	case fs.NArg() > 0:
		return usageError{fmt.Errorf("unexpected arguments %q", fs.Args())}
	}
	cfg.findingsTopic = cfg.kafka.findingsTopic(cfg.findingsTopic)
	return cfg.prof.run(func() error { return analyzeKafka(ctx, cfg, sec, stdout) })
}

// analyzeKafka consumes the packet topic as a member of the group until
// ctx ends (it then checkpoints and leaves; open flows are rebuilt by the
// next run) or the topic has been idle for --idle-exit (the stream ends:
// open flows end as at the end of a capture).
func analyzeKafka(ctx context.Context, cfg analyzeConfig, sec kafka.Security, stdout io.Writer) error {
	brokers := cfg.kafka.brokerList()
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	topics := map[string]int{cfg.kafka.topic: cfg.kafka.partitions, cfg.kafka.topic + ".dlq": 1}
	if cfg.findingsTopic != "-" {
		topics[cfg.findingsTopic] = cfg.kafka.partitions
	}
	for t, n := range topics {
		if err := kafka.CreateTopic(cctx, brokers, sec, t, max(n, 1)); err != nil {
			return err
		}
	}
	var publish func(int, []schemas.Finding) error
	if cfg.findingsTopic != "-" {
		fw, err := kafka.NewRecordWriter(brokers, sec, cfg.findingsTopic, nil)
		if err != nil {
			return err
		}
		defer fw.Close()
		publish = func(_ int, fs []schemas.Finding) error { return publishFindings(ctx, fw, fs) }
	}
	dc, err := json.Marshal(detect.Config{}.Effective())
	if err != nil {
		return fmt.Errorf("encode detector configuration: %w", err)
	}
	var sub *kafka.Subscriber
	cons, err := partitioned.New(partitioned.Config{
		Topic:              cfg.kafka.topic,
		Root:               cfg.out,
		Sink:               sink.Config{Version: version, DetectorConfig: string(dc)},
		Engine:             analyzer.Config{Flow: flow.Config{MaxFlows: cfg.maxFlows}},
		Commit:             committerFunc(func(p int, off int64) error { return sub.Commit(p, off) }),
		Findings:           publish,
		CheckpointInterval: cfg.checkpoint,
		MaxOpen:            cmp.Or(cfg.maxOpen, -1), // 0 on the command line: never split
	})
	if err != nil {
		return err
	}
	var cbErr error // from a callback inside Next
	sub, err = kafka.NewSubscriber(kafka.SubscriberConfig{
		Brokers:        brokers,
		Topic:          cfg.kafka.topic,
		Group:          cfg.group,
		Security:       sec,
		SessionTimeout: cfg.session,
		OnAssigned: func(ids []int) {
			if err := cons.Assigned(ids); err != nil && cbErr == nil {
				cbErr = err
			}
		},
		OnRevoked: func(ids []int) {
			if err := cons.Revoked(ids); err != nil && cbErr == nil {
				cbErr = err
			}
		},
	})
	if err != nil {
		return err
	}
	met, err := startMetrics(ctx, cfg.metrics, "analyze", "", func() sourceCounts {
		ss := sub.Stats()
		return sourceCounts{packets: ss.Rows, drops: map[string]uint64{"corrupt_message": ss.Corrupt}}
	})
	if err != nil {
		return err
	}
	tickMetrics := func() {
		if met == nil || time.Since(met.last) < time.Second {
			return
		}
		cs := cons.Stats()
		met.publish(cs.Engine, nil, func(s *metrics.Snapshot) {
			s.ParquetRows = map[string]uint64{"flows": cs.Flows, "findings": cs.Findings, "digests": cs.Digests}
			s.ConsumerLag = map[string]int64{}
			for p, l := range sub.Lag() {
				s.ConsumerLag[strconv.Itoa(p)] = l
			}
			s.Uncommitted = map[string]int64{}
			for p, n := range cons.Uncommitted() {
				s.Uncommitted[strconv.Itoa(p)] = int64(n)
			}
			s.KafkaDeadLetters = sub.Stats().DeadLettered
		})
	}
	start, last := time.Now(), time.Now()
	var runErr error
	for runErr == nil {
		tickMetrics()
		nctx, cancel := context.WithTimeout(ctx, time.Second)
		d, err := sub.Next(nctx)
		cancel()
		switch {
		case cbErr != nil:
			runErr = cbErr
		case err == nil:
			last = time.Now()
			runErr = cons.Process(d)
			sub.Release(d)
		case ctx.Err() != nil:
			// Checkpointed now, the next run resumes where this one
			// committed and rebuilds the flows still open.
			lerr := cons.Leave()
			cerr := sub.Close()
			printAnalyzeSummary(cfg, cons, sub, start, stdout)
			return errors.Join(ctx.Err(), lerr, cerr)
		case errors.Is(err, context.DeadlineExceeded):
			if sub.DeadLettering() {
				last = time.Now() // a corrupt message on its way to the dead-letter topic: not idle
			}
			if cfg.idleExit > 0 && time.Since(last) >= cfg.idleExit {
				slog.Info("no message for --idle-exit: ending the stream", "idle", cfg.idleExit)
				cerr := cons.Close()
				if cerr == nil {
					slog.Info("stream ended: every flow written and its offsets committed; leaving the group")
				}
				serr := sub.Close()
				printAnalyzeSummary(cfg, cons, sub, start, stdout)
				return errors.Join(cerr, serr)
			}
			runErr = cons.Tick()
		default:
			runErr = err
		}
	}
	// Nothing more is committed: the group delivers again what was not.
	sub.Close()
	return runErr
}

type committerFunc func(partition int, offset int64) error

func (f committerFunc) Commit(partition int, offset int64) error { return f(partition, offset) }

func printAnalyzeSummary(cfg analyzeConfig, cons *partitioned.Consumer, sub *kafka.Subscriber, start time.Time, stdout io.Writer) {
	cs, ss := cons.Stats(), sub.Stats()
	slog.Info("analyze ended", "messages", cs.Messages, "packets", cs.Packets, "clocks", cs.Clocks, "flows", cs.Flows, "findings", cs.Findings,
		"digests", cs.Digests, "repeated", cs.Repeated, "tails", cs.Tails, "sets", cs.Sets, "commits", cs.Commits, "corrupt", ss.Corrupt, "dead_lettered", ss.DeadLettered)
	if cfg.quiet {
		return
	}
	el := time.Since(start)
	fmt.Fprintf(stdout, "%d packets in %d messages from %s in %.2fs (%.2f Mpkt/s); %d flows, %d findings, %d window digests written (%d repeats and %d flow tails of an earlier run skipped); %d corrupt messages dead-lettered\n",
		cs.Packets, cs.Messages, cfg.kafka.topic, el.Seconds(), float64(cs.Packets)/el.Seconds()/1e6, cs.Flows, cs.Findings, cs.Digests, cs.Repeated, cs.Tails, ss.DeadLettered)
	if cs.Digests > 0 {
		fmt.Fprintf(stdout, "ip_blocking and throttling compare addresses of every partition: run tamperscope aggregate %s once the analyzers of the group have passed the windows\n", cfg.out)
	}
}
