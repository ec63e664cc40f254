package fernetstore

import (
	"context"
	"database/sql"
	"errors"
	"testing"

	secrets "github.com/keyward/secrets"
)

func execAll(t *testing.T, db *sql.DB, qs ...string) {
	t.Helper()
	for _, q := range qs {
		if _, err := db.ExecContext(context.Background(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// Fourth review, finding 1: a domain over a domain over citext is citext
// (the base type is followed all the way down): ABC does not read row abc,
// as it did when only the next type down was looked at.
func TestReview4NestedDomainCitext(t *testing.T) {
	db := openTestDB(t, Postgres)
	sfx := randHex(4)
	d1, d2, table := "kw_r4d1_"+sfx, "kw_r4d2_"+sfx, "kw_r4nc_"+sfx
	execAll(t, db, "CREATE EXTENSION IF NOT EXISTS citext",
		"CREATE DOMAIN "+d1+" AS citext", "CREATE DOMAIN "+d2+" AS "+d1,
		"CREATE TABLE "+table+" (id "+d2+" PRIMARY KEY, api_key TEXT)")
	t.Cleanup(func() { db.Exec("DROP TABLE " + table); db.Exec("DROP DOMAIN " + d2); db.Exec("DROP DOMAIN " + d1) })
	s := New(db, mustRing(t, mustKey(t)), &Options{Table: table})
	defer s.Close()
	abcNotABC(t, s)
}

// Fourth review, finding 2: a domain over a domain over CHAR(n) migrates:
// the swap casts to bpchar; with text it compared the padded ids and
// matched none.
func TestReview4NestedDomainBpchar(t *testing.T) {
	db := openTestDB(t, Postgres)
	ctx := context.Background()
	sfx := randHex(4)
	d1, d2, table := "kw_r4b1_"+sfx, "kw_r4b2_"+sfx, "kw_r4nb_"+sfx
	execAll(t, db, "CREATE DOMAIN "+d1+" AS char(8)", "CREATE DOMAIN "+d2+" AS "+d1,
		"CREATE TABLE "+table+" (id "+d2+" PRIMARY KEY, api_key TEXT)",
		"INSERT INTO "+table+" VALUES ('a', 'sk-legacy-a'), ('b', 'sk-legacy-b')")
	t.Cleanup(func() { db.Exec("DROP TABLE " + table); db.Exec("DROP DOMAIN " + d2); db.Exec("DROP DOMAIN " + d1) })
	s := New(db, mustRing(t, mustKey(t)), &Options{Table: table, AllowPlaintext: true})
	defer s.Close()
	if sec, err := s.Resolve(ctx, "a"); err != nil || sec.Reveal() != "sk-legacy-a" {
		t.Errorf("Resolve(a): %v", err)
	}
	rep, err := s.Migrate(ctx, nil)
	if err != nil || rep.Done != 2 {
		t.Errorf("Migrate: Done %d of 2, Skipped %d, %v", rep.Done, rep.Skipped, err)
	}
}

func ciCollation(t *testing.T, db *sql.DB) string {
	coll := "kw_r4ci_" + randHex(4)
	execAll(t, db, "CREATE COLLATION "+coll+" (provider = icu, locale = 'und-u-ks-level2', deterministic = false)")
	return coll
}

// Fourth review, finding 3: on CHAR(n) with a nondeterministic collation,
// Get's check of the id read back ignores its padding, so the row is found
// by the id it was inserted with (and still not by ABC).
func TestReview4CharNondeterministic(t *testing.T) {
	db := openTestDB(t, Postgres)
	ctx := context.Background()
	coll := ciCollation(t, db)
	table := "kw_r4cn_" + randHex(4)
	t.Cleanup(func() { db.Exec("DROP TABLE " + table); db.Exec("DROP COLLATION " + coll) })
	execAll(t, db, "CREATE TABLE "+table+" (id CHAR(8) COLLATE "+coll+" PRIMARY KEY, api_key TEXT)")
	s := New(db, mustRing(t, mustKey(t)), &Options{Table: table})
	defer s.Close()
	if _, err := s.Insert(ctx, Row{ID: "abc"}, "sk-exact-abc"); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for e, err := range s.Entries(ctx, nil) {
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, e.ID)
	}
	t.Logf("listed %q", ids)
	if sec, err := s.Resolve(ctx, "abc"); err != nil || sec.Reveal() != "sk-exact-abc" {
		t.Errorf("Resolve(abc), the row Insert wrote: %v", err)
	}
	for _, id := range ids {
		if _, err := s.Resolve(ctx, id); err != nil {
			t.Errorf("Resolve(%q), as listed: %v", id, err)
		}
	}
	if sec, err := s.Resolve(ctx, "ABC"); err == nil {
		t.Errorf("Resolve(ABC) read row abc (len %d)", len(sec.Reveal()))
	}
}

// A domain with a nondeterministic collation of its own.
func TestReview4DomainCollation(t *testing.T) {
	db := openTestDB(t, Postgres)
	coll := ciCollation(t, db)
	sfx := randHex(4)
	dom, table := "kw_r4dc_"+sfx, "kw_r4dt_"+sfx
	t.Cleanup(func() {
		db.Exec("DROP TABLE " + table)
		db.Exec("DROP DOMAIN " + dom)
		db.Exec("DROP COLLATION " + coll)
	})
	execAll(t, db, "CREATE DOMAIN "+dom+" AS text COLLATE "+coll,
		"CREATE TABLE "+table+" (id "+dom+" PRIMARY KEY, api_key TEXT)")
	s := New(db, mustRing(t, mustKey(t)), &Options{Table: table})
	defer s.Close()
	abcNotABC(t, s)
}

// Fourth review, finding 4: on a MariaDB latin2 id column, an id the
// column cannot hold is not found or an invalid ref, not a database error
// (error 1267, an illegal mix of collations).
func TestReview4MariaLatin2(t *testing.T) {
	db := openTestDB(t, MySQL)
	ctx := context.Background()
	table := "kw_r4l2_" + randHex(6)
	execAll(t, db, "CREATE TABLE "+table+" (id VARCHAR(36) CHARACTER SET latin2 PRIMARY KEY, api_key TEXT) DEFAULT CHARSET=latin2",
		"INSERT INTO "+table+" VALUES ('a', 'sk-legacy-a')")
	t.Cleanup(func() { db.Exec("DROP TABLE " + table) })
	s := New(db, mustRing(t, mustKey(t)), &Options{Table: table, AllowPlaintext: true})
	defer s.Close()
	for _, id := range []string{"日本", "€x"} {
		_, err := s.Resolve(ctx, id)
		t.Logf("Resolve(%q): code %s: %v", id, secrets.CodeOf(err), err)
		if !errors.Is(err, secrets.ErrNotFound) && !errors.Is(err, secrets.ErrInvalidRef) {
			t.Errorf("Resolve(%q) on a latin2 id column: %v, want not found or invalid ref", id, err)
		}
		err = s.Delete(ctx, id)
		if !errors.Is(err, secrets.ErrNotFound) && !errors.Is(err, secrets.ErrInvalidRef) {
			t.Errorf("Delete(%q) on a latin2 id column: %v, want not found or invalid ref", id, err)
		}
	}
}

// SQLite, held in the fourth review: an unknown schema is reported as one;
// an attached schema's real table reads; a WITHOUT ROWID table with a
// column named rowid migrates.
func TestReview4SQLiteSchemas(t *testing.T) {
	db := openTestDB(t, SQLite)
	db.SetMaxOpenConns(1)
	ctx := context.Background()
	p := t.TempDir() + "/aux.db"
	execAll(t, db, "ATTACH DATABASE '"+p+"' AS aux",
		"CREATE TABLE aux.api_keys (id TEXT PRIMARY KEY, api_key TEXT)",
		"INSERT INTO aux.api_keys VALUES ('a', 'sk-legacy-a')",
		`CREATE TABLE kw_r4wr (id TEXT PRIMARY KEY, api_key TEXT, "rowid" INTEGER) WITHOUT ROWID`,
		"INSERT INTO kw_r4wr (id, api_key) VALUES ('a', 'sk-legacy-a'), ('b', 'sk-legacy-b'), ('c', 'sk-legacy-c')")
	for _, tc := range []struct {
		table string
		want  error
	}{{"nosuch.api_keys", secrets.ErrInvalidRef}, {"AUX.api_keys", nil}, {"aux.api_keys", nil}} {
		s := New(db, mustRing(t, mustKey(t)), &Options{Table: tc.table, AllowPlaintext: true})
		_, err := s.Resolve(ctx, "a")
		t.Logf("%s: %v", tc.table, err)
		if (tc.want == nil) != (err == nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
			t.Errorf("%s: Resolve: %v, want %v", tc.table, err, tc.want)
		}
		s.Close()
	}
	s := New(db, mustRing(t, mustKey(t)), &Options{Table: "kw_r4wr", AllowPlaintext: true})
	defer s.Close()
	rep, err := s.Migrate(ctx, &WalkOptions{BatchSize: 2})
	if err != nil || rep.Done != 3 {
		t.Errorf("Migrate WITHOUT ROWID: Done %d of 3, Skipped %d, %v", rep.Done, rep.Skipped, err)
	}
	n := 0
	for _, err := range s.Entries(ctx, &ListOptions{AnyOrder: true}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 3 {
		t.Errorf("AnyOrder listed %d of 3", n)
	}
}

// abcNotABC inserts row abc and checks that ABC names no row: Resolve does
// not read it and Delete does not delete it.
func abcNotABC(t *testing.T, s *Store) {
	t.Helper()
	ctx := context.Background()
	if _, err := s.Insert(ctx, Row{ID: "abc"}, "sk-exact-abc"); err != nil {
		t.Fatal(err)
	}
	if sec, err := s.Resolve(ctx, "ABC"); err == nil {
		t.Errorf("Resolve(ABC) read row abc (len %d)", len(sec.Reveal()))
	}
	if err := s.Delete(ctx, "ABC"); !errors.Is(err, secrets.ErrNotFound) {
		t.Errorf("Delete(ABC): %v, want not found", err)
	}
}
