package pyservice

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/keyward/secrets/internal/testenv"
)

// sharedMoto starts a moto_server for one test's fixtures.
func sharedMoto(t *testing.T) *Options {
	t.Helper()
	return &Options{AWSEndpoint: testenv.MotoServer(t)}
}

// recorder is a testing.TB that records failures and skips instead of
// acting on them, to show that a check fails. Run code under it with
// record.
type recorder struct {
	testing.TB
	mu          sync.Mutex
	errs        []string
	fatal, skip string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.mu.Lock()
	r.fatal = fmt.Sprintf(format, args...)
	r.mu.Unlock()
	runtime.Goexit()
}
func (r *recorder) Skipf(format string, args ...any) {
	r.mu.Lock()
	r.skip = fmt.Sprintf(format, args...)
	r.mu.Unlock()
	runtime.Goexit()
}

// record runs fn under a recorder in its own goroutine (Fatalf and Skipf
// end it) and returns what it recorded.
func record(t *testing.T, fn func(testing.TB)) *recorder {
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(r)
	}()
	<-done
	return r
}

// noCanary fails t if s holds any of the fixture's secret values.
func noCanary(t *testing.T, f *Fixture, what, s string) {
	t.Helper()
	for _, c := range f.Canaries() {
		if strings.Contains(s, c) {
			t.Fatalf("%s holds a key value (%d bytes)", what, len(c))
		}
	}
}

// wantSource is where the service finds the key of each kind of row.
var wantSource = map[Kind]string{
	KindEncrypted: "token", KindPreviousKey: "token", KindPlaintext: "plaintext",
	KindEnv: "env", KindSecret: "secret", KindExpired: "token",
}

func TestFixtureReadsBack(t *testing.T) {
	opts := sharedMoto(t)
	for _, d := range Dialects() {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			f := New(t, d, opts)
			if len(f.APIKeys) != 7 || len(f.Bots) != 4 {
				t.Fatalf("%d api_keys rows and %d bots, want 7 and 4", len(f.APIKeys), len(f.Bots))
			}
			reads := CheckPythonReads(t, f)
			if len(reads) != 11 {
				t.Fatalf("Python read %d rows, want 11", len(reads))
			}
			byID := map[string]Read{}
			for _, r := range reads {
				byID[r.ID] = r
			}
			for _, row := range append(append([]Row(nil), f.APIKeys...), f.Bots...) {
				r := byID[row.ID]
				want := wantSource[row.Kind]
				switch {
				case row.Table == TableBots && row.Kind == KindLinked:
					want = wantSource[f.kindOf(row.APIKeyID)]
				case row.Table == TableBots && row.Kind == KindEncrypted:
					want = "token"
				}
				if r.Source != want {
					t.Errorf("%s: source %q, want %q", row, r.Source, want)
				}
				wantIndex := -1
				if want == "token" {
					wantIndex = 0
				}
				if row.Kind == KindPreviousKey {
					wantIndex = 1
				}
				if r.KeyIndex != wantIndex {
					t.Errorf("%s: opened by key %d, want %d", row, r.KeyIndex, wantIndex)
				}
				if !strings.HasPrefix(row.Key, "sk-") && row.Kind != KindEmpty {
					t.Errorf("%s: the key is not a canary", row)
				}
			}
			if !f.ByKind(t, TableAPIKeys, KindExpired).Expired || byID[f.ByKind(t, TableAPIKeys, KindExpired).ID].Expired != true {
				t.Errorf("the expired row is not expired")
			}
			if r := byID[f.ByKind(t, TableAPIKeys, KindEmpty).ID]; !strings.HasPrefix(r.Err, "NoKeyConfigured") {
				t.Errorf("the empty row: %q, want NoKeyConfigured", r.Err)
			}
			CheckSchemaUnchanged(t, f)

			// Nothing the fixture prints carries a key.
			printed := fmt.Sprintf("%v %+v %#v %v %+v %#v %v", f, f, f, f.APIKeys, f.Bots, f.APIKeys[0], reads)
			noCanary(t, f, "the fixture's printed form", printed)
		})
	}
}

// kindOf is the kind of the api_keys row with that id.
func (f *Fixture) kindOf(id string) Kind {
	for _, r := range f.APIKeys {
		if r.ID == id {
			return r.Kind
		}
	}
	return ""
}

