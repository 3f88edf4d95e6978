#!/usr/bin/env bash
# scripts/observer-gui.sh: prove the real observer GUI works through beamgate.
#
# Runs `beamgate dev` (gateway + the demo cluster `demo`: demo@demo-prod-1 on
# 127.0.0.2, demo@demo-prod-2 and worker@demo-prod-2 on 127.0.0.3), seeds
# demo@demo-prod-1 with an ETS table `orders` owned by a process
# `order_book` and demo@demo-prod-2 with a table `invoices` owned by
# `billing_worker`, then follows the printed engineer recipe literally: its
# `ssh -N -L ...` line, its printf/export lines (ERL_INETRC, ERL_EPMD_PORT)
# and its `erl ...` line, to which it only appends -noshell and a second
# -eval that starts observer in a headless X server (Xvfb) and drives it.
# It screenshots the open Nodes menu (the three cluster nodes and the
# engineer's own node, no phantom), the tabs of demo@demo-prod-1, a process
# window (whose mailbox and state reads the readonly policy refuses, answered
# with placeholders), then the Processes tab of demo@demo-prod-2 after a
# switch through the Nodes menu event, then, back on demo@demo-prod-1, the
# Applications tab with the demo workload's application demo_shop selected
# (its supervision tree), and summarises the gateway's audit log. (The
# seeded order_book/billing_worker stay: the demo workload's tables are owned
# by catalog, a gen_server, and the process-window shots rely on order_book
# not being a proc_lib process.)
#
# Usage (root on Debian 12; installs missing packages with apt-get):
#   scripts/observer-gui.sh [OUTDIR]      (default /tmp/beamgate-observer-<ts>)
#   make observer-gui [OBSERVER_GUI_OUT=DIR]
# Env: OBSERVER_GUI_DISPLAY (default 77), OBSERVER_GUI_WAIT (seconds per GUI
# step, default 4).
# Output: OUTDIR/*.png, nodes-menu.txt (the Nodes menu as the engineer's node
# computes it), applications-demo_shop.txt (the tree the Applications tab
# drew), windows.txt (window titles at each shot), recipe.txt (cookie
# replaced), engineer-node.log, audit.jsonl (the gateway's audit log) and
# audit-summary.txt.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-/tmp/beamgate-observer-$(date +%Y%m%d-%H%M%S)}
display_num=${OBSERVER_GUI_DISPLAY:-77}
step_wait=${OBSERVER_GUI_WAIT:-4}
target1='demo@demo-prod-1' # seeded with orders/order_book; most shots
target2='demo@demo-prod-2' # seeded with invoices/billing_worker
# The recipe's loopback addresses for the two demo hosts (Linux routes all of
# 127.0.0.0/8): the forwards bind there, so the ports must be free there.
fwd_addrs=(127.0.0.1 127.77.1.1 127.77.1.2)

