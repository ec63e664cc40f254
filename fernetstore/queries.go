package fernetstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/driver"
	"github.com/keyward/secrets/internal/once"
)

// base is the Store's driver: the connection, the ring and the dialect,
// built once on first use with no I/O; the table's schema, read on first
// use of the table; and the prepared resolve statement.
type base struct {
	db        *sql.DB
	ring      *KeyRing // nil for a schema-only store (see New)
	owned     bool     // the Store opened db (NewFromEnv) and closes it
	d         Dialect
	opts      Options
	plaintext bool // Options.AllowPlaintext
	now       func() time.Time
	sch       once.Value[*schema]

	mu     sync.Mutex // guards closed and the preparing of stmt and writes
	stmt   atomic.Pointer[sql.Stmt]
	closed bool
	// writes are the prepared statements of single-row writes, by query:
	// a few, each parsed once (on SQLite a statement's triggers are
	// compiled with it, which cost a put more than running them).
	writes map[string]*sql.Stmt
}

type queries struct {
	table, id, name, provider, value, expires, created  string
	resolve, insert, insertID, update, updateValue, del string
	listFirst, list, batchFirst, batch, cas, casRowid   string
	listRowidFirst, listRowid                           string // SQLite: List in rowid order (AnyOrder)
	insertReturns                                       bool   // PostgreSQL: RETURNING the database's id
	// The writes' announcing forms (see schema.announce), "" where the
	// write is made as it is.
	insertN, insertIDN, updateN, updateValueN, delN string
}

func def(v, d string) string {
	if v == "" {
		return d
	}
	return v
}

// buildBase checks the options, with no I/O. o.Now is set.
func buildBase(db *sql.DB, ring *KeyRing, o *Options) (*base, error) {
	if db == nil {
		return nil, driver.Errorf(secrets.CodeUnknown, "the store has no database (New needs one)")
	}
	b := &base{db: db, ring: ring, d: o.Dialect, opts: *o, plaintext: o.AllowPlaintext, now: o.Now}
	b.opts.RefColumns = append([]RefColumn(nil), o.RefColumns...)
	if err := b.checkOptions(); err != nil {
		return nil, driver.Errorf(secrets.CodeInvalidRef, "%v", err)
	}
	b.sch.Open = b.introspect
	return b, nil
}

func (b *base) checkOptions() error {
	if b.d == "" {
		d, err := DetectDialect(b.db)
		if err != nil {
			return err
		}
		b.d = d
	}
	switch b.d {
	case SQLite, Postgres, MySQL:
	default:
		return fmt.Errorf("unknown dialect %q (want %q, %q or %q)", b.d, SQLite, Postgres, MySQL)
	}
	o := &b.opts
	switch o.IDType {
	case IDAuto, IDInteger, IDText:
	default:
		return fmt.Errorf("unknown id type %q (want %q or %q, or leave it empty to read it from the table)", o.IDType, IDInteger, IDText)
	}
	if _, err := b.d.quoteIdent(def(o.Table, "api_keys"), true); err != nil {
		return err
	}
	for _, c := range []struct {
		name     string
		optional bool
	}{{o.IDColumn, false}, {o.ValueColumn, false}, {o.NameColumn, true}, {o.ProviderColumn, true}, {o.ExpiresAtColumn, true}, {o.CreatedAtColumn, true}} {
		if c.name == "" || (c.optional && c.name == "-") {
			continue
		}
		if _, err := b.d.quoteIdent(c.name, false); err != nil {
			return err
		}
	}
	seen := map[string]bool{}
	for _, r := range o.RefColumns {
		if _, err := b.d.quoteIdent(r.Column, false); err != nil {
			return fmt.Errorf("ref column: %v", err)
		}
		if !refSchemeRE.MatchString(r.Scheme) {
			return fmt.Errorf("ref column %s: scheme %q is not a scheme name (lower-case letters, digits, '+', '-', '.')", r.Column, r.Scheme)
		}
		if seen[strings.ToLower(r.Column)] {
			return fmt.Errorf("ref column %s is named twice", r.Column)
		}
		seen[strings.ToLower(r.Column)] = true
	}
	return nil
}

