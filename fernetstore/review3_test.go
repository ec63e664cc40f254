package fernetstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	secrets "github.com/keyward/secrets"
)

// Third review, finding 1: MariaDB's latin1 is cp1252, so a latin1 id
// column holds '€' (U+20AC); the first latin1 check refused every id with
// such a letter, a row list showed but no command could name.
func TestReview3Latin1Euro(t *testing.T) {
	db := openTestDB(t, MySQL)
	ctx := context.Background()
	table := "kw_r3l1_" + randHex(6)
	if _, err := db.ExecContext(ctx, "CREATE TABLE "+table+" (id VARCHAR(36) CHARACTER SET latin1 PRIMARY KEY, api_key TEXT) DEFAULT CHARSET=latin1"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Exec("DROP TABLE " + table) })
	if _, err := db.ExecContext(ctx, "INSERT INTO "+table+" VALUES ('price€', 'sk-legacy-euro'), ('a', 'sk-legacy-a')"); err != nil {
		t.Fatal(err)
	}
	s := New(db, mustRing(t, mustKey(t)), &Options{Table: table, AllowPlaintext: true})
	defer s.Close()
	for e, err := range s.Entries(ctx, nil) {
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("listed %q", e.ID)
	}
	if sec, err := s.Resolve(ctx, "price€"); err != nil || sec.Reveal() != "sk-legacy-euro" {
		t.Errorf("Resolve(price€), a row the table holds and lists: %v", err)
	}
	if err := s.UpdateValue(ctx, "price€", "sk-new-euro"); err != nil {
		t.Errorf("UpdateValue(price€): %v", err)
	}
	if err := s.Delete(ctx, "price€"); err != nil {
		t.Errorf("Delete(price€): %v", err)
	}
}

// Third review, finding 2: integer ids 0 and below are legal in every
// database; List lists them (no ref names them, as the doc says), where the
// first not-an-integer guard stopped the listing with an error.
func TestReview3NonPositiveIntID(t *testing.T) {
	for _, d := range []Dialect{SQLite, Postgres} {
		t.Run(string(d), func(t *testing.T) {
			db := openTestDB(t, d)
			ctx := context.Background()
			s := newTestStore(t, db, mustRing(t, mustKey(t)), nil)
			info, _ := s.Describe(ctx)
			if _, err := s.Put(ctx, "n", "p", "sk-one", time.Time{}); err != nil {
				t.Fatal(err)
			}
			if _, err := db.ExecContext(ctx, "INSERT INTO "+info.Table+" (id, name, provider, api_key) VALUES (0, 'zero', 'p', 'x'), (-1, 'neg', 'p', 'y')"); err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, err := range s.Entries(ctx, nil) {
				if err != nil {
					t.Fatalf("Entries after %d rows: %v", n, err)
				}
				n++
			}
			if n != 3 {
				t.Errorf("listed %d rows, want 3", n)
			}
		})
	}
}

