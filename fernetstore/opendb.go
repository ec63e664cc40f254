package fernetstore

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"regexp"
	"strings"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	secrets "github.com/keyward/secrets"
)

// OpenDB opens a database from a URL-style DSN, without connecting:
//
//	sqlite:PATH                     SQLite file (created on first write), WAL, busy timeout 10 s
//	sqlite::memory:                 an in-memory SQLite database (one connection)
//	postgres://user@host:5432/db?sslmode=disable   (also postgresql://)
//	mysql://user@tcp(host:3306)/db?parseTime=true  (go-sql-driver form after "mysql://")
//	mysql://user@host:3306/db                      (converted to the form above)
//
// The scheme is case-insensitive, as in every URL (RFC 3986, 3.1):
// Postgres:// and POSTGRESQL:// are postgres://. In a URL form, '/', '?', '#'
// and '@' in the user name or password must be percent-encoded (%2F, %3F,
// %23, %40); a URL that would otherwise be parsed with part of its password
// as the host or the database is refused.
//
// A DSN may hold a password, so errors never quote it: an error from OpenDB
// names what is wrong and the accepted forms; an error connecting to a
// database OpenDB opened names at most the host, port and database name,
// and describes the failure in fixed words, because the drivers' and the
// servers' own messages can quote the user name, the password or a
// parameter (PostgreSQL echoes a parameter it rejects). What a caller tests
// stays: errors.As finds a *pgconn.PgError with the server's SQLSTATE Code,
// a *mysql.MySQLError with its Number, a *net.OpError, and errors.Is a
// context error; only their message texts are replaced.
//
// For PostgreSQL, OpenDB parses the URL as pgx does, which reads the PG*
// environment variables and, if they are named, the password and certificate
// files; it still makes no connection.
func OpenDB(dsn string) (*sql.DB, error) {
	t, err := parseDSN(dsn)
	if err != nil {
		return nil, err
	}
	switch t.dialect {
	case SQLite:
		// SQLite has no credentials, and its errors name the file at most.
		db, err := sql.Open("sqlite", t.conn)
		if err != nil {
			return nil, dsnError("the sqlite driver rejected the path")
		}
		if t.conn == ":memory:" || strings.HasPrefix(t.conn, ":memory:?") || strings.Contains(t.conn, "mode=memory") {
			// Each connection to ":memory:" is a separate empty database.
			db.SetMaxOpenConns(1)
		}
		return db, nil
	case Postgres:
		c, err := stdlib.GetDefaultDriver().(driver.DriverContext).OpenConnector(t.conn)
		if err != nil {
			return nil, dsnError("the postgres driver rejected the URL")
		}
		return sql.OpenDB(&safeConnector{Connector: c, where: t.where, describe: pgConnectError}), nil
	default:
		c, err := mysql.NewConnector(t.mysql)
		if err != nil {
			return nil, dsnError("the mysql driver rejected the DSN")
		}
		return sql.OpenDB(&safeConnector{Connector: c, where: t.where, describe: mysqlConnectError}), nil
	}
}

const dsnForms = "accepted forms: sqlite:PATH, sqlite::memory:, postgres://user@host:5432/db?sslmode=disable (or postgresql://), mysql://user@tcp(host:3306)/db?parseTime=true, mysql://user@host:3306/db"

// encodeHint ends the error for a URL that does not parse or is ambiguous:
// the usual cause is a password with a reserved character.
const encodeHint = "percent-encode '/', '?', '#', '@' and '%' in the user name and password (%2F, %3F, %23, %40, %25)"

func dsnError(what string) error {
	return &secrets.Error{Op: "open database", Backend: Backend, Code: secrets.CodeInvalidRef, Reason: what + "; " + dsnForms}
}

// target is a parsed DSN: the dialect, the driver's DSN, and where it
// connects, in words safe to print.
type target struct {
	dialect Dialect
	conn    string        // SQLite and PostgreSQL
	mysql   *mysql.Config // MySQL
	where   string        // such as `PostgreSQL at db:5432, database "app"`
}

