package audit

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
)

// ProblemKind classifies what VerifySet found wrong, one kind per attack a
// reviewer must be able to tell apart.
type ProblemKind string

const (
	// ProblemChain: a record was edited, deleted, inserted or reordered
	// (the hash chain breaks), or a line is not a record.
	ProblemChain ProblemKind = "chain"
	// ProblemTorn: the last file ends in the middle of a line (a write in
	// progress, or a crash the gateway has not recovered yet).
	ProblemTorn ProblemKind = "torn"
	// ProblemMissingFile: a file of a rotated set is missing, and no
	// retention record says it was deleted.
	ProblemMissingFile ProblemKind = "missing_file"
	// ProblemTruncated: the log ends before the checkpoint stored outside
	// it (tail truncation).
	ProblemTruncated ProblemKind = "truncated"
	// ProblemEmpty: the log holds no record, though a checkpoint stored
	// outside it says it had some (emptied or replaced).
	ProblemEmpty ProblemKind = "empty"
	// ProblemForeign: the log, or a checkpoint in it, belongs to another
	// log or was signed by a key that is not the verification key (a log
	// produced by another gateway, replacing this one).
	ProblemForeign ProblemKind = "foreign"
	// ProblemCheckpoint: a checkpoint does not match the records it
	// covers, or its signature does not verify (a forged checkpoint).
	ProblemCheckpoint ProblemKind = "checkpoint"
)

// Problem is one finding of VerifySet.
type Problem struct {
	Kind ProblemKind
	File string // base name, "" when it concerns the whole set
	Line int    // 1-based, 0 when it concerns no line
	Seq  uint64
	Msg  string
}

func (p Problem) String() string {
	where := ""
	switch {
	case p.File != "" && p.Line > 0:
		where = fmt.Sprintf("%s line %d: ", p.File, p.Line)
	case p.File != "":
		where = p.File + ": "
	}
	return fmt.Sprintf("%s: %s%s", p.Kind, where, p.Msg)
}

// VerifyOptions is what VerifySet checks a log against, besides its own
// hash chain.
type VerifyOptions struct {
	// Keys verifies checkpoint signatures. nil: signatures are not checked,
	// and the report says so.
	Keys Verifier
	// Anchored is the latest checkpoint of this log's replica, as stored
	// outside the log (Vault KV, or the file beside the checkpoint key).
	// nil: no anchor was consulted, and the report says so.
	Anchored *Checkpoint
	// Require says the keys and the anchor were expected (the reviewer
	// named a configuration): a log holding checkpoints that cannot be
	// checked, or none stored outside it, is then a problem, not a note.
	Require bool
}

// SetReport is what VerifySet found.
type SetReport struct {
	Files             []string // base names, in order
	Records           int
	FirstSeq, LastSeq uint64
	LastHash          string
	LogID             string
	Checkpoints       int         // checkpoint records whose signature and hash were checked
	UncheckedSigs     int         // checkpoint records whose signature was not checked (no Keys)
	Newest            *Checkpoint // the newest checkpoint record in the log
	Anchored          *Checkpoint // the anchor consulted, if any
	// Notes are facts a reviewer should see that are not problems: crash
	// recoveries, outages, files deleted by retention, legacy files.
	Notes    []string
	Problems []Problem
}

// OK reports whether nothing is wrong.
func (r *SetReport) OK() bool { return len(r.Problems) == 0 }

// Uncovered is the number of records after the newest checkpoint (in the
// log or in the anchor): a truncation of those alone is undetectable.
func (r *SetReport) Uncovered() uint64 {
	var covered uint64
	if r.Newest != nil {
		covered = r.Newest.Seq
	}
	if r.Anchored != nil && r.Anchored.Seq > covered {
		covered = r.Anchored.Seq
	}
	if r.LastSeq <= covered {
		return 0
	}
	return r.LastSeq - covered
}

// hashRing remembers the hashes of the most recent records, for checkpoint
// records, which cover a record a few lines before themselves.
const hashRing = 1 << 16

type setVerifier struct {
	opts VerifyOptions
	rep  *SetReport

	seq     uint64 // last good record's seq (0 before the first)
	prev    string // its hash
	started bool
	ring    [hashRing]string
	ringSeq [hashRing]uint64

	needRetention map[string]Problem // predecessor file name -> the problem if no retention record covers it
	retained      map[string]string  // deleted file -> "seq hash"
}

