package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/keyward/secrets/fernetstore"
)

// The output formats of -o/--output.
const (
	outputText = "text"
	outputJSON = "json"
)

// outputFlag is -o/--output: text (the default) or json. Anything else is
// a usage error before the command runs.
type outputFlag struct{ value *string }

func (f *outputFlag) String() string {
	if f == nil || f.value == nil {
		return ""
	}
	return *f.value
}

func (f *outputFlag) Set(s string) error {
	switch s {
	case outputText, outputJSON:
		*f.value = s
		return nil
	}
	return fmt.Errorf("-o/--output takes text or json, such as -o json")
}

func (f *outputFlag) Type() string { return "format" }

// addOutputFlag gives a command -o/--output, defaulting to text.
func addOutputFlag(c *cobra.Command, format *string) {
	*format = outputText
	c.Flags().VarP(&outputFlag{value: format}, "output", "o",
		"output format: text, or json (one JSON document on stdout; prose and progress on stderr)")
}

// jsonDoc writes one JSON document, {"NAME":[item, item, ...], more...},
// an item at a time, so a document of a million rows costs one item's
// memory. Items are marshalled one by one; the fields after the array are
// known only at the end (counts, a verdict) and are marshalled then. The
// opening is written with the first item (or at the end): a command that
// fails before it has anything to say prints no document, as kubectl does.
type jsonDoc struct {
	w       *bufio.Writer
	array   string
	started bool
	n       int
	err     error
}

func newJSONDoc(w io.Writer, array string) *jsonDoc {
	return &jsonDoc{w: bufio.NewWriter(w), array: array}
}

func (d *jsonDoc) write(b []byte) {
	if d.err == nil {
		_, d.err = d.w.Write(b)
	}
}

func (d *jsonDoc) start() {
	if d.started {
		return
	}
	d.started = true
	name, _ := json.Marshal(d.array)
	d.write([]byte("{"))
	d.write(name)
	d.write([]byte(":["))
}

// add writes one item of the array.
func (d *jsonDoc) add(item any) {
	b, err := json.Marshal(item)
	if err != nil {
		d.err = err
		return
	}
	d.start()
	if d.n > 0 {
		d.write([]byte(","))
	}
	d.n++
	d.write(b)
}

// end closes the array, writes the fields of tail (a struct or map that
// marshals to an object; nil for none) and closes the document.
func (d *jsonDoc) end(tail any) error {
	d.start()
	d.write([]byte("]"))
	if tail != nil {
		b, err := json.Marshal(tail)
		if err != nil {
			return err
		}
		// {"a":1,"b":2} becomes ,"a":1,"b":2 after the array.
		if inner := strings.TrimSuffix(strings.TrimPrefix(string(b), "{"), "}"); inner != "" {
			d.write([]byte("," + inner))
		}
	}
	d.write([]byte("}\n"))
	if d.err == nil {
		d.err = d.w.Flush()
	}
	return d.err
}

// abort ends a document cut short by err: one already started is closed
// with an "error" field (so what was printed still parses, and says it is
// incomplete); else nothing is printed. It returns err.
func (d *jsonDoc) abort(err error) error {
	if d.started {
		d.end(map[string]string{"error": oneLine(err)})
	}
	return err
}

// writeJSON writes v as one JSON document.
func writeJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// jsonEntry is one row of list -o json: the row's metadata, never its
// value (fernetstore.Entry holds none). Absent things are null.
type jsonEntry struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Provider   string     `json:"provider"`
	State      string     `json:"state"`
	Encryption string     `json:"encryption"`
	Key        *string    `json:"key"`
	Ref        *string    `json:"ref"`
	ExpiresAt  *time.Time `json:"expires_at"`
	CreatedAt  *time.Time `json:"created_at"`
}

