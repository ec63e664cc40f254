package fernetstore

import (
	"database/sql"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/fernetstore/internal/dsn"
)

// databases maps a DSN scheme (lower case) to the opener a database package
// registered for it.
var databases struct {
	mu sync.RWMutex
	m  map[string]func(dsn string, o DBOptions) (*sql.DB, error)
}

// databasePackages names the package that registers each scheme, for the
// error when it was not imported.
var databasePackages = func() map[string]string {
	m := map[string]string{}
	for pkg, schemes := range map[string][]string{"sqlite": dsn.SQLiteSchemes, "postgres": dsn.PostgresSchemes, "mysql": dsn.MySQLSchemes} {
		for _, s := range schemes {
			m[s] = pkg
		}
	}
	return m
}()

// DBOptions says how OpenDBWith opens a database. A nil *DBOptions, like
// the zero value, is OpenDB's behaviour.
type DBOptions struct {
	// MustExist makes a database that does not exist an error instead of
	// creating it, for a program that only reads: its first connection
	// fails with an error that matches secrets.ErrInvalidRef (a
	// configuration error: retrying will not help) and fs.ErrNotExist, and
	// names the path. A SQLite file is opened with mode=rw, so that no
	// file is made, at the open or at the first query (mode=ro in the DSN
	// is kept; mode=rwc becomes rw). PostgreSQL and MySQL servers never
	// create a database on connect, so it changes nothing for them: their
	// missing database is the server's error (SQLSTATE 3D000, MySQL 1049).
	MustExist bool
}

// RegisterDatabase makes OpenDB, and so DATABASE_URL, open the URL-style
// DSNs of schemes with open, which receives the DSN with its scheme in lower
// case and the caller's options (the zero DBOptions for OpenDB). The
// packages fernetstore/sqlite, fernetstore/postgres and fernetstore/mysql
// call it from init, as a database/sql driver calls sql.Register: this
// package links no SQL driver, the host imports the one it uses. open must
// do no I/O, and its errors must never quote the DSN's password.
// RegisterDatabase panics if a scheme is not lower case or is registered
// twice, or if open is nil.
func RegisterDatabase(schemes []string, open func(dsn string, o DBOptions) (*sql.DB, error)) {
	if open == nil {
		panic("fernetstore: RegisterDatabase of a nil opener")
	}
	databases.mu.Lock()
	defer databases.mu.Unlock()
	if databases.m == nil {
		databases.m = map[string]func(string, DBOptions) (*sql.DB, error){}
	}
	for _, s := range schemes {
		if s != strings.ToLower(s) || !schemeRE.MatchString(s) {
			panic(fmt.Sprintf("fernetstore: RegisterDatabase of scheme %q: want a lower-case URL scheme", s))
		}
		if _, dup := databases.m[s]; dup {
			panic(fmt.Sprintf("fernetstore: database scheme %q registered twice", s))
		}
		databases.m[s] = open
	}
}