// parseDSN maps a URL-style DSN to a driver DSN. Its errors quote nothing
// of the DSN but a scheme-shaped scheme.
func parseDSN(dsn string) (*target, error) {
	scheme, rest, ok := strings.Cut(dsn, ":")
	if !ok {
		return nil, dsnError("the database URL has no scheme")
	}
	switch strings.ToLower(scheme) {
	case "sqlite", "sqlite3", "file":
		path := strings.TrimPrefix(rest, "//")
		if strings.ToLower(scheme) == "file" {
			path = rest
		}
		if path == "" {
			return nil, dsnError("the sqlite URL has no path")
		}
		if path == ":memory:" {
			return &target{dialect: SQLite, conn: ":memory:"}, nil
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
		return &target{dialect: SQLite, conn: "file:" + path}, nil
	case "postgres", "postgresql":
		// pgx recognises a URL by its exact lower-case prefix and takes
		// anything else for a keyword=value string: Postgres://u:pw@db/x
		// would go to the default local server with the whole URL as a
		// parameter name, which the server's error then quotes.
		conn := "postgres:" + rest
		if _, err := checkURL("postgres", conn); err != nil {
			return nil, err
		}
		cfg, err := pgconn.ParseConfig(conn)
		if err != nil {
			return nil, dsnError("the postgres URL is not valid: " + pgParseReason(err))
		}
		where := "PostgreSQL at " + net.JoinHostPort(cfg.Host, fmt.Sprint(cfg.Port))
		if strings.HasPrefix(cfg.Host, "/") {
			where = "PostgreSQL at the socket in " + cfg.Host
		}
		if cfg.Database != "" {
			where += fmt.Sprintf(", database %q", cfg.Database)
		}
		return &target{dialect: Postgres, conn: conn, where: where}, nil
	case "mysql", "mariadb":
		r := strings.TrimPrefix(rest, "//")
		var cfg *mysql.Config
		if strings.Contains(r, "@tcp(") || strings.Contains(r, "@unix(") || strings.HasPrefix(r, "tcp(") || strings.HasPrefix(r, "unix(") {
			c, err := mysql.ParseDSN(r)
			if err != nil {
				// Its errors quote the values they reject.
				return nil, dsnError("the mysql DSN does not parse")
			}
			cfg = c
		} else {
			u, err := checkURL("mysql", "mysql://"+r)
			if err != nil {
				return nil, err
			}
			cfg = mysql.NewConfig()
			cfg.Net = "tcp"
			cfg.Addr = u.Host
			if u.Port() == "" {
				cfg.Addr = net.JoinHostPort(u.Hostname(), "3306")
			}
			if u.User != nil {
				cfg.User = u.User.Username()
				cfg.Passwd, _ = u.User.Password()
			}
			cfg.DBName = strings.TrimPrefix(u.Path, "/")
			cfg.ParseTime = true
			for k, vs := range u.Query() {
				if len(vs) == 0 {
					continue
				}
				switch k {
				case "parseTime":
					cfg.ParseTime = vs[0] == "true" || vs[0] == "1"
				default:
					if cfg.Params == nil {
						cfg.Params = map[string]string{}
					}
					cfg.Params[k] = vs[0]
				}
			}
			// The driver's own checks of the parameters (timeouts, TLS
			// names), as for the other form.
			if _, err := mysql.ParseDSN(cfg.FormatDSN()); err != nil {
				return nil, dsnError("the mysql URL has a parameter the driver rejects")
			}
		}
		where := "MySQL at " + cfg.Addr
		if cfg.Net == "unix" {
			where = "MySQL at the socket " + cfg.Addr
		}
		if cfg.DBName != "" {
			where += fmt.Sprintf(", database %q", cfg.DBName)
		}
		return &target{dialect: MySQL, mysql: cfg, where: where}, nil
	}
	if schemeRE.MatchString(scheme) {
		return nil, dsnError(fmt.Sprintf("unknown database URL scheme %q", scheme))
	}
	// Not scheme-shaped: what comes before the first ':' may be a
	// key=value DSN up to the middle of a password (password=Sup3r:Secret),
	// so none of it is quoted.
	return nil, dsnError("the DSN has no recognised scheme")
}

// schemeRE is what an unknown scheme must look like to be quoted in an error.
var schemeRE = regexp.MustCompile(`^[a-z][a-z0-9+.-]{0,15}$`)

// checkURL parses a postgres:// or mysql:// URL and refuses one whose host
// or database might be a piece of its password: a password with an
// unencoded '/', '?' or '#' ends the authority early, so net/url (and the
// drivers, which use it) would take what follows for the path, the query or
// the fragment, and "u:1234/secret@db/x" would connect to host "u", port
// 1234, database "secret@db/x". An '@' anywhere past the authority, or any
// '#', is therefore refused. Errors quote nothing of the URL.
func checkURL(kind, raw string) (*url.URL, error) {
	if !strings.HasPrefix(raw, kind+"://") {
		return nil, dsnError(fmt.Sprintf("a %s URL starts with %s://", kind, kind))
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error quotes the whole URL, and its causes quote the bad
		// part (an escape, a host, a port), which may be the password's.
		return nil, dsnError(fmt.Sprintf("the %s URL does not parse (%s); %s", kind, urlParseReason(err), encodeHint))
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
		return nil, dsnError(fmt.Sprintf("the %s URL has a '#', which would end it there and leave the rest out (a %s URL has no fragment); %s", kind, kind, encodeHint))
	case strings.Contains(tail, "@"):
		return nil, dsnError(fmt.Sprintf("the %s URL has an '@' after its host, so part of the user information would be taken for the host or the database; %s", kind, encodeHint))
	}
	if u.Host == "" && kind == "mysql" {
		return nil, dsnError("the mysql URL has no host")
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

// pgParseReason is pgx's message for a URL it cannot parse, without the
// URL and without any value it quotes: ParseConfigError's text holds the
// URL (its password masked, the user name not), its messages sometimes
// quote a value ("unknown target_session_attrs value: ..."), and its cause
// may too (a strconv error quotes its input).
func pgParseReason(err error) string {
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
		if inner := strings.TrimSpace(cause.Error()); staticPgReasons[inner] {
			msg += " (" + inner + ")"
		}
	}
	if msg == "" {
		return "malformed"
	}
	return msg
}

// staticPgReasons are causes of pgx's parse errors that quote nothing.
var staticPgReasons = map[string]bool{
	"sslmode is invalid": true,
}

// safeConnector makes the connections of a database opened by OpenDB and
// rewrites the errors of connecting (see OpenDB).
type safeConnector struct {
	driver.Connector
	where    string
	describe func(where string, err error) error
}

func (c *safeConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, c.describe(c.where, err)
	}
	return conn, nil
}

// Close closes the driver's connector if it has something to close
// (database/sql calls it from DB.Close).
func (c *safeConnector) Close() error {
	if cl, ok := c.Connector.(io.Closer); ok {
		return cl.Close()
	}
	return nil
}

// connectError is a failure to connect, in words that hold no part of the
// DSN but the host, port and database name. err keeps what callers test: a
// driver's error rebuilt with a fixed message, a network error, a context
// error; its text is not part of msg unless it is known to be safe.
type connectError struct {
	msg string
	err error
}

func (e *connectError) Error() string { return e.msg }
func (e *connectError) Unwrap() error { return e.err }

// pgConnectError rewrites an error of pgx's connect. Its own text names the
// user, and a server's error can quote a parameter (an unknown one, or the
// whole URL when it was taken for a keyword=value string).
func pgConnectError(where string, err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		safe := &pgconn.PgError{Severity: pe.Severity, SeverityUnlocalized: pe.SeverityUnlocalized, Code: pe.Code, Message: pgCodeText(pe.Code)}
		return &connectError{msg: fmt.Sprintf("%s refused the connection: %s (SQLSTATE %s)", where, safe.Message, pe.Code), err: safe}
	}
	var pce *pgconn.ParseConfigError
	if errors.As(err, &pce) {
		// OpenDB parsed the same URL, so only a changed PG* variable or file gets here.
		return &connectError{msg: fmt.Sprintf("cannot connect to %s: the URL is not valid: %s", where, pgParseReason(err))}
	}
	return commonConnectError(where, err)
}

