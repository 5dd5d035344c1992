package main

import (
	"encoding/json"
	"os"
	"path/filepath"
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
	ds, err := sink.Open(corrupt, sink.Config{DetectorConfig: string(dc)})
	if err != nil {
		t.Fatal(err)
	}
	if err := ds.WriteDigest(&schemas.WindowDigest{DigestID: "t-p0-w0", Digest: "{not json"}); err != nil {
		t.Fatal(err)
	}
	if err := ds.Close(); err != nil {
		t.Fatal(err)
	}
	otherConfig := filepath.Join(dir, "other-config")
	ds, err = sink.Open(otherConfig, sink.Config{DetectorConfig: `{"Window":60000000000}`})
	if err != nil {
		t.Fatal(err)
	}
	if err := ds.WriteDigest(&schemas.WindowDigest{DigestID: "t-p0-w0-0", Digest: "{}"}); err != nil {
		t.Fatal(err)
	}
	if err := ds.Close(); err != nil {
		t.Fatal(err)
	}
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
