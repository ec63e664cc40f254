package main

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/audittable"
	"github.com/keyward/secrets/fernetstore"
	"github.com/keyward/secrets/internal/testenv"
)

type auditDoc struct {
	Rows []struct {
		ID           *string    `json:"id"`
		UsedAt       *time.Time `json:"used_at"`
		Success      *bool      `json:"success"`
		Outcome      *string    `json:"outcome"`
		Ref          *string    `json:"ref"`
		Backend      *string    `json:"backend"`
		CacheHit     *bool      `json:"cache_hit"`
		Requester    *string    `json:"requester"`
		APIKeyID     *string    `json:"api_key_id"`
		ErrorMessage *string    `json:"error_message"`
	} `json:"rows"`
	Error string `json:"error"`
}

// writeAudit writes events to table through the library's writer.
func writeAudit(t *testing.T, db *sql.DB, table string, evs ...secrets.AuditEvent) {
	t.Helper()
	a, err := audittable.New(db, &audittable.Options{Table: table, CreateTable: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		a.Audit(context.Background(), ev)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if s := a.Stats(); s.Written != uint64(len(evs)) {
		t.Fatalf("stats %+v", s)
	}
}

// TestAuditCommand: keyward audit lists the table newest first, in text
// and JSON, with --ref, --since and --limit, on SQLite and PostgreSQL.
func TestAuditCommand(t *testing.T) {
	for _, d := range []fernetstore.Dialect{fernetstore.SQLite, fernetstore.Postgres} {
		t.Run(string(d), func(t *testing.T) {
			h := newHarness(t)
			url := "sqlite:" + filepath.Join(h.dir, "service.db")
			if d == fernetstore.Postgres {
				url = testenv.PostgresDSN(t)
			}
			db := openTestDB(t, url)
			table := uniqueTable(t)
			t.Cleanup(func() { db.Exec("DROP TABLE IF EXISTS " + table) })
			now := time.Now().UTC()
			writeAudit(t, db, table,
				secrets.AuditEvent{Time: now.Add(-3 * time.Hour), Ref: "db:7", Backend: "fernet", Outcome: "ok", Requester: "bot-1"},
				secrets.AuditEvent{Time: now.Add(-time.Hour), Ref: "env:NOPE", Backend: "env", Outcome: "not_found",
					Err: &secrets.Error{Op: "resolve", Backend: "env", Ref: "NOPE", Code: secrets.CodeNotFound}},
				secrets.AuditEvent{Time: now.Add(-time.Minute), Ref: "db:7", Backend: "fernet", Outcome: "ok", CacheHit: true},
			)
			base := []string{"--db", url, "--table", table, "audit"}
			r := h.must(0, nil, "", base...)
			lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
			if len(lines) != 4 || !strings.HasPrefix(lines[0], "USED_AT") || !strings.Contains(lines[0], "REQUESTER") {
				t.Fatalf("want a header and 3 rows: %s", r)
			}
			if !strings.Contains(lines[1], "hit") || !strings.Contains(lines[2], "not_found") || !strings.Contains(lines[3], "bot-1") {
				t.Fatalf("rows not newest first: %s", r)
			}

			var doc auditDoc
			decodeOne(t, h.must(0, nil, "", append(base, "-o", "json")...), &doc)
			if len(doc.Rows) != 3 || *doc.Rows[0].Ref != "db:7" || !*doc.Rows[0].CacheHit || *doc.Rows[0].APIKeyID != "7" ||
				*doc.Rows[1].Success || doc.Rows[1].ErrorMessage == nil || doc.Rows[1].APIKeyID != nil {
				t.Fatalf("json: %s", r)
			}

			decodeOne(t, h.must(0, nil, "", append(base, "-o", "json", "--ref", "db:7")...), &doc)
			if len(doc.Rows) != 2 {
				t.Fatalf("--ref db:7: %d rows", len(doc.Rows))
			}
			decodeOne(t, h.must(0, nil, "", append(base, "-o", "json", "--since", "2h")...), &doc)
			if len(doc.Rows) != 2 {
				t.Fatalf("--since 2h: %d rows", len(doc.Rows))
			}
			decodeOne(t, h.must(0, nil, "", append(base, "-o", "json", "--since", now.Add(-90*time.Second).Format(time.RFC3339))...), &doc)
			if len(doc.Rows) != 1 {
				t.Fatalf("--since RFC3339: %d rows", len(doc.Rows))
			}
			decodeOne(t, h.must(0, nil, "", append(base, "-o", "json", "--limit", "1")...), &doc)
			if len(doc.Rows) != 1 || !*doc.Rows[0].CacheHit {
				t.Fatalf("--limit 1: %+v", doc.Rows)
			}
			// The configuration's audit = db?table=NAME is the default table.
			r = h.must(0, map[string]string{"KEYWARD_CONFIG": "audit = db?table=" + table}, "", "--db", url, "audit", "-o", "json")
			decodeOne(t, r, &doc)
			if len(doc.Rows) != 3 {
				t.Fatalf("the configuration's table: %d rows", len(doc.Rows))
			}
		})
	}
}

// TestAuditCommandPythonTable: the Python service's five-column table lists
// with what it has; --ref on it is a usage error; a missing table is a
// configuration error; a bad --since a usage error that does not echo it.
func TestAuditCommandPythonTable(t *testing.T) {
	h := newHarness(t)
	url := "sqlite:" + filepath.Join(h.dir, "app.db")
	db := openTestDB(t, url)
	if _, err := db.Exec("CREATE TABLE api_key_usage (id VARCHAR(36) NOT NULL, api_key_id VARCHAR(36), used_at DATETIME, success BOOLEAN, error_message TEXT, PRIMARY KEY (id))"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("INSERT INTO api_key_usage VALUES ('5f0c6a7e-0000-4000-8000-000000000001', 'k-1', '2026-01-02 03:04:05.123456', 1, NULL), ('5f0c6a7e-0000-4000-8000-000000000002', NULL, '2026-01-02 04:04:05.000000', 0, 'provider refused the key')"); err != nil {
		t.Fatal(err)
	}
	r := h.must(0, nil, "", "--db", url, "audit")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 || strings.Contains(lines[0], "REF") || !strings.Contains(lines[1], "failed") || !strings.Contains(lines[2], "k-1") {
		t.Fatalf("python table: %s", r)
	}
	var doc auditDoc
	decodeOne(t, h.must(0, nil, "", "--db", url, "audit", "-o", "json"), &doc)
	if len(doc.Rows) != 2 || doc.Rows[0].Ref != nil || doc.Rows[0].Outcome != nil || *doc.Rows[0].Success || *doc.Rows[1].APIKeyID != "k-1" ||
		doc.Rows[1].UsedAt.Format(time.RFC3339Nano) != "2026-01-02T03:04:05.123456Z" {
		t.Fatalf("python table json: %s", h.runs[len(h.runs)-1])
	}
	if r := h.must(exitUsage, nil, "", "--db", url, "audit", "--ref", "db:k-1"); !strings.Contains(r.stderr, "no ref column") {
		t.Fatalf("--ref on the Python table: %s", r)
	}
	if r := h.must(exitConfig, nil, "", "--db", url, "--table", "nosuch", "audit"); !strings.Contains(r.stderr, "does not exist") {
		t.Fatalf("missing table: %s", r)
	}
	if r := h.must(exitUsage, nil, "", "--db", url, "audit", "--since", "sk-secret-ish"); strings.Contains(r.stderr, "sk-secret-ish") {
		t.Fatalf("a bad --since is echoed: %s", r)
	}
	h.must(exitUsage, nil, "", "--db", url, "audit", "--limit", "-1")
}

func TestParseSince(t *testing.T) {
	now := time.Date(2026, 2, 1, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"24h":                  now.Add(-24 * time.Hour),
		"90m":                  now.Add(-90 * time.Minute),
		"0s":                   now,
		"2026-01-31T00:00:00Z": time.Date(2026, 1, 31, 0, 0, 0, 0, time.UTC),
	} {
		if got, err := parseSince(in, now); err != nil || !got.Equal(want) {
			t.Errorf("parseSince(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1h", "yesterday", "2026-01-31", "1000000h"} {
		if _, err := parseSince(in, now); err == nil {
			t.Errorf("parseSince(%q) accepted", in)
		}
	}
}

// FuzzParseSince: --since never panics, and its errors never hold the text.
func FuzzParseSince(f *testing.F) {
	for _, s := range []string{"24h", "90m", "2026-01-31T00:00:00Z", "-1h", "x", "1e99h", "9223372036854775807ns"} {
		f.Add(s)
	}
	now := time.Now()
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseSince(s, now)
		if err != nil {
			// The errors are fixed texts: nothing of s is in them.
			if _, want := parseSince("x", now); err.Error() != want.Error() {
				if _, want := parseSince("-1h", now); err.Error() != want.Error() {
					t.Fatalf("an error that is not one of the fixed texts: %v", err)
				}
			}
			return
		}
		if d, derr := time.ParseDuration(strings.TrimSpace(s)); derr == nil && got.After(now) {
			t.Fatalf("parseSince(%q) = %v after now (%v)", s, got, d)
		}
	})
}
