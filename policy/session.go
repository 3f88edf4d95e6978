package policy

import (
	"fmt"
	"sync"

	"beamgate/gateway/dist"
	"beamgate/gateway/dist/term"
)

// Limits on what one session may make the gateway remember.
const (
	maxOwnPids      = 100000
	maxPending      = 100000
	maxIORequesters = 1000
	renderMax       = 512
)

// AtomSet is the set of atoms known to exist on one production node: every
// atom production has sent to any session. It is shared by the sessions of
// a target and bounded.
type AtomSet struct {
	mu  sync.RWMutex
	m   map[term.Atom]struct{}
	max int
}

// NewAtomSet returns an empty set holding at most max atoms.
func NewAtomSet(max int) *AtomSet {
	return &AtomSet{m: make(map[term.Atom]struct{}), max: max}
}

// Add records that production has a.
func (s *AtomSet) Add(a term.Atom) {
	s.mu.RLock()
	_, ok := s.m[a]
	full := len(s.m) >= s.max
	s.mu.RUnlock()
	if ok || full {
		return
	}
	s.mu.Lock()
	if len(s.m) < s.max {
		s.m[a] = struct{}{}
	}
	s.mu.Unlock()
}

// AddBytes records an atom given as UTF-8 text; it allocates only for an
// atom the set does not hold yet.
func (s *AtomSet) AddBytes(b []byte) {
	s.mu.RLock()
	_, ok := s.m[term.Atom(b)]
	full := len(s.m) >= s.max
	s.mu.RUnlock()
	if ok || full {
		return
	}
	s.Add(term.Atom(b))
}

// Has reports whether a is known.
func (s *AtomSet) Has(a term.Atom) bool {
	s.mu.RLock()
	_, ok := s.m[a]
	s.mu.RUnlock()
	return ok
}

// Len returns the number of atoms held.
func (s *AtomSet) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.m)
}

type pidKey struct{ id, serial uint32 }

// refKey identifies a reference as erts does: node, creation and numbers.
type refKey struct {
	node     term.Atom
	creation uint32
	n        int
	id       [5]uint32
}

func keyOfRef(t term.Term) (refKey, bool) {
	r, ok := t.(term.Ref)
	if !ok || len(r.ID) > 5 {
		return refKey{}, false
	}
	k := refKey{node: r.Node, creation: r.Creation, n: len(r.ID)}
	copy(k.id[:], r.ID)
	return k, true
}

type pending struct {
	link  bool // spawned with link
	grant bool // pids in the result become the session's own
	// child is the process production spawned for a granted call (bound
	// is set once its SPAWN_REPLY came): only its result grants.
	child term.Pid
	bound bool
}

// Session is the policy state of one relayed connection: who the engineer
// is, what the session spawned, which production processes are linked to
// it, and its atom budget. It is used by one relay goroutine per direction:
// Evaluate from the engineer→production reader, Observe from the
// production→engineer reader; a mutex serialises them.
type Session struct {
	prof *Profile
	mode Mode

	engineer   term.Atom
	engCreate  uint32
	production term.Atom
	prodCreate uint32
	known      *AtomSet

	mu       sync.Mutex
	spent    map[term.Atom]struct{}
	pending  map[refKey]pending
	own      map[pidKey]struct{} // production pids the session spawned or was granted
	linked   map[pidKey]struct{} // production pids linked to the engineer's processes
	ioReq    map[pidKey]struct{} // production pids that sent the engineer an io_request
	monitors map[refKey]monitor  // forwarded monitors, by reference
	standIn  map[pidKey]struct{} // the relay's stand-ins for a refused remote shell (NoteStandIn)
	probe    bool                // a remsh probe to the engineer's init is out (remote.go)
	shell    string              // the break-glass grant admitting a remote shell ("": none)
	peers    map[pidKey]struct{} // under a grant: production pids that messaged the engineer (the shell's helpers)
}

// SetShellGrant admits remote shells in this session under the
// break-glass grant id ("" withdraws it). The grant opens the shell only:
// every other message is decided as before.
func (s *Session) SetShellGrant(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.shell = id
}

