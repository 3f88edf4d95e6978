package dist

import "beamgate/gateway/dist/term"

// MonitorP is MONITOR_P {19, FromPid, ToProc, Ref}; To is a pid or a
// registered name (atom).
type MonitorP struct {
	From term.Pid
	To   term.Term
	Ref  term.Ref
}

func (*MonitorP) Op() Op              { return OpMonitorP }
func (*MonitorP) HasPayload() bool    { return false }
func (m *MonitorP) Tuple() term.Tuple { return term.Tuple{term.Int(OpMonitorP), m.From, m.To, m.Ref} }
func (m *MonitorP) Decode(t term.Tuple) error {
	d, err := open(t, OpMonitorP, 4)
	if err != nil {
		return err
	}
	m.From, m.To, m.Ref = d.pid(1), d.proc(2), d.ref(3)
	return d.done()
}

// DemonitorP is DEMONITOR_P {20, FromPid, ToProc, Ref}.
type DemonitorP struct {
	From term.Pid
	To   term.Term
	Ref  term.Ref
}

func (*DemonitorP) Op() Op           { return OpDemonitorP }
func (*DemonitorP) HasPayload() bool { return false }
func (m *DemonitorP) Tuple() term.Tuple {
	return term.Tuple{term.Int(OpDemonitorP), m.From, m.To, m.Ref}
}
func (m *DemonitorP) Decode(t term.Tuple) error {
	d, err := open(t, OpDemonitorP, 4)
	if err != nil {
		return err
	}
	m.From, m.To, m.Ref = d.pid(1), d.proc(2), d.ref(3)
	return d.done()
}

// MonitorPExit is MONITOR_P_EXIT {21, FromProc, ToPid, Ref, Reason}: the
// monitored process (pid or name) went down.
type MonitorPExit struct {
	From   term.Term
	To     term.Pid
	Ref    term.Ref
	Reason term.Term
}

func (*MonitorPExit) Op() Op           { return OpMonitorPExit }
func (*MonitorPExit) HasPayload() bool { return false }
func (m *MonitorPExit) Tuple() term.Tuple {
	return term.Tuple{term.Int(OpMonitorPExit), m.From, m.To, m.Ref, m.Reason}
}
func (m *MonitorPExit) Decode(t term.Tuple) error {
	d, err := open(t, OpMonitorPExit, 5)
	if err != nil {
		return err
	}
	m.From, m.To, m.Ref, m.Reason = d.proc(1), d.pid(2), d.ref(3), t[4]
	return d.done()
}

// PayloadMonitorPExit is PAYLOAD_MONITOR_P_EXIT {28, FromProc, ToPid, Ref}
// + Reason. erpc results arrive this way.
type PayloadMonitorPExit struct {
	From term.Term
	To   term.Pid
	Ref  term.Ref
}

func (*PayloadMonitorPExit) Op() Op           { return OpPayloadMonitorPExit }
func (*PayloadMonitorPExit) HasPayload() bool { return true }
func (m *PayloadMonitorPExit) Tuple() term.Tuple {
	return term.Tuple{term.Int(OpPayloadMonitorPExit), m.From, m.To, m.Ref}
}
func (m *PayloadMonitorPExit) Decode(t term.Tuple) error {
	d, err := open(t, OpPayloadMonitorPExit, 4)
	if err != nil {
		return err
	}
	m.From, m.To, m.Ref = d.proc(1), d.pid(2), d.ref(3)
	return d.done()
}
