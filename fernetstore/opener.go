package fernetstore

import (
	"context"
	"database/sql"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	secrets "github.com/keyward/secrets"
)

// EnvDatabaseURL names the variable the URL opener reads the database from.
const EnvDatabaseURL = "DATABASE_URL"

// DefaultDatabaseURL is used when DATABASE_URL is unset.
const DefaultDatabaseURL = "sqlite:keyward.db"

// urlParams are the opener's query parameters (see ParseURL).
var urlParams = []string{"table", "plaintext", "dialect", "id_type", "ref_columns", "poll",
	"id_column", "name_column", "provider_column", "value_column", "expires_column", "created_column"}

func init() { secrets.Register(Backend, OpenURL) }

// OpenURL opens a Store from a URL such as
// "fernet://?table=api_keys&plaintext=allow" (see ParseURL). The database
// comes from DATABASE_URL (default sqlite:keyward.db, see OpenDB) and the
// keys from ENCRYPTION_KEY and ENCRYPTION_KEY_PREVIOUS, read and opened on
// the first Resolve: opening does no I/O. A DATABASE_URL whose scheme no
// imported database package opens (fernetstore/sqlite, fernetstore/postgres,
// fernetstore/mysql) fails here, naming the package to import, and so does
// an ENCRYPTION_KEY_REF that KeyRingFromLookup refuses. The returned
// Store closes the database it opened when closed.
func OpenURL(_ context.Context, u *url.URL) (secrets.KeyResolver, error) {
	opts, err := optionsFromURL(u)
	if err != nil {
		return nil, err
	}
	if _, _, err := database(databaseURL()); err != nil {
		return nil, err
	}
	if strings.TrimSpace(os.Getenv(EnvKeyRef)) != "" {
		// Its shape and its company are checked now, as a URL's are: a
		// configuration error, not something the first resolve finds.
		if _, err := keyRefFromLookup(os.Getenv, nil); err != nil {
			return nil, err
		}
	}
	return NewFromEnv(opts), nil
}

func databaseURL() string {
	if u := os.Getenv(EnvDatabaseURL); u != "" {
		return u
	}
	return DefaultDatabaseURL
}

// NewFromEnv returns a Store whose database comes from DATABASE_URL (default
// sqlite:keyward.db, see OpenDB) and whose keys come from ENCRYPTION_KEY and
// ENCRYPTION_KEY_PREVIOUS, all read on first use, not here; a failure is
// tried again by the next call. The store owns the database it opens: Close
// closes it. It is what the fernet:// opener and the keyward CLI use.
//
// With ENCRYPTION_KEY_REF set instead (see KeyRingFromLookup), the keys are
// read on first use from that secret's versions, through the Mux of the
// stack the store is served in (the resolver OpenConfig gives it, see
// secrets.Follower), and read again every ENCRYPTION_KEY_REFRESH and when
// a token no key opens. A first read that fails is tried again at most once
// per DefaultKeyMissInterval, calls in between getting its error, and a ring
// read is kept while the database cannot be opened. The ring's clock is
// opts.Now.
func NewFromEnv(opts *Options) *Store {
	var now func() time.Time
	if opts != nil {
		now = opts.Now
	}
	clock := now
	if clock == nil {
		clock = time.Now
	}
	// A first read of ENCRYPTION_KEY_REF that reached the manager and
	// failed is tried again at most once per the ring's MissInterval, and a
	// ring that was read is kept when what follows fails (the database):
	// each use would otherwise read the manager again (a paid call, and
	// more load on a manager that throttles), and meanwhile gets the same
	// error.
	var (
		mu        sync.Mutex
		kept      *KeyRing // read, though the connect failed after it
		failedRef string
		failedAt  time.Time
		failed    error
	)
	var s *Store
	s = newStore(opts, func(ctx context.Context) (*sql.DB, *KeyRing, bool, error) {
		var ring *KeyRing
		var err error
		if strings.TrimSpace(os.Getenv(EnvKeyRef)) != "" {
			ring, err = keyRefFromLookup(os.Getenv, now)
		} else {
			ring, err = KeyRingFromEnv()
		}
		if err != nil {
			return nil, nil, false, err
		}
		if ref := ring.Ref(); ref != "" {
			through := s.FollowedThrough()
			mu.Lock()
			reuse := kept != nil && kept.Ref() == ref
			if reuse {
				ring = kept
			} else if since := clock().Sub(failedAt); failed != nil && failedRef == ref && since >= 0 && since < ring.src.opts.MissInterval {
				// (A clock that stepped back makes the retry due.)
				err := failed
				mu.Unlock()
				return nil, nil, false, err
			}
			mu.Unlock()
			if !reuse {
				if err := ring.Load(ctx, through); err != nil {
					if through != nil && ctx.Err() == nil {
						mu.Lock()
						failedRef, failedAt, failed = ref, clock(), err
						mu.Unlock()
					}
					return nil, nil, false, err
				}
				mu.Lock()
				kept, failed = ring, nil
				mu.Unlock()
			}
		}
		db, err := OpenDB(databaseURL())
		if err != nil {
			return nil, nil, false, err
		}
		return db, ring, true, nil
	})
	return s
}
