package fernetstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"iter"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	secrets "github.com/keyward/secrets"
)

// wantInvalid fails t unless err is an ErrInvalidRef that says every one
// of says.
func wantInvalid(t *testing.T, what string, err error, says ...string) {
	t.Helper()
	if !errors.Is(err, secrets.ErrInvalidRef) {
		t.Errorf("%s: %v, want ErrInvalidRef", what, err)
		return
	}
	for _, s := range says {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("%s: %q does not say %q", what, err, s)
		}
	}
}

// firstErr returns the error of the first entry seq yields, or an error
// saying it yielded none.
func firstErr(seq iter.Seq2[Entry, error]) error {
	for _, err := range seq {
		return err
	}
	return errors.New("no entry and no error")
}

// TestUUIDColumnRefusesOtherIDs (review finding 3): on a PostgreSQL table
// whose id column is the native uuid type, an id that is not a UUID is an
// invalid ref, as "abc" is where ids are integers, refused without asking
// the database; the other forms PostgreSQL reads as a UUID are refused with
// the one to write.
// On the old code the database refused the id (22P02), reported as
// ErrUnavailable: the CLI exited 4, "server down".
func TestUUIDColumnRefusesOtherIDs(t *testing.T) {
	db := openTestDB(t, Postgres)
	ctx := context.Background()
	table := "kw_uuid_" + randHex(6)
	if _, err := db.Exec(fmt.Sprintf("CREATE TABLE %s (id UUID PRIMARY KEY, name TEXT NOT NULL DEFAULT '', provider TEXT NOT NULL DEFAULT '', api_key TEXT, expires_at TIMESTAMPTZ, created_at TIMESTAMPTZ NOT NULL DEFAULT now())", table)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Exec("DROP TABLE " + table) })
	s := New(db, mustRing(t, mustKey(t)), &Options{Table: table})
	defer s.Close()
	id, err := s.Put(ctx, "n", "p", "sk-uuid-row", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	u := uuid.MustParse(id)
	hex := strings.ReplaceAll(id, "-", "")
	if sec, err := s.Resolve(ctx, id); err != nil || sec.Reveal() != "sk-uuid-row" {
		t.Errorf("Resolve(%s): %v", id, err)
	}
	// Every other form PostgreSQL reads as the same UUID is refused, saying
	// how to write it (issue 13: a ref names a row one way only, so the
	// cache entry a change invalidates is the one cached).
	for _, ref := range []string{strings.ToUpper(id), "{" + id + "}", hex, hex[:4] + "-" + hex[4:8] + "-" + hex[8:]} {
		_, err := s.Resolve(ctx, ref)
		wantInvalid(t, "Resolve("+ref+"), a form PostgreSQL reads as "+u.String(), err, "write the row id as "+id)
	}
	bad := []string{"abc", "1", id[:35], id + "0", id + " ", " " + id, "{" + id, id + "}", "-" + hex, hex + "-", strings.Replace(id, "-", "--", 1), "g" + id[1:], "urn:uuid:" + id}
	for _, ref := range bad {
		_, err := s.Resolve(ctx, ref)
		wantInvalid(t, "Resolve("+ref+")", err, "UUID")
		wantInvalid(t, "Update("+ref+")", s.Update(ctx, ref, "sk-x", time.Time{}), "UUID")
		wantInvalid(t, "UpdateValue("+ref+")", s.UpdateValue(ctx, ref, "sk-x"), "UUID")
		wantInvalid(t, "Delete("+ref+")", s.Delete(ctx, ref), "UUID")
		_, err = s.Insert(ctx, Row{ID: ref}, "sk-x")
		wantInvalid(t, "Insert(ID "+ref+")", err, "UUID")
		wantInvalid(t, "Entries(After "+ref+")", firstErr(s.Entries(ctx, &ListOptions{After: ref})), "UUID")
		_, err = s.Migrate(ctx, &WalkOptions{After: ref})
		wantInvalid(t, "Migrate(After "+ref+")", err)
	}
	if sec, err := s.Resolve(ctx, id); err != nil || sec.Reveal() != "sk-uuid-row" {
		t.Fatalf("the row after the refused writes: %v", err)
	}
	// The store reads as PostgreSQL reads: a '-' or a brace at every place,
	// each character dropped or doubled.
	var forms []string
	for i := 0; i <= len(hex); i++ {
		forms = append(forms, hex[:i]+"-"+hex[i:], "{"+hex[:i]+"-"+hex[i:]+"}", hex[:i]+"}"+hex[i:])
	}
	for i := 0; i < len(id); i++ {
		forms = append(forms, id[:i]+id[i+1:], id[:i+1]+id[i:], "{"+id[:i]+id[i+1:]+"}")
	}
	for _, f := range forms {
		var out string
		err := db.QueryRowContext(ctx, "SELECT $1::text::uuid::text", f).Scan(&out)
		if reads := err == nil; reads != isPostgresUUID(f) {
			t.Errorf("%q: PostgreSQL reads it: %v (%v); isPostgresUUID: %v", f, reads, err, !reads)
		}
	}
	given := uuid.NewString()
	if got, err := s.Insert(ctx, Row{ID: given}, "sk-given"); err != nil || got != given {
		t.Fatalf("Insert with a UUID: %q %v", got, err)
	}
	if es, err := s.List(ctx); err != nil || len(es) != 2 {
		t.Fatalf("List: %d rows, %v", len(es), err)
	}
}

