package fernetstore

import (
	"context"
	"database/sql"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/internal/testenv"
	"github.com/keyward/secrets/secretstest"
)

// The rules the driver layer owns, checked on fernetstore: each of these
// drifted between backends before (issue 11). Where a rule's error has a
// fixed text, it is compared with the error the Fake (served by the same
// core) gives for the same case: one rule, one message.

// sameRule checks that got is an *secrets.Error with Op op, Backend fernet
// and Ref ref, and the same Code and Reason as want (the Fake's error for
// the same case).
func sameRule(t *testing.T, what string, got, want error, op, ref string) {
	t.Helper()
	var g, w *secrets.Error
	if !errors.As(got, &g) {
		t.Fatalf("%s: %T is not a *secrets.Error: %v", what, got, got)
	}
	if !errors.As(want, &w) {
		t.Fatalf("%s: the reference error %T is not a *secrets.Error: %v", what, want, want)
	}
	if g.Op != op || g.Backend != Backend || g.Ref != ref {
		t.Errorf("%s: Op %q Backend %q Ref %q, want %q %q %q", what, g.Op, g.Backend, g.Ref, op, Backend, ref)
	}
	if g.Code != w.Code || g.Reason != w.Reason {
		t.Errorf("%s: code %v reason %q; want the core's: code %v reason %q", what, g.Code, g.Reason, w.Code, w.Reason)
	}
}