// VerifySet verifies a whole set of audit files, oldest first (a rotated
// set and its active file, see Segments): each line's hash, the chain
// across files (each file after the first starts with a rotate record
// naming its predecessor), checkpoint records (signature and the hash of
// the record they cover) and the anchored checkpoint (the log must reach
// it, with the same log id and hash). It returns an error only when a file
// cannot be read; everything wrong with the contents is a Problem.
func VerifySet(files []string, opts VerifyOptions) (*SetReport, error) {
	v := &setVerifier{opts: opts, rep: &SetReport{Anchored: opts.Anchored},
		needRetention: map[string]Problem{}, retained: map[string]string{}}
	for i, path := range files {
		if err := v.file(path, i, i == len(files)-1); err != nil {
			return v.rep, err
		}
	}
	v.finish()
	return v.rep, nil
}

func (v *setVerifier) problem(kind ProblemKind, file string, line int, seq uint64, format string, args ...any) {
	v.rep.Problems = append(v.rep.Problems, Problem{Kind: kind, File: file, Line: line, Seq: seq, Msg: fmt.Sprintf(format, args...)})
}

func (v *setVerifier) file(path string, index int, last bool) error {
	name := filepath.Base(path)
	v.rep.Files = append(v.rep.Files, name)
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	defer f.Close()
	lr := newLineReader(f)
	first := true
	for {
		line, err := lr.next()
		if errors.Is(err, io.EOF) {
			if first && index > 0 {
				v.problem(ProblemChain, name, 0, v.seq+1, "the file is empty; a rotated file starts with a rotate record")
			}
			return nil
		}
		if err != nil {
			var tooLong *LineTooLongError
			switch {
			case errors.Is(err, errTornLine):
				what := "the file ends in the middle of a line"
				if last {
					what += " (a write in progress, or a crash: the gateway moves it aside when it next opens the log)"
				}
				v.problem(ProblemTorn, name, lr.line, v.seq+1, "%s", what)
				return nil
			case errors.As(err, &tooLong):
				v.problem(ProblemChain, name, lr.line, v.seq+1, "line longer than %d bytes", MaxLineLen)
				return nil
			}
			return fmt.Errorf("audit: %s line %d: %w", name, lr.line, err)
		}
		rec, err := parseLine(line)
		if err != nil {
			v.problem(ProblemChain, name, lr.line, v.seq+1, "not a valid record (edited?): %v", err)
			continue
		}
		if first {
			v.fileStart(name, lr.line, index, &rec)
			first = false
		} else {
			v.link(name, lr.line, &rec)
		}
		v.record(name, lr.line, &rec)
	}
}

// fileStart checks a file's first record against the end of the previous
// file.
func (v *setVerifier) fileStart(name string, line, index int, r *Record) {
	prevFile, prevSeq, prevHash := r.Detail["prev_file"], r.Detail["prev_seq"], r.Detail["prev_hash"]
	switch {
	case index == 0 && r.Seq == 1:
		if r.Prev != GenesisHash {
			v.problem(ProblemChain, name, line, 1, "the first record's prev is not the genesis hash")
		}
		v.accept(r)
		return
	case index == 0 && r.Event == EventRotate:
		// Earlier files were rotated out: a retention record must say the
		// predecessor was deleted.
		v.needRetention[prevFile] = Problem{Kind: ProblemMissingFile, File: name, Line: line, Seq: r.Seq,
			Msg: fmt.Sprintf("the set starts at seq %d, continuing from %s, which is not here and no retention record says it was deleted", r.Seq, prevFile)}
		if want := prevSeq + " " + prevHash; want != strconv.FormatUint(r.Seq-1, 10)+" "+r.Prev {
			v.problem(ProblemChain, name, line, r.Seq, "rotate record names seq %s hash %.12s…, but continues from seq %d hash %.12s…", prevSeq, prevHash, r.Seq-1, r.Prev)
		}
		v.rep.FirstSeq = r.Seq
		v.accept(r)
		return
	case index == 0:
		v.problem(ProblemChain, name, line, r.Seq, "the log starts at seq %d with a %s record: records before it are missing", r.Seq, r.Event)
		v.accept(r)
		return
	}
	if r.Event != EventRotate {
		v.problem(ProblemChain, name, line, r.Seq, "a rotated file must start with a rotate record, this one starts with %s (seq %d)", r.Event, r.Seq)
		v.link(name, line, r)
		return
	}
	prevName := v.rep.Files[index-1]
	if prevFile != prevName {
		v.problem(ProblemMissingFile, name, line, r.Seq, "%s continues from %s (seq %s), which is missing between %s and %s", name, prevFile, prevSeq, prevName, name)
		v.accept(r) // resynchronise and check the rest
		return
	}
	if prevSeq != strconv.FormatUint(v.seq, 10) || prevHash != v.prev {
		v.problem(ProblemChain, name, line, r.Seq, "rotate record says %s ended at seq %s hash %.12s…, but it ends at seq %d hash %.12s…", prevFile, prevSeq, prevHash, v.seq, v.prev)
	}
	v.link(name, line, r)
}