// TestIDLongerThanColumn (review finding 4): an id longer than the id
// column holds (the Python service's VARCHAR(36)) cannot be one of its
// rows: reading, updating or deleting one is an invalid ref, as an id
// longer than 255 bytes is, and inserting one is an invalid ref naming the
// column and its length, all refused without asking the database. Ids of
// 36 characters, of more than one byte each, still fit. SQLite keeps any
// length in a VARCHAR(36), so there such an id is a row like another. On
// the old code PostgreSQL (22001) and MariaDB (1406) refused the insert,
// reported as ErrUnavailable ("server down", exit 4).
func TestIDLongerThanColumn(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *sql.DB, d Dialect) {
		ctx := context.Background()
		table := pythonTable(t, db, d)
		ring := mustRing(t, mustKey(t))
		s := New(db, ring, &Options{Table: table})
		defer s.Close()
		wide := strings.Repeat("é", 36) // 72 bytes, 36 characters
		if got, err := s.Insert(ctx, Row{ID: wide, Name: "wide"}, "sk-wide"); err != nil || got != wide {
			t.Fatalf("Insert of 36 two-byte characters: %q %v", got, err)
		}
		if sec, err := s.Resolve(ctx, wide); err != nil || sec.Reveal() != "sk-wide" {
			t.Fatalf("Resolve of 36 two-byte characters: %v", err)
		}
		long := strings.Repeat("k", 37)
		if d == SQLite {
			if _, err := s.Insert(ctx, Row{ID: long}, "sk-long"); err != nil {
				t.Fatalf("Insert of 37 characters on SQLite: %v", err)
			}
			if sec, err := s.Resolve(ctx, long); err != nil || sec.Reveal() != "sk-long" {
				t.Fatalf("Resolve of 37 characters on SQLite: %v", err)
			}
			return
		}
		for _, id := range []string{long, wide + "k", strings.Repeat("k", 36) + " "} {
			_, err := s.Insert(ctx, Row{ID: id}, "sk-long")
			wantInvalid(t, "Insert(ID of 37 characters)", err, "at most 36 characters", "id column id")
			_, err = s.Put(ctx, "n", "p", "sk-put", time.Time{}) // no id given: a UUID fits
			if err != nil {
				t.Fatalf("Put: %v", err)
			}
			_, err = s.Resolve(ctx, id)
			wantInvalid(t, "Resolve", err, "at most 36 characters")
			wantInvalid(t, "Update", s.Update(ctx, id, "sk-x", time.Time{}), "at most 36 characters")
			wantInvalid(t, "UpdateValue", s.UpdateValue(ctx, id, "sk-x"), "at most 36 characters")
			wantInvalid(t, "Delete", s.Delete(ctx, id), "at most 36 characters")
			wantInvalid(t, "Entries(After)", firstErr(s.Entries(ctx, &ListOptions{After: id})), "at most 36 characters")
			_, err = s.Migrate(ctx, &WalkOptions{After: id})
			wantInvalid(t, "Migrate(After)", err)
		}
		// A column too short for the UUID a new row gets: Put says to give
		// the id, and an id that fits is written.
		short := "kw_short_" + randHex(6)
		if _, err := db.Exec(fmt.Sprintf("CREATE TABLE %s (id VARCHAR(20) PRIMARY KEY, api_key TEXT)", short)); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Exec("DROP TABLE " + short) })
		ss := New(db, ring, &Options{Table: short})
		defer ss.Close()
		_, err := ss.Put(ctx, "n", "p", "sk-short", time.Time{})
		wantInvalid(t, "Put on a VARCHAR(20) id", err, "at most 20 characters", "give the row its id")
		if got, err := ss.Insert(ctx, Row{ID: "bot-7"}, "sk-short"); err != nil || got != "bot-7" {
			t.Fatalf("Insert with an id that fits: %q %v", got, err)
		}
	})
}