// OpenDB opens a database from a URL-style DSN, without connecting, with the
// database package the host imported for its scheme:
//
//	sqlite:PATH                     SQLite file (created on first write), WAL, busy timeout 10 s
//	sqlite:///relative/path.db      SQLAlchemy's form: relative to the working directory
//	sqlite:////absolute/path.db     SQLAlchemy's form: an absolute path
//	sqlite::memory:, sqlite://, sqlite:///:memory:   an in-memory SQLite database (one connection)
//	                                (fernetstore/sqlite; also sqlite3:PATH, file:PATH,
//	                                sqlite+pysqlite:///, sqlite+aiosqlite:///)
//	postgres://user@host:5432/db?sslmode=disable   (fernetstore/postgres; also postgresql://,
//	                                and SQLAlchemy's postgresql+psycopg2://, +psycopg://,
//	                                +asyncpg:// (its ssl= is sslmode=), +pg8000://)
//	mysql://user@tcp(host:3306)/db?parseTime=true  (fernetstore/mysql; go-sql-driver form after "mysql://")
//	mysql://user@host:3306/db                      (converted to the form above; also mariadb://,
//	                                and SQLAlchemy's mysql+pymysql://, +mysqldb://, +aiomysql://,
//	                                +asyncmy://, +mariadbconnector://, mariadb+pymysql://,
//	                                +mysqldb://, +mariadbconnector://, with their charset=,
//	                                connect_timeout=, unix_socket=, ssl_ca= ...)
//
// A Python service's SQLAlchemy URL (its DATABASE_URL) thus opens as it is;
// each database package documents the query parameters it maps. Another
// scheme (mssql+pyodbc://, oracle://, an unknown driver such as
// postgresql+foo://) is ErrInvalidRef with the accepted forms. A scheme
// whose package was not imported is ErrUnknownScheme, naming the package to
// import (github.com/keyward/secrets/all imports the three).
//
// The scheme is case-insensitive, as in every URL (RFC 3986, 3.1):
// Postgres:// and POSTGRESQL:// are postgres://. In a URL form, '/', '?', '#'
// and '@' in the user name or password must be percent-encoded (%2F, %3F,
// %23, %40); a URL that would otherwise be parsed with part of its password
// as the host or the database is refused.
//
// A DSN may hold a password, so errors never quote it: an error from OpenDB
// names what is wrong and the accepted forms; an error connecting to a
// database OpenDB opened names at most the host, port and database name
// (or a SQLite file's path), and describes the failure in fixed words,
// because the drivers' and the servers' own messages can quote the user
// name, the password or a parameter (PostgreSQL echoes a parameter it
// rejects). What a caller tests stays: errors.As finds a *pgconn.PgError
// with the server's SQLSTATE Code, a *mysql.MySQLError with its Number, a
// *net.OpError, and errors.Is a context error; only their message texts are
// replaced.
//
// For PostgreSQL, OpenDB parses the URL as pgx does, which reads the PG*
// environment variables and, if they are named, the password and certificate
// files; it still makes no connection.
//
// OpenDB creates a SQLite file that does not exist on its first connection;
// a program that only reads uses OpenDBWith and MustExist.
func OpenDB(dsn string) (*sql.DB, error) { return OpenDBWith(dsn, nil) }

// OpenDBWith is OpenDB with options; nil is OpenDB.
func OpenDBWith(dsn string, o *DBOptions) (*sql.DB, error) {
	var opts DBOptions
	if o != nil {
		opts = *o
	}
	open, normalized, err := database(dsn)
	if err != nil {
		return nil, err
	}
	return open(normalized, opts)
}

// database finds the opener for dsn's scheme, with no I/O, and returns dsn
// with its scheme in lower case. Its errors quote nothing of the DSN but a
// scheme-shaped scheme.
func database(raw string) (func(string, DBOptions) (*sql.DB, error), string, error) {
	scheme, rest, ok := strings.Cut(raw, ":")
	if !ok {
		return nil, "", dsn.Error("the database URL has no scheme")
	}
	lower := strings.ToLower(scheme)
	databases.mu.RLock()
	open := databases.m[lower]
	databases.mu.RUnlock()
	if open != nil {
		return open, lower + ":" + rest, nil
	}
	if pkg, known := databasePackages[lower]; known {
		return nil, "", &secrets.Error{Op: "open database", Backend: Backend, Code: secrets.CodeUnknownScheme,
			Reason: fmt.Sprintf("no database package is linked for %s: URLs (linked: %s); forgotten import? Add import _ %q to the program (or github.com/keyward/secrets/all, which links every database)",
				lower, linkedSchemes(), "github.com/keyward/secrets/fernetstore/"+pkg)}
	}
	// A scheme holds no credentials; what follows it may. A mixed-case
	// word is only taken for a scheme if "//" follows it, as a password
	// before a ':' seldom has.
	if schemeRE.MatchString(scheme) || (schemeRE.MatchString(lower) && strings.HasPrefix(rest, "//")) {
		what := fmt.Sprintf("unknown database URL scheme %q: keyward opens SQLite, PostgreSQL and MySQL or MariaDB", scheme)
		if dialect, driver, ok := strings.Cut(lower, "+"); ok {
			if _, known := databasePackages[dialect]; known {
				what = fmt.Sprintf("unknown database URL scheme %q: keyward does not know the SQLAlchemy driver %q of %s", scheme, driver, dialect)
			}
		}
		return nil, "", dsn.Error(what)
	}
	// Not scheme-shaped: what comes before the first ':' may be a
	// key=value DSN up to the middle of a password (password=Sup3r:Secret),
	// so none of it is quoted.
	return nil, "", dsn.Error("the DSN has no recognised scheme")
}

func linkedSchemes() string {
	databases.mu.RLock()
	defer databases.mu.RUnlock()
	if len(databases.m) == 0 {
		return "none"
	}
	return strings.Join(slices.Sorted(maps.Keys(databases.m)), ", ")
}

// schemeRE is what an unknown scheme must look like to be quoted in an error.
var schemeRE = regexp.MustCompile(`^[a-z][a-z0-9+.-]{0,31}$`)
