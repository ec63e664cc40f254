package main

import (
	"errors"
	"io/fs"
	"strings"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"

	secrets "github.com/keyward/secrets"
)

// The hints of configProblem, one line each: what is wrong, then what to do.
const (
	hintNoDatabase   = "the database named in the database URL does not exist: check its name in DATABASE_URL (or --db), or create the database"
	hintNoRole       = "the server refused the user of the database URL (the role does not exist, or pg_hba.conf does not let it connect): check the user name and password in DATABASE_URL (or --db)"
	hintBadPassword  = "the server refused the password of the database URL: check the user name and password in DATABASE_URL (or --db)"
	hintDenied       = "the server refused the user or password of the database URL: check them in DATABASE_URL (or --db), and that the user exists for this host"
	hintDeniedDB     = "the user of the database URL may not use its database: GRANT it access, or check the database name in DATABASE_URL (or --db)"
	hintSocketOnly   = "the server lets the user of the database URL log in only through its socket (unix_socket): use another user in DATABASE_URL (or --db), or give this one a password"
	hintNoTable      = "the table does not exist: run keyward init to create it, or name an existing one with --table (and --column)"
	hintNoColumn     = "a column does not exist: name the value column of an existing table with --column"
	hintNoPrivilege  = "the user of the database URL lacks a privilege on the table or a column the command uses (SELECT; UPDATE for migrate, rotate and update; INSERT for put; DELETE for delete): GRANT it, or use another user in DATABASE_URL (or --db)"
	hintBadParam     = "the server refused a query parameter of the database URL (a setting it does not know, or a value it does not take): check the parameters after ? in DATABASE_URL (or --db)"
	hintNoSQLiteFile = "the SQLite database file does not exist: check the path in DATABASE_URL (or --db; sqlite:///app.db is relative to the working directory, sqlite:////srv/app.db absolute), or run keyward init to create it"
)

// configProblem returns a one-line hint when err says the configuration is
// wrong rather than a server down: a database, role, table or column that
// does not exist, a password, a grant or a privilege refused, or a SQLite file that is
// not there (fernetstore.DBOptions.MustExist); "" otherwise. A retry cannot
// fix these, so the CLI exits with exitConfig (3), not exitUnavailable (4),
// although the store reports them as ErrUnavailable. It reads the codes
// that fernetstore.OpenDB keeps reachable with errors.As (SQLSTATE, MySQL
// error number), never a server's message, which OpenDB does not show.
func configProblem(err error) string {
	if err == nil {
		return ""
	}
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		// While connecting, an unknown setting or a bad value can only
		// come from the URL's parameters (options=-c, runtime parameters).
		var ce interface{ Connecting() bool } // fernetstore.OpenDB's
		var pce *pgconn.ConnectError          // pgx's own
		if errors.As(err, &ce) && ce.Connecting() || errors.As(err, &pce) {
			switch pg.Code {
			case "42704", "42602", "22023": // undefined_object, invalid_name, invalid_parameter_value
				return hintBadParam
			}
		}
		switch pg.Code {
		case "3D000": // invalid_catalog_name
			return hintNoDatabase
		case "28000": // invalid_authorization_specification: no such role, or pg_hba.conf
			return hintNoRole
		case "28P01": // invalid_password
			return hintBadPassword
		case "42P01": // undefined_table
			return hintNoTable
		case "42703": // undefined_column
			return hintNoColumn
		case "42501": // insufficient_privilege
			return hintNoPrivilege
		}
	}
	var my *mysql.MySQLError
	if errors.As(err, &my) {
		switch my.Number {
		case 1049: // ER_BAD_DB_ERROR
			return hintNoDatabase
		case 1045: // ER_ACCESS_DENIED_ERROR
			return hintDenied
		case 1044: // ER_DBACCESS_DENIED_ERROR
			return hintDeniedDB
		case 1698: // ER_ACCESS_DENIED_NO_PASSWORD_ERROR
			return hintSocketOnly
		case 1146: // ER_NO_SUCH_TABLE
			return hintNoTable
		case 1054: // ER_BAD_FIELD_ERROR
			return hintNoColumn
		case 1142, 1143: // ER_TABLEACCESS_DENIED_ERROR, ER_COLUMNACCESS_DENIED_ERROR
			return hintNoPrivilege
		// keyward sets no session variable and no character set itself:
		// these come from the URL's parameters.
		case 1193, 1231, 1232, 1115: // ER_UNKNOWN_SYSTEM_VARIABLE, ER_WRONG_VALUE_FOR_VAR, ER_WRONG_TYPE_FOR_VAR, ER_UNKNOWN_CHARACTER_SET
			return hintBadParam
		}
	}
	// fernetstore's error for a SQLite file (or its directory) that is not
	// there: a configuration error that is also fs.ErrNotExist.
	if errors.Is(err, fs.ErrNotExist) && errors.Is(err, secrets.ErrInvalidRef) {
		return hintNoSQLiteFile
	}
	// SQLite's errors have no code for these; their words are fixed.
	msg := err.Error()
	switch {
	case strings.Contains(msg, "no such table"):
		return hintNoTable
	case strings.Contains(msg, "no such column"), strings.Contains(msg, "has no column named"):
		return hintNoColumn
	}
	return ""
}
