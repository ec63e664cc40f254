package fernetstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/internal/testenv"
	"github.com/keyward/secrets/secretstest"
)

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// openTestDB opens a database of dialect d: a fresh SQLite file, or the
// test PostgreSQL/MariaDB server (skipping when its DSN is not set).
func openTestDB(t testing.TB, d Dialect) *sql.DB {
	t.Helper()
	var db *sql.DB
	var err error
	switch d {
	case SQLite:
		db, err = OpenDB("sqlite:" + filepath.Join(t.TempDir(), "keyward.db"))
	case Postgres:
		db, err = OpenDB(testenv.PostgresDSN(t))
	case MySQL:
		db, err = sql.Open("mysql", testenv.MySQLDSN(t))
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Ping(); err != nil {
		testenv.Missing(t, string(d)+" database", "start it and check its DSN")
	}
	return db
}

// newTestStore makes a store on a table unique to this test, created with
// CreateSchema and dropped at the end.
func newTestStore(t testing.TB, db *sql.DB, ring *KeyRing, opts *Options) *Store {
	t.Helper()
	o := Options{}
	if opts != nil {
		o = *opts
	}
	if o.Table == "" {
		o.Table = "kw_test_" + randHex(6)
	}
	s := New(db, ring, &o)
	if err := s.CreateSchema(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Close()
		db.Exec("DROP TABLE " + o.Table)
	})
	return s
}

var allDialects = []Dialect{SQLite, Postgres, MySQL}

func forEachDB(t *testing.T, f func(t *testing.T, db *sql.DB, d Dialect)) {
	for _, d := range allDialects {
		t.Run(string(d), func(t *testing.T) { f(t, openTestDB(t, d), d) })
	}
}

func TestConformance(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *sql.DB, d Dialect) {
		ring := mustRing(t, mustKey(t), mustKey(t))
		secretstest.RunConformance(t, secretstest.Harness{
			New: func(t *testing.T) secretstest.Subject {
				s := newTestStore(t, db, ring, nil)
				return secretstest.Subject{Resolver: s, Put: conformancePut(s)}
			},
			Backend:     Backend,
			MissingRef:  "999999999",
			InvalidRefs: []string{"abc", "-1", "0", "1.5", "+3", "007", "1?x=y", "99999999999999999999", "1#"},
			Documents:   true,
			Expiry:      true,
		})
	})
}

// conformancePut is the suite's Put on s. The store refuses an empty value
// (a row with an empty value holds no key), which the suite counts as a
// value the backend cannot store.
func conformancePut(s *Store) func(t *testing.T, name, value string, expiresAt time.Time) (string, error) {
	return func(t *testing.T, name, value string, expiresAt time.Time) (string, error) {
		id, err := s.Put(context.Background(), name, "test", value, expiresAt)
		if value == "" && errors.Is(err, secrets.ErrInvalidRef) {
			return "", fmt.Errorf("%w: %v", secretstest.ErrUnsupported, err)
		}
		return id, err
	}
}

// TestConformanceFromEnv runs the suite on the Store the fernet:// opener
// makes, whose database and keys are opened on first use.
func TestConformanceFromEnv(t *testing.T) {
	t.Setenv(EnvKey, mustKey(t))
	t.Setenv(EnvPreviousKeys, "")
	secretstest.RunConformance(t, secretstest.Harness{
		New: func(t *testing.T) secretstest.Subject {
			t.Setenv(EnvDatabaseURL, "sqlite:"+filepath.Join(t.TempDir(), "env.db"))
			r, err := secrets.Open(context.Background(), "fernet://?table=api_keys")
			if err != nil {
				t.Fatal(err)
			}
			s := r.(*Store)
			t.Cleanup(func() { s.Close() })
			if err := s.CreateSchema(context.Background()); err != nil {
				t.Fatal(err)
			}
			return secretstest.Subject{Resolver: s, Put: conformancePut(s)}
		},
		Backend:     Backend,
		MissingRef:  "999999999",
		InvalidRefs: []string{"abc", "1?x=y"},
		Documents:   true,
		Expiry:      true,
	})
}

