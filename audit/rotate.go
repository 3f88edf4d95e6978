package audit

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
)

// rotatedLayout is the UTC time in a rotated file's name,
// <path>.<rotatedLayout>: fixed width, so names sort in time order.
const rotatedLayout = "20060102T150405.000000000Z"

// rotatingSuffix names the new active file while a rotation prepares it
// (<path>.rotating); Open removes a leftover one.
const rotatingSuffix = ".rotating"

// Segments returns the files of the audit log whose active file is path,
// for readers: the rotated files (<path>.<UTC yyyymmddThhmmss.nnnnnnnnnZ>)
// oldest first, then the active file, each only if it exists. Other files
// beside the log (quarantined torn lines, CLI sibling logs) are not
// listed. A file still being rotated (linked under its rotated name, not
// yet replaced) is listed once, as the active file.
func Segments(path string) ([]string, error) {
	rot, err := rotatedFiles(path)
	if err != nil {
		return nil, err
	}
	afi, err := os.Stat(path)
	switch {
	case err == nil:
		if n := len(rot); n > 0 {
			if fi, err := os.Stat(rot[n-1]); err == nil && os.SameFile(fi, afi) {
				rot = rot[:n-1]
			}
		}
		rot = append(rot, path)
	case errors.Is(err, fs.ErrNotExist):
	default:
		return nil, fmt.Errorf("audit: %w", err)
	}
	return rot, nil
}

