// Package mysql links the MySQL and MariaDB driver
// (github.com/go-sql-driver/mysql) for fernetstore. Importing it makes
// fernetstore.OpenDB, and so the fernet:// backend's DATABASE_URL, open
// these DSNs:
//
//	mysql://user@tcp(host:3306)/db?parseTime=true   the driver's own form after "mysql://"
//	mysql://user@host:3306/db                       a URL, converted to the form above (parseTime=true)
//	mariadb://...                                   either form
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
	"database/sql"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/go-sql-driver/mysql"

	"github.com/keyward/secrets/fernetstore"
	"github.com/keyward/secrets/fernetstore/internal/connect"
	"github.com/keyward/secrets/fernetstore/internal/dsn"
)

func init() { fernetstore.RegisterDatabase([]string{"mysql", "mariadb"}, open) }

func open(raw string) (*sql.DB, error) {
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
	_, rest, _ := strings.Cut(raw, ":")
	r := strings.TrimPrefix(rest, "//")
	var cfg *mysql.Config
	if strings.Contains(r, "@tcp(") || strings.Contains(r, "@unix(") || strings.HasPrefix(r, "tcp(") || strings.HasPrefix(r, "unix(") {
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
			return nil, "", dsn.Error("the mysql URL has a parameter the driver rejects")
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

// connectError rewrites an error of go-sql-driver's connect: the server's
// access-denied message names the user, and an unknown parameter is quoted.
func connectError(where string, err error) error {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		safe := &mysql.MySQLError{Number: me.Number, SQLState: me.SQLState, Message: numberText(me.Number)}
		return connect.Error(fmt.Sprintf("%s refused the connection: %s (error %d)", where, safe.Message, me.Number), safe)
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