log() { printf 'observer-gui: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# --- 1. packages -------------------------------------------------------------
need=()
for p in erlang-observer xvfb xdotool imagemagick openssh-client; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || need+=("$p")
done
if ((${#need[@]})); then
	log "installing ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq </dev/null
	apt-get install -y -qq --no-install-recommends "${need[@]}" </dev/null >/dev/null
fi
for c in go erl Xvfb xdotool import convert compare ssh; do
	command -v "$c" >/dev/null || die "$c not found"
done

# --- process bookkeeping -----------------------------------------------------
work=$(mktemp -d /tmp/beamgate-observer-work.XXXXXX)
mkdir -p "$out"
pids=() # started in this order; stopped in reverse

stop_pid() { # pid: TERM, then KILL after 10 s
	local pid=$1 i
	kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null || return 0
	for ((i = 0; i < 100; i++)); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
}

collect() { # copy the logs into the output
	[[ -f $work/state/audit.jsonl ]] && cp "$work/state/audit.jsonl" "$out/audit.jsonl"
	[[ -f $work/eng.log ]] && cp "$work/eng.log" "$out/engineer-node.log"
	return 0
}

cleanup() {
	local rc=$? i
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
		stop_pid "${pids[i]}"
	done
	wait 2>/dev/null || true
	collect
	rm -rf "$work" # holds the production cookie and the generated key
	if ((rc == 0)); then
		log "done in ${SECONDS}s; screenshots in $out"
	else
		log "failed (exit $rc) after ${SECONDS}s; partial output in $out"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port_listening() { # port: something listens on it (any address)
	local a
	if command -v ss >/dev/null; then
		ss -Hltn "( sport = :$1 )" | grep -q .
	else
		for a in "${fwd_addrs[@]}"; do
			(exec 3<>"/dev/tcp/$a/$1") 2>/dev/null && return 0
		done
		return 1
	fi
}
port_free() { ! port_listening "$1"; }
ports_free() { # first count: first..first+count-1 all free
	local i
	for ((i = 0; i < $2; i++)); do port_free $(($1 + i)) || return 1; done
}
taken=" " # ports chosen so far
ports_untaken() { # first count
	local i
	for ((i = 0; i < $2; i++)); do [[ $taken != *" $(($1 + i)) "* ]] || return 1; done
}
free_ports() { # preferred count: that run of count ports if free, else a random free run
	local p=$1 n=$2 i
	for ((i = 0; i < 200; i++)); do
		if ports_untaken "$p" "$n" && ports_free "$p" "$n"; then
			for ((i = 0; i < n; i++)); do taken+="$((p + i)) "; done
			echo "$p"
			return 0
		fi
		p=$((20000 + RANDOM % 40000))
	done
	die "no $n free port(s) found"
}

wait_for() { # seconds description command...: poll until command succeeds
	local secs=$1 what=$2 i
	shift 2
	for ((i = 0; i < secs * 5; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	die "timed out after ${secs}s waiting for $what"
}

# --- 2. beamgate dev and the demo nodes' state --------------------------------
log "building ./bin/beamgate"
(cd "$repo" && go build -o bin/beamgate ./cmd/beamgate)

# Free on every address the recipe's forwards bind: the engineer's epmd port
# on 127.0.0.1 and on each host address, the gateway ports (node i gets
# gw_port+i) on the host addresses. Defaults first, as an engineer gets them.
free_ports 2222 1 >"$work/port" && ssh_port=$(<"$work/port") # not $(...): taken must stick
free_ports 4370 3 >"$work/port" && gw_port=$(<"$work/port")
free_ports 14369 1 >"$work/port" && eng_epmd=$(<"$work/port")
mkdir -p "$work/home" "$work/seed-home"
# HOME points at an empty directory so beamgate dev generates a key for us.
HOME=$work/home "$repo/bin/beamgate" dev --state "$work/state" \
	--listen "127.0.0.1:$ssh_port" --gateway-port "$gw_port" --engineer-epmd-port "$eng_epmd" \
	>"$work/beamgate.out" 2>"$work/beamgate.err" </dev/null &
pids+=($!)
wait_for 60 "beamgate dev" grep -q 'To see your recipe' "$work/beamgate.out"
key=$(sed -n 's/.*generated a key for user dev: //p' "$work/beamgate.out")
[[ -n $key ]] || die "unexpected beamgate dev output: $(cat "$work/beamgate.out")"
cfg=$work/state/beamgate.yaml
mapfile -t cluster < <(sed -n 's/^ *- name: *//p' "$cfg")
dial_of() { # node: its dial address (the host's private epmd) in beamgate.yaml
	awk -v n="$1" '$1 == "-" && $2 == "name:" { cur = $3 }
		$1 == "dial:" && cur == n { gsub(/"/, "", $2); print $2; exit }' "$cfg"
}
((${#cluster[@]} == 3)) || die "expected 3 demo nodes in $cfg, found: ${cluster[*]}"
log "beamgate dev on 127.0.0.1:$ssh_port; cluster demo: ${cluster[*]}"

# Seed a demo node as its operator would: a direct connection with the
# production cookie (from a cookie file, not the command line), no
# listening, no epmd registration. Args: node, Erlang code run with Node
# bound (it ends by printing what it seeded).
sed -n 's/^demo: *//p' "$work/state/cookies.yaml" | tr -d '\n' >"$work/seed-home/.erlang.cookie"
chmod 400 "$work/seed-home/.erlang.cookie"
seed() {
	local node=$1 code=$2 dial ip
	dial=$(dial_of "$node")
	ip=${dial%:*}
	[[ $dial == *:* ]] || die "no dial address for $node in $cfg"
	log "seeding $node (its host's epmd: $dial)"
	printf '%s\n' "{host, {${ip//./,}}, [\"${node#*@}\"]}." '{lookup, [file, native]}.' >"$work/seed.inetrc"
	HOME=$work/seed-home ERL_EPMD_PORT=${dial##*:} ERL_INETRC=$work/seed.inetrc \
		timeout 60 erl -noshell -sname seed -start_epmd false -dist_listen false -eval '
Node = '"'$node'"',
true = net_kernel:connect_node(Node),
Wait = fun W(_, 0) -> erlang:error(seed_process_missing);
           W(Name, K) -> case erpc:call(Node, erlang, whereis, [Name]) of
                             undefined -> timer:sleep(100), W(Name, K - 1);
                             _ -> ok
                         end
       end,
'"$code"',
halt().' >&2 </dev/null
}
seed "$target1" '
Owner = fun() ->
    orders = ets:new(orders, [named_table, set, public, {read_concurrency, true}]),
    Customers = {acme, globex, initech, umbrella, hooli, stark, wayne},
    Statuses = {placed, paid, packed, shipped, delivered},
    ets:insert(orders, [{N, element(N rem 7 + 1, Customers), {eur_cents, (N * 3719) rem 50000},
                         element(N rem 5 + 1, Statuses)} || N <- lists:seq(1, 1200)]),
    register(order_book, self()),
    receive stop -> ok end
end,
spawn(Node, Owner),
ok = Wait(order_book, 100),
io:format("seeded ~p: ets table orders with ~p rows, owner order_book~n",
          [Node, erpc:call(Node, ets, info, [orders, size])])'
seed "$target2" '
Owner = fun() ->
    invoices = ets:new(invoices, [named_table, ordered_set, public]),
    Clients = {northwind, contoso, fabrikam, tailspin},
    ets:insert(invoices, [{{inv, 2024, N}, element(N rem 4 + 1, Clients), {eur_cents, (N * 7919) rem 90000},
                           lists:nth(N rem 3 + 1, [open, sent, settled])} || N <- lists:seq(1, 3000)]),
    register(billing_worker, self()),
    receive stop -> ok end
end,
spawn(Node, Owner),
ok = Wait(billing_worker, 100),
io:format("seeded ~p: ets table invoices with ~p rows, owner billing_worker~n",
          [Node, erpc:call(Node, ets, info, [invoices, size])])'

# --- 3. the engineer recipe, followed literally ---------------------------------
ssh_opts=(-F /dev/null -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
	-o BatchMode=yes -o LogLevel=ERROR)
timeout 20 ssh "${ssh_opts[@]}" -o IdentitiesOnly=yes -i "$key" -p "$ssh_port" dev@127.0.0.1 \
	</dev/null >"$work/recipe.txt"
cookie=$(timeout 20 ssh "${ssh_opts[@]}" -o IdentitiesOnly=yes -i "$key" -p "$ssh_port" dev@127.0.0.1 cookie \
	</dev/null | tr -d '[:space:]')
[[ -n $cookie ]] || die "no gateway cookie"
sed "s/$cookie/GATEWAYCOOKIE/g" "$work/recipe.txt" >"$out/recipe.txt" # keep no credential in the output
recipe_line() { # regexp: the one recipe line matching it, without its indent
	local l
	l=$(grep -E -- "^ *$1" "$work/recipe.txt" | sed 's/^ *//') || true
	[[ -n $l && $l != *$'\n'* ]] || die "no single recipe line matching /$1/ (see $out/recipe.txt)"
	printf '%s' "$l"
}
fwd_line=$(recipe_line 'ssh -N ')
inetrc_line=$(recipe_line "printf '%s")
export_line=$(recipe_line 'export ERL_EPMD_PORT=')
erl_line=$(recipe_line 'erl -sname ')
grep -qiF "cluster demo: 3 nodes on 2 hosts" "$work/recipe.txt" ||
	die "the recipe is not the demo cluster's (see $out/recipe.txt)"
[[ $export_line == *"ERL_EPMD_PORT=$eng_epmd "* ]] || die "the recipe's ERL_EPMD_PORT is not $eng_epmd: $export_line"

# Step 1: the printed ssh -N line, with the harness's client options only.
log "step 1: ${fwd_line}"
(eval "exec ssh ${ssh_opts[*]} ${fwd_line#ssh }") </dev/null >"$work/forward.log" 2>&1 &
pids+=($!)
fwd_pid=$!
for p in "$eng_epmd" "$gw_port" $((gw_port + 1)) $((gw_port + 2)); do
	for ((i = 0; i < 100; i++)); do
		port_listening "$p" || ! kill -0 "$fwd_pid" 2>/dev/null && break
		sleep 0.2
	done
	port_listening "$p" || die "the ssh -N forward does not listen on port $p: $(cat "$work/forward.log")"
done
# Step 2: the printed printf and export lines, with HOME the engineer's.
export HOME=$work/home
log "step 2: ${inetrc_line}; ${export_line}"
eval "$inetrc_line"
eval "$export_line"
[[ ${ERL_EPMD_PORT:-} == "$eng_epmd" && -s ${ERL_INETRC:-} ]] || die "step 2 did not set ERL_EPMD_PORT and ERL_INETRC"

for ((d = display_num; d < display_num + 20; d++)); do
	[[ -e /tmp/.X$d-lock || -e /tmp/.X11-unix/X$d ]] || break
done
export DISPLAY=:$d
Xvfb "$DISPLAY" -screen 0 1280x900x24 -nolisten tcp >"$work/xvfb.log" 2>&1 &
pids+=($!)
wait_for 20 "Xvfb on $DISPLAY" test -e "/tmp/.X11-unix/X$d"

# --- 4. step 3: the printed erl line, driving observer -------------------------
# The printed -eval connects to every node of the cluster first. DRIVER then
# checks the connections, starts observer and writes its Nodes menu as
# observer_wx:get_nodes/0 (OTP 25) computes it: epmd names on the engineer's
# host (net_adm:names/0, here the gateway's home face) ++ [node() |
# nodes(connected)], usorted, item I has menu id 1000+I. (epmd_nodes/1 only
# filters by port under -erl_epmd_port, which the recipe does not use.) It
# compares that list with the labels of observer's real Nodes menu, then runs
# the commands the script appends to STATUS.cmd, answering each on STATUS
# with "ack CMD: ...":
#   select NODE       the Nodes menu event for NODE; waits for observer to show it
#   open NODE NAME    the process window of NAME on NODE (observer's own
#                     {open_link, Pid} path, the same as a double-click)
#   approw APP        "X Y in [Apps]": where APP's row of the Applications
#                     tab's list box is on the screen (to click it)
#   apptree APP NAME...  waits until the Applications tab shows APP's tree
#                     with every NAME in it; writes the tree to
#                     $OBSERVER_GUI_APPTREE.APP; "area WxH+X+Y, N boxes: ..."
#   quit
status=$work/eng.status
: >"$status"
: >"$status.cmd"
export OBSERVER_GUI_STATUS=$status OBSERVER_GUI_MENU=$out/nodes-menu.txt OBSERVER_GUI_CLUSTER="${cluster[*]}" \
	OBSERVER_GUI_APPTREE=$work/apptree
DRIVER=$(
	cat <<'ERLANG'
Status = os:getenv("OBSERVER_GUI_STATUS"),
Say = fun(Fmt, Args) -> ok = file:write_file(Status, io_lib:format(Fmt, Args), [append]) end,
Cluster = [list_to_atom(N) || N <- string:lexemes(os:getenv("OBSERVER_GUI_CLUSTER"), " ")],
Say("self ~s~nvisible ~w~nhidden ~w~n", [node(), nodes(), nodes(hidden)]),
[] =:= Cluster -- nodes() orelse (Say("error: not connected to ~w~n", [Cluster -- nodes()]) == ok andalso halt(1)),
MenuNodes = fun() ->
    EpmdNodes = case net_adm:names() of
                    {ok, Names} ->
                        [_, Host] = string:lexemes(atom_to_list(node()), "@"),
                        [list_to_atom(N ++ "@" ++ Host) || {N, _} <- Names];
                    {error, _} -> []
                end,
    lists:usort(EpmdNodes ++ [node() | nodes(connected)])
end,
ok = observer:start(),
Menu = MenuNodes(),
ok = file:write_file(os:getenv("OBSERVER_GUI_MENU"), [[atom_to_list(N), $\n] || N <- Menu]),
GuiMenu = try
              wx:set_env(observer_wx:get_attrib(wx_env)),
              MB = observer_wx:get_menubar(),
              NM = wxMenuBar:getMenu(MB, wxMenuBar:findMenu(MB, "Nodes")),
              [wxMenuItem:getItemLabelText(It) || It <- wxMenu:getMenuItems(NM)]
          catch C:E -> {C, E}
          end,
Say("menu ~w~ngui menu ~p~n", [Menu, GuiMenu]),
GuiMenu =:= [atom_to_list(N) || N <- Menu] ++ ["Connect Node"] orelse
    (Say("error: observer's Nodes menu is not the computed one~n", []) == ok andalso halt(1)),
%% The Applications tab (observer_app_wx, a wx_object) keeps its state in its
%% process dictionary ('_wx_object_'): #state{apps_w = the list box, app_w =
%% the drawing area, current = the selected application, app = #app{ptree}
%% the tree drawn, boxes #box{s1 = #str{text}}}. Read, never changed.
AppState = fun() ->
    case [S || P <- processes(),
               {dictionary, D} <- [erlang:process_info(P, dictionary)],
               {'_wx_object_', {observer_app_wx, S}} <- D] of
        [S = {state, _, _, _, _, _, _, _, _, _, _} | _] -> S;
        _ -> undefined
    end
end,
TreeLines = fun TL({{box, _, _, _, _, {str, _, _, Text, _}}, Chs}, Depth) ->
                    [{Depth, Text} | lists:append([TL(C, Depth + 1) || C <- Chs])]
            end,
Retry = fun R(F, 0) -> F();
            R(F, K) -> case F() of {ok, V} -> {ok, V}; _ -> timer:sleep(250), R(F, K - 1) end
        end,
Active = fun A(T, 0) -> observer_wx:get_active_node() =:= T;
             A(T, K) -> observer_wx:get_active_node() =:= T orelse (timer:sleep(250) == ok andalso A(T, K - 1))
         end,
Run = fun(["select", N]) ->
              T = list_to_atom(N),
              M = MenuNodes(),
              case lists:member(T, M) of
                  false -> io_lib:format("error: ~p not in the Nodes menu ~w", [T, M]);
                  true ->
                      I = length(lists:takewhile(fun(X) -> X =/= T end, M)) + 1,
                      observer ! {wx, 1000 + I, undefined, [], {wxCommand, command_menu_selected, [], 0, 0}},
                      Active(T, 40),
                      io_lib:format("item ~p of ~w, active ~p", [I, M, observer_wx:get_active_node()])
              end;
         (["open", N, Name]) ->
              case rpc:call(list_to_atom(N), erlang, whereis, [list_to_atom(Name)]) of
                  Pid when is_pid(Pid) ->
                      observer ! {open_link, pid_to_list(Pid)},
                      io_lib:format("opened process window ~p", [Pid]);
                  Other -> io_lib:format("error: whereis ~s: ~p", [Name, Other])
              end;
         (["approw", App]) ->
              %% The screen position of App's row in the Applications list
              %% box (wxListBox:hitTest/2 over the box's height).
              Find = fun() ->
                  case AppState() of
                      {state, _, _, LB, _, _, _, _, _, _, _} ->
                          Items = [wxListBox:getString(LB, I) || I <- lists:seq(0, wxListBox:getCount(LB) - 1)],
                          case lists:member(App, Items) of
                              false -> {no, Items};
                              true ->
                                  Idx = length(lists:takewhile(fun(X) -> X =/= App end, Items)),
                                  {_, H} = wxWindow:getClientSize(LB),
                                  Ys = [Y || Y <- lists:seq(0, H - 1), wxListBox:hitTest(LB, {20, Y}) =:= Idx],
                                  case Ys of
                                      [] -> {no, Items};
                                      _ -> {ok, {wxWindow:clientToScreen(LB, {40, (hd(Ys) + lists:last(Ys)) div 2}), Items}}
                                  end
                          end;
                      _ -> {no, no_applications_panel}
                  end
              end,
              case Retry(Find, 80) of
                  {ok, {{SX, SY}, Items}} -> io_lib:format("~p ~p in ~p", [SX, SY, Items]);
                  {no, Items} -> io_lib:format("error: no row ~s in the Applications list ~p", [App, Items])
              end;
         (["apptree", App | Names]) ->
              %% Waits until the Applications tab has App selected and draws a
              %% tree with every one of Names; writes the tree drawn, one box
              %% a line, indented by depth, to OBSERVER_GUI_APPTREE.APP.
              Get = fun() ->
                  case AppState() of
                      {state, _, _, _, AW, _, Cur, {app, PTree, _, _, _}, _, _, _} ->
                          Lines = TreeLines(PTree, 0),
                          Texts = [T || {_, T} <- Lines],
                          case list_to_atom(App) =:= Cur andalso Names -- Texts =:= [] of
                              true -> {ok, {AW, Lines}};
                              false -> {no, {Cur, Texts}}
                          end;
                      {state, _, _, _, _, _, Cur, _, _, _, _} -> {no, {Cur, []}};
                      _ -> {no, no_applications_panel}
                  end
              end,
              case Retry(Get, 80) of
                  {ok, {AW, Lines}} ->
                      ok = file:write_file(os:getenv("OBSERVER_GUI_APPTREE") ++ "." ++ App,
                                           [[lists:duplicate(2 * D, $\s), T, $\n] || {D, T} <- Lines]),
                      {AX, AY} = wxWindow:clientToScreen(AW, {0, 0}),
                      {AWd, AH} = wxWindow:getClientSize(AW),
                      io_lib:format("area ~px~p+~p+~p, ~p boxes: ~s", [AWd, AH, AX, AY, length(Lines),
                                    lists:join(" ", [T || {_, T} <- Lines])]);
                  {no, Seen} -> io_lib:format("error: no tree of ~s with ~p after 20 s: ~p", [App, Names, Seen])
              end;
         (["quit"]) -> "bye";
         (Other) -> io_lib:format("error: unknown command ~p", [Other])
      end,
Loop = fun L(_, 0) -> Say("error: no command for 20 minutes~n", []);
           L(Done, K) ->
               Cmds = case file:read_file(Status ++ ".cmd") of
                          {ok, B} -> string:lexemes(binary_to_list(B), "\n");
                          _ -> []
                      end,
               case lists:nthtail(Done, Cmds) of
                   [] -> timer:sleep(250), L(Done, K - 1);
                   [Cmd | _] ->
                       Say("ack ~s: ~s~n", [Cmd, Run(string:lexemes(Cmd, " "))]),
                       Cmd =:= "quit" orelse L(Done + 1, 4800)
               end
       end,
Loop(0, 4800).
ERLANG
)
log "step 3: ${erl_line/$cookie/GATEWAYCOOKIE} -noshell -eval \"\$DRIVER\""
(eval "exec $erl_line -noshell -eval \"\$DRIVER\"") >"$work/eng.log" 2>&1 </dev/null &
pids+=($!)
wait_for 60 "observer's Nodes menu" grep -qE '^(gui menu|error)' "$status"
grep -q '^error' "$status" && die "$(grep '^error' "$status") (see engineer-node.log)"
self=$(sed -n 's/^self //p' "$status")
log "engineer node $self: $(tr '\n' ' ' <"$status")"

# The Nodes menu: the three cluster nodes and the engineer's own node; a
# phantom (say demo@<engineer host> from the engineer's own epmd) fails.
[[ -s $out/nodes-menu.txt ]] || die "no nodes-menu.txt"
while read -r n; do
	[[ $n == "$self" || " ${cluster[*]} " == *" $n "* ]] || die "the Nodes menu lists $n, not a demo node: $(tr '\n' ' ' <"$out/nodes-menu.txt")"
done <"$out/nodes-menu.txt"
for n in "${cluster[@]}"; do
	grep -qxF "$n" "$out/nodes-menu.txt" || die "the Nodes menu lacks $n: $(tr '\n' ' ' <"$out/nodes-menu.txt")"
done
log "Nodes menu: $(tr '\n' ' ' <"$out/nodes-menu.txt")"

drive() { # command: have the engineer node run it; prints its answer
	local ans
	echo "$1" >>"$status.cmd"
	wait_for 30 "the engineer node to $1" grep -qF "ack $1: " "$status"
	ans=$(grep -F "ack $1: " "$status" | tail -1)
	ans=${ans#"ack $1: "}
	[[ $ans != error* ]] || die "$1: $ans"
	printf '%s' "$ans"
}

# observer titles its window with node() until a node is selected, then
# "Observer - NODE".
log "select $target1: $(drive "select $target1")"
wait_for 30 "the observer window" xdotool search --name "^Observer - "
main_win=$(xdotool search --name "^Observer - " | head -1)
# Without a window manager the window sits at 0,0 and keeps its requested
# size: 1280 wide shows every tab. Tab centres (y=43) were read off a first
# screenshot: System 45, Load Charts 140, Memory Allocators 272,
# Applications 405, Processes 510, Ports 591, Sockets 664, Table Viewer 763,
# Trace Overview 886. The menu bar (y=12) while the System tab shows (it
# adds View): File 19, View 62, Nodes 115, Log 163, Help 205.
xdotool windowsize "$main_win" 1280 880
sleep "$step_wait"

shot() { # name: screenshot the whole screen, note the window titles
	local name=$1
	import -window root "$out/$name.png"
	{
		printf '%s:' "$name"
		{ xdotool search --onlyvisible --name . getwindowname %@ 2>/dev/null || echo '(no windows)'; } |
			{ grep -v '^Erlang$' || true; } | sed 's/^/ [/; s/$/]/' | tr -d '\n'
		echo
	} >>"$out/windows.txt"
	log "shot $out/$name.png"
}
title() { xdotool getwindowname "$main_win"; }
expect_title() { # node
	[[ $(title) == "Observer - $1" ]] || die "observer shows $(title), not $1"
}
menu_area_changed() { # before.png after.png: the area under the Nodes title differs
	local px                # (static labels of the System tab when closed)
	convert "$1" -crop 300x160+95+24 +repage "$work/area-a.png"
	convert "$2" -crop 300x160+95+24 +repage "$work/area-b.png"
	px=$(compare -metric AE "$work/area-a.png" "$work/area-b.png" null: 2>&1 >/dev/null) || true
	[[ ${px%% *} =~ ^[0-9]+$ ]] && ((${px%% *} > 2000))
}

expect_title "$target1"

# The Nodes menu, opened with a click on its title as an engineer would.
import -window root "$work/menu-closed.png"
xdotool mousemove 115 12 click 1 # Nodes
sleep 1.5
import -window root "$work/menu-open.png"
menu_area_changed "$work/menu-closed.png" "$work/menu-open.png" ||
	die "clicking Nodes did not open the menu (see $out/01-nodes-menu.png)"
shot 01-nodes-menu
xdotool key Escape
sleep 1
import -window root "$work/menu-closed-again.png"
menu_area_changed "$work/menu-closed.png" "$work/menu-closed-again.png" &&
	die "the Nodes menu did not close on Escape"
expect_title "$target1"

shot 02-system
xdotool mousemove 510 43 click 1 # Processes
sleep "$step_wait"
expect_title "$target1"
shot 03-processes-demo-prod-1
xdotool mousemove 763 43 click 1 # Table Viewer
sleep "$step_wait"
expect_title "$target1"
shot 04-table-viewer
# Tables are listed by name: logger, orders, rex_nodes_observer. A
# double-click on the second row opens the orders table's contents.
xdotool mousemove 60 126 click --repeat 2 --delay 80 1
wait_for 20 "the orders table window" xdotool search --name "^TV Ets: orders"
sleep "$step_wait"
shot 05-orders-table
xdotool search --name "^TV Ets: orders" windowunmap %@
xdotool mousemove 510 43 click 1 # back to Processes
sleep "$step_wait"

# The process window reads process_info(P, messages) for its Messages tab
# and sys:get_status/2 for its State tab as it opens. The readonly policy
# refuses both; because observer takes any badrpc for a lost node, beamgate
# answers these two with a placeholder in the expected shape ("hidden by
# beamgate (rule ...)"), so the window opens and the other tabs work.
log "$(drive "open $target1 order_book")"
sleep "$step_wait"
shot 06-process-window
log "after opening the process window the observer shows: $(title)"
xdotool mousemove 215 43 click 1 # Messages tab of the process window
sleep "$step_wait"
shot 07-process-messages-hidden
xdotool mousemove 501 43 click 1 # State tab
sleep "$step_wait"
shot 08-process-state-hidden
expect_title "$target1"
log "observer still shows $target1 after the process window"
# Hide the process window (it covers the main window; no window manager to
# close it), then switch nodes with the Nodes menu event.
for w in $(xdotool search --onlyvisible --name . 2>/dev/null); do
	case $(xdotool getwindowname "$w" 2>/dev/null) in
	"Observer - "* | Erlang | "") ;;
	*) xdotool windowunmap "$w" ;;
	esac
done
log "select $target2: $(drive "select $target2")"
sleep "$step_wait"
expect_title "$target2"
xdotool mousemove 510 43 click 1 # Processes (still the active tab)
sleep "$step_wait"
expect_title "$target2"
shot 09-processes-demo-prod-2

# The Applications tab of demo@demo-prod-1 (observer_app_wx, fed by an
# appmon_info process it starts on the node: rule observer.applications):
# the list box on the left holds the node's applications, a click on one
# draws its supervision tree on the right. Kernel's tree first, so that the
# demo_shop shot is compared against another tree, not against whatever
# observer selected by itself.
click_app() { # app: click its row in the list box
	local at
	at=$(drive "approw $1")
	log "$1's row: $at"
	xdotool mousemove "${at%% *}" "$(cut -d' ' -f2 <<<"$at")" click 1
}
tree_of() { # app name...: the tree observer draws for app, once it holds every name
	local ans
	ans=$(drive "apptree $*")
	log "$1's tree: $ans"
	[[ -s $work/apptree.$1 ]] || die "no tree written for $1"
	area=$(sed -n 's/^area \([0-9x+]*\),.*/\1/p' <<<"$ans")
	[[ -n $area ]] || die "no drawing area in: $ans"
}
area_px() { # png geometry: pixels of the area unlike its corner (the background)
	local bg
	convert "$1" -crop "$2" +repage "$work/area.png"
	bg=$(convert "$work/area.png" -format '%[pixel:p{2,2}]' info:)
	convert "$work/area.png" -fill black -opaque "$bg" -fill white +opaque black \
		-colorspace gray -format '%[fx:round(mean*w*h)]' info:
}
area_diff() { # a.png b.png geometry: pixels that differ in the area
	local px
	convert "$1" -crop "$3" +repage "$work/area-a.png"
	convert "$2" -crop "$3" +repage "$work/area-b.png"
	px=$(compare -metric AE "$work/area-a.png" "$work/area-b.png" null: 2>&1 >/dev/null) || true
	[[ ${px%% *} =~ ^[0-9]+$ ]] || die "compare: $px"
	echo "${px%% *}"
}
log "select $target1 again: $(drive "select $target1")"
sleep "$step_wait"
expect_title "$target1"
xdotool mousemove 405 43 click 1 # Applications
sleep "$step_wait"
expect_title "$target1"
click_app kernel
tree_of kernel kernel_sup
sleep 1
import -window root "$work/apps-kernel.png"
click_app demo_shop
# demo_shop_sup -> order_intake, price_cache, catalog, ingest_sup ->
# order_feeder (not registered: drawn as its pid), payment_poller (crashes
# every 15-30 s and is restarted: apptree waits for it).
tree_of demo_shop demo_shop_sup order_intake price_cache catalog ingest_sup payment_poller
sleep 1
expect_title "$target1"
shot 10-applications-demo_shop
cp "$work/apptree.demo_shop" "$out/applications-demo_shop.txt"
changed=$(area_diff "$work/apps-kernel.png" "$out/10-applications-demo_shop.png" "$area")
drawn=$(area_px "$out/10-applications-demo_shop.png" "$area")
log "Applications tree area $area: $drawn pixels drawn, $changed changed from kernel's tree"
((drawn > 3000)) || die "the Applications tab draws no tree for demo_shop (see $out/10-applications-demo_shop.png)"
((changed > 2000)) || die "selecting demo_shop did not redraw the tree (see $out/10-applications-demo_shop.png)"
drive quit >/dev/null

# --- audit log ------------------------------------------------------------------
audit=$work/state/audit.jsonl
membership_denials=$(grep -c '"decision":"deny","rule":"cluster.membership"' "$audit" || true)
appmon_allowed=$(grep '"mfa":"appmon_info:' "$audit" | grep -c '"decision":"allow","rule":"observer.applications"' || true)
appmon_refused=$(grep '"mfa":"appmon_info:' "$audit" | grep -c '"decision":"deny"' || true)
{
	echo "# decisions on engineer->production calls (count decision mfa rule)"
	grep '"event":"message"' "$audit" | grep '"mfa"' |
		sed -n 's/.*"mfa":"\([^"]*\)","decision":"\([^"]*\)","rule":"\([^"]*\)".*/\2 \1 \3/p' |
		sort | uniq -c | sort -k2,2 -k1,1nr
	echo
	echo "# refusals"
	grep '"decision":"deny"' "$audit" | sed -n 's/.*"mfa":"\([^"]*\)".*"reason":"\([^"]*\)".*"args":"\([^"]*\)".*/\1 \3: \2/p'
	echo
	echo "# cluster.membership denials (expect 0): $membership_denials"
	echo
	echo "# appmon_info (the Applications tab; rule observer.applications): allowed=$appmon_allowed refused=$appmon_refused (expect 0)"
	echo
	echo "# targets relayed (distribution sessions, engineer->production messages)"
	for t in "${cluster[@]}"; do
		printf '%s sessions=%s messages=%s\n' "$t" \
			"$(grep '"event":"session_start"' "$audit" | grep -c "\"target\":\"$t\",.*\"decision\":\"allow\"" || true)" \
			"$(grep '"event":"message"' "$audit" | grep "\"target\":\"$t\"" | grep -c '"dir":"e2p"' || true)"
	done
	echo
	echo "# distribution sessions"
	grep -E '"event":"session_(start|end)"' "$audit" |
		sed -n 's/.*"time":"\([^"]*\)".*"event":"\([^"]*\)".*"engineer":"\([^"]*\)","target":"\([^"]*\)".*"decision":"[^"]*"\(,"reason":"[^"]*"\)\{0,1\}.*/\1 \2 \3 -> \4 \5/p' |
		sed 's/ ,"reason":"\(.*\)"$/: \1/'
} >"$out/audit-summary.txt"
cat "$out/audit-summary.txt" >&2
grep -q '"decision":"allow","rule":"observer.table_viewer"' "$audit" || die "no audited Table Viewer read"
for t in "$target1" "$target2"; do
	grep "\"target\":\"$t\"" "$audit" | grep -q '"mfa":"observer_backend:procs_info/1","decision":"allow"' ||
		die "no audited Processes read on $t"
done
grep "\"target\":\"$target1\"" "$audit" |
	grep -q '"mfa":"appmon_info:start_link2/3","decision":"allow","rule":"observer.applications"' ||
	die "no audited appmon_info:start_link2/3 (Applications tab) on $target1"
((appmon_refused == 0)) || die "$appmon_refused appmon_info call(s) refused: $(grep '"mfa":"appmon_info:' "$audit" | grep '"decision":"deny"' | head -3)"
for t in "${cluster[@]}"; do
	grep '"event":"session_start"' "$audit" | grep -q "\"target\":\"$t\",.*\"decision\":\"allow\"" ||
		die "no distribution session relayed to $t"
done
collect
((membership_denials == 0)) || die "$membership_denials cluster.membership denials (the recipe's -connect_all false should prevent them)"
if grep -rqF "$cookie" "$out"; then die "the gateway cookie leaked into $out: $(grep -rlF "$cookie" "$out")"; fi
echo "$out"
