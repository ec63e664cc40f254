package sqlite

import (
	"strings"
	"testing"

	"github.com/keyward/secrets/fernetstore"
)

// TestForms: the driver DSN each form becomes (fernetstore.OpenDB hands the
// DSN over with its scheme in lower case).
func TestForms(t *testing.T) {
	const defaults = "_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)"
	for _, c := range []struct{ dsn, conn, path string }{
		{"sqlite::memory:", ":memory:", ""},
		{"sqlite:/tmp/k.db", "file:/tmp/k.db?" + defaults, "/tmp/k.db"},
		{"sqlite:k.db?_pragma=busy_timeout(5)", "file:k.db?_pragma=busy_timeout(5)&_pragma=journal_mode(WAL)", "k.db"},
		{"sqlite:busy_timeout.db", "file:busy_timeout.db?" + defaults, "busy_timeout.db"},
		{"sqlite://k.db", "file:k.db?" + defaults, "k.db"},
		{"sqlite3:k.db?_pragma=journal_mode(DELETE)", "file:k.db?_pragma=journal_mode(DELETE)&_pragma=busy_timeout(10000)", "k.db"},
		{"sqlite3:///tmp/k.db", "file:/tmp/k.db?" + defaults, "/tmp/k.db"},
		{"file:k.db", "file:k.db?" + defaults, "k.db"},
		{"file:///tmp/a%20b.db?mode=ro", "file:///tmp/a%20b.db?mode=ro&" + defaults, "/tmp/a b.db"},
		// SQLAlchemy's: three slashes and a relative path (this used to
		// be /tmp/k.db), four for an absolute one.
		{"sqlite:///tmp/k.db", "file:tmp/k.db?" + defaults, "tmp/k.db"},
		{"sqlite:///./app.db", "file:./app.db?" + defaults, "./app.db"},
		{"sqlite:////tmp/k.db", "file:/tmp/k.db?" + defaults, "/tmp/k.db"},
		{"sqlite://///tmp/k.db", "file:////tmp/k.db?" + defaults, "//tmp/k.db"},
		{"sqlite+pysqlite:///app.db", "file:app.db?" + defaults, "app.db"},
		{"sqlite+aiosqlite:////srv/app.db", "file:/srv/app.db?" + defaults, "/srv/app.db"},
		// Python opens the path literally.
		{"sqlite:///a%20b#1.db", "file:a%2520b%231.db?" + defaults, "a%20b#1.db"},
		{"sqlite:///app.db?timeout=2.5&check_same_thread=False", "file:app.db?_pragma=busy_timeout(2500)&_pragma=journal_mode(WAL)", "app.db"},
		{"sqlite:///app.db?_pragma=foreign_keys(1)", "file:app.db?_pragma=foreign_keys(1)&" + defaults, "app.db"},
		{"sqlite:///file:app.db?mode=ro&uri=true", "file:app.db?mode=ro&" + defaults, "app.db"},
		{"sqlite://", ":memory:", ""},
		{"sqlite:///", ":memory:", ""},
		{"sqlite:///:memory:", ":memory:", ""},
		{"sqlite+pysqlite://", ":memory:", ""},
		{"sqlite:///file::memory:?cache=shared&uri=true", "file::memory:?cache=shared", ""},
	} {
		tg, err := parse(c.dsn, false)
		if err != nil || tg.conn != c.conn || tg.path != c.path || tg.memory != (c.path == "") {
			t.Errorf("parse(%q) = %+v, %v; want %q for %q", c.dsn, tg, err, c.conn, c.path)
		}
	}
	for _, bad := range []string{"sqlite:", "sqlite3://", "file:"} {
		if _, err := parse(bad, false); err == nil || !strings.Contains(err.Error(), "no path") || !strings.Contains(err.Error(), "sqlite:PATH") {
			t.Errorf("parse(%s) = %v; want an error saying there is no path, with the forms", bad, err)
		}
	}
	for _, bad := range []string{"sqlite:///app.db?timeout=soon", "sqlite:///app.db?timeout=-1", "sqlite:///app.db?x=%zz"} {
		if _, err := parse(bad, false); err == nil || !strings.Contains(err.Error(), "sqlite:///") {
			t.Errorf("parse(%s) = %v; want an error with the forms", bad, err)
		}
	}
}

// TestMustExistForms: a database that must exist is opened with mode=rw,
// which SQLite never creates; a read-only mode stays, rwc becomes rw.
func TestMustExistForms(t *testing.T) {
	const defaults = "_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)"
	for _, c := range []struct{ dsn, conn string }{
		{"sqlite:k.db", "file:k.db?" + defaults + "&mode=rw"},
		{"sqlite:///k.db", "file:k.db?" + defaults + "&mode=rw"},
		{"file:k.db?mode=ro", "file:k.db?mode=ro&" + defaults},
		{"file:k.db?mode=rwc", "file:k.db?mode=rw&" + defaults},
		{"sqlite::memory:", ":memory:"},
	} {
		tg, err := parse(c.dsn, true)
		if err != nil || tg.conn != c.conn {
			t.Errorf("parse(%q, must exist) = %q, %v; want %q", c.dsn, tg.conn, err, c.conn)
		}
	}
}

// TestMemoryIsOneConnection: each connection to :memory: is its own empty
// database, so the pool holds one.
func TestMemoryIsOneConnection(t *testing.T) {
	for _, dsn := range []string{"sqlite::memory:", "sqlite://", "sqlite:///:memory:", "file::memory:?cache=private"} {
		db, err := open(dsn, fernetstore.DBOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if n := db.Stats().MaxOpenConnections; n != 1 {
			t.Errorf("%s: an in-memory database allows %d connections, want 1", dsn, n)
		}
		db.Close()
	}
}
