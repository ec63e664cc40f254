package main

// The attacking review of keyward audit (issue 14 item 5): findings fixed
// since, and behaviours that held under attack.

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/fernetstore"
	"github.com/keyward/secrets/internal/testenv"
)

// TestReviewAuditFlags: --since, --limit, --ref, --table and -o json at
// their edges, on SQLite, PostgreSQL and MariaDB: each bad value is a
// usage error (2) that prints no document, each odd good one lists what
// it should, and no wildcard matches in --ref.
func TestReviewAuditFlags(t *testing.T) {
	urls := map[fernetstore.Dialect]func(h *harness) string{
		fernetstore.SQLite:   func(h *harness) string { return "sqlite:" + filepath.Join(h.dir, "service.db") },
		fernetstore.Postgres: func(*harness) string { return testenv.PostgresDSN(t) },
		fernetstore.MySQL:    func(*harness) string { return "mysql://" + testenv.MySQLDSN(t) },
	}
	for _, d := range []fernetstore.Dialect{fernetstore.SQLite, fernetstore.Postgres, fernetstore.MySQL} {
		t.Run(string(d), func(t *testing.T) {
			h := newHarness(t)
			url := urls[d](h)
			db := openTestDB(t, url)
			table := uniqueTable(t)
			t.Cleanup(func() { db.Exec("DROP TABLE IF EXISTS " + table) })
			now := time.Now().UTC()
			writeAudit(t, db, table,
				secrets.AuditEvent{Time: now.Add(-3 * time.Hour), Ref: "db:500", Backend: "fernet", Outcome: "ok"},
				secrets.AuditEvent{Time: now.Add(-time.Minute), Ref: "db:5_0", Backend: "fernet", Outcome: "ok"},
				secrets.AuditEvent{Time: now.Add(-time.Minute), Ref: "db:50%", Backend: "fernet", Outcome: "ok"},
			)
			base := []string{"--db", url, "--table", table, "audit", "-o", "json"}
			count := func(args ...string) int {
				t.Helper()
				var doc auditDoc
				decodeOne(t, h.must(0, nil, "", append(base, args...)...), &doc)
				if doc.Error != "" {
					t.Fatalf("%v: error %s", args, doc.Error)
				}
				return len(doc.Rows)
			}
			for _, bad := range [][]string{
				{"--since", "-5m"}, {"--since", "1000000h"}, {"--since", "garbage"}, {"--since", "2026-13-01T00:00:00Z"},
				{"--limit", "-1"}, {"--limit", "1073741825"}, {"--limit", "abc"}, {"--limit", "99999999999999999999"},
			} {
				r := h.must(exitUsage, nil, "", append(base, bad...)...)
				if r.stdout != "" {
					t.Errorf("%v: a usage error prints a document: %s", bad, r)
				}
			}
			if r := h.run(nil, "", "--db", url, "--table", "x;DROP TABLE "+table, "audit"); r.code == 0 {
				t.Errorf("--table with SQL: %s", r)
			}
			if n := count(); n != 3 {
				t.Fatalf("the table lost rows after --table with SQL: %d", n)
			}
			for args, want := range map[string]int{
				"--since 876000h":                   3,
				"--since 2h":                        2,
				"--since 0s":                        0,
				"--since 9999-12-31T23:59:59Z":      0,
				"--since 0001-01-01T00:00:00Z":      3,
				"--since 1970-01-01T00:00:00+14:00": 3,
				"--limit 1073741824":                3,
				"--limit 0":                         3,
				"--limit 2":                         2,
				"--ref db:5_0":                      1,
				"--ref db:50%":                      1,
				"--ref db:%":                        0,
				"--ref db:5_":                       0,
				"--ref db:500 --since 2h":           0,
				"--ref db:' OR 1=1 --":              0,
				"--since " + now.Add(time.Hour).Format(time.RFC3339Nano): 0,
			} {
				fields := strings.Fields(args)
				if strings.HasPrefix(args, "--ref db:' OR") {
					fields = []string{"--ref", "db:' OR 1=1 --"}
				}
				if got := count(fields...); got != want {
					t.Errorf("%s: %d rows, want %d", args, got, want)
				}
			}
			// An empty result is still one document.
			r := h.must(0, nil, "", append(base, "--since", "9999-12-31T23:59:59Z")...)
			if strings.TrimSpace(r.stdout) != `{"rows":[]}` {
				t.Errorf("empty: %q", r.stdout)
			}
		})
	}
}

