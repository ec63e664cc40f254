package fernetstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/driver"
)

// Backend is the name this package reports in errors and audit events.
const Backend = "fernet"

// Options configures a Store. A nil *Options means the defaults. Names come
// from configuration; they are checked (letters, digits, '_') and quoted.
type Options struct {
	// Table is the table name, optionally schema-qualified; default "api_keys".
	Table string
	// Column names; the defaults are the default schema's: id, name,
	// provider, api_key, expires_at, created_at. The table is read on first
	// use: the id and value columns, and every column named here, must
	// exist; name, provider, expires_at and created_at left at their
	// default names are done without when the table lacks them (as the
	// Python service's bots table lacks expires_at), and "-" says so
	// explicitly.
	IDColumn, NameColumn, ProviderColumn, ValueColumn, ExpiresAtColumn, CreatedAtColumn string
	// IDType is what the id column holds: integers the database assigns, or
	// text (UUIDs) the application assigns. IDAuto reads it from the table;
	// for CreateSchema, IDText makes a VARCHAR(36) id column.
	IDType IDType
	// RefColumns are columns that name where a row's key lives when its
	// value column is NULL or empty, tried in order: the first that holds a
	// name wins, and the row resolves as that column's Scheme:name through
	// the Stack the store is served in (the Python service's key_env_var
	// and secret_name). Such rows are never plaintext: Migrate and Rotate
	// count them and leave them alone.
	RefColumns []RefColumn
	// Dialect of the database; detected from the driver when empty.
	Dialect Dialect
	// AllowPlaintext is migration mode: legacy plaintext rows resolve, and
	// each such Secret's Source says Plaintext, which the audit decorator
	// reports. Without it a plaintext row is an error telling the operator
	// to run `keyward migrate`.
	AllowPlaintext bool
	// Now returns the current time, for expiry, created_at and List; nil
	// means time.Now.
	Now func() time.Time
	// PollInterval is how often Watch polls the change log on MariaDB and
	// SQLite; zero means DefaultPollInterval. PostgreSQL needs no polling.
	PollInterval time.Duration
}

// Store is a secrets.KeyResolver over a table of Fernet-encrypted values in
// any database/sql database. The ref is the row id, optionally with a
// "#field" to pick a key of a JSON value. Resolve, ResolveMany, Ping and
// Close come from the driver layer (driver.Resolver); Put, Update, Delete,
// List, Migrate, Rotate, CreateSchema and DB are the Store's own. Store is
// safe for concurrent use.
type Store struct {
	*driver.Resolver
	opts Options

	wmu     sync.Mutex
	wclosed bool                 // Close ran: Watch returns at once
	wstops  []context.CancelFunc // of the Watch calls running
	wwarned time.Time            // the last watch failure logged
	wtold   bool                 // why the table cannot be watched was logged
}

// Close ends the store's watches and closes its driver (and the database
// the store opened).
func (s *Store) Close() error {
	s.stopWatches()
	return s.Resolver.Close()
}

var (
	_ secrets.KeyResolver   = (*Store)(nil)
	_ secrets.BatchResolver = (*Store)(nil)
	_ secrets.Pinger        = (*Store)(nil)
	_ io.Closer             = (*Store)(nil)
)

// New returns a Store over db using ring. It does no I/O: the table is
// read and statements are prepared on first use, and a bad option is
// reported by the first call. A nil ring makes a store that only creates
// and checks the table (CreateSchema, Describe): what needs a key fails,
// saying to set ENCRYPTION_KEY. Close leaves db open.
func New(db *sql.DB, ring *KeyRing, opts *Options) *Store {
	return newStore(opts, func(context.Context) (*sql.DB, *KeyRing, bool, error) { return db, ring, false, nil })
}

// newStore returns a Store whose driver is built on first use over what
// connect returns; owned means the Store closes the database.
func newStore(opts *Options, connect func(context.Context) (db *sql.DB, ring *KeyRing, owned bool, err error)) *Store {
	s := &Store{}
	if opts != nil {
		s.opts = *opts
	}
	o := s.opts
	if o.Now == nil {
		o.Now = time.Now
	}
	s.Resolver = driver.Open(Backend, func(ctx context.Context) (driver.Driver, error) {
		db, ring, owned, err := connect(ctx)
		if err != nil {
			return nil, err
		}
		b, err := buildBase(db, ring, &o)
		if err != nil {
			if owned {
				db.Close()
			}
			return nil, err
		}
		b.owned = owned
		return b, nil
	}, &driver.Options{Now: o.Now, Check: canonicalRef})
	return s
}