// TestIDLargerThanIntColumn (review finding 4, for integer ids): an id
// larger than an integer id column holds (SQLAlchemy's Integer primary key
// is PostgreSQL's SERIAL, an int4, and MariaDB's INT) is an invalid ref
// naming the column's largest id, refused without asking the database. On
// the old code pgx refused to encode it for every call, and MariaDB refused
// the insert (1264), reported as ErrUnavailable.
func TestIDLargerThanIntColumn(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *sql.DB, d Dialect) {
		ctx := context.Background()
		table := "kw_int4_" + randHex(6)
		idDef, max := "INTEGER PRIMARY KEY", "9223372036854775807"
		switch d {
		case Postgres:
			idDef, max = "SERIAL PRIMARY KEY", "2147483647"
		case MySQL:
			idDef, max = "INT AUTO_INCREMENT PRIMARY KEY", "2147483647"
		}
		if _, err := db.Exec(fmt.Sprintf("CREATE TABLE %s (id %s, api_key TEXT)", table, idDef)); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Exec("DROP TABLE " + table) })
		s := New(db, mustRing(t, mustKey(t)), &Options{Table: table})
		defer s.Close()
		if got, err := s.Insert(ctx, Row{ID: max}, "sk-max"); err != nil || got != max {
			t.Fatalf("Insert of the largest id: %q %v", got, err)
		}
		if sec, err := s.Resolve(ctx, max); err != nil || sec.Reveal() != "sk-max" {
			t.Fatalf("Resolve of the largest id: %v", err)
		}
		if d == SQLite {
			return // an integer is 64 bits there, as rowID reads it
		}
		over := "2147483648"
		_, err := s.Insert(ctx, Row{ID: over}, "sk-over")
		wantInvalid(t, "Insert", err, "at most "+max, "id column id")
		_, err = s.Resolve(ctx, over)
		wantInvalid(t, "Resolve", err, "at most "+max)
		wantInvalid(t, "Update", s.Update(ctx, over, "sk-x", time.Time{}), "at most "+max)
		wantInvalid(t, "UpdateValue", s.UpdateValue(ctx, over, "sk-x"), "at most "+max)
		wantInvalid(t, "Delete", s.Delete(ctx, over), "at most "+max)
		wantInvalid(t, "Entries(After)", firstErr(s.Entries(ctx, &ListOptions{After: over})), "at most "+max)
		_, err = s.Migrate(ctx, &WalkOptions{After: over})
		wantInvalid(t, "Migrate(After)", err)
	})
}

// untypedTable creates a SQLite table whose id column has no declared
// type, holding the given ids as they are bound (int64 or string), each
// with value's token.
func untypedTable(t *testing.T, db *sql.DB, ring *KeyRing, ids ...any) string {
	t.Helper()
	table := "kw_untyped_" + randHex(6)
	if _, err := db.Exec("CREATE TABLE " + table + " (id PRIMARY KEY, name TEXT NOT NULL DEFAULT '', provider TEXT NOT NULL DEFAULT '', api_key TEXT, expires_at TIMESTAMP, created_at TIMESTAMP)"); err != nil {
		t.Fatal(err)
	}
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if _, err := tx.Exec("INSERT INTO "+table+" (id, api_key) VALUES (?, ?)", id, mustEncrypt(t, ring, fmt.Sprint("sk-", id))); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	return table
}

