package fernetstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/internal/refs"
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
	// each such read is recorded with secrets.InfoFrom(ctx).MarkPlaintext so
	// the audit decorator reports it. Without it a plaintext row is an error
	// telling the operator to run `keyward migrate`.
	AllowPlaintext bool
	// Now returns the current time, for expiry; nil means time.Now.
	Now func() time.Time
}

// Store is a secrets.KeyResolver over a table of Fernet-encrypted values in
// any database/sql database. The ref is the row id, optionally with a
// "#field" to pick a key of a JSON value. Store is safe for concurrent use.
type Store struct {
	opts Options
	now  func() time.Time

	mu     sync.Mutex
	db     *sql.DB
	ring   *KeyRing
	ownsDB bool
	lazy   func() (*sql.DB, *KeyRing, error) // set by the URL opener
	base   atomic.Pointer[base]
	stmt   atomic.Pointer[sql.Stmt]
	closed bool
}

var (
	_ secrets.KeyResolver = (*Store)(nil)
	_ secrets.Pinger      = (*Store)(nil)
	_ io.Closer           = (*Store)(nil)
)

// New returns a Store over db using ring. It does no I/O: statements are
// prepared on first use, and a bad option is reported by the first call.
func New(db *sql.DB, ring *KeyRing, opts *Options) *Store {
	s := &Store{db: db, ring: ring}
	if opts != nil {
		s.opts = *opts
	}
	s.now = s.opts.Now
	if s.now == nil {
		s.now = time.Now
	}
	return s
}

func (s *Store) errorf(op, ref string, code secrets.Code, cause error, format string, args ...any) error {
	return &secrets.Error{Op: op, Backend: Backend, Ref: ref, Code: code, Reason: fmt.Sprintf(format, args...), Err: cause}
}

// getBase returns the connection, ring and SQL text, opening them lazily
// for a store made by the URL opener. A failure is not cached: the next call
// tries again (the database may come up later).
func (s *Store) getBase(op string) (*base, error) {
	if b := s.base.Load(); b != nil {
		return b, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if b := s.base.Load(); b != nil {
		return b, nil
	}
	if s.closed {
		return nil, s.errorf(op, "", secrets.CodeUnavailable, nil, "the store is closed")
	}
	if s.db == nil && s.lazy != nil {
		db, ring, err := s.lazy()
		if err != nil {
			return nil, err
		}
		s.db, s.ring, s.ownsDB = db, ring, true
	}
	if s.db == nil || s.ring == nil {
		return nil, s.errorf(op, "", secrets.CodeUnknown, nil, "the store has no database or no key ring (New needs both)")
	}
	b, err := buildBase(s.db, s.ring, &s.opts)
	if err != nil {
		return nil, s.errorf(op, "", secrets.CodeInvalidRef, nil, "%v", err)
	}
	s.base.Store(b)
	return b, nil
}

// CreateSchema creates the table with the default schema if it does not
// exist. It is never called implicitly: an existing table is used as it is.
// It needs every column, so it fails for options with a "-" column.
func (s *Store) CreateSchema(ctx context.Context) error {
	b, err := s.getBase("create schema")
	if err != nil {
		return err
	}
	if !b.has.name || !b.has.provider || !b.has.expires || !b.has.created {
		return s.errorf("create schema", "", secrets.CodeInvalidRef, nil, "CreateSchema makes every column; options with a \"-\" column describe an existing table")
	}
	if _, err := b.db.ExecContext(ctx, b.q.schema); err != nil {
		return s.dbError(ctx, "create schema", "", err)
	}
	return nil
}

// dbError wraps a database error: context errors stay matchable, others
// are CodeUnavailable. Driver errors name tables and columns, not values.
func (s *Store) dbError(ctx context.Context, op, ref string, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		err = cerr
	}
	code := secrets.CodeUnavailable
	if errors.Is(err, context.Canceled) {
		code = secrets.CodeUnknown
	}
	return &secrets.Error{Op: op, Backend: Backend, Ref: ref, Code: code, Reason: "database error", Err: err}
}

