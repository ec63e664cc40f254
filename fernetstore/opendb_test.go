package fernetstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/internal/testenv"
)

// The words a DSN in these tests carries that no error may repeat: the
// password, the user name, and the name of an unknown query parameter
// (servers echo the parameters they reject).
const (
	dsnCanary      = "CANARYPW-7f3a"
	dsnCanaryUser  = "canaryuser"
	dsnCanaryParam = "canaryparam"
)

// errorTexts returns every text err shows: its message, its %+v and %#v, and
// the same for each error in its chain, plus the fields of a PostgreSQL or
// MySQL error, which a caller reaches with errors.As.
func errorTexts(err error) []string {
	var texts []string
	var walk func(error)
	walk = func(e error) {
		if e == nil {
			return
		}
		texts = append(texts, e.Error(), fmt.Sprintf("%+v", e), fmt.Sprintf("%#v", e))
		var pg *pgconn.PgError
		if errors.As(e, &pg) {
			texts = append(texts, fmt.Sprintf("%#v", *pg))
		}
		var my *mysql.MySQLError
		if errors.As(e, &my) {
			texts = append(texts, fmt.Sprintf("%#v", *my))
		}
		switch u := e.(type) {
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		case interface{ Unwrap() []error }:
			for _, c := range u.Unwrap() {
				walk(c)
			}
		}
	}
	walk(err)
	return texts
}

// assertNoDSNLeak fails t if any text of err holds a canary word.
func assertNoDSNLeak(t *testing.T, what string, err error) {
	t.Helper()
	all := strings.ToLower(strings.Join(errorTexts(err), "\n"))
	for _, w := range []string{dsnCanary, dsnCanaryUser, dsnCanaryParam} {
		if strings.Contains(all, strings.ToLower(w)) {
			// The text itself is not printed: it holds the canary.
			t.Errorf("%s: the error shows a part of the DSN (%q)", what, w)
		}
	}
}

// shown is err's text for a test failure, unless it holds a canary word:
// a failing test must not print what it guards.
func shown(err error) string {
	text := err.Error()
	for _, w := range []string{dsnCanary, dsnCanaryUser, dsnCanaryParam} {
		if strings.Contains(strings.ToLower(text), strings.ToLower(w)) {
			return fmt.Sprintf("(%v; text withheld: it holds a part of the DSN)", secrets.CodeOf(err))
		}
	}
	return text
}

// withScheme replaces the scheme of a URL-form DSN and, if user is not
// empty, sets its user information to user:password.
func withScheme(t *testing.T, dsn, scheme, user, password string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("the test DSN does not parse: %v", err)
	}
	if user != "" {
		u.User = url.UserPassword(user, password)
	}
	_, rest, _ := strings.Cut(u.String(), "://")
	return scheme + "://" + rest
}

// TestOpenDBSchemeIsCaseInsensitive: URL schemes are case-insensitive (RFC
// 3986, 3.1). Postgres:// used to reach pgx unchanged, which took it for a
// keyword=value string, connected to the default local server and sent the
// whole URL as a parameter name; the server's error then quoted it, password
// and all. Each spelling must reach the configured server and database.
func TestOpenDBSchemeIsCaseInsensitive(t *testing.T) {
	ctx := context.Background()
	t.Run("postgres", func(t *testing.T) {
		base := testenv.PostgresDSN(t)
		u, _ := url.Parse(base)
		for _, scheme := range []string{"Postgres", "POSTGRES", "PostgreSQL", "postgresql", "postgres"} {
			// The test server trusts local connections, so the password is
			// sent nowhere that checks it; it is there to be leaked.
			dsn := withScheme(t, base, scheme, u.User.Username(), dsnCanary)
			db, err := OpenDB(dsn)
			if err != nil {
				assertNoDSNLeak(t, scheme, err)
				t.Fatalf("%s: %s", scheme, shown(err))
			}
			var dbName string
			var addr sql.NullString
			err = db.QueryRowContext(ctx, "SELECT current_database(), host(inet_server_addr())").Scan(&dbName, &addr)
			db.Close()
			if err != nil {
				assertNoDSNLeak(t, scheme, err)
				t.Fatalf("%s://: %s", scheme, shown(err))
			}
			// inet_server_addr is NULL over a Unix socket: 127.0.0.1 proves
			// the URL's host was used, not pgx's default.
			if want := strings.TrimPrefix(u.Path, "/"); dbName != want || addr.String != u.Hostname() {
				t.Errorf("%s://: connected to database %q at %q, want %q at %s", scheme, dbName, addr.String, want, u.Hostname())
			}
		}
	})
	t.Run("mysql", func(t *testing.T) {
		base := testenv.MySQLDSN(t)
		for _, scheme := range []string{"MySQL", "MYSQL", "MariaDB"} {
			db, err := OpenDB(scheme + "://" + base)
			if err != nil {
				t.Fatalf("%s: %v", scheme, err)
			}
			var dbName string
			err = db.QueryRowContext(ctx, "SELECT DATABASE()").Scan(&dbName)
			db.Close()
			if err != nil {
				t.Fatalf("%s://: %v", scheme, err)
			}
			if cfg, _ := mysql.ParseDSN(base); dbName != cfg.DBName {
				t.Errorf("%s://: connected to database %q, want %q", scheme, dbName, cfg.DBName)
			}
		}
	})
	t.Run("sqlite", func(t *testing.T) {
		for _, dsn := range []string{"SQLITE:" + filepath.Join(t.TempDir(), "a.db"), "SQLite::memory:", "Sqlite3:" + filepath.Join(t.TempDir(), "b.db")} {
			db, err := OpenDB(dsn)
			if err != nil {
				t.Fatalf("%s: %v", dsn, err)
			}
			d, err := DetectDialect(db)
			if err == nil {
				err = db.PingContext(ctx)
			}
			db.Close()
			if err != nil || d != SQLite {
				t.Fatalf("%s: dialect %q, %v", dsn, d, err)
			}
		}
	})
}

