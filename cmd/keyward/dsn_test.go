package main

import (
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"

	"github.com/keyward/secrets/fernetstore"
	"github.com/keyward/secrets/internal/testenv"
)

// The words the DSNs here carry that no output may repeat: the password,
// the user name and an unknown query parameter.
const (
	cliCanary      = "CANARYPW-c71d"
	cliCanaryUser  = "canaryuser"
	cliCanaryParam = "canaryparam"
)

// leaked returns the canary words (and extra) found in out, case-insensitively.
func leaked(out string, extra ...string) []string {
	var found []string
	for _, w := range append([]string{cliCanary, cliCanaryUser, cliCanaryParam}, extra...) {
		if strings.Contains(strings.ToLower(out), strings.ToLower(w)) {
			found = append(found, w)
		}
	}
	return found
}

// TestDatabaseURLNeverLeaks: whatever is wrong with the database URL (a
// mixed-case scheme, a malformed or ambiguous URL, a key=value DSN, a server
// refusing the user or a parameter, an unreachable host), no command prints
// its password, its user name or its parameters, whether the URL comes from
// --db or DATABASE_URL; each ends with the exit code of its kind of failure.
func TestDatabaseURLNeverLeaks(t *testing.T) {
	pg, my := testenv.PostgresDSN(t), testenv.MySQLDSN(t)
	pu, _ := url.Parse(pg)
	host, db := pu.Host, strings.TrimPrefix(pu.Path, "/")
	cu, pw := cliCanaryUser, cliCanary
	myCfg, err := mysql.ParseDSN(my)
	if err != nil {
		t.Fatal(err)
	}
	myHost := myCfg.Addr
	cases := []struct {
		name, dsn string
		code      int
	}{
		{"mixed-case scheme, unknown role", "Postgres://" + cu + ":" + pw + "@" + host + "/" + db + "?sslmode=disable", exitConfig},                             // a role or password refused: configuration, not an outage
		{"upper-case scheme, unknown parameter", "POSTGRES://postgres:" + pw + "@" + host + "/" + db + "?sslmode=disable&" + cliCanaryParam + "=1", exitConfig}, // a parameter the server refuses: configuration
		{"unreachable", "postgres://" + cu + ":" + pw + "@127.0.0.1:1/" + db + "?sslmode=disable&connect_timeout=5", exitUnavailable},
		{"malformed URL", "postgres://" + cu + ":" + pw + "@[::1", exitConfig},
		{"bad port", "PostgreSQL://" + cu + ":" + pw + "@" + pu.Hostname() + ":" + cliCanaryParam + "/" + db, exitConfig},
		{"slash in password", "postgres://" + cu + ":1234/" + pw + "@" + host + "/" + db + "?sslmode=disable", exitConfig},
		{"bad sslmode", "postgres://" + cu + ":" + pw + "@" + host + "/" + db + "?sslmode=" + cliCanaryParam, exitConfig},
		{"keyword=value", "host=127.0.0.1 user=" + cu + " password=" + pw, exitConfig},
		{"keyword=value with a colon", "host=127.0.0.1 user=" + cu + " password=" + pw + ":x", exitConfig},
		{"mysql access denied", "MySQL://" + cu + ":" + pw + "@" + myHost + "/test", exitConfig}, // a role or password refused: configuration, not an outage
		{"mysql unknown parameter", "mysql://root@" + myHost + "/test?" + cliCanaryParam + "=1", exitConfig},
		{"mysql malformed URL", "mysql://" + cu + ":" + pw + "@[::1", exitConfig},
		{"unknown scheme", "oracle://" + cu + ":" + pw + "@h/x", exitConfig},
	}
	key, err := fernetstore.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	commands := [][]string{{"list"}, {"check"}, {"init"}, {"resolve", "db:1"}, {"migrate", "--dry-run"}, {"rotate"}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, cmd := range commands {
				for _, via := range []string{"--db", "DATABASE_URL"} {
					env := map[string]string{"ENCRYPTION_KEY": key}
					args := cmd
					if via == "--db" {
						args = append([]string{"--db", c.dsn}, cmd...)
					} else {
						env["DATABASE_URL"] = c.dsn
					}
					code, stdout, stderr := runInProcess(env, "", args...)
					what := fmt.Sprintf("keyward %s (URL in %s)", strings.Join(cmd, " "), via)
					if w := leaked(stdout + stderr); len(w) > 0 {
						// The output is not printed: it holds the canary.
						t.Errorf("%s: the output shows %q from the database URL", what, w)
					} else if code != c.code {
						t.Errorf("%s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", what, code, c.code, stdout, stderr)
					}
				}
			}
		})
	}
}

// TestDatabaseURLSchemeCase: a Postgres:// URL (with a password, which the
// test server ignores) reaches the configured server and database: init,
// put and list work, and nothing prints the password.
func TestDatabaseURLSchemeCase(t *testing.T) {
	pg := testenv.PostgresDSN(t)
	u, _ := url.Parse(pg)
	u.User = url.UserPassword(u.User.Username(), cliCanary)
	_, rest, _ := strings.Cut(u.String(), "://")
	table := uniqueTable(t)
	check := openTestDB(t, pg)
	t.Cleanup(func() { check.Exec("DROP TABLE IF EXISTS " + table) })
	key, err := fernetstore.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	value := randomValue(t, "sk-ant-test-")
	for i, scheme := range []string{"Postgres", "POSTGRESQL"} {
		dsn := scheme + "://" + rest
		env := map[string]string{"ENCRYPTION_KEY": key, "DATABASE_URL": dsn}
		steps := [][]string{{"init"}, {"put", "--name", "n", "--provider", "p"}, {"list"}}
		for _, args := range steps {
			args = append(args, "--table", table)
			code, stdout, stderr := runInProcess(env, value, args...)
			if w := leaked(stdout+stderr, value, key); len(w) > 0 {
				t.Errorf("%s: keyward %s: the output shows %d secret words", scheme, args[0], len(w))
			} else if code != exitOK {
				t.Errorf("%s: keyward %s: exit %d\nstdout:\n%s\nstderr:\n%s", scheme, args[0], code, stdout, stderr)
			}
		}
		var n int
		if err := check.QueryRow("SELECT count(*) FROM " + table).Scan(&n); err != nil || n != i+1 {
			t.Errorf("%s: the table on the configured server has %d rows (%v), want %d", scheme, n, err, i+1)
		}
	}
}