// SetProfile changes the session's profile and mode: a reloaded
// configuration's policy applies from the next message on. What the
// session learnt (its own pids, links, monitors, atoms spent) stays.
func (s *Session) SetProfile(p *Profile, mode Mode) {
	if p == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.prof, s.mode = p, mode
}

// monitor is one monitor the engineer set up on production.
type monitor struct {
	from term.Pid
	to   term.Term
	ref  term.Ref
}

// SessionConfig describes the two ends of a session.
type SessionConfig struct {
	Profile            *Profile
	Mode               Mode
	Engineer           term.Atom // the engineer node's name
	EngineerCreation   uint32
	Production         term.Atom // the production node's name
	ProductionCreation uint32
	// Known is the target's shared set of atoms production has sent; nil
	// gives the session a private one.
	Known *AtomSet
}

// NewSession starts the policy state for one relayed connection.
func NewSession(c SessionConfig) *Session {
	if c.Known == nil {
		c.Known = NewAtomSet(1 << 16)
	}
	if c.Mode == "" {
		c.Mode = Enforce
	}
	return &Session{
		prof: c.Profile, mode: c.Mode,
		engineer: c.Engineer, engCreate: c.EngineerCreation,
		production: c.Production, prodCreate: c.ProductionCreation,
		known:   c.Known,
		spent:   map[term.Atom]struct{}{},
		pending: map[refKey]pending{},
		own:     map[pidKey]struct{}{},
		linked:  map[pidKey]struct{}{},
		ioReq:   map[pidKey]struct{}{},
		standIn: map[pidKey]struct{}{},

		monitors: map[refKey]monitor{},
	}
}

// Known returns the target's atom set, for the relay to feed.
func (s *Session) Known() *AtomSet { return s.known }

func (s *Session) isOwn(p term.Pid) bool {
	return p.Node == s.engineer && p.Creation == s.engCreate
}

func (s *Session) isProd(p term.Pid) bool {
	return p.Node == s.production && p.Creation == s.prodCreate
}

func (s *Session) has(set map[pidKey]struct{}, p term.Pid) bool {
	if !s.isProd(p) {
		return false
	}
	_, ok := set[pidKey{p.ID, p.Serial}]
	return ok
}

func (s *Session) put(set map[pidKey]struct{}, p term.Pid, max int) {
	if s.isProd(p) && len(set) < max {
		set[pidKey{p.ID, p.Serial}] = struct{}{}
	}
}

// Evaluate decides one engineer→production message.
func (s *Session) Evaluate(m dist.Message) Decision {
	s.mu.Lock()
	defer s.mu.Unlock()
	var (
		d     Decision
		fresh [8]term.Atom
	)
	code, newAtoms := s.scan(m, fresh[:0])
	d = s.route(m)
	if code && !d.Fatal && s.shell != "" && (d.Rule == "io.reply" || d.Rule == ShellRule || d.Rule == "session.own") && d.Verdict.Forwarded() {
		// Under a break-glass grant the engineer's group talks to the
		// remote shell's processes, and its answers carry funs (getopts'
		// expand_fun, IEx's input handling); the shell runs any code
		// anyway. Messages to other production processes stay refused.
		code = false
	}
	if code && !d.Fatal {
		// Code is refused whatever route decided; a forged identity still
		// ends the session, whatever the message carries.
		d = s.denied(m, "no-code", "terms containing a fun or an export carry code and are refused", "")
		if sr, ok := m.Control.(*dist.SpawnRequest); ok {
			d.What = mfaText(sr.Module, sr.Function, sr.Arity)
		}
	}
	d.Op = m.Control.Op().String()
	if d.Verdict.Forwarded() && len(newAtoms) > 0 {
		// The atom budget is only spent by messages that would pass.
		if rule, reason := s.spend(newAtoms); rule != "" {
			s.refuse(&d, m, rule, reason)
		}
	}
	if !d.Verdict.Forwarded() {
		s.cleanupMonitor(&d)
	}
	if d.Verdict.Forwarded() {
		s.commit(m, &d)
	}
	return d
}

