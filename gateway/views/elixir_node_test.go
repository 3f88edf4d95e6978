package views

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"beamgate/internal/beamtest"
)

// On an Erlang node: a process registered under an Elixir module's name
// is found by the name an Elixir engineer types, and by every pid form
// they paste; detection says Erlang, and --elixir prints iex's forms.
func TestElixirFormsOnErlangNode(t *testing.T) {
	f := startPlainFixture(t, beamtest.KindErl)
	pid := f.prod.EvalString(t, `P = spawn(fun() -> receive stop -> ok end end), `+
		`true = register('Elixir.MyApp.SlowConsumer', P), pid_to_list(P)`)
	if !strings.HasPrefix(pid, "<0.") {
		t.Fatalf("pid_to_list: %q", pid)
	}
	rest := strings.TrimPrefix(pid, "<0.") // "ID.SERIAL>"
	c := f.caller(t, "readonly")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	for _, proc := range []string{"MyApp.SlowConsumer", "Elixir.MyApp.SlowConsumer", `:"Elixir.MyApp.SlowConsumer"`,
		pid, strings.Trim(pid, "<>"), "<9429." + rest, "#PID<0." + rest, "#PID<9429." + rest} {
		info, err := Info(ctx, c, proc)
		if err != nil {
			t.Errorf("Info(%q): %v", proc, err)
			continue
		}
		if info.Pid != pid || info.RegisteredName != "Elixir.MyApp.SlowConsumer" {
			t.Errorf("Info(%q) = pid %s name %s, want %s Elixir.MyApp.SlowConsumer", proc, info.Pid, info.RegisteredName, pid)
		}
	}
	if info, err := Info(ctx, c, ":code_server"); err != nil || info.RegisteredName != "code_server" {
		t.Errorf("Info(:code_server) = %+v, %v", info, err)
	}
	_, err := Info(ctx, c, "MyApp.NoSuchConsumer")
	if !errors.Is(err, ErrNoProcess) || !strings.Contains(err.Error(), `"MyApp.NoSuchConsumer" or "Elixir.MyApp.NoSuchConsumer"`) {
		t.Errorf("Info of an unknown Elixir name: %v", err)
	}

	if elixir, err := DetectElixir(ctx, c); err != nil || elixir {
		t.Errorf("DetectElixir on an Erlang node = %v, %v", elixir, err)
	}
	out := runView(t, c, "info", "MyApp.SlowConsumer")
	t.Logf("\n%s", out)
	if !strings.Contains(out, pid) || !strings.Contains(out, "Elixir.MyApp.SlowConsumer") || strings.Contains(out, "#PID<") {
		t.Errorf("info on an Erlang node is not in Erlang style:\n%s", out)
	}

	out = runView(t, c, "info", "MyApp.SlowConsumer", "--elixir")
	t.Logf("\n%s", out)
	res := decodeJSON[ProcInfo](t, runView(t, c, "info", "#PID<9429."+rest, "--elixir", "--json"))
	if res.Pid != "#PID"+pid || res.RegisteredName != "MyApp.SlowConsumer" || res.InitialCall != ":erlang.apply/2" ||
		!strings.HasPrefix(res.CurrentFunction, ":") || !strings.HasPrefix(res.GroupLeader, "#PID<0.") {
		t.Errorf("info --elixir: %+v", res)
	}
	top := decodeJSON[TopResult](t, runView(t, c, "top", "-n", "5", "--elixir", "--json"))
	for _, r := range top.Rows {
		if !strings.HasPrefix(r.Pid, "#PID<0.") || !strings.HasPrefix(r.Name, ":") || !strings.HasPrefix(r.CurrentFunction, ":") {
			t.Errorf("top --elixir row %+v", r)
		}
	}
	ets := decodeJSON[ETSResult](t, runView(t, c, "ets", "-n", "50", "--elixir", "--json"))
	found := false
	for _, r := range ets.Rows {
		if r.Name == ":"+beamtest.OrdersTable {
			found = r.OwnerName == ":"+beamtest.StateProcess && strings.HasPrefix(r.Owner, "#PID<0.")
		}
	}
	if !found {
		t.Errorf("ets --elixir: no :%s owned by :%s in %+v", beamtest.OrdersTable, beamtest.StateProcess, ets.Rows)
	}
	if res := decodeJSON[ProcInfo](t, runView(t, c, "info", "MyApp.SlowConsumer", "--erlang", "--json")); res.Pid != pid {
		t.Errorf("info --erlang: %+v", res)
	}

	// The one view that did not fix the style asked once, audited and
	// allowed by the readonly profile.
	n := 0
	for _, r := range f.auditRecords(t) {
		if r.MFA == "erlang:function_exported/3" {
			n++
			if r.Decision != "allow" || r.Rule != "system.stats" || (r.Detail["view"] != "info" && r.Detail["view"] != "") {
				t.Errorf("detection audit record %+v", r)
			}
		}
	}
	if n != 2 { // DetectElixir above, and the info view without a style flag
		t.Errorf("%d audited detections, want 2", n)
	}
}

