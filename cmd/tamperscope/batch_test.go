package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// jsonRecords splits replay/batch JSON lines into flows and findings, each
// sorted by its canonical encoding so that order does not matter.
func jsonRecords(t *testing.T, out []byte) (flows, findings []map[string]any) {
	t.Helper()
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("bad JSON line %q: %v", sc.Text(), err)
		}
		switch m["record"] {
		case "flow":
			flows = append(flows, m)
		case "finding":
			findings = append(findings, m)
		default:
			t.Fatalf("line without a record kind: %s", sc.Text())
		}
	}
	key := func(m map[string]any) string { b, _ := json.Marshal(m); return string(b) } // sorted keys
	for _, s := range [][]map[string]any{flows, findings} {
		slices.SortFunc(s, func(a, b map[string]any) int { return strings.Compare(key(a), key(b)) })
	}
	return flows, findings
}

func run(t *testing.T, args ...string) (code int, stdout, stderr []byte) {
	t.Helper()
	var o, e bytes.Buffer
	code = mainExit(args, &o, &e)
	return code, o.Bytes(), e.Bytes()
}

func parquetFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".parquet") {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	return out
}

// TestBatchMatchesReplay: re-running the detectors over the packets/
// archive of a replay gives the replay's flow records and findings, field
// for field.
func TestBatchMatchesReplay(t *testing.T) {
	for _, tc := range []struct{ name, pcap string }{
		{"tripwire", "../../../shared/corpus/censorship-tripwire/testdata/tripwire-1597963966.pcap"},
		{"lab sni-reset", "../../lab/testdata/sni-reset-seed1/capture.pcap"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := os.Stat(tc.pcap); err != nil {
				t.Fatalf("capture: %v", err)
			}
			dir := t.TempDir()
			archive, rerun := filepath.Join(dir, "archive"), filepath.Join(dir, "rerun")
			code, replayOut, stderr := run(t, "replay", "--packets", "--keep-payload", "--out", archive, "--format", "json", "--vantage", "lab", tc.pcap)
			if code != exitOK {
				t.Fatalf("replay exit %d: %s", code, stderr)
			}
			code, batchOut, stderr := run(t, "batch", "--packets", archive, "--out", rerun, "--format", "json")
			if code != exitOK {
				t.Fatalf("batch exit %d: %s", code, stderr)
			}
			wantFlows, wantFindings := jsonRecords(t, replayOut)
			gotFlows, gotFindings := jsonRecords(t, batchOut)
			if len(wantFlows) == 0 || len(wantFindings) == 0 {
				t.Fatalf("replay gave %d flows, %d findings: nothing to compare", len(wantFlows), len(wantFindings))
			}
			named := 0
			for _, f := range wantFlows {
				if f["sni"] != "" || f["http_host"] != "" {
					named++
				}
			}
			if named == 0 {
				t.Error("no flow names a host: SNI and Host extraction are not compared")
			}
			if diff := cmp.Diff(wantFlows, gotFlows); diff != "" {
				t.Errorf("flows differ (-replay +batch):\n%s", diff)
			}
			if diff := cmp.Diff(wantFindings, gotFindings); diff != "" {
				t.Errorf("findings differ (-replay +batch):\n%s", diff)
			}
			files := parquetFiles(t, rerun)
			var flows, findings int
			for _, f := range files {
				switch strings.SplitN(f, string(filepath.Separator), 2)[0] {
				case "flows":
					flows++
				case "findings":
					findings++
				default:
					t.Errorf("batch wrote %s", f)
				}
			}
			if flows == 0 || findings == 0 {
				t.Errorf("batch datasets: %v", files)
			}
		})
	}
}

