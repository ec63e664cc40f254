// Package postgres links the PostgreSQL driver (github.com/jackc/pgx/v5) for
// fernetstore. Importing it makes fernetstore.OpenDB, and so the fernet://
// backend's DATABASE_URL, open these DSNs:
//
//	postgres://user@host:5432/db?sslmode=disable
//	postgresql://user@host/db
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
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/keyward/secrets/fernetstore"
	"github.com/keyward/secrets/fernetstore/internal/connect"
	"github.com/keyward/secrets/fernetstore/internal/dsn"
)

func init() { fernetstore.RegisterDatabase([]string{"postgres", "postgresql"}, open) }

func open(raw string) (*sql.DB, error) {
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
	_, rest, _ := strings.Cut(raw, ":")
	conn = "postgres:" + rest
	if _, err := dsn.CheckURL("postgres", conn); err != nil {
		return "", "", err
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
	var pce *pgconn.ParseConfigError
	if errors.As(err, &pce) {
		// OpenDB parsed the same URL, so only a changed PG* variable or file gets here.
		return connect.Error(fmt.Sprintf("cannot connect to %s: the URL is not valid: %s", where, parseReason(err)), nil)
	}
	return connect.Common(where, err)
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
