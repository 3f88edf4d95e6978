package beamtest

import (
	"cmp"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// MatrixOutEnv names the Markdown file `make matrix` collects the interop
// matrix tables in, for the README.
const MatrixOutEnv = "BEAMGATE_MATRIX_OUT"

// Matrix cell results.
const (
	CellPassed  = "✓"
	CellFailed  = "✗ failed"
	CellSkipped = "skipped (chroot unavailable)"
	cellNotRun  = "–"
)

// Matrix collects the cells of an OTP interop matrix, engineer releases
// (rows: erl or iex on an OTP release) against production releases
// (columns), and renders them as the Markdown table the README shows.
//
// beamtest does not import internal/otp (whose tests use beamtest): the
// releases and their version lookup come from the caller, normally
// otp.Releases and otp.Versions.
type Matrix struct {
	releases []string
	versions func(t testing.TB, release string) (otpVersion, elixirVersion string)
	start    time.Time

	mu     sync.Mutex
	rows   []string                     // row keys ("erl 27", "iex 29") in run order
	cells  map[string]map[string]string // row → production release → result
	labels map[string]string            // row key or "prod REL" → table heading
}

// NewMatrix starts a matrix whose columns are releases, labelled with the
// full versions that versions reports (empty when unknown).
func NewMatrix(releases []string, versions func(t testing.TB, release string) (otpVersion, elixirVersion string)) *Matrix {
	return &Matrix{
		releases: releases,
		versions: versions,
		start:    time.Now(),
		cells:    map[string]map[string]string{},
		labels:   map[string]string{},
	}
}

// RunErl runs f as the subtest "erlENG/prodPROD" of t, an erl engineer on
// OTP release eng against production release prod, and records its
// outcome (passed, failed or skipped) in the table.
func (m *Matrix) RunErl(t *testing.T, eng, prod string, f func(t *testing.T)) {
	t.Helper()
	m.run(t, fmt.Sprintf("erl%s/prod%s", eng, prod), "erl "+eng, eng, prod, false, f)
}

// RunIex is RunErl for an iex engineer running on OTP release eng, as the
// subtest "iex-otpENG/prodPROD".
func (m *Matrix) RunIex(t *testing.T, eng, prod string, f func(t *testing.T)) {
	t.Helper()
	m.run(t, fmt.Sprintf("iex-otp%s/prod%s", eng, prod), "iex "+eng, eng, prod, true, f)
}

func (m *Matrix) run(t *testing.T, name, row, eng, prod string, elixir bool, f func(t *testing.T)) {
	t.Helper()
	t.Run(name, func(t *testing.T) {
		defer m.record(t, row, prod) // runs after Skip and Fatal too
		m.noteVersions(t, row, eng, prod, elixir)
		f(t)
	})
}

func (m *Matrix) noteVersions(t testing.TB, row, eng, prod string, elixir bool) {
	t.Helper()
	engOTP, engElixir := m.versions(t, eng)
	prodOTP, _ := m.versions(t, prod)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.labels["prod "+prod] = "OTP " + cmp.Or(prodOTP, prod)
	if elixir {
		m.labels[row] = "`iex` Elixir " + cmp.Or(engElixir, "?") + " on OTP " + cmp.Or(engOTP, eng)
	} else {
		m.labels[row] = "`erl` OTP " + cmp.Or(engOTP, eng)
	}
}

func (m *Matrix) record(t testing.TB, row, prod string) {
	result := CellPassed
	switch {
	case t.Failed():
		result = CellFailed
	case t.Skipped():
		result = CellSkipped
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cells[row] == nil {
		m.rows = append(m.rows, row)
		m.cells[row] = map[string]string{}
	}
	m.cells[row][prod] = result
}

// Markdown returns the table under a line naming title, the date, how
// many cells passed and how long the matrix took.
func (m *Matrix) Markdown(title string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	cells, passed := 0, 0
	for _, r := range m.cells {
		for _, v := range r {
			cells++
			if v == CellPassed {
				passed++
			}
		}
	}
	status := "all cells passed"
	if passed != cells {
		status = fmt.Sprintf("%d of %d cells did not pass", cells-passed, cells)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s, %s (UTC): %s (%s).\n\n", title, time.Now().UTC().Format("2006-01-02"), status,
		time.Since(m.start).Round(time.Second))
	b.WriteString("| engineer \\ production |")
	for _, p := range m.releases {
		fmt.Fprintf(&b, " %s |", cmp.Or(m.labels["prod "+p], "OTP "+p))
	}
	b.WriteString("\n|---|" + strings.Repeat("---|", len(m.releases)) + "\n")
	for _, row := range m.rows {
		fmt.Fprintf(&b, "| %s |", cmp.Or(m.labels[row], row))
		for _, p := range m.releases {
			fmt.Fprintf(&b, " %s |", cmp.Or(m.cells[row][p], cellNotRun))
		}
		b.WriteString("\n")
	}
	return b.String()
}

// Report logs the Markdown table and, when $BEAMGATE_MATRIX_OUT is set,
// writes it there: replacing the file, or with appendOut after what the
// file already holds (the second table of one `make matrix`).
func (m *Matrix) Report(t testing.TB, title string, appendOut bool) {
	t.Helper()
	md := m.Markdown(title)
	t.Log("\n" + md)
	path := os.Getenv(MatrixOutEnv)
	if path == "" {
		return
	}
	flags := os.O_CREATE | os.O_WRONLY | os.O_TRUNC
	if appendOut {
		flags = os.O_CREATE | os.O_WRONLY | os.O_APPEND
		md = "\n" + md
	}
	f, err := os.OpenFile(path, flags, 0o644)
	if err != nil {
		t.Errorf("beamtest: matrix report: %v", err)
		return
	}
	if _, err := f.WriteString(md); err != nil {
		t.Errorf("beamtest: matrix report: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Errorf("beamtest: matrix report: %v", err)
	}
}
