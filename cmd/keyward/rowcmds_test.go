package main

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/keyward/secrets/fernetstore"
	"github.com/keyward/secrets/internal/testenv"
)

// inProcess runs keyward in this process (runInProcess) with its
// environment and flags, and checks that no registered secret appears in
// any output but the stdout of resolve --reveal.
type inProcess struct {
	t       *testing.T
	env     map[string]string
	secrets []string
}

func (p *inProcess) run(want int, env map[string]string, stdin string, args ...string) (stdout, stderr string) {
	p.t.Helper()
	merged := map[string]string{}
	for k, v := range p.env {
		merged[k] = v
	}
	for k, v := range env {
		merged[k] = v // "" unsets: runInProcess's getenv reads "" as unset
	}
	code, stdout, stderr := runInProcess(merged, stdin, args...)
	what := strings.Join(args, " ")
	for _, s := range p.secrets {
		if strings.Contains(stderr, s) || !slices.Contains(args, "--reveal") && strings.Contains(stdout, s) {
			p.t.Fatalf("keyward %s: a secret value appears in the output", what)
		}
	}
	if code != want {
		p.t.Fatalf("keyward %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", what, code, want, stdout, stderr)
	}
	return stdout, stderr
}

// listed returns the id's line of keyward list, split into cells.
func (p *inProcess) listed(id string) []string {
	p.t.Helper()
	out, _ := p.run(exitOK, nil, "", "list")
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == id {
			return f
		}
	}
	return nil
}

// expiresOf is the EXPIRES cell of the id's list line ("" if not listed).
func (p *inProcess) expiresOf(id string) string {
	p.t.Helper()
	f := p.listed(id)
	if f == nil {
		return ""
	}
	return f[len(f)-1]
}

// rowCommands is the operator's update and delete on one table: a new value
// from stdin replaces the old one (and its expiry, unless kept), bad input
// changes nothing, a missing row is exit 1 saying so, and delete removes
// the row and says which.
func rowCommands(t *testing.T, p *inProcess, missingID string) {
	value1, value2, value3, value4 := randomValue(t, "sk-ant-upd1-"), randomValue(t, "sk-ant-upd2-"), randomValue(t, "sk-ant-upd3-"), randomValue(t, "sk-ant-upd4-")
	p.secrets = append(p.secrets, value1, value2, value3, value4)
	p.run(exitOK, nil, "", "init")
	out, _ := p.run(exitOK, nil, value1, "put", "--name", "prod", "--provider", "anthropic", "--expires", "2020-01-02")
	id := strings.TrimSpace(out)
	if text := !regexp.MustCompile(`^[0-9]+$`).MatchString(id); text != strings.Contains(p.env["KEYWARD_CONFIG"], "id_type=text") {
		t.Fatalf("put printed id %q: not of the table's id type", id)
	}
	if f := p.listed(id); f == nil || f[3] != "expired" {
		t.Fatalf("list after put --expires 2020-01-02: %v", f)
	}
	reveal := func(want string) {
		t.Helper()
		if out, _ := p.run(exitOK, nil, "", "resolve", "--reveal", "db:"+id); out != want+"\n" {
			t.Errorf("resolve --reveal db:%s: not the value last stored (%d bytes)", id, len(out))
		}
	}

	// A new value; the expiry is kept when --expires is not given.
	_, stderr := p.run(exitOK, nil, value2+"\n", "update", id)
	if !strings.Contains(stderr, "updated row "+id) || !strings.Contains(stderr, "kept its expiry") {
		t.Errorf("update: stderr does not say what changed:\n%s", stderr)
	}
	if f := p.listed(id); f == nil || f[3] != "expired" || p.expiresOf(id) != "2020-01-02T00:00:00Z" {
		t.Errorf("update without --expires: list says %v, want the row still expired at 2020-01-02", f)
	}
	// --expires sets it, as put's does.
	p.run(exitOK, nil, value3, "update", id, "--expires", "2031-05-06")
	if got := p.expiresOf(id); got != "2031-05-06T00:00:00Z" {
		t.Errorf("update --expires 2031-05-06: list shows EXPIRES %q", got)
	}
	reveal(value3)
	// --expires none clears it.
	_, stderr = p.run(exitOK, nil, value4, "update", "--expires", "none", id)
	if got := p.expiresOf(id); got != "-" || !strings.Contains(stderr, "does not expire") {
		t.Errorf("update --expires none: list shows EXPIRES %q; stderr:\n%s", got, stderr)
	}
	if f := p.listed(id); f[3] != "encrypted" {
		t.Errorf("update: the row is %s, want encrypted", f[3])
	}
	reveal(value4)

	// Bad input changes nothing.
	if _, stderr := p.run(exitUsage, nil, "", "update", id); !strings.Contains(stderr, "| keyward update "+id) {
		t.Errorf("update with an empty value: the message does not show update's own command line:\n%s", stderr)
	}
	p.run(exitUsage, nil, "\n", "update", id)
	p.run(exitUsage, nil, strings.Repeat("x", maxSecret+1), "update", id)
	p.run(exitUsage, nil, value1, "update", id, "--expires", "next week")
	p.run(exitConfig, map[string]string{"ENCRYPTION_KEY": ""}, value1, "update", id)
	reveal(value4)

	// A row that is not there.
	_, stderr = p.run(exitFindings, nil, value1, "update", missingID)
	if !strings.Contains(stderr, "no row "+missingID) || !strings.Contains(stderr, "keyward list") {
		t.Errorf("update of a missing row: %s", stderr)
	}
	_, stderr = p.run(exitFindings, nil, "", "delete", missingID)
	if !strings.Contains(stderr, "no row "+missingID) || !strings.Contains(stderr, "nothing was deleted") {
		t.Errorf("delete of a missing row: %s", stderr)
	}

	// delete: no confirmation, says what went.
	out, stderr = p.run(exitOK, nil, "", "delete", id)
	if out != "" || !strings.Contains(stderr, "deleted row "+id) {
		t.Errorf("delete: stdout %q, stderr %q", out, stderr)
	}
	p.run(exitFindings, nil, "", "resolve", "db:"+id)
	if p.listed(id) != nil {
		t.Errorf("row %s still listed after delete", id)
	}
	p.run(exitFindings, nil, "", "delete", id)
	// Deleting needs no key.
	out, _ = p.run(exitOK, nil, value1, "put", "--name", "n", "--provider", "p")
	p.run(exitOK, map[string]string{"ENCRYPTION_KEY": ""}, "", "delete", strings.TrimSpace(out))
}

