package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tamperscope/tamperscope/analyzer/detect"
	"github.com/tamperscope/tamperscope/schemas"
	"github.com/tamperscope/tamperscope/sink"
	"github.com/tamperscope/tamperscope/transport/kafka"
)

const aggregateExamples = `  tamperscope analyze --kafka 127.0.0.1:9092 --group analyzers --out datasets/ --idle-exit 30s
  tamperscope aggregate --final datasets/                     # the stream has ended: judge every window
  tamperscope aggregate datasets/                             # from cron over a live stream
  tamperscope aggregate --kafka 127.0.0.1:9092 datasets/     # and produce new findings to tamperscope.packets.findings
  tamperscope aggregate --format json datasets/ | jq 'select(.kind == "ip_blocking")'
`

// aggregateSet names the findings files aggregate writes: one set, which
// each run replaces.
const aggregateSet = "aggregate"

type aggregateConfig struct {
	root          string
	format        string
	quiet         bool
	final         bool
	wait          time.Duration
	kafka         kafkaFlags
	findingsTopic string
}

func runAggregate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg aggregateConfig
	fs := newFlagSet("aggregate", "aggregate [flags] DIR", aggregateExamples, stderr)
	fs.StringVar(&cfg.format, "format", "table", "stdout output: table (findings table) or json (findings as JSON lines)")
	fs.BoolVar(&cfg.quiet, "quiet", false, "print nothing but errors (and JSON lines with --format json)")
	fs.BoolVar(&cfg.final, "final", false, "the stream has ended (analyze --idle-exit): judge every window, not only those every partition has passed")
	fs.DurationVar(&cfg.wait, "wait", time.Hour, "stop waiting for a partition that is this far (packet time) behind the most advanced one: idle, or its analyzer down")
	cfg.kafka.register(fs, false)
	fs.StringVar(&cfg.findingsTopic, "findings-topic", "", "with --kafka, produce the findings that are new or changed since the last run to `TOPIC` (default <topic>.findings, as analyze)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var sec *kafka.Security
	switch {
	case cfg.kafka.enabled():
		s, err := cfg.kafka.security()
		if err != nil {
			return usageError{err}
		}
		sec = &s
		cfg.findingsTopic = cfg.kafka.findingsTopic(cfg.findingsTopic)
	case cfg.findingsTopic != "":
		return usageError{errors.New("--findings-topic needs --kafka")}
	}
	switch {
	case fs.NArg() != 1:
		return usageError{errors.New("want exactly one dataset directory (the --out of tamperscope analyze)")}
	case cfg.format != "table" && cfg.format != "json":
		return usageError{fmt.Errorf("unknown --format %q: want table or json", cfg.format)}
	}
	cfg.root = fs.Arg(0)
	return aggregate(ctx, cfg, sec, stdout)
}

