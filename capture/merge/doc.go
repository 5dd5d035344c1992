// Package merge interleaves several capture sources into one, in timestamp
// order, the way mergecap does for files: a replay of captures taken on
// several interfaces or hosts sees one packet-time stream.
//
// The merge keeps one pending frame per source in a min-heap keyed by
// timestamp (ties go to the earlier source) and never copies packet bytes:
// the frame Next returns still aliases its source's buffer, so the merge
// advances that source only on the following call. A source whose own
// timestamps go backwards keeps its order; the output is then sorted only as
// far as the sources are.
//
// A source that fails does not stop the others. Its error is recorded
// (Errors reports them as they happen) and Next goes on with the remaining
// sources; once all are exhausted Next returns io.EOF if none failed, or
// errors.Join of every source's error otherwise.
package merge
