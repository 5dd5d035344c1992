package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/tamperscope/tamperscope/internal/testenv"
	"github.com/tamperscope/tamperscope/schemas"
	"github.com/tamperscope/tamperscope/sink"
	"github.com/tamperscope/tamperscope/transport/kafka"
)

// binDir holds the tamperscope and gencap binaries that the distributed
// and live capture tests run as processes, so that an analyzer can be
// SIGKILLed and a capture stopped with SIGINT.
var binDir string

func TestMain(m *testing.M) {
	code := func() int {
		if os.Getenv("TAMPERSCOPE_KAFKA") == "" && !testenv.RequireAll() && os.Geteuid() != 0 {
			return m.Run() // the Kafka and live capture tests skip; nothing to build
		}
		dir, err := os.MkdirTemp("", "tamperscope-bin")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		for _, pkg := range []string{".", "../../bench/gencap"} {
			out, err := exec.Command("go", "build", "-o", dir, pkg).CombinedOutput()
			if err != nil {
				fmt.Fprintf(os.Stderr, "build %s: %v\n%s", pkg, err, out)
				return 1
			}
		}
		binDir = dir
		return m.Run()
	}()
	os.Exit(code)
}

func kafkaAddr(t *testing.T) string { return testenv.KafkaBroker(t) }

var nameSeq atomic.Int64

func uniqueTopic(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, time.Now().UnixNano(), nameSeq.Add(1))
}

// labCaptures is every seed-1 capture of the censor lab: all the scenarios.
func labCaptures(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("../../lab/testdata/*-seed1/capture.pcap")
	if err != nil || len(files) == 0 {
		t.Fatalf("no lab captures: %v", err)
	}
	return files
}

// run runs the binary to completion and fails the test on a non-zero exit.
func runBin(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "tamperscope"), args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("tamperscope %s: %v\n%s%s", strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String()
}

// startAnalyzer starts an analyzer in the background.
func startAnalyzer(t *testing.T, addr, topic, group, out string, extra ...string) *exec.Cmd {
	t.Helper()
	cmd, _ := startAnalyzerLog(t, addr, topic, group, out, extra...)
	return cmd
}

// startAnalyzerLog is startAnalyzer that also returns the path of the
// analyzer's log.
func startAnalyzerLog(t *testing.T, addr, topic, group, out string, extra ...string) (*exec.Cmd, string) {
	t.Helper()
	args := append([]string{"analyze", "--kafka", addr, "--topic", topic, "--group", group, "--out", out,
		"--session-timeout", "6s", "--checkpoint", "100ms", "--quiet"}, extra...)
	cmd := exec.Command(filepath.Join(binDir, "tamperscope"), args...)
	log, err := os.Create(filepath.Join(t.TempDir(), "analyze.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
		if t.Failed() {
			b, _ := os.ReadFile(log.Name())
			t.Logf("analyzer log:\n%s", b)
		}
	})
	return cmd, log.Name()
}

func wait(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("analyzer: %v", err)
	}
}

type dataset struct {
	flows    []schemas.FlowRecord
	findings []schemas.Finding
}

