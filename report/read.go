package report

import (
	"context"
	"errors"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/tamperscope/tamperscope/schemas"
	"github.com/tamperscope/tamperscope/schemas/columnar"
	"github.com/tamperscope/tamperscope/sink"
)

// ErrNotDataset is returned when a directory holds no flows dataset.
var ErrNotDataset = errors.New("not a tamperscope dataset directory")

// fileMeta is what a report shows of a file's key-value metadata.
type fileMeta struct {
	version string
	record  string
}

// readFile streams the rows of one Parquet file through fn in record
// batches, reading only the named columns that the file has. Columns the
// file lacks (an older schema) read as zero values.
func readFile(ctx context.Context, path string, names []string, fn func(arrow.RecordBatch) error) (meta fileMeta, err error) {
	f, err := sink.OpenFile(path, 16<<10)
	if err != nil {
		return meta, err
	}
	defer f.Close()
	meta = fileMeta{version: f.Meta(sink.MetaVersion), record: f.Meta(sink.MetaRecord)}
	leaves := f.Columns(names)
	if len(leaves) == 0 || f.NumRows() == 0 {
		return meta, nil
	}
	rr, err := f.Records(ctx, leaves)
	if err != nil {
		return meta, err
	}
	defer rr.Release()
	defer f.RecoverInto(&err)
	for rr.Next() {
		if err := fn(rr.RecordBatch()); err != nil {
			return meta, fmt.Errorf("read %s: %w", path, err)
		}
	}
	if err := rr.Err(); err != nil {
		return meta, fmt.Errorf("read %s: %w", path, err)
	}
	return meta, nil
}

// Column accessors that accept every type a column has had, so files
// written by older schema versions stay readable; a missing column reads
// as the zero value.

func intCol(rec arrow.RecordBatch, name string) func(int) int64 {
	idx := rec.Schema().FieldIndices(name)
	if len(idx) == 0 {
		return func(int) int64 { return 0 }
	}
	var get func(int) int64
	switch a := rec.Column(idx[0]).(type) {
	case *array.Timestamp:
		get = func(i int) int64 { return int64(a.Value(i)) }
	case *array.Int64:
		get = a.Value
	case *array.Int32:
		get = func(i int) int64 { return int64(a.Value(i)) }
	case *array.Int16:
		get = func(i int) int64 { return int64(a.Value(i)) }
	case *array.Int8:
		get = func(i int) int64 { return int64(a.Value(i)) }
	case *array.Uint64:
		get = func(i int) int64 { return int64(a.Value(i)) }
	case *array.Uint32:
		get = func(i int) int64 { return int64(a.Value(i)) }
	case *array.Uint16:
		get = func(i int) int64 { return int64(a.Value(i)) }
	case *array.Uint8:
		get = func(i int) int64 { return int64(a.Value(i)) }
	default:
		return func(int) int64 { return 0 }
	}
	nulls := rec.Column(idx[0])
	return func(i int) int64 {
		if nulls.IsNull(i) {
			return 0
		}
		return get(i)
	}
}

func floatCol(rec arrow.RecordBatch, name string) func(int) float64 {
	idx := rec.Schema().FieldIndices(name)
	if len(idx) == 0 {
		return func(int) float64 { return 0 }
	}
	switch a := rec.Column(idx[0]).(type) {
	case *array.Float64:
		return func(i int) float64 {
			if a.IsNull(i) {
				return 0
			}
			return a.Value(i)
		}
	case *array.Float32:
		return func(i int) float64 {
			if a.IsNull(i) {
				return 0
			}
			return float64(a.Value(i))
		}
	}
	return func(int) float64 { return 0 }
}

func boolCol(rec arrow.RecordBatch, name string) func(int) bool {
	idx := rec.Schema().FieldIndices(name)
	if len(idx) == 0 {
		return func(int) bool { return false }
	}
	if a, ok := rec.Column(idx[0]).(*array.Boolean); ok {
		return func(i int) bool { return a.IsValid(i) && a.Value(i) }
	}
	return func(int) bool { return false }
}

func stringCol(rec arrow.RecordBatch, name string) func(int) string {
	idx := rec.Schema().FieldIndices(name)
	if len(idx) == 0 {
		return func(int) string { return "" }
	}
	switch a := rec.Column(idx[0]).(type) {
	case *array.String:
		return func(i int) string {
			if a.IsNull(i) {
				return ""
			}
			return a.Value(i)
		}
	case *array.LargeString:
		return func(i int) string {
			if a.IsNull(i) {
				return ""
			}
			return a.Value(i)
		}
	}
	return func(int) string { return "" }
}

func stringsCol(rec arrow.RecordBatch, name string) func(int) []string {
	idx := rec.Schema().FieldIndices(name)
	if len(idx) == 0 {
		return func(int) []string { return nil }
	}
	l, ok := rec.Column(idx[0]).(*array.List)
	if !ok {
		return func(int) []string { return nil }
	}
	vals, ok := l.ListValues().(*array.String)
	if !ok {
		return func(int) []string { return nil }
	}
	return func(i int) []string {
		if l.IsNull(i) {
			return nil
		}
		start, end := l.ValueOffsets(i)
		var out []string
		for j := start; j < end; j++ {
			out = append(out, vals.Value(int(j)))
		}
		return out
	}
}

