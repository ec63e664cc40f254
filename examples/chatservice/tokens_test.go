package main

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/keyward/secrets/fernetstore"
	"github.com/keyward/secrets/internal/testenv"
)

// tokenDB is a database to keep tokens in, with the DATABASE_URL that opens
// it, for each dialect.
type tokenDB struct {
	url     string
	db      *sql.DB
	dialect fernetstore.Dialect
}

// tokenDatabases runs fn on SQLite always, and on PostgreSQL and MariaDB
// (KEYWARD_TEST_POSTGRES_DSN, KEYWARD_TEST_MYSQL_DSN; skipped without them,
// failed under KEYWARD_REQUIRE_SERVERS=1).
func tokenDatabases(t *testing.T, fn func(t *testing.T, d tokenDB)) {
	urls := map[fernetstore.Dialect]func(t *testing.T) string{
		fernetstore.SQLite:   func(t *testing.T) string { return "sqlite:" + filepath.Join(t.TempDir(), "tokens.db") },
		fernetstore.Postgres: func(t *testing.T) string { return testenv.PostgresDSN(t) },
		fernetstore.MySQL:    func(t *testing.T) string { return "mysql://" + testenv.MySQLDSN(t) },
	}
	for _, dialect := range []fernetstore.Dialect{fernetstore.SQLite, fernetstore.Postgres, fernetstore.MySQL} {
		t.Run(string(dialect), func(t *testing.T) {
			url := urls[dialect](t)
			db, err := fernetstore.OpenDB(url)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			got, err := fernetstore.DetectDialect(db)
			if err != nil || got != dialect {
				t.Fatalf("DetectDialect = %q, %v; want %q", got, err, dialect)
			}
			fn(t, tokenDB{url: url, db: db, dialect: dialect})
		})
	}
}