// buildQueries builds the SQL text for the columns the schema found.
func buildQueries(d Dialect, sc *schema) {
	q := &sc.q
	expires := "NULL"
	if sc.has.expires {
		expires = q.expires
	}
	refCols := ""
	for _, r := range sc.refs {
		refCols += ", " + r.Column
	}
	// idParam is the id's parameter, converted to the id column's
	// character set where that is not utf8 (latin2, say): else MySQL
	// refuses to compare a letter the set lacks (error 1267). A lossy
	// conversion only widens what the index finds; the exact comparison
	// (or Get's check) then narrows it to the id given.
	idParam := func(n int) string {
		if sc.idConvert != "" {
			return sc.idConvert // MySQL: its placeholder is "?"
		}
		return d.ph(n)
	}
	// idEq matches the id exactly where the column's comparison would
	// not: MySQL's default collations ignore case, accents and trailing
	// spaces, PostgreSQL's citext ignores case, so "ABC" would find, update
	// or delete row "abc". The plain comparison comes first, for the index.
	idEq := func(n int) string {
		eq := q.id + " = " + idParam(n)
		switch {
		case sc.exact && d == MySQL:
			return eq + " AND " + d.sameValue(q.id, d.ph(n+1))
		case sc.exact:
			// COLLATE "C": a nondeterministic collation would survive the
			// cast to text.
			return eq + " AND " + q.id + "::text COLLATE \"C\" = " + d.ph(n) + "::text"
		}
		return eq
	}
	// Resolve, the hot path, checks an inexact comparison's row in Go
	// (Get compares the id it reads back): the exact comparison in SQL cost
	// MySQL about 12 µs a resolve.
	readBack := ""
	if sc.exact {
		readBack = ", " + q.id
	}
	q.resolve = fmt.Sprintf("SELECT %s, %s%s%s FROM %s WHERE %s = %s", q.value, expires, refCols, readBack, q.table, q.id, idParam(1))

	// INSERT: only the columns the table has; the id when the application
	// assigns it (text ids, or an id given to Insert).
	cols, args := []string{q.value}, []string{d.ph(1)}
	add := func(has bool, col string) {
		if has {
			cols = append(cols, col)
			args = append(args, d.ph(len(args)+1))
		}
	}
	add(sc.has.name, q.name)
	add(sc.has.provider, q.provider)
	add(sc.has.expires, q.expires)
	add(sc.has.created, q.created)
	q.insert = fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s)", q.table, strings.Join(cols, ", "), strings.Join(args, ", "))
	add(true, q.id)
	q.insertID = fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s)", q.table, strings.Join(cols, ", "), strings.Join(args, ", "))
	insertBare := q.insert
	if d == Postgres && !sc.text {
		q.insert += " RETURNING " + q.id
		q.insertReturns = true
	}
	q.updateValue = fmt.Sprintf("UPDATE %s SET %s = %s WHERE %s", q.table, q.value, d.ph(1), idEq(2))
	if sc.has.expires {
		q.update = fmt.Sprintf("UPDATE %s SET %s = %s, %s = %s WHERE %s", q.table, q.value, d.ph(1), q.expires, d.ph(2), idEq(3))
	}
	q.del = fmt.Sprintf("DELETE FROM %s WHERE %s", q.table, idEq(1))
	if sc.pgNotify {
		params := func(query string) int { return maxParam(query) + 1 }
		if q.insertReturns {
			q.insertN = sc.announce(insertBare, q.id, params(insertBare))
		}
		q.insertIDN = sc.announce(q.insertID, q.id, params(q.insertID))
		if q.update != "" {
			q.updateN = sc.announce(q.update, q.id, params(q.update))
		}
		q.updateValueN = sc.announce(q.updateValue, q.id, params(q.updateValue))
		q.delN = sc.announce(q.del, q.id, params(q.del))
	}
	sel := func(has bool, col string) string {
		if has {
			return col
		}
		return "NULL"
	}
	// List pages in id order; a page's first query has no lower bound, so
	// that no id (an empty string, a negative integer) is skipped. The
	// provider filter, when given, is the last parameter.
	listCols := fmt.Sprintf("%s, %s, %s, %s, %s, %s%s", q.id, sel(sc.has.name, q.name), sel(sc.has.provider, q.provider), q.value,
		sel(sc.has.expires, q.expires), sel(sc.has.created, q.created), refCols)
	q.listFirst = fmt.Sprintf("SELECT %s FROM %s WHERE 1=1", listCols, q.table)
	q.list = fmt.Sprintf("SELECT %s FROM %s WHERE %s > %s", listCols, q.table, q.id, d.ph(1))
	q.listRowidFirst = fmt.Sprintf("SELECT rowid, %s FROM %s WHERE 1=1", listCols, q.table)
	q.listRowid = fmt.Sprintf("SELECT rowid, %s FROM %s WHERE rowid > %s", listCols, q.table, d.ph(1))
	// Rotation walks the table in physical order: SQLite's rowid (the id
	// itself for an INTEGER PRIMARY KEY), InnoDB's clustered primary key.
	// PostgreSQL's ctid moves on every update, so there the id is the key.
	walk := q.id
	if sc.rowid {
		walk = "rowid"
	}
	q.batchFirst = fmt.Sprintf("SELECT %s, %s, %s%s FROM %s ORDER BY %s LIMIT %s",
		walk, q.id, q.value, refCols, q.table, walk, d.ph(1))
	q.batch = fmt.Sprintf("SELECT %s, %s, %s%s FROM %s WHERE %s > %s ORDER BY %s LIMIT %s",
		walk, q.id, q.value, refCols, q.table, walk, d.ph(1), walk, d.ph(2))
	q.cas = fmt.Sprintf("UPDATE %s SET %s = %s WHERE %s = %s AND %s", q.table, q.value, d.ph(1), q.id, d.ph(2), d.sameValue(q.value, d.ph(3)))
	// SQLite rowid tables: the row is found by the rowid the walk read (one
	// b-tree search, where a text id's index costs a second), and must
	// still have its id and its old value.
	q.casRowid = q.cas + " AND rowid = " + d.ph(4)
}