// TestSQLiteUntypedID (review finding 5): a SQLite id column with no
// declared type keeps each id as it was bound, and SQLite never finds an
// integer by its text, so the store decides from the stored ids: integers
// are integer ids (found by their text form, listed page after page), text
// is text ids; a mix, or an empty table without id_type=, is refused with
// a message saying to declare the column's type or pass id_type=. Put on
// such a column of integers, which SQLite does not assign, says to give
// the id. On the old code the column was text: "5" found no row and List
// stopped after its first page.
func TestSQLiteUntypedID(t *testing.T) {
	db := openTestDB(t, SQLite)
	ctx := context.Background()
	ring := mustRing(t, mustKey(t))
	n := listPage + 234
	var ids []any
	for i := 1; i <= n; i++ {
		ids = append(ids, int64(i))
	}
	ints := untypedTable(t, db, ring, ids...)
	s := New(db, ring, &Options{Table: ints})
	defer s.Close()
	if info, err := s.Describe(ctx); err != nil || info.IDType != IDInteger {
		t.Fatalf("Describe: %+v %v", info, err)
	}
	for _, id := range []string{"1", "5", strconv.Itoa(n)} {
		if sec, err := s.Resolve(ctx, id); err != nil || sec.Reveal() != "sk-"+id {
			t.Fatalf("Resolve(%s): %v", id, err)
		}
	}
	seen := 0
	for e, err := range s.Entries(ctx, nil) {
		if err != nil {
			t.Fatal(err)
		}
		if seen++; e.ID != strconv.Itoa(seen) {
			t.Fatalf("entry %d has id %s", seen, e.ID)
		}
	}
	if seen != n {
		t.Fatalf("List gave %d rows of %d", seen, n)
	}
	if err := s.UpdateValue(ctx, "7", "sk-seven"); err != nil {
		t.Fatal(err)
	}
	if sec, err := s.Resolve(ctx, "7"); err != nil || sec.Reveal() != "sk-seven" {
		t.Fatalf("after UpdateValue: %v", err)
	}
	if err := s.Delete(ctx, "8"); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Insert(ctx, Row{ID: "5000"}, "sk-5000"); err != nil || got != "5000" {
		t.Fatalf("Insert with an id: %q %v", got, err)
	}
	var typ string
	if err := db.QueryRow("SELECT typeof(id) FROM " + ints + " WHERE id = 5000").Scan(&typ); err != nil || typ != "integer" {
		t.Fatalf("the inserted id is %q (%v), want an integer", typ, err)
	}
	_, err := s.Put(ctx, "n", "p", "sk-new", time.Time{})
	wantInvalid(t, "Put", err, "give the row its id", "INTEGER PRIMARY KEY")
	if rep, err := s.Migrate(ctx, nil); err != nil || rep.Scanned != n {
		t.Fatalf("Migrate: %+v %v", rep, err)
	}

	texts := untypedTable(t, db, ring, "a1", "b2")
	st := New(db, ring, &Options{Table: texts})
	defer st.Close()
	if info, err := st.Describe(ctx); err != nil || info.IDType != IDText {
		t.Fatalf("Describe(text ids): %+v %v", info, err)
	}
	if _, err := st.Put(ctx, "n", "p", "sk-new", time.Time{}); err != nil {
		t.Fatalf("Put on text ids: %v", err)
	}

	for _, c := range []struct {
		name  string
		table string
		opts  Options
		says  []string
	}{
		{"mixed", untypedTable(t, db, ring, int64(1), "a"), Options{}, []string{"no declared type", "both integers and text", "declare"}},
		{"mixed, id_type=integer", untypedTable(t, db, ring, int64(1), "a"), Options{IDType: IDInteger}, []string{"both integers and text"}},
		{"empty", untypedTable(t, db, ring), Options{}, []string{"no declared type", "id_type=integer", "declare its type"}},
		{"integers, id_type=text", ints, Options{IDType: IDText}, []string{"id_type=text", "holds integers"}},
		{"text, id_type=integer", texts, Options{IDType: IDInteger}, []string{"id_type=integer", "holds text"}},
		{"reals", untypedTable(t, db, ring, 1.5, 2.5), Options{}, []string{"no declared type"}},
	} {
		o := c.opts
		o.Table = c.table
		bad := New(db, ring, &o)
		_, err := bad.Resolve(ctx, "1")
		wantInvalid(t, c.name+": Resolve", err, c.says...)
		_, err = bad.List(ctx)
		wantInvalid(t, c.name+": List", err, c.says...)
		bad.Close()
	}
	// An empty table takes the type id_type= gives.
	for _, idType := range []IDType{IDInteger, IDText} {
		e := New(db, ring, &Options{Table: untypedTable(t, db, ring), IDType: idType})
		if info, err := e.Describe(ctx); err != nil || info.IDType != idType {
			t.Errorf("Describe(empty, id_type=%s): %+v %v", idType, info, err)
		}
		if got, err := e.Insert(ctx, Row{ID: "12"}, "sk-12"); err != nil || got != "12" {
			t.Errorf("Insert(empty, id_type=%s): %q %v", idType, got, err)
		} else if sec, err := e.Resolve(ctx, "12"); err != nil || sec.Reveal() != "sk-12" {
			t.Errorf("Resolve(empty, id_type=%s): %v", idType, err)
		}
		e.Close()
	}
}

// TestSQLiteIntegerIDNotRowid: on SQLite only an INTEGER PRIMARY KEY is
// the rowid alias that SQLite fills in; a BIGINT PRIMARY KEY (what
// SQLAlchemy's BigInteger emits) gets no id, and the old code inserted the
// row with a NULL id and reported its rowid as the id. Put now refuses and
// says to give the id; Insert with an id still works.
func TestSQLiteIntegerIDNotRowid(t *testing.T) {
	db := openTestDB(t, SQLite)
	ctx := context.Background()
	ring := mustRing(t, mustKey(t))
	table := "kw_bigint_" + randHex(6)
	if _, err := db.Exec("CREATE TABLE " + table + " (id BIGINT PRIMARY KEY, name TEXT NOT NULL DEFAULT '', provider TEXT NOT NULL DEFAULT '', api_key TEXT, expires_at TIMESTAMP, created_at TIMESTAMP)"); err != nil {
		t.Fatal(err)
	}
	s := New(db, ring, &Options{Table: table})
	defer s.Close()
	_, err := s.Put(ctx, "n", "p", "sk-bigint", time.Time{})
	wantInvalid(t, "Put", err, "give the row its id", "INTEGER PRIMARY KEY")
	var nulls int
	if err := db.QueryRow("SELECT count(*) FROM " + table + " WHERE id IS NULL").Scan(&nulls); err != nil || nulls != 0 {
		t.Fatalf("%d rows with a NULL id (%v)", nulls, err)
	}
	if got, err := s.Insert(ctx, Row{ID: "41"}, "sk-41"); err != nil || got != "41" {
		t.Fatalf("Insert with an id: %q %v", got, err)
	}
	if sec, err := s.Resolve(ctx, "41"); err != nil || sec.Reveal() != "sk-41" {
		t.Fatalf("Resolve(41): %v", err)
	}
}

