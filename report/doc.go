// Package report turns a tamperscope dataset directory (the flows/ and
// findings/ Parquet datasets that replay and analyze write) into one
// self-contained HTML page for a researcher: a summary of the capture, a
// timeline of failures per finding target, the collateral of IP blocks
// (which names a block on one address took down, the Tilda effect), the
// goodput of throttled flows against all others with the estimated cap,
// findings grouped by censor fingerprint, and the mix of flow outcomes,
// stages and tampering signatures.
//
// Build reads the datasets in two streaming passes over the flows (the
// first reads only the time columns, to size the timeline) and keeps
// counts, not rows: memory grows with the number of distinct names,
// addresses and signatures, plus one float per flow that moved enough data
// to measure its goodput. Files are read with Arrow's Parquet reader by
// column name, so files of an older schema version stay readable (a missing
// column reads as zero); an unreadable file is listed on the page and the
// rest is reported.
//
// Render writes the page with html/template, so every string from the data
// is escaped; charts are SVG computed in Go, the only script is a small
// inline table sorter, and the page loads nothing from the network. See
// docs/cookbook.md for SQL over the same datasets.
package report