// TestReviewAuditYearZero: an RFC 3339 --since of year 0 is accepted by
// parseSince; on PostgreSQL and MariaDB it must list (or be a usage
// error), not fail as if the database were down.
func TestReviewAuditYearZero(t *testing.T) {
	for _, url := range []string{testenv.PostgresDSN(t), "mysql://" + testenv.MySQLDSN(t)} {
		h := newHarness(t)
		db := openTestDB(t, url)
		table := uniqueTable(t)
		t.Cleanup(func() { db.Exec("DROP TABLE IF EXISTS " + table) })
		writeAudit(t, db, table, secrets.AuditEvent{Time: time.Now(), Ref: "db:1", Backend: "fernet", Outcome: "ok"})
		r := h.run(nil, "", "--db", url, "--table", table, "audit", "--since", "0000-01-01T00:00:00Z")
		if r.code != 0 && r.code != exitUsage {
			t.Errorf("--since 0000-01-01T00:00:00Z: %s", r)
		}
	}
}

// TestReviewAuditTerminal: refs and requesters are tenants' text; the text
// table must not pass terminal controls or bidi overrides through. clean
// maps C0 and DEL but not the C1 controls (U+009B is CSI on terminals that
// take 8-bit controls) nor U+202E (RIGHT-TO-LEFT OVERRIDE, which reorders
// what the operator reads).
func TestReviewAuditTerminal(t *testing.T) {
	h := newHarness(t)
	url := "sqlite:" + filepath.Join(h.dir, "service.db")
	db := openTestDB(t, url)
	table := uniqueTable(t)
	writeAudit(t, db, table,
		secrets.AuditEvent{Time: time.Now(), Ref: "db:1\x1b[2J\u009b2J\u202edeliver", Backend: "fernet", Outcome: "ok", Requester: "bot\u0085x\u2028y"})
	r := h.must(0, nil, "", "--db", url, "--table", table, "audit")
	for _, c := range []string{"\x1b", "\u009b", "\u202e", "\u0085", "\u2028"} {
		if strings.Contains(r.stdout, c) {
			t.Errorf("keyward audit prints %U from a tenant's ref or requester as it is: clean() should map C1 controls, bidi overrides and line separators too", []rune(c)[0])
		}
	}
}

// TestReviewAuditDatabaseDown: a database that does not answer is exit 4,
// one line, no DSN password.
func TestReviewAuditDatabaseDown(t *testing.T) {
	h := newHarness(t)
	h.secret("pw-" + "Zq9xAttack")
	r := h.run(nil, "", "--db", "postgres://u:pw-Zq9xAttack@127.0.0.1:1/db?sslmode=disable&connect_timeout=2", "audit")
	if r.code != exitUnavailable || strings.Count(strings.TrimSpace(r.stderr), "\n") > 1 {
		t.Fatalf("database down: %s", r)
	}
	r = h.run(nil, "", "--db", "sqlite:"+filepath.Join(h.dir, "absent.db"), "audit")
	if r.code != exitConfig {
		t.Fatalf("absent SQLite file: %s", r)
	}
}

// TestReviewResolveDoesNotWriteTable: keyward's own resolve with a
// configuration of audit = db writes no row (it logs to stderr) and no
// value anywhere.
func TestReviewResolveDoesNotWriteTable(t *testing.T) {
	h := newHarness(t)
	url := "sqlite:" + filepath.Join(h.dir, "service.db")
	value := "sk-ant-attack-" + strings.Repeat("q", 20)
	h.secret(value)
	env := map[string]string{"KEYWARD_CONFIG": "env = env://\naudit = db", "DATABASE_URL": url, "KW_ATTACK_V": value}
	h.must(0, env, "", "resolve", "env:KW_ATTACK_V")
	db := openTestDB(t, url)
	var n int
	if err := db.QueryRow("SELECT count(*) FROM sqlite_master WHERE name = 'api_key_usage'").Scan(&n); err != nil || n != 0 {
		t.Fatalf("keyward resolve made the audit table (%d, %v)", n, err)
	}
}
