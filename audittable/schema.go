package audittable

import (
	"context"
	"database/sql"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/fernetstore"
)

// Columns are the audit table's columns, in the order CreateTable makes
// them: the Python service's five, then keyward's. The writer writes those
// of them a table has.
var Columns = []string{"id", "api_key_id", "used_at", "success", "error_message",
	"ref", "backend", "outcome", "cache_hit", "requester"}

// identRE is what a table name (or each part of schema.table) may be, as
// fernetstore takes one: names come from configuration, so they are
// checked, then quoted.
var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

func quoteTable(d fernetstore.Dialect, name string) (string, error) {
	parts := strings.Split(name, ".")
	if len(parts) > 2 {
		return "", invalid(fmt.Sprintf("table name %q has more than one '.'", name))
	}
	for i, p := range parts {
		if !identRE.MatchString(p) {
			return "", invalid("the table name must be letters, digits and '_' (at most 63, not starting with a digit), optionally schema.table")
		}
		parts[i] = quoteName(d, p)
	}
	return strings.Join(parts, "."), nil
}

// quoteName quotes a name already checked (a table part or one of Columns).
func quoteName(d fernetstore.Dialect, name string) string {
	if d == fernetstore.MySQL {
		return "`" + name + "`"
	}
	return `"` + name + `"`
}

func placeholder(d fernetstore.Dialect, n int) string {
	if d == fernetstore.Postgres {
		return "$" + strconv.Itoa(n)
	}
	return "?"
}

// timeArg is how used_at is written: naive UTC text on SQLite, as Python's
// sqlite3 and SQLAlchemy write a DateTime (fixed width, so the text sorts
// as the time does), a UTC time.Time elsewhere (a naive UTC DATETIME or
// TIMESTAMP, what datetime.utcnow() stores).
func timeArg(d fernetstore.Dialect, t time.Time) any {
	t = t.UTC()
	if d == fernetstore.SQLite {
		return t.Format("2006-01-02 15:04:05.000000")
	}
	return t
}

// ddl is the table as SQLAlchemy would create a model of these columns
// (String(36) primary key, String(36) nullable, DateTime with an index,
// Boolean, Text), per dialect. MySQL's used_at is DATETIME(6), not
// SQLAlchemy's bare DATETIME, so that rows within one second still list
// newest first. No foreign key: the key table's name is the host's; the
// writer copes with one the host adds.
var ddl = map[fernetstore.Dialect]struct{ time, boolean, suffix string }{
	fernetstore.SQLite:   {"DATETIME", "BOOLEAN", ""},
	fernetstore.Postgres: {"TIMESTAMP WITHOUT TIME ZONE", "BOOLEAN", ""},
	fernetstore.MySQL:    {"DATETIME(6)", "BOOL", " DEFAULT CHARSET=utf8mb4"},
}

// CreateTable creates the table, with every column of Columns and an
// index on used_at, if it does not exist. A table that exists is left as
// it is, whatever its columns.
func (a *Auditor) CreateTable(ctx context.Context) error {
	a.createMu.Lock()
	defer a.createMu.Unlock()
	for _, stmt := range createStatements(a.d, a.name) {
		if _, err := a.db.ExecContext(ctx, stmt); err != nil {
			return dbError(ctx, err)
		}
	}
	return nil
}