// link checks r against the previous record, then accepts it; on a break
// it resynchronises on r so later problems are found too.
func (v *setVerifier) link(name string, line int, r *Record) {
	switch {
	case !v.started:
		v.problem(ProblemChain, name, line, r.Seq, "records before seq %d are missing", r.Seq)
	case r.Seq != v.seq+1:
		v.problem(ProblemChain, name, line, v.seq+1, "seq is %d, expected %d (a record was deleted, inserted or reordered)", r.Seq, v.seq+1)
	case r.Prev != v.prev:
		v.problem(ProblemChain, name, line, r.Seq, "prev %.12s… does not match the previous record's hash %.12s… (a record before it was edited or replaced)", r.Prev, v.prev)
	}
	v.accept(r)
}

func (v *setVerifier) accept(r *Record) {
	if !v.started {
		v.rep.FirstSeq = r.Seq
		v.started = true
	}
	v.seq, v.prev = r.Seq, r.Hash
	v.ring[r.Seq%hashRing], v.ringSeq[r.Seq%hashRing] = r.Hash, r.Seq
	v.rep.Records++
	v.rep.LastSeq, v.rep.LastHash = r.Seq, r.Hash
	if a := v.opts.Anchored; a != nil && r.Seq == a.Seq && r.Hash != a.Head {
		v.problem(ProblemCheckpoint, "", 0, r.Seq, "record %d hashes to %.12s…, but the checkpoint stored outside the log says %.12s… (the log was rewritten)", r.Seq, r.Hash, a.Head)
	}
}

// record looks at what a record says about the log itself.
func (v *setVerifier) record(name string, line int, r *Record) {
	switch r.Event {
	case EventLogStart, EventRotate:
		id := r.Detail["log_id"]
		if v.rep.LogID != "" && id != v.rep.LogID && r.Event == EventRotate {
			v.problem(ProblemForeign, name, line, r.Seq, "the file belongs to log %s, the set before it to log %s", id, v.rep.LogID)
		}
		if v.rep.LogID != "" && r.Event == EventLogStart && id != v.rep.LogID {
			v.rep.Notes = append(v.rep.Notes, fmt.Sprintf("seq %d: log id %s starts (was %s)", r.Seq, id, v.rep.LogID))
		}
		v.rep.LogID = id
	case EventRetention:
		v.retained[r.Detail["deleted"]] = r.Detail["last_seq"] + " " + r.Detail["last_hash"]
		v.rep.Notes = append(v.rep.Notes, fmt.Sprintf("seq %d: %s (up to seq %s) deleted by retention", r.Seq, r.Detail["deleted"], r.Detail["last_seq"]))
	case EventRecovered:
		v.rep.Notes = append(v.rep.Notes, fmt.Sprintf("seq %d: after a crash, %s torn bytes (sha256 %.12s…) were moved to %s", r.Seq, r.Detail["torn_bytes"], r.Detail["torn_sha256"], r.Detail["quarantine"]))
	case EventOutage:
		v.rep.Notes = append(v.rep.Notes, fmt.Sprintf("seq %d: the log could not be written from %s to %s (%s); %s appends were refused meanwhile: %s",
			r.Seq, r.Detail["since"], r.Detail["until"], r.Detail["duration"], r.Detail["refused"], r.Detail["error"]))
	case EventCheckpoint:
		v.checkpoint(name, line, r)
	}
}

