package audittable_test

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
	"strings"
	"testing"
	"time"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/audittable"
	_ "github.com/keyward/secrets/cache"
	_ "github.com/keyward/secrets/envstore"
	"github.com/keyward/secrets/fernetstore"
	_ "github.com/keyward/secrets/fernetstore/mysql"
	_ "github.com/keyward/secrets/fernetstore/postgres"
	_ "github.com/keyward/secrets/fernetstore/sqlite"
	"github.com/keyward/secrets/internal/testenv"
)

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// uniqueTable is a table name for this test alone, dropped at its end.
func uniqueTable(t *testing.T, db *sql.DB) string {
	name := "kw_audit_" + randHex(6)
	t.Cleanup(func() { db.Exec("DROP TABLE IF EXISTS " + name) })
	return name
}

var dialects = []fernetstore.Dialect{fernetstore.SQLite, fernetstore.Postgres, fernetstore.MySQL}

// openDB opens a database of dialect d: a fresh SQLite file, or the test
// PostgreSQL/MariaDB server (skipping, or failing under
// KEYWARD_REQUIRE_SERVERS=1, when its DSN is not set).
func openDB(t *testing.T, d fernetstore.Dialect) *sql.DB {
	t.Helper()
	var db *sql.DB
	var err error
	switch d {
	case fernetstore.SQLite:
		db, err = fernetstore.OpenDB("sqlite:" + filepath.Join(t.TempDir(), "audit.db"))
	case fernetstore.Postgres:
		db, err = fernetstore.OpenDB(testenv.PostgresDSN(t))
	case fernetstore.MySQL:
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

func forEachDB(t *testing.T, f func(t *testing.T, db *sql.DB, d fernetstore.Dialect)) {
	for _, d := range dialects {
		t.Run(string(d), func(t *testing.T) { f(t, openDB(t, d), d) })
	}
}

func newAuditor(t *testing.T, db *sql.DB, o *audittable.Options) *audittable.Auditor {
	t.Helper()
	a, err := audittable.New(db, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

func rows(t *testing.T, db *sql.DB, o *audittable.ListOptions) []audittable.Row {
	t.Helper()
	var out []audittable.Row
	for r, err := range audittable.List(context.Background(), db, o) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// allText returns every column of every row of table as text.
func allText(t *testing.T, db *sql.DB, table string) []string {
	t.Helper()
	rs, err := db.Query("SELECT * FROM " + table)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	cols, _ := rs.Columns()
	var out []string
	for rs.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rs.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		for i, v := range vals {
			if b, ok := v.([]byte); ok {
				v = string(b)
			}
			out = append(out, fmt.Sprintf("%s=%v", cols[i], v))
		}
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestNoValueThroughAStack resolves a known secret through a stack whose
// auditor is the table (and slog), on every database, then searches every
// column of every row, and the logs, for the value. The rows say what
// happened: success, outcome, backend, api_key_id, requester, cache hit.
func TestNoValueThroughAStack(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *sql.DB, d fernetstore.Dialect) {
		ctx := context.Background()
		key, err := fernetstore.GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		ring, err := fernetstore.ParseKeyRing(key)
		if err != nil {
			t.Fatal(err)
		}
		keyTable := "kw_audit_keys_" + randHex(6)
		t.Cleanup(func() { db.Exec("DROP TABLE IF EXISTS " + keyTable) })
		store := fernetstore.New(db, ring, &fernetstore.Options{Table: keyTable, IDType: fernetstore.IDText})
		if err := store.CreateSchema(ctx); err != nil {
			t.Fatal(err)
		}
		value := "sk-ant-" + randHex(16)
		id, err := store.Put(ctx, "support", "anthropic", value, time.Time{})
		if err != nil {
			t.Fatal(err)
		}

		table := uniqueTable(t, db)
		var logs bytes.Buffer
		logger := slog.New(slog.NewTextHandler(&logs, nil))
		a := newAuditor(t, db, &audittable.Options{Table: table, CreateTable: true, Logger: logger})
		cfg, err := secrets.ParseConfig("audit = on\ncache = on")
		if err != nil {
			t.Fatal(err)
		}
		st, err := secrets.OpenConfig(ctx, cfg, &secrets.StackOptions{
			Backends: map[string]secrets.KeyResolver{"db": store},
			Auditor: secrets.AuditFunc(func(ctx context.Context, ev secrets.AuditEvent) {
				a.Audit(ctx, ev)
				secrets.SlogAuditor(logger).Audit(ctx, ev)
			}),
		})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		if d == fernetstore.Postgres {
			// The stack's watch of the store begins by expiring what the
			// cache holds (it cannot vouch for what came before it
			// listened): let it begin before the resolves whose second
			// must be a cache hit.
			for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
				var n int
				db.QueryRow("SELECT count(*) FROM pg_stat_activity WHERE query = $1", `LISTEN "`+fernetstore.Channel("public."+keyTable)+`"`).Scan(&n)
				if n > 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the stack's watch never listened")
				}
			}
			time.Sleep(100 * time.Millisecond) // its Lost, just after the LISTEN
		}
		asker := secrets.WithRequester(ctx, "bot-7")
		for range 2 { // the second is a cache hit
			s, err := st.Resolve(asker, "db:"+id)
			if err != nil || s.Reveal() != value {
				t.Fatalf("resolve: %v", err)
			}
		}
		if _, err := st.Resolve(asker, "db:no-such-row"); !errors.Is(err, secrets.ErrNotFound) {
			t.Fatalf("resolve of a missing row: %v, want ErrNotFound", err)
		}
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
		if s := a.Stats(); s.Written != 3 || s.Dropped != 0 || s.Failed != 0 {
			t.Fatalf("stats %+v, want 3 written", s)
		}
		for _, cell := range allText(t, db, table) {
			if strings.Contains(cell, value) {
				t.Fatalf("a row of the audit table holds the value (column %s)", strings.SplitN(cell, "=", 2)[0])
			}
		}
		if strings.Contains(logs.String(), value) {
			t.Fatal("the logs hold the value")
		}

		got := rows(t, db, &audittable.ListOptions{Table: table})
		if len(got) != 3 {
			t.Fatalf("%d rows, want 3", len(got))
		}
		var ok, hit, missing int
		for _, r := range got {
			if len(r.ID) != 36 || r.UsedAt.IsZero() || r.Backend != fernetstore.Backend || r.Requester != "bot-7" {
				t.Errorf("row %+v: want a UUID id, a time, backend fernet, requester bot-7", r)
			}
			switch {
			case r.Ref == "db:"+id && r.Success && r.Outcome == "ok" && r.APIKeyID == id && r.ErrorMessage == "":
				ok++
				if r.CacheHit {
					hit++
				}
			case r.Ref == "db:no-such-row" && !r.Success && r.Outcome == "not_found" && r.APIKeyID == "" && r.ErrorMessage != "":
				missing++
			default:
				t.Errorf("unexpected row %+v", r)
			}
		}
		if ok != 2 || hit != 1 || missing != 1 {
			t.Fatalf("rows: %d ok (%d cache hits), %d not found; want 2 (1), 1", ok, hit, missing)
		}
		if !strings.Contains(logs.String(), "requester=bot-7") {
			t.Errorf("SlogAuditor does not log the requester:\n%s", logs.String())
		}
		// Newest first, and the filters.
		for i := 1; i < len(got); i++ {
			if got[i].UsedAt.After(got[i-1].UsedAt) {
				t.Fatalf("rows not newest first: %v after %v", got[i].UsedAt, got[i-1].UsedAt)
			}
		}
		if n := len(rows(t, db, &audittable.ListOptions{Table: table, Ref: "db:" + id})); n != 2 {
			t.Errorf("--ref: %d rows, want 2", n)
		}
		if n := len(rows(t, db, &audittable.ListOptions{Table: table, Limit: 1})); n != 1 {
			t.Errorf("Limit 1: %d rows", n)
		}
		if n := len(rows(t, db, &audittable.ListOptions{Table: table, Since: time.Now().Add(time.Hour)})); n != 0 {
			t.Errorf("Since an hour ahead: %d rows, want 0", n)
		}
		if n := len(rows(t, db, &audittable.ListOptions{Table: table, Since: time.Now().Add(-time.Hour)})); n != 3 {
			t.Errorf("Since an hour ago: %d rows, want 3", n)
		}
	})
}

// pythonDDL is the Python service's api_key_usage as SQLAlchemy creates it.
var pythonDDL = map[fernetstore.Dialect]string{
	fernetstore.SQLite:   "CREATE TABLE %s (id VARCHAR(36) NOT NULL, api_key_id VARCHAR(36), used_at DATETIME, success BOOLEAN, error_message TEXT, PRIMARY KEY (id))",
	fernetstore.Postgres: "CREATE TABLE %s (id VARCHAR(36) NOT NULL, api_key_id VARCHAR(36), used_at TIMESTAMP WITHOUT TIME ZONE, success BOOLEAN, error_message TEXT, PRIMARY KEY (id))",
	fernetstore.MySQL:    "CREATE TABLE %s (id VARCHAR(36) NOT NULL, api_key_id VARCHAR(36), used_at DATETIME, success BOOL, error_message TEXT, PRIMARY KEY (id))",
}

// TestPythonTable: the Python service's five-column table is written as it
// is (only its columns) and listed; a --ref filter on it is refused.
func TestPythonTable(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *sql.DB, d fernetstore.Dialect) {
		ctx := context.Background()
		table := uniqueTable(t, db)
		if _, err := db.Exec(fmt.Sprintf(pythonDDL[d], table)); err != nil {
			t.Fatal(err)
		}
		a := newAuditor(t, db, &audittable.Options{Table: table, CreateTable: true})
		now := time.Now()
		a.Audit(ctx, secrets.AuditEvent{Time: now, Ref: "db:0b8f6a3e-5d1c-4a57-9a39-2f0e8f1c7d11", Backend: "fernet", Outcome: "ok"})
		a.Audit(ctx, secrets.AuditEvent{Time: now, Ref: "env:NOPE", Backend: "env", Outcome: "not_found",
			Err: &secrets.Error{Op: "resolve", Backend: "env", Ref: "NOPE", Code: secrets.CodeNotFound}})
		if err := a.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		cols, err := audittable.TableColumns(ctx, db, &audittable.ListOptions{Table: table})
		if err != nil || strings.Join(cols, ",") != "id,api_key_id,used_at,success,error_message" {
			t.Fatalf("columns %v, %v: CreateTable must leave the existing table as it is", cols, err)
		}
		got := rows(t, db, &audittable.ListOptions{Table: table})
		if len(got) != 2 {
			t.Fatalf("%d rows, want 2", len(got))
		}
		var okRows, failed int
		for _, r := range got {
			if r.Success && r.APIKeyID == "0b8f6a3e-5d1c-4a57-9a39-2f0e8f1c7d11" && r.ErrorMessage == "" {
				okRows++
			}
			if !r.Success && r.APIKeyID == "" && strings.Contains(r.ErrorMessage, "not found") {
				failed++
			}
			if d := r.UsedAt.Sub(now); d < -2*time.Second || d > 2*time.Second { // a second's rounding on DATETIME
				t.Errorf("used_at %v, written %v", r.UsedAt, now.UTC())
			}
		}
		if okRows != 1 || failed != 1 {
			t.Fatalf("rows %+v", got)
		}
		for _, err := range audittable.List(ctx, db, &audittable.ListOptions{Table: table, Ref: "env:NOPE"}) {
			if !errors.Is(err, secrets.ErrInvalidRef) {
				t.Fatalf("a ref filter on the Python table: %v, want ErrInvalidRef", err)
			}
		}
	})
}

