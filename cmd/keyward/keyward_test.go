package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/keyward/secrets/fernetstore"
	"github.com/keyward/secrets/internal/testenv"
)

// binDir holds the keyward command, built once, on first use (fuzz workers
// and benchmarks never need it): the tests run it as an operator would.
var (
	binDir    string
	buildOnce sync.Once
	buildErr  error
	binPath   string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// keywardBinary returns the path of the built command.
func keywardBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "keyward-test-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "keyward")
		if out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// result is one run of the binary.
type result struct {
	args           []string
	stdout, stderr string
	code           int
	mayShow        bool // --reveal or genkey: stdout may hold a value
}

func (r result) String() string {
	return fmt.Sprintf("keyward %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
}

// harness runs the binary in a temporary directory with a clean
// environment, records every output, and at the end checks that no secret
// value or key appears in any of them except where it must.
type harness struct {
	t       *testing.T
	dir     string
	env     map[string]string
	secrets []string
	runs    []result
}

func newHarness(t *testing.T) *harness {
	h := &harness{t: t, dir: t.TempDir(), env: map[string]string{}}
	t.Cleanup(h.checkLeaks)
	return h
}

// secret registers values that must never appear in output.
func (h *harness) secret(vs ...string) { h.secrets = append(h.secrets, vs...) }

func (h *harness) checkLeaks() {
	for _, r := range h.runs {
		for _, s := range h.secrets {
			if strings.Contains(r.stderr, s) {
				h.t.Errorf("keyward %s: a secret value appears on stderr", strings.Join(r.args, " "))
			}
			if !r.mayShow && strings.Contains(r.stdout, s) {
				h.t.Errorf("keyward %s: a secret value appears on stdout without --reveal", strings.Join(r.args, " "))
			}
		}
	}
}

// run runs keyward with h.env plus env (an empty value unsets) and stdin.
func (h *harness) run(env map[string]string, stdin string, args ...string) result {
	h.t.Helper()
	cmd := exec.Command(keywardBinary(h.t), args...)
	cmd.Dir = h.dir
	merged := map[string]string{"PATH": os.Getenv("PATH"), "HOME": h.dir, "TMPDIR": os.TempDir()}
	for k, v := range h.env {
		merged[k] = v
	}
	for k, v := range env {
		merged[k] = v
	}
	for k, v := range merged {
		if v != "" {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{args: args, stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		h.t.Fatalf("running keyward: %v", err)
	}
	for _, a := range args {
		if a == "--reveal" || a == "genkey" {
			r.mayShow = true
		}
	}
	h.runs = append(h.runs, r)
	return r
}

// interruptMigrate starts keyward args (a migrate with ENCRYPTION_KEY=key),
// sends it SIGINT once its progress says ten batches are done, and returns
// its output after that line and the error of its exit.
func (h *harness) interruptMigrate(key string, args ...string) (result, error) {
	h.t.Helper()
	cmd := exec.Command(keywardBinary(h.t), args...)
	cmd.Dir = h.dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + h.dir, "ENCRYPTION_KEY=" + key}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		h.t.Fatal(err)
	}
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	if err := cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "migrate: 10 rows scanned") {
			break // ten batches done: interrupt now
		}
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		h.t.Fatal(err)
	}
	var rest strings.Builder
	for sc.Scan() {
		rest.WriteString(sc.Text() + "\n")
	}
	err = cmd.Wait()
	r := result{args: args, stdout: stdout.String(), stderr: rest.String()}
	h.runs = append(h.runs, r)
	return r, err
}

// must runs keyward and fails the test unless it exits with want.
func (h *harness) must(want int, env map[string]string, stdin string, args ...string) result {
	h.t.Helper()
	r := h.run(env, stdin, args...)
	if r.code != want {
		h.t.Fatalf("want exit %d, got %s", want, r)
	}
	return r
}

var keyLine = regexp.MustCompile(`^ENCRYPTION_KEY=([A-Za-z0-9_-]{43}=)\n$`)

