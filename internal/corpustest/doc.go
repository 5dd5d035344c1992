// Package corpustest is what tests share to read the capture corpus: real
// captures from other projects with tshark-made expectations, kept in
// shared/corpus beside the repository and never copied into it.
//
// Every package finds the corpus by one rule, from the module root (the
// nearest directory holding go.mod above the working directory, which go
// test sets to the package's): its sibling ../shared/corpus. A test that
// needs the corpus calls Require first, which skips without it, or fails
// under TAMPERSCOPE_REQUIRE_ALL=1 (see internal/testenv).
//
// Captures are decoded with gopacket, independent of the project's own
// decoder, so that the expectations a test compares against do not come from
// the code under test. Only tests import this package.
package corpustest
