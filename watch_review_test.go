package secrets_test

// Attacks on the stack's change watches (issue 13): each failing test
// shows a change a replica's one-hour cache never drops, and says what
// the fix should be.

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/fernetstore"
	"github.com/keyward/secrets/internal/testenv"
)

// sqliteWatched opens a SQLite database with a key table whose change
// triggers are installed, and returns the admin store over it.
func sqliteWatched(t *testing.T, ring *fernetstore.KeyRing, opts *fernetstore.Options) (*sql.DB, *fernetstore.Store) {
	t.Helper()
	db, err := fernetstore.OpenDB("sqlite:" + filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	admin := fernetstore.New(db, ring, opts)
	t.Cleanup(func() { admin.Close() })
	ctx := context.Background()
	if err := admin.CreateSchema(ctx); err != nil {
		t.Fatal(err)
	}
	if err := admin.InstallTriggers(ctx); err != nil {
		t.Fatal(err)
	}
	return db, admin
}

// TestReviewNonCanonicalRefNotInvalidated: the store reads a ref's %XX
// escapes, so "db:%31" is row 1 (and "db:ab%63" row "abc"), but the cache
// keys entries by the ref as written and the watch invalidates RowRef of
// the id ("db:1") and its #field/?option variants only: a host (or a
// bots row, a config file) that spells the ref another way keeps the old
// key for the whole TTL. The store already refuses "db:007" for this
// reason (rowID); an escape is the same hole. Fix: refuse a ref whose
// name is not in RowRef's form (ParseRef: RowRef(name) must equal the raw
// name), or canonicalise refs before the cache keys them.
func TestReviewNonCanonicalRefNotInvalidated(t *testing.T) {
	ctx := context.Background()
	ring := newRing(t)
	table := randTable("kw_canon_")
	db, admin := sqliteWatched(t, ring, &fernetstore.Options{Table: table})
	id, err := admin.Put(ctx, "k", "openai", "sk-canon-1", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if id != "1" {
		t.Fatalf("id %q: the test spells row 1", id)
	}
	st := watchedStack(t, db, ring, table)
	// The fix: a ref spells its row one way only, so a cache entry of a
	// row is always the one the watch invalidates.
	_, err = st.Resolve(ctx, "db:%31")
	if !errors.Is(err, secrets.ErrInvalidRef) || !strings.Contains(err.Error(), "write the row id as 1") {
		t.Fatalf("db:%%31: %v, want a refusal naming db:1", err)
	}
	mustResolve(t, st, "db:1")
}

// TestReviewFollowedRefNotInvalidated: an entry whose row names another
// ref (a ref column, here bots.api_key_id naming a row of the watched
// key table) is cached under its own ref with the followed value; when
// the followed row changes the watch invalidates "db:1" but not
// "bots:1", which keeps serving the old key for the TTL (an hour). Fix:
// the cache records, for an entry whose Secret.Source.Followed is set,
// the followed ref, and Invalidate (and InvalidatePrefix) of a ref drops
// the entries that followed it too.
func TestReviewFollowedRefNotInvalidated(t *testing.T) {
	ctx := context.Background()
	ring := newRing(t)
	table := randTable("kw_keys_")
	db, admin := sqliteWatched(t, ring, &fernetstore.Options{Table: table})
	id, err := admin.Put(ctx, "k", "openai", "sk-follow-1", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	bots := randTable("kw_bots_")
	refCols := []fernetstore.RefColumn{{Column: "api_key_id", Scheme: "db"}}
	ba := fernetstore.New(db, ring, &fernetstore.Options{Table: bots, RefColumns: refCols})
	defer ba.Close()
	if err := ba.CreateSchema(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ba.InstallTriggers(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("INSERT INTO "+bots+" (id, name, provider, api_key, api_key_id) VALUES (1, 'bot', 'openai', NULL, ?)", id); err != nil {
		t.Fatal(err)
	}
	keys := fernetstore.New(db, ring, &fernetstore.Options{Table: table, PollInterval: 20 * time.Millisecond})
	botStore := fernetstore.New(db, ring, &fernetstore.Options{Table: bots, RefColumns: refCols, PollInterval: 20 * time.Millisecond})
	cfg, err := secrets.ParseConfig("cache = size=100&ttl=1h")
	if err != nil {
		t.Fatal(err)
	}
	st, err := secrets.OpenConfig(ctx, cfg, &secrets.StackOptions{Backends: map[string]secrets.KeyResolver{"db": keys, "bots": botStore}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close(); keys.Close(); botStore.Close() })
	if got := mustResolve(t, st, "bots:1"); got != "sk-follow-1" {
		t.Fatalf("bots:1 = %q", got)
	}
	time.Sleep(300 * time.Millisecond) // the watches' first purges are past
	mustResolve(t, st, "bots:1")
	mustResolve(t, st, "db:"+id)
	if err := admin.UpdateValue(ctx, id, "sk-follow-2"); err != nil {
		t.Fatal(err)
	}
	eventually(t, st, "db:"+id, "sk-follow-2")
	if got := mustResolve(t, st, "bots:1"); got != "sk-follow-2" {
		t.Errorf("after db:%s changed (and was invalidated), bots:1, which names it, still serves the old key", id)
	}
}

// watchGoroutines lists the goroutines running a watch or a listener.
func watchGoroutines() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "fernetstore.(*Store).Watch") || strings.Contains(g, "fernetstore/postgres.listen") || strings.Contains(g, "secrets.startWatches") {
			out = append(out, g)
		}
	}
	return out
}

// TestReviewStackCloseLeavesNoWatch: Stack.Close (then the store's Close)
// ends every watch goroutine and the PostgreSQL listener (its pgx
// connection). Found nothing: kept as a guard.
func TestReviewStackCloseLeavesNoWatch(t *testing.T) {
	for _, d := range []string{"sqlite", "postgres"} {
		t.Run(d, func(t *testing.T) {
			ctx := context.Background()
			ring := newRing(t)
			table := randTable("kw_leak_")
			var db *sql.DB
			var err error
			if d == "sqlite" {
				db, _ = sqliteWatched(t, ring, &fernetstore.Options{Table: table})
			} else {
				db, err = fernetstore.OpenDB(testenv.PostgresDSN(t))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { db.Close() })
				admin := fernetstore.New(db, ring, &fernetstore.Options{Table: table})
				t.Cleanup(func() { admin.Close(); db.Exec("DROP TABLE " + table) })
				if err := admin.CreateSchema(ctx); err != nil {
					t.Fatal(err)
				}
			}
			for i := range 3 {
				store := fernetstore.New(db, ring, &fernetstore.Options{Table: table, PollInterval: 20 * time.Millisecond})
				cfg, _ := secrets.ParseConfig("cache = size=100&ttl=1h")
				st, err := secrets.OpenConfig(ctx, cfg, &secrets.StackOptions{Backends: map[string]secrets.KeyResolver{"db": store}})
				if err != nil {
					t.Fatal(err)
				}
				st.Resolve(ctx, "db:999") // opens the store: the watch starts
				for deadline := time.Now().Add(20 * time.Second); len(watchGoroutines()) == 0; time.Sleep(5 * time.Millisecond) {
					if time.Now().After(deadline) {
						t.Fatal("no watch ever started")
					}
				}
				if i == 1 {
					time.Sleep(300 * time.Millisecond) // closed while listening / polling, not while starting
				}
				st.Close()
				store.Close()
				var left []string
				for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(5 * time.Millisecond) {
					if left = watchGoroutines(); len(left) == 0 {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("round %d: %d watch goroutines left after Stack.Close and Store.Close:\n%s", i, len(left), strings.Join(left, "\n\n"))
					}
				}
			}
			if s := db.Stats(); s.InUse != 0 {
				t.Errorf("%d pool connections still in use", s.InUse)
			}
		})
	}
}
