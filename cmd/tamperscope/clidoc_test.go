package main

import (
	"bytes"
	"flag"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite docs/cli.md from the commands' help")

const cliDoc = "../../docs/cli.md"
const generatedMarker = "<!-- generated: do not edit below -->\n"

// TestCLIDoc: docs/cli.md carries every command's current help, so the
// documented flags cannot drift from the real ones.
func TestCLIDoc(t *testing.T) {
	var gen strings.Builder
	for _, c := range commands() {
		var stdout, stderr bytes.Buffer
		if code := mainExit([]string{c.name, "-h"}, &stdout, &stderr); code != exitOK {
			t.Fatalf("%s -h: exit %d", c.name, code)
		}
		help := strings.TrimSpace(stderr.String() + stdout.String())
		gen.WriteString("\n### " + c.name + "\n\n" + c.summary + ".\n\n```\n" + help + "\n```\n")
	}
	b, err := os.ReadFile(cliDoc)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	i := strings.Index(doc, generatedMarker)
	if i < 0 {
		t.Fatalf("%s lacks the marker %q", cliDoc, generatedMarker)
	}
	want := doc[:i+len(generatedMarker)] + gen.String()
	if *update {
		if err := os.WriteFile(cliDoc, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if doc != want {
		t.Errorf("%s is out of date: run go test ./cmd/tamperscope -run TestCLIDoc -update", cliDoc)
	}
}