func TestBatchBadInput(t *testing.T) {
	dir := t.TempDir()
	archive := filepath.Join(dir, "archive")
	if code, _, stderr := run(t, "replay", "--packets", "--out", archive, "--quiet", "../../lab/testdata/sni-reset-seed1/capture.pcap"); code != exitOK {
		t.Fatalf("replay exit %d: %s", code, stderr)
	}
	pkts := parquetFiles(t, filepath.Join(archive, "packets"))
	if len(pkts) == 0 {
		t.Fatal("replay wrote no packets files")
	}
	corrupt := filepath.Join(dir, "corrupt")
	if err := os.CopyFS(corrupt, os.DirFS(archive)); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(corrupt, "packets", filepath.Dir(pkts[0]), "part-broken-0.parquet")
	if err := os.WriteFile(bad, []byte("PAR1 not a parquet file PAR1"), 0o644); err != nil {
		t.Fatal(err)
	}
	noPackets := filepath.Join(dir, "flows-only")
	if err := os.MkdirAll(filepath.Join(noPackets, "flows"), 0o755); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		args    []string
		code    int
		stderr  string
		noOut   bool // --out must not have been created
		outRows bool // the run still wrote flows
	}{
		{"missing directory", []string{"--packets", filepath.Join(dir, "nope"), "--out", filepath.Join(dir, "o1")}, exitFailure, "no such file", true, false},
		{"no packets dataset", []string{"--packets", noPackets, "--out", filepath.Join(dir, "o2")}, exitFailure, "no packets/ dataset", true, false},
		{"corrupt file", []string{"--packets", corrupt, "--out", filepath.Join(dir, "o3")}, exitPartial, "part-broken-0.parquet", false, true},
		{"out is the archive", []string{"--packets", archive, "--out", archive + "/"}, exitUsage, "mix", false, false},
		{"no packets flag", []string{"--out", filepath.Join(dir, "o5")}, exitUsage, "--packets", true, false},
		{"stray argument", []string{"--packets", archive, "x.pcap"}, exitUsage, "unexpected", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := run(t, append([]string{"batch", "--quiet"}, tt.args...)...)
			if code != tt.code || !strings.Contains(string(stderr), tt.stderr) {
				t.Errorf("exit %d, stderr %q; want exit %d mentioning %q", code, stderr, tt.code, tt.stderr)
			}
			out := tt.args[len(tt.args)-1]
			if tt.noOut {
				if _, err := os.Stat(out); err == nil {
					t.Errorf("%s created", out)
				}
			}
			if tt.outRows && len(parquetFiles(t, filepath.Join(out, "flows"))) == 0 {
				t.Errorf("no flows written to %s", out)
			}
		})
	}
}

// TestBatchWarnsWithoutPayloads: an archive whose payload column is empty
// cannot give names back, and batch says so instead of reporting fewer
// findings silently.
func TestBatchWarnsWithoutPayloads(t *testing.T) {
	dir := t.TempDir()
	archive := filepath.Join(dir, "archive")
	if code, _, stderr := run(t, "replay", "--packets", "--keep-payload", "--out", archive, "--quiet", "../../lab/testdata/sni-reset-seed1/capture.pcap"); code != exitOK {
		t.Fatalf("replay exit %d: %s", code, stderr)
	}
	if code, _, stderr := run(t, "batch", "--packets", archive, "--quiet"); code != exitOK || strings.Contains(string(stderr), "no payload") {
		t.Fatalf("archive with payloads: exit %d, stderr %s", code, stderr)
	}
	// Without --keep-payload replay archives no payloads, as capture does.
	stripped := filepath.Join(dir, "stripped")
	if code, _, stderr := run(t, "replay", "--packets", "--out", stripped, "--quiet", "../../lab/testdata/sni-reset-seed1/capture.pcap"); code != exitOK {
		t.Fatalf("replay exit %d: %s", code, stderr)
	}
	code, _, stderr := run(t, "batch", "--packets", stripped, "--quiet")
	if code != exitOK || !strings.Contains(string(stderr), "no payload snapshots") {
		t.Errorf("exit %d, stderr %q; want a warning about missing payloads", code, stderr)
	}
}
