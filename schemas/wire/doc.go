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
// Only the exact schema message of a known version is handed to the Arrow
// reader, which trusts the counts in a schema.
//
// Measured on one otherwise idle core of the 2-core AMD EPYC development
// machine, 4096 capture-like rows per message, median of three
// (go test -run '^$' -bench . -count 3 -cpu 1 ./schemas/wire):
//
//	codec  encode        decode        encode+decode  bytes/row
//	lz4    4.58 M rows/s 9.90 M rows/s 3.13 M rows/s  44.7
//	zstd   2.23 M rows/s 4.86 M rows/s 1.53 M rows/s  36.7
//	none   13.8 M rows/s 11.1 M rows/s 6.13 M rows/s  135.7
//
// The compressor is most of the cost (arrow-go also builds a new zstd
// encoder per message, hence zstd's 2.6 MB allocated per encode), which is
// why LZ4 is the default. With other work on the machine the same run
// measured about half these rates.
package wire