// canonicalRef refuses a ref that names its row other than as RowRef does
// ("%31" for row 1): a cache keys refs as written, so a change announced
// for row 1 would never reach an entry cached as db:%31, and one row would
// have two audit names.
func canonicalRef(r driver.Ref) error {
	base := r.Raw
	if i := strings.IndexAny(base, "#?"); i >= 0 {
		base = base[:i]
	}
	if want := RowRef(r.Name); base != want {
		return driver.Errorf(secrets.CodeInvalidRef, "write the row id as %s (or, for a row whose id is %s itself, as %s): a ref names a row in one way only, with '%%', '#' and '?' %%-escaped and nothing else", want, base, RowRef(base))
	}
	return nil
}

// table returns the Store's driver, built on first use, for the Store's
// own operations.
func (s *Store) table(ctx context.Context, op string) (*base, error) {
	d, err := s.Driver(ctx, op)
	if err != nil {
		return nil, err
	}
	return d.(*base), nil
}

func errorf(op, ref string, code secrets.Code, cause error, format string, args ...any) error {
	return &secrets.Error{Op: op, Backend: Backend, Ref: ref, Code: code, Reason: fmt.Sprintf(format, args...), Err: cause}
}

// dbError is a database failure, for the driver: ErrUnavailable, with the
// driver's error kept for errors.As. Driver errors name tables and columns,
// not values (and a database OpenDB opened has its connection errors
// rewritten). The core makes it the context error if the caller's ctx ended.
// An error of the store's own connector (a SQLite file that is not there,
// say) keeps its code and reason: it is a configuration problem, not a
// server down.
func dbError(err error) error {
	if sqlClosed(err) {
		return driver.Errorf(secrets.CodeUnavailable, "the store is closed")
	}
	if se := connectorError(err); se != nil {
		return driver.Wrap(se.Code, se.Err, "%s", se.Reason)
	}
	return driver.Wrap(secrets.CodeUnavailable, err, "database error")
}

// sqlClosed reports whether err is database/sql's answer to a call on a
// statement or database that Close closed under it: a call racing the
// store's Close, not an outage. database/sql exports neither error.
func sqlClosed(err error) bool {
	for e := err; e != nil; e = errors.Unwrap(e) {
		switch e.Error() {
		case "sql: database is closed", "sql: statement is closed":
			return true
		}
	}
	return false
}

// connectorError returns the *secrets.Error the store's connector returned
// through database/sql, or nil.
func connectorError(err error) *secrets.Error {
	var se *secrets.Error
	if errors.As(err, &se) && se.Op == "open database" {
		return se
	}
	return nil
}

// opError is dbError for the Store's own operations, which the core does not
// see, under the same context rule.
func opError(ctx context.Context, op, ref string, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return secrets.ContextError(op, Backend, ref, cerr)
	}
	if sqlClosed(err) {
		return errorf(op, ref, secrets.CodeUnavailable, nil, "the store is closed")
	}
	if se := connectorError(err); se != nil {
		return errorf(op, ref, se.Code, se.Err, "%s", se.Reason)
	}
	var se *secrets.Error
	if errors.As(err, &se) && se.Op == "" && se.Backend == "" {
		// The store's own (driver.Errorf: "the store is closed").
		return errorf(op, ref, se.Code, se.Err, "%s", se.Reason)
	}
	return errorf(op, ref, secrets.CodeUnavailable, err, "database error")
}

// CreateSchema creates the table if it does not exist, with keyward's
// default schema (integer ids, or VARCHAR(36) ids for IDType IDText, and a
// nullable column per RefColumns), then reads it as every other call does:
// an existing table is left as it is and checked, and what it lacks for
// the options is an ErrInvalidRef that names it. It is never called
// implicitly. It needs no key ring.
func (s *Store) CreateSchema(ctx context.Context) error {
	_, err := s.Init(ctx)
	return err
}

