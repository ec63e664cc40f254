package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/keyward/secrets/internal/pyservice"
	"github.com/keyward/secrets/internal/testenv"
)

// refConfig is the configuration of the Python service's api_keys table:
// a row whose api_key is NULL names its key's env var or AWS secret.
const refConfig = "db = fernet://?ref_columns=key_env_var:env,secret_name:awssm"

var uuidLine = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\n$`)

// pyKeys is the Python service's api_keys table (SQLAlchemy's DDL,
// verbatim) in an SQLite file, filled with one row of each kind: two of
// legacy plaintext, a token put with --id, a token put without one (a new
// UUID), an expired token, an env reference, an AWS reference and a row
// that holds no key.
type pyKeys struct {
	h                     *harness
	url                   string
	env                   map[string]string // ENCRYPTION_KEY and refConfig
	key                   string
	plain1, plain2        string // ids
	token, putID, expired string
	envRef, awsRef, empty string
}

func newPyKeys(t *testing.T) *pyKeys {
	h := newHarness(t)
	p := &pyKeys{h: h, key: h.genkey()}
	path := filepath.Join(h.dir, "app.db")
	p.url = "sqlite:" + path
	p.env = map[string]string{"ENCRYPTION_KEY": p.key, "KEYWARD_CONFIG": refConfig, "DATABASE_URL": p.url}
	h.env = p.env
	db := openTestDB(t, p.url)
	for _, stmt := range pyservice.DDL(pyservice.SQLite) {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	ins := func(id, provider string, value, envVar, secret any) string {
		t.Helper()
		if _, err := db.Exec("INSERT INTO api_keys (id, name, provider, api_key, key_env_var, secret_name, created_at) VALUES (?, ?, ?, ?, ?, ?, '2026-01-01 00:00:00')",
			id, "n-"+id[:8], provider, value, envVar, secret); err != nil {
			t.Fatal(err)
		}
		return id
	}
	v1, v2 := randomValue(t, "sk-legacy-canary-"), randomValue(t, "sk-legacy-canary-")
	h.secret(v1, v2)
	p.plain1 = ins("10000000-0000-4000-8000-000000000001", "openai", v1, nil, nil)
	p.plain2 = ins("10000000-0000-4000-8000-000000000002", "openai", v2, nil, nil)
	p.envRef = ins("20000000-0000-4000-8000-000000000001", "anthropic", nil, "ANTHROPIC_API_KEY_1", nil)
	p.awsRef = ins("20000000-0000-4000-8000-000000000002", "anthropic", nil, nil, "prod/anthropic")
	p.empty = ins("30000000-0000-4000-8000-000000000001", "anthropic", nil, nil, nil)

	tv, pv, ev := randomValue(t, "sk-ant-canary-"), randomValue(t, "sk-ant-canary-"), randomValue(t, "sk-ant-canary-")
	h.secret(tv, pv, ev)
	p.token = "40000000-0000-4000-8000-000000000001"
	r := h.must(0, p.env, tv, "put", "--id", p.token, "--name", "given", "--provider", "anthropic")
	if r.stdout != p.token+"\n" {
		t.Fatalf("put --id: stdout %q, want the id given", r.stdout)
	}
	r = h.must(0, p.env, pv, "put", "--name", "new", "--provider", "anthropic")
	if !uuidLine.MatchString(r.stdout) || !strings.Contains(r.stderr, "db:"+strings.TrimSpace(r.stdout)) {
		t.Fatalf("put on a text-id table: want a new UUID on stdout and its ref on stderr: %s", r)
	}
	p.putID = strings.TrimSpace(r.stdout)
	r = h.must(0, p.env, ev, "put", "--id", "50000000-0000-4000-8000-000000000001", "--name", "old", "--provider", "anthropic", "--expires", "2020-01-02")
	p.expired = strings.TrimSpace(r.stdout)
	return p
}

// listRows parses keyward list into id -> cells by column name.
func listRows(t *testing.T, out string) (header []string, rows map[string]map[string]string, order []string) {
	t.Helper()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	header = strings.Fields(lines[0])
	rows = map[string]map[string]string{}
	for _, l := range lines[1:] {
		if l == "" {
			continue
		}
		f := strings.Fields(l)
		if len(f) != len(header) {
			t.Fatalf("list line %q: want %d columns (%v)", l, len(header), header)
		}
		m := map[string]string{}
		for i, h := range header {
			m[h] = f[i]
		}
		rows[f[0]] = m
		order = append(order, f[0])
	}
	return header, rows, order
}

func sortedIDs(ids ...string) []string {
	s := slices.Clone(ids)
	slices.Sort(s)
	return s
}

// TestListReferencesAndFilters: list shows reference rows as "reference"
// with their target in a REF column and empty rows as "empty", and takes
// --state (repeated or comma-separated, validated), --provider and
// --limit; put --id stores under the id given, put alone makes a UUID. On
// the old code put --id was an unknown flag.
func TestListReferencesAndFilters(t *testing.T) {
	p := newPyKeys(t)
	h := p.h
	list := func(args ...string) []string {
		t.Helper()
		r := h.must(0, p.env, "", append([]string{"list"}, args...)...)
		_, _, order := listRows(t, r.stdout)
		return order
	}

	r := h.must(0, p.env, "", "list")
	header, rows, order := listRows(t, r.stdout)
	if want := []string{"ID", "NAME", "PROVIDER", "STATE", "KEY", "REF", "EXPIRES"}; !slices.Equal(header, want) {
		t.Fatalf("list header %v, want %v", header, want)
	}
	if !slices.IsSorted(order) || len(order) != 8 {
		t.Errorf("list: %d rows, in order %v; want all 8, in id order", len(order), order)
	}
	want := map[string][2]string{ // id -> state, ref
		p.plain1: {"plaintext", "-"}, p.plain2: {"plaintext", "-"},
		p.envRef: {"reference", "env:ANTHROPIC_API_KEY_1"}, p.awsRef: {"reference", "awssm:prod/anthropic"},
		p.empty: {"empty", "-"}, p.token: {"encrypted", "-"}, p.putID: {"encrypted", "-"}, p.expired: {"expired", "-"},
	}
	for id, w := range want {
		if got := rows[id]; got["STATE"] != w[0] || got["REF"] != w[1] {
			t.Errorf("list row %s: state %q ref %q, want %q %q", id, got["STATE"], got["REF"], w[0], w[1])
		}
	}
	if rows[p.token]["KEY"] != "primary" || rows[p.envRef]["KEY"] != "-" {
		t.Errorf("list KEY column: token %q, reference %q", rows[p.token]["KEY"], rows[p.envRef]["KEY"])
	}

	// A table without ref_columns lists without the REF column, as before.
	noRefs := map[string]string{"KEYWARD_CONFIG": ""}
	r = h.must(0, noRefs, "", "list")
	if header, _, _ := listRows(t, r.stdout); slices.Contains(header, "REF") {
		t.Errorf("list without ref_columns has a REF column: %v", header)
	}

	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"--state", "plaintext"}, []string{p.plain1, p.plain2}},
		{[]string{"--state", "reference,empty"}, []string{p.envRef, p.awsRef, p.empty}},
		{[]string{"--state", "reference", "--state", "empty"}, []string{p.envRef, p.awsRef, p.empty}},
		{[]string{"--state", "expired"}, []string{p.expired}},
		// An expired row is also in the state beneath.
		{[]string{"--state", "encrypted"}, []string{p.token, p.putID, p.expired}},
		{[]string{"--state", "undecryptable"}, nil},
		{[]string{"--provider", "openai"}, []string{p.plain1, p.plain2}},
		{[]string{"--provider", "anthropic", "--state", "plaintext"}, nil},
		{[]string{"--limit", "2"}, order[:2]},
		{[]string{"--limit", "1", "--state", "reference"}, []string{p.envRef}},
		{[]string{"--limit", "0"}, sortedIDs(order...)},
	} {
		if got := list(c.args...); !slices.Equal(sortedIDs(got...), sortedIDs(c.want...)) {
			t.Errorf("list %v = %v, want %v", c.args, got, c.want)
		}
	}

	// Bad filters are usage errors that say what is accepted.
	canary := randomValue(t, "sk-ant-pasted-")
	h.secret(canary)
	for _, c := range []struct {
		args []string
		says string
	}{
		{[]string{"--state", "plaintxt"}, `--state "plaintxt" is not a state: give one or more of encrypted, encrypted-old-key, plaintext, undecryptable, reference, empty, bad-reference, expired`},
		{[]string{"--state", "plaintext," + canary}, "a --state value is not a state"},
		{[]string{"--limit", "-1"}, "--limit takes 0 to"},
		{[]string{"--limit", "ten"}, "--limit takes 0 to"},
	} {
		r := h.run(p.env, "", append([]string{"list"}, c.args...)...)
		if r.code != exitUsage || !strings.Contains(r.stderr, c.says) || r.stdout != "" {
			t.Errorf("list %v: want exit 2 and %q, got %s", c.args, c.says, r)
		}
	}
	// --provider on a table without a provider column (the bots table).
	r = h.run(p.env, "", "list", "--table", "bots", "--column", "api_key", "--provider", "openai")
	if r.code != exitUsage || !strings.Contains(r.stderr, "no provider column") {
		t.Errorf("list --provider on bots: %s", r)
	}

	// put --id of an id already there fails, naming no value.
	r = h.run(p.env, randomValue(t, "sk-ant-dup-"), "put", "--id", p.token, "--name", "dup", "--provider", "anthropic")
	if r.code == 0 {
		t.Errorf("put --id of an existing id: %s", r)
	}
}

// TestCheckAndWalkReferences: check reports an empty row (with what to do)
// and never a reference row; migrate and rotate leave reference rows alone,
// say so, and still finish with exit 0. On the old code check told the
// operator nothing of the empty row.
func TestCheckAndWalkReferences(t *testing.T) {
	p := newPyKeys(t)
	h := p.h
	r := h.must(exitFindings, p.env, "", "check")
	for _, w := range []string{
		"row " + p.plain1 + " (n-10000000, openai): plaintext: run keyward migrate",
		"row " + p.plain2 + " (n-10000000, openai): plaintext: run keyward migrate",
		"row " + p.empty + " (n-30000000, anthropic): holds no key: api_key, key_env_var and secret_name are all NULL or empty; store one with keyward update " + p.empty,
		"row " + p.expired + " (old, anthropic): expired at 2020-01-02T00:00:00Z",
		"check: 4 findings in 8 rows",
	} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("check: missing %q in\n%s", w, r.stdout)
		}
	}
	for _, id := range []string{p.envRef, p.awsRef} {
		if strings.Contains(r.stdout, id) {
			t.Errorf("check reports reference row %s:\n%s", id, r.stdout)
		}
	}

	r = h.must(0, p.env, "", "migrate")
	for _, w := range []string{
		"migrate: 8 rows scanned, 2 rewritten",
		"2 reference rows left alone (their keys live elsewhere), 1 row holds no key (see keyward check)\n",
		"migrate: done: all 5 rows that hold a key here are encrypted under the primary key; 2 reference rows left alone (their keys live elsewhere), 1 row holds no key (see keyward check)\n",
	} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("migrate: missing %q in %s", w, r)
		}
	}
	key2 := h.genkey()
	k2 := map[string]string{"ENCRYPTION_KEY": key2, "ENCRYPTION_KEY_PREVIOUS": p.key}
	r = h.must(exitFindings, k2, "", "rotate", "--dry-run")
	if !strings.Contains(r.stdout, "5 would be rewritten") || !strings.Contains(r.stdout, "rotate: dry run: nothing was written; 5 under a previous key (run keyward rotate), 2 reference rows left alone") {
		t.Errorf("rotate --dry-run: %s", r)
	}
	r = h.must(0, k2, "", "rotate")
	if !strings.Contains(r.stdout, "5 rewritten") || !strings.Contains(r.stdout, "rotate: done: all 5 rows that hold a key here") {
		t.Errorf("rotate: %s", r)
	}
	// Left: the empty row and the expired one.
	r = h.must(exitFindings, k2, "", "check")
	if strings.Count(r.stdout, "\n") != 3 || !strings.Contains(r.stdout, p.empty) || !strings.Contains(r.stdout, p.expired) {
		t.Errorf("check after migrate and rotate: %s", r)
	}
}

// rssOf, when set, makes the test binary a launcher (see init): it runs
// the program named there with the arguments it was given, and writes the
// program's peak resident set, in KB, to file descriptor 3.
const rssOf = "KEYWARD_TEST_RSS_OF"

// A child's ru_maxrss starts at the resident set of the process it was
// started from (Linux records the replaced memory's high-water mark at
// exec): a command run from this test process, which holds every earlier
// command's output, would report this process's size. The launcher is this
// binary just started, before any test ran: small, and the same for every
// command, so the difference between two runs is the commands' own.
func init() {
	bin := os.Getenv(rssOf)
	if bin == "" {
		return
	}
	cmd := exec.Command(bin, os.Args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		fmt.Fprintln(os.Stderr, "launcher:", err)
		os.Exit(125)
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		fmt.Fprint(os.NewFile(3, "rss"), ru.Maxrss)
	}
	os.Exit(code)
}

// rss runs keyward as h.run does, through the launcher, and returns its
// peak resident set in MB.
func rss(t *testing.T, h *harness, env map[string]string, args ...string) (result, int64) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, args...)
	cmd.Dir = h.dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + h.dir, rssOf + "=" + keywardBinary(t)}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	cmd.ExtraFiles = []*os.File{pw}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	kb, _ := io.ReadAll(pr)
	err = cmd.Wait()
	r := result{args: args, stdout: stdout.String(), stderr: stderr.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	h.runs = append(h.runs, r)
	n, err := strconv.ParseInt(string(kb), 10, 64)
	if err != nil {
		t.Fatalf("the launcher gave no peak RSS (%q): %s", kb, r)
	}
	return r, n / 1024
}

// TestMemoryDoesNotGrowWithTable: list, check, migrate and rotate over
// 200,000 rows peak at about the memory they take over 100. The old
// commands held the whole table (List): at 200,000 rows list took 140 MB
// more than at 100, check 122, migrate 149, rotate 126.
func TestMemoryDoesNotGrowWithTable(t *testing.T) {
	if testing.Short() {
		t.Skip("fills a table of 200,000 rows")
	}
	h := newHarness(t)
	key1, key2 := h.genkey(), h.genkey()
	k1 := map[string]string{"ENCRYPTION_KEY": key1}
	k2 := map[string]string{"ENCRYPTION_KEY": key2, "ENCRYPTION_KEY_PREVIOUS": key1}
	fill := func(name string, n int) string {
		url := "sqlite:" + filepath.Join(h.dir, name)
		h.must(0, k1, "", "--db", url, "init")
		db := openTestDB(t, url)
		// One statement: SQLite makes the rows itself.
		if _, err := db.Exec(`WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?)
			INSERT INTO api_keys (name, provider, api_key) SELECT 'bot-' || x, 'openai', 'sk-legacy-scale-' || hex(randomblob(16)) FROM c`, n); err != nil {
			t.Fatal(err)
		}
		return url
	}
	small, big := fill("small.db", 100), fill("big.db", 200_000)
	// The bound: old code grew by 140 MB and more; a page of rows is
	// well under a megabyte, and the rest is the runtime's slack.
	const maxGrowthMB = 40
	steps := []struct {
		name string
		env  map[string]string
		args []string
		code int
	}{
		{"list", k1, []string{"list"}, 0},
		{"list -o json", k1, []string{"list", "-o", "json"}, 0},
		{"check", k1, []string{"check"}, exitFindings},
		{"check -o json", k1, []string{"check", "-o", "json"}, exitFindings},
		{"migrate", k1, []string{"migrate"}, 0},
		{"rotate", k2, []string{"rotate", "-o", "json"}, 0},
		{"check after", k2, []string{"check"}, 0},
	}
	for _, s := range steps {
		rs, smallMB := rss(t, h, s.env, append(s.args, "--db", small)...)
		rb, bigMB := rss(t, h, s.env, append(s.args, "--db", big)...)
		if rs.code != s.code || rb.code != s.code {
			t.Fatalf("%s: want exit %d, got\n%s\n%s", s.name, s.code, rs, lastLines(rb.stdout+rb.stderr, 3))
		}
		t.Logf("%s: peak RSS %d MB at 100 rows, %d MB at 200,000", s.name, smallMB, bigMB)
		if bigMB-smallMB > maxGrowthMB {
			t.Errorf("%s: peak RSS %d MB at 200,000 rows, %d MB at 100: memory grows with the table", s.name, bigMB, smallMB)
		}
	}
	if r := h.must(0, k2, "", "list", "--db", big, "--limit", "3", "--state", "encrypted"); strings.Count(r.stdout, "\n") != 4 {
		t.Errorf("list --limit 3 on the big table: %s", r)
	}
}

// TestPutID: put --id stores under the id given and prints it, on each
// database; an id that exists, or one the id column cannot hold, is a
// usage error (exit 2) that says so. On the old code --id was an unknown
// flag; a duplicate id would have been "unavailable" (exit 4).
func TestPutID(t *testing.T) {
	dbs := map[string]func(t *testing.T) string{
		"sqlite":   func(t *testing.T) string { return "sqlite:" + filepath.Join(t.TempDir(), "k.db") },
		"postgres": func(t *testing.T) string { return testenv.PostgresDSN(t) },
		"mariadb":  func(t *testing.T) string { return "mysql://" + testenv.MySQLDSN(t) },
	}
	for _, name := range []string{"sqlite", "postgres", "mariadb"} {
		t.Run(name, func(t *testing.T) {
			url := dbs[name](t)
			h := newHarness(t)
			table := uniqueTable(t)
			h.env = map[string]string{"ENCRYPTION_KEY": h.genkey(), "DATABASE_URL": url}
			if name != "sqlite" {
				db := openTestDB(t, url)
				t.Cleanup(func() { db.Exec("DROP TABLE IF EXISTS " + table) })
			}
			h.must(0, nil, "", "--table", table, "init")
			v := randomValue(t, "sk-ant-put-id-")
			h.secret(v)
			put := func(want int, args ...string) result {
				return h.must(want, nil, v, append([]string{"--table", table, "put", "--name", "n", "--provider", "p"}, args...)...)
			}
			if r := put(0, "--id", "42"); r.stdout != "42\n" {
				t.Errorf("put --id 42: %s", r)
			}
			if r := put(exitUsage, "--id", "42"); !strings.Contains(r.stderr, "row 42 exists already: give another --id, or replace its value with keyward update 42") {
				t.Errorf("put --id of an existing id: %s", r)
			}
			if r := put(exitUsage, "--id", "abc"); !strings.Contains(r.stderr, "--id: ") || !strings.Contains(r.stderr, "integer") {
				t.Errorf("put --id abc on integer ids: %s", r)
			}
			r := h.must(0, nil, "", "--table", table, "resolve", "--reveal", "db:42")
			if r.stdout != v+"\n" {
				t.Error("the row put with --id 42 does not resolve as db:42")
			}
		})
	}
}
