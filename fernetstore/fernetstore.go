package fernetstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

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
	// provider, api_key, expires_at, created_at. The id column must hold
	// integers assigned by the database. NameColumn, ProviderColumn,
	// ExpiresAtColumn and CreatedAtColumn may be "-" for a table without them.
	IDColumn, NameColumn, ProviderColumn, ValueColumn, ExpiresAtColumn, CreatedAtColumn string
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
}

var (
	_ secrets.KeyResolver   = (*Store)(nil)
	_ secrets.BatchResolver = (*Store)(nil)
	_ secrets.Pinger        = (*Store)(nil)
	_ io.Closer             = (*Store)(nil)
)

// New returns a Store over db using ring. It does no I/O: statements are
// prepared on first use, and a bad option is reported by the first call.
// Close leaves db open.
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
	}, &driver.Options{Now: o.Now})
	return s
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
func dbError(err error) error { return driver.Wrap(secrets.CodeUnavailable, err, "database error") }

// opError is dbError for the Store's own operations, which the core does not
// see, under the same context rule.
func opError(ctx context.Context, op, ref string, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return secrets.ContextError(op, Backend, ref, cerr)
	}
	return errorf(op, ref, secrets.CodeUnavailable, err, "database error")
}

// CreateSchema creates the table with the default schema if it does not
// exist. It is never called implicitly: an existing table is used as it is.
// It needs every column, so it fails for options with a "-" column.
func (s *Store) CreateSchema(ctx context.Context) error {
	b, err := s.table(ctx, "create schema")
	if err != nil {
		return err
	}
	if !b.has.name || !b.has.provider || !b.has.expires || !b.has.created {
		return errorf("create schema", "", secrets.CodeInvalidRef, nil, "CreateSchema makes every column; options with a \"-\" column describe an existing table")
	}
	if _, err := b.db.ExecContext(ctx, b.q.schema); err != nil {
		return opError(ctx, "create schema", "", err)
	}
	return nil
}

// rowID reads a row id: a positive integer, without a sign.
func rowID(name string) (int64, bool) {
	id, err := strconv.ParseInt(name, 10, 64)
	return id, err == nil && id > 0 && name[0] != '+'
}

const refShape = "the ref must be a row id (a positive integer), optionally with #field"

// Get returns the value in row ref (its id; the core picks a #field).
// Version names the key that decrypted it ("primary", "previous-1", ...) or
// is "plaintext"; ExpiresAt comes from the expires_at column.
func (b *base) Get(ctx context.Context, ref driver.Ref) (driver.Value, error) {
	id, ok := rowID(ref.Name)
	if !ok {
		return driver.Value{}, driver.Errorf(secrets.CodeInvalidRef, refShape)
	}
	st, err := b.resolveStmt(ctx)
	if err != nil {
		return driver.Value{}, err
	}
	var value sql.NullString
	var expRaw any
	if err := st.QueryRowContext(ctx, id).Scan(&value, &expRaw); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return driver.Value{}, driver.Errorf(secrets.CodeNotFound, "no row with that id")
		}
		return driver.Value{}, dbError(err)
	}
	exp, err := parseDBTime(expRaw)
	if err != nil {
		return driver.Value{}, driver.Errorf(secrets.CodeUnknown, "cannot read the expiry column: %v", err)
	}
	if !value.Valid {
		return driver.Value{}, driver.Errorf(secrets.CodeNotFound, "the row's value is NULL")
	}
	v, err := b.reveal(value.String)
	v.ExpiresAt = exp
	return v, err
}

// resolveStmt prepares Get's statement once. Under the lock, so that a Get
// racing Close never prepares a statement after Close (nothing would ever
// close it).
func (b *base) resolveStmt(ctx context.Context) (*sql.Stmt, error) {
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
	st, err := b.db.PrepareContext(ctx, b.q.resolve)
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

// Put encrypts value under the primary key, inserts a row and returns its
// id. A zero expiresAt means the value does not expire.
func (s *Store) Put(ctx context.Context, name, provider, value string, expiresAt time.Time) (string, error) {
	b, err := s.table(ctx, "put")
	if err != nil {
		return "", err
	}
	if !expiresAt.IsZero() && !b.has.expires {
		return "", errorf("put", "", secrets.CodeInvalidRef, nil, "the table has no expiry column")
	}
	tok, err := b.ring.Encrypt([]byte(value))
	if err != nil {
		return "", errorf("put", "", secrets.CodeUnknown, err, "encrypt")
	}
	args := []any{tok}
	if b.has.name {
		args = append(args, name)
	}
	if b.has.provider {
		args = append(args, provider)
	}
	if b.has.expires {
		args = append(args, b.timeArg(expiresAt))
	}
	if b.has.created {
		args = append(args, b.timeArg(b.now()))
	}
	var id int64
	if b.d == Postgres {
		err = b.db.QueryRowContext(ctx, b.q.insert, args...).Scan(&id)
	} else {
		var res sql.Result
		res, err = b.db.ExecContext(ctx, b.q.insert, args...)
		if err == nil {
			id, err = res.LastInsertId()
		}
	}
	if err != nil {
		return "", opError(ctx, "put", "", err)
	}
	return strconv.FormatInt(id, 10), nil
}

// row reads the ref of Update and Delete, a row id without #field, and
// returns the Store's driver.
func (s *Store) row(ctx context.Context, op, ref string) (*base, int64, error) {
	r, err := s.ParseRef(ref)
	id, ok := rowID(r.Name)
	if err != nil || !ok || r.Field != "" {
		return nil, 0, errorf(op, ref, secrets.CodeInvalidRef, nil, "the ref must be a row id")
	}
	b, err := s.table(ctx, op)
	return b, id, err
}

// Update replaces the value (and the expiry, when the table has one; zero
// means none) of row ref, encrypted under the primary key.
func (s *Store) Update(ctx context.Context, ref, value string, expiresAt time.Time) error {
	b, id, err := s.row(ctx, "update", ref)
	if err != nil {
		return err
	}
	tok, err := b.ring.Encrypt([]byte(value))
	if err != nil {
		return errorf("update", ref, secrets.CodeUnknown, err, "encrypt")
	}
	var res sql.Result
	if b.has.expires {
		res, err = b.db.ExecContext(ctx, b.q.update, tok, b.timeArg(expiresAt), id)
	} else {
		res, err = b.db.ExecContext(ctx, b.q.updateValue, tok, id)
	}
	return affected(ctx, "update", ref, res, err)
}

func affected(ctx context.Context, op, ref string, res sql.Result, err error) error {
	if err != nil {
		return opError(ctx, op, ref, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return errorf(op, ref, secrets.CodeNotFound, nil, "no row with that id")
	}
	return nil
}

// Delete removes row ref.
func (s *Store) Delete(ctx context.Context, ref string) error {
	b, id, err := s.row(ctx, "delete", ref)
	if err != nil {
		return err
	}
	res, err := b.db.ExecContext(ctx, b.q.del, id)
	return affected(ctx, "delete", ref, res, err)
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
