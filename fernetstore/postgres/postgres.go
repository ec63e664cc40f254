// Package postgres links the PostgreSQL driver (github.com/jackc/pgx/v5) for
// fernetstore. Importing it makes fernetstore.OpenDB, and so the fernet://
// backend's DATABASE_URL, open these DSNs:
//
//	postgres://user@host:5432/db?sslmode=disable
//	postgresql://user@host/db
//	postgresql+psycopg2://, postgresql+psycopg://, postgresql+pg8000://   SQLAlchemy's, as postgresql://
//	postgresql+asyncpg://user@host/db?ssl=require                        SQLAlchemy's asyncpg
//
// The query parameters are libpq's, as psycopg and pgx read them
// (sslmode=require, connect_timeout=10, application_name=..., host=/socket/dir).
// For postgresql+asyncpg://, asyncpg's parameters are mapped: ssl=MODE is
// sslmode=MODE (disable, allow, prefer, require, verify-ca, verify-full),
// timeout=SECONDS is connect_timeout, and the statement-cache settings of
// asyncpg and SQLAlchemy (prepared_statement_cache_size, statement_cache_size,
// max_cached_statement_lifetime, max_cacheable_statement_size) and
// command_timeout are dropped: they tune the Python client. A server that
// does not support SSL when the URL requires it is refused with an error
// that says so.
//
// The scheme is case-insensitive. '/', '?', '#' and '@' in the user name or
// password must be percent-encoded; a URL that would be parsed with part of
// its password as the host or the database is refused. The URL is parsed as
// pgx parses it (reading the PG* variables and the files they name) without
// connecting. No error quotes the user name, the password or a parameter:
// the server's errors of connecting keep their SQLSTATE (errors.As finds a
// *pgconn.PgError) with a fixed message, as fernetstore.OpenDB describes.
//
//	import _ "github.com/keyward/secrets/fernetstore/postgres"
package postgres

import (
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/keyward/secrets/fernetstore"
	"github.com/keyward/secrets/fernetstore/internal/connect"
	"github.com/keyward/secrets/fernetstore/internal/dsn"
)

func init() { fernetstore.RegisterDatabase(dsn.PostgresSchemes, open) }

// open opens raw; MustExist changes nothing, as a server never creates a
// database on connect.
func open(raw string, _ fernetstore.DBOptions) (*sql.DB, error) {
	conn, where, err := parse(raw)
	if err != nil {
		return nil, err
	}
	c, err := stdlib.GetDefaultDriver().(driver.DriverContext).OpenConnector(conn)
	if err != nil {
		return nil, dsn.Error("the postgres driver rejected the URL")
	}
	return sql.OpenDB(&connect.Connector{Connector: c, Where: where, Describe: connectError}), nil
}

// parse maps a DSN whose scheme is in lower case to pgx's URL and where it
// connects, in words safe to print.
func parse(raw string) (conn, where string, err error) {
	// pgx recognises a URL by its exact lower-case prefix and takes
	// anything else for a keyword=value string: postgresql://u:pw@db/x is
	// read as a URL, but Postgres://u:pw@db/x would go to the default local
	// server with the whole URL as a parameter name, which the server's
	// error then quotes. fernetstore.OpenDB lowers the scheme; postgresql
	// becomes postgres here.
	scheme, rest, _ := strings.Cut(raw, ":")
	conn = "postgres:" + rest
	if _, err := dsn.CheckURL("postgres", conn); err != nil {
		return "", "", err
	}
	if scheme == "postgresql+asyncpg" {
		if conn, err = asyncpg(conn); err != nil {
			return "", "", err
		}
	}
	cfg, err := pgconn.ParseConfig(conn)
	if err != nil {
		return "", "", dsn.Error("the postgres URL is not valid: " + parseReason(err))
	}
	where = "PostgreSQL at " + net.JoinHostPort(cfg.Host, fmt.Sprint(cfg.Port))
	if strings.HasPrefix(cfg.Host, "/") {
		where = "PostgreSQL at the socket in " + cfg.Host
	}
	if cfg.Database != "" {
		where += fmt.Sprintf(", database %q", cfg.Database)
	}
	return conn, where, nil
}

