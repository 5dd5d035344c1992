package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tamperscope/tamperscope/capture/pcapfile"
	"github.com/tamperscope/tamperscope/ingest"
	"github.com/tamperscope/tamperscope/internal/testenv"
	"github.com/tamperscope/tamperscope/schemas"
	"github.com/tamperscope/tamperscope/transport/kafka"
)

// privateBroker is a broker of scripts/kafka.sh that only one test uses,
// on its own port and with its own data, so the test may stop and start
// it without disturbing the shared broker. The jars are the repository's
// cache, linked, not fetched again. env adds variables for kafka.sh, such
// as TAMPERSCOPE_KAFKA_SECURE.
type privateBroker struct {
	addr  string
	env   []string
	cache string // the script's cache: data, configuration, kafka.log
}

func startPrivateBroker(t *testing.T, env ...string) *privateBroker {
	t.Helper()
	kafkaAddr(t) // the broker tests were asked for
	if _, err := exec.LookPath("java"); err != nil {
		testenv.Need(t, "java not found: a private broker needs a Java 17 runtime")
	}
	jars, err := filepath.Abs("../../.cache/kafka/jars")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(jars, ".complete")); err != nil {
		if out, err := exec.Command("../../scripts/kafka.sh", "fetch").CombinedOutput(); err != nil {
			t.Fatalf("fetch Kafka jars: %v\n%s", err, out)
		}
	}
	cache := t.TempDir()
	if err := os.Symlink(jars, filepath.Join(cache, "jars")); err != nil {
		t.Fatal(err)
	}
	port := freePortPair(t)
	b := &privateBroker{
		cache: cache,
		addr:  "127.0.0.1:" + strconv.Itoa(port),
		env:   append(append(os.Environ(), "TAMPERSCOPE_KAFKA_PORT="+strconv.Itoa(port), "TAMPERSCOPE_KAFKA_CACHE="+cache), env...),
	}
	// Registered first: an "up" that fails half way still stops the JVM.
	t.Cleanup(func() {
		if err := b.script("down"); err != nil {
			t.Errorf("stop private broker: %v", err)
		}
	})
	b.up(t)
	return b
}

func (b *privateBroker) script(verb string) error {
	cmd := exec.Command("../../scripts/kafka.sh", verb)
	cmd.Env = b.env
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("kafka.sh %s: %v\n%s", verb, err, out)
	}
	return nil
}

func (b *privateBroker) up(t *testing.T) {
	t.Helper()
	if err := b.script("up"); err != nil {
		// The log lives in the test's temporary directory: show its end
		// before the directory goes.
		log, _ := os.ReadFile(filepath.Join(b.cache, "kafka.log"))
		if len(log) > 4000 {
			log = log[len(log)-4000:]
		}
		t.Fatalf("%v\nend of kafka.log:\n%s", err, log)
	}
}

func (b *privateBroker) down(t *testing.T) {
	t.Helper()
	if err := b.script("down"); err != nil {
		t.Fatal(err)
	}
}

// freePortPair returns a port that is free, as is the next one (the
// broker's controller listens there).
func freePortPair(t *testing.T) int {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l2, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port+1))
		l.Close()
		if err == nil {
			l2.Close()
			return port
		}
	}
	t.Fatal("no two consecutive free ports")
	return 0
}

// genCapture writes a generated capture of n TLS flows.
func genCapture(t *testing.T, flows int) string {
	t.Helper()
	pcap := filepath.Join(t.TempDir(), "gen.pcap")
	if out, err := exec.Command(filepath.Join(binDir, "gencap"), "-o", pcap, "-flows", strconv.Itoa(flows)).CombinedOutput(); err != nil {
		t.Fatalf("gencap: %v\n%s", err, out)
	}
	return pcap
}

// hookPublisher runs hook before the n-th Publish (counting from 1).
type hookPublisher struct {
	*kafka.Publisher
	calls int
	hooks map[int]func()
}

func (h *hookPublisher) Publish(ctx context.Context, b *schemas.PacketBatch) error {
	h.calls++
	if f := h.hooks[h.calls]; f != nil {
		f()
	}
	return h.Publisher.Publish(ctx, b)
}