func (v *setVerifier) checkpoint(name string, line int, r *Record) {
	cp, err := checkpointOf(r)
	if err != nil {
		v.problem(ProblemCheckpoint, name, line, r.Seq, "%v", err)
		return
	}
	if cp.LogID != v.rep.LogID {
		v.problem(ProblemForeign, name, line, r.Seq, "checkpoint of log %s inside log %s", cp.LogID, v.rep.LogID)
	}
	if cp.Seq >= r.Seq {
		v.problem(ProblemCheckpoint, name, line, r.Seq, "checkpoint at record %d claims the later seq %d", r.Seq, cp.Seq)
	} else if v.ringSeq[cp.Seq%hashRing] != cp.Seq {
		v.problem(ProblemCheckpoint, name, line, r.Seq, "checkpoint covers seq %d, too far back (or not in this set) to check", cp.Seq)
	} else if h := v.ring[cp.Seq%hashRing]; h != cp.Head {
		v.problem(ProblemCheckpoint, name, line, r.Seq, "checkpoint says record %d has hash %.12s…, the record hashes to %.12s…", cp.Seq, cp.Head, h)
	}
	if !v.verifySig(name, line, r.Seq, cp) {
		return
	}
	if v.opts.Keys != nil {
		v.rep.Checkpoints++
	}
	v.rep.Newest = &cp
}

// verifySig checks cp's signature; it reports whether it was checked and
// good (or not checked at all: no keys).
func (v *setVerifier) verifySig(name string, line int, seq uint64, cp Checkpoint) bool {
	if v.opts.Keys == nil {
		v.rep.UncheckedSigs++
		return true
	}
	if err := v.opts.Keys.Verify(cp.KeyID, cp.SignedBytes(), cp.Sig); err != nil {
		kind := ProblemCheckpoint
		if errors.Is(err, ErrBadSignature) && !v.opts.Keys.Knows(cp.KeyID) {
			kind = ProblemForeign
		}
		v.problem(kind, name, line, seq, "checkpoint of seq %d: %v", cp.Seq, err)
		return false
	}
	return true
}

func (v *setVerifier) finish() {
	if v.opts.Require && v.rep.UncheckedSigs > 0 {
		v.problem(ProblemCheckpoint, "", 0, 0, "the log holds %d signed checkpoints but the key to verify them is missing", v.rep.UncheckedSigs)
	}
	if v.opts.Require && v.opts.Anchored == nil && v.rep.Newest != nil {
		v.problem(ProblemCheckpoint, "", 0, v.rep.Newest.Seq, "the log holds checkpoints (the newest covers seq %d, replica %s) but none is stored outside it: the anchor was removed, or this is another replica's log",
			v.rep.Newest.Seq, v.rep.Newest.Replica)
	}
	for prev, p := range v.needRetention {
		if _, ok := v.retained[prev]; ok {
			continue
		}
		v.rep.Problems = append(v.rep.Problems, p)
	}
	a := v.opts.Anchored
	if a == nil {
		return
	}
	if !v.verifySig("", 0, a.Seq, *a) {
		return
	}
	switch {
	case v.rep.Records == 0:
		v.problem(ProblemEmpty, "", 0, a.Seq, "the log holds no records, but the checkpoint stored outside it (replica %s, %s) covers seq %d: the log was emptied or replaced",
			a.Replica, a.At.Format("2006-01-02T15:04:05Z"), a.Seq)
	case a.LogID != v.rep.LogID:
		v.problem(ProblemForeign, "", 0, a.Seq, "the log's id is %s, but the checkpoint stored outside it is of log %s: this log was written by another gateway, or replaced",
			v.rep.LogID, a.LogID)
	case v.rep.LastSeq < a.Seq:
		v.problem(ProblemTruncated, "", 0, a.Seq, "the log ends at seq %d, but the checkpoint stored outside it (replica %s, %s) covers seq %d: %d records were cut from its end",
			v.rep.LastSeq, a.Replica, a.At.Format("2006-01-02T15:04:05Z"), a.Seq, a.Seq-v.rep.LastSeq)
	case a.Seq < v.rep.FirstSeq:
		v.rep.Notes = append(v.rep.Notes, fmt.Sprintf("the anchored checkpoint (seq %d) is older than the oldest record kept (seq %d)", a.Seq, v.rep.FirstSeq))
	}
}
