#!/usr/bin/env bash
# scripts/observer-gui.sh: prove the real observer GUI works through beamgate.
#
# Runs `beamgate dev` (gateway + demo production node demo@demo-prod on
# 127.0.0.2), gives the demo node an ETS table `orders` owned by a process
# `order_book`, follows the engineer recipe (ssh -N -L, ERL_EPMD_PORT,
# ERL_INETRC, gateway cookie), starts observer on a hidden engineer node in
# a headless X server (Xvfb), points it at demo@demo-prod through the Nodes
# menu event, clicks through its tabs and screenshots them. Then it opens a
# process window (whose mailbox and state reads the readonly policy refuses,
# answered with placeholders) and summarises the gateway's audit log.
#
# Usage (root on Debian 12; installs missing packages with apt-get):
#   scripts/observer-gui.sh [OUTDIR]      (default /tmp/beamgate-observer-<ts>)
#   make observer-gui [OBSERVER_GUI_OUT=DIR]
# Env: OBSERVER_GUI_DISPLAY (default 77), OBSERVER_GUI_WAIT (seconds per GUI
# step, default 4).
# Output: OUTDIR/*.png, windows.txt (window titles at each shot),
# audit.jsonl (the gateway's audit log) and audit-summary.txt.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-/tmp/beamgate-observer-$(date +%Y%m%d-%H%M%S)}
display_num=${OBSERVER_GUI_DISPLAY:-77}
step_wait=${OBSERVER_GUI_WAIT:-4}
target='demo@demo-prod'

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
for c in go erl Xvfb xdotool import ssh; do
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