// TestOpenDBErrorsHideTheDSN: no error from OpenDB, from a store's first use
// of the database it opened, or from NewFromEnv's, shows the password, the
// user name or an unknown parameter of the DSN, whether the DSN is
// malformed, ambiguous, unreachable or refused by the server. The codes stay:
// a bad DSN is ErrInvalidRef, a failed connection ErrUnavailable with the
// server's error code reachable through errors.As.
func TestOpenDBErrorsHideTheDSN(t *testing.T) {
	pgBase, myBase := testenv.PostgresDSN(t), testenv.MySQLDSN(t)
	pgURL, _ := url.Parse(pgBase)
	pgHost, pgDB, pgUser := pgURL.Host, strings.TrimPrefix(pgURL.Path, "/"), pgURL.User.Username()
	myCfg, err := mysql.ParseDSN(myBase)
	if err != nil {
		t.Fatal(err)
	}
	myHost, myDB := myCfg.Addr, myCfg.DBName
	cu, pw := dsnCanaryUser, dsnCanary
	cases := []struct {
		name, dsn string
		code      secrets.Code // of OpenDB, or of Ping when OpenDB succeeds
		pgCode    string       // the SQLSTATE errors.As finds, if any
		myNumber  uint16       // the MySQL error number errors.As finds, if any
	}{
		// The case, with a user the server lacks so that it fails
		// even once the scheme is understood.
		{"mixed-case scheme", "Postgres://" + cu + ":" + pw + "@" + pgHost + "/" + pgDB + "?sslmode=disable", secrets.CodeUnavailable, "28000", 0},
		{"unknown role", "postgres://" + cu + ":" + pw + "@" + pgHost + "/" + pgDB + "?sslmode=disable", secrets.CodeUnavailable, "28000", 0},
		{"unknown parameter", "postgres://" + pgUser + ":" + pw + "@" + pgHost + "/" + pgDB + "?sslmode=disable&" + dsnCanaryParam + "=1", secrets.CodeUnavailable, "42704", 0},
		{"unknown database", "postgres://" + pgUser + ":" + pw + "@" + pgHost + "/nosuchdb_keyward?sslmode=disable", secrets.CodeUnavailable, "3D000", 0},
		{"unreachable", "postgres://" + cu + ":" + pw + "@127.0.0.1:1/" + pgDB + "?sslmode=disable&connect_timeout=5", secrets.CodeUnavailable, "", 0},
		{"unresolvable host", "postgres://" + cu + ":" + pw + "@no-such-host.invalid/" + pgDB + "?sslmode=disable&connect_timeout=5", secrets.CodeUnavailable, "", 0},
		{"bad sslmode", "postgres://" + cu + ":" + pw + "@" + pgHost + "/" + pgDB + "?sslmode=" + dsnCanaryParam, secrets.CodeInvalidRef, "", 0},
		{"bad port", "postgres://" + cu + ":" + pw + "@" + pgURL.Hostname() + ":x" + dsnCanaryParam + "/" + pgDB, secrets.CodeInvalidRef, "", 0},
		{"unclosed IPv6 host", "postgres://" + cu + ":" + pw + "@[::1", secrets.CodeInvalidRef, "", 0},
		{"bad escape", "postgres://" + cu + ":" + pw + "%zz@" + pgHost + "/" + pgDB, secrets.CodeInvalidRef, "", 0},
		// A password with an unencoded '/' or '#': the host and database
		// would be parsed out of the password (pgx would look up the user
		// name as a host and use the password's tail as the database).
		{"slash in password", "postgres://" + cu + ":1234/" + pw + "@" + pgHost + "/" + pgDB + "?sslmode=disable", secrets.CodeInvalidRef, "", 0},
		{"hash in password", "postgres://" + cu + ":12#" + pw + "@" + pgHost + "/" + pgDB, secrets.CodeInvalidRef, "", 0},
		{"at and slash in password", "postgres://" + cu + ":a@b/" + pw + "@" + pgHost + "/" + pgDB, secrets.CodeInvalidRef, "", 0},
		{"no slashes", "postgres:" + cu + ":" + pw + "@" + pgHost, secrets.CodeInvalidRef, "", 0},
		{"keyword=value", "host=127.0.0.1 user=" + cu + " password=" + pw, secrets.CodeInvalidRef, "", 0},
		{"keyword=value with a colon", "host=127.0.0.1 user=" + cu + " password=" + pw + ":x", secrets.CodeInvalidRef, "", 0},
		{"mysql access denied", "mysql://" + cu + ":" + pw + "@" + myHost + "/" + myDB, secrets.CodeUnavailable, "", 1045},
		{"mysql access denied, driver form", "MySQL://" + cu + ":" + pw + "@tcp(" + myHost + ")/" + myDB, secrets.CodeUnavailable, "", 1045},
		{"mysql unknown parameter", "mysql://" + myCfg.User + "@" + myHost + "/" + myDB + "?" + dsnCanaryParam + "=1", secrets.CodeUnavailable, "", 1193},
		{"mysql unreachable", "mysql://" + cu + ":" + pw + "@tcp(127.0.0.1:1)/" + myDB + "?timeout=5s", secrets.CodeUnavailable, "", 0},
		{"mysql slash in password", "mysql://" + cu + ":12/" + pw + "@" + myHost + "/" + myDB, secrets.CodeInvalidRef, "", 0},
		{"mysql unclosed IPv6 host", "MySQL://" + cu + ":" + pw + "@[::1", secrets.CodeInvalidRef, "", 0},
		{"mysql bad driver DSN", "mysql://" + cu + ":" + pw + "@tcp(" + myHost + ")/" + myDB + "?timeout=" + dsnCanaryParam, secrets.CodeInvalidRef, "", 0},
		{"unknown scheme", "oracle://" + cu + ":" + pw + "@h/x", secrets.CodeInvalidRef, "", 0},
		// SQLAlchemy's forms (a Python service's DATABASE_URL).
		{"psycopg2 unknown role", "postgresql+psycopg2://" + cu + ":" + pw + "@" + pgHost + "/" + pgDB + "?sslmode=disable", secrets.CodeUnavailable, "28000", 0},
		{"psycopg unknown database over TLS", "postgresql+psycopg://" + pgUser + ":" + pw + "@" + pgHost + "/nosuchdb_keyward?sslmode=require", secrets.CodeUnavailable, "3D000", 0},
		{"pg8000 unknown parameter", "postgresql+pg8000://" + pgUser + ":" + pw + "@" + pgHost + "/" + pgDB + "?sslmode=disable&" + dsnCanaryParam + "=1", secrets.CodeUnavailable, "42704", 0},
		{"asyncpg unknown role", "PostgreSQL+AsyncPG://" + cu + ":" + pw + "@" + pgHost + "/" + pgDB + "?ssl=require&prepared_statement_cache_size=0", secrets.CodeUnavailable, "28000", 0},
		{"asyncpg bad ssl", "postgresql+asyncpg://" + cu + ":" + pw + "@" + pgHost + "/" + pgDB + "?ssl=" + dsnCanaryParam, secrets.CodeInvalidRef, "", 0},
		{"asyncpg bad timeout", "postgresql+asyncpg://" + cu + ":" + pw + "@" + pgHost + "/" + pgDB + "?timeout=" + dsnCanaryParam, secrets.CodeInvalidRef, "", 0},
		{"asyncpg ssl and sslmode", "postgresql+asyncpg://" + cu + ":" + pw + "@" + pgHost + "/" + pgDB + "?ssl=require&sslmode=disable", secrets.CodeInvalidRef, "", 0},
		{"asyncpg slash in password", "postgresql+asyncpg://" + cu + ":1234/" + pw + "@" + pgHost + "/" + pgDB, secrets.CodeInvalidRef, "", 0},
		{"unknown SQLAlchemy driver", "postgresql+foo://" + cu + ":" + pw + "@" + pgHost + "/" + pgDB, secrets.CodeInvalidRef, "", 0},
		{"unknown SQLAlchemy dialect", "mssql+pyodbc://" + cu + ":" + pw + "@h/x?driver=ODBC+Driver+18", secrets.CodeInvalidRef, "", 0},
		{"pymysql access denied", "mysql+pymysql://" + cu + ":" + pw + "@" + myHost + "/" + myDB + "?charset=utf8mb4", secrets.CodeUnavailable, "", 1045},
		{"mariadbconnector access denied", "MariaDB+MariaDBConnector://" + cu + ":" + pw + "@" + myHost + "/" + myDB, secrets.CodeUnavailable, "", 1045},
		{"mysqldb unknown database", "mysql+mysqldb://" + myCfg.User + "@" + myHost + "/nosuchdb_keyward?charset=utf8mb4&connect_timeout=5", secrets.CodeUnavailable, "", 1049},
		{"pymysql refused parameter", "mysql+pymysql://" + cu + ":" + pw + "@" + myHost + "/" + myDB + "?init_command=" + dsnCanaryParam, secrets.CodeInvalidRef, "", 0},
		{"pymysql bad connect_timeout", "mysql+pymysql://" + cu + ":" + pw + "@" + myHost + "/" + myDB + "?connect_timeout=" + dsnCanaryParam, secrets.CodeInvalidRef, "", 0},
		{"pymysql TLS to a server without it", "mysql+pymysql://" + cu + ":" + pw + "@" + myHost + "/" + myDB + "?ssl_ca=/nonexistent/ca.pem", secrets.CodeUnavailable, "", 0},
		{"pymysql missing socket", "mysql+pymysql://" + cu + ":" + pw + "@/" + myDB + "?unix_socket=/nonexistent/mysqld.sock", secrets.CodeUnavailable, "", 0},
		{"pymysql slash in password", "mysql+pymysql://" + cu + ":12/" + pw + "@" + myHost + "/" + myDB, secrets.CodeInvalidRef, "", 0},
		{"pymysql driver form", "mysql+pymysql://" + cu + ":" + pw + "@tcp(" + myHost + ")/" + myDB, secrets.CodeInvalidRef, "", 0},
		{"sqlalchemy sqlite bad timeout", "sqlite:///k.db?timeout=" + dsnCanaryParam, secrets.CodeInvalidRef, "", 0},
	}
	ring := mustRing(t, mustKey(t))
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			check := func(what string, err error) {
				t.Helper()
				if err == nil {
					t.Fatalf("%s: no error", what)
				}
				assertNoDSNLeak(t, what, err)
				// database/sql's own errors carry no code; the store's do.
				if got := secrets.CodeOf(err); what != "Ping" && got != c.code {
					t.Errorf("%s: code %v, want %v", what, got, c.code)
				}
				var pg *pgconn.PgError
				if c.pgCode != "" && (!errors.As(err, &pg) || pg.Code != c.pgCode) {
					t.Errorf("%s: errors.As finds no PostgreSQL error with SQLSTATE %s", what, c.pgCode)
				}
				var my *mysql.MySQLError
				if c.myNumber != 0 && (!errors.As(err, &my) || my.Number != c.myNumber) {
					t.Errorf("%s: errors.As finds no MySQL error %d", what, c.myNumber)
				}
			}
			db, err := OpenDB(c.dsn)
			if err != nil {
				check("OpenDB", err)
			} else {
				defer db.Close()
				check("Ping", db.PingContext(ctx))
				s := New(db, ring, nil)
				check("Store.Ping", s.Ping(ctx))
				_, err := s.Resolve(ctx, "1")
				check("Store.Resolve", err)
			}
			// The URL opener's store opens DATABASE_URL on first use.
			t.Setenv(EnvDatabaseURL, c.dsn)
			t.Setenv(EnvKey, mustKey(t))
			s := NewFromEnv(nil)
			defer s.Close()
			check("NewFromEnv Ping", s.Ping(ctx))
		})
	}
}