// TestKafkaBrokerRestarted stops the broker in the middle of a stream and
// starts it again a few seconds later, while a capture-side Publisher
// (never blocking, as for a live capture) goes on publishing and an
// analyzer goes on consuming: every row the Publisher accepted reaches the
// datasets once.
func TestKafkaBrokerRestarted(t *testing.T) {
	b := startPrivateBroker(t)
	pcap := genCapture(t, 3000)
	want := inProcess(t, []string{pcap})
	topic := uniqueTopic("restart")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := kafka.CreateTopic(ctx, []string{b.addr}, kafka.Security{}, topic, 4); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	// The analyzer must outwait the outage and the broker's restart.
	a := startAnalyzer(t, b.addr, topic, uniqueTopic("g"), out, "--idle-exit", "15s", "--findings-topic", "-")

	pub, err := kafka.NewPublisher(ctx, kafka.PublisherConfig{
		Brokers: []string{b.addr}, Topic: topic, Partitions: 4,
		Linger: 20 * time.Millisecond, CloseTimeout: time.Minute, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	var stopped time.Time
	const outage = 3 * time.Second
	// 120 k packets in batches of 1000: the broker goes away after a third
	// of them, once some are acknowledged, and comes back after two thirds.
	hp := &hookPublisher{Publisher: pub, hooks: map[int]func(){
		40: func() {
			waitFor(t, 30*time.Second, "acknowledged rows before the outage", func() bool { return pub.Stats().AckedRows > 0 })
			b.down(t)
			stopped = time.Now()
		},
		80: func() {
			time.Sleep(time.Until(stopped.Add(outage))) // the outage is the scenario
			b.up(t)
		},
	}}
	src, err := pcapfile.Open(pcap, pcapfile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	ist, err := ingest.Run(ctx, src, hp, ingest.Config{BatchSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if hp.calls < 80 {
		t.Fatalf("only %d batches: the broker never went away mid-stream", hp.calls)
	}
	if err := pub.Close(); err != nil {
		t.Fatal(err)
	}
	st := pub.Stats()
	t.Logf("publisher: %+v", st)
	if st.DroppedRows != 0 || st.FailedRows != 0 || st.AckedRows != ist.Published {
		t.Errorf("published %d rows, acknowledged %d, dropped %d, failed %d: want every row acknowledged", ist.Published, st.AckedRows, st.DroppedRows, st.FailedRows)
	}
	if st.Retries == 0 {
		t.Errorf("no write was retried: the outage did not hit the publisher")
	}
	wait(t, a)
	compareFlows(t, want, readDataset(t, out), cmpopts.IgnoreFields(schemas.FlowRecord{}, "EndReason"))
}

var assignedRE = regexp.MustCompile(`kafka subscriber: assigned.* partitions="?\[([0-9 ]*)\]`)

// assignments returns the partition sets an analyzer's log says it was
// given, in order.
func assignments(log string) [][]int {
	b, _ := os.ReadFile(log)
	var out [][]int
	for _, m := range assignedRE.FindAllStringSubmatch(string(b), -1) {
		var ids []int
		for _, f := range strings.Fields(m[1]) {
			n, _ := strconv.Atoi(f)
			ids = append(ids, n)
		}
		out = append(out, ids)
	}
	return out
}

func lastAssignment(log string) []int {
	as := assignments(log)
	if len(as) == 0 {
		return nil
	}
	return as[len(as)-1]
}

// committedIn reports whether a flow file of one of the partitions has
// been committed.
func committedIn(dir, topic string, parts []int) bool {
	for _, p := range parts {
		files, _ := filepath.Glob(filepath.Join(dir, "flows", "*", "*", fmt.Sprintf("part-%s-p%d-*.parquet", topic, p)))
		if len(files) > 0 {
			return true
		}
	}
	return false
}

// TestKafkaGroupMemberKilled runs two analyzers in one group and SIGKILLs
// one while both hold partitions: the other takes its partitions over once
// the group notices, and every flow ends up in the datasets once.
func TestKafkaGroupMemberKilled(t *testing.T) {
	addr := kafkaAddr(t)
	pcap := genCapture(t, 4000)
	want := inProcess(t, []string{pcap})
	topic := uniqueTopic("member")
	runBin(t, "replay", "--quiet", "--kafka", addr, "--topic", topic, "--partitions", "6", pcap)
	out, group := t.TempDir(), uniqueTopic("g")

	// The killed member never ends the stream; the survivor must outwait
	// the session timeout (6 s, the broker's minimum) and the rebalance.
	a, aLog := startAnalyzerLog(t, addr, topic, group, out, "--checkpoint", "1ms", "--findings-topic", "-")
	b, bLog := startAnalyzerLog(t, addr, topic, group, out, "--idle-exit", "20s", "--findings-topic", "-")
	var aParts []int
	waitFor(t, time.Minute, "both analyzers holding partitions, one of the killed one's committed", func() bool {
		aParts = lastAssignment(aLog)
		return len(aParts) > 0 && len(lastAssignment(bLog)) > 0 && len(aParts)+len(lastAssignment(bLog)) == 6 &&
			committedIn(out, topic, aParts)
	})
	if err := a.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	a.Wait()
	wait(t, b)
	if got := lastAssignment(bLog); !slices.Equal(got, []int{0, 1, 2, 3, 4, 5}) {
		t.Errorf("the survivor's last assignment is %v, want every partition", got)
	}
	got := readDataset(t, out)
	t.Logf("killed member held partitions %v; %d flows in the end", aParts, len(got.flows))
	compareFlows(t, want, got, cmpopts.IgnoreFields(schemas.FlowRecord{}, "EndReason"))
}
