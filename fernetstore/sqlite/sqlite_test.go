package sqlite

import (
	"strings"
	"testing"
)

// TestForms: the driver DSN each form becomes (fernetstore.OpenDB hands the
// DSN over with its scheme in lower case).
func TestForms(t *testing.T) {
	for _, c := range []struct{ dsn, conn string }{
		{"sqlite::memory:", ":memory:"},
		{"sqlite:/tmp/k.db", "file:/tmp/k.db?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)"},
		{"sqlite:k.db?_pragma=busy_timeout(5)", "file:k.db?_pragma=busy_timeout(5)&_pragma=journal_mode(WAL)"},
		{"sqlite:///tmp/k.db", "file:/tmp/k.db?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)"},
		{"sqlite3:k.db?_pragma=journal_mode(DELETE)", "file:k.db?_pragma=journal_mode(DELETE)&_pragma=busy_timeout(10000)"},
		{"file:k.db", "file:k.db?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)"},
	} {
		conn, err := parse(c.dsn)
		if err != nil || conn != c.conn {
			t.Errorf("parse(%q) = %q, %v; want %q", c.dsn, conn, err, c.conn)
		}
	}
	if _, err := parse("sqlite:"); err == nil || !strings.Contains(err.Error(), "no path") || !strings.Contains(err.Error(), "sqlite:PATH") {
		t.Errorf("parse(sqlite:) = %v; want an error saying there is no path, with the forms", err)
	}
}

// TestMemoryIsOneConnection: each connection to :memory: is its own empty
// database, so the pool holds one.
func TestMemoryIsOneConnection(t *testing.T) {
	db, err := open("sqlite::memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if n := db.Stats().MaxOpenConnections; n != 1 {
		t.Fatalf("an in-memory database allows %d connections, want 1", n)
	}
}
