package fernetstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	secrets "github.com/keyward/secrets"
)

// pythonDDL is the api_keys table as SQLAlchemy's create_all makes it for
// the Python service's model (String(36) id set by the application), per
// dialect, under a test's own table name.
func pythonDDL(d Dialect, table string) string {
	ts := "DATETIME"
	if d == Postgres {
		ts = "TIMESTAMP WITHOUT TIME ZONE"
	}
	return fmt.Sprintf("CREATE TABLE %s (\n\tid VARCHAR(36) NOT NULL, \n\tname VARCHAR(255) NOT NULL, \n\tprovider VARCHAR(50) NOT NULL, \n\tapi_key TEXT, \n\tkey_env_var VARCHAR(255), \n\tsecret_name VARCHAR(255), \n\texpires_at %s, \n\tcreated_at %s, \n\tPRIMARY KEY (id)\n)", table, ts, ts)
}

// pythonTable creates the Python service's api_keys table under a unique
// name, dropped at the end.
func pythonTable(t *testing.T, db *sql.DB, d Dialect) string {
	t.Helper()
	table := "kw_py_" + randHex(6)
	if _, err := db.Exec(pythonDDL(d, table)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Exec("DROP TABLE " + table) })
	return table
}

// insertPy inserts a row as the Python service does: a str(uuid4()) id, a
// naive UTC created_at, the value column as given (nil for NULL).
func insertPy(t testing.TB, db *sql.DB, d Dialect, table string, value, envVar, secretName any, expires any) string {
	t.Helper()
	id := uuid.NewString()
	ph := func(n int) string { return d.ph(n) }
	q := fmt.Sprintf("INSERT INTO %s (id, name, provider, api_key, key_env_var, secret_name, expires_at, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
		table, ph(1), ph(2), ph(3), ph(4), ph(5), ph(6), ph(7), ph(8))
	created := any(time.Now().UTC())
	if d == SQLite {
		created = time.Now().UTC().Format("2006-01-02 15:04:05.000000")
	}
	if _, err := db.Exec(q, id, "py-"+id[:8], "anthropic", value, envVar, secretName, expires, created); err != nil {
		t.Fatal(err)
	}
	return id
}

// TestTextIDs: every operation works on the Python service's table, whose
// ids are UUID strings (on the old code: "converting ... to int64").
func TestTextIDs(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *sql.DB, d Dialect) {
		ctx := context.Background()
		table := pythonTable(t, db, d)
		k1, k2 := mustKey(t), mustKey(t)
		old := mustRing(t, k2)
		tok, err := old.Encrypt([]byte(`{"api_key":"sk-old-field"}`))
		if err != nil {
			t.Fatal(err)
		}
		oldID := insertPy(t, db, d, table, tok, nil, nil, nil)
		plainID := insertPy(t, db, d, table, "sk-ant-plain-"+randHex(8), nil, nil, nil)
		ring := mustRing(t, k1, k2)
		s := New(db, ring, &Options{Table: table})
		t.Cleanup(func() { s.Close() })

		info, err := s.Describe(ctx)
		if err != nil || info.IDType != IDText {
			t.Fatalf("Describe: %+v %v", info, err)
		}
		id, err := s.Put(ctx, "new", "openai", "sk-proj-new", time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := uuid.Parse(id); err != nil {
			t.Fatalf("Put on a text-id table returned %q, not a UUID", id)
		}
		given, err := s.Insert(ctx, Row{ID: "bot-key-7", Name: "given"}, "sk-given")
		if err != nil || given != "bot-key-7" {
			t.Fatalf("Insert with an id: %q %v", given, err)
		}
		for ref, want := range map[string]string{id: "sk-proj-new", given: "sk-given", oldID + "#api_key": "sk-old-field"} {
			sec, err := s.Resolve(ctx, ref)
			if err != nil || sec.Reveal() != want {
				t.Fatalf("Resolve(%s): %v", ref, err)
			}
		}
		if _, err := s.Resolve(ctx, uuid.NewString()); !errors.Is(err, secrets.ErrNotFound) {
			t.Fatalf("Resolve of an unknown UUID: %v, want ErrNotFound", err)
		}
		if _, err := s.Resolve(ctx, plainID); !errors.Is(err, secrets.ErrUndecryptable) {
			t.Fatalf("Resolve of plaintext outside migration mode: %v", err)
		}
		if err := s.Update(ctx, id, "sk-proj-updated", time.Time{}); err != nil {
			t.Fatal(err)
		}
		if sec, err := s.Resolve(ctx, id); err != nil || sec.Reveal() != "sk-proj-updated" {
			t.Fatalf("after Update: %v", err)
		}
		if err := s.Delete(ctx, given); err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(ctx, given); !errors.Is(err, secrets.ErrNotFound) {
			t.Fatalf("second Delete: %v, want ErrNotFound", err)
		}
		rep, err := s.Migrate(ctx, nil)
		if err != nil || rep.Done != 1 || rep.AlreadyCurrent != 2 {
			t.Fatalf("Migrate: %+v %v", rep, err)
		}
		rep, err = s.Rotate(ctx, nil)
		if err != nil || rep.Done != 1 || rep.AlreadyCurrent != 2 {
			t.Fatalf("Rotate: %+v %v", rep, err)
		}
		es, err := s.List(ctx)
		if err != nil || len(es) != 3 {
			t.Fatalf("List: %+v %v", es, err)
		}
		for _, e := range es {
			if e.State != StatePrimary {
				t.Errorf("row %s is %s after migrate and rotate", e.ID, e.State)
			}
		}
		// The primary key alone opens every row now, as Python's Fernet(k1) would.
		strict := New(db, mustRing(t, k1), &Options{Table: table})
		defer strict.Close()
		if sec, err := strict.Resolve(ctx, plainID); err != nil || !strings.HasPrefix(sec.Reveal(), "sk-ant-plain-") {
			t.Fatalf("migrated row under the primary: %v", err)
		}
	})
}

