package client

import (
	"context"
	"errors"
	"testing"
	"time"

	"beamgate/gateway/dist/term"
)

// TestSpawnCollector spawns observer's process collector with our own pid
// as its report-to and reads every process off the mailbox.
func TestSpawnCollector(t *testing.T) {
	prod, epmdAddr := startProd(t)
	prod.SpawnProcesses(t, 25000)
	want := prod.ProcessCount(t)
	c := dial(t, Config{Node: clientName, Target: prodName, EpmdAddr: epmdAddr, Cookie: testCookie, Logf: t.Logf})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	self := c.NewSelf()
	mb, err := c.Spawn(ctx, self, "observer_backend", "procs_info", []term.Term{self}, SpawnOptions{Link: true})
	if err != nil {
		t.Fatalf("Spawn: %v", err)
	}
	defer mb.Close()
	if mb.Pid.Node != term.Atom(prodName) {
		t.Errorf("spawned pid %v, want one of %s", mb.Pid, prodName)
	}
	got, batches := 0, 0
	for {
		msg, err := mb.Receive(ctx)
		var exit *ExitError
		if errors.As(err, &exit) {
			if !exit.Normal() {
				t.Errorf("collector exited %v", exit)
			}
			break
		}
		if err != nil {
			t.Fatalf("Receive: %v", err)
		}
		tu, ok := msg.(term.Tuple)
		if !ok || len(tu) != 3 || tu[0] != term.Atom("procs_info") || tu[1] != mb.Pid {
			t.Fatalf("message %s, want {procs_info, Collector, List}", term.Format(msg, 100))
		}
		elems, _ := term.ListElems(tu[2])
		got += len(elems)
		batches++
	}
	if got < want-50 || got > want+50 {
		t.Errorf("collected %d processes in %d messages; production runs %d", got, batches, want)
	}
	t.Logf("collected %d processes in %d messages", got, batches)

	// Call still works alongside.
	if v, err := callProd(t, c, "erlang", "node"); err != nil || v != term.Atom(prodName) {
		t.Errorf("erlang:node() = %v, %v", v, err)
	}
}

// TestSpawnMailboxOverflow: a mailbox that is not read is dropped with
// ErrMailboxOverflow; the connection keeps working.
func TestSpawnMailboxOverflow(t *testing.T) {
	prod, epmdAddr := startProd(t)
	prod.SpawnProcesses(t, 25000)
	c := dial(t, Config{Node: clientName, Target: prodName, EpmdAddr: epmdAddr, Cookie: testCookie, Logf: t.Logf})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	self := c.NewSelf()
	mb, err := c.Spawn(ctx, self, "observer_backend", "procs_info", []term.Term{self}, SpawnOptions{Link: true, MaxMessages: 1})
	if err != nil {
		t.Fatalf("Spawn: %v", err)
	}
	select {
	case <-mb.Done():
	case <-ctx.Done():
		t.Fatal("mailbox never ended")
	}
	var err2 error
	for range 3 {
		if _, err2 = mb.Receive(ctx); err2 != nil {
			break
		}
	}
	if !errors.Is(err2, ErrMailboxOverflow) {
		t.Errorf("Receive after overflow = %v, want ErrMailboxOverflow", err2)
	}
	if v, err := callProd(t, c, "erlang", "node"); err != nil || v != term.Atom(prodName) {
		t.Errorf("erlang:node() after overflow = %v, %v", v, err)
	}

	// A refused spawn is a *SpawnError; monitor DOWN ends a mailbox too.
	self = c.NewSelf()
	mb, err = c.Spawn(ctx, self, "erlang", "exit", []term.Term{term.Atom("boom")}, SpawnOptions{Monitor: true})
	if err != nil {
		t.Fatalf("Spawn erlang:exit: %v", err)
	}
	_, err = mb.Receive(ctx)
	var exit *ExitError
	if !errors.As(err, &exit) || exit.Reason != term.Atom("boom") {
		t.Errorf("Receive = %v, want exit boom", err)
	}
}