// createStatements are the DDL of CreateTable for table (already checked).
func createStatements(d fernetstore.Dialect, table string) []string {
	t := ddl[d]
	qt, _ := quoteTable(d, table)
	schema, bare, qualified := strings.Cut(table, ".")
	if !qualified {
		bare, schema = schema, ""
	}
	index := "ix_" + bare
	if len(index) > 63-len("_used_at") {
		index = index[:63-len("_used_at")]
	}
	index += "_used_at"
	q := func(n string) string { return quoteName(d, n) }
	cols := fmt.Sprintf("\n\t%s VARCHAR(36) NOT NULL,\n\t%s VARCHAR(36),\n\t%s %s,\n\t%s %s,\n\t%s TEXT,"+
		"\n\t%s TEXT,\n\t%s VARCHAR(64),\n\t%s VARCHAR(32),\n\t%s %s,\n\t%s VARCHAR(255),\n\tPRIMARY KEY (%s)",
		q("id"), q("api_key_id"), q("used_at"), t.time, q("success"), t.boolean, q("error_message"),
		q("ref"), q("backend"), q("outcome"), q("cache_hit"), t.boolean, q("requester"), q("id"))
	switch d {
	case fernetstore.MySQL:
		// CREATE INDEX has no IF NOT EXISTS on MySQL: the index goes inline.
		return []string{fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s (%s,\n\tINDEX %s (%s)\n)%s", qt, cols, q(index), q("used_at"), t.suffix)}
	case fernetstore.SQLite:
		// SQLite qualifies the index, not its table.
		qi, on := q(index), q(bare)
		if schema != "" {
			qi = q(schema) + "." + qi
		}
		return []string{fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s (%s\n)", qt, cols),
			fmt.Sprintf("CREATE INDEX IF NOT EXISTS %s ON %s (%s)", qi, on, q("used_at"))}
	}
	return []string{fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s (%s\n)%s", qt, cols, t.suffix),
		fmt.Sprintf("CREATE INDEX IF NOT EXISTS %s ON %s (%s)", q(index), qt, q("used_at"))}
}

// columns returns the table's columns among Columns, read once (creating
// the table first with Options.CreateTable); a failure is tried again by
// the next batch, so a table created meanwhile is found.
func (a *Auditor) columns(ctx context.Context) ([]string, error) {
	if a.cols != nil {
		return a.cols, nil
	}
	if a.o.CreateTable {
		if err := a.CreateTable(ctx); err != nil {
			return nil, err
		}
	}
	cols, err := readColumns(ctx, a.db, a.d, a.table, a.name)
	if err != nil {
		return nil, err
	}
	a.cols = cols
	return cols, nil
}

// readColumns reads which of Columns the table has, from an empty result's
// column names: the same query on every dialect, and no catalog.
func readColumns(ctx context.Context, db *sql.DB, d fernetstore.Dialect, quoted, name string) ([]string, error) {
	rows, err := db.QueryContext(ctx, "SELECT * FROM "+quoted+" WHERE 1 = 0")
	if err != nil {
		return nil, missingTable(ctx, db, name, err)
	}
	defer rows.Close()
	names, err := rows.Columns()
	if err != nil {
		return nil, dbError(ctx, err)
	}
	for i, n := range names {
		names[i] = strings.ToLower(n)
	}
	var cols []string
	for _, c := range Columns {
		if slices.Contains(names, c) {
			cols = append(cols, c)
		}
	}
	if len(cols) == 0 {
		return nil, invalid(fmt.Sprintf("table %s has none of the audit columns (%s)", name, strings.Join(Columns, ", ")))
	}
	return cols, rows.Close()
}

// missingTable tells a table that is not there (the database answers a
// ping) from a database that is down, without the drivers' error types.
func missingTable(ctx context.Context, db *sql.DB, name string, err error) error {
	if ctx.Err() != nil || db.PingContext(ctx) != nil {
		return dbError(ctx, err)
	}
	return &secrets.Error{Op: "audit", Backend: "audittable", Code: secrets.CodeInvalidRef,
		Reason: fmt.Sprintf("table %s does not exist or cannot be read: create it (audit = db creates it; or Auditor.CreateTable)", name), Err: err}
}

// parseTime reads used_at as a driver returns it: a time.Time, or text in
// the forms SQLite holds (this package's, SQLAlchemy's, modernc's). Times
// without a zone are UTC.
func parseTime(v any) (time.Time, error) {
	switch t := v.(type) {
	case nil:
		return time.Time{}, nil
	case time.Time:
		return t.UTC(), nil
	case []byte:
		return parseTimeText(string(t))
	case string:
		return parseTimeText(t)
	case int64:
		return time.Unix(t, 0).UTC(), nil
	}
	return time.Time{}, fmt.Errorf("unsupported time value of type %T", v)
}

var timeFormats = []string{
	"2006-01-02 15:04:05.999999999-07:00",
	"2006-01-02T15:04:05.999999999-07:00",
	time.RFC3339Nano,
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05",
	"2006-01-02",
}

func parseTimeText(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	for _, f := range timeFormats {
		if t, err := time.Parse(f, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("unrecognised time format (%d bytes)", len(s))
}