// TestEmptyValueRefused (review finding 7): Put, Insert, Update and
// UpdateValue refuse "" with a reason, and leave the row as it was; the old
// code stored a token of nothing, which resolved to an empty key.
func TestEmptyValueRefused(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *sql.DB, d Dialect) {
		ctx := context.Background()
		s := newTestStore(t, db, mustRing(t, mustKey(t)), nil)
		id, err := s.Put(ctx, "n", "p", "sk-kept", time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.Put(ctx, "n", "p", "", time.Time{})
		wantInvalid(t, "Put", err, "value is empty")
		_, err = s.Insert(ctx, Row{Name: "n"}, "")
		wantInvalid(t, "Insert", err, "value is empty")
		wantInvalid(t, "Update", s.Update(ctx, id, "", time.Time{}), "value is empty")
		wantInvalid(t, "UpdateValue", s.UpdateValue(ctx, id, ""), "value is empty")
		if sec, err := s.Resolve(ctx, id); err != nil || sec.Reveal() != "sk-kept" {
			t.Fatalf("the row after the refusals: %v", err)
		}
		n := 0
		for _, err := range s.Entries(ctx, nil) {
			if err != nil {
				t.Fatal(err)
			}
			n++
		}
		if n != 1 {
			t.Fatalf("%d rows, want 1", n)
		}
	})
}

// TestPostgresStringTypes (review finding 8): a PostgreSQL column of an
// extension's string type (citext), which pgx names only by its OID, or
// of the string type name, is a text column: an id column of either
// reads, lists and migrates, and a citext api_key holds tokens. The old
// code refused the table: "its column id has type 17180, which keyward
// cannot use as an id".
func TestPostgresStringTypes(t *testing.T) {
	db := openTestDB(t, Postgres)
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, "CREATE EXTENSION IF NOT EXISTS citext"); err != nil {
		t.Fatalf("citext (in postgresql-contrib) is needed: %v", err)
	}
	ring := mustRing(t, mustKey(t))
	for _, idType := range []string{"CITEXT", "NAME"} {
		t.Run(idType, func(t *testing.T) {
			table := "kw_strtype_" + randHex(6)
			if _, err := db.ExecContext(ctx, "CREATE TABLE "+table+" (id "+idType+" PRIMARY KEY, name TEXT NOT NULL DEFAULT '', provider TEXT NOT NULL DEFAULT '', api_key CITEXT, expires_at TIMESTAMP, created_at TIMESTAMP)"); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Exec("DROP TABLE " + table) })
			if _, err := db.ExecContext(ctx, "INSERT INTO "+table+" (id, api_key) VALUES ('a1', $1), ('b2', 'sk-legacy-b2')", mustEncrypt(t, ring, "sk-a1")); err != nil {
				t.Fatal(err)
			}
			s := New(db, ring, &Options{Table: table, AllowPlaintext: true})
			defer s.Close()
			if info, err := s.Describe(ctx); err != nil || info.IDType != IDText {
				t.Fatalf("Describe: %+v %v", info, err)
			}
			if sec, err := s.Resolve(ctx, "a1"); err != nil || sec.Reveal() != "sk-a1" {
				t.Fatalf("Resolve(a1): %v", err)
			}
			id, err := s.Put(ctx, "n", "p", "sk-new", time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			if rep, err := s.Migrate(ctx, nil); err != nil || rep.Scanned != 3 || rep.Done != 1 {
				t.Fatalf("Migrate: %+v %v", rep, err)
			}
			for ref, want := range map[string]string{"a1": "sk-a1", "b2": "sk-legacy-b2", id: "sk-new"} {
				if sec, err := s.Resolve(ctx, ref); err != nil || sec.Reveal() != want {
					t.Fatalf("Resolve(%s) after Migrate: %v", ref, err)
				}
			}
		})
	}
}