// genkey returns a new key from keyward genkey, registered as a secret.
func (h *harness) genkey() string {
	h.t.Helper()
	r := h.must(0, nil, "", "genkey")
	m := keyLine.FindStringSubmatch(r.stdout)
	if m == nil {
		h.t.Fatalf("genkey printed %d bytes not of the form ENCRYPTION_KEY=<44 chars>", len(r.stdout))
	}
	h.secret(m[1])
	return m[1]
}

func randomValue(t *testing.T, prefix string) string {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return prefix + hex.EncodeToString(b)
}

// database is one database the scenario runs against.
type database struct {
	url     string // what --db gets
	table   string // "" for the default
	dialect fernetstore.Dialect
	db      *sql.DB // for the test's own SQL
}

func (d *database) tableName() string {
	if d.table == "" {
		return "api_keys"
	}
	return d.table
}

func (d *database) ph(n int) string {
	if d.dialect == fernetstore.Postgres {
		return fmt.Sprintf("$%d", n)
	}
	return "?"
}

// flags are the global flags naming the database.
func (d *database) flags() []string {
	f := []string{"--db", d.url}
	if d.table != "" {
		f = append(f, "--table", d.table)
	}
	return f
}

// insertPlaintext writes a legacy plaintext row directly with SQL, as an
// application from before the migration would have, and returns its id.
func (d *database) insertPlaintext(t *testing.T, name, value string) string {
	t.Helper()
	q := fmt.Sprintf("INSERT INTO %s (name, provider, api_key) VALUES (%s, %s, %s)", d.tableName(), d.ph(1), d.ph(2), d.ph(3))
	var id int64
	if d.dialect == fernetstore.Postgres {
		if err := d.db.QueryRow(q+" RETURNING id", name, "openai", value).Scan(&id); err != nil {
			t.Fatal(err)
		}
	} else {
		res, err := d.db.Exec(q, name, "openai", value)
		if err != nil {
			t.Fatal(err)
		}
		if id, err = res.LastInsertId(); err != nil {
			t.Fatal(err)
		}
	}
	return fmt.Sprint(id)
}

// raw returns every stored value by id, to prove what a command changed.
func (d *database) raw(t *testing.T) map[string]string {
	t.Helper()
	rows, err := d.db.Query(fmt.Sprintf("SELECT id, api_key FROM %s", d.tableName()))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	m := map[string]string{}
	for rows.Next() {
		var id int64
		var v string
		if err := rows.Scan(&id, &v); err != nil {
			t.Fatal(err)
		}
		m[fmt.Sprint(id)] = v
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return m
}

func sameMap(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// states parses keyward list into id -> state, checking the header.
func states(t *testing.T, out string) map[string]string {
	t.Helper()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) == 0 || strings.Join(strings.Fields(lines[0]), " ") != "ID NAME PROVIDER STATE KEY EXPIRES" {
		t.Fatalf("list header: %q", out)
	}
	m := map[string]string{}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) != 6 {
			t.Fatalf("list line %q: want 6 columns", l)
		}
		m[f[0]] = f[3]
	}
	return m
}

func withFlags(d *database, args ...string) []string {
	// The database flags go after the subcommand here; TestGlobalFlags and
	// the scenario's list also put them before.
	return append(args, d.flags()...)
}

