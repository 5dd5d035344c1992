package report

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/tamperscope/tamperscope/internal/testenv"
)

// chromium returns the path of a headless-capable Chromium, skipping the
// test without one unless TAMPERSCOPE_REQUIRE_ALL=1.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	testenv.Need(t, "chromium not installed: run scripts/setup.sh test as root to render the report in a browser")
	return ""
}

// dumpDOM loads the page in headless Chromium and returns the DOM after
// its scripts ran, and what the browser logged.
func dumpDOM(t *testing.T, bin, page string) (dom, log string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--enable-logging=stderr", "--v=0",
		"--user-data-dir="+t.TempDir(), "--dump-dom", "file://"+page)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium --dump-dom: %v\n%s", err, errb.String())
	}
	return out.String(), errb.String()
}

// TestRenderInChromium renders the report of the fixture dataset in a real
// browser and checks what a reader would see: every chart has data marks,
// every table its rows, and the page raised no script error.
func TestRenderInChromium(t *testing.T) {
	bin := chromium(t)
	fx, r := buildFixture(t, true)
	page := filepath.Join(t.TempDir(), "report.html")
	f, err := os.Create(page)
	if err != nil {
		t.Fatal(err)
	}
	if err := Render(f, r); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	dom, log := dumpDOM(t, bin, page)
	if strings.Contains(log, "Uncaught") {
		t.Errorf("script error in the page:\n%s", log)
	}
	doc, err := html.Parse(strings.NewReader(dom))
	if err != nil {
		t.Fatal(err)
	}
	if len(find(doc, "body")) != 1 || !strings.Contains(dom, "</main>") {
		t.Fatalf("browser did not load the page; DOM:\n%.2000s", dom)
	}

	sections := map[string]*html.Node{}
	for _, s := range find(doc, "section") {
		sections[attr(s, "id")] = s
	}
	charts := map[string]int{} // section -> svg.chart elements with marks
	for _, id := range []string{"summary", "timeline", "collateral", "throughput", "fingerprints", "findings", "mix"} {
		if sections[id] == nil {
			t.Errorf("section %s missing", id)
		}
	}
	for id, s := range sections {
		for _, svg := range find(s, "svg") {
			if marks(svg) > 0 && strings.Contains(attr(svg, "class"), "chart") {
				charts[id]++
			}
		}
	}
	for _, id := range []string{"timeline", "throughput"} {
		if charts[id] == 0 {
			t.Errorf("section %s has no chart with data marks", id)
		}
	}
	if svgs := find(sections["mix"], "svg"); len(svgs) == 0 || marks(sections["mix"]) < len(r.Mix.Outcomes)+len(r.Mix.Stages) {
		t.Errorf("flow-signature bars: %d svg, %d marks; want a bar per outcome and stage", len(svgs), marks(sections["mix"]))
	}

	for _, tc := range []struct {
		table string
		rows  int
	}{
		{"lanes", len(r.Timeline.Lanes)},
		{"finding-table", len(fx.findings)},
		{"signature-table", len(r.Mix.Signatures)},
		{"fingerprint-table", tabled(r.Fingerprints)},
		{"caps", len(r.Throughput.Caps)},
		{"throughput-stats", 2},
	} {
		t.Run(tc.table, func(t *testing.T) {
			tb := byID(doc, tc.table)
			if tb == nil {
				t.Fatalf("table %s missing", tc.table)
			}
			rows := bodyRows(tb)
			if len(rows) != tc.rows || tc.rows == 0 {
				t.Fatalf("table %s has %d body rows, want %d (> 0)", tc.table, len(rows), tc.rows)
			}
			for _, row := range rows {
				if strings.TrimSpace(text(row)) == "" {
					t.Errorf("empty row in %s", tc.table)
				}
			}
		})
	}
	// Each lane's strip shows the flows it affected.
	for _, row := range bodyRows(byID(doc, "lanes")) {
		if marks(row) == 0 {
			t.Errorf("lane %q has an empty strip", strings.TrimSpace(text(row)))
		}
	}
	var collateral int
	for _, tb := range find(sections["collateral"], "table") {
		collateral += len(bodyRows(tb))
	}
	if collateral == 0 {
		t.Error("collateral table has no names")
	}
	if !strings.Contains(text(sections["collateral"]), "tilda-2.example") {
		t.Error("collateral name from the finding is not shown")
	}
	if !strings.Contains(text(sections["findings"]), hostile) {
		t.Error("the name with markup is not shown as text")
	}
	if len(find(doc, "script")) != 1 {
		t.Errorf("%d script elements: a name from the data became markup", len(find(doc, "script")))
	}
}

// tabled counts the fingerprint groups the table lists; fingerprints seen
// only on flows are named in a note under it.
func tabled(gs []FingerprintGroup) int {
	n := 0
	for _, g := range gs {
		if g.Findings > 0 || g.Fingerprint == "" {
			n++
		}
	}
	return n
}

func find(n *html.Node, tag string) []*html.Node {
	var out []*html.Node
	if n == nil {
		return nil
	}
	for c := range n.Descendants() {
		if c.Type == html.ElementNode && c.Data == tag {
			out = append(out, c)
		}
	}
	return out
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func byID(doc *html.Node, id string) *html.Node {
	for c := range doc.Descendants() {
		if c.Type == html.ElementNode && attr(c, "id") == id {
			return c
		}
	}
	return nil
}

// marks counts SVG rects that carry data, with a positive size.
func marks(n *html.Node) int {
	k := 0
	for _, r := range find(n, "rect") {
		if strings.Contains(attr(r, "class"), "mark") && attr(r, "width") != "0.0" && attr(r, "height") != "0.0" {
			k++
		}
	}
	return k
}

func bodyRows(tb *html.Node) []*html.Node {
	var out []*html.Node
	for _, body := range find(tb, "tbody") {
		out = append(out, find(body, "tr")...)
	}
	return out
}

func text(n *html.Node) string {
	var b strings.Builder
	for c := range n.Descendants() {
		if c.Type == html.TextNode {
			b.WriteString(c.Data)
			b.WriteByte(' ')
		}
	}
	return b.String()
}
