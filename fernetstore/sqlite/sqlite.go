// Package sqlite links the SQLite driver (modernc.org/sqlite, pure Go, no
// cgo) for fernetstore. Importing it makes fernetstore.OpenDB, and so the
// fernet:// backend's DATABASE_URL, open these DSNs:
//
//	sqlite:PATH        a SQLite file (created on first write), WAL, busy timeout 10 s
//	sqlite::memory:    an in-memory database (one connection)
//	sqlite3:PATH, file:PATH, sqlite://PATH
//
// A query after PATH is passed to the driver (sqlite:k.db?_pragma=...); a
// busy_timeout or journal_mode given there replaces the default. The scheme
// is case-insensitive.
//
//	import _ "github.com/keyward/secrets/fernetstore/sqlite"
package sqlite

import (
	"database/sql"
	"strings"

	_ "modernc.org/sqlite" // database/sql driver "sqlite"

	"github.com/keyward/secrets/fernetstore"
	"github.com/keyward/secrets/fernetstore/internal/dsn"
)

func init() { fernetstore.RegisterDatabase([]string{"sqlite", "sqlite3", "file"}, open) }

func open(raw string) (*sql.DB, error) {
	conn, err := parse(raw)
	if err != nil {
		return nil, err
	}
	// SQLite has no credentials, and its errors name the file at most.
	db, err := sql.Open("sqlite", conn)
	if err != nil {
		return nil, dsn.Error("the sqlite driver rejected the path")
	}
	if conn == ":memory:" || strings.HasPrefix(conn, ":memory:?") || strings.Contains(conn, "mode=memory") {
		// Each connection to ":memory:" is a separate empty database.
		db.SetMaxOpenConns(1)
	}
	return db, nil
}

// parse maps a DSN whose scheme is in lower case to the driver's DSN.
func parse(raw string) (string, error) {
	scheme, rest, _ := strings.Cut(raw, ":")
	path := rest
	if scheme != "file" {
		path = strings.TrimPrefix(rest, "//")
	}
	if path == "" {
		return "", dsn.Error("the sqlite URL has no path")
	}
	if path == ":memory:" {
		return ":memory:", nil
	}
	// Two processes (the service and a `keyward rotate`) share the file:
	// WAL lets readers run during a write, the busy timeout makes a
	// writer wait for the other's transaction instead of failing.
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	if !strings.Contains(path, "busy_timeout") {
		path += sep + "_pragma=busy_timeout(10000)"
		sep = "&"
	}
	if !strings.Contains(path, "journal_mode") {
		path += sep + "_pragma=journal_mode(WAL)"
	}
	return "file:" + path, nil
}
