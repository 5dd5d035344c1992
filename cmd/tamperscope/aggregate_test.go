package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tamperscope/tamperscope/analyzer/detect"
	"github.com/tamperscope/tamperscope/schemas"
	"github.com/tamperscope/tamperscope/sink"
)

func TestAggregateRefusals(t *testing.T) {
	dir := t.TempDir()
	replayed := filepath.Join(dir, "replayed")
	if code, _, stderr := run(t, "replay", "--quiet", "--out", replayed, labCapture); code != 0 {
		t.Fatalf("replay: exit %d: %s", code, stderr)
	}
	dc, err := json.Marshal(detect.Config{}.Effective())
	if err != nil {
		t.Fatal(err)
	}
	corrupt := filepath.Join(dir, "corrupt")
	writeDigests(t, corrupt, sink.Config{DetectorConfig: string(dc)}, schemas.WindowDigest{DigestID: "t-p0-w0", Digest: "{not json"})
	otherConfig := filepath.Join(dir, "other-config")
	writeDigests(t, otherConfig, sink.Config{DetectorConfig: `{"Window":60000000000}`}, schemas.WindowDigest{DigestID: "t-p0-w0-0", Digest: "{}"})
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	checkExits(t, []exitCase{
		{"no directory", []string{"aggregate"}, exitUsage, "exactly one dataset directory"},
		{"bad format", []string{"aggregate", "--format", "xml", replayed}, exitUsage, "--format"},
		{"findings topic without Kafka", []string{"aggregate", "--findings-topic", "f", replayed}, exitUsage, "needs --kafka"},
		{"missing directory", []string{"aggregate", filepath.Join(dir, "nope")}, exitFailure, "not a dataset directory"},
		{"a file", []string{"aggregate", file}, exitFailure, "not a dataset directory"},
		// replay judges every window itself and writes no digests.
		{"replay output", []string{"aggregate", replayed}, exitFailure, "no window digests"},
		{"corrupt digest", []string{"aggregate", corrupt}, exitFailure, "window digest t-p0-w0"},
		{"other detector configuration", []string{"aggregate", otherConfig}, exitFailure, "written with detector configuration"},
	})
}

// TestIsAggregateFile: a rerun removes its own stale files, never the
// sets of an analyzer, even of a topic named "aggregate".
func TestIsAggregateFile(t *testing.T) {
	for name, want := range map[string]bool{
		"part-aggregate-0.parquet":                  true,
		"part-aggregate-12.parquet":                 true,
		"part-aggregate-p0-5-9-0.parquet":           false,
		"part-aggregate-p0-5-9+1-0.parquet":         false,
		"part-tamperscope.packets-p1-0-3-0.parquet": false,
		"part-aggregate-0.parquet.tmp":              false,
	} {
		if got := isAggregateFile(name); got != want {
			t.Errorf("isAggregateFile(%q) = %v, want %v", name, got, want)
		}
	}
}

// TestAggregateAcrossHours: digests of windows in two hours, and a
// partition's digest repeated by a set re-committed under another name,
// are judged hour by hour into one finding per window, and a second run
// replaces the first's files.
func TestAggregateAcrossHours(t *testing.T) {
	dir := t.TempDir()
	dc, err := json.Marshal(detect.Config{}.Effective())
	if err != nil {
		t.Fatal(err)
	}
	blocked := func(startNs int64) string {
		var flows []string
		for i := range 3 { // every flow to the address timed out after its SYN
			flows = append(flows, fmt.Sprintf(`{"id":"C%d-%d","start_ns":%d,"end_ns":%d,"server_ip":"192.0.2.4","server_port":443,"outcome":"timeout","stage":"post_syn","syn_seen":true}`,
				startNs, i, startNs+int64(i), startNs+int64(i)+1))
		}
		return fmt.Sprintf(`{"window_start_ns":%d,"facts":{"ok_names":{"192.0.2.5":["a.test"]},"candidates":0},"addresses":[{"ip":"192.0.2.4","collateral":["a.test","b.test"],"flows":[%s]}]}`,
			startNs, strings.Join(flows, ","))
	}
	const hour = int64(3600e9)
	start := int64(1_700_000_400e9) / hour * hour
	hours := []int64{start, start + hour}
	var digests []schemas.WindowDigest
	for _, h := range hours {
		digests = append(digests, schemas.WindowDigest{DigestID: fmt.Sprintf("t-p0-w%d-0", h), WindowStartNs: h, Digest: blocked(h)})
	}
	for set := range 2 { // the second set repeats the first's digest ids
		writeDigests(t, dir, sink.Config{Name: fmt.Sprintf("t-p0-s%d", set), DetectorConfig: string(dc)}, digests...)
	}
	for i := range 2 {
		if code, _, stderr := run(t, "aggregate", "--quiet", dir); code != 0 {
			t.Fatalf("run %d: exit %d: %s", i, code, stderr)
		}
	}
	var got []schemas.Finding
	if err := sink.ReadRecords(dir, "findings", nil, func(f *schemas.Finding) error {
		got = append(got, *f)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("%d findings, want one ip_blocking per window: %+v", len(got), got)
	}
	for i, f := range got {
		if f.Kind != schemas.KindIPBlocking || f.WindowStartNs != hours[i] || f.Flows != 3 || !strings.Contains(f.Evidence, "1 of them reachable on other addresses") {
			t.Errorf("finding %d: %s from %d of %d flows, %q; want ip_blocking from %d of 3 flows, a.test reachable elsewhere",
				i, f.Kind, f.WindowStartNs, f.Flows, f.Evidence, hours[i])
		}
	}
}

// writeDigests commits digests to the dataset under dir.
func writeDigests(t *testing.T, dir string, cfg sink.Config, digests ...schemas.WindowDigest) {
	t.Helper()
	ds, err := sink.Open(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i := range digests {
		if err := ds.WriteDigest(&digests[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := ds.Close(); err != nil {
		t.Fatal(err)
	}
}