func TestCRUDAndList(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *sql.DB, d Dialect) {
		ctx := context.Background()
		k1, k2 := mustKey(t), mustKey(t)
		now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
		clock := func() time.Time { return now }
		old := newTestStore(t, db, mustRing(t, k2), &Options{Now: clock})
		table := old.opts.Table
		ring := mustRing(t, k1, k2)
		s := New(db, ring, &Options{Table: table, Now: clock})
		defer s.Close()

		idOld, err := old.Put(ctx, "old", "anthropic", "sk-ant-test-old", time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		id, err := s.Put(ctx, "bot-1", "openai", "sk-test-1", now.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		idExp, _ := s.Put(ctx, "gone", "openai", "sk-test-expired", now.Add(-time.Minute))
		plainID := insertRaw(t, db, d, table, "legacy plaintext sk-plain")
		badID := insertRaw(t, db, d, table, mustEncrypt(t, mustRing(t, mustKey(t)), "sk-unknown-key"))

		sec, err := s.Resolve(ctx, id)
		if err != nil || sec.Reveal() != "sk-test-1" || sec.Version != "primary" || !sec.ExpiresAt.Equal(now.Add(time.Hour)) {
			t.Fatalf("Resolve: %v, version %q, expires %v", err, sec.Version, sec.ExpiresAt)
		}
		sec, err = s.Resolve(ctx, idOld)
		if err != nil || sec.Reveal() != "sk-ant-test-old" || sec.Version != "previous-1" {
			t.Fatalf("Resolve old-key row: %v, version %q", err, sec.Version)
		}
		if _, err := s.Resolve(ctx, idExp); !errors.Is(err, secrets.ErrExpired) {
			t.Fatalf("expired row: %v", err)
		}
		if _, err := s.Resolve(ctx, badID); !errors.Is(err, secrets.ErrUndecryptable) {
			t.Fatalf("row under an unknown key: %v", err)
		}
		_, err = s.Resolve(ctx, plainID)
		if !errors.Is(err, secrets.ErrUndecryptable) || !strings.Contains(err.Error(), "keyward migrate") {
			t.Fatalf("plaintext row without migration mode: %v", err)
		}

		entries, err := s.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]State{idOld: StateOldKey, id: StatePrimary, idExp: StateExpired, plainID: StatePlaintext, badID: StateUndecryptable}
		if len(entries) != len(want) {
			t.Fatalf("List returned %d entries, want %d", len(entries), len(want))
		}
		for _, e := range entries {
			if e.State != want[e.ID] {
				t.Errorf("row %s: state %q, want %q", e.ID, e.State, want[e.ID])
			}
		}
		if e := entries[1]; e.Name != "bot-1" || e.Provider != "openai" || e.Key != "primary" || !e.CreatedAt.Equal(now) {
			t.Errorf("entry %+v", e)
		}
		if e := entries[2]; e.Encryption != StatePrimary {
			t.Errorf("expired row's encryption %q", e.Encryption)
		}

		if err := s.Update(ctx, idOld, "sk-updated", time.Time{}); err != nil {
			t.Fatal(err)
		}
		if sec, err := s.Resolve(ctx, idOld); err != nil || sec.Reveal() != "sk-updated" || sec.Version != "primary" {
			t.Fatalf("after Update: %v %q", err, sec.Version)
		}
		if err := s.Delete(ctx, idOld); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Resolve(ctx, idOld); !errors.Is(err, secrets.ErrNotFound) {
			t.Fatalf("after Delete: %v", err)
		}
		if err := s.Delete(ctx, idOld); !errors.Is(err, secrets.ErrNotFound) {
			t.Fatalf("second Delete: %v", err)
		}
		if err := s.Update(ctx, "424242", "x", time.Time{}); !errors.Is(err, secrets.ErrNotFound) {
			t.Fatalf("Update of a missing row: %v", err)
		}
	})
}