// Init is CreateSchema, returning the description of the table
// (TableInfo.Created says whether it was made).
func (s *Store) Init(ctx context.Context) (TableInfo, error) {
	const op = "create schema"
	b, err := s.table(ctx, op)
	if err != nil {
		return TableInfo{}, err
	}
	created, err := b.createTable(ctx)
	if err != nil {
		return TableInfo{}, storeError(ctx, op, "", err)
	}
	sc, err := b.schemaOf(ctx)
	if err != nil && ctx.Err() == nil {
		// A schema read another caller began before the table existed (a
		// watch starting, a resolve) was shared and failed; one begun now
		// sees the table.
		sc, err = b.schemaOf(ctx)
	}
	if err != nil {
		return TableInfo{}, storeError(ctx, op, "", err)
	}
	info := sc.info
	info.Created = created
	return info, nil
}

// Describe reads the table (on first use) and says what the store found:
// the id type and the columns it uses. A missing table or column, or one
// of a type the store cannot use, is an ErrInvalidRef naming it. It needs
// no key ring.
func (s *Store) Describe(ctx context.Context) (TableInfo, error) {
	const op = "describe"
	b, err := s.table(ctx, op)
	if err != nil {
		return TableInfo{}, err
	}
	sc, err := b.schemaOf(ctx)
	if err != nil {
		return TableInfo{}, storeError(ctx, op, "", err)
	}
	return sc.info, nil
}

// rowID reads an integer row id: a positive integer in its one decimal
// form (no sign, no leading zero), so that db:7 and db:007 are not two refs
// (two cache entries, two audit names) of one row.
func rowID(name string) (int64, bool) {
	id, err := strconv.ParseInt(name, 10, 64)
	return id, err == nil && id > 0 && name[0] != '+' && name[0] != '0'
}

// Get returns the value in row ref (its id; the core picks a #field).
// Version names the key that decrypted it ("primary", "previous-1", ...) or
// is "plaintext"; ExpiresAt comes from the expires_at column. A row whose
// value is NULL or empty answers with the first of its ref columns that
// names a key, for the core to follow.
func (b *base) Get(ctx context.Context, ref driver.Ref) (driver.Value, error) {
	sc, err := b.schemaOf(ctx)
	if err != nil {
		return driver.Value{}, err
	}
	id, err := sc.parseID(ref.Name)
	if err != nil {
		return driver.Value{}, err
	}
	st, err := b.resolveStmt(ctx, sc)
	if err != nil {
		return driver.Value{}, err
	}
	var value sql.NullString
	var expRaw any
	dest := []any{&value, &expRaw}
	refs := make([]sql.NullString, len(sc.refs))
	for i := range refs {
		dest = append(dest, &refs[i])
	}
	var stored string
	if sc.exact {
		dest = append(dest, scanID{&stored})
	}
	err = st.QueryRowContext(ctx, sc.idArg(id)).Scan(dest...)
	if err != nil && planChanged(err) {
		// A column's type changed under the running store (ALTER TABLE):
		// PostgreSQL refuses the prepared statement until it is prepared
		// again.
		if st, err = b.reprepare(ctx, sc, st); err == nil {
			err = st.QueryRowContext(ctx, sc.idArg(id)).Scan(dest...)
		}
	}
	if err == nil && sc.exact && !sameID(sc, stored, id) {
		// The column's comparison matched another id ("abc" for "ABC").
		err = sql.ErrNoRows
	}
	if err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return driver.Value{}, driver.Errorf(secrets.CodeNotFound, "no row with that id")
		}
		return driver.Value{}, dbError(err)
	}
	exp, err := parseDBTime(expRaw)
	if err != nil {
		return driver.Value{}, driver.Errorf(secrets.CodeUnknown, "cannot read the expiry column: %v", err)
	}
	if value.String == "" {
		for i, r := range refs {
			if r.String != "" {
				if looksLikeKey(sc.refs[i].Scheme, r.String) {
					return driver.Value{}, pastedKey(b.opts.RefColumns[i].Column)
				}
				return refValue(sc.refs[i].Scheme, r.String, exp)
			}
		}
		return driver.Value{}, driver.Errorf(secrets.CodeNotFound, "%s", b.emptyReason(sc))
	}
	v, err := b.reveal(value.String)
	v.ExpiresAt = exp
	return v, err
}

