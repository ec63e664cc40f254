package audittable

import (
	"context"
	"database/sql"
	"errors"
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

// columns returns the table's columns among Columns, read once. The
// table is read first, and created (Options.CreateTable) only if that
// read finds it missing: CREATE TABLE IF NOT EXISTS is not harmless, as
// PostgreSQL and MySQL check the CREATE privilege before they look for the
// table, and the service's database user may only INSERT into a table a
// migration made. A failure is tried again by the next batch, so a table
// created meanwhile is found.
func (a *Auditor) columns(ctx context.Context) ([]string, error) {
	if a.cols != nil {
		return a.cols, nil
	}
	t, err := readTable(ctx, a.db, a.d, a.table, a.name)
	if t.missing && a.o.CreateTable {
		if err := a.CreateTable(ctx); err != nil {
			return nil, err
		}
		t, err = readTable(ctx, a.db, a.d, a.table, a.name)
	}
	if err != nil {
		return nil, err
	}
	a.intCols = t.ints
	if a.d == fernetstore.MySQL {
		a.bmpOnly = narrowCharset(ctx, a.db, a.name)
	}
	a.cols = t.cols
	return t.cols, nil
}

// readColumns reads which of Columns the table has.
func readColumns(ctx context.Context, db *sql.DB, d fernetstore.Dialect, quoted, name string) ([]string, error) {
	t, err := readTable(ctx, db, d, quoted, name)
	return t.cols, err
}

// tableInfo is what readTable learns of a table.
type tableInfo struct {
	cols    []string        // which of Columns it has
	ints    map[string]bool // those of success and cache_hit of an integer type
	missing bool            // the read failed with the database up: no such table, or no right to read it
}

// readTable reads which of Columns the table has, and their types, from
// an empty result: the same query on every dialect, and no catalog.
func readTable(ctx context.Context, db *sql.DB, d fernetstore.Dialect, quoted, name string) (tableInfo, error) {
	rows, err := db.QueryContext(ctx, "SELECT * FROM "+quoted+" WHERE 1 = 0")
	if err != nil {
		err = missingTable(ctx, db, name, err)
		var se *secrets.Error
		missing := errors.As(err, &se) && se.Code == secrets.CodeInvalidRef
		return tableInfo{missing: missing}, err
	}
	defer rows.Close()
	names, err := rows.Columns()
	if err != nil {
		return tableInfo{}, dbError(ctx, err)
	}
	types, _ := rows.ColumnTypes() // without them, flags are written as bools
	var t tableInfo
	for i, n := range names {
		n = strings.ToLower(n)
		names[i] = n
		if (n == "success" || n == "cache_hit") && i < len(types) && integerType(types[i].DatabaseTypeName()) {
			if t.ints == nil {
				t.ints = map[string]bool{}
			}
			t.ints[n] = true
		}
	}
	for _, c := range Columns {
		if slices.Contains(names, c) {
			t.cols = append(t.cols, c)
		}
	}
	if len(t.cols) == 0 {
		return tableInfo{}, invalid(fmt.Sprintf("table %s has none of the audit columns (%s)", name, strings.Join(Columns, ", ")))
	}
	return t, rows.Close()
}

// integerType tells a column type that holds a flag as a number
// (SMALLINT, INTEGER, INT2, TINYINT, NUMERIC, ...) from BOOLEAN.
func integerType(name string) bool {
	name = strings.ToUpper(name)
	return strings.Contains(name, "INT") || strings.Contains(name, "NUMERIC") || strings.Contains(name, "DECIMAL")
}

// narrowCharset tells a MySQL table with a text column of 3-byte utf8
// (utf8mb3, "utf8" before MySQL 8), which refuses characters above
// U+FFFF in strict mode. If the catalog cannot be read, the answer is no:
// a refused row then fails alone.
func narrowCharset(ctx context.Context, db *sql.DB, table string) bool {
	var schema any
	if s, t, ok := strings.Cut(table, "."); ok {
		schema, table = s, t
	}
	var n int
	err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = COALESCE(?, DATABASE())"+
		" AND TABLE_NAME = ? AND CHARACTER_SET_NAME IN ('utf8', 'utf8mb3')", schema, table).Scan(&n)
	return err == nil && n > 0
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
