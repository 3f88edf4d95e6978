package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"beamgate/audit"
	"beamgate/audit/vaultanchor"
	"beamgate/cookies"
	"beamgate/gateway/config"
)

const auditUsage = `usage:
  beamgate audit [--config FILE | --file PATH] [filters] [--json]   query the audit log
  beamgate audit verify [--config FILE [--file PATH] | --file PATH [--key PUB] [--checkpoint FILE]]
                                                                   check the hash chain, the signed
                                                                   checkpoints and the anchored checkpoint
  beamgate audit tail [-f] [-n N] [--from-seq N] [--config FILE | --file PATH] [filters] [--json]
                                                                   the end of the log, and follow it
  beamgate audit replay SESSION [--follow] [--config FILE | --file PATH]
                                                                   a break-glass shell's transcript

filters: --user U --node N --cluster C --decision D --event E --session S
         --since T --until T   (T is RFC 3339, a date 2006-01-02, or a duration
                                 such as 1h meaning that long ago)
tail:    -f            keep printing new records (across log rotation) until interrupted
         -n N          start with the last N records (after the filters); -n 0 -f: only new ones
         --from-seq N  start at the first record with seq >= N (a shipper resumes at
                       its last shipped seq + 1); combines with -f, -n and the filters
         tail reads audit.path, and the rotated files before it that -n or
         --from-seq reach back to
--json prints one JSON record per line, unescaped (a pid stays <0.50.0>). The
table adds ENGINEER (node), RULE and the args (shortened, in WHAT) where the
event has them. A query with no match says "no records match" on stderr.
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
	last       int    // tail -n; negative: not given
	fromSeq    uint64 // tail --from-seq
	f          audit.Filter
	since, til string
	active     string // the main log's active file (set by parse)
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
		// The file and, when it is an active file, its rotated files.
		a.active = a.file
		files, err := audit.Segments(a.file)
		if err != nil {
			return nil, err
		}
		if len(files) == 0 {
			return nil, fmt.Errorf("no audit log at %s", a.file)
		}
		return files, nil
	case a.config != "":
		cfg, err := config.Load(a.config)
		if err != nil {
			return nil, err
		}
		a.active = cfg.Audit.Path
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
			return auditVerify(ctx, args[1:], stdout, stderr)
		case "tail":
			return auditTail(ctx, args[1:], stdout, stderr)
		case "replay":
			return auditReplay(ctx, args[1:], stdout, stderr)
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
			p.flush()
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	if err := p.flush(); err != nil {
		return err
	}
	if p.n == 0 {
		fmt.Fprintln(stderr, noMatch)
	}
	return nil
}

// noMatch is printed on stderr when a query or tail printed nothing.
const noMatch = "no records match"

func auditVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	a := newAuditFlags("audit verify", stderr, false)
	keyFile := a.fs.String("key", "", "checkpoint public key `FILE` (the .pub beside the file backend's key), for --file")
	cpFile := a.fs.String("checkpoint", "", "the replica's latest checkpoint as stored outside the log (`FILE`), for --file")
	tokenFile := a.fs.String("vault-token-file", "", "with --config and the Vault backend: log in with this reviewer's token (`FILE`; policy beamgate-auditor) instead of the gateway's credentials; VAULT_TOKEN works too")
	if err := a.fs.Parse(args); err != nil {
		return err
	}
	if a.fs.NArg() != 0 {
		return fmt.Errorf("unexpected argument %q", a.fs.Arg(0))
	}
	var (
		sets     [][]string // the main log's set, then each command's own log
		opts     audit.VerifyOptions
		sources  []string // where keys and anchor came from, for the report
		interval time.Duration
	)
	switch {
	case a.config != "":
		if *keyFile != "" || *cpFile != "" {
			return errors.New("--key and --checkpoint go with --file alone; with --config they come from the configuration")
		}
		cfg, err := config.Load(a.config)
		if err != nil {
			return err
		}
		interval = cfg.Audit.Checkpoint.Interval
		// --file with --config checks a copy (or another log) against the
		// configuration's keys and anchored checkpoint.
		path := cfg.Audit.Path
		if a.file != "" {
			path = a.file
		}
		main, err := audit.Segments(path)
		if err != nil {
			return err
		}
		sets = append(sets, main)
		for _, side := range cliSiblings(path) {
			sets = append(sets, []string{side})
		}
		if opts, sources, err = configAnchor(ctx, cfg, *tokenFile, stderr); err != nil {
			return err
		}
	case a.file != "":
		main, err := audit.Segments(a.file)
		if err != nil {
			return err
		}
		if len(main) == 0 {
			return fmt.Errorf("no audit log at %s", a.file)
		}
		sets = append(sets, main)
		if *keyFile != "" {
			keys, err := audit.LoadPublicKey(*keyFile)
			if err != nil {
				return err
			}
			opts.Keys = keys
			sources = append(sources, "key "+*keyFile)
		}
		if *cpFile != "" {
			cp, err := audit.ReadCheckpointFile(*cpFile)
			if err != nil {
				return err
			}
			if cp == nil {
				return fmt.Errorf("--checkpoint %s: no such file", *cpFile)
			}
			opts.Anchored = cp
			sources = append(sources, "checkpoint "+*cpFile)
		}
	default:
		return errors.New("--config FILE or --file PATH is required")
	}
	if len(sets[0]) == 0 && opts.Anchored == nil {
		return errors.New("no audit log yet")
	}
	var failed []string
	for i, files := range sets {
		o := opts
		if i > 0 { // a command's own log: its own chain, no checkpoints
			o = audit.VerifyOptions{}
		}
		rep, err := audit.VerifySet(files, o)
		if err != nil {
			return err
		}
		printVerify(stdout, rep, i > 0, sources, interval)
		if !rep.OK() {
			failed = append(failed, strings.Join(rep.Files, ","))
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("audit log failed verification: %s", strings.Join(failed, "; "))
	}
	return nil
}

// configAnchor finds the checkpoint key and the anchored checkpoint of the
// configuration's replica: in Vault (Transit public key, KV) with the
// Vault backend, beside the local checkpoint key otherwise.
func configAnchor(ctx context.Context, cfg *config.Config, tokenFile string, stderr io.Writer) (audit.VerifyOptions, []string, error) {
	var opts audit.VerifyOptions
	c := cfg.Audit.Checkpoint
	if cfg.Cookies.Backend == "vault" {
		// A reviewer verifies with their own token: the gateway's policy
		// can sign but not read the key.
		if tokenFile != "" || os.Getenv("VAULT_TOKEN") != "" {
			rc := *cfg
			rc.Cookies.Vault.Auth = cookies.VaultAuth{Method: cookies.AuthToken, TokenFile: tokenFile}
			cfg = &rc
		}
		vs, err := openVault(ctx, cfg, cliLogger(stderr))
		if err != nil {
			return opts, nil, err
		}
		defer vs.Close()
		vc := vaultanchor.Config{TransitMount: c.TransitMount, Key: c.TransitKey, KVMount: vs.Config().KVMount, Path: c.KVPath}
		keys, err := vaultanchor.FetchKeys(ctx, vs.Client(), vc)
		if err != nil {
			return opts, nil, fmt.Errorf("%w (verify with a reviewer's token: --vault-token-file FILE or VAULT_TOKEN, policy beamgate-auditor of deploy/vault)", err)
		}
		cp, err := vaultanchor.NewKV(vs.Client(), vc).Latest(ctx, cfg.Audit.Replica)
		if err != nil {
			return opts, nil, err
		}
		opts.Keys, opts.Anchored, opts.Require = keys, cp, true
		return opts, []string{"Vault transit key " + vc.TransitMount + "/" + vc.Key,
			"Vault " + vc.KVMount + "/" + vc.Path + "/" + cfg.Audit.Replica}, nil
	}
	opts.Require = true
	sources := []string{"key " + c.KeyFile + ".pub"}
	keys, err := audit.LoadPublicKey(c.KeyFile + ".pub")
	switch {
	case err == nil:
		opts.Keys = keys
	case errors.Is(err, fs.ErrNotExist):
		sources[0] = "no checkpoint key at " + c.KeyFile + ".pub (a gateway creates it when it first starts)"
	default:
		return opts, nil, err
	}
	anchor := audit.FileAnchor{Dir: cfg.Audit.AnchorDir()}
	cp, err := anchor.Latest(ctx, cfg.Audit.Replica)
	if err != nil {
		return opts, nil, err
	}
	opts.Anchored = cp
	return opts, append(sources, "checkpoint in "+anchor.Dir), nil
}

// printVerify writes what a reviewer needs to know of one set: what was
// checked, what is wrong, and what no check can see.
func printVerify(w io.Writer, rep *audit.SetReport, side bool, sources []string, interval time.Duration) {
	status := "ok"
	if !rep.OK() {
		status = "FAILED"
	}
	what := "audit log"
	if side {
		what = "command log (its own chain; no checkpoints)"
	}
	fmt.Fprintf(w, "%s %s: %d file(s) %s, %d records", status, what, len(rep.Files), strings.Join(rep.Files, " "), rep.Records)
	if rep.Records > 0 {
		fmt.Fprintf(w, " (seq %d to %d)", rep.FirstSeq, rep.LastSeq)
	}
	if rep.LogID != "" {
		fmt.Fprintf(w, ", log %s", rep.LogID)
	}
	fmt.Fprintln(w)
	for _, p := range rep.Problems {
		fmt.Fprintf(w, "  FAIL %s\n", p)
	}
	for _, n := range rep.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
	if side {
		return
	}
	if len(sources) == 0 {
		fmt.Fprintln(w, "  not checked: checkpoint signatures and the anchored checkpoint (pass --key and --checkpoint, or --config); without them a rewritten or truncated log can look intact")
	} else {
		fmt.Fprintf(w, "  checked against: %s\n", strings.Join(sources, "; "))
	}
	if rep.Checkpoints > 0 || rep.UncheckedSigs > 0 {
		fmt.Fprintf(w, "  checkpoints: %d verified", rep.Checkpoints)
		if rep.UncheckedSigs > 0 {
			fmt.Fprintf(w, ", %d with signatures not checked", rep.UncheckedSigs)
		}
		if rep.Newest != nil {
			fmt.Fprintf(w, "; the newest covers seq %d (%s)", rep.Newest.Seq, rep.Newest.At.Format("2006-01-02T15:04:05Z"))
		}
		fmt.Fprintln(w)
	}
	if a := rep.Anchored; a != nil && rep.OK() {
		fmt.Fprintf(w, "  anchored: the checkpoint stored outside the log (replica %s, %s) covers seq %d, and the log reaches it\n",
			a.Replica, a.At.Format("2006-01-02T15:04:05Z"), a.Seq)
	} else if a == nil && len(sources) > 0 {
		fmt.Fprintln(w, "  anchored: no checkpoint stored outside the log yet for this replica")
	}
	if n := rep.Uncovered(); n > 0 {
		every := ""
		if interval > 0 {
			every = fmt.Sprintf(" (at most one checkpoint interval, %s, of records)", interval)
		}
		fmt.Fprintf(w, "  undetectable: the last %d record(s) (seq %d to %d) come after the newest checkpoint%s; cutting only those would not be detected\n",
			n, rep.LastSeq-n+1, rep.LastSeq, every)
	}
}

func auditTail(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	a := newAuditFlags("audit tail", stderr, true)
	a.fs.BoolVar(&a.follow, "f", false, "follow: keep printing new records (across log rotation) until interrupted")
	a.fs.IntVar(&a.last, "n", -1, "start with the last `N` records (after the filters); 0 with -f: only new records")
	a.fs.Uint64Var(&a.fromSeq, "from-seq", 0, "start at the first record with seq >= `N` (resume a shipper)")
	_, err := a.parse(args, time.Now())
	if err != nil {
		return err
	}
	nGiven := false
	a.fs.Visit(func(f *flag.Flag) { nGiven = nGiven || f.Name == "n" })
	if nGiven && a.last < 0 {
		return fmt.Errorf("-n %d: give a count of 0 or more", a.last)
	}
	path := a.active // tail finds the rotated files itself; CLI siblings are finished files
	opts := audit.TailOptions{Filter: a.f, FromSeq: a.fromSeq, Follow: a.follow}
	switch {
	case !nGiven:
		opts.Last = 0 // all
	case a.last == 0:
		opts.Last = audit.TailNew
	default:
		opts.Last = a.last
	}
	opts.Gap = func(want, got uint64) {
		fmt.Fprintf(stderr, "beamgate audit tail: records %d to %d are not in %s or the rotated files before it (deleted?); continuing at seq %d\n", want, got-1, path, got)
	}
	p := newRecordPrinter(stdout, a.json)
	// An aligned table with a header needs the whole output first: only
	// for a bounded -n without -f.
	p.stream = a.follow || opts.Last == 0
	err = audit.TailWith(ctx, path, opts, p.print)
	if a.follow && errors.Is(err, context.Canceled) {
		err = nil
	}
	if ferr := p.flush(); err == nil {
		err = ferr
	}
	if err == nil && !a.follow && p.n == 0 {
		fmt.Fprintln(stderr, noMatch)
	}
	return err
}

// recordPrinter prints records as JSON lines or an aligned table.
type recordPrinter struct {
	w      io.Writer
	json   bool
	stream bool // flush after every record (tail)
	tw     *tabwriter.Writer
	enc    *json.Encoder
	header bool
	n      int // records printed
}

func newRecordPrinter(w io.Writer, asJSON bool) *recordPrinter {
	enc := json.NewEncoder(w)
	// A pid stays greppable as <0.50.0>, not \u003c0.50.0\u003e.
	enc.SetEscapeHTML(false)
	return &recordPrinter{w: w, json: asJSON, enc: enc, tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
}

func (p *recordPrinter) print(r audit.Record) error {
	p.n++
	if p.json {
		return p.enc.Encode(r) // one line, '\n'-terminated
	}
	if !p.header && !p.stream {
		fmt.Fprintln(p.tw, "TIME\tSEQ\tEVENT\tUSER\tDECISION\tCLUSTER\tENGINEER\tTARGET\tRULE\tWHAT")
		p.header = true
	}
	fmt.Fprintf(p.tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Time.UTC().Format("2006-01-02T15:04:05.000Z"), r.Seq,
		dash(string(r.Event)), dash(r.User), dash(string(r.Decision)), dash(r.Cluster), dash(r.Engineer), dash(r.Target),
		dash(r.Rule), dash(what(r)))
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

// whatArgsLen is how many characters of a record's args the table shows.
const whatArgsLen = 40

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
	add("args", truncateRunes(r.Args, whatArgsLen))
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

// auditReplay prints the transcript of a break-glass shell: its opening,
// every expression as recorded before it ran, what it printed, and its
// end, each with its time and its offset from the opening. --follow
// keeps printing a live shell's records until it closes.
func auditReplay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var session string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		session, args = args[0], args[1:]
	}
	a := newAuditFlags("audit replay", stderr, false)
	a.fs.BoolVar(&a.follow, "follow", false, "keep printing a live shell's records until it closes")
	if _, err := a.parse(args, time.Now()); err != nil {
		return err
	}
	if session == "" {
		return errors.New("usage: beamgate audit replay SESSION [--follow] (the shell's banner, and its shell_open record, name its SESSION)")
	}
	var start time.Time
	n := 0
	errDone := errors.New("done")
	print := func(r audit.Record) error {
		if !strings.HasPrefix(string(r.Event), "shell_") || r.Event == audit.EventShellRequest || r.Event == audit.EventShellApprove {
			return nil
		}
		if start.IsZero() {
			start = r.Time
		}
		n++
		at := fmt.Sprintf("%s +%7.3fs", r.Time.UTC().Format("2006-01-02T15:04:05.000Z"), r.Time.Sub(start).Seconds())
		text := func(s string) string {
			return strings.ReplaceAll(strings.TrimRight(sanitize(s), "\n"), "\n", "\n"+strings.Repeat(" ", len(at)+4))
		}
		switch r.Event {
		case audit.EventShellOpen:
			fmt.Fprintf(stdout, "%s  open  %s on %s, grant %s (%s): %s\n", at, r.User, r.Target, r.Detail["request"], r.Decision, text(r.Reason))
		case audit.EventShellInput:
			fmt.Fprintf(stdout, "%s  >     %s\n", at, text(r.Args))
		case audit.EventShellOutput:
			fmt.Fprintf(stdout, "%s  <     %s\n", at, text(r.Args))
		case audit.EventShellClose:
			fmt.Fprintf(stdout, "%s  close %s (%s expressions)\n", at, text(r.Reason), r.Detail["expressions"])
			if a.follow {
				return errDone
			}
		default:
			fmt.Fprintf(stdout, "%s  %s %s\n", at, r.Event, text(r.Reason))
		}
		return nil
	}
	opts := audit.TailOptions{Filter: audit.Filter{Session: session}, Follow: a.follow}
	err := audit.TailWith(ctx, a.active, opts, print)
	if errors.Is(err, errDone) || (a.follow && errors.Is(err, context.Canceled)) {
		err = nil
	}
	if err == nil && n == 0 && !a.follow {
		fmt.Fprintf(stderr, "no break-glass shell records for session %s\n", session)
	}
	return err
}

// sanitize replaces control characters but newlines and tabs (a
// transcript keeps its lines; terminal escapes never reach a reviewer).
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r != '\n' && r != '\t' && unicode.IsControl(r) {
			return '?'
		}
		return r
	}, s)
}
