// Package columnar maps the records of package schemas to Arrow: one Arrow
// schema per dataset (flows, findings, packets) and a Builder that appends
// records to Arrow record batches.
//
// The mapping is derived once, at package initialisation, by reflection over
// the record structs; the column name is the field's `json` tag and its
// documentation the `doc` tag, so records and datasets cannot drift apart:
//
//	Go field                       Arrow column
//	int8..int64, uint8..uint64     the integer type of the same width and sign
//	int64 named in TimeColumns     timestamp[ns, tz=UTC]
//	float64, bool                  float64, bool
//	string                         utf8 (plain, never an Arrow dictionary)
//	[]string                       list<utf8> (a nil slice is an empty list)
//	netip.Addr                     utf8 in netip text form; null when invalid
//	[]byte                         binary; null when empty
//	nested struct S `json:"s"`     flattened: s_<field> for each field of S
//
// Strings are plain utf8 because pqarrow falls back to PLAIN encoding for the
// rest of a row group when per-batch Arrow dictionaries change; Parquet
// dictionary-encodes them itself. Only absolute times become timestamps, so
// DuckDB and pandas see real times; durations (*_rtt_ns, rst_delay_ns, ...)
// stay int64 nanoseconds. Column names keep their _ns suffix either way.
//
// Appending reads fields through offsets computed at initialisation, never
// through reflect per row, into Go slices that a Builder keeps from batch to
// batch: once they have grown to a batch, appending allocates nothing. The
// column reference in docs/datasets.md is generated from Describe:
//
//	go test ./schemas/columnar -run TestDatasetsDoc -update
package columnar

//go:generate go test -run TestDatasetsDoc -update