// TestSQLiteIntegerColumnHoldingText (second review, finding 2): a SQLite
// BIGINT PRIMARY KEY (integer affinity, not the rowid) keeps an id that is
// no number as text. The old code read the table as integer ids, and List
// read the page ending on such an id again and again, forever (the text
// id's argument was 0), while Migrate counted its rows as changed by
// others. Now the table is refused with the reason, and List, Migrate and
// Resolve say so; the same table without the text ids reads.
func TestSQLiteIntegerColumnHoldingText(t *testing.T) {
	db := openTestDB(t, SQLite)
	ctx := context.Background()
	ring := mustRing(t, mustKey(t))
	table := "kw_bigtext_" + randHex(6)
	if _, err := db.Exec("CREATE TABLE " + table + " (id BIGINT PRIMARY KEY, api_key TEXT)"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM c WHERE n < 999) INSERT INTO " + table + " SELECT n, 'sk-legacy-' || n FROM c"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("INSERT INTO " + table + " VALUES ('a', 'sk-legacy-a'), ('b', 'sk-legacy-b')"); err != nil {
		t.Fatal(err)
	}
	s := New(db, ring, &Options{Table: table, AllowPlaintext: true})
	defer s.Close()
	says := []string{"holds ids that are not integers", "VARCHAR(36)"}
	n := 0
	var err error
	for _, err = range s.Entries(ctx, nil) {
		if err != nil {
			break
		}
		if n++; n > 2000 {
			t.Fatal("List read more rows than the table holds")
		}
	}
	wantInvalid(t, "List", err, says...)
	_, err = s.Migrate(ctx, nil)
	wantInvalid(t, "Migrate", err, says...)
	_, err = s.Resolve(ctx, "5")
	wantInvalid(t, "Resolve", err, says...)

	if _, err := db.Exec("DELETE FROM " + table + " WHERE typeof(id) = 'text'"); err != nil {
		t.Fatal(err)
	}
	s2 := New(db, ring, &Options{Table: table, AllowPlaintext: true})
	defer s2.Close()
	if rep, err := s2.Migrate(ctx, nil); err != nil || rep.Done != 999 {
		t.Fatalf("Migrate of the integer ids: %+v %v", rep, err)
	}
}

// TestPostgresCharID (second review, finding 4): a PostgreSQL CHAR(36) id
// comes back padded with spaces; the old multi-row compare-and-swap cast it
// to text, which keeps the padding, so no row ever matched: Migrate and
// Rotate wrote nothing and counted every row as changed by others. The swap
// now casts to the column's own type.
func TestPostgresCharID(t *testing.T) {
	db := openTestDB(t, Postgres)
	ctx := context.Background()
	oldKey, newKey := mustKey(t), mustKey(t)
	table := "kw_charid_" + randHex(6)
	if _, err := db.ExecContext(ctx, "CREATE TABLE "+table+" (id CHAR(36) PRIMARY KEY, name TEXT NOT NULL DEFAULT '', api_key TEXT)"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Exec("DROP TABLE " + table) })
	if _, err := db.ExecContext(ctx, "INSERT INTO "+table+" (id, api_key) VALUES ('abc', 'sk-legacy-abc'), ('def', 'sk-legacy-def'), ('ghi', $1)", mustEncrypt(t, mustRing(t, oldKey), "sk-ghi")); err != nil {
		t.Fatal(err)
	}
	s := New(db, mustRing(t, newKey, oldKey), &Options{Table: table, AllowPlaintext: true})
	defer s.Close()
	if rep, err := s.Migrate(ctx, nil); err != nil || rep.Done != 2 || rep.Skipped != 0 {
		t.Fatalf("Migrate: %+v %v", rep, err)
	}
	if rep, err := s.Rotate(ctx, nil); err != nil || rep.Done != 1 || rep.Skipped != 0 {
		t.Fatalf("Rotate: %+v %v", rep, err)
	}
	for id, want := range map[string]string{"abc": "sk-legacy-abc", "def": "sk-legacy-def", "ghi": "sk-ghi"} {
		if sec, err := s.Resolve(ctx, id); err != nil || sec.Reveal() != want {
			t.Fatalf("Resolve(%s): %v", id, err)
		}
	}
	for e, err := range s.Entries(ctx, nil) {
		if err != nil {
			t.Fatal(err)
		}
		if e.State != StatePrimary {
			t.Errorf("row %q is %s after Migrate and Rotate", e.ID, e.State)
		}
	}
}

