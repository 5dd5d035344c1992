// Package wire is the versioned encoding of a schemas.PacketBatch as one
// Kafka message value: an Arrow IPC stream (schema message, one record
// batch, end-of-stream marker) whose schema carries the wire version and the
// PacketMeta version in its key-value metadata, with IPC body compression
// (LZ4 by default, zstd as an option).
//
// The stream is self-describing, so any Arrow reader (pyarrow, DuckDB) can
// open a captured message, and a decoder refuses a message whose version it
// does not know instead of misreading it (docs/design/001-pipeline.md,
// "Batching"). Columns are built from reusable Go slices and read back from
// the Arrow buffers directly, not through array builders, which keeps the
// cost per row to a transposition plus the codec.
//
// Decode reads untrusted bytes: a corrupt, truncated or foreign message is
// reported as an error that answers errors.Is(err, ErrCorrupt) or
// errors.Is(err, ErrVersion), and decoding allocates at most
// DecoderOptions.MaxBytes of column memory whatever the message claims.
package wire
