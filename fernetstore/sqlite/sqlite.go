// Package sqlite links the SQLite driver (modernc.org/sqlite, pure Go, no
// cgo) for fernetstore. Importing it makes fernetstore.OpenDB, and so the
// fernet:// backend's DATABASE_URL, open these DSNs:
//
//	sqlite:PATH                  a SQLite file (created on first write), WAL, busy timeout 10 s
//	sqlite:///relative/path.db   SQLAlchemy's form: relative to the working directory
//	sqlite:////absolute/path.db  SQLAlchemy's form: an absolute path
//	sqlite::memory:              an in-memory database (one connection); also
//	                             SQLAlchemy's sqlite:// and sqlite:///:memory:
//	sqlite3:PATH, sqlite3://PATH, file:PATH (a SQLite URI),
//	sqlite+pysqlite:///..., sqlite+aiosqlite:///... (as sqlite:///...)
//
// sqlite:///PATH is read as SQLAlchemy reads it, so that a Python service's
// DATABASE_URL opens the same file: three slashes and a relative path, four
// for an absolute one, the path taken literally (no percent-decoding). A
// query after PATH is passed to the driver (sqlite:k.db?_pragma=...); a
// busy_timeout or journal_mode given there replaces the default. In
// SQLAlchemy's form, pysqlite's own parameters are read as Python's sqlite3
// module reads them: timeout=SECONDS is the busy timeout, check_same_thread,
// isolation_level, detect_types and cached_statements are dropped (they
// configure the Python module), and with uri=true the path is a SQLite URI
// (sqlite:///file:app.db?mode=ro&uri=true) whose other parameters go to
// SQLite. sqlite://PATH (two slashes, not SQLAlchemy's: it refuses a host)
// stays a relative path, as sqlite:PATH. The scheme is case-insensitive.
//
// With fernetstore.DBOptions.MustExist the file is opened with mode=rw, so
// that it is never created; a missing file, or a missing directory in any
// mode, fails the first connection with an error that matches
// secrets.ErrInvalidRef and fs.ErrNotExist and names the path.
//
//	import _ "github.com/keyward/secrets/fernetstore/sqlite"
package sqlite

import (
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/keyward/secrets/fernetstore"
	"github.com/keyward/secrets/fernetstore/internal/connect"
	"github.com/keyward/secrets/fernetstore/internal/dsn"
)

func init() { fernetstore.RegisterDatabase(dsn.SQLiteSchemes, open) }

func open(raw string, o fernetstore.DBOptions) (*sql.DB, error) {
	t, err := parse(raw, o.MustExist)
	if err != nil {
		return nil, err
	}
	// SQLite has no credentials, and its errors name the file at most.
	c, err := sqlite.NewConnector(t.conn)
	if err != nil {
		return nil, dsn.Error("the sqlite driver rejected the path or its query")
	}
	db := sql.OpenDB(&connect.Connector{Connector: c, Where: t.path, Describe: t.openError})
	if t.memory {
		// Each connection to ":memory:" is a separate empty database.
		db.SetMaxOpenConns(1)
	}
	return db, nil
}

// target is what a DSN opens.
type target struct {
	conn   string // the driver's DSN
	path   string // the file, as SQLite resolves it (a relative one from the working directory); "" in memory
	memory bool
}

// parse maps a DSN whose scheme is in lower case to the driver's DSN.
func parse(raw string, mustExist bool) (target, error) {
	scheme, rest, _ := strings.Cut(raw, ":")
	var path, query string
	var file string // the file's path, if path is not its URI-escaped form
	switch {
	case scheme == "file":
		path, query, _ = strings.Cut(rest, "?")
	case scheme != "sqlite3" && (rest == "//" || strings.HasPrefix(rest, "//?")):
		// SQLAlchemy's sqlite://: in memory.
		return target{conn: ":memory:", memory: true}, nil
	case scheme != "sqlite3" && strings.HasPrefix(rest, "///"):
		t, p, q, err := sqlalchemy(rest[len("///"):])
		if err != nil || t.memory {
			return t, err
		}
		path, query, file = p, q, t.path
	default:
		path, query, _ = strings.Cut(strings.TrimPrefix(rest, "//"), "?")
	}
	if path == "" {
		return target{}, dsn.Error("the sqlite URL has no path")
	}
	q := dsn.Query(nil)
	if query != "" {
		q = strings.Split(query, "&")
	}
	if path == ":memory:" || q.Index("mode") >= 0 && q.Value(q.Index("mode")) == "memory" {
		if query == "" {
			return target{conn: ":memory:", memory: true}, nil
		}
		return target{conn: "file:" + path + "?" + query, memory: true}, nil
	}
	if file == "" {
		file = uriPath(path)
	}
	// Two processes (the service and a `keyward rotate`) share the file:
	// WAL lets readers run during a write, the busy timeout makes a
	// writer wait for the other's transaction instead of failing.
	if !has(q, "busy_timeout", "_timeout") {
		q = append(q, "_pragma=busy_timeout(10000)")
	}
	if !has(q, "journal_mode", "_journal") {
		q = append(q, "_pragma=journal_mode(WAL)")
	}
	if mustExist {
		// SQLite's own URI parameter: open read-write, never create.
		switch i := q.Index("mode"); {
		case i < 0:
			q = append(q, "mode=rw")
		case q.Value(i) == "rwc":
			q[i] = "mode=rw"
		}
	}
	return target{conn: "file:" + path + "?" + q.String(), path: file}, nil
}