// TestTablesAsSQLAlchemyMakesThem checks, on each database, what the DDL
// made: SQLite keeps the statement text itself; PostgreSQL and MariaDB are
// asked for the column types; MariaDB's tables take the server's collation
// (SQLAlchemy names no charset).
func TestTablesAsSQLAlchemyMakesThem(t *testing.T) {
	for _, d := range Dialects() {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			f := Build(t, d)
			db := f.Open(t)
			switch d {
			case SQLite:
				for i, table := range []string{TableAPIKeys, TableBots} {
					var text string
					if err := db.QueryRow("SELECT sql FROM sqlite_master WHERE name = ?", table).Scan(&text); err != nil {
						t.Fatal(err)
					}
					if want := strings.TrimSpace(DDL(SQLite)[i]); text != want {
						t.Errorf("%s: SQLite keeps\n%q\nwant\n%q", table, text, want)
					}
				}
				wantColumns(t, db, `SELECT name || ' ' || type || ' ' || "notnull" || ' ' || pk FROM pragma_table_info('bots') ORDER BY cid`,
					"id VARCHAR(36) 1 1", "name VARCHAR(255) 1 0", "system_prompt TEXT 0 0", "model VARCHAR(100) 0 0",
					"api_key_id VARCHAR(36) 0 0", "api_key TEXT 0 0", "created_at DATETIME 0 0")
				wantColumns(t, db, `SELECT "table" || '.' || "to" || ' <- ' || "from" FROM pragma_foreign_key_list('bots')`,
					"api_keys.id <- api_key_id")
				if !strings.HasPrefix(f.DatabaseURL, "sqlite:////") || f.DatabaseURL != "sqlite:///"+f.Path {
					t.Errorf("DatabaseURL %q, want sqlite:/// and the absolute path", f.DatabaseURL)
				}
			case Postgres:
				wantColumns(t, db, `SELECT column_name || ' ' || data_type || COALESCE('(' || character_maximum_length || ')', '') || ' ' || is_nullable
					FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = 'api_keys' ORDER BY ordinal_position`,
					"id character varying(36) NO", "name character varying(255) NO", "provider character varying(50) NO",
					"api_key text YES", "key_env_var character varying(255) YES", "secret_name character varying(255) YES",
					"expires_at timestamp without time zone YES", "created_at timestamp without time zone YES")
				// The SQLAlchemy URL selects the fixture's schema through
				// options=-csearch_path=..., as it would for psycopg2.
				pgx := "postgres" + strings.TrimPrefix(f.DatabaseURL, "postgresql+psycopg2")
				var schema string
				if err := open(t, "pgx", pgx).QueryRow("SELECT current_schema()").Scan(&schema); err != nil {
					t.Fatal(err)
				}
				if !strings.HasPrefix(schema, "pyservice_") || !strings.Contains(f.DSN, "search_path="+schema) {
					t.Errorf("DatabaseURL selects schema %q; DSN %q", schema, f.DSN)
				}
			case MySQL:
				wantColumns(t, db, `SELECT CONCAT(column_name, ' ', column_type, ' ', is_nullable)
					FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = 'api_keys' ORDER BY ordinal_position`,
					"id varchar(36) NO", "name varchar(255) NO", "provider varchar(50) NO", "api_key text YES",
					"key_env_var varchar(255) YES", "secret_name varchar(255) YES", "expires_at datetime YES", "created_at datetime YES")
				var collation, serverDefault string
				if err := db.QueryRow(`SELECT table_collation, @@collation_server FROM information_schema.tables
					WHERE table_schema = DATABASE() AND table_name = 'api_keys'`).Scan(&collation, &serverDefault); err != nil {
					t.Fatal(err)
				}
				if collation != serverDefault {
					t.Errorf("api_keys collation %s, want the server's default %s", collation, serverDefault)
				}
				u, err := url.Parse(f.DatabaseURL)
				if err != nil || u.Scheme != "mysql+pymysql" || !strings.HasPrefix(u.Path, "/pyservice_") {
					t.Errorf("DatabaseURL %q", f.DatabaseURL)
				}
			}
			wantColumns(t, db, "SELECT count(*) FROM bots", "0")
		})
	}
}

