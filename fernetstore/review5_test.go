package fernetstore

import (
	"context"
	"errors"
	"testing"

	secrets "github.com/keyward/secrets"
)

// Fifth review, finding 1: on a MariaDB latin1/latin2 id column with a
// collation that is not its character set's default, the id parameter
// converted to the set takes the column's collation; in the set's default
// one, id = CONVERT(...) was an illegal mix of collations (error 1267) even
// for an ASCII id.
func TestReview5MariaNonDefaultCollation(t *testing.T) {
	db := openTestDB(t, MySQL)
	ctx := context.Background()
	for _, ct := range []string{"latin1 COLLATE latin1_general_cs", "latin2 COLLATE latin2_croatian_ci"} {
		table := "kw_r5c_" + randHex(6)
		execAll(t, db, "CREATE TABLE "+table+" (id VARCHAR(36) CHARACTER SET "+ct+" PRIMARY KEY, api_key TEXT)",
			"INSERT INTO "+table+" VALUES ('a', 'sk-legacy-a'), ('b', 'sk-legacy-b')")
		t.Cleanup(func() { db.Exec("DROP TABLE " + table) })
		s := New(db, mustRing(t, mustKey(t)), &Options{Table: table, AllowPlaintext: true})
		if sec, err := s.Resolve(ctx, "a"); err != nil || sec.Reveal() != "sk-legacy-a" {
			t.Errorf("%s: Resolve(a): %v, want row a", ct, err)
		}
		if err := s.UpdateValue(ctx, "b", "sk-new-b"); err != nil {
			t.Errorf("%s: UpdateValue(b): %v", ct, err)
		}
		// Row b holds a token since UpdateValue: one row to migrate.
		if rep, err := s.Migrate(ctx, nil); err != nil || rep.Done != 1 || rep.AlreadyCurrent != 1 {
			t.Errorf("%s: Migrate: Done %d of 1, current %d, Skipped %d, %v", ct, rep.Done, rep.AlreadyCurrent, rep.Skipped, err)
		}
		s.Close()
	}
}

// Lossy conversion: on latin2 'ā' becomes '?', so the index finds row '?';
// the exact comparison must still refuse it.
func TestReview5MariaLossyLatin2(t *testing.T) {
	db := openTestDB(t, MySQL)
	ctx := context.Background()
	table := "kw_r5l_" + randHex(6)
	execAll(t, db, "CREATE TABLE "+table+" (id VARCHAR(36) CHARACTER SET latin2 PRIMARY KEY, api_key TEXT) DEFAULT CHARSET=latin2",
		"INSERT INTO "+table+" VALUES ('?', 'sk-legacy-q'), ('?x', 'sk-legacy-qx')")
	t.Cleanup(func() { db.Exec("DROP TABLE " + table) })
	s := New(db, mustRing(t, mustKey(t)), &Options{Table: table, AllowPlaintext: true})
	defer s.Close()
	for _, id := range []string{"ā", "āx", "日x"} {
		if sec, err := s.Resolve(ctx, id); err == nil {
			t.Errorf("Resolve(%q) read a '?' row (len %d)", id, len(sec.Reveal()))
		}
		if err := s.UpdateValue(ctx, id, "sk-overwritten"); err == nil {
			t.Errorf("UpdateValue(%q) overwrote a '?' row", id)
		}
		if err := s.Delete(ctx, id); err == nil {
			t.Errorf("Delete(%q) deleted a '?' row", id)
		}
	}
	var n int
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+table+" WHERE CAST(api_key AS BINARY) IN ('sk-legacy-q', 'sk-legacy-qx')").Scan(&n); err != nil || n != 2 {
		t.Errorf("'?' rows left untouched: %d of 2, %v", n, err)
	}
	if rep, err := s.Migrate(ctx, nil); err != nil || rep.Done != 2 {
		t.Errorf("Migrate: Done %d of 2, Skipped %d, %v", rep.Done, rep.Skipped, err)
	}
}

// PostgreSQL domains over uuid, int, and a domain in a schema off the
// search_path; an enum id.
func TestReview5PGDomains(t *testing.T) {
	db := openTestDB(t, Postgres)
	ctx := context.Background()
	sfx := randHex(4)
	sch := "kw_r5s_" + sfx
	execAll(t, db, "CREATE SCHEMA "+sch,
		"CREATE DOMAIN "+sch+".du AS uuid", "CREATE DOMAIN "+sch+".du2 AS "+sch+".du",
		"CREATE DOMAIN "+sch+".di AS int", "CREATE DOMAIN "+sch+".di2 AS "+sch+".di",
		"CREATE TABLE "+sch+".tu (id "+sch+".du2 PRIMARY KEY DEFAULT gen_random_uuid(), api_key TEXT)",
		"CREATE TABLE "+sch+".ti (id "+sch+".di2 PRIMARY KEY, api_key TEXT)",
		"INSERT INTO "+sch+".ti VALUES (1, 'sk-legacy-1')")
	t.Cleanup(func() { db.Exec("DROP SCHEMA " + sch + " CASCADE") })
	s := New(db, mustRing(t, mustKey(t)), &Options{Table: sch + ".tu"})
	id, err := s.Insert(ctx, Row{}, "sk-u")
	t.Logf("uuid-domain Insert: %q %v", id, err)
	if err != nil {
		t.Errorf("uuid domain Insert: %v", err)
	} else if sec, err := s.Resolve(ctx, id); err != nil || sec.Reveal() != "sk-u" {
		t.Errorf("uuid domain Resolve(%q): %v", id, err)
	}
	if _, err := s.Resolve(ctx, "not-a-uuid"); !errors.Is(err, secrets.ErrInvalidRef) {
		t.Errorf("uuid domain Resolve(not-a-uuid): %v, want invalid ref", err)
	}
	s.Close()
	s = New(db, mustRing(t, mustKey(t)), &Options{Table: sch + ".ti", AllowPlaintext: true})
	if sec, err := s.Resolve(ctx, "1"); err != nil || sec.Reveal() != "sk-legacy-1" {
		t.Errorf("int domain Resolve(1): %v", err)
	}
	if _, err := s.Resolve(ctx, "abc"); !errors.Is(err, secrets.ErrInvalidRef) {
		t.Errorf("int domain Resolve(abc): %v, want invalid ref", err)
	}
	if rep, err := s.Migrate(ctx, nil); err != nil || rep.Done != 1 {
		t.Errorf("int domain Migrate: Done %d, %v", rep.Done, err)
	}
	s.Close()
}
