package views

import (
	"fmt"
	"strconv"
	"strings"

	"beamgate/gateway/dist/term"
)

// ErrBadReply reports a reply from production of an unexpected shape.
type ErrBadReply struct {
	What  string
	Reply string // bounded rendering
}

func (e *ErrBadReply) Error() string {
	return fmt.Sprintf("views: unexpected reply to %s: %s", e.What, e.Reply)
}

func badReply(what string, t term.Term) error {
	return &ErrBadReply{What: what, Reply: term.Format(t, 200)}
}

// props reads a proplist of {Key, Value} pairs (other elements ignored).
func props(t term.Term) map[term.Atom]term.Term {
	elems, _ := term.ListElems(t)
	m := make(map[term.Atom]term.Term, len(elems))
	for _, e := range elems {
		if tp, ok := e.(term.Tuple); ok && len(tp) == 2 {
			if k, ok := tp[0].(term.Atom); ok {
				m[k] = tp[1]
			}
		}
	}
	return m
}

// toInt reads an integer, saturating bignums; ok is false for non-integers.
func toInt(t term.Term) (int64, bool) {
	switch v := t.(type) {
	case term.Int:
		return int64(v), true
	case term.Big:
		if v.V == nil {
			return 0, false
		}
		if v.V.Sign() < 0 {
			return -1 << 63, true
		}
		return 1<<63 - 1, true
	}
	return 0, false
}

func intOr0(t term.Term) int64 {
	n, _ := toInt(t)
	return n
}

// pidText prints a production pid the way production's own shell does:
// <0.ID.Serial> (the node part is 0 for the node's own processes).
func pidText(p term.Pid) string {
	return "<0." + strconv.FormatUint(uint64(p.ID), 10) + "." + strconv.FormatUint(uint64(p.Serial), 10) + ">"
}

// parsePid reads "<0.ID.Serial>" (or "0.ID.Serial") as a pid of target.
func parsePid(s string, node term.Atom, creation uint32) (term.Pid, bool) {
	s = strings.TrimSuffix(strings.TrimPrefix(s, "<"), ">")
	parts := strings.Split(s, ".")
	if len(parts) != 3 || parts[0] != "0" {
		return term.Pid{}, false
	}
	id, err1 := strconv.ParseUint(parts[1], 10, 32)
	serial, err2 := strconv.ParseUint(parts[2], 10, 32)
	if err1 != nil || err2 != nil || id >= 1<<28 || serial >= 1<<28 {
		return term.Pid{}, false
	}
	return term.Pid{Node: node, ID: uint32(id), Serial: uint32(serial), Creation: creation}, true
}

// mfaText prints {M, F, A} as m:f/a; other terms in Erlang syntax.
func mfaText(t term.Term) string {
	if tp, ok := t.(term.Tuple); ok && len(tp) == 3 {
		m, ok1 := tp[0].(term.Atom)
		f, ok2 := tp[1].(term.Atom)
		a, ok3 := tp[2].(term.Int)
		if ok1 && ok2 && ok3 {
			return string(m) + ":" + string(f) + "/" + strconv.FormatInt(int64(a), 10)
		}
	}
	return termText(t)
}

// termText renders a term for a table cell, bounded.
func termText(t term.Term) string {
	switch v := t.(type) {
	case nil:
		return ""
	case term.Pid:
		return pidText(v)
	case term.Atom:
		return string(v)
	}
	return term.Format(t, 120)
}

// nameOf returns the registered name (an atom) in a process_info reply, or "".
func nameOf(t term.Term) string {
	if a, ok := t.(term.Atom); ok {
		return string(a)
	}
	return "" // [] when not registered
}