func (s *Store) resolveStmt(ctx context.Context, b *base) (*sql.Stmt, error) {
	if st := s.stmt.Load(); st != nil {
		return st, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.stmt.Load(); st != nil {
		return st, nil
	}
	if s.closed {
		// A Resolve that got its base before Close ran: a statement
		// prepared now would be stored after Close and never closed.
		// (The lock is held from this check through the Store below, so
		// Close cannot slip in between.)
		return nil, s.errorf("resolve", "", secrets.CodeUnavailable, nil, "the store is closed")
	}
	st, err := b.db.PrepareContext(ctx, b.q.resolve)
	if err != nil {
		return nil, err
	}
	s.stmt.Store(st)
	return st, nil
}

// parseRef splits a ref into a row id and an optional #field.
func parseRef(ref string) (int64, string, error) {
	if id, err := strconv.ParseInt(ref, 10, 64); err == nil && id > 0 && ref[0] != '+' {
		return id, "", nil
	}
	r, err := refs.Parse(ref)
	if err != nil {
		return 0, "", err
	}
	id, err := strconv.ParseInt(r.Path, 10, 64)
	if err != nil || id <= 0 || r.Path[0] == '+' {
		return 0, "", errors.New("the ref must be a row id (a positive integer), optionally with #field")
	}
	return id, r.Field, nil
}

// Resolve returns the secret in row ref (its id, optionally "id#field").
// Version names the key that decrypted it ("primary", "previous-1", ...) or
// is "plaintext"; ExpiresAt comes from the expires_at column, and a row past
// it is ErrExpired.
func (s *Store) Resolve(ctx context.Context, ref string) (secrets.Secret, error) {
	if err := ctx.Err(); err != nil {
		return secrets.Secret{}, s.dbError(ctx, "resolve", ref, err)
	}
	secrets.InfoFrom(ctx).SetBackend(Backend)
	id, field, err := parseRef(ref)
	if err != nil {
		return secrets.Secret{}, s.errorf("resolve", ref, secrets.CodeInvalidRef, nil, "%v", err)
	}
	b, err := s.getBase("resolve")
	if err != nil {
		return secrets.Secret{}, withRef(err, ref)
	}
	st, err := s.resolveStmt(ctx, b)
	if err != nil {
		if _, ok := err.(*secrets.Error); ok {
			return secrets.Secret{}, withRef(err, ref)
		}
		return secrets.Secret{}, s.dbError(ctx, "resolve", ref, err)
	}
	var value sql.NullString
	var expRaw any
	if err := st.QueryRowContext(ctx, id).Scan(&value, &expRaw); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return secrets.Secret{}, s.errorf("resolve", ref, secrets.CodeNotFound, nil, "no row with that id")
		}
		return secrets.Secret{}, s.dbError(ctx, "resolve", ref, err)
	}
	exp, err := parseDBTime(expRaw)
	if err != nil {
		return secrets.Secret{}, s.errorf("resolve", ref, secrets.CodeUnknown, nil, "cannot read the expiry column: %v", err)
	}
	if !exp.IsZero() && !s.now().Before(exp) {
		return secrets.Secret{}, s.errorf("resolve", ref, secrets.CodeExpired, nil,
			"the row expired at %s; store a new value or a later expiry", exp.UTC().Format(time.RFC3339))
	}
	if !value.Valid {
		return secrets.Secret{}, s.errorf("resolve", ref, secrets.CodeNotFound, nil, "the row's value is NULL")
	}
	plain, version, err := s.open(ctx, b, ref, value.String)
	if err != nil {
		return secrets.Secret{}, err
	}
	if field != "" {
		v, err := refs.Field([]byte(plain), field)
		switch {
		case errors.Is(err, refs.ErrNoField):
			return secrets.Secret{}, s.errorf("resolve", ref, secrets.CodeNotFound, nil, "%v", err)
		case err != nil:
			return secrets.Secret{}, s.errorf("resolve", ref, secrets.CodeInvalidRef, nil, "%v", err)
		}
		plain = v
	}
	sec := secrets.NewSecret(plain)
	sec.Version = version
	sec.ExpiresAt = exp
	return sec, nil
}

func withRef(err error, ref string) error {
	var e *secrets.Error
	if errors.As(err, &e) {
		c := *e
		c.Ref = ref
		return &c
	}
	return err
}