func readDataset(t *testing.T, dir string) dataset {
	t.Helper()
	var d dataset
	if err := sink.ReadRecords(dir, "flows", nil, func(r *schemas.FlowRecord) error {
		d.flows = append(d.flows, *r)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := sink.ReadRecords(dir, "findings", nil, func(f *schemas.Finding) error {
		d.findings = append(d.findings, *f)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(d.flows, func(a, b schemas.FlowRecord) int { return strings.Compare(a.FlowID, b.FlowID) })
	slices.SortFunc(d.findings, func(a, b schemas.Finding) int { return strings.Compare(a.FindingID, b.FindingID) })
	return d
}

// noDuplicates fails on a flow id or finding id present twice.
func noDuplicates(t *testing.T, d dataset) {
	t.Helper()
	for i := 1; i < len(d.flows); i++ {
		if d.flows[i].FlowID == d.flows[i-1].FlowID {
			t.Errorf("flow %s written twice", d.flows[i].FlowID)
		}
	}
	for i := 1; i < len(d.findings); i++ {
		if d.findings[i].FindingID == d.findings[i-1].FindingID {
			t.Errorf("finding %s written twice", d.findings[i].FindingID)
		}
	}
}

// inProcess replays files in process: the reference.
func inProcess(t *testing.T, files []string) dataset {
	t.Helper()
	dir := t.TempDir()
	runBin(t, append([]string{"replay", "--quiet", "--out", dir}, files...)...)
	return readDataset(t, dir)
}

// crossAddress are the finding kinds analyze leaves to aggregate.
var crossAddress = map[string]bool{schemas.KindThrottling: true, schemas.KindIPBlocking: true}

func kindsOf(fs []schemas.Finding) map[string]int {
	out := map[string]int{}
	for _, f := range fs {
		out[f.Kind]++
	}
	return out
}

func compareFlows(t *testing.T, want, got dataset, opts ...cmp.Option) {
	t.Helper()
	noDuplicates(t, got)
	if diff := cmp.Diff(want.flows, got.flows, opts...); diff != "" {
		t.Errorf("flows differ from the in-process run (-in-process +kafka):\n%s", diff)
	}
}

func TestKafkaEquivalence(t *testing.T) {
	addr := kafkaAddr(t)
	files := labCaptures(t)
	want := inProcess(t, files)
	if k := kindsOf(want.findings); len(want.flows) == 0 || k[schemas.KindIPBlocking] == 0 || k[schemas.KindThrottling] == 0 {
		t.Fatalf("reference run has %d flows and findings %v: no cross-address kind to compare", len(want.flows), k)
	}
	topic := uniqueTopic("equiv")
	runBin(t, append([]string{"replay", "--quiet", "--kafka", addr, "--topic", topic, "--partitions", "4"}, files...)...)
	for _, n := range []int{1, 3} {
		t.Run(fmt.Sprintf("analyzers=%d", n), func(t *testing.T) {
			out := t.TempDir()
			group := uniqueTopic("g")
			var cmds []*exec.Cmd
			for range n {
				cmds = append(cmds, startAnalyzer(t, addr, topic, group, out, "--idle-exit", "8s", "--findings-topic", "-"))
			}
			for _, c := range cmds {
				wait(t, c)
			}
			got := readDataset(t, out)
			compareFlows(t, want, got)
			for _, f := range got.findings {
				if crossAddress[f.Kind] {
					t.Errorf("analyze wrote a %s finding itself; cross-address kinds come from aggregate", f.Kind)
				}
			}
			// Twice, as from cron and then once the stream has ended: the
			// second run replaces the first one's findings, and produces
			// none of them to the findings topic again.
			findingsTopic := uniqueTopic("findings")
			for _, final := range []string{"--final=false", "--final"} {
				runBin(t, "aggregate", "--quiet", final, "--kafka", addr, "--findings-topic", findingsTopic, out)
			}
			got = readDataset(t, out)
			noDuplicates(t, got)
			if diff := cmp.Diff(want.findings, got.findings); diff != "" {
				t.Errorf("findings differ from the in-process run (-in-process +kafka and aggregate):\n%s", diff)
			}
			var cross []string
			for _, f := range want.findings {
				if crossAddress[f.Kind] {
					cross = append(cross, f.FindingID)
				}
			}
			if diff := cmp.Diff(cross, topicFindingIDs(t, addr, findingsTopic, len(cross))); diff != "" {
				t.Errorf("findings topic of aggregate (-want +got):\n%s", diff)
			}
		})
	}
}

// topicFindingIDs reads the findings ids of a one-partition topic, sorted:
// n of them, and then nothing more for 2 s.
func topicFindingIDs(t *testing.T, addr, topic string, n int) []string {
	t.Helper()
	r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: []string{addr}, Topic: topic, Partition: 0})
	defer r.Close()
	var ids []string
	for {
		wait := time.Minute
		if len(ids) >= n {
			wait = 2 * time.Second
		}
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		m, err := r.ReadMessage(ctx)
		cancel()
		if err != nil {
			if len(ids) < n {
				t.Fatalf("read %s after %d of %d findings: %v", topic, len(ids), n, err)
			}
			break
		}
		var f schemas.Finding
		if err := json.Unmarshal(m.Value, &f); err != nil {
			t.Fatalf("finding on %s: %v", topic, err)
		}
		ids = append(ids, f.FindingID)
	}
	slices.Sort(ids)
	return ids
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func committedFlowFiles(dir string) int {
	files, _ := filepath.Glob(filepath.Join(dir, "flows", "*", "*", "part-*.parquet"))
	return len(files)
}

// TestKafkaAnalyzerKilled SIGKILLs an analyzer once it has committed part
// of the stream and restarts it: every flow ends up in the datasets once,
// and the findings are those of one process.
func TestKafkaAnalyzerKilled(t *testing.T) {
	addr := kafkaAddr(t)
	pcap := filepath.Join(t.TempDir(), "gen.pcap")
	if out, err := exec.Command(filepath.Join(binDir, "gencap"), "-o", pcap, "-flows", "4000").CombinedOutput(); err != nil {
		t.Fatalf("gencap: %v\n%s", err, out)
	}
	want := inProcess(t, []string{pcap})
	topic := uniqueTopic("killed")
	runBin(t, "replay", "--quiet", "--kafka", addr, "--topic", topic, "--partitions", "4", pcap)
	out, group := t.TempDir(), uniqueTopic("g")

	a := startAnalyzer(t, addr, topic, group, out, "--checkpoint", "1ms")
	waitFor(t, time.Minute, "a committed flow file", func() bool { return committedFlowFiles(out) > 0 })
	if err := a.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	a.Wait()
	before := committedFlowFiles(out)

	b := startAnalyzer(t, addr, topic, group, out, "--idle-exit", "8s")
	wait(t, b)
	got := readDataset(t, out)
	t.Logf("%d flow files before the kill, %d flows in the end", before, len(got.flows))
	// A flow idle past its timeout when the stream ends is "idle" or "eof"
	// depending on when its engine last swept (docs/kafka.md).
	compareFlows(t, want, got, cmpopts.IgnoreFields(schemas.FlowRecord{}, "EndReason"))
	// Digests written before the kill are not written again: one per
	// window and partition, so aggregate's findings are not repeated.
	runBin(t, "aggregate", "--quiet", "--final", out)
	got = readDataset(t, out)
	noDuplicates(t, got)
	if diff := cmp.Diff(want.findings, got.findings); diff != "" {
		t.Errorf("findings differ from the in-process run (-in-process +killed, resumed and aggregated):\n%s", diff)
	}
	ids := map[string]bool{}
	if err := sink.ReadRecords(out, "digests", nil, func(d *schemas.WindowDigest) error {
		if ids[d.DigestID] {
			t.Errorf("digest %s written twice", d.DigestID)
		}
		ids[d.DigestID] = true
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(ids) == 0 {
		t.Error("no window digest written")
	}
}

// TestKafkaDeadLetter sends a message that does not decode between good
// ones: it lands on the dead-letter topic with its reason, the analyzer's
// metrics count it, and the analyzer carries on with the rest.
func TestKafkaDeadLetter(t *testing.T) {
	addr := kafkaAddr(t)
	files := labCaptures(t)[:1]
	want := inProcess(t, files)
	topic := uniqueTopic("dlq")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := kafka.CreateTopic(ctx, []string{addr}, kafka.Security{}, topic, 1); err != nil {
		t.Fatal(err)
	}
	w := &kafkago.Writer{Addr: kafkago.TCP(addr), Topic: topic, BatchTimeout: time.Millisecond}
	if err := w.WriteMessages(ctx, kafkago.Message{Key: []byte{0, 0, 0, 0}, Value: []byte("not a packet batch")}); err != nil {
		t.Fatal(err)
	}
	w.Close()
	runBin(t, append([]string{"replay", "--quiet", "--kafka", addr, "--topic", topic}, files...)...)
	out := t.TempDir()
	a, log := startAnalyzerLog(t, addr, topic, uniqueTopic("g"), out, "--idle-exit", "6s", "--metrics", "127.0.0.1:0")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if b, _ := os.ReadFile(log); bytes.Contains(b, []byte("serving metrics")) {
			checkMetric(t, string(b), "kafka_dead_letters_total", "analyze")
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the analyzer serves no metrics")
		}
	}
	wait(t, a)
	compareFlows(t, want, readDataset(t, out))

	r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: []string{addr}, Topic: topic + ".dlq", Partition: 0})
	defer r.Close()
	m, err := r.ReadMessage(ctx)
	if err != nil {
		t.Fatalf("read dead-letter topic: %v", err)
	}
	if string(m.Value) != "not a packet batch" {
		t.Errorf("dead letter holds %q, want the corrupt message", m.Value)
	}
	var reason string
	for _, h := range m.Headers {
		if h.Key == kafka.HeaderReason {
			reason = string(h.Value)
		}
	}
	if reason == "" {
		t.Errorf("dead letter has no %s header: %v", kafka.HeaderReason, m.Headers)
	}
}