func TestRowCommandsSQLite(t *testing.T) {
	dir := t.TempDir()
	t.Run("integer ids", func(t *testing.T) {
		p := &inProcess{t: t, env: map[string]string{"ENCRYPTION_KEY": testKey(t), "DATABASE_URL": "sqlite:" + filepath.Join(dir, "int.db")}}
		rowCommands(t, p, "999999")
		// The id is the store's to judge: not an integer here.
		_, stderr := p.run(exitUsage, nil, "v", "update", "not-a-number")
		if !strings.Contains(stderr, "integer") {
			t.Errorf("update of a non-integer id on an integer table: %s", stderr)
		}
	})
	t.Run("text ids", func(t *testing.T) {
		p := &inProcess{t: t, env: map[string]string{"ENCRYPTION_KEY": testKey(t), "DATABASE_URL": "sqlite:" + filepath.Join(dir, "text.db"),
			"KEYWARD_CONFIG": "db = fernet://?id_type=text"}}
		rowCommands(t, p, "0b6f2a86-0000-4000-8000-000000000000")
	})
}

func TestRowCommandsPostgres(t *testing.T) { rowCommandsOn(t, testenv.PostgresDSN(t)) }

func TestRowCommandsMariaDB(t *testing.T) { rowCommandsOn(t, "mysql://"+testenv.MySQLDSN(t)) }

// rowCommandsOn runs rowCommands on a fresh table of the database at url,
// with integer ids and with text ids.
func rowCommandsOn(t *testing.T, url string) {
	db := openTestDB(t, url)
	for _, idType := range []string{"integer", "text"} {
		t.Run(idType, func(t *testing.T) {
			table := uniqueTable(t)
			t.Cleanup(func() { db.Exec("DROP TABLE IF EXISTS " + table) })
			p := &inProcess{t: t, env: map[string]string{"ENCRYPTION_KEY": testKey(t), "DATABASE_URL": url,
				"KEYWARD_CONFIG": "db = fernet://?table=" + table + "&id_type=" + idType}}
			rowCommands(t, p, map[string]string{"integer": "999999", "text": "no-such-row"}[idType])
		})
	}
}

