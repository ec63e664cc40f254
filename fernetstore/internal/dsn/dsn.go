// Package dsn holds what fernetstore.OpenDB and its database packages
// (sqlite, postgres, mysql) share to read a URL-style DSN without ever
// quoting its password: the schemes each package registers, the error for a
// DSN that is wrong and the check that a URL's host and database are not
// pieces of its password. It links no SQL driver and no network code
// (package connect has that), as fernetstore imports it.
package dsn

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"strings"

	secrets "github.com/keyward/secrets"
)

// backend is fernetstore.Backend (which imports this package).
const backend = "fernet"

// The schemes each database package registers, in lower case. Besides
// keyward's own, they are SQLAlchemy's dialect+driver names, so that a
// Python service's DATABASE_URL opens as it is; each package maps its
// driver's query parameters to the Go driver's.
var (
	SQLiteSchemes   = []string{"sqlite", "sqlite3", "file", "sqlite+pysqlite", "sqlite+aiosqlite"}
	PostgresSchemes = []string{"postgres", "postgresql", "postgresql+psycopg2", "postgresql+psycopg", "postgresql+asyncpg", "postgresql+pg8000"}
	MySQLSchemes    = []string{"mysql", "mariadb", "mysql+pymysql", "mysql+mysqldb", "mysql+aiomysql", "mysql+asyncmy", "mysql+mariadbconnector",
		"mariadb+pymysql", "mariadb+mysqldb", "mariadb+mariadbconnector"}
)

// Forms lists the DSN forms fernetstore.OpenDB accepts, for its errors.
var Forms = "accepted forms: sqlite:PATH, sqlite:///relative/path.db, sqlite:////absolute/path.db, sqlite:// or sqlite::memory: (in memory)" +
	" (also " + also(SQLiteSchemes, "sqlite") + "), " +
	"postgres://user@host:5432/db?sslmode=disable (also " + also(PostgresSchemes, "postgres") + "), " +
	"mysql://user@tcp(host:3306)/db?parseTime=true, mysql://user@host:3306/db (also " + also(MySQLSchemes, "mysql") + ")"

// also lists schemes but the first as "s1:, s2://, ...".
func also(schemes []string, first string) string {
	var b []string
	for _, s := range schemes {
		switch {
		case s == first:
		case s == "sqlite3" || s == "file":
			b = append(b, s+":")
		default:
			b = append(b, s+"://")
		}
	}
	return strings.Join(b, ", ")
}

// encodeHint ends the error for a URL that does not parse or is ambiguous:
// the usual cause is a password with a reserved character.
const encodeHint = "percent-encode '/', '?', '#', '@' and '%' in the user name and password (%2F, %3F, %23, %40, %25)"

// Error is the error for a DSN that cannot be opened: what is wrong, then the
// accepted forms. what must quote nothing of the DSN.
func Error(what string) error {
	return &secrets.Error{Op: "open database", Backend: backend, Code: secrets.CodeInvalidRef, Reason: what + "; " + Forms}
}

// NotFound is the error for a database that does not exist where the DSN
// says (a SQLite file): a configuration error, ErrInvalidRef, that also
// matches fs.ErrNotExist, so that a caller can tell it from a malformed DSN.
// what names the database and says how to fix it; it must quote nothing of
// the DSN but a file path.
func NotFound(what string) error {
	return &secrets.Error{Op: "open database", Backend: backend, Code: secrets.CodeInvalidRef, Err: notFound(what)}
}

// notFound is NotFound's cause: its text is the reason, and it is
// fs.ErrNotExist for errors.Is.
type notFound string

func (e notFound) Error() string        { return string(e) }
func (e notFound) Is(target error) bool { return target == fs.ErrNotExist }

// Query is a URL's query as its raw key=value pairs, in order, so that a
// database package can map, drop or add parameters and hand the others to
// its driver exactly as written.
type Query []string

// ParseQuery splits a raw query; it refuses one whose keys or values do not
// unescape. Its error quotes nothing.
func ParseQuery(kind, raw string) (Query, error) {
	if raw == "" {
		return nil, nil
	}
	if _, err := url.ParseQuery(raw); err != nil {
		return nil, Error(fmt.Sprintf("the %s URL's query does not parse (a '%%' not followed by two hexadecimal digits, or a ';')", kind))
	}
	return Query(strings.Split(raw, "&")), nil
}

// Key is the unescaped key of pair i.
func (q Query) Key(i int) string {
	k, _, _ := strings.Cut(q[i], "=")
	k, _ = url.QueryUnescape(k)
	return k
}

// Value is the unescaped value of pair i.
func (q Query) Value(i int) string {
	_, v, _ := strings.Cut(q[i], "=")
	v, _ = url.QueryUnescape(v)
	return v
}

// Index is the index of the last pair with key k, or -1.
func (q Query) Index(k string) int {
	for i := len(q) - 1; i >= 0; i-- {
		if q.Key(i) == k {
			return i
		}
	}
	return -1
}

// String is the query, raw, without the '?'.
func (q Query) String() string { return strings.Join(q, "&") }

// CheckURL parses a postgres:// or mysql:// URL and refuses one whose host
// or database might be a piece of its password: a password with an
// unencoded '/', '?' or '#' ends the authority early, so net/url (and the
// drivers, which use it) would take what follows for the path, the query or
// the fragment, and "u:1234/secret@db/x" would connect to host "u", port
// 1234, database "secret@db/x". An '@' anywhere past the authority, or any
// '#', is therefore refused. Errors quote nothing of the URL.
func CheckURL(kind, raw string) (*url.URL, error) {
	if !strings.HasPrefix(raw, kind+"://") {
		return nil, Error(fmt.Sprintf("a %s URL starts with %s://", kind, kind))
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error quotes the whole URL, and its causes quote the bad
		// part (an escape, a host, a port), which may be the password's.
		return nil, Error(fmt.Sprintf("the %s URL does not parse (%s); %s", kind, urlParseReason(err), encodeHint))
	}
	// What net/url took for the authority ends at the first '/', '?' or
	// '#'; every '@' of the user information must be before it.
	tail := raw[len(kind)+len("://"):]
	if i := strings.IndexAny(tail, "/?#"); i >= 0 {
		tail = tail[i:]
	} else {
		tail = ""
	}
	switch {
	case strings.Contains(tail, "#"):
		return nil, Error(fmt.Sprintf("the %s URL has a '#', which would end it there and leave the rest out (a %s URL has no fragment); %s", kind, kind, encodeHint))
	case strings.Contains(tail, "@"):
		return nil, Error(fmt.Sprintf("the %s URL has an '@' after its host, so part of the user information would be taken for the host or the database; %s", kind, encodeHint))
	}
	return u, nil
}

// urlParseReason names what net/url refused, without its text.
func urlParseReason(err error) string {
	var esc url.EscapeError
	var host url.InvalidHostError
	msg := err.Error()
	switch {
	case errors.As(err, &esc):
		return "a '%' not followed by two hexadecimal digits"
	case errors.As(err, &host):
		return "a character not allowed in the host"
	case strings.Contains(msg, "invalid port"):
		return "the port is not a number"
	case strings.Contains(msg, "missing ']'"):
		return "an IPv6 host without its closing ']'"
	case strings.Contains(msg, "invalid control character"):
		return "a control character"
	}
	return "malformed"
}