// scenario is the operator's whole job on one database: init, put, list,
// resolve, check, migrate of plaintext rows written with SQL, rotation to a
// new key, dry runs that change nothing, and check passing at the end.
func scenario(t *testing.T, d *database) {
	h := newHarness(t)
	key1, key2 := h.genkey(), h.genkey()
	if key1 == key2 {
		t.Fatal("genkey printed the same key twice")
	}
	k1 := map[string]string{"ENCRYPTION_KEY": key1}

	// No key: exit 3 and the way out.
	r := h.must(exitConfig, nil, "", withFlags(d, "list")...)
	if !strings.Contains(r.stderr, "ENCRYPTION_KEY is not set") || !strings.Contains(r.stderr, "run keyward genkey") {
		t.Errorf("missing key: %s", r)
	}
	// No table yet: exit 3 saying to run init.
	r = h.must(exitConfig, k1, "", withFlags(d, "list")...)
	if !strings.Contains(r.stderr, "keyward init") {
		t.Errorf("missing table: %s", r)
	}

	h.must(0, k1, "", withFlags(d, "init")...)
	h.must(0, k1, "", withFlags(d, "init")...) // idempotent

	valueA := randomValue(t, "sk-ant-test-")
	valueExp := randomValue(t, "sk-ant-test-")
	valueP1 := randomValue(t, "sk-legacy-test-")
	valueP2 := randomValue(t, "sk-legacy-test-")
	h.secret(valueA, valueExp, valueP1, valueP2)

	r = h.must(0, k1, valueA+"\n", withFlags(d, "put", "--name", "prod", "--provider", "anthropic")...)
	idA := strings.TrimSpace(r.stdout)
	if !regexp.MustCompile(`^[0-9]+$`).MatchString(idA) || !strings.Contains(r.stderr, "db:"+idA) {
		t.Fatalf("put: want the id on stdout and the ref on stderr: %s", r)
	}
	r = h.must(0, k1, valueExp, withFlags(d, "put", "--name", "old", "--provider", "anthropic", "--expires", "2020-01-02")...)
	idExp := strings.TrimSpace(r.stdout)
	h.must(exitUsage, k1, "", withFlags(d, "put", "--name", "x", "--provider", "y")...)
	h.must(exitUsage, k1, "\n", withFlags(d, "put", "--name", "x", "--provider", "y")...)
	h.must(exitUsage, k1, valueA, withFlags(d, "put", "--name", "x", "--provider", "y", "--expires", "next week")...)

	idP1 := d.insertPlaintext(t, "legacy-1", valueP1)
	idP2 := d.insertPlaintext(t, "legacy-2", valueP2)

	// Global flags before and after the subcommand give the same listing.
	before := h.must(0, k1, "", append(d.flags(), "list")...)
	after := h.must(0, k1, "", withFlags(d, "list")...)
	if before.stdout != after.stdout {
		t.Errorf("list with flags before/after the subcommand differ:\n%s\n%s", before.stdout, after.stdout)
	}
	st := states(t, before.stdout)
	want := map[string]string{idA: "encrypted", idExp: "expired", idP1: "plaintext", idP2: "plaintext"}
	if !sameMap(st, want) {
		t.Errorf("list states = %v, want %v", st, want)
	}

	// resolve: masked, then revealed; the command's flag before its argument.
	r = h.must(0, k1, "", withFlags(d, "resolve", "db:"+idA)...)
	if r.stdout != mask(valueA)+"\n" || !strings.HasPrefix(r.stdout, "sk-ant-…") {
		// Lengths only: if masking broke, stdout would hold the value.
		t.Errorf("resolve: stdout of %d bytes is not the %d-byte mask", len(r.stdout), len(mask(valueA))+1)
	}
	r = h.must(0, k1, "", withFlags(d, "resolve", "--reveal", "db:"+idA)...)
	if r.stdout != valueA+"\n" {
		t.Errorf("resolve --reveal: stdout is not the value alone (%d bytes)", len(r.stdout))
	}
	r = h.must(exitFindings, k1, "", withFlags(d, "resolve", "db:"+idExp)...)
	if !strings.Contains(r.stderr, "expired") {
		t.Errorf("resolve of an expired row: %s", r)
	}
	r = h.must(exitFindings, k1, "", withFlags(d, "resolve", "db:"+idP1)...)
	if !strings.Contains(r.stderr, "keyward migrate") {
		t.Errorf("resolve of a plaintext row: %s", r)
	}
	h.must(exitFindings, k1, "", withFlags(d, "resolve", "db:999999")...)

	// check before: every finding on its own line.
	r = h.must(exitFindings, k1, "", withFlags(d, "check")...)
	for _, w := range []string{
		"row " + idP1 + " (legacy-1, openai): plaintext: run keyward migrate",
		"row " + idP2 + " (legacy-2, openai): plaintext: run keyward migrate",
		"row " + idExp + " (old, anthropic): expired at 2020-01-02T00:00:00Z: store a new key with keyward update " + idExp + " --expires DATE",
	} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("check: missing %q in\n%s", w, r.stdout)
		}
	}

	// migrate --dry-run changes nothing and says there is work left.
	raw0 := d.raw(t)
	r = h.must(exitFindings, k1, "", withFlags(d, "migrate", "--dry-run")...)
	if !strings.Contains(r.stdout, "2 would be rewritten") || !sameMap(raw0, d.raw(t)) {
		t.Errorf("migrate --dry-run: %s\n(table changed: %v)", r, !sameMap(raw0, d.raw(t)))
	}
	r = h.must(0, k1, "", withFlags(d, "migrate", "--batch", "1")...)
	if !strings.Contains(r.stdout, "2 rewritten") || !strings.Contains(r.stdout, "migrate: done") ||
		!strings.Contains(r.stderr, "migrate: 4 rows scanned") {
		t.Errorf("migrate: %s", r)
	}
	raw1 := d.raw(t)
	for _, id := range []string{idP1, idP2} {
		if fernetstore.Classify(raw1[id]) != fernetstore.KindToken {
			t.Errorf("row %s is not a token after migrate", id)
		}
	}
	if raw1[idA] != raw0[idA] {
		t.Errorf("migrate rewrote row %s, already a token", idA)
	}
	r = h.must(0, k1, "", withFlags(d, "resolve", "--reveal", "db:"+idP1)...)
	if r.stdout != valueP1+"\n" {
		t.Error("a migrated row does not resolve to its plaintext")
	}
	h.must(0, k1, "", withFlags(d, "migrate")...) // a rerun has nothing to do

	// Rotation: the new key primary, the old one previous.
	k2 := map[string]string{"ENCRYPTION_KEY": key2, "ENCRYPTION_KEY_PREVIOUS": key1}
	st = states(t, h.must(0, k2, "", withFlags(d, "list")...).stdout)
	want = map[string]string{idA: "encrypted-old-key", idExp: "expired", idP1: "encrypted-old-key", idP2: "encrypted-old-key"}
	if !sameMap(st, want) {
		t.Errorf("list after the key change = %v, want %v", st, want)
	}
	r = h.must(exitFindings, k2, "", withFlags(d, "check")...)
	if !strings.Contains(r.stdout, "row "+idA+" (prod, anthropic): encrypted under previous-1: run keyward rotate") {
		t.Errorf("check with an old key: %s", r)
	}
	h.must(exitFindings, k2, "", withFlags(d, "migrate")...) // migrate does not rotate
	raw2 := d.raw(t)
	r = h.must(exitFindings, k2, "", withFlags(d, "rotate", "--dry-run")...)
	if !strings.Contains(r.stdout, "4 would be rewritten") || !sameMap(raw2, d.raw(t)) {
		t.Errorf("rotate --dry-run: %s", r)
	}
	r = h.must(0, k2, "", append(d.flags(), "rotate", "--batch", "2")...)
	if !strings.Contains(r.stdout, "4 rewritten") || !strings.Contains(r.stdout, "rotate: done") {
		t.Errorf("rotate: %s", r)
	}
	// Only the new key now: every row still resolves; the old key alone opens none.
	only2 := map[string]string{"ENCRYPTION_KEY": key2}
	for id, v := range map[string]string{idA: valueA, idP1: valueP1, idP2: valueP2} {
		if r := h.must(0, only2, "", withFlags(d, "resolve", "--reveal", "db:"+id)...); r.stdout != v+"\n" {
			t.Errorf("row %s does not resolve under the new key alone", id)
		}
		r := h.must(exitFindings, k1, "", withFlags(d, "resolve", "db:"+id)...)
		if !strings.Contains(r.stderr, "undecryptable") {
			t.Errorf("row %s under the old key alone: %s", id, r)
		}
	}

	// check after: the expired row remains a finding until it goes.
	r = h.must(exitFindings, only2, "", withFlags(d, "check")...)
	if strings.Count(r.stdout, "\n") != 2 || !strings.Contains(r.stdout, "row "+idExp) {
		t.Errorf("check with only the expired row left: %s", r)
	}
	if _, err := d.db.Exec(fmt.Sprintf("DELETE FROM %s WHERE id = %s", d.tableName(), d.ph(1)), idExp); err != nil {
		t.Fatal(err)
	}
	r = h.must(0, only2, "", withFlags(d, "check")...)
	if !strings.HasPrefix(r.stdout, "check: ok: 3 rows") {
		t.Errorf("check after: %s", r)
	}
}