// TestUpdateWithoutExpiryColumn: on a table without expires_at, update
// replaces the value, and --expires is refused rather than dropped.
func TestUpdateWithoutExpiryColumn(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE api_keys (id INTEGER PRIMARY KEY, api_key TEXT)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	value := randomValue(t, "sk-ant-noexp-")
	p := &inProcess{t: t, env: map[string]string{"ENCRYPTION_KEY": testKey(t), "DATABASE_URL": "sqlite:" + path}, secrets: []string{value}}
	out, _ := p.run(exitOK, nil, "first", "put", "--name", "n", "--provider", "p")
	id := strings.TrimSpace(out)
	for _, exp := range []string{"2030-01-01", "none"} {
		if _, stderr := p.run(exitUsage, nil, value, "update", id, "--expires", exp); !strings.Contains(stderr, "no expiry column") {
			t.Errorf("update --expires %s on a table without expires_at: %s", exp, stderr)
		}
	}
	p.run(exitOK, nil, value, "update", id)
	if out, _ := p.run(exitOK, nil, "", "resolve", "--reveal", "db:"+id); out != value+"\n" {
		t.Errorf("update on a table without expires_at did not store the value")
	}
}

// TestRowCommandsTakeIDsAsListed (review 2 finding 1): update and delete
// take the id as list shows it and put --id stores it: an id with '%', '#'
// or '?' names that row, never the row its %-decoding would name. The old
// code decoded the id as a ref: delete x%41 deleted row xA, and update 50%
// was refused.
func TestRowCommandsTakeIDsAsListed(t *testing.T) {
	dir := t.TempDir()
	p := &inProcess{t: t, env: map[string]string{"ENCRYPTION_KEY": testKey(t), "DATABASE_URL": "sqlite:" + filepath.Join(dir, "pct.db"),
		"KEYWARD_CONFIG": "db = fernet://?id_type=text"}}
	p.secrets = []string{"sk-pct-value-1", "sk-pct-value-2", "sk-pct-new"}
	p.run(exitOK, nil, "", "init")
	ids := []string{"x%41", "xA", "50%", "a#b", "q?x"}
	for i, id := range ids {
		p.run(exitOK, nil, fmt.Sprint("sk-pct-value-", i%2+1), "put", "--name", "n", "--provider", "p", "--id", id)
	}
	p.run(exitOK, nil, "sk-pct-new", "update", "50%")
	p.run(exitOK, nil, "sk-pct-new", "update", "a#b")
	p.run(exitOK, nil, "", "delete", "x%41")
	p.run(exitOK, nil, "", "delete", "q?x")
	for id, want := range map[string]string{"xA": "sk-pct-value-2", "50%": "sk-pct-new", "a#b": "sk-pct-new"} {
		out, _ := p.run(exitOK, nil, "", "resolve", "--reveal", "db:"+fernetstore.RowRef(id))
		if strings.TrimSpace(out) != want {
			t.Errorf("row %s holds the wrong value after update and delete", id)
		}
	}
	for _, gone := range []string{"x%41", "q?x"} {
		p.run(exitFindings, nil, "", "resolve", "db:"+fernetstore.RowRef(gone))
	}
}

// TestCheckPastedKeyInRefColumn (second review): a key pasted into
// key_env_var is a bad-reference finding whose hint says what to do; the
// old check called it undecryptable and blamed ENCRYPTION_KEY_PREVIOUS. The
// key never appears in any output.
func TestCheckPastedKeyInRefColumn(t *testing.T) {
	dbURL := "sqlite:" + filepath.Join(t.TempDir(), "pasted.db")
	pasted := "sk-ant-api03-pastedINTOtheCOLUMN0123456789abcdefXYZ"
	p := &inProcess{t: t, secrets: []string{pasted}, env: map[string]string{"ENCRYPTION_KEY": testKey(t), "DATABASE_URL": dbURL,
		"KEYWARD_CONFIG": "db = fernet://?id_type=text&ref_columns=key_env_var:env,secret_name:awssm"}}
	p.run(exitOK, nil, "", "init")
	db := openTestDB(t, dbURL)
	if _, err := db.Exec("INSERT INTO api_keys (id, name, provider, api_key, key_env_var) VALUES ('row-pasted', 'n', 'anthropic', NULL, ?)", pasted); err != nil {
		t.Fatal(err)
	}
	out, _ := p.run(exitFindings, nil, "", "check")
	for _, w := range []string{"row row-pasted", "holds what looks like a key", "keyward update row-pasted"} {
		if !strings.Contains(out, w) {
			t.Errorf("check does not say %q:\n%s", w, out)
		}
	}
	if strings.Contains(out, "undecryptable") {
		t.Errorf("check calls the pasted key undecryptable:\n%s", out)
	}
	out, _ = p.run(exitOK, nil, "", "list", "--state", "bad-reference")
	if !strings.Contains(out, "row-pasted") {
		t.Errorf("list --state bad-reference does not show the row:\n%s", out)
	}
	p.run(exitOK, nil, "", "list", "-o", "json")
	p.run(exitFindings, nil, "", "check", "-o", "json")
}
