package columnar

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the generated part of docs/datasets.md")

const (
	datasetsDoc = "../../docs/datasets.md"
	beginMarker = "<!-- BEGIN GENERATED: go test ./schemas/columnar -run TestDatasetsDoc -update -->\n"
	endMarker   = "<!-- END GENERATED -->\n"
)

// TestDatasetsDoc keeps the column reference in docs/datasets.md equal to
// Describe(): it fails on drift, and -update rewrites the part between the
// markers, leaving the hand-written text around it alone.
func TestDatasetsDoc(t *testing.T) {
	old, err := os.ReadFile(datasetsDoc)
	if err != nil {
		t.Fatal(err)
	}
	before, rest, ok1 := strings.Cut(string(old), beginMarker)
	_, after, ok2 := strings.Cut(rest, endMarker)
	if !ok1 || !ok2 {
		t.Fatalf("%s lacks the generated-section markers", datasetsDoc)
	}
	want := before + beginMarker + columnReference() + endMarker + after
	if *update {
		if err := os.WriteFile(datasetsDoc, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if d := cmp.Diff(want, string(old)); d != "" {
		t.Errorf("%s is out of date; run go test ./schemas/columnar -run TestDatasetsDoc -update (-want +got):\n%s", datasetsDoc, d)
	}
}

func columnReference() string {
	var b bytes.Buffer
	for _, tb := range Describe() {
		fmt.Fprintf(&b, "\n### %s\n\n", tb.Name)
		fmt.Fprintf(&b, "One row per `schemas.%s`, schema version %d.\n\n", tb.Record, tb.Version)
		b.WriteString("| column | Arrow type | null | meaning |\n|---|---|---|---|\n")
		for _, c := range tb.Columns {
			null := ""
			if c.Nullable {
				null = "yes"
			}
			fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", c.Name, c.Type, null, strings.ReplaceAll(c.Doc, "|", `\|`))
		}
	}
	b.WriteString("\n")
	return b.String()
}
