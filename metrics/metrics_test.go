package metrics

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestServeReportsPublishedSnapshot(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e := NewExporter("replay", "vp1")
	addr, err := Serve(ctx, "127.0.0.1:0", e)
	if err != nil {
		t.Fatal(err)
	}
	e.Publish(&Snapshot{
		Packets: 1234, FlowsActive: 7,
		Drops:         map[string]uint64{"ring": 3},
		Findings:      map[string]uint64{"ip_blocking": 2},
		ParquetRows:   map[string]uint64{"flows": 99},
		ConsumerLag:   map[string]int64{"4": 17},
		Uncommitted:   map[string]int64{"4": 250},
		KafkaBuffered: 4096, KafkaAckedRows: 5000, KafkaDeadLetters: 2,
		FlowOutcomes: map[FlowOutcome]uint64{{"reset", "post_psh"}: 3, {"ok", "none"}: 40},
	})
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	body := string(b)
	for _, want := range []string{
		`tamperscope_packets_total{role="replay",vantage="vp1"} 1234`,
		`tamperscope_flows_active{role="replay",vantage="vp1"} 7`,
		`tamperscope_drops_total{cause="ring",role="replay",vantage="vp1"} 3`,
		`tamperscope_findings_total{kind="ip_blocking",role="replay",vantage="vp1"} 2`,
		`tamperscope_parquet_rows_total{dataset="flows",role="replay",vantage="vp1"} 99`,
		`tamperscope_kafka_consumer_lag{partition="4",role="replay",vantage="vp1"} 17`,
		`tamperscope_kafka_uncommitted_messages{partition="4",role="replay",vantage="vp1"} 250`,
		`tamperscope_kafka_buffered_bytes{role="replay",vantage="vp1"} 4096`,
		`tamperscope_kafka_acked_rows_total{role="replay",vantage="vp1"} 5000`,
		`tamperscope_kafka_dead_letters_total{role="replay",vantage="vp1"} 2`,
		`tamperscope_flow_outcomes_total{outcome="reset",role="replay",stage="post_psh",vantage="vp1"} 3`,
		`tamperscope_flow_outcomes_total{outcome="ok",role="replay",stage="none",vantage="vp1"} 40`,
		`go_goroutines`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