// sameID compares the id a row query read back with the one asked for:
// byte for byte, but for a CHAR(n) id's trailing spaces, which are not part
// of it.
func sameID(sc *schema, stored, id string) bool {
	if sc.padded {
		return strings.TrimRight(stored, " ") == strings.TrimRight(id, " ")
	}
	return stored == id
}

// emptyReason says that a row holds no key, naming the columns looked at.
func (b *base) emptyReason(sc *schema) string {
	cols := sc.info.Columns["value"]
	for _, r := range b.opts.RefColumns {
		cols += ", " + r.Column
	}
	if len(sc.refs) == 0 {
		return fmt.Sprintf("the row holds no key: its %s is NULL or empty (store one with keyward update)", cols)
	}
	return fmt.Sprintf("the row holds no key: %s are all NULL or empty (store one with keyward update, or name the env var or secret in a ref column)", cols)
}

// resolveStmt prepares Get's statement once. Under the lock, so that a Get
// racing Close never prepares a statement after Close (nothing would ever
// close it).
// planChanged reports PostgreSQL's "cached plan must not change result
// type" (SQLSTATE 0A000), read from the text: fernetstore links no driver.
func planChanged(err error) bool { return strings.Contains(err.Error(), "(SQLSTATE 0A000)") }

// reprepare drops the prepared resolve statement old (unless another caller
// has replaced it already) and prepares it again.
func (b *base) reprepare(ctx context.Context, sc *schema, old *sql.Stmt) (*sql.Stmt, error) {
	if b.stmt.CompareAndSwap(old, nil) {
		old.Close()
	}
	return b.resolveStmt(ctx, sc)
}

func (b *base) resolveStmt(ctx context.Context, sc *schema) (*sql.Stmt, error) {
	if st := b.stmt.Load(); st != nil {
		return st, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if st := b.stmt.Load(); st != nil {
		return st, nil
	}
	if b.closed {
		return nil, driver.Errorf(secrets.CodeUnavailable, "the store is closed")
	}
	st, err := b.db.PrepareContext(ctx, sc.q.resolve)
	if err != nil {
		return nil, dbError(err)
	}
	b.stmt.Store(st)
	return st, nil
}

// reveal turns a stored value into its plaintext by structure: a token is
// decrypted, a malformed token is undecryptable, plaintext is returned only
// in migration mode.
func (b *base) reveal(stored string) (driver.Value, error) {
	if err := b.needRing(); err != nil {
		return driver.Value{}, err
	}
	switch Classify(stored) {
	case KindToken:
		msg, i, err := b.ring.Decrypt(stored)
		if err != nil {
			return driver.Value{}, err
		}
		return driver.Value{Data: string(msg), Version: KeyName(i)}, nil
	case KindMalformedToken:
		return driver.Value{}, undecryptable("", malformedReason)
	}
	if !b.plaintext {
		return driver.Value{}, driver.Errorf(secrets.CodeUndecryptable,
			"the row holds legacy plaintext, which this store refuses: run `keyward migrate` to encrypt it, or open the store in migration mode (Options.AllowPlaintext, ?plaintext=allow) until then")
	}
	return driver.Value{Data: stored, Version: "plaintext", Plaintext: true}, nil
}

// Ping checks that the database answers.
func (b *base) Ping(ctx context.Context) error {
	if err := b.db.PingContext(ctx); err != nil {
		return dbError(err)
	}
	return nil
}

// Close releases the prepared statement and closes the database if the
// Store opened it itself (NewFromEnv); a db passed to New is left open.
func (b *base) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	var err error
	if st := b.stmt.Swap(nil); st != nil {
		err = st.Close()
	}
	for _, st := range b.writes {
		st.Close()
	}
	b.writes = nil
	if b.owned {
		if cerr := b.db.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return dbError(err)
	}
	return nil
}

