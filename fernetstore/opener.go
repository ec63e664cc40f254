package fernetstore

import (
	"context"
	"database/sql"
	"net/url"
	"os"

	secrets "github.com/keyward/secrets"
)

// EnvDatabaseURL names the variable the URL opener reads the database from.
const EnvDatabaseURL = "DATABASE_URL"

// DefaultDatabaseURL is used when DATABASE_URL is unset.
const DefaultDatabaseURL = "sqlite:keyward.db"

// urlParams maps the opener's query parameters to Options fields.
var urlParams = []string{"table", "plaintext", "dialect",
	"id_column", "name_column", "provider_column", "value_column", "expires_column", "created_column"}

func init() { secrets.Register("fernet", OpenURL) }

// OpenURL opens a Store from a URL such as
// "fernet://?table=api_keys&plaintext=allow". The database comes from
// DATABASE_URL (default sqlite:keyward.db, see OpenDB) and the keys from
// ENCRYPTION_KEY and ENCRYPTION_KEY_PREVIOUS, both read on the first
// Resolve: opening does no I/O. The returned Store closes the database it
// opened when closed.
func OpenURL(_ context.Context, u *url.URL) (secrets.KeyResolver, error) {
	if err := secrets.CheckParams(u, urlParams...); err != nil {
		return nil, err
	}
	if u.Host != "" || (u.Path != "" && u.Path != "/") {
		return nil, &secrets.Error{Op: "open", Backend: Backend, Code: secrets.CodeInvalidRef,
			Reason: "write fernet://?table=NAME: the database comes from DATABASE_URL, not the URL's host or path"}
	}
	q := u.Query()
	opts := &Options{
		Table: q.Get("table"), Dialect: Dialect(q.Get("dialect")),
		IDColumn: q.Get("id_column"), NameColumn: q.Get("name_column"), ProviderColumn: q.Get("provider_column"),
		ValueColumn: q.Get("value_column"), ExpiresAtColumn: q.Get("expires_column"), CreatedAtColumn: q.Get("created_column"),
	}
	switch q.Get("plaintext") {
	case "", "deny":
	case "allow":
		opts.AllowPlaintext = true
	default:
		return nil, &secrets.Error{Op: "open", Backend: Backend, Code: secrets.CodeInvalidRef,
			Reason: `plaintext= takes "allow" (migration mode) or "deny" (the default)`}
	}
	return NewFromEnv(opts), nil
}

// NewFromEnv returns a Store whose database comes from DATABASE_URL (default
// sqlite:keyward.db, see OpenDB) and whose keys come from ENCRYPTION_KEY and
// ENCRYPTION_KEY_PREVIOUS, all read on first use, not here. The store owns
// the database it opens: Close closes it. It is what the fernet:// opener and
// the keyward CLI use.
func NewFromEnv(opts *Options) *Store {
	s := New(nil, nil, opts)
	s.lazy = func() (*sql.DB, *KeyRing, error) {
		ring, err := KeyRingFromEnv()
		if err != nil {
			return nil, nil, err
		}
		dsn := os.Getenv(EnvDatabaseURL)
		if dsn == "" {
			dsn = DefaultDatabaseURL
		}
		db, err := OpenDB(dsn)
		if err != nil {
			return nil, nil, err
		}
		return db, ring, nil
	}
	return s
}