// asyncpgSSLModes are the values asyncpg's ssl= takes as a string, which
// are libpq's sslmode values.
var asyncpgSSLModes = []string{"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}

// asyncpg maps asyncpg's query parameters in a URL CheckURL accepted (so
// its first '?' starts the query) to libpq's.
func asyncpg(conn string) (string, error) {
	base, raw, _ := strings.Cut(conn, "?")
	q, err := dsn.ParseQuery("postgresql+asyncpg", raw)
	if err != nil {
		return "", err
	}
	var out dsn.Query
	ssl := false
	for i := range q {
		switch q.Key(i) {
		case "ssl":
			if !slices.Contains(asyncpgSSLModes, q.Value(i)) {
				return "", dsn.Error("the postgresql+asyncpg URL's ssl is not one of " + strings.Join(asyncpgSSLModes, ", "))
			}
			ssl = true
			out = append(out, "sslmode="+q.Value(i))
		case "timeout":
			sec, err := strconv.ParseFloat(q.Value(i), 64)
			if err != nil || !(sec > 0 && sec < math.MaxInt32) {
				return "", dsn.Error("the postgresql+asyncpg URL's timeout is not a positive number of seconds")
			}
			out = append(out, fmt.Sprintf("connect_timeout=%d", int64(math.Ceil(sec))))
		case "prepared_statement_cache_size", "statement_cache_size", "max_cached_statement_lifetime",
			"max_cacheable_statement_size", "command_timeout":
			// The Python client's own settings.
		default:
			out = append(out, q[i])
		}
	}
	if ssl && q.Index("sslmode") >= 0 {
		return "", dsn.Error("the postgresql+asyncpg URL has both ssl and sslmode: keep one")
	}
	if len(out) == 0 {
		return base, nil
	}
	return base + "?" + out.String(), nil
}

// parseReason is pgx's message for a URL it cannot parse, without the
// URL and without any value it quotes: ParseConfigError's text holds the
// URL (its password masked, the user name not), its messages sometimes
// quote a value ("unknown target_session_attrs value: ..."), and its cause
// may too (a strconv error quotes its input).
func parseReason(err error) string {
	var pe *pgconn.ParseConfigError
	if !errors.As(err, &pe) {
		return "malformed"
	}
	c := *pe
	c.ConnString = ""
	msg := strings.TrimPrefix(c.Error(), "cannot parse ``: ")
	cause := pe.Unwrap()
	if cause != nil {
		msg = strings.TrimSuffix(msg, " ("+cause.Error()+")")
	}
	// Keep the words before a quoted value: "invalid min_protocol_version".
	msg, _, _ = strings.Cut(msg, ":")
	msg, _, _ = strings.Cut(msg, `"`)
	msg = strings.TrimSpace(msg)
	// A TLS or service file that cannot be read: its name is a parameter
	// of the URL, not a credential, and says what to fix.
	var pathErr *fs.PathError
	if errors.As(cause, &pathErr) {
		msg += fmt.Sprintf(" (cannot %s %s: %v)", pathErr.Op, pathErr.Path, pathErr.Err)
	} else if cause != nil {
		if inner := strings.TrimSpace(cause.Error()); staticReasons[inner] {
			msg += " (" + inner + ")"
		}
	}
	if msg == "" {
		return "malformed"
	}
	return msg
}

// staticReasons are causes of pgx's parse errors that quote nothing.
var staticReasons = map[string]bool{
	"sslmode is invalid": true,
}

// connectError rewrites an error of pgx's connect. Its own text names the
// user, and a server's error can quote a parameter (an unknown one, or the
// whole URL when it was taken for a keyword=value string).
func connectError(where string, err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		safe := &pgconn.PgError{Severity: pe.Severity, SeverityUnlocalized: pe.SeverityUnlocalized, Code: pe.Code, Message: codeText(pe.Code)}
		return connect.Error(fmt.Sprintf("%s refused the connection: %s (SQLSTATE %s)", where, safe.Message, pe.Code), safe)
	}
	if innermost(err).Error() == "server refused TLS connection" {
		// pgx's fixed text for the server's "no" to an SSLRequest.
		return connect.Error(fmt.Sprintf("cannot connect to %s: the server does not support SSL (TLS), and the URL requires it (sslmode=require, verify-ca or verify-full, or asyncpg's ssl=): enable ssl on the server, or set sslmode=prefer or disable", where), errNoTLS)
	}
	var pce *pgconn.ParseConfigError
	if errors.As(err, &pce) {
		// OpenDB parsed the same URL, so only a changed PG* variable or file gets here.
		return connect.Error(fmt.Sprintf("cannot connect to %s: the URL is not valid: %s", where, parseReason(err)), nil)
	}
	return connect.Common(where, err)
}

// errNoTLS is the cause of the error for a server without SSL.
var errNoTLS = errors.New("the server does not support SSL")

// innermost is the last error of err's chain (the first of a joined error).
func innermost(err error) error {
	for {
		var next error
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			next = u.Unwrap()
		case interface{ Unwrap() []error }:
			if es := u.Unwrap(); len(es) > 0 {
				next = es[0]
			}
		}
		if next == nil {
			return err
		}
		err = next
	}
}

// codeText describes a PostgreSQL error of connecting by its SQLSTATE.
func codeText(code string) string {
	switch code {
	case "28P01":
		return "password authentication failed (check the user name and the password)"
	case "3D000":
		return "the database does not exist"
	case "42704", "42602", "22023":
		return "it does not accept a parameter of the URL (a query parameter it does not know, or a bad value)"
	case "53300":
		return "too many connections"
	case "57P03":
		return "the server is starting up or shutting down"
	case "08P01":
		return "protocol violation"
	}
	switch {
	case strings.HasPrefix(code, "28"):
		return "the credentials are refused: the role does not exist, or pg_hba.conf does not let it in (check the user name and the password)"
	case strings.HasPrefix(code, "08"):
		return "connection failure"
	case strings.HasPrefix(code, "53"):
		return "the server lacks resources"
	case strings.HasPrefix(code, "57"):
		return "the server is not accepting connections"
	}
	return "the server's message is not shown, as it may quote the URL"
}