func TestSQLite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.db")
	db := openTestDB(t, "sqlite:"+path)
	scenario(t, &database{url: "sqlite:" + path, dialect: fernetstore.SQLite, db: db})
}

func TestPostgres(t *testing.T) {
	url := testenv.PostgresDSN(t)
	db := openTestDB(t, url)
	d := &database{url: url, table: uniqueTable(t), dialect: fernetstore.Postgres, db: db}
	t.Cleanup(func() { db.Exec("DROP TABLE IF EXISTS " + d.table) })
	scenario(t, d)
}

func TestMariaDB(t *testing.T) {
	url := "mysql://" + testenv.MySQLDSN(t)
	db := openTestDB(t, url)
	d := &database{url: url, table: uniqueTable(t), dialect: fernetstore.MySQL, db: db}
	t.Cleanup(func() { db.Exec("DROP TABLE IF EXISTS " + d.table) })
	scenario(t, d)
}

func openTestDB(t *testing.T, url string) *sql.DB {
	t.Helper()
	db, err := fernetstore.OpenDB(url)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Ping(); err != nil {
		t.Fatalf("the test database does not answer: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func uniqueTable(t *testing.T) string {
	b := make([]byte, 6)
	rand.Read(b)
	return "keyward_cli_" + hex.EncodeToString(b)
}

// TestGlobalFlags: --db, --table and --column work before and after the
// subcommand, and a custom value column is used as it is.
func TestGlobalFlags(t *testing.T) {
	h := newHarness(t)
	key := h.genkey()
	env := map[string]string{"ENCRYPTION_KEY": key}
	dbURL := "sqlite:" + filepath.Join(h.dir, "custom.db")
	value := randomValue(t, "sk-ant-test-")
	h.secret(value)

	h.must(0, env, "", "--db", dbURL, "--table", "bots", "--column", "secret", "init")
	r := h.must(0, env, value, "put", "--name", "n", "--provider", "p", "--db", dbURL, "--column", "secret", "--table", "bots")
	id := strings.TrimSpace(r.stdout)
	r = h.must(0, env, "", "--table", "bots", "resolve", "--db", dbURL, "--reveal", "--column", "secret", "db:"+id)
	if r.stdout != value+"\n" {
		t.Error("resolve with flags on both sides did not return the value")
	}
	// The default table does not exist in that file: the flags mattered.
	h.must(exitConfig, env, "", "--db", dbURL, "list")
	// DATABASE_URL is the default of --db.
	r = h.must(0, map[string]string{"ENCRYPTION_KEY": key, "DATABASE_URL": dbURL}, "", "list", "--table", "bots", "--column", "secret")
	if st := states(t, r.stdout); st[id] != "encrypted" {
		t.Errorf("list through DATABASE_URL: %v", st)
	}
	// With neither, sqlite:keyward.db in the working directory.
	h.must(0, env, "", "init")
	if _, err := os.Stat(filepath.Join(h.dir, "keyward.db")); err != nil {
		t.Errorf("init without --db or DATABASE_URL: %v", err)
	}
}

// TestErrors: each mistake has its exit code and says what to do; none
// quotes a password from --db.
func TestErrors(t *testing.T) {
	h := newHarness(t)
	key := h.genkey()
	env := map[string]string{"ENCRYPTION_KEY": key}
	h.secret("hunter2-password")

	cases := []struct {
		name string
		env  map[string]string
		args []string
		code int
		says string
	}{
		{"unknown command", env, []string{"frobnicate"}, exitUsage, "unknown command"},
		{"unknown flag", env, []string{"list", "--nope"}, exitUsage, "unknown flag"},
		{"resolve without ref", env, []string{"resolve"}, exitUsage, "resolve takes one argument, SCHEME:REF"},
		{"ref without scheme", env, []string{"resolve", "42"}, exitUsage, "scheme:ref"},
		{"put without name", env, []string{"put", "--provider", "p"}, exitUsage, `"name"`},
		{"bad batch", env, []string{"migrate", "--batch", "0"}, exitUsage, "--batch"},
		{"missing key", nil, []string{"check"}, exitConfig, "ENCRYPTION_KEY is not set: run keyward genkey"},
		{"missing key for a db ref", nil, []string{"resolve", "db:1"}, exitConfig, "ENCRYPTION_KEY is not set: run keyward genkey"},
		{"short key", map[string]string{"ENCRYPTION_KEY": "abc"}, []string{"list"}, exitConfig, "ENCRYPTION_KEY is 3 characters long"},
		{"bad previous key", map[string]string{"ENCRYPTION_KEY": key, "ENCRYPTION_KEY_PREVIOUS": "zzz"}, []string{"list"}, exitConfig, "ENCRYPTION_KEY_PREVIOUS entry 1 (comma-separated) is 3 characters long"},
		{"bad --db scheme", env, []string{"--db", "oracle://u:hunter2-password@h/x", "list"}, exitConfig, "accepted forms"},
		{"bad table name", env, []string{"--table", "a;drop", "list"}, exitConfig, "not allowed"},
		{"unreachable database", env, []string{"list", "--db", "postgres://u:hunter2-password@127.0.0.1:1/x?sslmode=disable&connect_timeout=5"}, exitUnavailable, "unavailable"},
		{"unreachable database in check", env, []string{"check", "--db", "postgres://u:hunter2-password@127.0.0.1:1/x?sslmode=disable&connect_timeout=5"}, exitUnavailable, "backend db: unreachable"},
		{"bad config", map[string]string{"ENCRYPTION_KEY": key, "KEYWARD_CONFIG": "env = not a url"}, []string{"resolve", "env:X"}, exitConfig, "configuration"},
		{"unknown scheme", env, []string{"resolve", "nosuch:x"}, exitConfig, "no backend handles scheme"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := h.run(c.env, "", c.args...)
			if r.code != c.code || !strings.Contains(r.stderr+r.stdout, c.says) {
				t.Errorf("want exit %d and %q, got %s", c.code, c.says, r)
			}
			// A password on the command line is warned about (never echoed).
			if strings.Contains(strings.Join(c.args, " "), "hunter2-password@") != strings.Contains(r.stderr, "--db holds a password") {
				t.Errorf("the --db password warning is missing or misplaced: %s", r)
			}
		})
	}
}

// TestResolveAcrossBackends: env: refs resolve through the configured stack
// without any ENCRYPTION_KEY (the db store opens only when a db: ref needs
// it), the env backend's deny list holds, and check pings exactly the
// configured backends.
func TestResolveAcrossBackends(t *testing.T) {
	h := newHarness(t)
	value := randomValue(t, "sk-proj-test-")
	h.secret(value)
	env := map[string]string{"BOT_OPENAI_KEY": value}

	r := h.must(0, env, "", "resolve", "env:BOT_OPENAI_KEY")
	if r.stdout != "sk-proj-…"+value[len(value)-3:]+"\n" {
		t.Errorf("resolve env: stdout of %d bytes is not the mask", len(r.stdout))
	}
	r = h.must(0, env, "", "resolve", "--reveal", "env:BOT_OPENAI_KEY")
	if r.stdout != value+"\n" {
		t.Error("resolve --reveal env: not the value")
	}
	h.must(exitFindings, env, "", "resolve", "env:NOT_SET_ANYWHERE")

	// An explicit configuration: only what it allows.
	key := h.genkey()
	cfg := map[string]string{"BOT_OPENAI_KEY": value, "ENCRYPTION_KEY": key, "KEYWARD_CONFIG": "env = env://?allow=BOT_*"}
	h.must(0, cfg, "", "resolve", "env:BOT_OPENAI_KEY")
	r = h.must(exitFindings, cfg, "", "resolve", "env:ENCRYPTION_KEY")
	if strings.Contains(r.stderr, key) {
		t.Fatal("the key leaked")
	}

	// check with the configuration: db and env answer.
	h.must(0, cfg, "", "init")
	r = h.must(0, cfg, "", "check")
	if !strings.Contains(r.stdout, "backends answer: db, env") {
		t.Errorf("check: %s", r)
	}
	// A configured Vault that is not there is a finding with exit 4.
	cfgFile := filepath.Join(h.dir, "keyward.conf")
	os.WriteFile(cfgFile, []byte("env = env://?allow=BOT_*\nvault = vault://?mount=secret\n"), 0o600)
	down := map[string]string{"ENCRYPTION_KEY": key, "KEYWARD_CONFIG_FILE": cfgFile,
		"VAULT_ADDR": "http://127.0.0.1:1", "VAULT_TOKEN": "test-token-not-real"}
	r = h.must(exitUnavailable, down, "", "check")
	if !strings.Contains(r.stdout, "backend vault: unreachable") {
		t.Errorf("check with vault down: %s", r)
	}
	// Without configuration, check does not ping the cloud defaults.
	r = h.must(0, map[string]string{"ENCRYPTION_KEY": key, "VAULT_ADDR": "http://127.0.0.1:1"}, "", "check")
	if strings.Contains(r.stdout, "vault") {
		t.Errorf("check without configuration pinged vault: %s", r)
	}
}

// TestInterruptAndResume: SIGINT stops a migration between batches with exit
// 130 and a message saying to rerun; the rerun finishes.
func TestInterruptAndResume(t *testing.T) {
	h := newHarness(t)
	key := h.genkey()
	env := map[string]string{"ENCRYPTION_KEY": key}
	path := filepath.Join(h.dir, "big.db")
	dbURL := "sqlite:" + path
	h.must(0, env, "", "--db", dbURL, "init")
	db := openTestDB(t, dbURL)
	const n = 5000
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if _, err := tx.Exec("INSERT INTO api_keys (name, provider, api_key) VALUES (?, 'openai', ?)", fmt.Sprint("bot-", i), fmt.Sprint("sk-legacy-test-value-", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}

	rest, err := h.interruptMigrate(key, "migrate", "--batch", "1", "--db", dbURL)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitInterrupted {
		t.Fatalf("want exit %d after SIGINT, got %v\nstderr tail:\n%s", exitInterrupted, err, rest.stderr)
	}
	if !strings.Contains(rest.stderr, "run keyward migrate again") {
		t.Errorf("the interrupt message does not say to rerun:\n%s", rest.stderr)
	}
	var plain int
	rows, err := db.Query("SELECT api_key FROM api_keys")
	if err != nil {
		t.Fatal(err)
	}
	tokens := 0
	for rows.Next() {
		var v string
		rows.Scan(&v)
		if fernetstore.Classify(v) == fernetstore.KindToken {
			tokens++
		} else {
			plain++
		}
	}
	rows.Close()
	if tokens < 10 || plain == 0 {
		t.Fatalf("after the interrupt: %d tokens, %d plaintext; want a partial migration", tokens, plain)
	}
	r := h.must(0, env, "", "migrate", "--db", dbURL)
	if !strings.Contains(r.stdout, fmt.Sprintf("%d rewritten", plain)) {
		t.Errorf("the rerun did not finish the remaining %d rows: %s", plain, r)
	}
	h.must(0, env, "", "check", "--db", dbURL)
}

// TestProgressOnTerminal: with stderr on a terminal (a pty from util-linux
// script), migrate draws a progress bar instead of plain lines.
func TestProgressOnTerminal(t *testing.T) {
	script, err := exec.LookPath("script")
	if err != nil {
		t.Skip("util-linux script is not on PATH: it provides the pseudo-terminal for this test")
	}
	h := newHarness(t)
	key := h.genkey()
	env := map[string]string{"ENCRYPTION_KEY": key}
	dbURL := "sqlite:" + filepath.Join(h.dir, "tty.db")
	h.must(0, env, "", "--db", dbURL, "init")
	db := openTestDB(t, dbURL)
	for i := range 50 {
		if _, err := db.Exec("INSERT INTO api_keys (name, provider, api_key) VALUES (?, 'p', ?)", fmt.Sprint("n", i), fmt.Sprint("plain-value-", i)); err != nil {
			t.Fatal(err)
		}
	}
	// The command line holds paths only; the key goes through the environment.
	cmd := exec.Command(script, "-qec", keywardBinary(t)+" --db "+dbURL+" migrate --batch 5", "/dev/null")
	cmd.Dir = h.dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + h.dir, "TERM=xterm", "ENCRYPTION_KEY=" + key}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("script: %v\n%s", err, out)
	}
	s := string(out)
	if !strings.Contains(s, "%") || !strings.Contains(s, "(") || strings.Contains(s, "migrate: 5 rows scanned, 5 rewritten") {
		t.Errorf("no progress bar on a terminal:\n%q", s)
	}
	if !strings.Contains(s, "migrate: done: all 50 rows") {
		t.Errorf("no final report:\n%q", s)
	}
}