func mustEncrypt(t testing.TB, r *KeyRing, v string) string {
	t.Helper()
	tok, err := r.Encrypt([]byte(v))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// insertRaw writes a stored value as is, the way a legacy service would.
func insertRaw(t testing.TB, db *sql.DB, d Dialect, table, value string) string {
	t.Helper()
	if d == Postgres {
		var id int64
		if err := db.QueryRow(fmt.Sprintf(`INSERT INTO %s (name, provider, api_key) VALUES ('raw', 'p', $1) RETURNING id`, table), value).Scan(&id); err != nil {
			t.Fatal(err)
		}
		return strconv.FormatInt(id, 10)
	}
	res, err := db.Exec(fmt.Sprintf(`INSERT INTO %s (name, provider, api_key) VALUES ('raw', 'p', ?)`, table), value)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := res.LastInsertId()
	return strconv.FormatInt(id, 10)
}

func TestPlaintextMigrationModeIsAudited(t *testing.T) {
	db := openTestDB(t, SQLite)
	s := newTestStore(t, db, mustRing(t, mustKey(t)), &Options{AllowPlaintext: true})
	plain := "sk-ant-test-plain-" + randHex(8)
	id := insertRaw(t, db, SQLite, s.opts.Table, plain)
	tokID, _ := s.Put(context.Background(), "enc", "p", "sk-enc", time.Time{})

	var events []secrets.AuditEvent
	audited := secrets.NewAudit(s, secrets.AuditFunc(func(_ context.Context, ev secrets.AuditEvent) { events = append(events, ev) }), nil)
	sec, err := audited.Resolve(context.Background(), id)
	if err != nil || sec.Reveal() != plain || sec.Version != "plaintext" {
		t.Fatalf("plaintext row in migration mode: %v %q", err, sec.Version)
	}
	if _, err := audited.Resolve(context.Background(), tokID); err != nil {
		t.Fatal(err)
	}
	if len(events) != 2 || !events[0].Plaintext || events[1].Plaintext || events[0].Backend != Backend {
		t.Fatalf("audit events %+v: want the plaintext read (only) marked", events)
	}
	// A damaged token is never plaintext, even in migration mode.
	tok := mustEncrypt(t, mustRing(t, mustKey(t)), "sk-x")
	for _, v := range []string{tok, tok[:len(tok)-10]} {
		bad := insertRaw(t, db, SQLite, s.opts.Table, v)
		if _, err := s.Resolve(context.Background(), bad); !errors.Is(err, secrets.ErrUndecryptable) {
			t.Fatalf("token-shaped row in migration mode: %v", err)
		}
	}
}

func TestCustomTableAndColumns(t *testing.T) {
	db := openTestDB(t, SQLite)
	ctx := context.Background()
	if _, err := db.Exec(`CREATE TABLE bots (bot_id INTEGER PRIMARY KEY, secret TEXT)`); err != nil {
		t.Fatal(err)
	}
	ring := mustRing(t, mustKey(t))
	s := New(db, ring, &Options{Table: "bots", IDColumn: "bot_id", ValueColumn: "secret",
		NameColumn: "-", ProviderColumn: "-", ExpiresAtColumn: "-", CreatedAtColumn: "-"})
	id, err := s.Put(ctx, "ignored", "ignored", "sk-custom", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if sec, err := s.Resolve(ctx, id); err != nil || sec.Reveal() != "sk-custom" {
		t.Fatalf("Resolve: %v", err)
	}
	if _, err := s.Put(ctx, "n", "p", "v", time.Now()); err == nil {
		t.Fatal("Put with an expiry on a table without the column succeeded")
	}
	// On an existing table CreateSchema only checks it.
	if info, err := s.Init(ctx); err != nil || info.Created || info.IDType != IDInteger {
		t.Fatalf("Init on the existing table: %+v %v", info, err)
	}
	if es, err := s.List(ctx); err != nil || len(es) != 1 || es[0].State != StatePrimary {
		t.Fatalf("List: %v %+v", err, es)
	}

	for _, bad := range []Options{{Table: "api_keys; DROP TABLE x"}, {ValueColumn: `a"b`}, {Table: "a.b.c"}, {IDColumn: "1id"}, {Dialect: "oracle"}} {
		s := New(db, ring, &bad)
		_, err := s.Resolve(ctx, "1")
		if !errors.Is(err, secrets.ErrInvalidRef) {
			t.Errorf("options %+v: %v", bad, err)
		}
	}
}

func TestQuoteIdent(t *testing.T) {
	for _, c := range []struct {
		d          Dialect
		name, want string
	}{
		{SQLite, "api_keys", `"api_keys"`},
		{Postgres, "app.api_keys", `"app"."api_keys"`},
		{MySQL, "app.api_keys", "`app`.`api_keys`"},
	} {
		if got, err := c.d.quoteIdent(c.name, true); err != nil || got != c.want {
			t.Errorf("%s quoteIdent(%q) = %q, %v; want %q", c.d, c.name, got, err, c.want)
		}
	}
}

// TestOpenDBForms: a DSN OpenDB cannot open is refused with the forms it
// accepts and without its password, whichever package would open it (each
// database package tests the driver DSNs its forms become).
func TestOpenDBForms(t *testing.T) {
	for _, bad := range []string{"", "nope", "redis://secret-pw@h", "sqlite:", "mysql://user:secret-pw@tcp(h/db"} {
		_, err := OpenDB(bad)
		if err == nil {
			t.Errorf("OpenDB(%q) succeeded", bad)
			continue
		}
		if !strings.Contains(err.Error(), "sqlite:PATH") || strings.Contains(err.Error(), "secret-pw") {
			t.Errorf("OpenDB(%q) error %q: must name the forms and not echo the DSN", bad, err)
		}
	}
	db, err := OpenDB("sqlite::memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s := New(db, mustRing(t, mustKey(t)), nil)
	if err := s.CreateSchema(context.Background()); err != nil {
		t.Fatal(err)
	}
	id, err := s.Put(context.Background(), "m", "p", "sk-mem", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if sec, err := s.Resolve(context.Background(), id); err != nil || sec.Reveal() != "sk-mem" {
		t.Fatalf("in-memory database: %v", err)
	}
}

// TestDetectDialect: the dialect comes from the driver's package, for a
// database OpenDB opened (behind its error-rewriting connector) and for one
// a host opened with sql.Open, without this package linking any driver.
func TestDetectDialect(t *testing.T) {
	for _, c := range []struct {
		dsn  string
		want Dialect
	}{
		{"sqlite::memory:", SQLite},
		{"postgres://u@127.0.0.1:1/db", Postgres},
		{"mysql://u@tcp(127.0.0.1:1)/db", MySQL},
	} {
		db, err := OpenDB(c.dsn)
		if err != nil {
			t.Fatal(err)
		}
		if d, err := DetectDialect(db); err != nil || d != c.want {
			t.Errorf("DetectDialect(%s) = %q, %v", c.dsn, d, err)
		}
		db.Close()
	}
	for driverName, want := range map[string]Dialect{"sqlite": SQLite, "pgx": Postgres, "mysql": MySQL} {
		db, err := sql.Open(driverName, "")
		if err != nil {
			t.Fatal(err)
		}
		if d, err := DetectDialect(db); err != nil || d != want {
			t.Errorf("DetectDialect(sql.Open(%q)) = %q, %v; want %q", driverName, d, err, want)
		}
		db.Close()
	}
}

func TestOpener(t *testing.T) {
	dir := t.TempDir()
	k := mustKey(t)
	t.Setenv(EnvKey, k)
	t.Setenv(EnvPreviousKeys, "")
	t.Setenv(EnvDatabaseURL, "sqlite:"+filepath.Join(dir, "opener.db"))
	ctx := context.Background()

	for _, bad := range []string{"fernet://?tabel=x", "fernet://?plaintext=yes", "fernet://host?table=x", "fernet://?table=a&table=b"} {
		if _, err := secrets.Open(ctx, bad); !errors.Is(err, secrets.ErrInvalidRef) {
			t.Errorf("Open(%q): %v", bad, err)
		}
	}
	// No I/O in the opener: a bad key only shows on first use.
	t.Setenv(EnvKey, "not-a-key")
	r, err := secrets.Open(ctx, "fernet://?table=api_keys&plaintext=allow")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Resolve(ctx, "1"); err == nil || !strings.Contains(err.Error(), "ENCRYPTION_KEY is 9 characters") {
		t.Fatalf("first resolve with a bad key: %v", err)
	}
	t.Setenv(EnvKey, k)
	s := r.(*Store)
	if err := s.CreateSchema(ctx); err != nil {
		t.Fatal(err)
	}
	id, err := s.Put(ctx, "n", "p", "sk-opened", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if sec, err := r.Resolve(ctx, id); err != nil || sec.Reveal() != "sk-opened" {
		t.Fatalf("Resolve via opener: %v", err)
	}
	if p, ok := r.(secrets.Pinger); !ok || p.Ping(ctx) != nil {
		t.Fatal("the opened store does not ping")
	}
	if !s.opts.AllowPlaintext {
		t.Fatal("plaintext=allow not applied")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Resolve(ctx, id); !errors.Is(err, secrets.ErrUnavailable) {
		t.Fatalf("Resolve after Close: %v", err)
	}
	d, _ := s.Loaded()
	if err := d.(*base).db.Ping(); err == nil {
		t.Fatal("Close left the store's own database open")
	}
}

// TestNoValueInReportsOrErrors runs the write, migrate, rotate and list
// paths over rows of every state and searches every error, report and log
// line for the values and keys.
func TestNoValueInReportsOrErrors(t *testing.T) {
	db := openTestDB(t, SQLite)
	ctx := context.Background()
	k1, k2 := mustKey(t), mustKey(t)
	s := newTestStore(t, db, mustRing(t, k1, k2), nil)
	table := s.opts.Table
	values := []string{"sk-ant-test-" + randHex(10), "sk-ant-test-" + randHex(10), "sk-ant-test-" + randHex(10)}
	insertRaw(t, db, SQLite, table, values[0])
	insertRaw(t, db, SQLite, table, mustEncrypt(t, mustRing(t, k2), values[1]))
	unknown := mustEncrypt(t, mustRing(t, mustKey(t)), values[2])
	badID := insertRaw(t, db, SQLite, table, unknown)

	var out bytes.Buffer
	log := slog.New(slog.NewTextHandler(&out, nil))
	progress := func(r Report) { log.Info("progress", "report", fmt.Sprintf("%+v", r)) }
	for _, f := range []func(context.Context, *WalkOptions) (Report, error){s.Migrate, s.Rotate} {
		rep, err := f(ctx, &WalkOptions{Progress: progress})
		fmt.Fprintf(&out, "%+v %v\n", rep, err)
		if rep.Undecryptable != 1 || len(rep.UndecryptableIDs) != 1 || rep.UndecryptableIDs[0] != badID {
			t.Fatalf("report %+v: want the unknown-key row reported by id", rep)
		}
	}
	es, err := s.List(ctx)
	fmt.Fprintf(&out, "%+v %#v %v\n", es, es, err)
	for _, ref := range []string{badID, "77777", "x#y"} {
		_, err := s.Resolve(ctx, ref)
		fmt.Fprintf(&out, "%v %+v\n", err, err)
	}
	_, err = New(db, mustRing(t, k1), &Options{Table: table}).Resolve(ctx, "1")
	fmt.Fprintf(&out, "%v\n", err)
	_, err = ParseKeyRing(k1[:43] + "*")
	fmt.Fprintf(&out, "%v\n", err)
	for _, secret := range append(values, k1, k2, k1[:12], unknown) {
		if strings.Contains(out.String(), secret) {
			t.Fatalf("output holds a secret value or key (%d bytes)", len(secret))
		}
	}
	if !strings.Contains(out.String(), "Undecryptable:1") {
		t.Fatal("the captured output is not what this test thinks it is")
	}
}

func TestCanceledContextOnWalks(t *testing.T) {
	db := openTestDB(t, SQLite)
	s := newTestStore(t, db, mustRing(t, mustKey(t)), nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Rotate(ctx, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("Rotate with a canceled context: %v", err)
	}
	if _, err := s.List(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("List with a canceled context: %v", err)
	}
}

func TestParseDBTime(t *testing.T) {
	want := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, v := range []any{want, "2026-01-02 03:04:05", "2026-01-02T03:04:05", "2026-01-02 03:04:05.000000",
		"2026-01-02 03:04:05+00:00", "2026-01-02T03:04:05Z", []byte("2026-01-02 03:04:05"), want.Unix()} {
		got, err := parseDBTime(v)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseDBTime(%T %v) = %v, %v", v, v, got, err)
		}
	}
	if got, err := parseDBTime(nil); err != nil || !got.IsZero() {
		t.Errorf("nil: %v %v", got, err)
	}
	if _, err := parseDBTime("soon"); err == nil {
		t.Error("an unparseable time parsed")
	}
}

// TestMySQLWithoutParseTime: a DSN without parseTime=true returns times as
// text; expiry still works.
func TestMySQLWithoutParseTime(t *testing.T) {
	dsn := testenv.MySQLDSN(t)
	dsn = strings.NewReplacer("parseTime=true", "parseTime=false").Replace(dsn)
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	// A cleanup, not a defer: the table is dropped in a later-registered
	// cleanup, which runs first, while db is still open.
	t.Cleanup(func() { db.Close() })
	if err := db.Ping(); err != nil {
		testenv.Missing(t, "MariaDB", "start it and check KEYWARD_TEST_MYSQL_DSN")
	}
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	s := newTestStore(t, db, mustRing(t, mustKey(t)), &Options{Now: func() time.Time { return now }})
	ctx := context.Background()
	exp := now.Add(90 * time.Minute)
	id, err := s.Put(ctx, "n", "p", "sk-mysql-text-time", exp)
	if err != nil {
		t.Fatal(err)
	}
	sec, err := s.Resolve(ctx, id)
	if err != nil || !sec.ExpiresAt.Equal(exp) {
		t.Fatalf("Resolve: %v, ExpiresAt %v want %v", err, sec.ExpiresAt, exp)
	}
	old, _ := s.Put(ctx, "n", "p", "sk-old", now.Add(-time.Second))
	if _, err := s.Resolve(ctx, old); !errors.Is(err, secrets.ErrExpired) {
		t.Fatalf("expired row: %v", err)
	}
}

// TestResolveRacingClose replays the interleaving of a Resolve that got its
// driver just before Close ran: it must not prepare a statement after Close
// (nothing would ever close it), and fails as unavailable instead.
func TestResolveRacingClose(t *testing.T) {
	db := openTestDB(t, SQLite)
	s := newTestStore(t, db, mustRing(t, mustKey(t)), nil)
	b, sc, err := s.schema(context.Background(), "resolve")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := b.resolveStmt(context.Background(), sc)
	if err == nil || st != nil || b.stmt.Load() != nil {
		t.Fatalf("resolveStmt after Close: %v; a statement was prepared and kept", err)
	}
	if !errors.Is(err, secrets.ErrUnavailable) {
		t.Fatalf("resolveStmt after Close: %v, want ErrUnavailable", err)
	}
	if _, err := s.Resolve(context.Background(), "1"); !errors.Is(err, secrets.ErrUnavailable) {
		t.Fatalf("Resolve after Close: %v, want ErrUnavailable", err)
	}
}

// TestUnknownSchemeNeverQuotesPassword: before the first ':' of a key=value
// DSN can sit part of a password; only a scheme-shaped prefix is quoted.
func TestUnknownSchemeNeverQuotesPassword(t *testing.T) {
	for _, dsn := range []string{"host=db user=app password=Sup3r:Secret", "user=app password=Sup3r:Secret dbname=x", "Sup3r Pass:word"} {
		_, err := OpenDB(dsn)
		if err == nil {
			t.Fatalf("OpenDB accepted a DSN without a scheme")
		}
		if msg := err.Error(); strings.Contains(msg, "Sup3r") {
			t.Errorf("the error for a key=value DSN quotes part of its password") // not printed: it would leak
		} else if !strings.Contains(msg, "no recognised scheme") {
			t.Errorf("error for a key=value DSN: %q; want it to say the DSN has no recognised scheme", msg)
		}
	}
	if _, err := OpenDB("redis://secret-pw@h"); err == nil || !strings.Contains(err.Error(), `"redis"`) {
		t.Errorf("a scheme-shaped unknown scheme is named: %v", err)
	}
}