// scan walks the control tuple and the payload once: it reports whether a
// fun or an export appears anywhere, and collects the atoms production
// does not know into fresh.
func (s *Session) scan(m dist.Message, fresh []term.Atom) (code bool, _ []term.Atom) {
	visit := func(t term.Term) bool {
		var a term.Atom
		switch v := t.(type) {
		case term.Fun, term.Export:
			code = true
			return false
		case term.Atom:
			a = v
		case term.Pid:
			a = v.Node
		case term.Ref:
			a = v.Node
		case term.Port:
			a = v.Node
		default:
			return true
		}
		if !s.atomKnown(a) {
			fresh = append(fresh, a)
		}
		return true
	}
	atom := func(a term.Atom) {
		if !s.atomKnown(a) {
			fresh = append(fresh, a)
		}
	}
	// The frequent operations are checked field by field: building their
	// tuple would box every field.
	switch c := m.Control.(type) {
	case *dist.SpawnRequest:
		atom(c.From.Node)
		atom(c.GroupLeader.Node)
		atom(c.Module)
		atom(c.Function)
		term.Walk(c.ReqID, visit)
		term.Walk(c.Opts, visit)
	case *dist.RegSend:
		atom(c.From.Node)
		atom(c.ToName)
		term.Walk(c.Unused, visit)
	case *dist.MonitorP:
		atom(c.From.Node)
		atom(c.Ref.Node)
		term.Walk(c.To, visit)
	case *dist.DemonitorP:
		atom(c.From.Node)
		atom(c.Ref.Node)
		term.Walk(c.To, visit)
	case *dist.SendSender:
		atom(c.From.Node)
		atom(c.To.Node)
	default:
		term.Walk(m.Control.Tuple(), visit)
	}
	if m.Payload != nil && !code {
		term.Walk(m.Payload, visit)
	}
	return code, fresh
}

// spend charges new atoms against the session's budget and records them,
// or refuses the message when the budget would be exceeded.
func (s *Session) spend(fresh []term.Atom) (rule, reason string) {
	uniq := map[term.Atom]struct{}{}
	for _, a := range fresh {
		uniq[a] = struct{}{}
	}
	if len(s.spent)+len(uniq) > s.prof.AtomBudget {
		return "atom-budget", fmt.Sprintf("the message would create %d atoms production has never seen; the session's budget of %d is spent (atoms are never freed and the atom table limit crashes the VM)", len(uniq), s.prof.AtomBudget)
	}
	for a := range uniq {
		s.spent[a] = struct{}{}
	}
	return "", ""
}

func (s *Session) atomKnown(a term.Atom) bool {
	if a == s.engineer || a == s.production {
		return true
	}
	if _, ok := vocabulary[a]; ok {
		return true
	}
	if _, ok := s.prof.vocab[a]; ok {
		return true
	}
	if _, ok := s.spent[a]; ok {
		return true
	}
	return s.known.Has(a)
}

// commit records the effects of a forwarded message.
func (s *Session) commit(m dist.Message, d *Decision) {
	switch c := m.Control.(type) {
	case *dist.SpawnRequest:
		// Recorded only now that the request passed every check, the
		// atom budget included: a refused call must not leave a grant.
		if k, ok := keyOfRef(c.ReqID); ok && len(s.pending) < maxPending {
			s.pending[k] = pending{link: hasOpt(c.Opts, "link"), grant: d.grant}
		}
	case *dist.MonitorP:
		if k, ok := keyOfRef(c.Ref); ok {
			s.monitors[k] = monitor{from: c.From, to: c.To, ref: c.Ref}
		}
	case *dist.DemonitorP:
		if k, ok := keyOfRef(c.Ref); ok {
			delete(s.monitors, k)
		}
	case *dist.Link:
		s.put(s.linked, c.To, maxOwnPids)
	}
}

func hasOpt(opts term.Term, name term.Atom) bool {
	elems, _ := term.ListElems(opts)
	for _, e := range elems {
		if a, ok := e.(term.Atom); ok && a == name {
			return true
		}
	}
	return false
}

