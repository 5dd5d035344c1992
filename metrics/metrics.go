// Package metrics exposes a running pipeline's counters to Prometheus. The
// goroutines that own the counters publish a Snapshot now and then (once a
// second is plenty); a scrape reads the latest one. Nothing on the packet
// path touches Prometheus.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Snapshot is the state of a pipeline at one moment. Counters only grow;
// maps are keyed by the label value.
type Snapshot struct {
	Packets      uint64            // packets read from the source or consumed from Kafka
	Bytes        uint64            // input bytes
	Drops        map[string]uint64 // packets lost, by cause: ring, kernel, kafka_buffer, ...
	DecodeSkips  map[string]uint64 // frames not (fully) decoded, by reason
	FlowsActive  int
	FlowsEnded   uint64
	FlowsEvicted uint64
	Findings     map[string]uint64 // by kind
	FlowOutcomes map[FlowOutcome]uint64
	ParquetFiles map[string]uint64 // committed files by dataset (flows, findings, packets)
	ParquetRows  map[string]uint64 // committed rows by dataset
	KafkaErrors  uint64            // produce errors
	ConsumerLag  map[string]int64  // by partition
	// The distributed mode: what the publisher of capture --kafka holds
	// and has had acknowledged, and what analyze dead-lettered and would
	// replay after a restart (messages past the committed offset, by
	// partition).
	KafkaBuffered    int
	KafkaAckedRows   uint64
	KafkaDeadLetters uint64
	Uncommitted      map[string]int64
}

// FlowOutcome labels the flows written: their outcome (ok, reset,
// timeout, ...) and the stage they failed at (post_syn, ..., or none).
type FlowOutcome struct{ Outcome, Stage string }

// Exporter is a prometheus.Collector over the latest published Snapshot.
type Exporter struct {
	cur atomic.Pointer[Snapshot]

	packets, bytes, drops, skips, active, ended, evicted,
	findings, files, rows, kafkaErrs, lag *prometheus.Desc
	buffered, acked, deadLetters, uncommitted, outcomes *prometheus.Desc
}

// NewExporter returns an exporter for one pipeline; role ("capture",
// "analyze", "replay") and vantage become constant labels.
func NewExporter(role, vantage string) *Exporter {
	cl := prometheus.Labels{"role": role, "vantage": vantage}
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("tamperscope_"+name, help, labels, cl)
	}
	return &Exporter{
		packets: d("packets_total", "Packets read from the source or consumed from Kafka."),
		bytes:   d("bytes_total", "Input bytes."),
		drops:   d("drops_total", "Packets lost, by cause.", "cause"),
		skips:   d("decode_skips_total", "Frames not fully decoded, by reason.", "reason"),
		active:  d("flows_active", "Flows in the flow table."),
		ended:   d("flows_ended_total", "Flows that ended and were written."),
		outcomes: d("flow_outcomes_total", "Flows written, by outcome and the stage a failed one failed at: "+
			"the per-flow signal, as flows end, that findings attribute once their window is judged.", "outcome", "stage"),
		evicted:     d("flows_evicted_total", "Flows evicted at the flow-table cap."),
		findings:    d("findings_total", "Findings emitted, by kind.", "kind"),
		files:       d("parquet_files_total", "Parquet files committed, by dataset.", "dataset"),
		rows:        d("parquet_rows_total", "Parquet rows committed, by dataset.", "dataset"),
		kafkaErrs:   d("kafka_produce_errors_total", "Kafka produce errors."),
		lag:         d("kafka_consumer_lag", "Messages behind the partition's high watermark.", "partition"),
		buffered:    d("kafka_buffered_bytes", "Encoded bytes waiting for the broker or in flight."),
		acked:       d("kafka_acked_rows_total", "Packet rows the broker acknowledged."),
		deadLetters: d("kafka_dead_letters_total", "Messages that did not decode, sent to the dead-letter topic."),
		uncommitted: d("kafka_uncommitted_messages",
			"Messages processed past the partition's committed offset: what a restarted analyzer replays.", "partition"),
	}
}

// Publish makes s the state the next scrape reports. s must not be
// changed afterwards.
func (e *Exporter) Publish(s *Snapshot) { e.cur.Store(s) }

// Describe implements prometheus.Collector.
func (e *Exporter) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{e.packets, e.bytes, e.drops, e.skips, e.active, e.ended, e.evicted, e.findings, e.files, e.rows,
		e.kafkaErrs, e.lag, e.buffered, e.acked, e.deadLetters, e.uncommitted, e.outcomes} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (e *Exporter) Collect(ch chan<- prometheus.Metric) {
	s := e.cur.Load()
	if s == nil {
		s = &Snapshot{}
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	counter(e.packets, s.Packets)
	counter(e.bytes, s.Bytes)
	counter(e.ended, s.FlowsEnded)
	counter(e.evicted, s.FlowsEvicted)
	counter(e.kafkaErrs, s.KafkaErrors)
	counter(e.acked, s.KafkaAckedRows)
	counter(e.deadLetters, s.KafkaDeadLetters)
	ch <- prometheus.MustNewConstMetric(e.active, prometheus.GaugeValue, float64(s.FlowsActive))
	ch <- prometheus.MustNewConstMetric(e.buffered, prometheus.GaugeValue, float64(s.KafkaBuffered))
	for _, m := range []struct {
		d *prometheus.Desc
		v map[string]uint64
	}{{e.drops, s.Drops}, {e.skips, s.DecodeSkips}, {e.findings, s.Findings}, {e.files, s.ParquetFiles}, {e.rows, s.ParquetRows}} {
		for k, v := range m.v {
			counter(m.d, v, k)
		}
	}
	for k, v := range s.FlowOutcomes {
		counter(e.outcomes, v, k.Outcome, k.Stage)
	}
	for _, m := range []struct {
		d *prometheus.Desc
		v map[string]int64
	}{{e.lag, s.ConsumerLag}, {e.uncommitted, s.Uncommitted}} {
		for p, v := range m.v {
			ch <- prometheus.MustNewConstMetric(m.d, prometheus.GaugeValue, float64(v), p)
		}
	}
}

// Serve exposes e (and the Go runtime's metrics) at http://addr/metrics
// until ctx ends. It returns once the listener is up, with the address it
// bound (addr may use port 0).
func Serve(ctx context.Context, addr string, e *Exporter) (string, error) {
	reg := prometheus.NewRegistry()
	if err := reg.Register(e); err != nil {
		return "", fmt.Errorf("register metrics: %w", err)
	}
	reg.MustRegister(prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("listen for metrics on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			slog.Error("metrics server stopped", "addr", ln.Addr().String(), "err", err)
		}
	}()
	return ln.Addr().String(), nil
}
