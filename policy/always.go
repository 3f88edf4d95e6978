package policy

// Functions refused whatever a profile or mode says. A profile cannot allow
// them: they hand out the production cookie or environment, open a remote
// shell, or wrap another call so that the real one would be hidden from
// policy (rpc inside rpc, apply, eval).
var always = func() *ruleSet {
	rs := &ruleSet{}
	add := func(name, reason string, mfas ...string) {
		r := &Rule{Name: name, Reason: reason, Section: "always"}
		for _, m := range mfas {
			if err := rs.add(m, r); err != nil {
				panic(err)
			}
		}
	}
	add("secrets", "reveals the production cookie, arguments or environment",
		"erlang:get_cookie/*", "erlang:set_cookie/*", "auth:*",
		"init:get_arguments/0", "init:get_argument/1", "init:get_plain_arguments/0",
		"os:getenv/*", "os:env/0", "application:get_env/*", "application:get_all_env/*",
		"application:get_key/*", "application:get_all_key/*", "persistent_term:get/1", "persistent_term:get/2",
		"file:read_file/*", "file:consult/*", "file:read/*", "file:open/*", "file:pread/*",
		"file:read_line/*", "file:script/*", "file:eval/*", "file:path_consult/*", "file:path_eval/*",
		"file:path_script/*", "file:list_dir/*", "erlang:process_info/3",
		"erlang:get/0", "erlang:get/1", "net_kernel:get_state/0",
		// Elixir's wrappers of the same
		"Elixir.Node:get_cookie/*", "Elixir.Node:set_cookie/*", "Elixir.System:get_env/*",
		"Elixir.System:fetch_env/*", "Elixir.System:fetch_env!/*", "Elixir.System:argv/*",
		"Elixir.Application:get_env/*", "Elixir.Application:fetch_env/*", "Elixir.Application:fetch_env!/*",
		"Elixir.Application:get_all_env/*", "Elixir.Application:spec/*", "Elixir.Application:compile_env/*",
		"Elixir.Process:get/*", "Elixir.Process:get_keys/*", "Elixir.File:*", "Elixir.Path:wildcard/*")
	add("remote-shell", "remote shells run arbitrary code; use the audited views instead",
		"shell:*", "Elixir.IEx:*", "iex:*", "user_drv:*", "group:*",
		"c:*", "shell_default:*", "edlin:*", "edlin_expand:*", "Elixir.IEx.Server:*")
	add("code-wrapper", "wraps another call, or evaluates code, so the real operation would be hidden",
		"erlang:apply/*", "apply:*", "rpc:*", "erpc:*", "erl_eval:*", "erl_parse:*",
		"timer:tc/*", "timer:apply_after/*", "timer:apply_interval/*", "timer:apply_repeatedly/*",
		"proc_lib:spawn/*", "proc_lib:spawn_link/*", "proc_lib:spawn_opt/*", "proc_lib:start/*", "proc_lib:start_link/*",
		"erlang:spawn/*", "erlang:spawn_link/*", "erlang:spawn_monitor/*", "erlang:spawn_opt/*", "erlang:spawn_request/*",
		"gen_server:*", "gen:*", "gen_statem:*", "gen_event:*", "gen_fsm:*", "sys:replace_state/*",
		"recon:rpc/*", "recon:named_rpc/*", "recon_lib:term_to_pid/1",
		"erlang:binary_to_term/*", "erlang:list_to_atom/*", "erlang:binary_to_atom/*",
		"erlang:list_to_existing_atom/*", "erlang:make_fun/3", "erlang:load_nif/2",
		"Elixir.Code:*", "Elixir.Kernel:apply/*", "Elixir.GenServer:*", "Elixir.Agent:*", "Elixir.Task:*",
		"Elixir.Node:spawn/*", "Elixir.Node:spawn_link/*", "Elixir.Node:spawn_monitor/*", "Elixir.Process:spawn/*",
		"Elixir.Kernel:spawn/*", "Elixir.Kernel:spawn_link/*", "Elixir.Kernel:spawn_monitor/*",
		"Elixir.String:to_atom/*", "Elixir.List:to_atom/*", "Elixir.EEx:*", "Elixir.Mix:*",
		"observer_backend:ttb_write_trace_info/3", "slave:*", "peer:*", "net_kernel:spawn/*")
	return rs
}()
