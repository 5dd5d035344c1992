// Package sink writes tamperscope's records as Hive-partitioned Parquet
// datasets that DuckDB, Spark and pandas read directly:
//
//	<root>/flows/date=YYYY-MM-DD/hour=HH/part-<set>-<k>.parquet
//	<root>/findings/date=YYYY-MM-DD/hour=HH/part-<set>-<k>.parquet
//	<root>/packets/date=YYYY-MM-DD/hour=HH/part-<set>-<k>.parquet
//	<root>/digests/date=YYYY-MM-DD/hour=HH/part-<set>-<k>.parquet
//
// A record lands in the partition of its own packet time, in UTC: ts_ns for
// packets, start_ns for flows, window_start_ns for findings and digests. Replaying a
// capture therefore produces the same layout as the live run that made it.
//
// Each partition directory has at most one open file per dataset, written
// with pqarrow's buffered row groups (large row groups, zstd) under a hidden
// temporary name (.part-*.parquet.tmp) that readers globbing *.parquet
// skip. A file is rotated when it reaches Config.FileRows rows or
// Config.FileBytes bytes, and closed early when more than
// Config.MaxOpenFiles partitions are open, which bounds memory. Closed files
// are fsynced but stay hidden: only Commit (or Flush, or Close) publishes
// them, by renaming each to its final name and fsyncing its directory. A
// crash at any point never leaves a file a reader would take for complete.
//
// A committed file set is named by the caller: Commit(set) publishes
// part-<set>-<k>.parquet, k counting the set's files in each directory. A
// rename onto an existing name replaces that file, and Commit removes the
// set's files with higher k left by an earlier commit of the same set, so
// re-processing the same input under the same set name (the Kafka analyzer
// names sets after topic, partition and first offset) replaces files
// instead of duplicating rows. Across directories and within one, the
// renames of one commit are individually atomic but not atomic as a group;
// repeating the commit of the same set repairs a commit cut short.
//
// Every file carries key-value metadata: MetaVersion, MetaSchemaVersion,
// MetaRecord, MetaDetectorConfig, and the Arrow schema (ARROW:schema) so
// Arrow readers get timestamp and unsigned types back exactly. Column types
// are those of package columnar; see docs/datasets.md.
package sink