// aggregate runs the cross-address detectors (ip_blocking, throttling)
// over the window digests every partition's analyzer wrote under
// cfg.root, and writes their findings to its findings/ dataset as the set
// "aggregate", replacing those of an earlier run. With sec, the findings
// not in that earlier run, or changed, go to the findings topic first.
//
// Only final windows count: those every partition has passed, that is
// judged a window starting at or after them (partitions judge their
// windows in order), or every window with cfg.final. The others wait for
// a later run: their facts may still be coming. A partition more than
// cfg.wait behind the most advanced one stops holding windows back; should
// its digests come after all, a later run judges those windows again and
// produces the findings that changed.
func aggregate(ctx context.Context, cfg aggregateConfig, sec *kafka.Security, stdout io.Writer) error {
	if st, err := os.Stat(cfg.root); err != nil || !st.IsDir() {
		return fmt.Errorf("aggregate: %s is not a dataset directory", cfg.root)
	}
	paths, err := sink.CommittedFiles(cfg.root, "digests")
	if err != nil {
		return fmt.Errorf("aggregate: %w", err)
	}
	if len(paths) == 0 {
		return fmt.Errorf("aggregate: no window digests under %s: they are written by tamperscope analyze (replay, batch and capture judge every window themselves)",
			filepath.Join(cfg.root, "digests"))
	}
	dc, err := json.Marshal(detect.Config{}.Effective())
	if err != nil {
		return fmt.Errorf("aggregate: encode detector configuration: %w", err)
	}
	prev := map[string][]byte{}
	err = sink.ReadRecords(cfg.root, "findings", func(p string) bool { return isAggregateFile(filepath.Base(p)) }, func(f *schemas.Finding) error {
		b, err := json.Marshal(f)
		prev[f.FindingID] = b
		return err
	})
	if err != nil {
		return fmt.Errorf("aggregate: read the findings of the last run: %w", err)
	}
	horizon := int64(math.MaxInt64)
	if !cfg.final {
		if horizon, err = finalHorizon(ctx, paths, cfg.wait); err != nil {
			return fmt.Errorf("aggregate: %w", err)
		}
	}
	out, err := newOutput(stdout, cfg.format, cfg.root, aggregateSet)
	if err != nil {
		return err
	}
	var werr error
	emit := func(f *schemas.Finding) {
		if werr == nil {
			werr = out.Finding(f)
		}
	}
	// A window lies in the hour directory of its start: judging one
	// directory at a time holds an hour of digests in memory, not all.
	judged, waiting := 0, map[int64]bool{}
	for len(paths) > 0 && werr == nil {
		n := 1
		for n < len(paths) && filepath.Dir(paths[n]) == filepath.Dir(paths[0]) {
			n++
		}
		var digests []*detect.Digest
		digests, werr = readDigests(ctx, paths[:n], string(dc))
		final := slices.DeleteFunc(digests, func(d *detect.Digest) bool {
			if d.WindowStartNs > horizon {
				waiting[d.WindowStartNs] = true
				return true
			}
			return false
		})
		detect.Aggregate(detect.Config{}, final, emit)
		judged += len(final)
		paths = paths[n:]
	}
	if werr == nil && sec != nil {
		werr = publishNew(ctx, cfg, *sec, out.findings, prev)
	}
	if werr != nil {
		return errors.Join(fmt.Errorf("aggregate: %w", werr), out.ds.Abort())
	}
	published, err := out.ds.Commit(aggregateSet)
	if err != nil {
		return errors.Join(fmt.Errorf("aggregate: commit findings: %w", err), out.ds.Abort())
	}
	if err := out.ds.Close(); err != nil {
		return fmt.Errorf("aggregate: %w", err)
	}
	if err := removeStale(cfg.root, published); err != nil {
		return fmt.Errorf("aggregate: %w", err)
	}
	if !cfg.quiet && !out.json {
		printFindings(stdout, out.findings)
		fmt.Fprintf(stdout, "%d window digests of %s judged; %d findings in %s\n",
			judged, cfg.root, len(out.findings), filepath.Join(cfg.root, "findings"))
		if len(waiting) > 0 {
			fmt.Fprintf(stdout, "%d windows wait until every partition has passed them (or --final, once the stream has ended)\n", len(waiting))
		}
	}
	return nil
}

// finalHorizon returns the start of the latest final window: the latest
// window start every partition that wrote a digest has reached, or is
// within wait of the most advanced partition. A partition judges its
// windows in order, so one that judged a window has judged every earlier
// one, those it had no flow in included.
func finalHorizon(ctx context.Context, paths []string, wait time.Duration) (int64, error) {
	reached := map[string]int64{} // by partition: <topic>-p<id>
	for _, path := range paths {
		err := sink.ReadFile(path, func(r *schemas.WindowDigest) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			i := strings.LastIndex(r.DigestID, "-w")
			if i < 0 {
				return fmt.Errorf("window digest id %q: not <topic>-p<partition>-w<start>-<n>", r.DigestID)
			}
			part := r.DigestID[:i]
			if at, ok := reached[part]; !ok || r.WindowStartNs > at {
				reached[part] = r.WindowStartNs
			}
			return nil
		})
		if err != nil {
			return 0, fmt.Errorf("read digests: %w", err)
		}
	}
	front := int64(math.MinInt64)
	for _, at := range reached {
		front = max(front, at)
	}
	horizon := int64(math.MaxInt64)
	for _, at := range reached {
		horizon = min(horizon, max(at, front-int64(wait)))
	}
	return horizon, nil
}