// Row is the metadata Insert writes with a value.
type Row struct {
	// ID is the new row's id. Empty: a new UUID on a text-id table, the
	// database's next id on an integer one.
	ID string
	// Name and Provider fill the name and provider columns, when the table
	// has them.
	Name, Provider string
	// ExpiresAt is when the value stops being valid; zero means never.
	ExpiresAt time.Time
}

// Put encrypts value under the primary key, inserts a row and returns its
// id. A zero expiresAt means the value does not expire.
func (s *Store) Put(ctx context.Context, name, provider, value string, expiresAt time.Time) (string, error) {
	return s.Insert(ctx, Row{Name: name, Provider: provider, ExpiresAt: expiresAt}, value)
}

// Insert encrypts value under the primary key and inserts it as a new row,
// returning its id: row.ID, else a new UUID (text ids) or the database's
// (integer ids).
func (s *Store) Insert(ctx context.Context, row Row, value string) (string, error) {
	const op = "put"
	b, sc, err := s.schema(ctx, op)
	if err != nil {
		return "", err
	}
	if err := b.needRing(); err != nil {
		return "", storeError(ctx, op, "", err)
	}
	if !row.ExpiresAt.IsZero() && !sc.has.expires {
		return "", errorf(op, "", secrets.CodeInvalidRef, nil, "the table has no expiry column")
	}
	if value == "" {
		return "", errorf(op, "", secrets.CodeInvalidRef, nil, emptyValue)
	}
	id := row.ID
	if id != "" {
		if _, err := sc.parseID(id); err != nil {
			return "", storeError(ctx, op, id, err)
		}
	} else if !sc.text && sc.noAssign {
		return "", errorf(op, "", secrets.CodeInvalidRef, nil,
			"the id column %s is not the table's INTEGER PRIMARY KEY, so SQLite assigns a new row no id: give the row its id (Row.ID, keyward put --id), or declare the column INTEGER PRIMARY KEY", sc.info.Columns["id"])
	} else if sc.text {
		id = uuid.NewString()
		if sc.fits(id) != nil {
			return "", errorf(op, "", secrets.CodeInvalidRef, nil,
				"the id column %s holds at most %d characters, fewer than the %d of the UUID a new row gets: give the row its id (Row.ID, keyward put --id)", sc.info.Columns["id"], sc.idLen, len(id))
		}
	}
	tok, err := b.ring.Encrypt([]byte(value))
	if err != nil {
		return "", errorf(op, "", secrets.CodeUnknown, err, "encrypt")
	}
	args := []any{tok}
	if sc.has.name {
		args = append(args, row.Name)
	}
	if sc.has.provider {
		args = append(args, row.Provider)
	}
	if sc.has.expires {
		args = append(args, b.timeArg(row.ExpiresAt))
	}
	if sc.has.created {
		args = append(args, b.timeArg(b.now()))
	}
	switch {
	case id != "":
		_, _, err = b.execAnnounced(ctx, sc, sc.q.insertID, sc.q.insertIDN, append(args, sc.idArg(id))...)
	case sc.q.insertN != "":
		var n int64
		n, id, err = b.execAnnounced(ctx, sc, "", sc.q.insertN, args...)
		if err == nil && n != 1 {
			err = fmt.Errorf("the insert made %d rows", n)
		}
	case sc.q.insertReturns:
		var n int64
		err = b.db.QueryRowContext(ctx, sc.q.insert, args...).Scan(&n)
		id = strconv.FormatInt(n, 10)
	default:
		var res sql.Result
		var st *sql.Stmt
		if st, err = b.writeStmt(ctx, sc.q.insert); err == nil {
			res, err = st.ExecContext(ctx, args...)
		}
		if err == nil {
			var n int64
			n, err = res.LastInsertId()
			id = strconv.FormatInt(n, 10)
		}
	}
	if err != nil {
		return "", opError(ctx, op, row.ID, err)
	}
	return id, nil
}

// schema returns the Store's driver and its table's schema, for the
// Store's own operations.
func (s *Store) schema(ctx context.Context, op string) (*base, *schema, error) {
	b, err := s.table(ctx, op)
	if err != nil {
		return nil, nil, err
	}
	sc, err := b.schemaOf(ctx)
	if err != nil {
		return nil, nil, storeError(ctx, op, "", err)
	}
	return b, sc, nil
}

