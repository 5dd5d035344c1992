package corpustest

import (
	"bufio"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/tamperscope/tamperscope/internal/testenv"
)

var (
	dirOnce sync.Once
	dir     string
	dirErr  error
)

// Dir returns the corpus directory, ../shared/corpus from the module root,
// whether or not it exists; "" when no go.mod is found above the working
// directory.
func Dir() string {
	dirOnce.Do(func() {
		dir, dirErr = find()
	})
	return dir
}

func find() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find module root: %w", err)
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return filepath.Join(filepath.Dir(d), "shared", "corpus"), nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("find module root: no go.mod above %s", wd)
		}
	}
}

// Path joins elem to the corpus directory.
func Path(elem ...string) string {
	return filepath.Join(append([]string{Dir()}, elem...)...)
}

// Require skips t, or fails it under TAMPERSCOPE_REQUIRE_ALL=1, when the
// corpus is not there.
func Require(t testing.TB) {
	t.Helper()
	if Dir() == "" {
		testenv.Need(t, fmt.Sprintf("capture corpus not found: %v", dirErr))
		return
	}
	if _, err := os.Stat(Path("MANIFEST.tsv")); err != nil {
		testenv.Need(t, fmt.Sprintf("capture corpus not found at %s (shared/corpus beside the repository): %v", Dir(), err))
	}
}

// ReadTSV returns the rows of a corpus table as maps keyed by the names in
// its header line; a short row lacks the trailing keys. The tables are plain
// tab-separated text: tshark does not quote, and a quote inside a field is
// part of it.
func ReadTSV(t testing.TB, name string) []map[string]string {
	t.Helper()
	f, err := os.Open(Path(name))
	if err != nil {
		t.Fatalf("open corpus table: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var head []string
	var rows []map[string]string
	for sc.Scan() {
		if sc.Text() == "" {
			continue
		}
		cols := strings.Split(sc.Text(), "\t")
		if head == nil {
			head = cols
			continue
		}
		row := make(map[string]string, len(head))
		for i, h := range head {
			if i < len(cols) {
				row[h] = cols[i]
			}
		}
		rows = append(rows, row)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return rows
}

// AddrPort parses a table's address and port columns, unmapping an
// IPv4-mapped IPv6 address as the decoders do.
func AddrPort(t testing.TB, ip, port string) netip.AddrPort {
	t.Helper()
	a, err := netip.ParseAddr(ip)
	if err != nil {
		t.Fatalf("bad address %q: %v", ip, err)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		t.Fatalf("bad port %q: %v", port, err)
	}
	return netip.AddrPortFrom(a.Unmap(), uint16(p))
}

// Atoi parses a table's number column.
func Atoi(t testing.TB, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("bad number %q", s)
	}
	return n
}