// readDigests reads the digests of files, once each: a set re-committed
// under another name after a crash repeats its digest ids. Files written
// with another detector configuration than dc are refused: windows judged
// with other settings would mix with these rules'.
func readDigests(ctx context.Context, files []string, dc string) ([]*detect.Digest, error) {
	var digests []*detect.Digest
	seen := map[string]bool{}
	for _, path := range files {
		f, err := sink.OpenFile(path, 1)
		if err != nil {
			return nil, err
		}
		got := f.Meta(sink.MetaDetectorConfig)
		f.Close()
		if got != dc {
			return nil, fmt.Errorf("%s was written with detector configuration %s, and aggregate runs %s: aggregate with the tamperscope version that analyzed it", path, got, dc)
		}
		err = sink.ReadFile(path, func(r *schemas.WindowDigest) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			if seen[r.DigestID] {
				return nil
			}
			seen[r.DigestID] = true
			d := &detect.Digest{}
			if err := json.Unmarshal([]byte(r.Digest), d); err != nil {
				return fmt.Errorf("window digest %s: %w", r.DigestID, err)
			}
			digests = append(digests, d)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("read digests: %w", err)
		}
	}
	return digests, nil
}

// publishNew produces the findings whose id the last run did not have, or
// had with other values, to the findings topic, creating it when missing.
func publishNew(ctx context.Context, cfg aggregateConfig, sec kafka.Security, fs []schemas.Finding, prev map[string][]byte) error {
	var fresh []schemas.Finding
	for i := range fs {
		b, err := json.Marshal(&fs[i])
		if err != nil {
			return err
		}
		if !bytes.Equal(prev[fs[i].FindingID], b) {
			fresh = append(fresh, fs[i])
		}
	}
	if len(fresh) == 0 {
		return nil
	}
	brokers := cfg.kafka.brokerList()
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := kafka.CreateTopic(cctx, brokers, sec, cfg.findingsTopic, 1); err != nil {
		return err
	}
	w, err := kafka.NewRecordWriter(brokers, sec, cfg.findingsTopic, nil)
	if err != nil {
		return err
	}
	defer w.Close()
	if err := publishFindings(ctx, w, fresh); err != nil {
		return fmt.Errorf("produce findings to %s: %w", cfg.findingsTopic, err)
	}
	slog.Info("aggregate: findings produced", "topic", cfg.findingsTopic, "new_or_changed", len(fresh), "unchanged", len(fs)-len(fresh))
	return nil
}

// removeStale deletes the findings files of an earlier aggregate run that
// this one did not replace (hours where the findings are gone). The new
// set is published first, so a crash in between leaves both, never none.
func removeStale(root string, published []string) error {
	paths, err := sink.CommittedFiles(root, "findings")
	if err != nil {
		return err
	}
	for _, p := range paths {
		if isAggregateFile(filepath.Base(p)) && !slices.Contains(published, p) {
			if err := os.Remove(p); err != nil {
				return err
			}
		}
	}
	return nil
}

// isAggregateFile: part-aggregate-<k>.parquet, and not the set of a topic
// named aggregate (part-aggregate-p<partition>-...).
func isAggregateFile(name string) bool {
	k, ok := strings.CutPrefix(name, "part-"+aggregateSet+"-")
	k, ok2 := strings.CutSuffix(k, ".parquet")
	_, err := strconv.ParseUint(k, 10, 32)
	return ok && ok2 && err == nil
}