// Observe updates the session from one production→engineer message:
// spawn replies, links production made, io_requests, and the results of
// calls that grant pids. payload is the raw payload bytes (starting with
// 131), decoded only when needed.
func (s *Session) Observe(ctrl dist.Control, payload []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch c := ctrl.(type) {
	case *dist.SpawnReply:
		s.spawnReply(c)
	case *dist.SpawnReplyTT:
		s.spawnReply(&c.SpawnReply)
	case *dist.Link:
		s.put(s.linked, c.From, maxOwnPids)
	case *dist.PayloadMonitorPExit:
		s.monitorFired(c.Ref)
		s.result(c.Ref, c.From, payload)
	case *dist.MonitorPExit:
		s.monitorFired(c.Ref)
		s.result(c.Ref, c.From, nil)
	case *dist.Exit:
		s.gone(c.From)
	case *dist.PayloadExit:
		s.gone(c.From)
	case *dist.Send:
		s.ioRequest(payload)
	case *dist.SendSender:
		s.ioRequest(payload)
		if s.shell != "" {
			// The remote shell's helpers (IEx.CLI's remote_start) talk to
			// the engineer's processes and expect answers.
			if s.peers == nil {
				s.peers = map[pidKey]struct{}{}
			}
			s.put(s.peers, c.From, maxIORequesters)
		}
	}
}

// monitorFired forgets a monitor production reported DOWN.
func (s *Session) monitorFired(ref term.Ref) {
	if k, ok := keyOfRef(ref); ok {
		delete(s.monitors, k)
	}
}

// cleanupMonitor is called when a refused gen:call was answered with a
// synthesised DOWN: the monitor the caller set up on production is still
// there, so the relay removes it on the caller's behalf.
func (s *Session) cleanupMonitor(d *Decision) {
	if d.Answer.Kind != AnswerDown {
		return
	}
	k, ok := keyOfRef(d.Answer.Ref)
	if !ok {
		return
	}
	if mon, found := s.monitors[k]; found && mon.from == d.Answer.To {
		delete(s.monitors, k)
		d.Cleanup = &dist.DemonitorP{From: mon.from, To: mon.to, Ref: mon.ref}
	}
}

func (s *Session) spawnReply(c *dist.SpawnReply) {
	k, ok := keyOfRef(c.ReqID)
	if !ok {
		return
	}
	p, ok := s.pending[k]
	if !ok {
		return
	}
	pid, isPid := c.Result.(term.Pid)
	if !isPid {
		delete(s.pending, k)
		return
	}
	s.put(s.own, pid, maxOwnPids)
	if c.Flags&1 != 0 || p.link {
		s.put(s.linked, pid, maxOwnPids)
	}
	if !p.grant {
		delete(s.pending, k)
	} else if !p.bound {
		p.child, p.bound = pid, true
		s.pending[k] = p
	}
}

func (s *Session) result(ref term.Ref, from term.Term, payload []byte) {
	k, ok := keyOfRef(ref)
	if ok {
		// A granted call's result is the exit reason of the child that
		// production spawned for it, not any DOWN carrying its reference.
		if p, found := s.pending[k]; found && (!p.grant || p.bound && from == term.Term(p.child)) {
			delete(s.pending, k)
			if p.grant && payload != nil {
				if t, _, err := term.Decode(payload, nil); err == nil {
					term.Walk(t, func(t term.Term) bool {
						if pid, ok := t.(term.Pid); ok {
							s.put(s.own, pid, maxOwnPids)
							s.put(s.linked, pid, maxOwnPids)
						}
						return true
					})
				}
			}
		}
	}
	if pid, ok := from.(term.Pid); ok {
		s.gone(pid)
	}
}

// gone forgets a production process that exited.
func (s *Session) gone(p term.Pid) {
	if !s.isProd(p) {
		return
	}
	k := pidKey{p.ID, p.Serial}
	delete(s.own, k)
	delete(s.linked, k)
	delete(s.ioReq, k)
}

// ioRequestHead is how every io_request payload starts.
var ioRequestHeads = [][]byte{
	{131, 104, 4, 119, 10, 'i', 'o', '_', 'r', 'e', 'q', 'u', 'e', 's', 't'},
	{131, 104, 4, 118, 0, 10, 'i', 'o', '_', 'r', 'e', 'q', 'u', 'e', 's', 't'},
	{131, 104, 4, 115, 10, 'i', 'o', '_', 'r', 'e', 'q', 'u', 'e', 's', 't'},
	{131, 104, 4, 100, 0, 10, 'i', 'o', '_', 'r', 'e', 'q', 'u', 'e', 's', 't'},
}