// walkArg is a walk position as a query argument: rowids and integer ids
// are integers.
func (sc *schema) walkArg(pos string) any {
	if sc.rowid {
		n, _ := rowID(pos)
		return n
	}
	return sc.idArg(pos)
}

const listPage = 1000

// refSchemeRE is what a ref column's scheme may be: a Mux scheme name.
var refSchemeRE = regexp.MustCompile(`^[a-z][a-z0-9+.-]{0,31}$`)

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

// needRing is the error of an operation that needs the key ring on a
// store made without one.
func (b *base) needRing() error {
	if b.ring == nil {
		return driver.Errorf(secrets.CodeInvalidRef, "this needs the key ring, and the store has none: set ENCRYPTION_KEY (New was given a nil *KeyRing, which only creates and checks the table)")
	}
	return nil
}

// storeError is the error of a Store's own operation: a driver-style
// *secrets.Error gets op, backend and ref; a context end is the context
// error; anything else is a database error.
func storeError(ctx context.Context, op, ref string, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return secrets.ContextError(op, Backend, ref, cerr)
	}
	var se *secrets.Error
	if errors.As(err, &se) {
		e := *se
		e.Op, e.Backend, e.Ref = op, Backend, ref
		return &e
	}
	if sqlClosed(err) {
		return errorf(op, ref, secrets.CodeUnavailable, nil, "the store is closed")
	}
	return errorf(op, ref, secrets.CodeUnavailable, err, "database error")
}
