// Package views owns beamgate's recon-style views of a production node:
// top processes by memory, reductions, mailbox or heap, ETS tables,
// application supervision trees, a process summary, node statistics and
// refc-binary holders. Each view is a function returning typed rows plus
// renderers to an aligned text table and to JSON; Run parses an SSH
// command line into a view, Watch redraws one in place.
//
// Views only read. Every rpc call they make goes through a Caller; the
// gateway gives them a PolicedCaller, which evaluates each call with the
// engineer's policy profile exactly as a relayed erpc call would be and
// appends an audit record before the call leaves. top by memory,
// reductions or message queue spawns observer's process collector
// (observer_backend:procs_info/1, reporting to a pid of the gateway's
// client) once per sample instead, policed and audited the same way; a
// Caller that cannot spawn, or a policy that refuses the collector, falls
// back to one call per process. The work per view is
// bounded: each call reads one process with bounded concurrency, the
// number of processes sampled and rows returned are capped, watch
// intervals under a second are refused and a Limiter bounds the views
// running per user and node.
//
// Views build their rows in Erlang's forms. On an Elixir node (asked once
// per run with DetectElixir), or with --elixir, Run and RunCluster
// rewrite the pids and names of the result into the forms iex prints
// (ElixirStyle) before rendering it; --erlang keeps Erlang's. Info takes
// a process in any form a shell prints it (ProcForms).
package views
