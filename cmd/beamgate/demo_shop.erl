%% demo_shop: the small, realistic workload `beamgate dev` gives its demo
%% nodes, so a first observer or `ssh ... top` session shows what beamgate
%% is for. One module plays the application, its supervisors and its
%% workers (init/1 dispatches on its argument):
%%
%%   demo_shop_sup (one_for_one)
%%     order_intake   gen_server whose mailbox grows: a feeder sends it
%%                    more orders than it handles (bounded at 20000)
%%     price_cache    gen_server holding a large price list (a memory hog)
%%     catalog        gen_server owning ETS tables of several sizes
%%     ingest_sup (one_for_one)
%%       order_feeder       the order_intake feeder
%%       payment_poller     crashes every 15-30 s and is restarted
%%
%% Loaded by beamgate dev at node start: compiled from this file, the
%% application loaded from an in-memory spec, then started.
-module(demo_shop).
-behaviour(application).
-export([start/0, start/2, stop/1, init/1, handle_call/3, handle_cast/2, handle_info/2,
         start_worker/1, feeder/0]).

-define(MAX_BACKLOG, 20000).

start() ->
    ok = application:load({application, demo_shop,
        [{description, "beamgate dev demo shop"}, {vsn, "1.0.0"},
         {modules, [demo_shop]}, {registered, [demo_shop_sup, order_intake, price_cache, catalog,
                                               ingest_sup, payment_poller]},
         {applications, [kernel, stdlib]}, {mod, {demo_shop, []}}]}),
    application:ensure_all_started(demo_shop).

start(_Type, _Args) ->
    supervisor:start_link({local, demo_shop_sup}, ?MODULE, top).

stop(_State) -> ok.

start_worker(Name) ->
    gen_server:start_link({local, Name}, ?MODULE, {worker, Name}, []).

%% Supervisors.
init(top) ->
    {ok, {#{strategy => one_for_one, intensity => 10, period => 60},
          [worker(order_intake), worker(price_cache), worker(catalog),
           #{id => ingest_sup, start => {supervisor, start_link, [{local, ingest_sup}, ?MODULE, ingest]},
             type => supervisor, restart => permanent}]}};
init(ingest) ->
    {ok, {#{strategy => one_for_one, intensity => 20, period => 60},
          [#{id => order_feeder, start => {proc_lib, start_link, [?MODULE, feeder, []]},
             restart => permanent},
           (worker(payment_poller))#{restart => permanent}]}};
%% Workers.
init({worker, order_intake}) ->
    {ok, #{handled => 0}};
init({worker, price_cache}) ->
    Prices = [{Sku, Sku * 7 rem 9973, <<"EUR">>} || Sku <- lists:seq(1, 400000)],
    {ok, #{prices => Prices}};
init({worker, catalog}) ->
    Sizes = [{shop_orders, 20000}, {shop_sessions, 2000}, {shop_skus, 100000}, {shop_rate_limits, 50}],
    Tabs = [begin
                T = ets:new(Name, [named_table, set, public, {read_concurrency, true}]),
                true = ets:insert(T, [{K, erlang:phash2(K), <<"row">>} || K <- lists:seq(1, N)]),
                T
            end || {Name, N} <- Sizes],
    {ok, #{tables => Tabs}};
init({worker, payment_poller}) ->
    erlang:send_after(15000 + rand:uniform(15000), self(), poll_fails),
    {ok, #{}}.

worker(Name) ->
    #{id => Name, start => {?MODULE, start_worker, [Name]}, restart => permanent, type => worker}.

handle_call(stats, _From, State) -> {reply, State, State};
handle_call(_Req, _From, State) -> {reply, unknown, State}.

handle_cast(_Msg, State) -> {noreply, State}.

handle_info({order, _N}, #{handled := H} = State) ->
    timer:sleep(20), % slower than the feeder: the mailbox grows
    {noreply, State#{handled := H + 1}};
handle_info(poll_fails, _State) ->
    exit(payment_gateway_timeout);
handle_info(_Msg, State) ->
    {noreply, State}.

%% The feeder sends order_intake about 100 orders a second, pausing while
%% its backlog is over ?MAX_BACKLOG.
feeder() ->
    proc_lib:init_ack({ok, self()}),
    feed(0).

feed(N) ->
    case whereis(order_intake) of
        undefined -> ok;
        Pid ->
            case process_info(Pid, message_queue_len) of
                {message_queue_len, Q} when Q < ?MAX_BACKLOG -> Pid ! {order, N};
                _ -> ok
            end
    end,
    timer:sleep(10),
    feed(N + 1).
