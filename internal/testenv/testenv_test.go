package testenv

import (
	"fmt"
	"strings"
	"testing"
)

// recorder stands for a test: it records what Need asked of it, and stops
// Need as the real methods stop the test.
type recorder struct {
	testing.TB
	skipped, failed string
}

type stopped struct{}

func (r *recorder) Helper() {}

func (r *recorder) Skip(args ...any) {
	r.skipped = fmt.Sprint(args...)
	panic(stopped{})
}

func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = fmt.Sprintf(format, args...)
	panic(stopped{})
}

func need(r *recorder, missing string) {
	defer func() {
		if p := recover(); p != nil && p != (stopped{}) {
			panic(p)
		}
	}()
	Need(r, missing)
}

func TestNeed(t *testing.T) {
	for _, tc := range []struct {
		name, env, missing string
		skip, fail         bool
	}{
		{name: "nothing missing", env: "", missing: ""},
		{name: "nothing missing, require all", env: "1", missing: ""},
		{name: "missing, by hand", env: "", missing: "needs root", skip: true},
		{name: "missing, other value", env: "yes", missing: "needs root", skip: true},
		{name: "missing, require all", env: "1", missing: "needs root", fail: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(RequireAllEnv, tc.env)
			r := &recorder{TB: t}
			need(r, tc.missing)
			if got := r.skipped != ""; got != tc.skip {
				t.Errorf("skipped = %q, want a skip: %v", r.skipped, tc.skip)
			}
			if got := r.failed != ""; got != tc.fail {
				t.Errorf("failed = %q, want a failure: %v", r.failed, tc.fail)
			}
			if why := r.skipped + r.failed; tc.missing != "" && !strings.Contains(why, tc.missing) {
				t.Errorf("reason %q does not say %q", why, tc.missing)
			}
		})
	}
}

func TestRequireAll(t *testing.T) {
	for env, want := range map[string]bool{"": false, "0": false, "true": false, "1": true} {
		t.Setenv(RequireAllEnv, env)
		if got := RequireAll(); got != want {
			t.Errorf("RequireAll() with %q = %v, want %v", env, got, want)
		}
	}
}