// sqlalchemy reads the part of a sqlite:///... URL after its three slashes
// as SQLAlchemy's pysqlite dialect does (create_connect_args): the database
// is the literal path up to the first '?', "" and ":memory:" are in memory,
// and with uri=true it is a SQLite URI. It returns the path URI-escaped,
// the query the driver gets, and the file in t.path.
func sqlalchemy(s string) (t target, path, query string, err error) {
	db, raw, _ := strings.Cut(s, "?")
	q, err := dsn.ParseQuery("sqlite", raw)
	if err != nil {
		return target{}, "", "", err
	}
	uri := false
	var kept dsn.Query
	var timeout string
	for i := range q {
		switch k := q.Key(i); k {
		case "uri":
			uri, _ = strconv.ParseBool(q.Value(i))
		case "timeout":
			timeout = q.Value(i)
		case "check_same_thread", "isolation_level", "detect_types", "cached_statements":
			// Options of Python's sqlite3 module, not of the database.
		default:
			kept = append(kept, q[i])
		}
	}
	if timeout != "" && !has(kept, "busy_timeout", "_timeout") {
		sec, err := strconv.ParseFloat(timeout, 64)
		if err != nil || sec < 0 || sec > math.MaxInt32/1000 || math.IsNaN(sec) {
			return target{}, "", "", dsn.Error("the sqlite URL's timeout is not a number of seconds")
		}
		kept = append(kept, fmt.Sprintf("_pragma=busy_timeout(%d)", int64(math.Ceil(sec*1000))))
	}
	if uri && strings.HasPrefix(db, "file:") {
		p := strings.TrimPrefix(db, "file:")
		if p == ":memory:" || p == "" {
			return target{conn: "file::memory:?" + kept.String(), memory: true}, "", "", nil
		}
		return target{path: uriPath(p)}, p, kept.String(), nil
	}
	if db == "" || db == ":memory:" {
		return target{conn: ":memory:", memory: true}, "", "", nil
	}
	// Python opens the path as it is: '%' and '#' are characters of the
	// name, not escapes or a fragment, in the URI the driver gets.
	path = strings.NewReplacer("%", "%25", "#", "%23", "?", "%3F").Replace(db)
	if strings.HasPrefix(path, "//") {
		// "file://x" would be a URI with host x.
		path = "//" + path
	}
	return target{path: db}, path, kept.String(), nil
}

// uriPath is the file a SQLite URI's path names: without an authority
// (file:///x and file://localhost/x are /x), percent-decoded.
func uriPath(p string) string {
	if rest, ok := strings.CutPrefix(p, "//"); ok {
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			p = rest[i:]
		} else {
			p = ""
		}
	}
	if u, err := url.PathUnescape(p); err == nil {
		return u
	}
	return p
}

// has reports whether a pair of q sets a PRAGMA named by one of words, in a
// _pragma value or as one of the driver's keys.
func has(q dsn.Query, words ...string) bool {
	for i := range q {
		for _, w := range words {
			if strings.Contains(q.Key(i)+"="+q.Value(i), w) {
				return true
			}
		}
	}
	return false
}

// openError turns SQLite's "unable to open database file" into a
// configuration error naming the file when the file or its directory does
// not exist (the path holds no password, and names what to fix); other
// errors are SQLite's own.
func (t target) openError(_ string, err error) error {
	var se *sqlite.Error
	if t.path == "" || !errors.As(err, &se) || se.Code()&0xff != sqlite3.SQLITE_CANTOPEN {
		return err
	}
	abs, aerr := filepath.Abs(t.path)
	if aerr != nil {
		abs = t.path
	}
	where := abs
	if !filepath.IsAbs(t.path) {
		where = fmt.Sprintf("%s (%s, relative to the working directory)", abs, t.path)
	}
	if _, serr := os.Stat(filepath.Dir(abs)); errors.Is(serr, fs.ErrNotExist) {
		return dsn.NotFound(fmt.Sprintf("no SQLite database at %s: its directory does not exist; check DATABASE_URL (sqlite:///relative.db is relative to the working directory, sqlite:////absolute.db absolute)", where))
	}
	if _, serr := os.Stat(abs); errors.Is(serr, fs.ErrNotExist) {
		return dsn.NotFound(fmt.Sprintf("no SQLite database at %s; check DATABASE_URL (sqlite:///relative.db is relative to the working directory, sqlite:////absolute.db absolute); keyward init creates it", where))
	}
	return err
}
