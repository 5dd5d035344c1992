package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/tamperscope/tamperscope/internal/testenv"
)

// TestCaptureUnit: systemd reads tamperscope-capture.service without a
// complaint (systemd-analyze verify, with the binary it starts in a
// place of the test's own), and rates its sandbox at an exposure of 3 or
// less ("OK" or better; systemd-analyze security).
func TestCaptureUnit(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		testenv.Need(t, "systemd-analyze (Debian's systemd package)")
	}
	unit, err := os.ReadFile("tamperscope-capture.service")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "tamperscope")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(unit), "/usr/local/bin/tamperscope ") {
		t.Fatal("the unit does not start /usr/local/bin/tamperscope")
	}
	path := filepath.Join(dir, "tamperscope-capture.service")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(string(unit), "/usr/local/bin/tamperscope", bin)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("systemd-analyze", "verify", path).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	out, err = exec.Command("systemd-analyze", "security", "--offline=yes", path).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("systemd-analyze security gave no exposure level:\n%s", out)
	}
	if level, _ := strconv.ParseFloat(string(m[1]), 64); level > 3 {
		t.Errorf("exposure level %.1f, want at most 3:\n%s", level, out)
	}
}