// Third review, finding 3: a user column named rowid shadows SQLite's
// rowid; the table is read in id order, where AnyOrder paged on the
// column (NULL here) and stopped with an error.
func TestReview3ColumnNamedRowid(t *testing.T) {
	db := openTestDB(t, SQLite)
	ctx := context.Background()
	table := "kw_r3rowid"
	if _, err := db.ExecContext(ctx, "CREATE TABLE "+table+` (id TEXT PRIMARY KEY, api_key TEXT, "rowid" INTEGER)`); err != nil {
		t.Fatal(err)
	}
	ring := mustRing(t, mustKey(t))
	n := listPage + 100
	for i := range n {
		if _, err := db.ExecContext(ctx, "INSERT INTO "+table+" (id, api_key) VALUES (?, ?)", fmt.Sprintf("id-%05d", i), "sk-legacy-"+fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	s := New(db, ring, &Options{Table: table, AllowPlaintext: true})
	defer s.Close()
	count := func(o *ListOptions) (int, error) {
		c := 0
		for _, err := range s.Entries(ctx, o) {
			if err != nil {
				return c, err
			}
			c++
		}
		return c, nil
	}
	c1, err1 := count(nil)
	c2, err2 := count(&ListOptions{AnyOrder: true})
	t.Logf("id order: %d %v; AnyOrder: %d %v", c1, err1, c2, err2)
	if c2 != n || err2 != nil {
		t.Errorf("AnyOrder listed %d of %d rows (%v)", c2, n, err2)
	}
}

// The same table under Migrate, in batches of two: the walk paged on the
// NULL "rowid" column (forever, with more rows than a batch) and the rowid
// compare-and-swap matched no row, so every row was "changed by others".
func TestReview3ColumnNamedRowidMigrate(t *testing.T) {
	db := openTestDB(t, SQLite)
	ctx := context.Background()
	table := "kw_r3rowid"
	if _, err := db.ExecContext(ctx, "CREATE TABLE "+table+` (id TEXT PRIMARY KEY, api_key TEXT, "rowid" INTEGER)`); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := db.ExecContext(ctx, "INSERT INTO "+table+" (id, api_key) VALUES (?, ?)", fmt.Sprintf("id-%05d", i), "sk-legacy-"+fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	s := New(db, mustRing(t, mustKey(t)), &Options{Table: table, AllowPlaintext: true})
	defer s.Close()
	rep, err := s.Migrate(ctx, &WalkOptions{BatchSize: 2})
	if err != nil || rep.Done != 5 {
		t.Errorf("Migrate: Done %d of 5, Skipped %d, %v", rep.Done, rep.Skipped, err)
	}
}

// A row re-inserted (INSERT OR REPLACE) while Entries lists, in id order
// and with AnyOrder, is listed once.
func TestReview3ReplaceDuringAnyOrder(t *testing.T) {
	db := openTestDB(t, SQLite)
	ctx := context.Background()
	s := newTestStore(t, db, mustRing(t, mustKey(t)), &Options{IDType: IDText})
	info, _ := s.Describe(ctx)
	n := listPage + 10
	var first string
	for i := range n {
		id, err := s.Put(ctx, "n", "p", "sk-x", time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = id
		}
	}
	for _, o := range []*ListOptions{nil, {AnyOrder: true}} {
		seen := map[string]int{}
		done := false
		for e, err := range s.Entries(ctx, o) {
			if err != nil {
				t.Fatal(err)
			}
			seen[e.ID]++
			if !done {
				done = true
				// what a service that re-saves a key with INSERT OR REPLACE does
				if _, err := db.ExecContext(ctx, "INSERT OR REPLACE INTO "+info.Table+" (id, name, provider, api_key) SELECT id, name, provider, api_key FROM "+info.Table+" WHERE id = ?", first); err != nil {
					t.Fatal(err)
				}
			}
		}
		if seen[first] != 1 || len(seen) != n {
			t.Errorf("AnyOrder=%v: row %s listed %d times, %d distinct of %d", o != nil, first, seen[first], len(seen), n)
		}
	}
}

// Third review, finding 5: on a file that is not a database, a qualified
// table is a database error, as an unqualified one is, not "unknown
// schema main".
func TestReview3SQLiteNotADatabaseQualified(t *testing.T) {
	p := filepath.Join(t.TempDir(), "junk.db")
	if err := os.WriteFile(p, []byte("this is not a sqlite database, just some text that is long enough to have a header............................................."), 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := OpenDB("sqlite:" + p)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, table := range []string{"api_keys", "main.api_keys"} {
		s := New(db, mustRing(t, mustKey(t)), &Options{Table: table})
		_, err := s.Describe(context.Background())
		t.Logf("%s: code %s: %v", table, secrets.CodeOf(err), err)
		if errors.Is(err, secrets.ErrInvalidRef) {
			t.Errorf("%s on a file that is not a database: %v", table, err)
		}
		s.Close()
	}
}

// Third review, finding 4: an id column of a domain type in a schema off
// the search_path migrates (the swap casts to text, not to the domain's
// bare name, which PostgreSQL could not find).
func TestReview3PostgresDomainID(t *testing.T) {
	db := openTestDB(t, Postgres)
	ctx := context.Background()
	sch := "kw_r3s_" + randHex(4)
	for _, q := range []string{
		"CREATE SCHEMA " + sch,
		"CREATE DOMAIN " + sch + ".kid AS varchar(64)",
		"CREATE TABLE " + sch + ".api_keys (id " + sch + ".kid PRIMARY KEY, api_key TEXT)",
		"INSERT INTO " + sch + ".api_keys VALUES ('a', 'sk-legacy-a'), ('b', 'sk-legacy-b')",
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { db.Exec("DROP SCHEMA " + sch + " CASCADE") })
	s := New(db, mustRing(t, mustKey(t)), &Options{Table: sch + ".api_keys", AllowPlaintext: true})
	defer s.Close()
	if sec, err := s.Resolve(ctx, "a"); err != nil || sec.Reveal() != "sk-legacy-a" {
		t.Fatalf("Resolve: %v", err)
	}
	rep, err := s.Migrate(ctx, nil)
	if err != nil || rep.Done != 2 {
		t.Errorf("Migrate: %+v %v", rep, err)
	}
}

// Third review, finding 6: on a column with a nondeterministic
// (case-insensitive) collation, ABC names no row, though abc is there.
func TestReview3PostgresNondeterministic(t *testing.T) {
	db := openTestDB(t, Postgres)
	ctx := context.Background()
	coll := "kw_r3ci_" + randHex(4)
	if _, err := db.ExecContext(ctx, "CREATE COLLATION "+coll+" (provider = icu, locale = 'und-u-ks-level2', deterministic = false)"); err != nil {
		t.Fatalf("CREATE COLLATION with ICU (PostgreSQL built with ICU, as Debian's is): %v", err)
	}
	table := "kw_r3ci_" + randHex(4)
	t.Cleanup(func() { db.Exec("DROP TABLE " + table); db.Exec("DROP COLLATION " + coll) })
	if _, err := db.ExecContext(ctx, "CREATE TABLE "+table+" (id TEXT COLLATE "+coll+" PRIMARY KEY, api_key TEXT)"); err != nil {
		t.Fatal(err)
	}
	s := New(db, mustRing(t, mustKey(t)), &Options{Table: table})
	defer s.Close()
	if _, err := s.Insert(ctx, Row{ID: "abc"}, "sk-exact-abc"); err != nil {
		t.Fatal(err)
	}
	if sec, err := s.Resolve(ctx, "ABC"); err == nil {
		t.Errorf("Resolve(ABC) read row abc (len %d)", len(sec.Reveal()))
	}
	if err := s.UpdateValue(ctx, "ABC", "sk-overwritten"); !errors.Is(err, secrets.ErrNotFound) {
		t.Errorf("UpdateValue(ABC): %v, want not found", err)
	}
	if sec, err := s.Resolve(ctx, "abc"); err != nil || sec.Reveal() != "sk-exact-abc" {
		t.Errorf("row abc after UpdateValue(ABC): changed=%v err=%v", err == nil && sec.Reveal() != "sk-exact-abc", err)
	}
	if err := s.Delete(ctx, "ABC"); !errors.Is(err, secrets.ErrNotFound) {
		t.Errorf("Delete(ABC): %v, want not found", err)
	}
}