// TestTextIDPaging walks more rows than a page and a batch hold: List's
// keyset pagination and the walks' resume positions on text ids, in every
// dialect's own ordering of them.
func TestTextIDPaging(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *sql.DB, d Dialect) {
		ctx := context.Background()
		table := pythonTable(t, db, d)
		n := listPage + 234
		tx, err := db.Begin()
		if err != nil {
			t.Fatal(err)
		}
		ids := map[string]bool{}
		for i := 0; i < n; i++ {
			// Mixed case and a shared prefix: a collation that folds case
			// or pads must still page without a gap or a repeat.
			id := fmt.Sprintf("%s-%05d-%s", []string{"Key", "key", "KEY"}[i%3], i, randHex(2))
			ids[id] = true
			if _, err := tx.Exec(fmt.Sprintf("INSERT INTO %s (id, name, provider, api_key) VALUES (%s, 'n', %s, %s)", table, d.ph(1), d.ph(2), d.ph(3)),
				id, []string{"anthropic", "openai"}[i%2], "sk-plain-"+strconv.Itoa(i)); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		s := New(db, mustRing(t, mustKey(t)), &Options{Table: table})
		defer s.Close()
		seen := map[string]bool{}
		for e, err := range s.Entries(ctx, nil) {
			if err != nil {
				t.Fatal(err)
			}
			if seen[e.ID] || !ids[e.ID] {
				t.Fatalf("List gave %s twice or unknown", e.ID)
			}
			seen[e.ID] = true
		}
		if len(seen) != n {
			t.Fatalf("List gave %d rows of %d", len(seen), n)
		}
		count := func(o *ListOptions) int {
			c := 0
			for _, err := range s.Entries(ctx, o) {
				if err != nil {
					t.Fatal(err)
				}
				c++
			}
			return c
		}
		if c := count(&ListOptions{Provider: "openai"}); c != n/2 {
			t.Errorf("provider filter: %d rows, want %d", c, n/2)
		}
		if c := count(&ListOptions{Limit: 7, States: []State{StatePlaintext}}); c != 7 {
			t.Errorf("limit: %d rows, want 7", c)
		}
		if c := count(&ListOptions{States: []State{StatePrimary}}); c != 0 {
			t.Errorf("state filter: %d encrypted rows, want 0", c)
		}
		// Stop a migrate after its third batch, resume from its Position.
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		first, err := s.Migrate(cctx, &WalkOptions{BatchSize: 300, Progress: func(r Report) {
			if r.Scanned == 900 {
				cancel()
			}
		}})
		if !errors.Is(err, context.Canceled) || first.Done != 900 || first.Position == "" {
			t.Fatalf("interrupted migrate: %+v %v", first, err)
		}
		rest, err := s.Migrate(ctx, &WalkOptions{BatchSize: 300, After: first.Position})
		if err != nil || rest.Done != n-900 || rest.Scanned != n-900 {
			t.Fatalf("resumed migrate: %+v %v (first run %+v)", rest, err, first)
		}
		if c := count(&ListOptions{States: []State{StatePrimary}}); c != n {
			t.Errorf("after the resumed migrate %d of %d rows are encrypted", c, n)
		}
	})
}