// flowColumns are the flow columns a report reads.
var flowColumns = []string{
	"vantage", "start_ns", "end_ns", "proto", "server_ip", "server_port",
	"app_proto", "sni", "http_host", "outcome", "stage", "signature",
	"server_payload", "goodput_bps", "data_phase_ns", "fingerprint", "rsts",
	"rst_ttl_delta", "rst_ipid_jump", "rst_seq_change", "rst_ack_change",
	"rst_ack0", "rst_race", "rst_window0", "rst_no_ack", "rst_seq_bad", "rst_burst",
}

// readFlows calls fn for every flow row of the file, with the columns of
// flowColumns filled in; r is reused between calls.
func readFlows(ctx context.Context, path string, fn func(r *schemas.FlowRecord)) (fileMeta, error) {
	var r schemas.FlowRecord
	return readFile(ctx, path, flowColumns, func(rec arrow.RecordBatch) error {
		vantage, start, end := stringCol(rec, "vantage"), intCol(rec, "start_ns"), intCol(rec, "end_ns")
		proto, sip, sport := stringCol(rec, "proto"), stringCol(rec, "server_ip"), intCol(rec, "server_port")
		app, sni, host := stringCol(rec, "app_proto"), stringCol(rec, "sni"), stringCol(rec, "http_host")
		outcome, stage, sig := stringCol(rec, "outcome"), stringCol(rec, "stage"), stringCol(rec, "signature")
		payload, goodput, phase := intCol(rec, "server_payload"), floatCol(rec, "goodput_bps"), intCol(rec, "data_phase_ns")
		fp, rsts, ttl := stringCol(rec, "fingerprint"), intCol(rec, "rsts"), intCol(rec, "rst_ttl_delta")
		ipid, seqc, ackc := boolCol(rec, "rst_ipid_jump"), boolCol(rec, "rst_seq_change"), boolCol(rec, "rst_ack_change")
		ack0, race, win0 := boolCol(rec, "rst_ack0"), boolCol(rec, "rst_race"), boolCol(rec, "rst_window0")
		noack, seqbad, burst := boolCol(rec, "rst_no_ack"), boolCol(rec, "rst_seq_bad"), boolCol(rec, "rst_burst")
		for i := range int(rec.NumRows()) {
			r = schemas.FlowRecord{
				Vantage: vantage(i), StartNs: start(i), EndNs: end(i),
				Proto: proto(i), ServerIP: sip(i), ServerPort: uint16(sport(i)),
				AppProto: app(i), SNI: sni(i), HTTPHost: host(i),
				Outcome: outcome(i), Stage: stage(i), Signature: sig(i),
				ServerPayload: uint64(payload(i)), GoodputBps: goodput(i), DataPhaseNs: phase(i),
				Fingerprint: fp(i), RSTs: uint32(rsts(i)), RSTTTLDelta: int16(ttl(i)),
				RSTIPIDJump: ipid(i), RSTSeqChange: seqc(i), RSTAckChange: ackc(i),
				RSTAck0: ack0(i), RSTRace: race(i), RSTWindow0: win0(i),
				RSTNoAck: noack(i), RSTSeqBad: seqbad(i), RSTBurst: burst(i),
			}
			fn(&r)
		}
		return nil
	})
}

// readFindings returns every finding row of the file.
func readFindings(ctx context.Context, path string) ([]schemas.Finding, fileMeta, error) {
	var out []schemas.Finding
	names := make([]string, 0, len(columnar.TableOf[schemas.Finding]().Columns))
	for _, c := range columnar.TableOf[schemas.Finding]().Columns {
		names = append(names, c.Name)
	}
	meta, err := readFile(ctx, path, names, func(rec arrow.RecordBatch) error {
		id, vantage, kind, verdict := stringCol(rec, "finding_id"), stringCol(rec, "vantage"), stringCol(rec, "kind"), stringCol(rec, "verdict")
		ip, port, name := stringCol(rec, "target_ip"), intCol(rec, "target_port"), stringCol(rec, "target_name")
		trigger, method := stringCol(rec, "trigger"), stringCol(rec, "method")
		ws, we := intCol(rec, "window_start_ns"), intCol(rec, "window_end_ns")
		flows, failed, control := intCol(rec, "flows"), intCol(rec, "failed_flows"), intCol(rec, "control_flows")
		conf, evidence := floatCol(rec, "confidence"), stringCol(rec, "evidence")
		examples, collateral, fp := stringsCol(rec, "example_flows"), stringsCol(rec, "collateral"), stringCol(rec, "fingerprint")
		rate, shape, targeted, issuer := floatCol(rec, "rate_bps"), stringCol(rec, "shape"), boolCol(rec, "targeted"), stringCol(rec, "issuer")
		for i := range int(rec.NumRows()) {
			out = append(out, schemas.Finding{
				FindingID: id(i), Vantage: vantage(i), Kind: kind(i), Verdict: verdict(i),
				TargetIP: ip(i), TargetPort: uint16(port(i)), TargetName: name(i),
				Trigger: trigger(i), Method: method(i),
				WindowStartNs: ws(i), WindowEndNs: we(i),
				Flows: uint32(flows(i)), FailedFlows: uint32(failed(i)), ControlFlows: uint32(control(i)),
				Confidence: conf(i), Evidence: evidence(i),
				ExampleFlows: examples(i), Collateral: collateral(i), Fingerprint: fp(i),
				RateBps: rate(i), Shape: shape(i), Targeted: targeted(i), Issuer: issuer(i),
			})
		}
		return nil
	})
	return out, meta, err
}