// pgCodeText describes a PostgreSQL error of connecting by its SQLSTATE.
func pgCodeText(code string) string {
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

// mysqlConnectError rewrites an error of go-sql-driver's connect: the
// server's access-denied message names the user, and an unknown parameter
// is quoted.
func mysqlConnectError(where string, err error) error {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		safe := &mysql.MySQLError{Number: me.Number, SQLState: me.SQLState, Message: mysqlNumberText(me.Number)}
		return &connectError{msg: fmt.Sprintf("%s refused the connection: %s (error %d)", where, safe.Message, me.Number), err: safe}
	}
	for _, s := range mysqlStatic {
		if errors.Is(err, s) {
			return &connectError{msg: fmt.Sprintf("cannot connect to %s: %v", where, s), err: s}
		}
	}
	return commonConnectError(where, err)
}

// mysqlStatic are go-sql-driver's errors whose text is fixed.
var mysqlStatic = []error{mysql.ErrInvalidConn, mysql.ErrMalformPkt, mysql.ErrNoTLS, mysql.ErrCleartextPassword,
	mysql.ErrNativePassword, mysql.ErrOldPassword, mysql.ErrUnknownPlugin, mysql.ErrOldProtocol}

// mysqlNumberText describes a MySQL error of connecting by its number.
func mysqlNumberText(n uint16) string {
	switch n {
	case 1045:
		return "access denied (check the user name and the password)"
	case 1044:
		return "access to the database denied for this user"
	case 1049:
		return "the database does not exist"
	case 1193, 1231, 1232:
		return "it does not accept a parameter of the URL (a query parameter it does not know, or a bad value)"
	case 1040:
		return "too many connections"
	case 1203:
		return "the user has too many connections"
	case 1129, 1130:
		return "this host is not allowed to connect"
	case 1251:
		return "the server wants an authentication method the client does not support"
	}
	return "the server's message is not shown, as it may quote the DSN"
}

