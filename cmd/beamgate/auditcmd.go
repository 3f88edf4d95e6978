package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"beamgate/audit"
	"beamgate/gateway/config"
)

const auditUsage = `usage:
  beamgate audit [--config FILE | --file PATH] [filters] [--json]   query the audit log
  beamgate audit verify [--config FILE | --file PATH]               check the hash chain
  beamgate audit tail [-f] [--config FILE | --file PATH] [filters] [--json]

filters: --user U --node N --cluster C --decision D --event E --session S
         --since T --until T   (T is RFC 3339, a date 2006-01-02, or a duration
                                 such as 1h meaning that long ago)
With --config, the files are audit.path and the <audit.path>.cli-* files that
cookie rotate and offboard write while a gateway holds the log.
`

// auditFlags are the flags shared by the audit subcommands.
type auditFlags struct {
	fs         *flag.FlagSet
	config     string
	file       string
	json       bool
	follow     bool
	f          audit.Filter
	since, til string
}

func newAuditFlags(name string, stderr io.Writer, filters bool) *auditFlags {
	a := &auditFlags{fs: flag.NewFlagSet(name, flag.ContinueOnError)}
	a.fs.SetOutput(stderr)
	a.fs.Usage = func() { fmt.Fprint(stderr, auditUsage) }
	a.fs.StringVar(&a.config, "config", "", "configuration file: read its audit.path")
	a.fs.StringVar(&a.file, "file", "", "an audit log file")
	if !filters {
		return a
	}
	a.fs.BoolVar(&a.json, "json", false, "print JSON lines (one record per line) instead of a table")
	a.fs.StringVar(&a.f.User, "user", "", "only this user")
	a.fs.StringVar(&a.f.Node, "node", "", "only this node (engineer or target)")
	a.fs.StringVar(&a.f.Cluster, "cluster", "", "only this cluster")
	a.fs.StringVar((*string)(&a.f.Decision), "decision", "", "only this decision (allow, deny, allow_write, info)")
	a.fs.StringVar((*string)(&a.f.Event), "event", "", "only this event (login, message, session_start, offboard, cookie_rotate, ...)")
	a.fs.StringVar(&a.f.Session, "session", "", "only this SSH session id")
	a.fs.StringVar(&a.since, "since", "", "records at or after T")
	a.fs.StringVar(&a.til, "until", "", "records before T")
	return a
}

// parse parses args and resolves the files to read.
func (a *auditFlags) parse(args []string, now time.Time) ([]string, error) {
	if err := a.fs.Parse(args); err != nil {
		return nil, err
	}
	if a.fs.NArg() != 0 {
		return nil, fmt.Errorf("unexpected argument %q", a.fs.Arg(0))
	}
	var err error
	if a.f.Since, err = parseWhen(a.since, now); err != nil {
		return nil, fmt.Errorf("--since: %w", err)
	}
	if a.f.Until, err = parseWhen(a.til, now); err != nil {
		return nil, fmt.Errorf("--until: %w", err)
	}
	switch {
	case a.config != "" && a.file != "":
		return nil, errors.New("give --config or --file, not both")
	case a.file != "":
		return []string{a.file}, nil
	case a.config != "":
		cfg, err := config.Load(a.config)
		if err != nil {
			return nil, err
		}
		files := cliAuditFiles(cfg.Audit.Path)
		if len(files) == 0 {
			return nil, fmt.Errorf("no audit log at %s yet", cfg.Audit.Path)
		}
		return files, nil
	}
	return nil, errors.New("--config FILE or --file PATH is required")
}

// parseWhen accepts RFC 3339, a date, or a duration meaning now minus it.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q is not an RFC 3339 time (2026-01-02T15:04:05Z), a date (2026-01-02) or a duration (1h, 30m)", s)
}

func auditCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "verify":
			return auditVerify(args[1:], stdout, stderr)
		case "tail":
			return auditTail(ctx, args[1:], stdout, stderr)
		case "help", "-h", "--help":
			fmt.Fprint(stdout, auditUsage)
			return nil
		}
	}
	a := newAuditFlags("audit", stderr, true)
	files, err := a.parse(args, time.Now())
	if err != nil {
		return err
	}
	p := newRecordPrinter(stdout, a.json)
	for _, path := range files {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		err = audit.Query(f, a.f, p.print)
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	return p.flush()
}

func auditVerify(args []string, stdout, stderr io.Writer) error {
	a := newAuditFlags("audit verify", stderr, false)
	files, err := a.parse(args, time.Now())
	if err != nil {
		return err
	}
	var broken []string
	for _, path := range files {
		n, err := audit.VerifyFile(path)
		var be *audit.BreakError
		switch {
		case errors.As(err, &be):
			fmt.Fprintf(stdout, "BROKEN %s: line %d (expected seq %d): %s; %d records before it verify\n", path, be.Line, be.Seq, be.Reason, n)
			broken = append(broken, path)
		case err != nil:
			return err
		default:
			fmt.Fprintf(stdout, "ok %s: %d records, hash chain intact\n", path, n)
		}
	}
	if len(broken) > 0 {
		return fmt.Errorf("hash chain broken in %s", strings.Join(broken, ", "))
	}
	return nil
}

func auditTail(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	a := newAuditFlags("audit tail", stderr, true)
	a.fs.BoolVar(&a.follow, "f", false, "follow: keep printing new records (across log rotation) until interrupted")
	files, err := a.parse(args, time.Now())
	if err != nil {
		return err
	}
	path := files[0] // the main log; CLI siblings are finished files
	p := newRecordPrinter(stdout, a.json)
	p.stream = true
	err = audit.Tail(ctx, path, a.follow, func(r audit.Record) error {
		if !a.f.Match(&r) {
			return nil
		}
		return p.print(r)
	})
	if a.follow && errors.Is(err, context.Canceled) {
		err = nil
	}
	if ferr := p.flush(); err == nil {
		err = ferr
	}
	return err
}

// recordPrinter prints records as JSON lines or an aligned table.
type recordPrinter struct {
	w      io.Writer
	json   bool
	stream bool // flush after every record (tail)
	tw     *tabwriter.Writer
	header bool
}

func newRecordPrinter(w io.Writer, asJSON bool) *recordPrinter {
	return &recordPrinter{w: w, json: asJSON, tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
}

func (p *recordPrinter) print(r audit.Record) error {
	if p.json {
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		_, err = p.w.Write(append(b, '\n'))
		return err
	}
	if !p.header && !p.stream {
		fmt.Fprintln(p.tw, "TIME\tSEQ\tEVENT\tUSER\tDECISION\tCLUSTER\tTARGET\tWHAT")
		p.header = true
	}
	fmt.Fprintf(p.tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Time.UTC().Format("2006-01-02T15:04:05.000Z"), r.Seq,
		dash(string(r.Event)), dash(r.User), dash(string(r.Decision)), dash(r.Cluster), dash(r.Target), dash(what(r)))
	if p.stream {
		return p.tw.Flush()
	}
	return nil
}

func (p *recordPrinter) flush() error {
	if p.json {
		return nil
	}
	return p.tw.Flush()
}

// what summarises a record's specifics for the table.
func what(r audit.Record) string {
	var parts []string
	add := func(k, v string) {
		if v != "" {
			parts = append(parts, k+"="+v)
		}
	}
	add("op", r.Op)
	add("mfa", r.MFA)
	add("dest", r.Dest)
	add("session", r.Session)
	if step := r.Detail["step"]; step != "" {
		add("step", step)
	}
	if r.Write {
		parts = append(parts, "write")
	}
	if r.Reason != "" {
		parts = append(parts, strconv.Quote(truncateRunes(r.Reason, 120)))
	}
	return strings.Join(parts, " ")
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	// Engineers' node names and terms reach the log: no control
	// characters (terminal escapes) reach a reviewer's terminal.
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '?'
		}
		return r
	}, s)
}

func truncateRunes(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}
