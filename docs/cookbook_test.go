// Package docs holds the tests that keep the documentation true: the SQL
// of cookbook.md runs against a dataset made from the censor-lab captures.
package docs

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	_ "github.com/duckdb/duckdb-go/v2"

	"github.com/tamperscope/tamperscope/analyzer"
	"github.com/tamperscope/tamperscope/capture"
	"github.com/tamperscope/tamperscope/capture/merge"
	"github.com/tamperscope/tamperscope/capture/pcapfile"
	"github.com/tamperscope/tamperscope/ingest"
	"github.com/tamperscope/tamperscope/internal/corpustest"
	"github.com/tamperscope/tamperscope/internal/testenv"
	"github.com/tamperscope/tamperscope/schemas"
	"github.com/tamperscope/tamperscope/sink"
	"github.com/tamperscope/tamperscope/transport/inproc"
)

// query is one ```sql block of the cookbook.
type query struct {
	title      string // the heading above it
	sql        string
	mayBeEmpty bool // marked <!-- cookbook: may be empty -->
}

var heading = regexp.MustCompile(`^#+\s+(.*)$`)

func parseCookbook(t *testing.T, path string) []query {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []query
	var cur *query
	title, empty := "", false
	for line := range strings.Lines(string(b)) {
		trimmed := strings.TrimSpace(line)
		switch {
		case cur != nil && trimmed == "```":
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			cur.sql += line
		case trimmed == "```sql":
			cur = &query{title: title, mayBeEmpty: empty}
		case heading.MatchString(trimmed):
			title, empty = heading.FindStringSubmatch(trimmed)[1], false
		case trimmed == "<!-- cookbook: may be empty -->":
			empty = true
		}
	}
	if cur != nil {
		t.Fatalf("%s: unterminated sql block under %q", path, cur.title)
	}
	return out
}

// demoDataset replays the censor-lab captures, as `make demo` does, into a
// dataset under a temporary directory, plus a real censorship capture from
// the shared corpus so that findings span more than one day.
func demoDataset(t *testing.T) string {
	t.Helper()
	caps, _ := filepath.Glob("../lab/testdata/*/capture.pcap")
	if len(caps) == 0 {
		testenv.Need(t, "no censor-lab captures in lab/testdata: run 'make lab' as root")
	}
	tripwire := corpustest.Path("censorship-tripwire/testdata/tripwire-1597963966.pcap")
	if _, err := os.Stat(tripwire); err == nil {
		caps = append(caps, tripwire)
	}
	var sources []capture.Source
	for _, p := range caps {
		r, err := pcapfile.Open(p, pcapfile.Options{})
		if err != nil {
			t.Fatal(err)
		}
		sources = append(sources, r)
	}
	src := merge.New(sources...)
	defer src.Close()
	dir := t.TempDir()
	ds, err := sink.Open(dir, sink.Config{Version: "cookbook-test", Name: "demo"})
	if err != nil {
		t.Fatal(err)
	}
	out := &datasetOutput{ds: ds}
	eng := analyzer.New(analyzer.Config{}, out)
	pipe := inproc.New(8)
	ctx := context.Background()
	var wg sync.WaitGroup
	var readErr error
	wg.Go(func() {
		_, readErr = ingest.Run(ctx, src, pipe, ingest.Config{})
		pipe.Close()
	})
	var procErr error
	for {
		d, err := pipe.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			procErr = err
			break
		}
		if procErr == nil {
			procErr = eng.Process(d.Batch)
		}
		pipe.Release(d)
	}
	wg.Wait()
	if procErr == nil {
		procErr = eng.Close()
	}
	if err := errors.Join(procErr, readErr, ds.Close()); err != nil {
		t.Fatal(err)
	}
	if out.flows == 0 || out.findings == 0 {
		t.Fatalf("demo dataset has %d flows and %d findings", out.flows, out.findings)
	}
	return dir
}

type datasetOutput struct {
	ds              *sink.Dataset
	flows, findings int
}

func (o *datasetOutput) Flow(r *schemas.FlowRecord) error {
	o.flows++
	return o.ds.WriteFlow(r)
}

func (o *datasetOutput) Finding(f *schemas.Finding) error {
	o.findings++
	return o.ds.WriteFinding(f)
}

// TestCookbook runs every query of cookbook.md against the demo dataset:
// each must run, and return rows unless marked as possibly empty.
func TestCookbook(t *testing.T) {
	queries := parseCookbook(t, "cookbook.md")
	if n := len(queries); n < 8 || n > 12 {
		t.Fatalf("cookbook has %d queries, want 8 to 12", n)
	}
	dir := demoDataset(t)
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	subst := strings.NewReplacer(
		"{{flows}}", filepath.ToSlash(filepath.Join(dir, "flows", "**", "*.parquet")),
		"{{findings}}", filepath.ToSlash(filepath.Join(dir, "findings", "**", "*.parquet")),
	)
	for _, q := range queries {
		t.Run(q.title, func(t *testing.T) {
			if !strings.Contains(q.sql, "{{flows}}") && !strings.Contains(q.sql, "{{findings}}") {
				t.Fatal("query reads neither {{flows}} nor {{findings}}")
			}
			rows, err := db.Query(subst.Replace(q.sql))
			if err != nil {
				t.Fatalf("%v\n%s", err, q.sql)
			}
			defer rows.Close()
			cols, err := rows.Columns()
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			for rows.Next() {
				if err := rows.Scan(ptrs...); err != nil {
					t.Fatal(err)
				}
				n++
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			if n == 0 && !q.mayBeEmpty {
				t.Errorf("no rows on the demo dataset:\n%s", q.sql)
			}
			t.Logf("%d rows, columns %v", n, cols)
		})
	}
}
