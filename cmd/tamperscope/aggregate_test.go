package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

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
	const hour = int64(3600e9)
	start := int64(1_700_000_400e9) / hour * hour
	hours := []int64{start, start + hour}
	var digests []schemas.WindowDigest
	for _, h := range hours {
		digests = append(digests, blockedDigest("t-p0", h))
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

// blockedDigest is partition part's digest of the window starting at
// startNs: every flow to 192.0.2.4 timed out after its SYN, while a.test,
// one of its names, works on 192.0.2.5.
func blockedDigest(part string, startNs int64) schemas.WindowDigest {
	var flows []string
	for i := range 3 {
		flows = append(flows, fmt.Sprintf(`{"id":"C%d-%d","start_ns":%d,"end_ns":%d,"server_ip":"192.0.2.4","server_port":443,"outcome":"timeout","stage":"post_syn","syn_seen":true}`,
			startNs, i, startNs+int64(i), startNs+int64(i)+1))
	}
	return schemas.WindowDigest{DigestID: fmt.Sprintf("%s-w%d-0", part, startNs), WindowStartNs: startNs,
		Digest: fmt.Sprintf(`{"window_start_ns":%d,"facts":{"ok_names":{"192.0.2.5":["a.test"]},"candidates":0},"addresses":[{"ip":"192.0.2.4","collateral":["a.test","b.test"],"flows":[%s]}]}`,
			startNs, strings.Join(flows, ","))}
}

// quietDigest is partition part's digest of a window with nothing to
// report.
func quietDigest(part string, startNs int64) schemas.WindowDigest {
	return schemas.WindowDigest{DigestID: fmt.Sprintf("%s-w%d-0", part, startNs), WindowStartNs: startNs,
		Digest: fmt.Sprintf(`{"window_start_ns":%d,"facts":{"ok_names":{"192.0.2.9":["c.test"]},"candidates":0}}`, startNs)}
}

// TestAggregateWaitsForPartitions: a window is judged once every partition
// has passed it (judged it or a later one); until then its facts may still
// be coming, and its findings wait, but not for a partition further behind
// than --wait. --final judges every window.
func TestAggregateWaitsForPartitions(t *testing.T) {
	dc, err := json.Marshal(detect.Config{}.Effective())
	if err != nil {
		t.Fatal(err)
	}
	const w = int64(600e9)
	w1, w2 := int64(1_700_000_400e9)/w*w, int64(1_700_000_400e9)/w*w+w
	windows := func(dir string, args ...string) (starts []int64, stdout string) {
		t.Helper()
		code, out, stderr := run(t, append(append([]string{"aggregate"}, args...), dir)...)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		if err := sink.ReadRecords(dir, "findings", nil, func(f *schemas.Finding) error {
			starts = append(starts, f.WindowStartNs)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		slices.Sort(starts)
		return starts, string(out)
	}
	cfg := func(set string) sink.Config { return sink.Config{Name: set, DetectorConfig: string(dc)} }
	early := func(dir string) { // p1 has not reached the second window yet
		writeDigests(t, dir, cfg("t-p0-0-9"), blockedDigest("t-p0", w1), blockedDigest("t-p0", w2))
		writeDigests(t, dir, cfg("t-p1-0-9"), quietDigest("t-p1", w1))
	}

	dir := t.TempDir()
	early(dir)
	got, out := windows(dir)
	if !slices.Equal(got, []int64{w1}) || !strings.Contains(out, "1 windows wait") {
		t.Errorf("p1 behind: findings of windows %v, output %q; want the first window's only, the second waiting", got, out)
	}
	writeDigests(t, dir, cfg("t-p1-10-19"), quietDigest("t-p1", w2))
	if got, _ := windows(dir); !slices.Equal(got, []int64{w1, w2}) {
		t.Errorf("p1 caught up: findings of windows %v, want both", got)
	}

	final := t.TempDir()
	early(final)
	if got, _ := windows(final, "--final"); !slices.Equal(got, []int64{w1, w2}) {
		t.Errorf("--final: findings of windows %v, want both", got)
	}

	// p1 stays at w1 while p0 goes on for an hour and a half: the windows
	// more than --wait behind p0 are judged without waiting for p1.
	idle := t.TempDir()
	early(idle)
	var later []schemas.WindowDigest
	for i := range int64(8) {
		later = append(later, blockedDigest("t-p0", w2+(i+1)*w))
	}
	writeDigests(t, idle, cfg("t-p0-10-19"), later...)
	got, _ = windows(idle, "--wait", "30m")
	front := w2 + 8*w
	var want []int64
	for s := w1; s <= front-int64(30*time.Minute); s += w {
		want = append(want, s)
	}
	if !slices.Equal(got, want) {
		t.Errorf("p1 idle at the first window, p0 nine windows on, --wait 30m: findings of windows %v, want %v", got, want)
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
