package views

import (
	"encoding/json"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Result is what a view returns: typed rows that render as a text table
// for people and as JSON (encoding/json of the value) for tools.
type Result interface {
	WriteText(w io.Writer) error
}

// WriteJSON writes r as one line of JSON.
func WriteJSON(w io.Writer, r Result) error {
	return json.NewEncoder(w).Encode(r)
}

// maxCell bounds a table cell in characters.
const maxCell = 60

// table is an aligned text table. Columns whose header starts with '>'
// are right-aligned (numbers).
type table struct {
	head []string
	rows [][]string
}

func newTable(head ...string) *table { return &table{head: head} }

func (t *table) add(cells ...string) {
	for i, c := range cells {
		cells[i] = cell(c)
	}
	t.rows = append(t.rows, cells)
}

// cell makes s safe and short for a terminal: control characters (escape
// sequences in a registered name or table name) become '?'.
func cell(s string) string { return lineText(s, maxCell) }

func (t *table) write(w io.Writer) error {
	n := len(t.head)
	width := make([]int, n)
	right := make([]bool, n)
	head := make([]string, n)
	for i, h := range t.head {
		right[i] = strings.HasPrefix(h, ">")
		head[i] = strings.TrimPrefix(h, ">")
		width[i] = utf8.RuneCountInString(head[i])
	}
	for _, r := range t.rows {
		for i := 0; i < n && i < len(r); i++ {
			width[i] = max(width[i], utf8.RuneCountInString(r[i]))
		}
	}
	var b strings.Builder
	line := func(cells []string) {
		var l strings.Builder
		for i := range n {
			c := ""
			if i < len(cells) {
				c = cells[i]
			}
			pad := strings.Repeat(" ", width[i]-utf8.RuneCountInString(c))
			if i > 0 {
				l.WriteString("  ")
			}
			if right[i] {
				l.WriteString(pad + c)
			} else {
				l.WriteString(c + pad)
			}
		}
		b.WriteString(strings.TrimRight(l.String(), " "))
		b.WriteByte('\n')
	}
	line(head)
	for _, r := range t.rows {
		line(r)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// bytesText prints a byte count with a binary unit.
func bytesText(n int64) string {
	const unit = 1024
	if n < unit {
		return itoa(n) + " B"
	}
	f := float64(n)
	for _, u := range []string{"KiB", "MiB", "GiB", "TiB"} {
		f /= unit
		if f < unit {
			return strconv.FormatFloat(f, 'f', 1, 64) + " " + u
		}
	}
	return strconv.FormatFloat(f/unit, 'f', 1, 64) + " PiB"
}
