package partitioned

import (
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/tamperscope/tamperscope/analyzer/flow"
	"github.com/tamperscope/tamperscope/schemas"
	"github.com/tamperscope/tamperscope/sink"
)

// index is what a resumed partition knows of the rows it wrote before.
type index struct {
	ids    map[string]struct{}      // flow, finding and digest ids
	spans  map[endpoints][]flowSpan // flows by their endpoints
	splits []schemas.FlowRecord     // flows split at a checkpoint (Config.MaxOpen)
	judged map[window]int           // digests written of each window: it was judged
	lastNs int64                    // newest packet time the rows cover
}

// caughtUp reports whether a partition whose packet time reached nowNs can
// have no use for x any more: every flow it knows ended, and every window
// it knows was judged, long before (packet time, with an hour's margin
// over the 28 minutes a window waits before it is judged).
func (x *index) caughtUp(nowNs int64) bool {
	return nowNs-x.lastNs > int64(time.Hour)
}

// window names a detection window, as detect keys them.
type window struct {
	startNs int64
	vantage string
}

// endpoints names a flow whichever side its record calls the client: the
// tail of a flow, seen without its start, may be oriented the other way.
type endpoints struct {
	vantage    string
	proto      string
	loIP, hiIP string
	loPort     uint16
	hiPort     uint16
}

type flowSpan struct {
	id           string
	startNs, end int64
}

func endpointsOf(r *schemas.FlowRecord) endpoints {
	e := endpoints{vantage: r.Vantage, proto: r.Proto, loIP: r.ClientIP, loPort: r.ClientPort, hiIP: r.ServerIP, hiPort: r.ServerPort}
	if e.hiIP < e.loIP || e.hiIP == e.loIP && e.hiPort < e.loPort {
		e.loIP, e.hiIP, e.loPort, e.hiPort = e.hiIP, e.loIP, e.hiPort, e.loPort
	}
	return e
}

func (x *index) has(id string) bool {
	_, ok := x.ids[id]
	return ok
}

// tail reports whether r is a piece of a flow written before: same
// endpoints, another id, and inside the written flow's time span. One
// flow table never holds two flows of the same endpoints at once, so a
// flow inside another's span can only be its tail, rebuilt from the
// packets after the watermark.
func (x *index) tail(r *schemas.FlowRecord) bool {
	for _, s := range x.spans[endpointsOf(r)] {
		if s.id != r.FlowID && s.startNs <= r.StartNs && r.EndNs <= s.end {
			return true
		}
	}
	return false
}

// loadIndex reads the ids of the sets of partition id that cover offset
// from or later, and their names: the only names a set written from that
// offset on could take again (its offsets are from or later). It keeps
// the spans of the flows that started before tailsBeforeNs, the only
// ones whose tails the replay from offset from can rebuild.
func loadIndex(root, topic string, id int, from, tailsBeforeNs int64) (*index, map[string]bool, error) {
	x := &index{ids: map[string]struct{}{}, spans: map[endpoints][]flowSpan{}, judged: map[window]int{}, lastNs: math.MinInt64}
	sets := map[string]bool{}
	prefix := "part-" + topic + "-p" + strconv.Itoa(id) + "-"
	pick := func(path string) bool {
		set, last, ok := parseSetFile(filepath.Base(path), prefix)
		if !ok || last < from {
			return false
		}
		sets[set] = true
		return true
	}
	err := sink.ReadRecords(root, "flows", pick, func(r *schemas.FlowRecord) error {
		x.ids[r.FlowID] = struct{}{}
		if r.StartNs < tailsBeforeNs {
			e := endpointsOf(r)
			x.spans[e] = append(x.spans[e], flowSpan{r.FlowID, r.StartNs, r.EndNs})
		}
		x.lastNs = max(x.lastNs, r.EndNs)
		if r.EndReason == flow.EndSplit.String() {
			x.splits = append(x.splits, *r)
		}
		return nil
	})
	if err == nil {
		err = sink.ReadRecords(root, "findings", pick, func(f *schemas.Finding) error {
			x.ids[f.FindingID] = struct{}{}
			x.lastNs = max(x.lastNs, f.WindowEndNs)
			return nil
		})
	}
	if err == nil {
		err = sink.ReadRecords(root, "digests", pick, func(d *schemas.WindowDigest) error {
			x.ids[d.DigestID] = struct{}{}
			var v struct {
				Vantage string `json:"vantage"`
			}
			if err := json.Unmarshal([]byte(d.Digest), &v); err != nil {
				return fmt.Errorf("digest %s: %w", d.DigestID, err)
			}
			x.judged[window{d.WindowStartNs, v.Vantage}]++
			x.lastNs = max(x.lastNs, d.WindowStartNs)
			return nil
		})
	}
	if err != nil {
		return nil, nil, fmt.Errorf("load rows written for partition %d: %w", id, err)
	}
	return x, sets, nil
}

// parseSetFile parses part-<topic>-p<id>-<first>-<last>[+n]-<k>.parquet,
// given the prefix up to <first>; it returns the set name and <last>.
func parseSetFile(name, prefix string) (set string, last int64, ok bool) {
	rest, found := strings.CutPrefix(name, prefix)
	if !found {
		return "", 0, false
	}
	rest, found = strings.CutSuffix(rest, ".parquet")
	if !found {
		return "", 0, false
	}
	k := strings.LastIndexByte(rest, '-')
	if k < 0 {
		return "", 0, false
	}
	if _, err := strconv.ParseUint(rest[k+1:], 10, 32); err != nil {
		return "", 0, false
	}
	rng := rest[:k]
	first, lastS, found := strings.Cut(rng, "-")
	if !found {
		return "", 0, false
	}
	lastS, _, _ = strings.Cut(lastS, "+")
	// Offsets are never negative: a sign means a name of something else.
	if _, err := strconv.ParseUint(first, 10, 63); err != nil {
		return "", 0, false
	}
	n, err := strconv.ParseUint(lastS, 10, 63)
	if err != nil {
		return "", 0, false
	}
	return strings.TrimPrefix(prefix, "part-") + rng, int64(n), true
}