// TestPostgresWithoutTLS: sslmode=require (asyncpg's ssl=require) reaches
// pgx, and a server that answers "no" to SSL is refused with an error that
// says so (it used to be a bare "*errors.errorString"), quoting nothing of
// the URL. The server here is a listener that refuses every SSLRequest.
func TestPostgresWithoutTLS(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				req := make([]byte, 8) // length and the SSLRequest code
				if _, err := io.ReadFull(c, req); err == nil {
					c.Write([]byte("N"))
				}
			}()
		}
	}()
	for _, dsn := range []string{
		"postgresql+psycopg2://" + dsnCanaryUser + ":" + dsnCanary + "@" + ln.Addr().String() + "/db?sslmode=require",
		"postgresql+asyncpg://" + dsnCanaryUser + ":" + dsnCanary + "@" + ln.Addr().String() + "/db?ssl=require",
		"postgres://" + dsnCanaryUser + ":" + dsnCanary + "@" + ln.Addr().String() + "/db?sslmode=verify-full",
	} {
		scheme, _, _ := strings.Cut(dsn, ":")
		db, err := OpenDB(dsn)
		if err != nil {
			t.Fatalf("%s: %s", scheme, shown(err))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err = db.PingContext(ctx)
		cancel()
		db.Close()
		if err == nil {
			t.Fatalf("%s: connected to a server without TLS", scheme)
		}
		assertNoDSNLeak(t, scheme, err)
		if !strings.Contains(err.Error(), "the server does not support SSL") {
			t.Errorf("%s: %s; want it to say the server does not support SSL", scheme, shown(err))
		}
	}
}