// newTokenTable returns a store on a table of its own, dropped at the end.
func newTokenTable(t *testing.T, d tokenDB) *tokenStore {
	t.Helper()
	s := &tokenStore{db: d.db, dialect: d.dialect, table: "chat_tokens_test_" + randomHex(6)}
	t.Cleanup(func() {
		if _, err := d.db.Exec("DROP TABLE IF EXISTS " + s.tbl()); err != nil {
			t.Errorf("drop %s: %v", s.table, err)
		}
	})
	if err := s.createTable(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

var tokenRE = regexp.MustCompile(`^kwc_[0-9a-f]{64}$`)

// red is text with anything longer than a token's hint that looks like a
// token cut out, for failure messages.
func red(text string) string {
	return regexp.MustCompile(`kwc_[0-9a-fA-F]{9,}`).ReplaceAllString(text, "kwc_<redacted>")
}

// tableDump is every column of every row of s's table, as text.
func tableDump(t *testing.T, s *tokenStore) []string {
	t.Helper()
	return dumpRows(t, s.db, s.tbl())
}

// dumpRows is every column of every row of table (quoted as the database
// needs), as column=value.
func dumpRows(t *testing.T, db *sql.DB, table string) []string {
	t.Helper()
	rows, err := db.Query("SELECT * FROM " + table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		for i, v := range vals {
			if b, ok := v.([]byte); ok {
				v = string(b)
			}
			out = append(out, cols[i]+"="+fmt.Sprint(v))
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// assertNoToken fails if text holds any 16 consecutive characters of a
// token: the stored hint is 12 ("kwc_" and 8 hex digits), so this finds
// the token, its secret part, or any sizeable piece of either.
func assertNoToken(t *testing.T, where, text string, tokens ...string) {
	t.Helper()
	for _, tok := range tokens {
		for i := 0; i+16 <= len(tok); i++ {
			if strings.Contains(text, tok[i:i+16]) {
				t.Errorf("%s holds characters %d to %d of a token", where, i, i+16)
				break
			}
		}
	}
}

// Issue 14 item 2: client tokens on each dialect: a token made by add
// passes check for its bots only, a wrong one is unknown, a revoke is seen
// by the very next check, "*" is every bot, and the table keeps the hash,
// never the token.
func TestTokenStore(t *testing.T) {
	tokenDatabases(t, func(t *testing.T, d tokenDB) {
		ctx := context.Background()
		s := newTokenTable(t, d)
		if err := s.createTable(ctx); err != nil {
			t.Fatalf("createTable on an existing table: %v", err)
		}

		id, tok, err := s.add(ctx, "  web frontend ", []string{"1", " 2", "1", ""})
		if err != nil {
			t.Fatal(err)
		}
		if !tokenRE.MatchString(tok) {
			t.Fatalf("the token does not have the form kwc_<64 hex digits> (length %d)", len(tok))
		}
		for _, bot := range []string{"1", "2"} {
			if got, err := s.check(ctx, tok, bot); err != nil || got != id {
				t.Errorf("check(token, bot %s) = %d, %v; want the token's id %d, nil", bot, got, err, id)
			}
		}
		for _, bot := range []string{"3", "", "*", "12", "1,2"} {
			if _, err := s.check(ctx, tok, bot); !errors.Is(err, errTokenScope) {
				t.Errorf("check(token, bot %q) = %v, want errTokenScope", bot, err)
			}
		}
		if _, err := s.check(ctx, "", "1"); !errors.Is(err, errTokenMissing) {
			t.Errorf("check of no token = %v, want errTokenMissing", err)
		}
		other, _ := newToken()
		for what, bad := range map[string]string{
			"another well-formed token": other,
			"the token in upper case":   strings.ToUpper(tok),
			"the token minus its last":  tok[:len(tok)-1],
			"the token plus a digit":    tok + "0",
			"the token's hash":          tokenHash(tok),
			"the token's hint":          tokenHint(tok),
			"garbage":                   "Bearer x",
		} {
			if _, err := s.check(ctx, bad, "1"); !errors.Is(err, errTokenUnknown) {
				t.Errorf("check of %s = %v, want errTokenUnknown", what, err)
			}
		}

		idAll, tokAll, err := s.add(ctx, "ops", []string{"*"})
		if err != nil {
			t.Fatal(err)
		}
		if idAll == id {
			t.Fatalf("two tokens with id %d", id)
		}
		for _, bot := range []string{"1", "99", "0b0e1f3a-6d6c-4b8e-9b8e-3c1f0c2d4e5f"} {
			if _, err := s.check(ctx, tokAll, bot); err != nil {
				t.Errorf("check(* token, bot %s) = %v, want nil", bot, err)
			}
		}

		// A revoke is seen by the very next check, with no wait.
		if err := s.revoke(ctx, id); err != nil {
			t.Fatal(err)
		}
		if _, err := s.check(ctx, tok, "1"); !errors.Is(err, errTokenRevoked) {
			t.Errorf("check right after revoke = %v, want errTokenRevoked", err)
		}
		if _, err := s.check(ctx, tokAll, "1"); err != nil {
			t.Errorf("the other token after revoking the first: %v", err)
		}
		if err := s.revoke(ctx, id); !errors.Is(err, errTokenAlreadyRevoked) {
			t.Errorf("second revoke = %v, want errTokenAlreadyRevoked", err)
		}
		if err := s.revoke(ctx, idAll+1000); !errors.Is(err, errTokenNotFound) {
			t.Errorf("revoke of an unknown id = %v, want errTokenNotFound", err)
		}

		list, err := s.list(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 2 {
			t.Fatalf("list has %d tokens, want 2", len(list))
		}
		a, b := list[0], list[1]
		if a.ID != id || a.Name != "web frontend" || strings.Join(a.Bots, ",") != "1,2" || a.Hint != tokenHint(tok) || a.Created.IsZero() || a.Revoked.IsZero() {
			t.Errorf("list[0] = id %d, name %q, bots %q, hint right %v, created %v, revoked %v", a.ID, a.Name, a.Bots, a.Hint == tokenHint(tok), a.Created, a.Revoked)
		}
		if b.ID != idAll || b.Name != "ops" || strings.Join(b.Bots, ",") != "*" || !b.Revoked.IsZero() || b.Created.IsZero() {
			t.Errorf("list[1] = id %d, name %q, bots %q, created %v, revoked %v", b.ID, b.Name, b.Bots, b.Created, b.Revoked)
		}
		if a.Revoked.Before(a.Created) {
			t.Errorf("revoked %v before created %v", a.Revoked, a.Created)
		}
		assertNoToken(t, "list", fmt.Sprintf("%+v", list), tok, tokAll)

		// The table keeps the hash, the hint and no more of the token.
		dump := tableDump(t, s)
		joined := strings.Join(dump, "\n")
		for _, want := range []string{"hash=" + tokenHash(tok), "hash=" + tokenHash(tokAll)} {
			if !slices.Contains(dump, want) {
				t.Errorf("the table lacks %s", want)
			}
		}
		if tokenHash(tok) == tok || strings.Contains(tokenHash(tok), tok[len(tokenPrefix):]) {
			t.Error("the hash is the token")
		}
		assertNoToken(t, "the table", joined, tok, tokAll)

		// Bad input.
		for _, tc := range []struct {
			name string
			bots []string
			says string
		}{
			{"", []string{"1"}, "name"},
			{"   ", []string{"1"}, "name"},
			{"a\nb", []string{"1"}, "control"},
			{strings.Repeat("n", maxTokenName+1), []string{"1"}, "longer"},
			{"x", nil, "at least one bot"},
			{"x", []string{"", " "}, "at least one bot"},
			{"x", []string{"*", "1"}, "*"},
			{"x", []string{"1,2"}, "comma"},
			{"x", []string{"a b"}, "spaces"},
			{"x", []string{strings.Repeat("9", maxBotID+1)}, "longer"},
		} {
			if _, got, err := s.add(ctx, tc.name, tc.bots); err == nil || got != "" || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("add(%.20q, %q) = %v; want an error saying %q and no token", tc.name, tc.bots, err, tc.says)
			}
		}
		if n := len(tableDump(t, s)); n != 2*7 {
			t.Errorf("the table has %d values after refused adds, want the 14 of two rows", n)
		}
	})
}

func TestTokenBearer(t *testing.T) {
	tok, _ := newToken()
	for header, want := range map[string]string{
		"":                     "",
		"Bearer " + tok:        tok,
		"bearer " + tok:        tok,
		"BEARER   " + tok:      tok,
		" Bearer " + tok + " ": tok,
		"Basic dXNlcjpwYXNz":   "",
		"Bearer":               "",
		tok:                    "",
	} {
		r := httptest.NewRequest("POST", "/api/chat/1", nil)
		if header != "" {
			r.Header.Set("Authorization", header)
		}
		if got := bearerToken(r); got != want {
			t.Errorf("bearerToken(Authorization: %.12q...) = %.12q..., want %.12q...", header, got, want)
		}
	}
}

// The development token: made with scope "*" in a 0600 file on the first
// run, reused on later ones, added again on a fresh database, replaced in
// the file when it was revoked.
func TestTokenDevToken(t *testing.T) {
	tokenDatabases(t, func(t *testing.T, d tokenDB) {
		ctx := context.Background()
		dir := t.TempDir()
		s := newTokenTable(t, d)
		tok, err := s.ensureDevToken(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		if !tokenRE.MatchString(tok) {
			t.Fatal("the development token is not of the form kwc_<64 hex digits>")
		}
		path := filepath.Join(dir, devTokenFile)
		checkDevFile := func(want string) {
			t.Helper()
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("%s has mode %v, want 0600", devTokenFile, fi.Mode().Perm())
			}
			b, _ := os.ReadFile(path)
			if strings.TrimSpace(string(b)) != want {
				t.Errorf("%s does not hold the token ensureDevToken returned", devTokenFile)
			}
		}
		checkDevFile(tok)
		if _, err := s.check(ctx, tok, "1"); err != nil {
			t.Errorf("check(dev token) = %v", err)
		}

		again, err := s.ensureDevToken(ctx, dir)
		if err != nil || again != tok {
			t.Fatalf("second ensureDevToken: same token %v, err %v", again == tok, err)
		}
		list, _ := s.list(ctx)
		if len(list) != 1 || list[0].Name != devTokenName || strings.Join(list[0].Bots, ",") != "*" {
			t.Fatalf("after two runs, %d tokens; want one development token with scope *", len(list))
		}

		// A fresh database (here a fresh table): the file's token is added again.
		fresh := newTokenTable(t, d)
		if _, err := fresh.check(ctx, tok, "1"); !errors.Is(err, errTokenUnknown) {
			t.Fatalf("fresh table: check = %v, want errTokenUnknown", err)
		}
		re, err := fresh.ensureDevToken(ctx, dir)
		if err != nil || re != tok {
			t.Fatalf("ensureDevToken on a fresh table: same token %v, err %v", re == tok, err)
		}
		if _, err := fresh.check(ctx, tok, "7"); err != nil {
			t.Errorf("the re-added development token: check = %v", err)
		}
		checkDevFile(tok)

		// Revoked: it stays revoked, and a new one takes its place.
		devList, _ := fresh.list(ctx)
		if len(devList) != 1 {
			t.Fatalf("the fresh table holds %d tokens, want 1", len(devList))
		}
		if err := fresh.revoke(ctx, devList[0].ID); err != nil {
			t.Fatal(err)
		}
		next, err := fresh.ensureDevToken(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		if next == tok || !tokenRE.MatchString(next) {
			t.Fatal("after its revoke, ensureDevToken did not make a new development token")
		}
		if _, err := fresh.check(ctx, tok, "1"); !errors.Is(err, errTokenRevoked) {
			t.Errorf("the revoked development token: check = %v, want errTokenRevoked", err)
		}
		if _, err := fresh.check(ctx, next, "1"); err != nil {
			t.Errorf("the new development token: check = %v", err)
		}
		checkDevFile(next)
		assertNoToken(t, "the table", strings.Join(tableDump(t, fresh), "\n"), tok, next)

		// A malformed file is refused, naming the file, not its content.
		junk := "kwc_not-a-token-" + randomHex(16)
		if err := os.WriteFile(path, []byte(junk), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := fresh.ensureDevToken(ctx, dir); err == nil || !strings.Contains(err.Error(), devTokenFile) || strings.Contains(err.Error(), junk) {
			t.Errorf("malformed file: err = %v; want an error naming the file and not quoting it", err)
		}
	})
}

// runCmd runs the token command with env as its whole environment, on the
// table table.
func runCmd(env map[string]string, table string, args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = runTokens(context.Background(), args, func(k string) string { return env[k] }, &out, &errb, table)
	return code, out.String(), errb.String()
}

// The token command on each dialect: add prints the token once, alone on
// stdout, with a hint on stderr; list and stderr never show it; revoke
// takes effect at once.
func TestTokenCommand(t *testing.T) {
	tokenDatabases(t, func(t *testing.T, d tokenDB) {
		ctx := context.Background()
		s := newTokenTable(t, d)
		env := map[string]string{"DATABASE_URL": d.url, "CHAT_DATA_DIR": t.TempDir()}
		var stderrAll strings.Builder

		code, out, errOut := runCmd(env, s.table, "add", "--name", "mobile app", "--bots", "1,2")
		stderrAll.WriteString(errOut)
		if code != 0 {
			t.Fatalf("add: exit %d, stderr %s", code, red(errOut))
		}
		if !strings.HasSuffix(out, "\n") || strings.Count(out, "\n") != 1 || !tokenRE.MatchString(strings.TrimSuffix(out, "\n")) {
			t.Fatalf("add's stdout is not one line holding the token (%d bytes, %d lines)", len(out), strings.Count(out, "\n"))
		}
		tok := strings.TrimSuffix(out, "\n")
		if !strings.Contains(errOut, "shown only this once") || !strings.Contains(errOut, "cannot be shown again") {
			t.Errorf("add's stderr lacks the hint that the token is not shown again: %s", red(errOut))
		}
		if _, err := s.check(ctx, tok, "2"); err != nil {
			t.Errorf("the command's token: check = %v", err)
		}
		code, out, errOut = runCmd(env, s.table, "add", "-name=all-bots", "-bots=*")
		stderrAll.WriteString(errOut)
		if code != 0 {
			t.Fatalf("add --bots '*': exit %d, stderr %s", code, red(errOut))
		}
		tokAll := strings.TrimSpace(out)
		if _, err := s.check(ctx, tokAll, "42"); err != nil {
			t.Errorf("the command's * token: check = %v", err)
		}

		code, out, errOut = runCmd(env, s.table, "list")
		stderrAll.WriteString(errOut)
		if code != 0 {
			t.Fatalf("list: exit %d, stderr %s", code, red(errOut))
		}
		for _, want := range []string{"ID", "NAME", "BOTS", "REVOKED", "mobile app", "1,2", "all-bots", tokenHint(tok) + "...", tokenHint(tokAll) + "..."} {
			if !strings.Contains(out, want) {
				t.Errorf("list lacks %q:\n%s", want, red(out))
			}
		}
		assertNoToken(t, "list's stdout", out, tok, tokAll)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 3 {
			t.Fatalf("list printed %d lines, want a header and 2 tokens:\n%s", len(lines), red(out))
		}
		id := strings.Fields(lines[1])[0]

		code, _, errOut = runCmd(env, s.table, "revoke", id)
		stderrAll.WriteString(errOut)
		if code != 0 || !strings.Contains(errOut, "revoked") {
			t.Fatalf("revoke %s: exit %d, stderr %s", id, code, red(errOut))
		}
		if _, err := s.check(ctx, tok, "1"); !errors.Is(err, errTokenRevoked) {
			t.Errorf("check right after the revoke command = %v, want errTokenRevoked", err)
		}
		code, _, errOut = runCmd(env, s.table, "revoke", id)
		stderrAll.WriteString(errOut)
		if code != 0 || !strings.Contains(errOut, "already revoked") {
			t.Errorf("revoke twice: exit %d, stderr %s; want 0 saying it was already revoked", code, red(errOut))
		}
		_, out, _ = runCmd(env, s.table, "list")
		if !strings.Contains(strings.Split(out, "\n")[1], "Z") || strings.HasSuffix(strings.TrimSpace(strings.Split(out, "\n")[1]), "-") {
			t.Errorf("list does not show the revoke time:\n%s", red(out))
		}

		// Usage errors: exit 2, with what is wrong and the usage.
		for _, tc := range []struct {
			args []string
			says string
		}{
			{nil, "missing subcommand"},
			{[]string{"frob"}, `unknown subcommand "frob"`},
			{[]string{"add"}, "--name is required"},
			{[]string{"add", "--bots", "1"}, "--name is required"},
			{[]string{"add", "--name", " ", "--bots", "1"}, "needs a name"},
			{[]string{"add", "--name", "x"}, "--bots is required"},
			{[]string{"add", "--name", "x", "--bots", ""}, "at least one bot"},
			{[]string{"add", "--name", "x", "--bots", " , "}, "at least one bot"},
			{[]string{"add", "--name", "x", "--bots", "*,1"}, "cannot be given with"},
			{[]string{"add", "--name", "x", "--bots", "main.go", "tokens.go"}, "--bots '*'"},
			{[]string{"add", "--name", "x", "--bot", "1"}, "flag provided but not defined"},
			{[]string{"add", "--name"}, "needs an argument"},
			{[]string{"list", "extra"}, "unexpected argument"},
			{[]string{"revoke"}, "want one token id"},
			{[]string{"revoke", "1", "2"}, "want one token id"},
			{[]string{"revoke", "abc"}, `"abc" is not a positive integer`},
			{[]string{"revoke", "-3"}, "flag provided but not defined"},
			{[]string{"revoke", "0"}, "not a positive integer"},
		} {
			code, out, errOut := runCmd(env, s.table, tc.args...)
			stderrAll.WriteString(errOut)
			if code != 2 || !strings.Contains(errOut, tc.says) || !strings.Contains(errOut, "usage:") || out != "" {
				t.Errorf("token %q: exit %d, stdout %q, stderr %s; want 2 and an error saying %q with the usage", tc.args, code, red(out), red(errOut), tc.says)
			}
		}
		// Failures: exit 1.
		code, _, errOut = runCmd(env, s.table, "revoke", "987654")
		stderrAll.WriteString(errOut)
		if code != 1 || !strings.Contains(errOut, "no token with id 987654") || strings.Contains(errOut, "usage:") {
			t.Errorf("revoke of an unknown id: exit %d, stderr %s; want 1 naming the id", code, red(errOut))
		}
		for _, h := range []string{"-h", "help"} {
			if code, out, _ := runCmd(env, s.table, h); code != 0 || !strings.Contains(out, "usage:") {
				t.Errorf("token %s: exit %d; want 0 and the usage", h, code)
			}
		}
		if code, out, _ := runCmd(env, s.table, "add", "-h"); code != 0 || !strings.Contains(out, "usage:") {
			t.Errorf("token add -h: exit %d; want 0 and the usage", code)
		}
		assertNoToken(t, "the command's stderr", stderrAll.String(), tok, tokAll)
		assertNoToken(t, "the table", strings.Join(tableDump(t, s), "\n"), tok, tokAll)
	})
}

// The command's database: DATABASE_URL, else chatservice.db in
// CHAT_DATA_DIR, where the service keeps it; the table is created if
// missing. A bad DATABASE_URL is a failure (exit 1) that quotes no password.
func TestTokenCommandDatabase(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"CHAT_DATA_DIR": dir}
	var out, errb bytes.Buffer
	if code := runTokenCommand(context.Background(), []string{"add", "--name", "n", "--bots", "5"}, func(k string) string { return env[k] }, &out, &errb); code != 0 {
		t.Fatalf("add: exit %d, stderr %s", code, red(errb.String()))
	}
	tok := strings.TrimSpace(out.String())
	db, err := fernetstore.OpenDB("sqlite:" + filepath.Join(dir, "chatservice.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s := &tokenStore{db: db, dialect: fernetstore.SQLite}
	if _, err := s.check(context.Background(), tok, "5"); err != nil {
		t.Errorf("the token in %s/chatservice.db (table %s): check = %v", dir, tokenTable, err)
	}

	env["DATABASE_URL"] = "postgres://u:Sup3rSecretPw@127.0.0.1:1/db?sslmode=disable&connect_timeout=2"
	code, _, errOut := runCmd(env, tokenTable, "list")
	if code != 1 || strings.Contains(errOut, "Sup3rSecretPw") || strings.Contains(errOut, "usage:") {
		t.Errorf("unreachable database: exit %d, stderr %s; want 1, quoting no password", code, red(errOut))
	}
	env["DATABASE_URL"] = "oracle://u:Sup3rSecretPw@h/db"
	code, _, errOut = runCmd(env, tokenTable, "list")
	if code != 1 || strings.Contains(errOut, "Sup3rSecretPw") {
		t.Errorf("unknown scheme: exit %d, stderr %s; want 1, quoting no password", code, red(errOut))
	}
}

// tokenHint and the stored hint agree with what list shows (a guard on the
// constant: the hint must stay short of the 16 characters assertNoToken
// looks for).
func TestTokenHintLength(t *testing.T) {
	tok, _ := newToken()
	if h := tokenHint(tok); len(h) != len(tokenPrefix)+tokenHintLen || len(h) >= 16 || !strings.HasPrefix(tok, h) {
		t.Errorf("hint of length %d", len(h))
	}
	if !wellFormed(tok) || wellFormed(strings.ToUpper(tok)) || wellFormed(tok[1:]) {
		t.Error("wellFormed")
	}
}