// TestSchemaChecks: the table is read on first use, and what it lacks for
// the options is a configuration error (ErrInvalidRef) naming it, never
// ErrUnavailable (the old code called a missing column a database outage).
func TestSchemaChecks(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *sql.DB, d Dialect) {
		ctx := context.Background()
		ring := mustRing(t, mustKey(t))
		py := pythonTable(t, db, d)
		odd := "kw_odd_" + randHex(6)
		blob := "BLOB"
		if d == Postgres {
			blob = "BYTEA"
		}
		if _, err := db.Exec(fmt.Sprintf("CREATE TABLE %s (id REAL PRIMARY KEY, api_key %s, note TEXT)", odd, blob)); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Exec("DROP TABLE " + odd) })
		for _, c := range []struct {
			name string
			opts Options
			want []string
		}{
			{"missing table", Options{Table: "kw_none_" + randHex(4)}, []string{"does not exist", "keyward init"}},
			{"missing value column", Options{Table: py, ValueColumn: "token"}, []string{"no column token", "value_column"}},
			{"missing named optional column", Options{Table: py, ExpiresAtColumn: "valid_until"}, []string{"no column valid_until"}},
			{"missing ref column", Options{Table: py, RefColumns: []RefColumn{{"vault_path", "vault"}}}, []string{"no column vault_path", "ref_columns"}},
			{"id_type mismatch", Options{Table: py, IDType: IDInteger}, []string{"id_type=integer", "VARCHAR"}},
			{"unusable types", Options{Table: odd}, []string{"cannot use as an id", "cannot use as the value column"}},
		} {
			t.Run(c.name, func(t *testing.T) {
				s := New(db, ring, &c.opts)
				defer s.Close()
				for _, call := range []func() error{
					func() error { _, err := s.Resolve(ctx, "1"); return err },
					func() error { _, err := s.List(ctx); return err },
					func() error { _, err := s.Migrate(ctx, nil); return err },
					func() error {
						if c.name == "missing table" {
							return secrets.ErrInvalidRef // Init creates it: TestSchemaOnlyStore
						}
						_, err := s.Init(ctx)
						return err
					},
				} {
					err := call()
					if err == secrets.ErrInvalidRef {
						continue
					}
					if !errors.Is(err, secrets.ErrInvalidRef) {
						t.Fatalf("%v, want ErrInvalidRef", err)
					}
					for _, w := range c.want {
						if !strings.Contains(err.Error(), w) {
							t.Errorf("%q does not say %q", err, w)
						}
					}
				}
			})
		}
		// The Python service's bots table: no name or provider column
		// given, no expiry: the defaults it lacks are done without.
		bots := "kw_bots_" + randHex(6)
		if _, err := db.Exec(fmt.Sprintf("CREATE TABLE %s (id VARCHAR(36) NOT NULL, name VARCHAR(255) NOT NULL, api_key_id VARCHAR(36), api_key TEXT, PRIMARY KEY (id))", bots)); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Exec("DROP TABLE " + bots) })
		s := New(db, ring, &Options{Table: bots})
		defer s.Close()
		info, err := s.Describe(ctx)
		if err != nil || info.IDType != IDText || strings.Join(info.Absent, ",") != "provider,expires_at,created_at" {
			t.Fatalf("Describe(bots): %+v %v", info, err)
		}
		id, err := s.Put(ctx, "bot", "ignored", "sk-bot-legacy", time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		if sec, err := s.Resolve(ctx, id); err != nil || sec.Reveal() != "sk-bot-legacy" {
			t.Fatalf("Resolve(bot): %v", err)
		}
	})
}

// TestSchemaOnlyStore: a store without a key ring creates and checks the
// table (keyward init needs no ENCRYPTION_KEY) and says what else needs it.
func TestSchemaOnlyStore(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *sql.DB, d Dialect) {
		ctx := context.Background()
		table := "kw_new_" + randHex(6)
		t.Cleanup(func() { db.Exec("DROP TABLE " + table) })
		opts := &Options{Table: table, IDType: IDText, RefColumns: []RefColumn{{"key_env_var", "env"}, {"secret_name", "awssm"}}}
		s := New(db, nil, opts)
		defer s.Close()
		info, err := s.Init(ctx)
		if err != nil || !info.Created || info.IDType != IDText || info.Columns["key_env_var"] != "key_env_var" {
			t.Fatalf("Init: %+v %v", info, err)
		}
		if info, err := s.Init(ctx); err != nil || info.Created {
			t.Fatalf("second Init: %+v %v", info, err)
		}
		if _, err := s.Put(ctx, "n", "p", "sk-x", time.Time{}); !errors.Is(err, secrets.ErrInvalidRef) || !strings.Contains(err.Error(), "ENCRYPTION_KEY") {
			t.Fatalf("Put without a ring: %v", err)
		}
		full := New(db, mustRing(t, mustKey(t)), opts)
		defer full.Close()
		id, err := full.Put(ctx, "n", "p", "sk-x", time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := uuid.Parse(id); err != nil {
			t.Fatalf("id %q is not a UUID", id)
		}
		if _, err := s.Resolve(ctx, id); !errors.Is(err, secrets.ErrInvalidRef) || !strings.Contains(err.Error(), "ENCRYPTION_KEY") {
			t.Fatalf("Resolve without a ring: %v", err)
		}
	})
}