// TestCanceledContextRule: a canceled ctx is secrets.ContextError, an *Error
// naming the backend, the op and the ref that errors.Is context.Canceled,
// for Resolve, ResolveMany (one Result per ref), Ping and the Store's own
// operations. fernetstore labelled it "database error" (CodeUnknown).
func TestCanceledContextRule(t *testing.T) {
	db := openTestDB(t, SQLite)
	s := newTestStore(t, db, mustRing(t, mustKey(t)), nil)
	id, err := s.Put(context.Background(), "n", "p", "sk-ctx-4d1a", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	want := func(op, ref string) error { return secrets.ContextError(op, "", ref, context.Canceled) }

	_, err = s.Resolve(ctx, id)
	sameRule(t, "Resolve", err, want("resolve", id), "resolve", id)
	res, err := secrets.ResolveMany(ctx, s, []string{id, "77"})
	if !errors.Is(err, context.Canceled) || len(res) != 2 {
		t.Fatalf("ResolveMany: %d results, %v; want 2 and context.Canceled", len(res), err)
	}
	for _, r := range res {
		sameRule(t, "ResolveMany", r.Err, want("resolve", r.Ref), "resolve", r.Ref)
	}
	sameRule(t, "Ping", s.Ping(ctx), want("ping", ""), "ping", "")
	_, err = s.List(ctx)
	sameRule(t, "List", err, want("list", ""), "list", "")
	_, err = s.Rotate(ctx, nil)
	sameRule(t, "Rotate", err, want("rotate", ""), "rotate", "")
	_, err = s.Put(ctx, "n", "p", "v", time.Time{})
	sameRule(t, "Put", err, want("put", ""), "put", "")
	sameRule(t, "Update", s.Update(ctx, id, "v", time.Time{}), want("update", id), "update", id)
}

// TestErrorsFollowTheCoreRules: the errors of a row (expired, no such
// #field, a #field of a value that is not JSON, undecryptable) name Op
// "resolve", the backend and the ref, with the core's one message.
// fernetstore wrote its own expiry and #field messages, and an undecryptable
// row's error kept Op "decrypt" (its withRef changed only the Ref).
func TestErrorsFollowTheCoreRules(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	db := openTestDB(t, SQLite)
	s := newTestStore(t, db, mustRing(t, mustKey(t)), &Options{Now: clock})
	ctx := context.Background()
	exp := now.Add(-time.Minute)
	expired, _ := s.Put(ctx, "n", "p", "sk-expired", exp)
	plain, _ := s.Put(ctx, "n", "p", "sk-not-json", time.Time{})
	doc, _ := s.Put(ctx, "n", "p", `{"api_key":"sk-doc"}`, time.Time{})
	foreign := insertRaw(t, db, SQLite, s.opts.Table, mustEncrypt(t, mustRing(t, mustKey(t)), "sk-foreign"))

	var fake secretstest.Fake
	fake.SetClock(clock)
	fakeErr := func(value string, expiresAt time.Time, ref string) error {
		sec := secrets.NewSecret(value)
		sec.ExpiresAt = expiresAt
		fake.SetSecret("x", sec)
		_, err := fake.Resolve(ctx, ref)
		return err
	}

	_, err := s.Resolve(ctx, expired)
	sameRule(t, "an expired row", err, fakeErr("v", exp, "x"), "resolve", expired)
	_, err = s.Resolve(ctx, doc+"#org")
	sameRule(t, "a missing #field", err, fakeErr(`{"api_key":"sk-doc"}`, time.Time{}, "x#org"), "resolve", doc+"#org")
	_, err = s.Resolve(ctx, plain+"#api_key")
	sameRule(t, "a #field of a value that is not JSON", err, fakeErr("sk-not-json", time.Time{}, "x#api_key"), "resolve", plain+"#api_key")

	_, err = s.Resolve(ctx, foreign)
	var e *secrets.Error
	if !errors.Is(err, secrets.ErrUndecryptable) || !errors.As(err, &e) || e.Op != "resolve" || e.Backend != Backend || e.Ref != foreign {
		t.Fatalf("a row under an unknown key: %#v; want ErrUndecryptable with Op resolve, Backend fernet, Ref %s", err, foreign)
	}
}

// TestFailedOpenRetried: a Store made by the opener that cannot open (no
// key yet) fails every ref of the call with the same error, in the one
// ResolveMany shape (a Result per ref and the whole-call error), and the
// next call opens it again.
func TestFailedOpenRetried(t *testing.T) {
	t.Setenv(EnvKey, "")
	t.Setenv(EnvDatabaseURL, "sqlite:"+filepath.Join(t.TempDir(), "retry.db"))
	ctx := context.Background()
	r, err := secrets.Open(ctx, "fernet://")
	if err != nil {
		t.Fatal(err)
	}
	s := r.(*Store)
	defer s.Close()
	res, err := s.ResolveMany(ctx, []string{"1", "2#api_key", "1?x=y"})
	if err == nil || !strings.Contains(err.Error(), EnvKey+" is not set") || len(res) != 3 {
		t.Fatalf("ResolveMany before the key is set: %d results, %v", len(res), err)
	}
	for _, r := range res[:2] {
		var e *secrets.Error
		if !errors.As(r.Err, &e) || e.Op != "resolve" || e.Backend != Backend || e.Ref != r.Ref || !strings.Contains(e.Reason, EnvKey+" is not set") {
			t.Errorf("result %q: %v; want the open error naming %s, with Op resolve and its ref", r.Ref, r.Err, EnvKey)
		}
	}
	if !errors.Is(res[2].Err, secrets.ErrInvalidRef) {
		t.Errorf("an invalid ref among them: %v, want ErrInvalidRef", res[2].Err)
	}

	t.Setenv(EnvKey, mustKey(t))
	if err := s.CreateSchema(ctx); err != nil {
		t.Fatalf("after the key is set: %v", err)
	}
	id, err := s.Put(ctx, "n", "p", "sk-retried", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if sec, err := s.Resolve(ctx, id); err != nil || sec.Reveal() != "sk-retried" {
		t.Fatalf("Resolve once the store opens: %v", err)
	}
}

// TestClosedResolveMany: after Close, ResolveMany fails every ref with
// ErrUnavailable and returns the whole-call error, like every backend.
func TestClosedResolveMany(t *testing.T) {
	db := openTestDB(t, SQLite)
	s := newTestStore(t, db, mustRing(t, mustKey(t)), nil)
	id, _ := s.Put(context.Background(), "n", "p", "sk-closed", time.Time{})
	s.Close()
	res, err := s.ResolveMany(context.Background(), []string{id, id + "#f"})
	if !errors.Is(err, secrets.ErrUnavailable) || len(res) != 2 {
		t.Fatalf("ResolveMany after Close: %d results, %v", len(res), err)
	}
	for _, r := range res {
		if !errors.Is(r.Err, secrets.ErrUnavailable) {
			t.Errorf("result %q after Close: %v, want ErrUnavailable", r.Ref, r.Err)
		}
	}
	if err := db.Ping(); err != nil {
		t.Fatalf("Close closed the database New was given: %v", err)
	}
}

// TestPlaintextSource: a plaintext row read in migration mode says so in
// its Secret's Source, set by the core from the driver's Value.
func TestPlaintextSource(t *testing.T) {
	db := openTestDB(t, SQLite)
	s := newTestStore(t, db, mustRing(t, mustKey(t)), &Options{AllowPlaintext: true})
	plain := insertRaw(t, db, SQLite, s.opts.Table, "sk-legacy-plain")
	tok, _ := s.Put(context.Background(), "n", "p", "sk-enc", time.Time{})
	for ref, want := range map[string]secrets.Source{plain: {Backend: Backend, Plaintext: true}, tok: {Backend: Backend}} {
		sec, err := s.Resolve(context.Background(), ref)
		if err != nil || sec.Source != want {
			t.Errorf("row %s: Source %+v, %v; want %+v", ref, sec.Source, err, want)
		}
	}
}

// withDatabases replaces the registered database packages for one test,
// as if the program had imported only those in m.
func withDatabases(t *testing.T, m map[string]func(string, DBOptions) (*sql.DB, error)) {
	databases.mu.Lock()
	old := databases.m
	databases.m = m
	databases.mu.Unlock()
	t.Cleanup(func() {
		databases.mu.Lock()
		databases.m = old
		databases.mu.Unlock()
	})
}

// TestForgottenDatabaseImport: a DSN whose database package the program did
// not import fails with ErrUnknownScheme naming the package to import: from
// OpenDB, from the fernet:// opener at open time (DATABASE_URL, or its
// sqlite default), and from NewFromEnv on first use.
func TestForgottenDatabaseImport(t *testing.T) {
	withDatabases(t, nil)
	t.Setenv(EnvKey, mustKey(t))
	ctx := context.Background()
	check := func(what string, err error, pkg string) {
		t.Helper()
		if !errors.Is(err, secrets.ErrUnknownScheme) {
			t.Fatalf("%s: %v, want ErrUnknownScheme", what, err)
		}
		for _, says := range []string{`"github.com/keyward/secrets/fernetstore/` + pkg + `"`, "forgotten import?", "linked: none"} {
			if !strings.Contains(err.Error(), says) {
				t.Errorf("%s: %q does not say %s", what, err, says)
			}
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: the error quotes the DSN's password", what)
		}
	}
	for dsn, pkg := range map[string]string{
		"Postgres://u:hunter2@db/app": "postgres", "mariadb://u:hunter2@db/app": "mysql",
		"sqlite:k.db": "sqlite", "file:k.db": "sqlite", "MYSQL://u:hunter2@tcp(db)/app": "mysql",
	} {
		_, err := OpenDB(dsn)
		check("OpenDB", err, pkg)
	}

	t.Setenv(EnvDatabaseURL, "postgresql://u:hunter2@db/app")
	_, err := secrets.Open(ctx, "fernet://?table=api_keys")
	check("fernet:// with a postgresql DATABASE_URL", err, "postgres")
	t.Setenv(EnvDatabaseURL, "")
	_, err = secrets.Open(ctx, "fernet://")
	check("fernet:// with the default DATABASE_URL", err, "sqlite")
	_, err = NewFromEnv(nil).Resolve(ctx, "1")
	check("NewFromEnv", err, "sqlite")

	// With the package linked, the same DSN opens.
	withDatabases(t, map[string]func(string, DBOptions) (*sql.DB, error){"sqlite": func(string, DBOptions) (*sql.DB, error) { return sql.Open("sqlite", ":memory:") }})
	db, err := OpenDB("SQLite:k.db")
	if err != nil {
		t.Fatalf("OpenDB with the sqlite package linked: %v", err)
	}
	db.Close()
	_, err = OpenDB("postgres://u@db/app")
	if !errors.Is(err, secrets.ErrUnknownScheme) || !strings.Contains(err.Error(), "linked: sqlite") {
		t.Errorf("OpenDB of an unlinked scheme: %v; want ErrUnknownScheme listing the linked schemes", err)
	}
}

// TestOpenDBLowersTheScheme: the database package gets the DSN with its
// scheme in lower case and the rest as it was.
func TestOpenDBLowersTheScheme(t *testing.T) {
	var got string
	withDatabases(t, map[string]func(string, DBOptions) (*sql.DB, error){"postgresql": func(dsn string, _ DBOptions) (*sql.DB, error) {
		got = dsn
		return nil, errors.New("not opened")
	}})
	OpenDB("PostgreSQL://User@Host/DB?x=Y")
	if want := "postgresql://User@Host/DB?x=Y"; got != want {
		t.Errorf("the database package got %q, want %q", got, want)
	}
}

func TestRegisterDatabasePanics(t *testing.T) {
	withDatabases(t, nil)
	open := func(string, DBOptions) (*sql.DB, error) { return nil, nil }
	RegisterDatabase([]string{"sqlite"}, open)
	for name, f := range map[string]func(){
		"twice":      func() { RegisterDatabase([]string{"sqlite"}, open) },
		"upper case": func() { RegisterDatabase([]string{"Postgres"}, open) },
		"not a name": func() { RegisterDatabase([]string{"my sql"}, open) },
		"nil":        func() { RegisterDatabase([]string{"mysql"}, nil) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("RegisterDatabase %s did not panic", name)
				}
			}()
			f()
		}()
	}
}

// TestLinksNoSQLDriver: this package links no SQL driver, and each database
// package links only its own (issue 11: a host importing fernetstore built a
// 21 MB binary with all three).
func TestLinksNoSQLDriver(t *testing.T) {
	goTool := testenv.LookPath(t, "go", "install Go, which this test runs as `go list -deps`")
	drivers := map[string]string{"sqlite": "modernc.org/sqlite", "postgres": "github.com/jackc/pgx/", "mysql": "github.com/go-sql-driver/mysql"}
	for _, pkg := range []string{".", "./sqlite", "./postgres", "./mysql"} {
		out, err := exec.Command(goTool, "list", "-deps", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		for name, prefix := range drivers {
			linked := strings.Contains(string(out), "\n"+prefix) || strings.HasPrefix(string(out), prefix)
			if own := pkg == "./"+name; linked != own {
				t.Errorf("%s links %s: %v, want %v", pkg, prefix, linked, own)
			}
		}
	}
}
