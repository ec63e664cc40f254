// Package mysql links the MySQL and MariaDB driver
// (github.com/go-sql-driver/mysql) for fernetstore. Importing it makes
// fernetstore.OpenDB, and so the fernet:// backend's DATABASE_URL, open
// these DSNs:
//
//	mysql://user@tcp(host:3306)/db?parseTime=true   the driver's own form after "mysql://"
//	mysql://user@host:3306/db                       a URL, converted to the form above (parseTime=true)
//	mariadb://...                                   either form
//	mysql+pymysql://user:pw@host:3306/db?charset=utf8mb4   SQLAlchemy's (URL form only); also
//	    mysql+mysqldb://, mysql+aiomysql://, mysql+asyncmy://, mysql+mariadbconnector://,
//	    mariadb+pymysql://, mariadb+mysqldb://, mariadb+mariadbconnector://
//
// In the URL form, the query's parameters are the driver's (parseTime,
// loc, timeout=5s, tls=true, ...), and any other is a session variable
// the driver sets on connect (sql_mode=...). In SQLAlchemy's forms, the
// Python drivers' parameters are mapped: charset as it is,
// connect_timeout, read_timeout and write_timeout (seconds) to timeout,
// readTimeout and writeTimeout, unix_socket=PATH to the socket (the host
// may then be empty: mysql+pymysql://user@/db?unix_socket=/run/mysqld/mysqld.sock),
// ssl_ca, ssl_cert and ssl_key to TLS verified against ssl_ca (or the
// system's roots) with the host name checked unless ssl_check_hostname=false
// (the files are read on connect); use_unicode, binary_prefix, client_flag,
// local_infile, autocommit and program_name are dropped (they configure the
// Python client), and init_command and the other ssl_ parameters are refused.
//
// The scheme is case-insensitive. In the URL form, '/', '?', '#' and '@' in
// the user name or password must be percent-encoded; a URL that would be
// parsed with part of its password as the host or the database is refused.
// No error quotes the user name, the password or a parameter: the server's
// errors of connecting keep their number (errors.As finds a
// *mysql.MySQLError) with a fixed message, as fernetstore.OpenDB describes.
//
//	import _ "github.com/keyward/secrets/fernetstore/mysql"
package mysql

import (
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/keyward/secrets/fernetstore"
	"github.com/keyward/secrets/fernetstore/internal/connect"
	"github.com/keyward/secrets/fernetstore/internal/dsn"
)

func init() { fernetstore.RegisterDatabase(dsn.MySQLSchemes, open) }

// open opens raw; MustExist changes nothing, as a server never creates a
// database on connect.
func open(raw string, _ fernetstore.DBOptions) (*sql.DB, error) {
	cfg, where, err := parse(raw)
	if err != nil {
		return nil, err
	}
	c, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, dsn.Error("the mysql driver rejected the DSN")
	}
	return sql.OpenDB(&connect.Connector{Connector: c, Where: where, Describe: connectError}), nil
}

// parse maps a DSN whose scheme is in lower case to the driver's
// configuration and where it connects, in words safe to print.
func parse(raw string) (*mysql.Config, string, error) {
	scheme, rest, _ := strings.Cut(raw, ":")
	r := strings.TrimPrefix(rest, "//")
	sqlalchemy := strings.Contains(scheme, "+")
	var cfg *mysql.Config
	if !sqlalchemy && (strings.Contains(r, "@tcp(") || strings.Contains(r, "@unix(") || strings.HasPrefix(r, "tcp(") || strings.HasPrefix(r, "unix(")) {
		c, err := mysql.ParseDSN(r)
		if err != nil {
			// Its errors quote the values they reject.
			return nil, "", dsn.Error("the mysql DSN does not parse")
		}
		cfg = c
	} else {
		u, err := dsn.CheckURL("mysql", "mysql://"+r)
		if err != nil {
			return nil, "", err
		}
		if cfg, err = fromURL(scheme, u, sqlalchemy); err != nil {
			return nil, "", err
		}
	}
	where := "MySQL at " + cfg.Addr
	if cfg.Net == "unix" {
		where = "MySQL at the socket " + cfg.Addr
	}
	if cfg.DBName != "" {
		where += fmt.Sprintf(", database %q", cfg.DBName)
	}
	return cfg, where, nil
}