func wantColumns(t *testing.T, db *sql.DB, q string, want ...string) {
	t.Helper()
	rows, err := db.Query(q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		got = append(got, s)
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestCheckFailsOnDamage damages rows as a broken command could, and shows
// that CheckPythonReads reports exactly the rows the service can no longer
// read, by id, without a value, and passes the others.
func TestCheckFailsOnDamage(t *testing.T) {
	opts := sharedMoto(t)
	for _, d := range Dialects() {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			f := New(t, d, opts)
			db := f.Open(t)
			ph := placeholder(d, 1)
			exec := func(q string, args ...any) {
				t.Helper()
				if _, err := db.Exec(q, args...); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			encrypted := f.ByKind(t, TableAPIKeys, KindEncrypted)
			secret := f.ByKind(t, TableAPIKeys, KindSecret)
			expired := f.ByKind(t, TableAPIKeys, KindExpired)
			plain := f.ByKind(t, TableAPIKeys, KindPlaintext)
			legacy := f.ByKind(t, TableBots, KindPlaintext)
			damaged := map[string]bool{encrypted.ID: true, secret.ID: true, expired.ID: true, plain.ID: true, legacy.ID: true}
			for _, b := range f.Bots {
				if b.APIKeyID == encrypted.ID || b.APIKeyID == secret.ID {
					damaged[b.ID] = true // a bot that follows a damaged row
				}
			}

			// One byte of the token's ciphertext flipped: its HMAC fails.
			var tok string
			if err := db.QueryRow("SELECT api_key FROM api_keys WHERE id = "+ph, encrypted.ID).Scan(&tok); err != nil {
				t.Fatal(err)
			}
			b := []byte(tok)
			b[60] ^= 'A' ^ 'B'
			exec("UPDATE api_keys SET api_key = "+ph+" WHERE id = "+placeholder(d, 2), string(b), encrypted.ID)
			exec("UPDATE api_keys SET secret_name = NULL WHERE id = "+ph, secret.ID)
			exec("UPDATE api_keys SET expires_at = NULL WHERE id = "+ph, expired.ID)
			exec("DELETE FROM api_keys WHERE id = "+ph, plain.ID)
			exec("UPDATE bots SET api_key = "+ph+" WHERE id = "+placeholder(d, 2), "sk-ant-not-the-key", legacy.ID)
			if d == SQLite {
				// A datetime with a zone, as a Go driver may write one:
				// fromisoformat makes it aware, and the service's
				// comparison with the naive utcnow() raises.
				previous := f.ByKind(t, TableAPIKeys, KindPreviousKey)
				exec("UPDATE api_keys SET expires_at = '2099-01-02 03:04:05+00:00' WHERE id = ?", previous.ID)
				damaged[previous.ID] = true
			}

			rec := record(t, func(tb testing.TB) { CheckPythonReads(tb, f) })
			if rec.fatal != "" || rec.skip != "" {
				t.Fatalf("CheckPythonReads stopped: %s%s", rec.fatal, rec.skip)
			}
			all := strings.Join(rec.errs, "\n")
			noCanary(t, f, "CheckPythonReads' messages", all)
			reported := map[string]bool{}
			for _, msg := range rec.errs {
				id := ""
				for _, r := range append(append([]Row(nil), f.APIKeys...), f.Bots...) {
					if strings.HasPrefix(msg, "pyservice: "+r.Table+" row "+r.ID+" ") {
						id = r.ID
					}
				}
				if !damaged[id] || reported[id] {
					t.Errorf("unexpected report: %s", msg)
				}
				reported[id] = true
			}
			for id := range damaged {
				if !reported[id] {
					t.Errorf("row %s was damaged and not reported; reports:\n%s", id, all)
				}
			}
			if !strings.Contains(all, "InvalidToken") || !strings.Contains(all, "the row is gone") ||
				!strings.Contains(all, "expired=false, want true") || !strings.Contains(all, "reads a different key") {
				t.Errorf("the reports do not say what is wrong:\n%s", all)
			}
		})
	}
}

// TestNewPrimaryKey: after ENCRYPTION_KEY is rotated in the environment
// only, the service still reads every token through
// ENCRYPTION_KEY_PREVIOUS, each one key further down the ring.
func TestNewPrimaryKey(t *testing.T) {
	f := New(t, SQLite, sharedMoto(t))
	old := f.EncryptionKey
	if k := f.NewPrimaryKey(t); k == old || len(k) != 44 || f.PreviousKeys[0] != old || len(f.PreviousKeys) != 2 {
		t.Fatalf("NewPrimaryKey did not make a new primary key ahead of the old one")
	}
	for _, r := range CheckPythonReads(t, f) {
		if r.Source == "token" && r.KeyIndex < 1 {
			t.Errorf("%s %s: opened by key %d, want an old key", r.Table, r.ID, r.KeyIndex)
		}
	}
}

// TestEnv: Env carries what the service's process has, and Setenv sets it.
func TestEnv(t *testing.T) {
	f := New(t, SQLite, sharedMoto(t))
	env := strings.Join(f.Env(), "\n")
	row := f.ByKind(t, TableAPIKeys, KindEnv)
	for _, want := range []string{"DATABASE_URL=" + f.DatabaseURL, "ENCRYPTION_KEY=" + f.EncryptionKey,
		"ENCRYPTION_KEY_PREVIOUS=" + f.PreviousKeys[0], "AWS_ENDPOINT_URL=" + f.AWSEndpoint, "AWS_REGION=us-east-1",
		row.EnvVar + "=" + row.Key} {
		if !strings.Contains(env, want+"\n") && !strings.HasSuffix(env, want) {
			k, _, _ := strings.Cut(want, "=")
			t.Errorf("Env lacks %s or has another value", k)
		}
	}
	f.Setenv(t)
	if os.Getenv(row.EnvVar) != row.Key || os.Getenv("DATABASE_URL") != f.DatabaseURL {
		t.Errorf("Setenv did not set %s and DATABASE_URL", row.EnvVar)
	}
}

// TestMissingPython: without python3, or with a module missing, the fixture
// skips saying which, and under KEYWARD_REQUIRE_SERVERS=1 fails instead.
func TestMissingPython(t *testing.T) {
	bin := t.TempDir()
	// A python3 whose probe reports boto3 missing.
	fake := filepath.Join(bin, "python3")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\necho '[\"boto3\"]'\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	empty := t.TempDir()
	for _, c := range []struct {
		path, want string
	}{{bin, "boto3"}, {empty, "python3"}} {
		for _, required := range []string{"", "1"} {
			t.Setenv("PATH", c.path)
			t.Setenv("KEYWARD_REQUIRE_SERVERS", required)
			rec := record(t, func(tb testing.TB) { requirePython(tb) })
			got := rec.skip
			if required == "1" {
				got = rec.fatal
				if rec.skip != "" || !strings.Contains(got, "KEYWARD_REQUIRE_SERVERS=1") {
					t.Errorf("PATH=%s, required: skip %q, fatal %q; want a failure", c.path, rec.skip, rec.fatal)
				}
			} else if rec.fatal != "" {
				t.Errorf("PATH=%s: failed (%q), want a skip", c.path, rec.fatal)
			}
			if !strings.Contains(got, c.want) {
				t.Errorf("PATH=%s required=%q: %q does not name %s", c.path, required, got, c.want)
			}
		}
	}
}

// TestDDLMatchesSQLAlchemy compares the DDL constants with what SQLAlchemy
// itself compiles for python/models.py. SQLAlchemy is not part of keyward's
// test environment (the constants exist because it is not), so this test
// skips without it, even in CI; run it with SQLAlchemy 2.x importable, e.g.
// PYTHONPATH=<a checkout of github.com/sqlalchemy/sqlalchemy>/lib.
func TestDDLMatchesSQLAlchemy(t *testing.T) {
	py := requirePython(t)
	if exec.Command(py, "-c", "import sqlalchemy").Run() != nil {
		t.Skip("SQLAlchemy is not importable; the DDL constants were derived with SQLAlchemy 2.0.52 (see ddl.go)")
	}
	dir := writeScripts(t)
	cmd := exec.Command(py, filepath.Join(dir, "ddl.py"))
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ddl.py: %v", err)
	}
	var got map[string][]string
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	for name, d := range map[string]Dialect{"sqlite": SQLite, "postgresql": Postgres, "mysql": MySQL, "mariadb": MySQL} {
		want := DDL(d)
		if strings.Join(got[name], "|") != strings.Join(want, "|") {
			t.Errorf("%s: SQLAlchemy emits\n%q\nthe constants are\n%q", name, got[name], want)
		}
	}
}
