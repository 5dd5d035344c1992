// Package schemas holds every record tamperscope produces or moves between
// its halves — PacketMeta, FlowRecord, Finding, WindowDigest — with their
// schema versions.
// It contains no logic: encoders, Arrow conversion and writers live in the
// packages that use these records (see docs/design/001-pipeline.md).
//
// Struct tags name each column as it appears in Parquet datasets and JSON
// lines (`json:"name"`); a `doc:"..."` tag documents the column for the
// generated dataset reference (docs/datasets.md).
package schemas
