// Package netns builds and tears down the censor lab's topology: three
// network namespaces (client, censor router, server) joined by veth pairs,
// with IPv4 addresses from the benchmarking range 198.18.0.0/15 and IPv6
// unique-local addresses, and offloads switched off so every captured packet
// is wire-sized (see DESIGN.md, "Censor lab").
//
// Namespaces are named "tslab-<pid>-<role>", so a later run can tell its own
// namespaces from those left behind by a process that died, and remove only
// the stale ones. Go code enters a namespace with Do, which pins the calling
// goroutine to an OS thread and setns(2)s that thread; a socket keeps the
// namespace it was created in, so sockets opened inside Do can be used from
// any goroutine afterwards.
package netns
