package columnar

import (
	"fmt"
	"net/netip"
	"reflect"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/tamperscope/tamperscope/schemas"
)

// TimeColumns names the int64 columns that hold absolute times (ns since the
// Unix epoch). They become timestamp[ns, tz=UTC]; every other int64 stays an
// integer, because most *_ns columns are durations.
var TimeColumns = []string{"ts_ns", "start_ns", "end_ns", "window_start_ns", "window_end_ns"}

// Timestamp is the Arrow type of TimeColumns.
var Timestamp = &arrow.TimestampType{Unit: arrow.Nanosecond, TimeZone: "UTC"}

// Dataset names, as used for directory names under a dataset root.
const (
	Flows    = "flows"
	Findings = "findings"
	Packets  = "packets"
	Digests  = "digests"
)

// colKind says how a column's bytes are read from a record.
type colKind uint8

const (
	kInt8 colKind = iota
	kInt16
	kInt32
	kInt64
	kUint8
	kUint16
	kUint32
	kUint64
	kFloat64
	kBool
	kTime
	kString
	kStrings
	kAddr
	kBytes
)

// Column describes one column of a dataset.
type Column struct {
	Name     string
	Type     arrow.DataType
	Nullable bool
	Doc      string

	kind   colKind
	offset uintptr // byte offset of the field inside the record
}

// Table describes one dataset: its name, record version and columns.
type Table struct {
	Name    string // directory name: flows, findings, packets
	Record  string // Go record type in package schemas
	Version int    // schemas.*Version of the record
	Schema  *arrow.Schema
	Columns []Column
}

var (
	flowTable    = mustTable(Flows, reflect.TypeFor[schemas.FlowRecord](), schemas.FlowRecordVersion)
	findingTable = mustTable(Findings, reflect.TypeFor[schemas.Finding](), schemas.FindingVersion)
	packetTable  = mustTable(Packets, reflect.TypeFor[schemas.PacketMeta](), schemas.PacketMetaVersion)
	digestTable  = mustTable(Digests, reflect.TypeFor[schemas.WindowDigest](), schemas.DigestVersion)
)

// Describe returns the tables of every dataset, in the order flows,
// findings, packets, digests. The result is shared: callers must not
// modify it.
func Describe() []*Table {
	return []*Table{flowTable, findingTable, packetTable, digestTable}
}

// TableOf returns the table of record type T.
func TableOf[T Record]() *Table {
	var zero T
	switch any(zero).(type) {
	case schemas.FlowRecord:
		return flowTable
	case schemas.Finding:
		return findingTable
	case schemas.WindowDigest:
		return digestTable
	default:
		return packetTable
	}
}

// Record is the set of record types that have a dataset.
type Record interface {
	schemas.FlowRecord | schemas.Finding | schemas.PacketMeta | schemas.WindowDigest
}

// mustTable panics because the records are fixed at compile time: a record
// field of an unsupported type is a programming error that every test and
// binary reports at start-up.
func mustTable(name string, t reflect.Type, version int) *Table {
	cols, err := columnsOf(t, "", "", 0)
	if err != nil {
		panic(fmt.Sprintf("columnar: map %s: %v", t, err))
	}
	fields := make([]arrow.Field, len(cols))
	seen := make(map[string]bool, len(cols))
	for i, c := range cols {
		if seen[c.Name] {
			panic(fmt.Sprintf("columnar: map %s: duplicate column %q", t, c.Name))
		}
		seen[c.Name] = true
		fields[i] = arrow.Field{Name: c.Name, Type: c.Type, Nullable: c.Nullable}
	}
	return &Table{Name: name, Record: t.Name(), Version: version, Schema: arrow.NewSchema(fields, nil), Columns: cols}
}

var addrType = reflect.TypeFor[netip.Addr]()

func columnsOf(t reflect.Type, prefix, parentDoc string, base uintptr) ([]Column, error) {
	var cols []Column
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		name, _, _ := strings.Cut(tag, ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			return nil, fmt.Errorf("field %s has no json name", f.Name)
		}
		name = prefix + name
		doc := f.Tag.Get("doc")
		if parentDoc != "" {
			doc = strings.TrimSuffix(parentDoc+": "+strings.TrimPrefix(name, prefix)+" "+doc, " ")
		}
		c := Column{Name: name, Doc: doc, offset: base + f.Offset}
		switch {
		case f.Type == addrType:
			c.kind, c.Type, c.Nullable = kAddr, arrow.BinaryTypes.String, true
		case f.Type.Kind() == reflect.Struct:
			sub, err := columnsOf(f.Type, name+"_", doc, c.offset)
			if err != nil {
				return nil, err
			}
			cols = append(cols, sub...)
			continue
		case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.String:
			c.kind, c.Type = kStrings, arrow.ListOfNonNullable(arrow.BinaryTypes.String)
		case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Uint8:
			c.kind, c.Type, c.Nullable = kBytes, arrow.BinaryTypes.Binary, true
		default:
			k, dt, ok := scalar(f.Type.Kind())
			if !ok {
				return nil, fmt.Errorf("field %s: unsupported type %s", f.Name, f.Type)
			}
			c.kind, c.Type = k, dt
			if isTimeColumn(name) {
				if k != kInt64 {
					return nil, fmt.Errorf("time column %s is %s, want int64", name, f.Type)
				}
				c.kind, c.Type = kTime, Timestamp
			}
		}
		cols = append(cols, c)
	}
	return cols, nil
}

func scalar(k reflect.Kind) (colKind, arrow.DataType, bool) {
	switch k {
	case reflect.Int8:
		return kInt8, arrow.PrimitiveTypes.Int8, true
	case reflect.Int16:
		return kInt16, arrow.PrimitiveTypes.Int16, true
	case reflect.Int32:
		return kInt32, arrow.PrimitiveTypes.Int32, true
	case reflect.Int64:
		return kInt64, arrow.PrimitiveTypes.Int64, true
	case reflect.Uint8:
		return kUint8, arrow.PrimitiveTypes.Uint8, true
	case reflect.Uint16:
		return kUint16, arrow.PrimitiveTypes.Uint16, true
	case reflect.Uint32:
		return kUint32, arrow.PrimitiveTypes.Uint32, true
	case reflect.Uint64:
		return kUint64, arrow.PrimitiveTypes.Uint64, true
	case reflect.Float64:
		return kFloat64, arrow.PrimitiveTypes.Float64, true
	case reflect.Bool:
		return kBool, arrow.FixedWidthTypes.Boolean, true
	case reflect.String:
		return kString, arrow.BinaryTypes.String, true
	}
	return 0, nil, false
}

func isTimeColumn(name string) bool {
	for _, n := range TimeColumns {
		if n == name {
			return true
		}
	}
	return false
}
