package analyzer_test

import (
	"bytes"
	"context"
	"runtime"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tamperscope/tamperscope/capture/pcapfile"
	"github.com/tamperscope/tamperscope/ingest"
	"github.com/tamperscope/tamperscope/internal/synth"
)

// TestParallelJudge: windows of hundreds of server addresses, which the
// detectors judge on several goroutines, give the same findings in the
// same order, and the same flow records, as when judged on one.
func TestParallelJudge(t *testing.T) {
	var pcap bytes.Buffer
	if _, err := synth.Write(&pcap, synth.Config{Flows: 4000, MeanSegs: 3, DurationSec: 600, Names: 300, ResetShare: 0.05, DropShare: 0.03, Seed: 11}); err != nil {
		t.Fatal(err)
	}
	run := func(procs int) *collect {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
		src, err := pcapfile.NewReader(bytes.NewReader(pcap.Bytes()), "synth", pcapfile.Options{})
		if err != nil {
			t.Fatal(err)
		}
		var bs batches
		if _, err := ingest.Run(context.Background(), src, &bs, ingest.Config{}); err != nil {
			t.Fatal(err)
		}
		return analyze(t, bs)
	}
	one, many := run(1), run(4)
	servers := map[string]bool{}
	for _, r := range one.flows {
		servers[r.ServerIP] = true
	}
	if len(servers) < 300 || len(one.findings) < 10 {
		t.Fatalf("%d server addresses, %d findings: windows too small to be judged in parallel", len(servers), len(one.findings))
	}
	if d := cmp.Diff(one.findings, many.findings); d != "" {
		t.Errorf("findings differ (-one goroutine +several):\n%s", d)
	}
	if d := cmp.Diff(one.flows, many.flows); d != "" {
		t.Errorf("flows differ (-one goroutine +several):\n%s", d)
	}
}
