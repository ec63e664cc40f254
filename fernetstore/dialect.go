package fernetstore

import (
	"database/sql"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Dialect names the SQL flavour of a database.
type Dialect string

// The supported dialects.
const (
	SQLite   Dialect = "sqlite"   // modernc.org/sqlite (fernetstore/sqlite), or mattn/go-sqlite3
	Postgres Dialect = "postgres" // github.com/jackc/pgx (fernetstore/postgres), or lib/pq
	MySQL    Dialect = "mysql"    // github.com/go-sql-driver/mysql (fernetstore/mysql): MySQL and MariaDB
)

// DetectDialect returns the dialect of db from its driver's type, with no
// I/O: by the driver's package path and type name, so that it needs none of
// the drivers linked. It knows modernc.org/sqlite, mattn/go-sqlite3, pgx,
// lib/pq and go-sql-driver/mysql.
func DetectDialect(db *sql.DB) (Dialect, error) {
	d := db.Driver()
	t := reflect.TypeOf(d)
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	name := fmt.Sprintf("%T", d)
	if t != nil {
		name = t.PkgPath() + " " + name
	}
	name = strings.ToLower(name)
	switch {
	case strings.Contains(name, "sqlite"):
		return SQLite, nil
	case strings.Contains(name, "lib/pq") || strings.Contains(name, "pq.") || strings.Contains(name, "pgx") || strings.Contains(name, "postgres"):
		return Postgres, nil
	case strings.Contains(name, "mysql"):
		return MySQL, nil
	}
	return "", fmt.Errorf("cannot tell the SQL dialect of driver %T: set Options.Dialect to %q, %q or %q", d, SQLite, Postgres, MySQL)
}

// identRE is what a configured table or column name may be: letters, digits
// and underscores, not starting with a digit, at most 63 bytes (PostgreSQL's
// limit). Names come from configuration, so they are checked, then quoted.
var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

// quoteIdent checks and quotes a name; a table may be schema-qualified ("app.api_keys").
func (d Dialect) quoteIdent(name string, qualified bool) (string, error) {
	parts := []string{name}
	if qualified {
		parts = strings.Split(name, ".")
		if len(parts) > 2 {
			return "", fmt.Errorf("table name %q has more than one '.'", name)
		}
	}
	for i, p := range parts {
		if !identRE.MatchString(p) {
			return "", fmt.Errorf("name %q is not allowed: use letters, digits and '_' (at most 63, not starting with a digit)", name)
		}
		if d == MySQL {
			parts[i] = "`" + p + "`"
		} else {
			parts[i] = `"` + p + `"`
		}
	}
	return strings.Join(parts, "."), nil
}

// sameValue is the compare-and-swap test that a stored value col still is
// old, byte for byte. A plain = would use the column's collation: with a
// case-insensitive one (utf8mb4_general_ci on an existing MySQL table, a
// NOCASE SQLite column) or a PAD SPACE one (MariaDB's utf8mb4_bin ignores
// trailing spaces), a concurrent write that differs only in case or trailing
// spaces would compare equal and be overwritten. The id equality finds the
// row, so this comparison costs nothing noticeable. PostgreSQL's = on text is
// exact under every deterministic collation (ties are broken bytewise).
func (d Dialect) sameValue(col, old string) string {
	switch d {
	case MySQL:
		// Both sides converted to utf8mb4 first, so a latin1 column still
		// compares with the utf8mb4 parameter by the same bytes.
		return fmt.Sprintf("CAST(CONVERT(%s USING utf8mb4) AS BINARY) = CAST(CONVERT(%s USING utf8mb4) AS BINARY)", col, old)
	case SQLite:
		// Bytes against bytes: a value stored as a BLOB (Python's
		// fernet.encrypt returns bytes, which sqlite3 stores as one) never
		// equals the TEXT parameter, and the column's collation is skipped.
		return fmt.Sprintf("CAST(%s AS BLOB) = CAST(%s AS BLOB)", col, old)
	}
	return col + " = " + old
}

// ph returns the n-th (1-based) placeholder.
func (d Dialect) ph(n int) string {
	if d == Postgres {
		return "$" + strconv.Itoa(n)
	}
	return "?"
}

// timeFormats are the textual time forms found in the wild: modernc's own,
// Python's str(datetime) and isoformat(), SQLAlchemy's, MySQL's.
var timeFormats = []string{
	"2006-01-02 15:04:05.999999999-07:00",
	"2006-01-02T15:04:05.999999999-07:00",
	"2006-01-02 15:04:05.999999999Z07:00",
	time.RFC3339Nano,
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05",
	"2006-01-02T15:04:05",
	"2006-01-02 15:04",
	"2006-01-02",
}

// parseDBTime turns what a driver returns for a time column into a time.
// Times without a zone are UTC (what Python's datetime.utcnow() stores).
func parseDBTime(v any) (time.Time, error) {
	switch t := v.(type) {
	case nil:
		return time.Time{}, nil
	case time.Time:
		return t, nil
	case int64:
		if t == 0 {
			return time.Time{}, nil
		}
		return time.Unix(t, 0).UTC(), nil
	case float64:
		return time.Unix(0, int64(t*1e9)).UTC(), nil
	case []byte:
		return parseTimeText(string(t))
	case string:
		return parseTimeText(t)
	}
	return time.Time{}, fmt.Errorf("unsupported time value of type %T", v)
}

func parseTimeText(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" || strings.HasPrefix(s, "0000-00-00") {
		return time.Time{}, nil
	}
	for _, f := range timeFormats {
		if t, err := time.Parse(f, s); err == nil {
			return t, nil
		}
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(n, 0).UTC(), nil
	}
	return time.Time{}, fmt.Errorf("unrecognised time format (%d bytes)", len(s))
}