// row reads the ref of Update and Delete, a row id without #field, and
// returns the Store's driver and schema.
func (s *Store) row(ctx context.Context, op, ref string) (*base, *schema, []any, error) {
	r, err := s.ParseRef(ref)
	if err != nil || r.Field != "" {
		return nil, nil, nil, errorf(op, ref, secrets.CodeInvalidRef, nil, "the ref must be a row id, without #field")
	}
	b, sc, err := s.schema(ctx, op)
	if err != nil {
		return nil, nil, nil, err
	}
	id, err := sc.parseID(r.Name)
	if err != nil {
		return nil, nil, nil, storeError(ctx, op, ref, err)
	}
	return b, sc, sc.idArgs(id), nil
}

// RowRef is the ref of the row whose id is id, as Entry.ID and Insert give
// it: the id with '%', '#' and '?' escaped, since a ref decodes %XX and
// reads '#' and '?' as its #field and ?options. Resolve, Update,
// UpdateValue and Delete take refs, so an id such as "x%41" must be passed
// as RowRef("x%41") ("x%2541"), or it names the row "xA".
func RowRef(id string) string { return refEscaper.Replace(id) }

// Update replaces the value (and the expiry, when the table has one; zero
// means none) of row ref, encrypted under the primary key.
func (s *Store) Update(ctx context.Context, ref, value string, expiresAt time.Time) error {
	return s.update(ctx, ref, value, &expiresAt)
}

// UpdateValue replaces the value of row ref, encrypted under the primary
// key, and leaves the rest of the row, its expiry included, as it is: one
// UPDATE, so an expiry changed meanwhile is not overwritten with a stale
// copy, as reading it first and calling Update would.
func (s *Store) UpdateValue(ctx context.Context, ref, value string) error {
	return s.update(ctx, ref, value, nil)
}

// update is Update, or UpdateValue when expiresAt is nil.
func (s *Store) update(ctx context.Context, ref, value string, expiresAt *time.Time) error {
	const op = "update"
	b, sc, id, err := s.row(ctx, op, ref)
	if err != nil {
		return err
	}
	if err := b.needRing(); err != nil {
		return storeError(ctx, op, ref, err)
	}
	if value == "" {
		return errorf(op, ref, secrets.CodeInvalidRef, nil, emptyValue)
	}
	tok, err := b.ring.Encrypt([]byte(value))
	if err != nil {
		return errorf(op, ref, secrets.CodeUnknown, err, "encrypt")
	}
	var n int64
	if expiresAt != nil && sc.has.expires {
		n, _, err = b.execAnnounced(ctx, sc, sc.q.update, sc.q.updateN, append([]any{tok, b.timeArg(*expiresAt)}, id...)...)
	} else {
		n, _, err = b.execAnnounced(ctx, sc, sc.q.updateValue, sc.q.updateValueN, append([]any{tok}, id...)...)
	}
	return affected(ctx, op, ref, n, err)
}

// emptyValue is the error of storing "": a row whose value is empty reads
// as one that holds no key.
const emptyValue = "the value is empty: give the key to store (a row with an empty value holds no key)"

func affected(ctx context.Context, op, ref string, n int64, err error) error {
	if err != nil {
		return opError(ctx, op, ref, err)
	}
	if n == 0 {
		return errorf(op, ref, secrets.CodeNotFound, nil, "no row with that id")
	}
	return nil
}

// Delete removes row ref.
func (s *Store) Delete(ctx context.Context, ref string) error {
	b, sc, id, err := s.row(ctx, "delete", ref)
	if err != nil {
		return err
	}
	n, _, err := b.execAnnounced(ctx, sc, sc.q.del, sc.q.delN, id...)
	return affected(ctx, "delete", ref, n, err)
}

// DB returns the store's database, opening it first for a store made by
// NewFromEnv, so a CLI can run its own checks.
func (s *Store) DB() (*sql.DB, error) {
	b, err := s.table(context.Background(), "open")
	if err != nil {
		return nil, err
	}
	return b.db, nil
}