// rotatedFiles lists the rotated files of path, oldest first.
func rotatedFiles(path string) ([]string, error) {
	dir, base := filepath.Dir(path), filepath.Base(path)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	var out []string
	for _, e := range ents {
		if _, ok := rotatedStamp(base, e.Name()); ok && e.Type().IsRegular() {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	slices.Sort(out)
	return out, nil
}

// rotatedStamp returns the rotation time in name, if name is a rotated
// file of the log whose active file's base name is base.
func rotatedStamp(base, name string) (time.Time, bool) {
	s, ok := strings.CutPrefix(name, base+".")
	if !ok {
		return time.Time{}, false
	}
	t, err := time.Parse(rotatedLayout, s)
	if err != nil || t.Format(rotatedLayout) != s {
		return time.Time{}, false
	}
	return t, true
}

// utcDay returns midnight UTC of t's day.
func utcDay(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// autoRotate rotates when the active file reached RotateSize or, before a
// write, when a UTC midnight passed since the last record.
func (l *Log) autoRotate(beforeWrite bool) {
	if l.down() {
		return
	}
	why := ""
	var now time.Time
	if l.opts.RotateSize > 0 && l.w.end >= l.opts.RotateSize {
		why = "size"
	} else if beforeWrite && l.opts.RotateDaily {
		now = l.now()
		if utcDay(now).After(utcDay(l.w.last)) {
			why = "daily"
		}
	}
	if why == "" {
		return
	}
	if now.IsZero() {
		now = l.now()
	}
	if time.Now().Before(l.w.rotRetry) {
		return
	}
	if err := l.rotate(now); err != nil {
		l.w.rotRetry = time.Now().Add(10 * l.opts.ProbeInterval)
		l.log.Error("audit log rotation failed; still appending to the same file", zap.String("path", l.path), zap.String("reason", why), zap.Error(err))
	}
}

// rotateNow serves a Rotate call.
func (l *Log) rotateNow() error {
	if err := l.Err(); err != nil {
		return err
	}
	return l.rotate(l.now())
}

// rotate moves the active file to its rotated name and starts a new active
// file with an EventRotate record, then applies retention and calls
// OnRotate. It runs on the writer goroutine.
//
// The active path always names a file this Log has locked: the current
// file is first hard-linked under its rotated name, the new file is
// created as <path>.rotating, locked, given its rotate record and fsynced,
// then renamed over path. A crash before that rename leaves the old file
// under both names and the new one under .rotating, which Open undoes; a
// crash after it leaves a complete rotation.
func (l *Log) rotate(now time.Time) (err error) {
	if l.w.end == 0 {
		return nil // nothing to rotate (cannot happen after Open)
	}
	now = now.UTC()
	dir, base := filepath.Dir(l.path), filepath.Base(l.path)
	rot, err := rotatedFiles(l.path)
	if err != nil {
		return err
	}
	t := now
	if n := len(rot); n > 0 {
		if last, ok := rotatedStamp(base, filepath.Base(rot[n-1])); ok && !t.After(last) {
			t = last.Add(time.Nanosecond) // names must sort after the newest
		}
	}
	var name string
	for i := 0; ; i++ {
		name = l.path + "." + t.Format(rotatedLayout)
		err = os.Link(l.path, name)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrExist) || i == 100 {
			return fmt.Errorf("audit: rotate %s: %w", l.path, err)
		}
		t = t.Add(time.Nanosecond)
	}
	linked := true
	defer func() {
		if linked {
			os.Remove(name) // the old file keeps its active name
		}
	}()
	afi, err := l.w.osf.Stat()
	if err != nil {
		return fmt.Errorf("audit: rotate: %w", err)
	}
	if lfi, err := os.Stat(name); err != nil || !os.SameFile(afi, lfi) {
		return fmt.Errorf("audit: rotate: %s no longer names the file this gateway appends to", l.path)
	}

	tmp := l.path + rotatingSuffix
	nf, err := os.OpenFile(tmp, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		os.Remove(tmp) // a leftover of an earlier failed attempt
		nf, err = os.OpenFile(tmp, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_EXCL, 0o600)
	}
	if err != nil {
		return fmt.Errorf("audit: rotate: %w", err)
	}
	placed := false
	defer func() {
		if !placed {
			nf.Close()
			os.Remove(tmp)
		}
	}()
	if err := lockFile(nf); err != nil {
		return err
	}
	rec := &Record{Time: now, Seq: l.w.seq + 1, Prev: l.w.prev, Event: EventRotate, Decision: DecisionInfo, Detail: map[string]string{
		"prev_file": filepath.Base(name),
		"prev_seq":  strconv.FormatUint(l.w.seq, 10),
		"prev_hash": l.w.prev,
		"log_id":    l.id,
	}}
	line, hash, err := appendLine(nil, rec)
	if err != nil {
		return err
	}
	rec.Hash = hash
	if _, err := nf.Write(line); err != nil {
		return fmt.Errorf("audit: rotate: write %s: %w", tmp, err)
	}
	if err := nf.Sync(); err != nil {
		return fmt.Errorf("audit: rotate: fsync %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, l.path); err != nil {
		return fmt.Errorf("audit: rotate: %w", err)
	}
	placed, linked = true, false
	dirErr := syncDir(dir)

	old := l.w.file
	l.w.file, l.w.osf, l.w.end = l.wrap(nf), nf, 0
	l.advance(int64(len(line)), rec.Seq, hash, rec.Time)
	old.Close() // releases the old file's lock
	l.mu.Lock()
	l.stats.Rotations++
	l.mu.Unlock()
	l.log.Info("audit log rotated", zap.String("path", l.path), zap.String("rotated_to", name), zap.Uint64("seq", rec.Seq))

	l.retain(now)
	if l.opts.OnRotate != nil {
		l.opts.OnRotate(rec.Seq, hash)
	}
	if dirErr != nil {
		return fmt.Errorf("audit: rotated %s, but: %w", l.path, dirErr)
	}
	return nil
}

// retain deletes the oldest rotated files beyond Keep and KeepAge, writing
// an EventRetention record into the active file before each deletion. It
// only ever deletes from the oldest end, so the set stays contiguous; a
// file whose final record cannot be read is kept (and everything newer).
func (l *Log) retain(now time.Time) {
	if l.opts.Keep <= 0 && l.opts.KeepAge <= 0 {
		return
	}
	rot, err := rotatedFiles(l.path)
	if err != nil {
		l.log.Error("audit retention: cannot list rotated files", zap.Error(err))
		return
	}
	n := 0
	if l.opts.Keep > 0 && len(rot) > l.opts.Keep {
		n = len(rot) - l.opts.Keep
	}
	if l.opts.KeepAge > 0 {
		cutoff := now.Add(-l.opts.KeepAge)
		base := filepath.Base(l.path)
		for n < len(rot) {
			t, _ := rotatedStamp(base, filepath.Base(rot[n]))
			if !t.Before(cutoff) {
				break
			}
			n++
		}
	}
	deleted := 0
	defer func() {
		if deleted > 0 {
			if err := syncDir(filepath.Dir(l.path)); err != nil {
				l.log.Error("audit retention", zap.Error(err))
			}
		}
	}()
	for _, f := range rot[:n] {
		_, last, err := fileEnds(f)
		if err != nil {
			l.log.Error("audit retention: keeping a rotated file whose final record cannot be read", zap.String("file", f), zap.Error(err))
			return
		}
		rec := &Record{Event: EventRetention, Decision: DecisionInfo, Detail: map[string]string{
			"deleted":   filepath.Base(f),
			"last_seq":  strconv.FormatUint(last.Seq, 10),
			"last_hash": last.Hash,
		}}
		if err := l.writeRecord(rec); err != nil {
			l.enterOutage(err, nil, nil) // nothing deleted without its record
			return
		}
		if err := os.Remove(f); err != nil {
			l.log.Error("audit retention: cannot delete a rotated file (its retention record is written)", zap.String("file", f), zap.Error(err))
			return
		}
		deleted++
		l.log.Info("audit retention deleted a rotated file", zap.String("file", f), zap.Uint64("last_seq", last.Seq), zap.Uint64("record", rec.Seq))
	}
}
