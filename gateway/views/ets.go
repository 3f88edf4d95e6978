package views

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"beamgate/gateway/dist/term"
)

// ETSKeys are the values ets ranks tables by.
var ETSKeys = []string{"memory", "size"}

// TableRow is one ETS table.
type TableRow struct {
	Name       string `json:"name"`
	ID         string `json:"id,omitempty"` // the reference of an unnamed table
	Owner      string `json:"owner"`
	OwnerName  string `json:"owner_name,omitempty"`
	Type       string `json:"type"`
	Size       int64  `json:"size"`   // objects
	Memory     int64  `json:"memory"` // bytes
	Protection string `json:"protection"`
}

// ETSResult is production's ETS tables, largest first.
type ETSResult struct {
	By     string     `json:"by"`
	Tables int        `json:"tables"`
	Rows   []TableRow `json:"rows"`
}

// ETS lists the n largest ETS tables by memory or size, system tables
// included. It is one call of observer_backend:get_table_list/2, which
// reads ets:info of every table on production (never the contents).
func ETS(ctx context.Context, c Caller, by string, n int) (*ETSResult, error) {
	if by == "" {
		by = "memory"
	}
	if !validKey(by, ETSKeys) {
		return nil, fmt.Errorf("views: ets --by %q: want one of %v", by, ETSKeys)
	}
	n = clampRows(n, 20)
	opts := term.MakeList(
		term.Tuple{term.Atom("sys_hidden"), term.False},
		term.Tuple{term.Atom("unread_hidden"), term.False})
	reply, err := c.Call(ctx, "observer_backend", "get_table_list", []term.Term{term.Atom("ets"), opts})
	if err != nil {
		return nil, err
	}
	tabs, ok := term.ListElems(reply)
	if !ok {
		return nil, badReply("observer_backend:get_table_list/2", reply)
	}
	rows := make([]TableRow, 0, len(tabs))
	for _, tab := range tabs {
		p := props(tab)
		row := TableRow{
			Name: termText(p["name"]), Owner: termText(p["owner"]),
			Type: termText(p["type"]), Size: intOr0(p["size"]), Memory: intOr0(p["memory"]),
			Protection: termText(p["protection"]),
		}
		if _, isRef := p["id"].(term.Ref); isRef {
			row.ID = refText(p["id"].(term.Ref))
		}
		if a, ok := p["reg_name"].(term.Atom); ok && a != "ignore" {
			row.OwnerName = string(a)
		}
		rows = append(rows, row)
	}
	key := func(r TableRow) int64 { return r.Memory }
	if by == "size" {
		key = func(r TableRow) int64 { return r.Size }
	}
	slices.SortFunc(rows, func(a, b TableRow) int {
		if ka, kb := key(a), key(b); ka != kb {
			if ka > kb {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Name, b.Name)
	})
	return &ETSResult{By: by, Tables: len(rows), Rows: rows[:min(n, len(rows))]}, nil
}

// refText prints a production reference as production's shell does.
func refText(r term.Ref) string {
	var b strings.Builder
	b.WriteString("#Ref<0")
	for i := len(r.ID) - 1; i >= 0; i-- {
		fmt.Fprintf(&b, ".%d", r.ID[i])
	}
	b.WriteString(">")
	return b.String()
}

// WriteText implements Result.
func (r *ETSResult) WriteText(w io.Writer) error {
	if _, err := fmt.Fprintf(w, "ets tables by %s: %d tables\n", r.By, r.Tables); err != nil {
		return err
	}
	t := newTable("NAME", "OWNER", "OWNER NAME", "TYPE", ">SIZE", ">MEMORY", "PROTECTION")
	for _, row := range r.Rows {
		name := row.Name
		if row.ID != "" {
			name += " " + row.ID
		}
		t.add(name, row.Owner, row.OwnerName, row.Type, itoa(row.Size), bytesText(row.Memory), row.Protection)
	}
	return t.write(w)
}