// dropped are the Python drivers' parameters that configure the Python
// client only.
var dropped = map[string]bool{"use_unicode": true, "binary_prefix": true, "client_flag": true, "local_infile": true, "autocommit": true, "program_name": true}

// refused are the Python drivers' parameters keyward cannot apply, which
// must not reach the server as session variables.
var refused = []string{"init_command", "ssl", "ssl_capath", "ssl_cipher", "ssl_disabled", "ssl_verify_cert", "ssl_verify_identity", "read_default_file", "read_default_group", "auth_plugin_map", "server_public_key"}

// mapped lists what SQLAlchemy's forms read, for the error refusing one.
const mapped = "charset, connect_timeout, read_timeout, write_timeout, unix_socket, ssl_ca, ssl_cert, ssl_key, ssl_check_hostname"

// fromURL is the driver's configuration for a URL CheckURL accepted; with
// sqlalchemy, the Python drivers' parameters are mapped first.
func fromURL(scheme string, u *url.URL, sqlalchemy bool) (*mysql.Config, error) {
	cfg := mysql.NewConfig()
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
	q, err := dsn.ParseQuery(scheme, u.RawQuery)
	if err != nil {
		return nil, err
	}
	var tf tlsFiles
	tf.checkHostname = true
	for i := range q {
		k, v := q.Key(i), q.Value(i)
		if sqlalchemy {
			seconds := func(d *time.Duration) error {
				sec, err := strconv.ParseFloat(v, 64)
				if err != nil || !(sec >= 0 && sec < math.MaxInt32) {
					return dsn.Error(fmt.Sprintf("the %s URL's %s is not a number of seconds", scheme, k))
				}
				*d = time.Duration(sec * float64(time.Second))
				return nil
			}
			switch {
			case k == "connect_timeout":
				err = seconds(&cfg.Timeout)
			case k == "read_timeout":
				err = seconds(&cfg.ReadTimeout)
			case k == "write_timeout":
				err = seconds(&cfg.WriteTimeout)
			case k == "unix_socket":
				cfg.Net, cfg.Addr = "unix", v
			case k == "ssl_ca":
				tf.ca = v
			case k == "ssl_cert":
				tf.cert = v
			case k == "ssl_key":
				tf.key = v
			case k == "ssl_check_hostname":
				tf.checkHostname, err = strconv.ParseBool(v)
				if err != nil {
					err = dsn.Error(fmt.Sprintf("the %s URL's ssl_check_hostname is not true or false", scheme))
				}
			case dropped[k]:
			case slices.Contains(refused, k):
				// k is one of ours, so it may be quoted.
				err = dsn.Error(fmt.Sprintf("the %s URL's %s is not supported (keyward reads %s, and the driver's own parameters)", scheme, k, mapped))
			default:
				err = setParam(cfg, k, v)
			}
		} else {
			err = setParam(cfg, k, v)
		}
		if err != nil {
			return nil, err
		}
	}
	if u.Host == "" && cfg.Net != "unix" {
		return nil, dsn.Error(fmt.Sprintf("the %s URL has no host", scheme))
	}
	// The driver parses its own parameters (timeout, tls, loc, charset,
	// ...) from a DSN only, and takes every key left in Params for a
	// session variable (charset=utf8mb4 would be SET charset=...): the
	// configuration goes through its DSN form, and must come back the same.
	c, err := mysql.ParseDSN(cfg.FormatDSN())
	if err != nil {
		return nil, dsn.Error(fmt.Sprintf("the %s URL has a parameter the driver rejects", scheme))
	}
	if c.User != cfg.User || c.Passwd != cfg.Passwd || c.Net != cfg.Net || c.Addr != cfg.Addr || c.DBName != cfg.DBName {
		return nil, dsn.Error(fmt.Sprintf("the %s URL's user, password, host or database cannot be passed to the driver as they are (a character it reads differently)", scheme))
	}
	if tf.ca != "" || tf.cert != "" || tf.key != "" {
		if c.TLS != nil || c.TLSConfig != "" {
			return nil, dsn.Error(fmt.Sprintf("the %s URL has both ssl_ files and tls: keep one", scheme))
		}
		if (tf.cert == "") != (tf.key == "") {
			return nil, dsn.Error(fmt.Sprintf("the %s URL has one of ssl_cert and ssl_key: give both", scheme))
		}
		c.TLS = tf.config(u.Hostname())
	} else if !tf.checkHostname {
		return nil, dsn.Error(fmt.Sprintf("the %s URL has ssl_check_hostname without ssl_ca", scheme))
	}
	return c, nil
}

