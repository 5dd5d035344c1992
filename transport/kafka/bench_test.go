package kafka

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"
)

// BenchmarkThroughput pushes rows through a real broker: Publish until
// Close has every row acknowledged, then a Subscriber reads them all. Run
// it with a broker up and -benchtime=1x:
//
//	eval "$(scripts/kafka.sh up)"; go test -run '^$' -bench Throughput -benchtime=1x ./transport/kafka
func BenchmarkThroughput(b *testing.B) {
	addr := realBrokerAddr(b)
	const (
		parts = 4
		rows  = 2_000_000
		batch = 1024
	)
	rng := rand.New(rand.NewPCG(1, 2))
	batches := make([]*schemasBatch, 16)
	for i := range batches {
		batches[i] = makeBatch(rng, uint32(i*batch), batch)
	}
	ctx := context.Background()
	for b.Loop() {
		topic := uniqueName("throughput")
		if err := CreateTopic(ctx, []string{addr}, Security{}, topic, parts); err != nil {
			b.Fatal(err)
		}
		if err := CreateTopic(ctx, []string{addr}, Security{}, topic+".dlq", 1); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		pub, err := NewPublisher(ctx, PublisherConfig{Brokers: []string{addr}, Topic: topic, Block: true, Logger: quietLogger()})
		if err != nil {
			b.Fatal(err)
		}
		for i := 0; i < rows; i += batch {
			if err := pub.Publish(ctx, batches[(i/batch)%len(batches)]); err != nil {
				b.Fatal(err)
			}
		}
		if err := pub.Close(); err != nil {
			b.Fatal(err)
		}
		produce := time.Since(start)
		st := pub.Stats()

		start = time.Now()
		sub, err := NewSubscriber(SubscriberConfig{Brokers: []string{addr}, Topic: topic, Group: uniqueName("g"), Logger: quietLogger()})
		if err != nil {
			b.Fatal(err)
		}
		got := 0
		for got < rows {
			d := nextWithin(b, sub, time.Minute)
			got += len(d.Batch.Packets)
			sub.Release(d)
		}
		consume := time.Since(start)
		sub.Close()
		b.ReportMetric(rows/produce.Seconds(), "produce-rows/s")
		b.ReportMetric(rows/consume.Seconds(), "consume-rows/s")
		b.ReportMetric(float64(st.Bytes)/rows, "bytes/row")
	}
}