func entryJSON(e fernetstore.Entry) jsonEntry {
	return jsonEntry{
		ID: e.ID, Name: e.Name, Provider: e.Provider,
		State: stateName(e.State), Encryption: stateName(e.Encryption),
		Key: nullString(e.Key), Ref: nullString(e.Ref),
		ExpiresAt: nullTime(e.ExpiresAt), CreatedAt: nullTime(e.CreatedAt),
	}
}

func nullString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// jsonReport is a fernetstore.Report in migrate/rotate -o json.
type jsonReport struct {
	Scanned          int      `json:"scanned"`
	Done             int      `json:"done"`
	Skipped          int      `json:"skipped"`
	Undecryptable    int      `json:"undecryptable"`
	AlreadyCurrent   int      `json:"already_current"`
	Plaintext        int      `json:"plaintext"`
	References       int      `json:"references"`
	Null             int      `json:"null"`
	DryRun           bool     `json:"dry_run"`
	Position         string   `json:"position"`
	UndecryptableIDs []string `json:"undecryptable_ids"`
}

func reportJSON(r fernetstore.Report) jsonReport {
	ids := r.UndecryptableIDs
	if ids == nil {
		ids = []string{}
	}
	return jsonReport{
		Scanned: r.Scanned, Done: r.Done, Skipped: r.Skipped, Undecryptable: r.Undecryptable,
		AlreadyCurrent: r.AlreadyCurrent, Plaintext: r.Plaintext, References: r.References, Null: r.Null,
		DryRun: r.DryRun, Position: r.Position, UndecryptableIDs: ids,
	}
}

// jsonLeft is the table after a walk: what summarize counted.
type jsonLeft struct {
	Rows          int `json:"rows"`
	Plaintext     int `json:"plaintext"`
	OldKey        int `json:"encrypted_old_key"`
	Undecryptable int `json:"undecryptable"`
	References    int `json:"references"`
	Empty         int `json:"empty"`
}

func (l leftover) json() *jsonLeft {
	return &jsonLeft{Rows: l.rows, Plaintext: l.plaintext, OldKey: l.oldKey, Undecryptable: l.undecryptable,
		References: l.references, Empty: l.empty}
}

// tablePage is how many rows a table buffers before it prints them.
const tablePage = 1000

// table prints aligned columns a page of rows at a time, so list holds one
// page in memory whatever the table's size (text/tabwriter holds every
// row until Flush). A column is as wide as its widest cell so far: a later
// page with a wider cell widens the column from that page on, and no
// earlier line moves. Cells are separated by two spaces; the last column
// is not padded, as tabwriter does it.
type table struct {
	w      io.Writer
	header []string
	widths []int
	rows   [][]string
	err    error
}

func newTable(w io.Writer, header ...string) *table {
	return &table{w: w, header: header, widths: make([]int, len(header))}
}

// add buffers a row (as many cells as the header), printing the page when full.
func (t *table) add(cells ...string) {
	t.rows = append(t.rows, cells)
	if len(t.rows) >= tablePage {
		t.flush()
	}
}

// flush prints the buffered rows, and the header before the first page.
func (t *table) flush() error {
	if t.header != nil {
		t.measure(t.header)
	}
	for _, r := range t.rows {
		t.measure(r)
	}
	var b strings.Builder
	if t.header != nil {
		t.line(&b, t.header)
		t.header = nil
	}
	for _, r := range t.rows {
		t.line(&b, r)
	}
	t.rows = t.rows[:0]
	if t.err == nil && b.Len() > 0 {
		_, t.err = io.WriteString(t.w, b.String())
	}
	return t.err
}

func (t *table) measure(cells []string) {
	for i, c := range cells[:len(cells)-1] {
		t.widths[i] = max(t.widths[i], utf8.RuneCountInString(c))
	}
}

func (t *table) line(b *strings.Builder, cells []string) {
	for i, c := range cells {
		b.WriteString(c)
		if i < len(cells)-1 {
			b.WriteString(strings.Repeat(" ", t.widths[i]-utf8.RuneCountInString(c)+2))
		}
	}
	b.WriteByte('\n')
}
