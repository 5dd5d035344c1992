// Package labtest holds the check that lab tests needing root run with:
// without root or the lab's tools they skip, unless
// TAMPERSCOPE_REQUIRE_ALL=1, when they fail so a missing install step cannot
// pass silently.
package labtest

import (
	"os"
	"os/exec"
	"testing"

	"github.com/tamperscope/tamperscope/internal/testenv"
	"github.com/tamperscope/tamperscope/lab/netns"
)

// RequireRoot skips or fails t unless it runs as root with every lab tool.
func RequireRoot(t testing.TB) {
	t.Helper()
	reason := ""
	if os.Geteuid() != 0 {
		reason = "needs root to create network namespaces"
	} else {
		for _, tool := range netns.Tools {
			if _, err := exec.LookPath(tool); err != nil {
				reason = "needs " + tool + " (run lab/setup.sh)"
				break
			}
		}
	}
	testenv.Need(t, reason)
}