// TestSQLiteBlobValues (second review, finding 3): Python's
// fernet.encrypt returns bytes, and sqlite3 stores bytes as a BLOB. The old
// compare-and-swap compared the BLOB with a TEXT parameter, never equal,
// so Migrate and Rotate left such rows as they were and counted them as
// changed by others, on every run. Now they are rewritten (as TEXT, which
// Python's Fernet reads as well).
func TestSQLiteBlobValues(t *testing.T) {
	db := openTestDB(t, SQLite)
	ctx := context.Background()
	oldKey, newKey := mustKey(t), mustKey(t)
	s := newTestStore(t, db, mustRing(t, newKey, oldKey), &Options{AllowPlaintext: true})
	info, err := s.Describe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ins := func(v []byte) string {
		res, err := db.ExecContext(ctx, "INSERT INTO "+info.Table+" (name, provider, api_key) VALUES ('n', 'p', ?)", v)
		if err != nil {
			t.Fatal(err)
		}
		n, _ := res.LastInsertId()
		return strconv.FormatInt(n, 10)
	}
	plain := ins([]byte("sk-legacy-blob"))
	old := ins([]byte(mustEncrypt(t, mustRing(t, oldKey), "sk-old-blob")))
	var typ string
	if err := db.QueryRow("SELECT typeof(api_key) FROM "+info.Table+" WHERE id = ?", plain).Scan(&typ); err != nil || typ != "blob" {
		t.Fatalf("the test row is %q (%v), want a blob", typ, err)
	}
	if rep, err := s.Migrate(ctx, nil); err != nil || rep.Done != 1 || rep.Skipped != 0 {
		t.Fatalf("Migrate: %+v %v", rep, err)
	}
	if rep, err := s.Rotate(ctx, nil); err != nil || rep.Done != 1 || rep.Skipped != 0 {
		t.Fatalf("Rotate: %+v %v", rep, err)
	}
	for id, want := range map[string]string{plain: "sk-legacy-blob", old: "sk-old-blob"} {
		if sec, err := s.Resolve(ctx, id); err != nil || sec.Reveal() != want {
			t.Fatalf("Resolve(%s): %v", id, err)
		}
	}
}

