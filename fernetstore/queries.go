package fernetstore

import (
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/driver"
)

// base is the Store's driver: the connection, the ring, the dialect and
// the SQL text, built once on first use, and the prepared resolve statement.
type base struct {
	db        *sql.DB
	ring      *KeyRing
	owned     bool // the Store opened db (NewFromEnv) and closes it
	d         Dialect
	q         queries
	has       struct{ name, provider, expires, created bool }
	plaintext bool // Options.AllowPlaintext
	now       func() time.Time

	mu     sync.Mutex // guards closed and the preparing of stmt
	stmt   atomic.Pointer[sql.Stmt]
	closed bool
}

type queries struct {
	table, id, name, provider, value, expires, created                  string
	resolve, insert, update, updateValue, del, list, batch, cas, schema string
}

func def(v, d string) string {
	if v == "" {
		return d
	}
	return v
}

// buildBase checks the options and builds the SQL text, with no I/O. o.Now
// is set.
func buildBase(db *sql.DB, ring *KeyRing, o *Options) (*base, error) {
	if db == nil || ring == nil {
		return nil, driver.Errorf(secrets.CodeUnknown, "the store has no database or no key ring (New needs both)")
	}
	b, err := queriesFor(db, ring, o)
	if err != nil {
		return nil, driver.Errorf(secrets.CodeInvalidRef, "%v", err)
	}
	b.plaintext, b.now = o.AllowPlaintext, o.Now
	return b, nil
}

func queriesFor(db *sql.DB, ring *KeyRing, o *Options) (*base, error) {
	b := &base{db: db, ring: ring, d: o.Dialect}
	if b.d == "" {
		d, err := DetectDialect(db)
		if err != nil {
			return nil, err
		}
		b.d = d
	}
	switch b.d {
	case SQLite, Postgres, MySQL:
	default:
		return nil, fmt.Errorf("unknown dialect %q (want %q, %q or %q)", b.d, SQLite, Postgres, MySQL)
	}
	q := &b.q
	var err error
	quote := func(dst *string, name string, qualified, optional bool) bool {
		if err != nil {
			return false
		}
		if optional && name == "-" {
			return false
		}
		*dst, err = b.d.quoteIdent(name, qualified)
		return err == nil
	}
	quote(&q.table, def(o.Table, "api_keys"), true, false)
	quote(&q.id, def(o.IDColumn, "id"), false, false)
	quote(&q.value, def(o.ValueColumn, "api_key"), false, false)
	b.has.name = quote(&q.name, def(o.NameColumn, "name"), false, true)
	b.has.provider = quote(&q.provider, def(o.ProviderColumn, "provider"), false, true)
	b.has.expires = quote(&q.expires, def(o.ExpiresAtColumn, "expires_at"), false, true)
	b.has.created = quote(&q.created, def(o.CreatedAtColumn, "created_at"), false, true)
	if err != nil {
		return nil, err
	}
	d := b.d
	expires := "NULL"
	if b.has.expires {
		expires = q.expires
	}
	q.resolve = fmt.Sprintf("SELECT %s, %s FROM %s WHERE %s = %s", q.value, expires, q.table, q.id, d.ph(1))

	// INSERT: only the columns the table has.
	cols, args := []string{q.value}, []string{d.ph(1)}
	add := func(has bool, col string) {
		if has {
			cols = append(cols, col)
			args = append(args, d.ph(len(args)+1))
		}
	}
	add(b.has.name, q.name)
	add(b.has.provider, q.provider)
	add(b.has.expires, q.expires)
	add(b.has.created, q.created)
	q.insert = fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s)", q.table, strings.Join(cols, ", "), strings.Join(args, ", "))
	if d == Postgres {
		q.insert += " RETURNING " + q.id
	}
	q.updateValue = fmt.Sprintf("UPDATE %s SET %s = %s WHERE %s = %s", q.table, q.value, d.ph(1), q.id, d.ph(2))
	if b.has.expires {
		q.update = fmt.Sprintf("UPDATE %s SET %s = %s, %s = %s WHERE %s = %s", q.table, q.value, d.ph(1), q.expires, d.ph(2), q.id, d.ph(3))
	}
	q.del = fmt.Sprintf("DELETE FROM %s WHERE %s = %s", q.table, q.id, d.ph(1))
	sel := func(has bool, col string) string {
		if has {
			return col
		}
		return "NULL"
	}
	q.list = fmt.Sprintf("SELECT %s, %s, %s, %s, %s, %s FROM %s WHERE %s > %s ORDER BY %s LIMIT %d",
		q.id, sel(b.has.name, q.name), sel(b.has.provider, q.provider), q.value,
		sel(b.has.expires, q.expires), sel(b.has.created, q.created), q.table, q.id, d.ph(1), q.id, listPage)
	// Rotation walks the table in physical order: SQLite's rowid (the id
	// itself for an INTEGER PRIMARY KEY), InnoDB's clustered primary key.
	// PostgreSQL's ctid moves on every update, so there the id is the key.
	walk := q.id
	if d == SQLite {
		walk = "rowid"
	}
	q.batch = fmt.Sprintf("SELECT %s, %s, %s FROM %s WHERE %s > %s ORDER BY %s LIMIT %s",
		walk, q.id, q.value, q.table, walk, d.ph(1), walk, d.ph(2))
	q.cas = fmt.Sprintf("UPDATE %s SET %s = %s WHERE %s = %s AND %s", q.table, q.value, d.ph(1), q.id, d.ph(2), d.sameValue(q.value, d.ph(3)))
	switch d {
	case SQLite:
		q.schema = fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (
	%s INTEGER PRIMARY KEY AUTOINCREMENT,
	%s TEXT NOT NULL DEFAULT '',
	%s TEXT NOT NULL DEFAULT '',
	%s TEXT NOT NULL,
	%s TIMESTAMP NULL,
	%s TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)`,
			q.table, q.id, q.name, q.provider, q.value, q.expires, q.created)
	case Postgres:
		q.schema = fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (
	%s BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
	%s TEXT NOT NULL DEFAULT '',
	%s TEXT NOT NULL DEFAULT '',
	%s TEXT NOT NULL,
	%s TIMESTAMPTZ NULL,
	%s TIMESTAMPTZ NOT NULL DEFAULT now())`,
			q.table, q.id, q.name, q.provider, q.value, q.expires, q.created)
	case MySQL:
		// utf8mb4_bin: values sort and compare case-sensitively (the
		// compare-and-swap compares bytes whatever the collation, see
		// sameValue); MEDIUMTEXT: TEXT stops at 64 KiB.
		q.schema = fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s (\n"+
			"\t%s BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,\n"+
			"\t%s VARCHAR(255) NOT NULL DEFAULT '',\n"+
			"\t%s VARCHAR(255) NOT NULL DEFAULT '',\n"+
			"\t%s MEDIUMTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,\n"+
			"\t%s DATETIME(6) NULL,\n"+
			"\t%s DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)\n"+
			") DEFAULT CHARSET=utf8mb4",
			q.table, q.id, q.name, q.provider, q.value, q.expires, q.created)
	}
	return b, nil
}

const listPage = 1000

// timeArg is how a time is written: naive UTC text on SQLite (what Python's
// sqlite3 and SQLAlchemy read back), a UTC time.Time elsewhere.
func (b *base) timeArg(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	if b.d == SQLite {
		return t.Format("2006-01-02 15:04:05.000000")
	}
	return t
}
