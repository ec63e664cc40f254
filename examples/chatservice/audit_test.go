package main

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyward/secrets/audittable"
	"github.com/keyward/secrets/fernetstore"
	"github.com/keyward/secrets/internal/testenv"
)

// freshDatabase returns a DATABASE_URL of an empty database for the
// service: a SQLite file, a PostgreSQL schema or a MariaDB database of its
// own, dropped after the test.
func freshDatabase(t testing.TB, dialect string) string {
	t.Helper()
	name := fmt.Sprintf("chat_audit_%d", time.Now().UnixNano())
	switch dialect {
	case "sqlite":
		return "sqlite:" + filepath.Join(t.TempDir(), "chat.db")
	case "postgres":
		dsn := testenv.PostgresDSN(t)
		admin, err := fernetstore.OpenDB(dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer admin.Close()
		if _, err := admin.Exec("CREATE SCHEMA " + name); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if a, err := fernetstore.OpenDB(dsn); err == nil {
				a.Exec("DROP SCHEMA IF EXISTS " + name + " CASCADE")
				a.Close()
			}
		})
		u, _ := url.Parse(dsn)
		q := u.Query()
		q.Set("search_path", name)
		u.RawQuery = q.Encode()
		return u.String()
	case "mysql":
		dsn := testenv.MySQLDSN(t)
		admin, err := sql.Open("mysql", dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer admin.Close()
		if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if a, err := sql.Open("mysql", dsn); err == nil {
				a.Exec("DROP DATABASE IF EXISTS " + name)
				a.Close()
			}
		})
		// root@tcp(127.0.0.1:3306)/test?parseTime=true -> .../<name>?...
		base, rest, _ := strings.Cut(dsn, "/")
		_, params, _ := strings.Cut(rest, "?")
		return "mysql://" + base + "/" + name + "?" + params
	}
	t.Fatalf("dialect %s", dialect)
	return ""
}

// Issue 14 item 5: the service writes one audit row per key use to
// api_key_usage in its own database, on SQLite, PostgreSQL and MariaDB:
// the right success flag, the row id, the client token as requester, and no
// value in any column.
func TestAuditTableRows(t *testing.T) {
	for _, dialect := range []string{"sqlite", "postgres", "mysql"} {
		t.Run(dialect, func(t *testing.T) {
			dbURL := freshDatabase(t, dialect)
			dir := t.TempDir()
			env := map[string]string{"CHAT_DATA_DIR": dir, "DATABASE_URL": dbURL, "CHAT_RATE": "1000", "CHAT_BURST": "1000"}
			s := start(t, env)
			ctx := context.Background()
			if err := s.bots.add(ctx, "broken", "anthropic", "env:CHAT_NO_SUCH_KEY"); err != nil {
				t.Fatal(err)
			}
			all, err := s.bots.all(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, b := range all {
				s.post(t, "/api/chat/"+b.ID, `{"message":"hi"}`)
			}
			tokenID, err := s.tokens.check(ctx, s.devToken, "1")
			if err != nil {
				t.Fatal(err)
			}

			db, err := fernetstore.OpenDB(dbURL)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			// The writer batches off the request path: wait for the rows
			// (at most 30 s).
			var rows []audittable.Row
			for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
				rows = rows[:0]
				for r, err := range audittable.List(ctx, db, nil) {
					if err != nil {
						t.Fatal(err)
					}
					rows = append(rows, r)
				}
				if countRequested(rows) >= 3 {
					break
				}
			}
			byRef := map[string][]audittable.Row{}
			for _, r := range rows {
				byRef[r.Ref] = append(byRef[r.Ref], r)
			}
			want := "token:" + fmt.Sprint(tokenID)
			check := func(ref string, success bool, keyID string) {
				t.Helper()
				var found bool
				for _, r := range byRef[ref] {
					if r.Requester != want {
						continue // the start-up warm-up's row has no requester
					}
					found = true
					if r.Success != success || r.APIKeyID != keyID || (success != (r.ErrorMessage == "")) || r.UsedAt.IsZero() || r.ID == "" {
						t.Errorf("%s: row %+v; want success %v, api_key_id %q", ref, r, success, keyID)
					}
				}
				if !found {
					t.Errorf("no audit row for %s with requester %s (rows: %d)", ref, want, len(rows))
				}
			}
			check("db:1", true, "1")
			check("env:"+demoEnvVar, true, "")
			check("env:CHAT_NO_SUCH_KEY", false, "")

			// No value in any column of any row.
			dotenv, _ := os.ReadFile(filepath.Join(dir, demoEnv))
			issued, _ := os.ReadFile(filepath.Join(dir, standInKeysFile))
			values := strings.Fields(string(issued))
			if _, v, ok := strings.Cut(strings.TrimSpace(string(dotenv)), "="); ok {
				values = append(values, v)
			}
			if len(values) < 2 {
				t.Fatalf("found %d keys to search for, want 2", len(values))
			}
			dump := dumpTable(t, db, "api_key_usage")
			for _, v := range append(values, s.devToken) {
				if strings.Contains(dump, v) {
					t.Error("the audit table holds a key or a client token")
				}
			}
		})
	}
}

func countRequested(rows []audittable.Row) int {
	n := 0
	for _, r := range rows {
		if r.Requester != "" {
			n++
		}
	}
	return n
}

// dumpTable returns every column of every row of table as text.
func dumpTable(t *testing.T, db *sql.DB, table string) string {
	t.Helper()
	rows := dumpRows(t, db, table)
	if len(rows) == 0 {
		t.Fatal("the audit table is empty")
	}
	return strings.Join(rows, "|")
}