// setParam puts a query parameter where the driver's DSN form reads it.
func setParam(cfg *mysql.Config, k, v string) error {
	if k == "parseTime" {
		cfg.ParseTime = v == "true" || v == "1"
		return nil
	}
	if cfg.Params == nil {
		cfg.Params = map[string]string{}
	}
	cfg.Params[k] = v
	return nil
}

// tlsFiles are pymysql's ssl_ parameters. The files are read on each
// connect, not at the open, which does no I/O.
type tlsFiles struct {
	ca, cert, key string
	checkHostname bool
}

// config is the TLS configuration for a server named host: its certificate
// verified against ca (or the system's roots), its name checked unless
// checkHostname is off, and cert and key presented when the server asks.
func (f tlsFiles) config(host string) *tls.Config {
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
	if f.cert != "" {
		c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			cert, err := tls.LoadX509KeyPair(f.cert, f.key)
			if err != nil {
				return nil, &fileError{fmt.Sprintf("cannot load ssl_cert %s and ssl_key %s: %s", f.cert, f.key, fileReason(err))}
			}
			return &cert, nil
		}
	}
	if f.ca == "" && f.checkHostname {
		return c
	}
	// Verified here instead: with a CA read on connect, or without the
	// name check. Go's own verification is off only to be done below.
	c.InsecureSkipVerify = true
	c.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return &fileError{"the server sent no certificate"}
		}
		opts := x509.VerifyOptions{Intermediates: x509.NewCertPool()}
		if f.checkHostname {
			opts.DNSName = host
		}
		if f.ca != "" {
			pem, err := os.ReadFile(f.ca)
			if err != nil {
				return &fileError{fmt.Sprintf("cannot read ssl_ca %s: %s", f.ca, fileReason(err))}
			}
			opts.Roots = x509.NewCertPool()
			if !opts.Roots.AppendCertsFromPEM(pem) {
				return &fileError{fmt.Sprintf("ssl_ca %s holds no PEM certificate", f.ca)}
			}
		}
		for _, ic := range cs.PeerCertificates[1:] {
			opts.Intermediates.AddCert(ic)
		}
		_, err := cs.PeerCertificates[0].Verify(opts)
		return err
	}
	return c
}

// fileError is a failure to use a TLS file, in words that name the file
// (configuration, not a credential) and never its contents.
type fileError struct{ msg string }

func (e *fileError) Error() string { return e.msg }

// fileReason is why a file could not be used, without its contents.
func fileReason(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	// crypto/tls's errors of parsing a key pair are fixed words.
	return err.Error()
}

// connectError rewrites an error of go-sql-driver's connect: the server's
// access-denied message names the user, and an unknown parameter is quoted.
func connectError(where string, err error) error {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		safe := &mysql.MySQLError{Number: me.Number, SQLState: me.SQLState, Message: numberText(me.Number)}
		return connect.Error(fmt.Sprintf("%s refused the connection: %s (error %d)", where, safe.Message, me.Number), safe)
	}
	var fe *fileError
	if errors.As(err, &fe) {
		return connect.Error(fmt.Sprintf("cannot connect to %s: %s", where, fe.msg), fe)
	}
	for _, s := range static {
		if errors.Is(err, s) {
			return connect.Error(fmt.Sprintf("cannot connect to %s: %v", where, s), s)
		}
	}
	return connect.Common(where, err)
}

// static are go-sql-driver's errors whose text is fixed.
var static = []error{mysql.ErrInvalidConn, mysql.ErrMalformPkt, mysql.ErrNoTLS, mysql.ErrCleartextPassword,
	mysql.ErrNativePassword, mysql.ErrOldPassword, mysql.ErrUnknownPlugin, mysql.ErrOldProtocol}

// numberText describes a MySQL error of connecting by its number.
func numberText(n uint16) string {
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
