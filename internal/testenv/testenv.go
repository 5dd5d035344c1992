package testenv

import (
	"crypto/tls"
	"os"
	"testing"

	"github.com/tamperscope/tamperscope/internal/certs"
)

// RequireAllEnv is the variable that turns skips into failures.
const RequireAllEnv = "TAMPERSCOPE_REQUIRE_ALL"

// RequireAll reports whether every test must run: RequireAllEnv is "1".
func RequireAll() bool { return os.Getenv(RequireAllEnv) == "1" }

// Need does nothing when missing is empty. Otherwise missing says what the
// test lacks and how to provide it, and Need skips t with that reason, or
// fails it when RequireAll.
func Need(t testing.TB, missing string) {
	if missing == "" {
		return
	}
	t.Helper()
	if RequireAll() {
		t.Fatalf("%s (%s=1 forbids skipping)", missing, RequireAllEnv)
	}
	t.Skip(missing)
}

// KafkaBroker returns the address of the test broker that scripts/kafka.sh
// started (TAMPERSCOPE_KAFKA), skipping or failing t through Need when
// there is none.
func KafkaBroker(t testing.TB) string {
	t.Helper()
	addr := os.Getenv("TAMPERSCOPE_KAFKA")
	if addr == "" {
		Need(t, `TAMPERSCOPE_KAFKA is not set; start a broker with eval "$(scripts/kafka.sh up)"`)
	}
	return addr
}

// ServerCert returns a server certificate for name and the other names
// from a CA of its own, for a test's TLS server; it fails t on error.
func ServerCert(t testing.TB, name string, names ...string) tls.Certificate {
	t.Helper()
	ca, err := certs.NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	c, err := ca.Server(name, names...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