// commonConnectError describes the failures both drivers share: a context
// ending, a network error, a TLS certificate refused. Their texts hold
// addresses and certificate names, which come from the parsed host.
func commonConnectError(where string, err error) error {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return &connectError{msg: fmt.Sprintf("cannot connect to %s: timed out", where), err: context.DeadlineExceeded}
	case errors.Is(err, context.Canceled):
		return &connectError{msg: fmt.Sprintf("cannot connect to %s: canceled", where), err: context.Canceled}
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return &connectError{msg: fmt.Sprintf("cannot connect to %s: %v", where, dnsErr), err: dnsErr}
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		return &connectError{msg: fmt.Sprintf("cannot connect to %s: %v", where, opErr), err: opErr}
	}
	var certErr *tls.CertificateVerificationError
	if errors.As(err, &certErr) {
		return &connectError{msg: fmt.Sprintf("cannot connect to %s: %v", where, certErr), err: certErr}
	}
	var hostErr x509.HostnameError
	if errors.As(err, &hostErr) {
		return &connectError{msg: fmt.Sprintf("cannot connect to %s: %v", where, hostErr), err: hostErr}
	}
	var authErr x509.UnknownAuthorityError
	if errors.As(err, &authErr) {
		return &connectError{msg: fmt.Sprintf("cannot connect to %s: %v", where, authErr), err: authErr}
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return &connectError{msg: fmt.Sprintf("cannot connect to %s: the server closed the connection", where), err: io.ErrUnexpectedEOF}
	}
	// The innermost error's type says what kind of failure it was; its
	// text may quote the DSN.
	inner := err
	for {
		next := errors.Unwrap(inner)
		if next == nil {
			break
		}
		inner = next
	}
	return &connectError{msg: fmt.Sprintf("cannot connect to %s (%T; the driver's message is not shown, as it may quote the DSN)", where, inner)}
}
