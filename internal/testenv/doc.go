// Package testenv decides what a test does when something it needs from the
// machine is missing: root, a kernel feature, a tool, the shared capture
// corpus. Run by hand, such a test skips and says why. With
// TAMPERSCOPE_REQUIRE_ALL=1, as CI runs, it fails instead, so that a missing
// install step cannot pass as a skipped test.
//
// It is a normal package so that tests of every package can import it; only
// tests do.
package testenv
