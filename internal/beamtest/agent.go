package beamtest

// agentSource is an Erlang expression that starts the evaluation agent on a
// node. The node's boot code reads it from the BEAMTEST_AGENT environment
// variable and evaluates it with erl_eval, so neither erl nor elixir argument
// quoting ever touches it.
//
// Protocol, one line each way per request:
//
//	request  (stdin):  <id> <mode> <base64 of UTF-8 Erlang expression, dot-terminated>
//	reply    (stdout): \n<marker> <id> <ok|err> <base64 of UTF-8 text>
//	ready    (stdout): \n<marker> 0 ready <base64 of node()>
//
// mode "p" prints the value on one line (io_lib_pretty, unlimited depth and
// line length); mode "s" sends the value itself, which must be chardata.
// Each request is evaluated in a fresh monitored process with fresh bindings,
// so a crash or a hang only affects that request; exceptions reply "err" with
// {beamtest_error, Class, Reason}. Each reply is a single io:put_chars, which
// the io server keeps whole, so other output never splits a reply line. The
// leading newline ends any partial line another process left. On stdin EOF
// (the test binary closed it or died) the agent stops the node.
const agentSource = `
begin
  Marker = os:getenv("BEAMTEST_MARKER"),
  Print = fun(T) ->
      unicode:characters_to_binary(io_lib_pretty:print(T,
          [{column, 1}, {line_length, 1000000000}, {depth, -1}, {encoding, unicode}]))
  end,
  Send = fun(Id, Status, Bin) ->
      io:put_chars(standard_io, [$\n, Marker, $\s, Id, $\s, Status, $\s, base64:encode(Bin), $\n])
  end,
  Eval = fun(Src) ->
      Toks = case erl_scan:string(Src) of
          {ok, T, _} -> T;
          {error, ScanErr, _} -> erlang:error({scan_error, ScanErr})
      end,
      Exprs = case erl_parse:parse_exprs(Toks) of
          {ok, E} -> E;
          {error, ParseErr} -> erlang:error({parse_error, ParseErr})
      end,
      {value, V, _} = erl_eval:exprs(Exprs, erl_eval:new_bindings()),
      V
  end,
  Encode = fun
      ("p", V) -> {"ok", Print(V)};
      ("s", V) ->
          case catch unicode:characters_to_binary(V) of
              B when is_binary(B) -> {"ok", B};
              _ -> {"err", Print({beamtest_error, error, {not_chardata, V}})}
          end
  end,
  Handle = fun(Id, Mode, B64) ->
      Self = self(),
      Tag = make_ref(),
      {Pid, Mon} = spawn_monitor(fun() ->
          Reply = try Encode(Mode, Eval(unicode:characters_to_list(base64:decode(B64))))
                  catch Class:Reason -> {"err", Print({beamtest_error, Class, Reason})}
                  end,
          Self ! {Tag, Reply}
      end),
      receive
          {Tag, {Status, Bin}} ->
              erlang:demonitor(Mon, [flush]),
              Send(Id, Status, Bin);
          {'DOWN', Mon, process, Pid, Why} ->
              Send(Id, "err", Print({beamtest_error, exit, Why}))
      end
  end,
  Loop = fun Loop() ->
      case io:get_line(standard_io, "") of
          eof -> init:stop();
          {error, _} -> init:stop();
          Line ->
              case string:lexemes(unicode:characters_to_list(Line), [$\s, $\r, $\n]) of
                  [Id, Mode, B64] -> spawn(fun() -> Handle(Id, Mode, B64) end);
                  _ -> ok
              end,
              Loop()
      end
  end,
  spawn(fun() -> Loop() end),
  Send("0", "ready", atom_to_binary(node(), utf8)),
  ok
end.
`

// erlBootEval is the -eval argument of an erl node: it evaluates agentSource.
const erlBootEval = `{ok,T,_}=erl_scan:string(os:getenv("BEAMTEST_AGENT")),{ok,E}=erl_parse:parse_exprs(T),erl_eval:exprs(E,[]).`

// elixirBootEval is the -e argument of an elixir node: the same, in Elixir.
const elixirBootEval = `{:ok, t, _} = :erl_scan.string(String.to_charlist(System.get_env("BEAMTEST_AGENT"))); {:ok, e} = :erl_parse.parse_exprs(t); :erl_eval.exprs(e, [])`
