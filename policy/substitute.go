package policy

import (
	"beamgate/gateway/dist/term"
)

// Some read-only tools treat any error from a call as a lost node. OTP's
// observer does: its process window reads the mailbox (Messages tab) and
// the gen_server state (State tab) when it opens, and a badrpc from either
// makes observer drop the node and close. For these refused calls the
// engineer gets a placeholder result in the shape the tool expects instead
// of an error, so the window opens with the refusal written where the
// data would have been. The call is still refused and audited as such.
//
// substitute returns the placeholder for a refused M:F(Args), if any.
func substitute(mod, fun term.Atom, args []term.Term, rule string) (term.Term, bool) {
	// A string, not a binary: observer abbreviates binaries to their first
	// bytes, and prints strings whole.
	note := term.String("hidden by beamgate (rule " + rule + ")")
	switch {
	case mod == "erlang" && fun == "process_info" && len(args) == 2 && args[1] == term.Atom("messages"):
		// observer_procinfo:init_message_page expects {messages, List}.
		return term.Tuple{term.Atom("messages"), term.MakeList(note)}, true
	case mod == "sys" && fun == "get_status" && len(args) >= 1:
		// observer_procinfo:fetch_state_info2 expects sys's status shape:
		// {status, Pid, {module, M}, [PDict, SysState, Parent, Dbg, Misc]}.
		pid, ok := args[0].(term.Pid)
		if !ok {
			return nil, false
		}
		misc := term.MakeList(
			term.Tuple{term.Atom("header"), term.String("beamgate")},
			term.Tuple{term.Atom("data"), term.MakeList(term.Tuple{term.String("State"), note})},
			term.Tuple{term.Atom("data"), term.Nil{}},
		)
		return term.Tuple{term.Atom("status"), pid, term.Tuple{term.Atom("module"), term.Atom("gen_server")},
			term.MakeList(term.Nil{}, term.Atom("running"), pid, term.Nil{}, misc)}, true
	}
	return nil, false
}