// On an Elixir node, every view prints as iex does unless --erlang.
func TestElixirNode(t *testing.T) {
	f := startPlainFixture(t, beamtest.KindElixir)
	pid := f.prod.EvalElixir(t, `
defmodule MyApp.SlowConsumer do
  use GenServer
  def init(s) do
    :ets.new(MyApp.Cache, [:named_table, :public])
    {:ok, s}
  end
  def handle_call(:ping, _from, s), do: {:reply, :pong, s}
end
{:ok, pid} = GenServer.start(MyApp.SlowConsumer, [], name: MyApp.SlowConsumer)
pid`)
	if !strings.HasPrefix(pid, "#PID<0.") {
		t.Fatalf("GenServer.start: %s", pid)
	}
	c := f.caller(t, "readonly")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if elixir, err := DetectElixir(ctx, c); err != nil || !elixir {
		t.Fatalf("DetectElixir on an Elixir node = %v, %v", elixir, err)
	}

	out := runView(t, c, "info", "MyApp.SlowConsumer")
	t.Logf("\n%s", out)
	for _, proc := range []string{"MyApp.SlowConsumer", pid} {
		res := decodeJSON[ProcInfo](t, runView(t, c, "info", proc, "--json"))
		if res.Pid != pid || res.RegisteredName != "MyApp.SlowConsumer" || res.InitialCall != "MyApp.SlowConsumer.init/1" ||
			!strings.HasPrefix(res.CurrentFunction, ":gen_server.") {
			t.Errorf("info %s on an Elixir node: %+v", proc, res)
		}
	}
	ets := decodeJSON[ETSResult](t, runView(t, c, "ets", "-n", "100", "--json"))
	found := false
	for _, r := range ets.Rows {
		if r.Name == "MyApp.Cache" {
			found = r.OwnerName == "MyApp.SlowConsumer" && r.Owner == pid
		}
	}
	if !found {
		t.Errorf("ets: no MyApp.Cache owned by MyApp.SlowConsumer %s in %+v", pid, ets.Rows)
	}
	top := runView(t, c, "top", "-n", "5")
	t.Logf("\n%s", top)
	if row := firstRow(t, top, "PID"); !strings.HasPrefix(row, "#PID<0.") {
		t.Errorf("top on an Elixir node: first row %q", row)
	}
	apps := decodeJSON[AppsResult](t, runView(t, c, "apps", "--json"))
	if k := findApp(t, apps, "kernel"); k.SupName != ":kernel_sup" || !strings.HasPrefix(k.Supervisor, "#PID<0.") {
		t.Errorf("apps: kernel %+v", k)
	}
	findApp(t, apps, "elixir")

	res := decodeJSON[ProcInfo](t, runView(t, c, "info", "MyApp.SlowConsumer", "--erlang", "--json"))
	if res.Pid != "<"+strings.TrimPrefix(pid, "#PID<") || res.RegisteredName != "Elixir.MyApp.SlowConsumer" ||
		res.InitialCall != "Elixir.MyApp.SlowConsumer:init/1" {
		t.Errorf("info --erlang on an Elixir node: %+v", res)
	}
}