func (s *Session) ioRequest(payload []byte) {
	match := false
	for _, h := range ioRequestHeads {
		if len(payload) >= len(h) && string(payload[:len(h)]) == string(h) {
			match = true
			break
		}
	}
	if !match || len(s.ioReq) >= maxIORequesters {
		return
	}
	t, _, err := term.Decode(payload, nil)
	if err != nil {
		return
	}
	if tp, ok := t.(term.Tuple); ok && len(tp) == 4 {
		if pid, ok := tp[1].(term.Pid); ok {
			s.put(s.ioReq, pid, maxIORequesters)
		}
	}
}

// vocabulary is the atoms every OTP node has: the ones the protocols the
// tools speak use. An engineer sending them spends no atom budget.
var vocabulary = func() map[term.Atom]struct{} {
	m := map[term.Atom]struct{}{}
	for _, a := range []string{
		"", "true", "false", "undefined", "ok", "error", "nil", "badrpc", "EXIT", "DOWN",
		"$gen_call", "$gen_cast", "alias", "monitor", "link", "demonitor", "process", "normal", "kill",
		"erpc", "execute_call", "execute_cast", "rex", "call", "block_call", "cast", "features_request",
		"net_kernel", "is_auth", "io_request", "io_reply", "put_chars", "get_line", "get_until",
		"get_chars", "getopts", "setopts", "get_geometry", "unicode", "latin1", "enotsup", "exit",
		"return", "throw", "noconnection", "noproc", "infinity", "user", "init", "global_name_server",
		"erlang", "ets", "lists", "code", "application", "supervisor", "proc_lib", "sys", "os", "net_adm",
		"observer_backend", "appmon_info", "recon", "recon_alloc", "mnesia", "persistent_term",
		"memory", "reductions", "message_queue_len", "total_heap_size", "heap_size", "stack_size",
		"registered_name", "current_function", "initial_call", "status", "links", "monitors",
		"monitored_by", "group_leader", "trap_exit", "garbage_collection", "priority", "last_calls",
		"sequential_trace_token", "suspending", "trace", "catchlevel", "error_handler", "binary",
		"dictionary", "current_stacktrace", "backtrace", "min_heap_size", "min_bin_vheap_size",
		"parent", "label", "async_dist", "fullsweep_after", "message_queue_data", "current_location",
		"wordsize", "process_count", "port_count", "atom_count", "atom_limit", "process_limit",
		"port_limit", "ets_count", "ets_limit", "schedulers", "schedulers_online", "otp_release",
		"system_version", "dirty_cpu_schedulers", "dirty_io_schedulers", "logical_processors",
		"run_queue", "run_queue_lengths", "total_run_queue_lengths", "scheduler_wall_time",
		"io", "runtime", "wall_clock", "context_switches", "exact_reductions", "total", "processes",
		"processes_used", "system", "atom", "atom_used", "ets_tables", "name", "size", "type",
		"owner", "protection", "keypos", "named_table", "set", "ordered_set", "bag", "duplicate_bag",
		"public", "protected", "private", "sys_hidden", "unread_hidden", "attributes", "exports",
		"functions", "module", "compile", "md5", "allocated_areas", "allocator", "info", "id",
		"connected", "hidden", "visible", "this", "known", "node", "nodes", "registered", "ports",
		"sys_info", "get_port_list", "get_socket_list", "socket_info", "get_table_list", "get_table",
		"procs_info", "etop_collect", "fetch_stats", "vsn", "start_link2", "app_ctrl", "app",
		"which_applications", "which_children", "count_children", "process_info", "system_info",
		"statistics", "port_info", "ensure_loaded", "function_exported", "get_net_ticktime",
		"module_info", "whereis", "is_process_alive", "translate_initial_call", "table_info",
		"proc_count", "proc_window", "node_stats_list", "scheduler_usage", "bin_leak",
	} {
		m[term.Atom(a)] = struct{}{}
	}
	return m
}()