// TestForeignKey: on PostgreSQL, an api_key_id with a foreign key to
// api_keys whose row does not exist does not lose the batch: it is written
// again with NULL ids; a batch of existing ids keeps them.
func TestForeignKey(t *testing.T) {
	db := openDB(t, fernetstore.Postgres)
	ctx := context.Background()
	keys := "kw_audit_keys_" + randHex(6)
	table := "kw_audit_" + randHex(6)
	t.Cleanup(func() {
		db.Exec("DROP TABLE IF EXISTS " + table)
		db.Exec("DROP TABLE IF EXISTS " + keys)
	})
	for _, q := range []string{
		"CREATE TABLE " + keys + " (id VARCHAR(36) PRIMARY KEY)",
		"INSERT INTO " + keys + " (id) VALUES ('row-1')",
		"CREATE TABLE " + table + " (id VARCHAR(36) NOT NULL PRIMARY KEY, api_key_id VARCHAR(36) REFERENCES " + keys +
			" (id), used_at TIMESTAMP WITHOUT TIME ZONE, success BOOLEAN, error_message TEXT)",
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	var logs bytes.Buffer
	a := newAuditor(t, db, &audittable.Options{Table: table, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	ok := func(ref string) secrets.AuditEvent {
		return secrets.AuditEvent{Time: time.Now(), Ref: ref, Backend: "fernet", Outcome: "ok"}
	}
	// One batch: an existing row, a deleted one (a cache still had it).
	a.Audit(ctx, ok("db:row-1"))
	a.Audit(ctx, ok("db:row-gone"))
	if err := a.Flush(ctx); err != nil {
		t.Fatalf("the batch with a missing row failed: %v", err)
	}
	var null int
	if err := db.QueryRow("SELECT count(*) FROM " + table + " WHERE api_key_id IS NULL").Scan(&null); err != nil || null != 2 {
		t.Fatalf("%d rows with NULL api_key_id (%v), want both of the retried batch", null, err)
	}
	a.Audit(ctx, ok("db:row-1"))
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	var kept int
	if err := db.QueryRow("SELECT count(*) FROM " + table + " WHERE api_key_id = 'row-1'").Scan(&kept); err != nil || kept != 1 {
		t.Fatalf("%d rows with api_key_id row-1 (%v), want 1", kept, err)
	}
	if s := a.Stats(); s.Written != 3 || s.Failed != 0 {
		t.Fatalf("stats %+v", s)
	}
	if !strings.Contains(logs.String(), "api_key_id NULL") {
		t.Errorf("the retry is not logged:\n%s", logs.String())
	}
}

// TestQueueFullDrops: while the writer is stuck (the table locked by
// another transaction), Audit returns at once and drops what the queue
// cannot hold, counting it; when the lock goes, Close writes the rest.
func TestQueueFullDrops(t *testing.T) {
	db := openDB(t, fernetstore.Postgres)
	ctx := context.Background()
	table := uniqueTable(t, db)
	a0 := newAuditor(t, db, &audittable.Options{Table: table})
	if err := a0.CreateTable(ctx); err != nil {
		t.Fatal(err)
	}
	lock, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Rollback()
	if _, err := lock.Exec("LOCK TABLE " + table + " IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	const queue, batch, total = 10, 5, 200
	a := newAuditor(t, db, &audittable.Options{Table: table, QueueSize: queue, BatchSize: batch, WriteTimeout: time.Hour})
	for i := range total {
		a.Audit(ctx, secrets.AuditEvent{Time: time.Now(), Ref: fmt.Sprintf("env:K%d", i), Backend: "env", Outcome: "ok"})
	}
	s := a.Stats()
	// The writer holds one batch at most, blocked; the queue the rest.
	if s.Dropped < total-queue-batch || s.Written != 0 {
		t.Fatalf("stats %+v while the table is locked: want at least %d dropped, none written", s, total-queue-batch)
	}
	if err := lock.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	s = a.Stats()
	if s.Written+s.Dropped != total || s.Failed != 0 {
		t.Fatalf("stats %+v after Close: want written + dropped = %d", s, total)
	}
	var n uint64
	if err := db.QueryRow("SELECT count(*) FROM " + table).Scan(&n); err != nil || n != s.Written {
		t.Fatalf("%d rows (%v), want %d", n, err, s.Written)
	}
}

// TestCloseFlushes: Close writes what is queued, however long the flush
// interval; it is idempotent, and events after it are dropped.
func TestCloseFlushes(t *testing.T) {
	db := openDB(t, fernetstore.SQLite)
	table := uniqueTable(t, db)
	a := newAuditor(t, db, &audittable.Options{Table: table, CreateTable: true, FlushInterval: time.Hour, BatchSize: 1000})
	for i := range 25 {
		a.Audit(context.Background(), secrets.AuditEvent{Ref: fmt.Sprintf("env:K%d", i), Backend: "env", Outcome: "ok"})
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	a.Audit(context.Background(), secrets.AuditEvent{Ref: "env:LATE"})
	if s := a.Stats(); s.Written != 25 || s.Dropped != 1 {
		t.Fatalf("stats %+v, want 25 written, 1 dropped", s)
	}
	if n := len(rows(t, db, &audittable.ListOptions{Table: table})); n != 25 {
		t.Fatalf("%d rows, want 25", n)
	}
	if err := a.Flush(context.Background()); err != nil {
		t.Fatalf("Flush after Close: %v", err)
	}
}

// TestWriteFailuresCounted: a table that is not there fails its batches,
// counted and logged, and Audit keeps returning.
func TestWriteFailuresCounted(t *testing.T) {
	db := openDB(t, fernetstore.SQLite)
	var logs bytes.Buffer
	a := newAuditor(t, db, &audittable.Options{Table: "kw_audit_missing", Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	a.Audit(context.Background(), secrets.AuditEvent{Ref: "env:K", Backend: "env", Outcome: "ok"})
	if err := a.Flush(context.Background()); !errors.Is(err, secrets.ErrInvalidRef) {
		t.Fatalf("Flush: %v, want the missing table's ErrInvalidRef", err)
	}
	if s := a.Stats(); s.Failed != 1 || s.Written != 0 {
		t.Fatalf("stats %+v", s)
	}
	if !strings.Contains(logs.String(), "could not be written") {
		t.Fatalf("no log line:\n%s", logs.String())
	}
}

// TestTextSanitized: a ref with a NUL or invalid UTF-8 (a tenant wrote it;
// it failed as an invalid ref) does not fail its batch on PostgreSQL.
func TestTextSanitized(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *sql.DB, d fernetstore.Dialect) {
		table := uniqueTable(t, db)
		a := newAuditor(t, db, &audittable.Options{Table: table, CreateTable: true})
		a.Audit(context.Background(), secrets.AuditEvent{Ref: "db:a\x00b\xff", Outcome: "invalid_ref",
			Err: errors.New("bad"), Requester: strings.Repeat("é", 300)})
		a.Audit(context.Background(), secrets.AuditEvent{Ref: "db:1", Outcome: "ok"})
		if err := a.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		if n := len(rows(t, db, &audittable.ListOptions{Table: table})); n != 2 {
			t.Fatalf("%d rows, want 2", n)
		}
	})
}

func TestNewRefusesBadOptions(t *testing.T) {
	db := openDB(t, fernetstore.SQLite)
	for _, o := range []audittable.Options{{Table: "1bad"}, {Table: "a.b.c"}, {Table: "x; DROP"}, {BatchSize: audittable.MaxBatchSize + 1}, {QueueSize: -1}} {
		if _, err := audittable.New(db, &o); !errors.Is(err, secrets.ErrInvalidRef) {
			t.Errorf("New(%+v): %v, want ErrInvalidRef", o, err)
		}
	}
}

func TestDefaultKeyID(t *testing.T) {
	for _, c := range []struct {
		ev   secrets.AuditEvent
		want string
	}{
		{secrets.AuditEvent{Ref: "db:42", Backend: "fernet", Outcome: "ok"}, "42"},
		{secrets.AuditEvent{Ref: "db:42#org", Backend: "fernet", Outcome: "expired"}, "42"},
		{secrets.AuditEvent{Ref: "db:50%25", Backend: "fernet", Outcome: "ok"}, "50%"},
		{secrets.AuditEvent{Ref: "db:42", Backend: "fernet", Outcome: "not_found"}, ""},
		{secrets.AuditEvent{Ref: "env:X", Backend: "env", Outcome: "ok"}, ""},
		{secrets.AuditEvent{Ref: "nonsense", Backend: "fernet", Outcome: "ok"}, ""},
	} {
		if got := audittable.DefaultKeyID(c.ev); got != c.want {
			t.Errorf("DefaultKeyID(%s, %s, %s) = %q, want %q", c.ev.Ref, c.ev.Backend, c.ev.Outcome, got, c.want)
		}
	}
}

// TestConfigAuditDB: "audit = db?table=NAME" through secrets.OpenConfig
// writes to the table of DATABASE_URL, created there; Stack.Close flushes.
func TestConfigAuditDB(t *testing.T) {
	for _, d := range []fernetstore.Dialect{fernetstore.SQLite, fernetstore.Postgres} {
		t.Run(string(d), func(t *testing.T) {
			dsn := "sqlite:" + filepath.Join(t.TempDir(), "service.db")
			if d == fernetstore.Postgres {
				dsn = testenv.PostgresDSN(t)
			}
			t.Setenv("DATABASE_URL", dsn)
			t.Setenv("KW_AUDIT_TEST_KEY", "sk-"+randHex(12))
			db := openDB(t, d)
			if d == fernetstore.SQLite {
				var err error
				if db, err = fernetstore.OpenDB(dsn); err != nil {
					t.Fatal(err)
				}
				defer db.Close()
			}
			table := uniqueTable(t, db)
			cfg, err := secrets.ParseConfig("env = env://\naudit = db?table=" + table)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.AuditTable != table || !cfg.Audit {
				t.Fatalf("config %+v", cfg)
			}
			ctx := context.Background()
			st, err := secrets.OpenConfig(ctx, cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := st.Resolve(secrets.WithRequester(ctx, "cli"), "env:KW_AUDIT_TEST_KEY"); err != nil {
				t.Fatal(err)
			}
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
			got := rows(t, db, &audittable.ListOptions{Table: table})
			if len(got) != 1 || got[0].Ref != "env:KW_AUDIT_TEST_KEY" || !got[0].Success || got[0].Backend != "env" || got[0].Requester != "cli" {
				t.Fatalf("rows %+v", got)
			}
		})
	}
	// audit = db alone is api_key_usage.
	cfg, err := secrets.ParseConfig("audit = db")
	if err != nil || cfg.AuditTable != secrets.DefaultAuditTable {
		t.Fatalf("audit = db: %+v, %v", cfg, err)
	}
}

// TestConfigAuditDBBadDatabase: a DATABASE_URL no linked package opens
// stops OpenConfig, naming audit.
func TestConfigAuditDBBadDatabase(t *testing.T) {
	t.Setenv("DATABASE_URL", "oracle://u@h/db")
	cfg, err := secrets.ParseConfig("env = env://\naudit = db")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := secrets.OpenConfig(context.Background(), cfg, nil); err == nil || !strings.Contains(err.Error(), "audit = db") {
		t.Fatalf("OpenConfig: %v, want an error naming audit = db", err)
	}
}