cleanup() {
	local rc=$? i
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
		stop_pid "${pids[i]}"
	done
	wait 2>/dev/null || true
	[[ -f $work/state/audit.jsonl ]] && cp "$work/state/audit.jsonl" "$out/audit.jsonl"
	[[ -f $work/eng.log ]] && cp "$work/eng.log" "$out/engineer-node.log"
	rm -rf "$work" # holds the production cookie and the generated key
	if ((rc == 0)); then log "done; screenshots in $out"; else log "failed (exit $rc); partial output in $out"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port_listening() { # port: something listens on 127.0.0.1:port
	if command -v ss >/dev/null; then
		ss -Hltn "( sport = :$1 )" | grep -q .
	else
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
	fi
}
port_free() { ! port_listening "$1"; }
free_port() { # a port nothing listens on (127.0.0.1)
	local p i
	for ((i = 0; i < 200; i++)); do
		p=$((20000 + RANDOM % 40000))
		port_free "$p" && { echo "$p"; return 0; }
	done
	die "no free port found"
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

# --- 2. beamgate dev and the demo node's state -------------------------------
log "building ./bin/beamgate"
(cd "$repo" && go build -o bin/beamgate ./cmd/beamgate)

ssh_port=$(free_port)
gw_port=4370
port_free "$gw_port" || gw_port=$(free_port)
mkdir -p "$work/home" "$work/seed-home"
# HOME points at an empty directory so beamgate dev generates a key for us.
HOME=$work/home "$repo/bin/beamgate" dev --state "$work/state" \
	--listen "127.0.0.1:$ssh_port" --gateway-port "$gw_port" \
	>"$work/beamgate.out" 2>"$work/beamgate.err" </dev/null &
pids+=($!)
wait_for 60 "beamgate dev" grep -q 'To see your recipe' "$work/beamgate.out"
key=$(sed -n 's/.*generated a key for user dev: //p' "$work/beamgate.out")
demo_epmd=$(sed -n 's/.*(epmd port \([0-9]*\),.*/\1/p' "$work/beamgate.out")
[[ -n $key && -n $demo_epmd ]] || die "unexpected beamgate dev output: $(cat "$work/beamgate.out")"
log "beamgate dev on 127.0.0.1:$ssh_port, $target's epmd on 127.0.0.2:$demo_epmd"

# Seed the demo node as its operator would: a direct connection with the
# production cookie (from a cookie file, not the command line), no
# listening, no epmd registration.
sed -n 's/^demo: *//p' "$work/state/cookies.yaml" | tr -d '\n' >"$work/seed-home/.erlang.cookie"
chmod 400 "$work/seed-home/.erlang.cookie"
printf '%s\n' '{host, {127,0,0,2}, ["demo-prod"]}.' '{lookup, [file, native]}.' >"$work/seed.inetrc"
HOME=$work/seed-home ERL_EPMD_PORT=$demo_epmd ERL_INETRC=$work/seed.inetrc \
	timeout 60 erl -noshell -sname seed -start_epmd false -dist_listen false -eval '
Node = '"'$target'"',
true = net_kernel:connect_node(Node),
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
Wait = fun W(0) -> erlang:error(order_book_missing);
           W(K) -> case erpc:call(Node, erlang, whereis, [order_book]) of
                       undefined -> timer:sleep(100), W(K - 1);
                       _ -> ok
                   end
       end,
ok = Wait(100),
io:format("seeded ~p: ets table orders with ~p rows, owner order_book~n",
          [Node, erpc:call(Node, ets, info, [orders, size])]),
halt().' >&2 </dev/null

# --- 3. the engineer recipe ----------------------------------------------------
ssh_opts=(-F /dev/null -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
	-o BatchMode=yes -o IdentitiesOnly=yes -o LogLevel=ERROR -i "$key" -p "$ssh_port")
timeout 20 ssh "${ssh_opts[@]}" dev@127.0.0.1 </dev/null >"$out/recipe.txt"
cookie=$(timeout 20 ssh "${ssh_opts[@]}" dev@127.0.0.1 cookie </dev/null | tr -d '[:space:]')
[[ -n $cookie ]] || die "no gateway cookie"
sed -i "s/$cookie/GATEWAYCOOKIE/g" "$out/recipe.txt" # keep no credential in the output
mapfile -t forwards < <(grep -oE -- '-L [0-9]+:[^ ]+' "$out/recipe.txt")
eng_epmd=$(sed -n 's/.*export ERL_EPMD_PORT=\([0-9]*\).*/\1/p' "$out/recipe.txt")
((${#forwards[@]} >= 2)) && [[ -n $eng_epmd ]] || die "unexpected recipe: $(cat "$out/recipe.txt")"
port_free "$eng_epmd" || die "port $eng_epmd (the recipe's local epmd port) is in use"
log "recipe: ssh -N ${forwards[*]} dev@127.0.0.1 -p $ssh_port; ERL_EPMD_PORT=$eng_epmd"
# shellcheck disable=SC2086 # each forward is "-L spec"
ssh "${ssh_opts[@]}" -o ExitOnForwardFailure=yes -N ${forwards[*]} dev@127.0.0.1 \
	</dev/null >"$work/forward.log" 2>&1 &
pids+=($!)
wait_for 20 "the ssh -L forward" port_listening "$eng_epmd"
printf '%s\n' '{host, {127,0,0,1}, ["demo-prod"]}.' '{lookup, [file, native]}.' >"$work/eng.inetrc"

for ((d = display_num; d < display_num + 20; d++)); do
	[[ -e /tmp/.X$d-lock || -e /tmp/.X11-unix/X$d ]] || break
done
export DISPLAY=:$d
Xvfb "$DISPLAY" -screen 0 1280x900x24 -nolisten tcp >"$work/xvfb.log" 2>&1 &
pids+=($!)
wait_for 20 "Xvfb on $DISPLAY" test -e "/tmp/.X11-unix/X$d"

# --- 4. observer on the engineer's hidden node --------------------------------
# The node connects, starts observer, selects the target the way its Nodes
# menu does (observer_wx:get_nodes/0 in OTP 25 lists epmd names on the
# engineer's host plus node() and nodes(connected), usorted; menu id 1000+I),
# reports the active node, then waits for a trigger to open the process
# window of order_book (observer's own {open_link, Pid} path, the same as a
# double-click in the Processes tab).
status=$work/eng.status
: >"$status"
HOME=$work/home ERL_EPMD_PORT=$eng_epmd ERL_INETRC=$work/eng.inetrc OBSERVER_GUI_STATUS=$status \
	erl -noshell -sname eng -hidden -start_epmd false -setcookie "$cookie" -eval '
Target = '"'$target'"',
Status = os:getenv("OBSERVER_GUI_STATUS"),
Say = fun(Fmt, Args) -> ok = file:write_file(Status, io_lib:format(Fmt, Args), [append]) end,
Connect = fun C(0) -> false;
              C(K) -> net_kernel:connect_node(Target) orelse (timer:sleep(500) == ok andalso C(K - 1))
          end,
Connect(20) orelse (Say("error: cannot connect to ~p~n", [Target]) == ok andalso halt(1)),
ok = observer:start(),
EpmdNodes = case net_adm:names() of
                {ok, Names} ->
                    [_, Host] = string:lexemes(atom_to_list(node()), "@"),
                    [list_to_atom(N ++ "@" ++ Host) || {N, _} <- Names];
                {error, _} -> []
            end,
Menu = lists:usort(EpmdNodes ++ [node() | nodes(connected)]),
I = length(lists:takewhile(fun(N) -> N =/= Target end, Menu)) + 1,
observer ! {wx, 1000 + I, undefined, [], {wxCommand, command_menu_selected, [], 0, 0}},
Active = fun A(0) -> observer_wx:get_active_node();
             A(K) -> case observer_wx:get_active_node() of
                         Target -> Target;
                         _ -> timer:sleep(250), A(K - 1)
                     end
         end,
Say("nodes menu ~p, item ~p~nactive ~p~n", [Menu, I, Active(40)]),
Trigger = Status ++ ".open-process",
WaitTrigger = fun W(0) -> timeout;
                  W(K) -> case filelib:is_file(Trigger) of
                              true -> ok;
                              false -> timer:sleep(250), W(K - 1)
                          end
              end,
case WaitTrigger(2400) of
    ok ->
        Pid = rpc:call(Target, erlang, whereis, [order_book]),
        observer ! {open_link, pid_to_list(Pid)},
        Say("opened process window ~p~n", [Pid]);
    timeout -> ok
end.' >"$work/eng.log" 2>&1 </dev/null &
pids+=($!)
wait_for 60 "observer to select $target" grep -q '^active ' "$status"
grep -q "^active '$target'" "$status" || die "observer did not select $target: $(cat "$status")"
log "$(tr '\n' ' ' <"$status")"

main_win=$(xdotool search --name "^Observer - " | head -1)
[[ -n $main_win ]] || die "no observer window"
# Without a window manager the window keeps its requested size: 1280 wide
# shows every tab. Tab centres (y=43) were read off a first screenshot:
# System 45, Load Charts 140, Memory Allocators 272, Applications 405,
# Processes 510, Ports 591, Sockets 664, Table Viewer 763, Trace Overview 886.
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
expect_title() {
	[[ $(title) == "Observer - $target" ]] || die "observer shows $(title), not $target"
}

expect_title
shot 01-system
xdotool mousemove 510 43 click 1 # Processes
sleep "$step_wait"
expect_title
shot 02-processes
xdotool mousemove 763 43 click 1 # Table Viewer
sleep "$step_wait"
expect_title
shot 03-table-viewer
# Tables are listed by name: logger, orders, rex_nodes_observer. A
# double-click on the second row opens the orders table's contents.
xdotool mousemove 60 126 click --repeat 2 --delay 80 1
wait_for 20 "the orders table window" xdotool search --name "^TV Ets: orders"
sleep "$step_wait"
shot 04-orders-table
xdotool search --name "^TV Ets: orders" windowunmap %@
xdotool mousemove 510 43 click 1 # back to Processes
sleep "$step_wait"

# The process window reads process_info(P, messages) for its Messages tab
# and sys:get_status/2 for its State tab as it opens. The readonly policy
# refuses both; because observer takes any badrpc for a lost node, beamgate
# answers these two with a placeholder in the expected shape ("hidden by
# beamgate (rule ...)"), so the window opens and the other tabs work.
touch "$status.open-process"
wait_for 30 "the process window to open" grep -q '^opened process window' "$status"
sleep "$step_wait"
shot 05-process-window
log "after opening the process window the observer shows: $(title)"
xdotool mousemove 215 43 click 1 # Messages tab of the process window
sleep "$step_wait"
shot 06-process-messages-hidden
xdotool mousemove 501 43 click 1 # State tab
sleep "$step_wait"
shot 07-process-state-hidden
if ! xdotool search --onlyvisible --name "^Observer - demo@demo-prod" >/dev/null 2>&1; then
	die "observer lost the production node after opening a process window (see engineer-node.log)"
fi
log "observer still shows demo@demo-prod after the process window"

# --- audit log ------------------------------------------------------------------
audit=$work/state/audit.jsonl
{
	echo "# decisions on engineer->production calls (count decision mfa rule)"
	grep '"event":"message"' "$audit" | grep '"mfa"' |
		sed -n 's/.*"mfa":"\([^"]*\)","decision":"\([^"]*\)","rule":"\([^"]*\)".*/\2 \1 \3/p' |
		sort | uniq -c | sort -k2,2 -k1,1nr
	echo
	echo "# refusals"
	grep '"decision":"deny"' "$audit" | sed -n 's/.*"mfa":"\([^"]*\)".*"reason":"\([^"]*\)".*"args":"\([^"]*\)".*/\1 \3: \2/p'
	echo
	echo "# distribution sessions"
	grep -E '"event":"session_(start|end)"' "$audit" |
		sed -n 's/.*"time":"\([^"]*\)".*"event":"\([^"]*\)".*"engineer":"\([^"]*\)","target":"\([^"]*\)".*"decision":"[^"]*"\(,"reason":"[^"]*"\)\{0,1\}.*/\1 \2 \3 -> \4 \5/p' |
		sed 's/ ,"reason":"\(.*\)"$/: \1/'
} >"$out/audit-summary.txt"
cat "$out/audit-summary.txt" >&2
grep -q '"decision":"allow","rule":"observer.table_viewer"' "$audit" || die "no audited Table Viewer read"
grep -q '"mfa":"observer_backend:procs_info/1","decision":"allow"' "$audit" || die "no audited Processes read"
echo "$out"