// TestIDsMatchExactly (second review, finding 5): MariaDB's default
// collations ignore case, accents and trailing spaces, and PostgreSQL's
// citext ignores case, so on the old code Resolve("ABC") read row "abc",
// and Update and Delete changed it; Delete("É") deleted row "e". A row
// query now finds only the id given, byte for byte.
func TestIDsMatchExactly(t *testing.T) {
	ctx := context.Background()
	ring := mustRing(t, mustKey(t))
	for _, c := range []struct {
		d       Dialect
		ddl     string
		ids     []string
		missing []string
	}{
		{MySQL, "(id VARCHAR(36) COLLATE utf8mb4_general_ci PRIMARY KEY, api_key TEXT) DEFAULT CHARSET=utf8mb4", []string{"abc", "e", "a"}, []string{"ABC", "É", "abc ", "ā"}},
		{Postgres, "(id CITEXT PRIMARY KEY, api_key TEXT)", []string{"Abc", "e"}, []string{"aBC", "ABC", "E"}},
	} {
		t.Run(string(c.d), func(t *testing.T) {
			db := openTestDB(t, c.d)
			if c.d == Postgres {
				if _, err := db.ExecContext(ctx, "CREATE EXTENSION IF NOT EXISTS citext"); err != nil {
					t.Fatalf("citext (in postgresql-contrib) is needed: %v", err)
				}
			}
			table := "kw_exact_" + randHex(6)
			if _, err := db.ExecContext(ctx, "CREATE TABLE "+table+" "+c.ddl); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Exec("DROP TABLE " + table) })
			s := New(db, ring, &Options{Table: table})
			defer s.Close()
			for _, id := range c.ids {
				if _, err := s.Insert(ctx, Row{ID: id}, "sk-exact-"+id); err != nil {
					t.Fatal(err)
				}
			}
			for _, id := range c.missing {
				ref := RowRef(id)
				if _, err := s.Resolve(ctx, ref); !errors.Is(err, secrets.ErrNotFound) {
					t.Errorf("Resolve(%q): %v, want not found", id, err)
				}
				if err := s.UpdateValue(ctx, ref, "sk-overwritten"); !errors.Is(err, secrets.ErrNotFound) {
					t.Errorf("UpdateValue(%q): %v, want not found", id, err)
				}
				if err := s.Update(ctx, ref, "sk-overwritten", time.Time{}); !errors.Is(err, secrets.ErrNotFound) {
					t.Errorf("Update(%q): %v, want not found", id, err)
				}
				if err := s.Delete(ctx, ref); !errors.Is(err, secrets.ErrNotFound) {
					t.Errorf("Delete(%q): %v, want not found", id, err)
				}
			}
			for _, id := range c.ids {
				if sec, err := s.Resolve(ctx, RowRef(id)); err != nil || sec.Reveal() != "sk-exact-"+id {
					t.Errorf("Resolve(%q) after the misses: %v", id, err)
				}
			}
			if err := s.UpdateValue(ctx, RowRef(c.ids[0]), "sk-exact-new"); err != nil {
				t.Fatal(err)
			}
			if err := s.Delete(ctx, RowRef(c.ids[1])); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestEntriesAnyOrder: with AnyOrder, Entries on a SQLite table whose id
// is not the rowid pages on the rowid, and still yields every row once,
// honours Provider and Limit, and refuses After; on other tables it is the
// id order.
func TestEntriesAnyOrder(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *sql.DB, d Dialect) {
		ctx := context.Background()
		s := newTestStore(t, db, mustRing(t, mustKey(t)), &Options{IDType: IDText})
		n := listPage + 123
		want := map[string]bool{}
		openai := 0
		for i := range n {
			provider := "anthropic"
			if i%3 == 0 {
				provider = "openai"
				openai++
			}
			id, err := s.Put(ctx, "n", provider, "sk-anyorder", time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			want[id] = true
		}
		count := func(o *ListOptions) map[string]int {
			got := map[string]int{}
			for e, err := range s.Entries(ctx, o) {
				if err != nil {
					t.Fatal(err)
				}
				got[e.ID]++
			}
			return got
		}
		got := count(&ListOptions{AnyOrder: true})
		if len(got) != n {
			t.Fatalf("AnyOrder listed %d distinct rows of %d", len(got), n)
		}
		for id, c := range got {
			if !want[id] || c != 1 {
				t.Fatalf("row %s listed %d times (in the table: %v)", id, c, want[id])
			}
		}
		if got := count(&ListOptions{AnyOrder: true, Provider: "openai"}); len(got) != openai {
			t.Errorf("AnyOrder with Provider: %d rows, want %d", len(got), openai)
		}
		if got := count(&ListOptions{AnyOrder: true, Limit: 7}); len(got) != 7 {
			t.Errorf("AnyOrder with Limit 7: %d rows", len(got))
		}
		var err error
		for _, err = range s.Entries(ctx, &ListOptions{AnyOrder: true, After: "x"}) {
			break
		}
		wantInvalid(t, "AnyOrder with After", err, "AnyOrder cannot be combined with After")
	})
}

// TestSQLiteUnknownSchema (second review): a table qualified with a schema
// this SQLite database does not have is a configuration error that says
// so; the old code called it unavailable, a database error.
func TestSQLiteUnknownSchema(t *testing.T) {
	db := openTestDB(t, SQLite)
	s := New(db, mustRing(t, mustKey(t)), &Options{Table: "nosuch.api_keys"})
	defer s.Close()
	_, err := s.Resolve(context.Background(), "1")
	wantInvalid(t, "Resolve", err, "names the schema nosuch", "attach")
	_, err = s.Describe(context.Background())
	wantInvalid(t, "Describe", err, "names the schema nosuch")
}

// TestMySQLLatin1IDs (second review, finding 6): on a MariaDB id column in
// latin1, the old multi-row compare-and-swap compared the latin1 ids with
// utf8mb4 parameters, which MariaDB refuses for any letter outside ASCII
// (error 1267, an illegal mix of collations): migrate failed with exit 4 on
// every run. And an id latin1 cannot hold was a database error too. Now the
// swap converts its ids to the column's character set, and such an id is
// an invalid ref.
func TestMySQLLatin1IDs(t *testing.T) {
	db := openTestDB(t, MySQL)
	ctx := context.Background()
	table := "kw_latin1_" + randHex(6)
	if _, err := db.ExecContext(ctx, "CREATE TABLE "+table+" (id VARCHAR(36) CHARACTER SET latin1 PRIMARY KEY, api_key TEXT) DEFAULT CHARSET=latin1"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Exec("DROP TABLE " + table) })
	if _, err := db.ExecContext(ctx, "INSERT INTO "+table+" VALUES ('a', 'sk-legacy-a'), ('ü', 'sk-legacy-u'), ('Straße', 'sk-legacy-s')"); err != nil {
		t.Fatal(err)
	}
	s := New(db, mustRing(t, mustKey(t)), &Options{Table: table, AllowPlaintext: true})
	defer s.Close()
	if rep, err := s.Migrate(ctx, nil); err != nil || rep.Done != 3 {
		t.Fatalf("Migrate: %+v %v", rep, err)
	}
	for id, want := range map[string]string{"a": "sk-legacy-a", "ü": "sk-legacy-u", "Straße": "sk-legacy-s"} {
		if sec, err := s.Resolve(ctx, id); err != nil || sec.Reveal() != want {
			t.Fatalf("Resolve(%s): %v", id, err)
		}
	}
	for _, id := range []string{"😀", "ā"} {
		_, err := s.Resolve(ctx, id)
		wantInvalid(t, "Resolve("+id+")", err, "cannot hold", "latin1")
		wantInvalid(t, "Delete("+id+")", s.Delete(ctx, id), "cannot hold")
	}
}
