package main

import (
	"fmt"
	"io"
	"testing"

	"github.com/tamperscope/tamperscope/schemas"
)

// TestOutputKeepsLatestFindings: with keep set (capture, which may run for
// months), the findings table holds the latest findings only, in bounded
// memory, while every finding is counted.
func TestOutputKeepsLatestFindings(t *testing.T) {
	o := &output{stdout: io.Discard, keep: 3}
	for i := range 1000 {
		if err := o.Finding(&schemas.Finding{FindingID: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
		if cap(o.findings) > 8 {
			t.Fatalf("%d findings held after %d, keep 3", cap(o.findings), i+1)
		}
	}
	got := o.tableFindings()
	if o.found != 1000 || len(got) != 3 || got[0].FindingID != "997" || got[2].FindingID != "999" {
		t.Errorf("found %d, table %v; want 1000 and the latest three", o.found, got)
	}
}
