package term

// Version is the byte that starts every encoded term.
const Version = 131

// Tags of the external term format (erl_ext_dist).
const (
	tagCompressed     = 80
	tagNewFloat       = 70
	tagBitBinary      = 77
	tagAtomCacheRef   = 82
	tagNewPid         = 88
	tagNewPort        = 89
	tagNewerReference = 90
	tagSmallInteger   = 97
	tagInteger        = 98
	tagFloat          = 99
	tagAtom           = 100
	tagReference      = 101
	tagPort           = 102
	tagPid            = 103
	tagSmallTuple     = 104
	tagLargeTuple     = 105
	tagNil            = 106
	tagString         = 107
	tagList           = 108
	tagBinary         = 109
	tagSmallBig       = 110
	tagLargeBig       = 111
	tagNewFun         = 112
	tagExport         = 113
	tagNewReference   = 114
	tagSmallAtom      = 115
	tagMap            = 116
	tagFun            = 117
	tagAtomUTF8       = 118
	tagSmallAtomUTF8  = 119
	tagV4Port         = 120
	tagLocal          = 121
)

// maxAtomChars is Erlang's atom length limit, used when encoding.
const maxAtomChars = 255

// internedAtoms are atoms that appear in nearly every distribution
// message. Decoding one of them returns a pre-boxed Term and allocates
// nothing (a map lookup keyed by string(b) does not allocate).
var internedAtoms = func() map[string]Term {
	names := []string{
		"", "true", "false", "undefined", "ok", "error", "nil", "badarg", "badrpc",
		"normal", "shutdown", "killed", "noproc", "noconnection", "infinity", "timeout",
		"EXIT", "DOWN", "process", "port", "node", "reply", "call", "cast", "info",
		"erpc", "execute_call", "execute_cast", "erlang", "rex", "net_kernel", "is_auth",
		"$gen_call", "$gen_cast", "alias", "monitor", "link", "demonitor", "unlink",
		"observer_backend", "sys_info", "etop_collect", "procs_info", "fetch_stats",
		"get_table", "ttb_get_filenames", "appmon_info", "recon", "recon_lib",
		"rpc", "user", "init", "code", "code_server", "application", "application_controller",
		"global", "global_name_server", "global_group", "inet_db", "net_adm", "ping", "pong",
		"lists", "ets", "os", "sys", "io", "io_request", "io_reply", "put_chars",
		"get_line", "get_until", "get_chars", "get_geometry", "setopts", "getopts",
		"unicode", "latin1", "binary", "list", "encoding", "columns", "rows",
		"group_leader", "priority", "max", "high", "low", "spawn_reply", "spawn_request",
		"nonode@nohost", "nosuspend", "noreply", "exit", "throw", "result", "memory",
		"processes", "process_info", "system_info", "registered_name", "status",
		"message_queue_len", "reductions", "current_function", "initial_call",
		"heap_size", "stack_size", "total_heap_size", "dictionary", "messages",
		"trap_exit", "links", "monitors", "monitored_by", "garbage_collection",
		"schedulers", "schedulers_online", "otp_release", "version", "system_version",
		"wordsize", "atom_count", "process_count", "port_count", "ets_count",
		"total", "atom", "atom_used", "ets", "gen_server", "gen", "proc_lib", "supervisor",
		"erl_eval", "shell", "c", "io_lib", "file", "inet", "tcp", "udp", "net",
		"utf8", "error_logger", "logger", "kernel", "stdlib", "sasl", "runtime_tools",
		"observer", "ets_info", "ttb", "dbg", "send", "receive", "nodeup", "nodedown",
		"connected", "visible", "hidden", "known", "this", "pid", "ref", "data",
	}
	m := make(map[string]Term, len(names))
	for _, n := range names {
		m[n] = Atom(n)
	}
	return m
}()