// open turns a stored value into its plaintext by structure: a token is
// decrypted, a malformed token is undecryptable, plaintext is returned only
// in migration mode.
func (s *Store) open(ctx context.Context, b *base, ref, stored string) (string, string, error) {
	switch Classify(stored) {
	case KindToken:
		msg, i, err := b.ring.Decrypt(stored)
		if err != nil {
			return "", "", withRef(err, ref)
		}
		return string(msg), KeyName(i), nil
	case KindMalformedToken:
		return "", "", undecryptable(ref, malformedReason)
	}
	if !s.opts.AllowPlaintext {
		return "", "", &secrets.Error{Op: "resolve", Backend: Backend, Ref: ref, Code: secrets.CodeUndecryptable,
			Reason: "the row holds legacy plaintext, which this store refuses: run `keyward migrate` to encrypt it, or open the store in migration mode (Options.AllowPlaintext, ?plaintext=allow) until then"}
	}
	secrets.InfoFrom(ctx).MarkPlaintext()
	return stored, "plaintext", nil
}

// Put encrypts value under the primary key, inserts a row and returns its
// id. A zero expiresAt means the value does not expire.
func (s *Store) Put(ctx context.Context, name, provider, value string, expiresAt time.Time) (string, error) {
	b, err := s.getBase("put")
	if err != nil {
		return "", err
	}
	if !expiresAt.IsZero() && !b.has.expires {
		return "", s.errorf("put", "", secrets.CodeInvalidRef, nil, "the table has no expiry column")
	}
	tok, err := b.ring.Encrypt([]byte(value))
	if err != nil {
		return "", s.errorf("put", "", secrets.CodeUnknown, err, "encrypt")
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
		args = append(args, b.timeArg(s.now()))
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
		return "", s.dbError(ctx, "put", "", err)
	}
	return strconv.FormatInt(id, 10), nil
}

// Update replaces the value (and the expiry, when the table has one; zero
// means none) of row ref, encrypted under the primary key.
func (s *Store) Update(ctx context.Context, ref, value string, expiresAt time.Time) error {
	id, field, err := parseRef(ref)
	if err != nil || field != "" {
		return s.errorf("update", ref, secrets.CodeInvalidRef, nil, "the ref must be a row id")
	}
	b, err := s.getBase("update")
	if err != nil {
		return withRef(err, ref)
	}
	tok, err := b.ring.Encrypt([]byte(value))
	if err != nil {
		return s.errorf("update", ref, secrets.CodeUnknown, err, "encrypt")
	}
	var res sql.Result
	if b.has.expires {
		res, err = b.db.ExecContext(ctx, b.q.update, tok, b.timeArg(expiresAt), id)
	} else {
		res, err = b.db.ExecContext(ctx, b.q.updateValue, tok, id)
	}
	return s.affected(ctx, "update", ref, res, err)
}

func (s *Store) affected(ctx context.Context, op, ref string, res sql.Result, err error) error {
	if err != nil {
		return s.dbError(ctx, op, ref, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return s.errorf(op, ref, secrets.CodeNotFound, nil, "no row with that id")
	}
	return nil
}

// Delete removes row ref.
func (s *Store) Delete(ctx context.Context, ref string) error {
	id, field, err := parseRef(ref)
	if err != nil || field != "" {
		return s.errorf("delete", ref, secrets.CodeInvalidRef, nil, "the ref must be a row id")
	}
	b, err := s.getBase("delete")
	if err != nil {
		return withRef(err, ref)
	}
	res, err := b.db.ExecContext(ctx, b.q.del, id)
	return s.affected(ctx, "delete", ref, res, err)
}

// Ping checks that the database answers (opening it first for a store made
// by the URL opener).
func (s *Store) Ping(ctx context.Context) error {
	b, err := s.getBase("ping")
	if err != nil {
		return err
	}
	if err := b.db.PingContext(ctx); err != nil {
		return s.dbError(ctx, "ping", "", err)
	}
	return nil
}

// DB returns the store's database, opening it first for a store made by the
// URL opener, so a CLI can run its own checks.
func (s *Store) DB() (*sql.DB, error) {
	b, err := s.getBase("open")
	if err != nil {
		return nil, err
	}
	return b.db, nil
}

// Close releases the prepared statement and closes the database if the store
// opened it itself (the URL opener); a db passed to New is left open.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var err error
	if st := s.stmt.Swap(nil); st != nil {
		err = st.Close()
	}
	s.base.Store(nil)
	if s.ownsDB && s.db != nil {
		if cerr := s.db.Close(); err == nil {
			err = cerr
		}
	}
	return err
}