// TestConcurrentMigrate: two keyward migrate processes on one table at
// once both finish with exit 0, and every row decrypts to its original
// value exactly once encrypted (a row encrypted twice would decrypt to a
// token, not to its value).
func TestConcurrentMigrate(t *testing.T) {
	h := newHarness(t)
	key := h.genkey()
	dbURL := "sqlite:" + filepath.Join(h.dir, "two.db")
	h.must(0, map[string]string{"ENCRYPTION_KEY": key}, "", "--db", dbURL, "init")
	db := openTestDB(t, dbURL)
	const n = 1500
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if _, err := tx.Exec("INSERT INTO api_keys (name, provider, api_key) VALUES (?, 'p', ?)", fmt.Sprint("n", i), fmt.Sprint("sk-legacy-test-two-", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	bin := keywardBinary(t)
	var cmds [2]*exec.Cmd
	var outs [2]bytes.Buffer
	for i := range cmds {
		cmds[i] = exec.Command(bin, "migrate", "--batch", "50", "--db", dbURL)
		cmds[i].Dir = h.dir
		cmds[i].Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + h.dir, "ENCRYPTION_KEY=" + key}
		cmds[i].Stdout, cmds[i].Stderr = &outs[i], &outs[i]
		if err := cmds[i].Start(); err != nil {
			t.Fatal(err)
		}
	}
	for i, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Errorf("migrate %d: %v\n%s", i, err, outs[i].String())
		}
		t.Logf("migrate %d: %s", i, lastLines(outs[i].String(), 2))
	}
	ring, err := fernetstore.ParseKeyRing(key)
	if err != nil {
		t.Fatal(err)
	}
	store := fernetstore.New(db, ring, nil)
	for i := range n {
		s, err := store.Resolve(t.Context(), fmt.Sprint(i+1))
		if err != nil {
			t.Fatalf("row %d: %v", i+1, err)
		}
		if s.Reveal() != fmt.Sprint("sk-legacy-test-two-", i) {
			t.Fatalf("row %d does not decrypt to its original value", i+1)
		}
	}
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, " / ")
}
