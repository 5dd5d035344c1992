package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

const labCapture = "../../lab/testdata/sni-reset-seed1/capture.pcap"

// TestReplayStdin: "-" reads a capture from standard input and gives the
// same records as the file.
func TestReplayStdin(t *testing.T) {
	code, fromFile, stderr := run(t, "replay", "--format", "json", labCapture)
	if code != exitOK {
		t.Fatalf("replay file: exit %d: %s", code, stderr)
	}
	f, err := os.Open(labCapture)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	saved := os.Stdin
	os.Stdin = f
	defer func() { os.Stdin = saved }()
	code, fromStdin, stderr := run(t, "replay", "--format", "json", "-")
	if code != exitOK {
		t.Fatalf("replay -: exit %d: %s", code, stderr)
	}
	if len(fromFile) == 0 || !bytes.Equal(fromFile, fromStdin) {
		t.Errorf("stdin gave %d bytes of records, the file %d; want the same", len(fromStdin), len(fromFile))
	}
}

// TestReplayExitCodes: unreadable input fails clearly; a corrupt tail is
// analyzed up to the damage and exits 3; bad flags exit 2.
func TestReplayExitCodes(t *testing.T) {
	dir := t.TempDir()
	good, err := os.ReadFile(labCapture)
	if err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(dir, "cut.pcap")
	if err := os.WriteFile(cut, good[:len(good)-7], 0o644); err != nil {
		t.Fatal(err)
	}
	junk := filepath.Join(dir, "junk.pcap")
	if err := os.WriteFile(junk, []byte("not a capture at all"), 0o644); err != nil {
		t.Fatal(err)
	}
	checkExits(t, []exitCase{
		{"truncated tail", []string{"replay", "--quiet", cut}, exitPartial, "cut.pcap"},
		{"not a capture", []string{"replay", junk}, exitFailure, "junk.pcap"},
		{"one good, one bad", []string{"replay", "--quiet", labCapture, junk}, exitPartial, "junk.pcap"},
		{"missing file", []string{"replay", filepath.Join(dir, "nope.pcap")}, exitFailure, "nope.pcap"},
		{"no files", []string{"replay"}, exitUsage, "no capture files"},
		{"bad format", []string{"replay", "--format", "xml", labCapture}, exitUsage, "--format"},
	})
}

// exitCase is a command line, its exit code and a word its stderr has.
type exitCase struct {
	name string
	args []string
	code int
	msg  string
}

func checkExits(t *testing.T, cases []exitCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := run(t, tc.args...)
			if code != tc.code || !bytes.Contains(stderr, []byte(tc.msg)) {
				t.Errorf("exit %d, stderr %q; want exit %d mentioning %q", code, stderr, tc.code, tc.msg)
			}
		})
	}
}

// TestReplayProfiles: --cpuprofile and --memprofile write pprof profiles
// (gzipped protocol buffers) and --trace a Go execution trace.
func TestReplayProfiles(t *testing.T) {
	dir := t.TempDir()
	cpu, mem, trace := filepath.Join(dir, "cpu"), filepath.Join(dir, "mem"), filepath.Join(dir, "trace")
	if code, _, stderr := run(t, "replay", "--quiet", "--cpuprofile", cpu, "--memprofile", mem, "--trace", trace, labCapture); code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, f := range []struct{ path, prefix string }{{cpu, "\x1f\x8b"}, {mem, "\x1f\x8b"}, {trace, "go 1."}} {
		b, err := os.ReadFile(f.path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(b, []byte(f.prefix)) || len(b) < 64 {
			t.Errorf("%s: %d bytes starting %q, want a file starting %q", filepath.Base(f.path), len(b), b[:min(len(b), 16)], f.prefix)
		}
	}
}
