package lab

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tamperscope/tamperscope/lab/internal/labtest"
	"github.com/tamperscope/tamperscope/lab/netns"
)

// hostState is what the lab must leave as it found it: the root
// namespace's firewall and our namespaces.
func hostState(t *testing.T) (firewall string, namespaces []string) {
	t.Helper()
	for _, cmd := range []string{"iptables-save", "ip6tables-save"} {
		out, err := exec.Command(cmd).Output()
		if err != nil {
			t.Fatalf("%s: %v", cmd, err)
		}
		// Drop the comment lines: they carry timestamps.
		for _, l := range strings.Split(string(out), "\n") {
			if !strings.HasPrefix(l, "#") {
				firewall += l + "\n"
			}
		}
	}
	names, err := netns.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	own := netns.Prefix + strconv.Itoa(os.Getpid()) + "-"
	for _, n := range names {
		if strings.HasPrefix(n, own) {
			namespaces = append(namespaces, n)
		}
	}
	return firewall, namespaces
}

func assertCleanHost(t *testing.T, firewallBefore string) {
	t.Helper()
	fw, ns := hostState(t)
	if len(ns) > 0 {
		t.Errorf("namespaces left behind: %v", ns)
	}
	if fw != firewallBefore {
		t.Errorf("root namespace firewall changed:\nbefore:\n%s\nafter:\n%s", firewallBefore, fw)
	}
	out, _ := exec.Command("pgrep", "-P", strconv.Itoa(os.Getpid())).Output()
	if pids := strings.Fields(string(out)); len(pids) > 0 {
		t.Errorf("child processes left running: %v", pids)
	}
}

// TestRun runs every scenario for a seed other than the committed
// testdata's and checks outcomes, captures and teardown.
func TestRun(t *testing.T) {
	labtest.RequireRoot(t)
	fw, _ := hostState(t)
	out := t.TempDir()
	start := time.Now()
	res, err := Run(context.Background(), Config{Seed: 4, OutDir: out})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("lab run took %s", time.Since(start).Round(time.Millisecond))
	if len(res.Scenarios) != len(Scenarios()) {
		t.Fatalf("ran %d scenarios, want %d", len(res.Scenarios), len(Scenarios()))
	}
	for _, s := range res.Scenarios {
		t.Run(s.Name, func(t *testing.T) {
			for _, m := range s.Mismatches {
				t.Error(m)
			}
			checkScenario(t, s.Dir)
		})
	}
	assertCleanHost(t, fw)
}

// TestRunCancelled stops a run midway, as a signal does, and checks that
// nothing is left behind.
func TestRunCancelled(t *testing.T) {
	labtest.RequireRoot(t)
	fw, _ := hostState(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	_, err := Run(ctx, Config{Seed: 3, OutDir: t.TempDir(), Scenarios: []string{"sni-reset", "sni-drop", "ip-drop"}})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run = %v, want it cut short by the context", err)
	}
	assertCleanHost(t, fw)
}

func TestStaleNamespacesRemoved(t *testing.T) {
	labtest.RequireRoot(t)
	// A pid that cannot be running: above the kernel's pid_max.
	stale := netns.Prefix + "99999999-1-c"
	if _, err := netns.Run(context.Background(), "ip", "netns", "add", stale); err != nil {
		t.Fatal(err)
	}
	if err := netns.CleanupStale(context.Background()); err != nil {
		t.Fatal(err)
	}
	names, err := netns.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if n == stale {
			_ = netns.Delete(context.Background(), stale)
			t.Fatal("stale namespace survived CleanupStale")
		}
	}
}

func TestUnknownScenario(t *testing.T) {
	if _, err := buildPlans(1, []string{"no-such"}); err == nil {
		t.Fatal("want an error for an unknown scenario")
	}
}

// TestSeedDeterminism checks that a seed fixes the plan and that seeds
// differ.
func TestSeedDeterminism(t *testing.T) {
	summary := func(seed int64) string {
		plans, err := buildPlans(seed, nil)
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for _, p := range plans {
			b.WriteString(p.name)
			for _, a := range p.addrs {
				b.WriteString(" " + a.String())
			}
			b.WriteString(" " + strings.Join(p.names, ","))
			for _, ph := range p.phases {
				for _, s := range ph {
					b.WriteString(" " + s.req.Local.String() + ">" + s.req.Remote.String() + "/" + s.req.Name)
				}
			}
			for _, r := range p.rules {
				b.WriteString(" " + strings.Join(r, " "))
			}
			b.WriteString("\n")
		}
		return b.String()
	}
	if summary(7) != summary(7) {
		t.Error("same seed, different plans")
	}
	if summary(7) == summary(8) {
		t.Error("different seeds, same plans")
	}
	plans, _ := buildPlans(7, nil)
	seen := map[string]string{}
	for _, p := range plans {
		for _, a := range p.addrs {
			if other, ok := seen[a.String()]; ok {
				t.Errorf("address %s used by %s and %s", a, other, p.name)
			}
			seen[a.String()] = p.name
		}
	}
}