// fuzzSchemes are the schemes FuzzOpenDB puts before its URLs: every
// registered one and some OpenDB refuses.
var fuzzSchemes = []string{
	"sqlite", "sqlite3", "file", "sqlite+pysqlite", "sqlite+aiosqlite",
	"postgres", "PostgreSQL", "postgresql+psycopg2", "postgresql+psycopg", "postgresql+asyncpg", "postgresql+pg8000",
	"mysql", "mariadb", "mysql+pymysql", "mysql+mysqldb", "mysql+aiomysql", "mysql+asyncmy", "mysql+mariadbconnector",
	"mariadb+pymysql", "mariadb+mysqldb", "mariadb+mariadbconnector",
	"postgresql+foo", "mssql+pyodbc", "oracle", "sqlite+pysqlcipher",
}

// FuzzOpenDB: OpenDB never panics, and the error for a URL whose password
// is the canary never shows it, whatever follows the password; rest is
// also opened as a whole DSN, for the forms without a password (sqlite:///).
func FuzzOpenDB(f *testing.F) {
	for i, rest := range []string{
		"h/db", "h:5432/db?sslmode=require", "h/db?ssl=require&timeout=5&prepared_statement_cache_size=0",
		"h/db?ssl=verify-full&sslmode=disable", "/db?host=/run/postgresql", "h/db?sslmode=" + dsnCanaryParam,
		"h:3306/db?charset=utf8mb4&connect_timeout=5&read_timeout=30", "/db?unix_socket=/run/mysqld/mysqld.sock",
		"h/db?ssl_ca=/ca.pem&ssl_check_hostname=false", "h/db?init_command=x", "tcp(h:3306)/db?parseTime=true",
		"sqlite:///app.db?timeout=2.5&check_same_thread=false", "sqlite:////srv/app.db", "sqlite://", "sqlite:///:memory:",
		"sqlite:///file:app.db?mode=ro&uri=true", "sqlite:k.db?_pragma=busy_timeout(5)", "file:///tmp/k.db?mode=rwc",
		"postgresql+asyncpg://u@h/db?ssl=require", "mysql+pymysql://u@h/db?charset=utf8mb4", "oracle://u@h/x",
		"h/db?x=%zz", "[::1", "h:x/db", "a@b/c",
	} {
		f.Add(uint8(i), rest)
	}
	f.Fuzz(func(t *testing.T, i uint8, rest string) {
		if db, err := OpenDB(rest); err == nil {
			db.Close()
		}
		if strings.Contains(strings.ToLower(rest), "canary") {
			return
		}
		scheme := fuzzSchemes[int(i)%len(fuzzSchemes)]
		for _, o := range []*DBOptions{nil, {MustExist: true}} {
			db, err := OpenDBWith(scheme+"://u:"+dsnCanary+"@"+rest, o)
			if err != nil {
				assertNoDSNLeak(t, scheme, err)
				continue
			}
			db.Close()
		}
	})
}
