package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/fernetstore"
	"github.com/keyward/secrets/internal/testenv"
)

// connectErr opens dsn with fernetstore.OpenDB and returns the error of
// running query on it (of connecting, if query is "").
func connectErr(t *testing.T, dsn, query string, o *fernetstore.DBOptions) error {
	t.Helper()
	db, err := fernetstore.OpenDBWith(dsn, o)
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if query == "" {
		return db.PingContext(ctx)
	}
	rows, err := db.QueryContext(ctx, query)
	if err == nil {
		rows.Close()
	}
	return err
}

// TestConfigProblem: the errors of a missing database, role, table or
// column, a refused password or grant, and a missing SQLite file, from the
// real servers through fernetstore.OpenDB, are configuration problems with a
// hint that names them; a server that is down, or a canceled command, is
// not. No error or hint shows the password.
func TestConfigProblem(t *testing.T) {
	pg := testenv.PostgresDSN(t)
	pu, err := url.Parse(pg)
	if err != nil {
		t.Fatal(err)
	}
	pgHost, pgDB := pu.Host, strings.TrimPrefix(pu.Path, "/")
	myCfg, err := mysql.ParseDSN(testenv.MySQLDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	my := "mysql://" + testenv.MySQLDSN(t)
	myHost, myDB := myCfg.Addr, myCfg.DBName
	pw := cliCanary
	dir := t.TempDir()

	// A MariaDB user with no grant on the test database.
	admin, err := fernetstore.OpenDB(my)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	const noGrant = "keyward_cfgerr"
	for _, q := range []string{"DROP USER IF EXISTS '" + noGrant + "'@'%'", "CREATE USER '" + noGrant + "'@'%' IDENTIFIED BY '" + pw + "'"} {
		if _, err := admin.ExecContext(context.Background(), q); err != nil {
			t.Fatalf("%s: %v", strings.ReplaceAll(q, pw, "***"), err)
		}
	}
	t.Cleanup(func() { admin.ExecContext(context.Background(), "DROP USER IF EXISTS '"+noGrant+"'@'%'") })

	// Users that may connect but lack a privilege: on MariaDB, SELECT on
	// one table and on one column of another; on PostgreSQL, a role with
	// no grant on a table.
	const tabA, tabB, partial = "keyward_cfg_priv_a", "keyward_cfg_priv_b", "keyward_cfgpriv"
	for _, q := range []string{
		"DROP TABLE IF EXISTS " + tabA + ", " + tabB,
		"CREATE TABLE " + tabA + " (id INT PRIMARY KEY, api_key TEXT)",
		"CREATE TABLE " + tabB + " (id INT PRIMARY KEY)",
		"DROP USER IF EXISTS '" + partial + "'@'%'",
		"CREATE USER '" + partial + "'@'%' IDENTIFIED BY '" + pw + "'",
		"GRANT SELECT (id) ON " + myDB + "." + tabA + " TO '" + partial + "'@'%'",
	} {
		if _, err := admin.ExecContext(context.Background(), q); err != nil {
			t.Fatalf("%s: %v", strings.ReplaceAll(q, pw, "***"), err)
		}
	}
	t.Cleanup(func() {
		admin.ExecContext(context.Background(), "DROP USER IF EXISTS '"+partial+"'@'%'")
		admin.ExecContext(context.Background(), "DROP TABLE IF EXISTS "+tabA+", "+tabB)
	})
	pgAdmin, err := fernetstore.OpenDB(pg)
	if err != nil {
		t.Fatal(err)
	}
	defer pgAdmin.Close()
	for _, q := range []string{
		"DROP TABLE IF EXISTS " + tabA,
		"CREATE TABLE " + tabA + " (id INT PRIMARY KEY, api_key TEXT)",
		"DROP ROLE IF EXISTS " + partial,
		"CREATE ROLE " + partial + " LOGIN",
	} {
		if _, err := pgAdmin.ExecContext(context.Background(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	t.Cleanup(func() {
		pgAdmin.ExecContext(context.Background(), "DROP TABLE IF EXISTS "+tabA)
		pgAdmin.ExecContext(context.Background(), "DROP ROLE IF EXISTS "+partial)
	})

	cases := []struct {
		name, dsn, query string
		o                *fernetstore.DBOptions
		hint             string // "" for not a configuration problem
		says             string // what the hint names
	}{
		{"postgres unknown role", "postgres://nosuchrole:" + pw + "@" + pgHost + "/" + pgDB + "?sslmode=disable", "", nil, hintNoRole, "role does not exist"},
		{"postgres unknown role, asyncpg URL", "postgresql+asyncpg://nosuchrole:" + pw + "@" + pgHost + "/" + pgDB + "?ssl=require", "", nil, hintNoRole, "role does not exist"},
		{"postgres unknown database", "postgres://postgres:" + pw + "@" + pgHost + "/nosuchdb?sslmode=disable", "", nil, hintNoDatabase, "database named in the database URL does not exist"},
		{"postgres unknown database, psycopg2 URL", "postgresql+psycopg2://postgres:" + pw + "@" + pgHost + "/nosuchdb?sslmode=disable", "", nil, hintNoDatabase, "does not exist"},
		{"postgres unknown table", pg, "SELECT id FROM keyward_nosuch_table", nil, hintNoTable, "table does not exist"},
		{"postgres unknown column", pg, "SELECT keyward_nosuch_column FROM pg_class", nil, hintNoColumn, "column does not exist"},
		{"postgres unreachable", "postgres://postgres:" + pw + "@127.0.0.1:1/" + pgDB + "?sslmode=disable&connect_timeout=5", "", nil, "", ""},
		{"mysql unknown database", "mysql://root@tcp(" + myHost + ")/nosuchdb", "", nil, hintNoDatabase, "does not exist"},
		{"mysql unknown database, pymysql URL", "mysql+pymysql://root@" + myHost + "/nosuchdb?charset=utf8mb4", "", nil, hintNoDatabase, "does not exist"},
		{"mariadb unknown user", "mariadb+pymysql://nosuch:" + pw + "@" + myHost + "/" + myDB, "", nil, hintDenied, "refused the user or password"},
		{"mariadb user without a grant", "mysql://" + noGrant + ":" + pw + "@" + myHost + "/" + myDB, "", nil, hintDeniedDB, "may not use its database"},
		{"mysql unknown table", my, "SELECT id FROM keyward_nosuch_table", nil, hintNoTable, "table does not exist"},
		{"mysql unknown column", my, "SELECT keyward_nosuch_column FROM DUAL", nil, hintNoColumn, "column does not exist"},
		{"mariadb table not granted", "mysql://" + partial + ":" + pw + "@" + myHost + "/" + myDB, "SELECT id FROM " + tabB, nil, hintNoPrivilege, "lacks a privilege"},
		{"mariadb column not granted", "mysql://" + partial + ":" + pw + "@" + myHost + "/" + myDB, "SELECT api_key FROM " + tabA, nil, hintNoPrivilege, "GRANT it"},
		{"postgres table not granted", "postgres://" + partial + ":" + pw + "@" + pgHost + "/" + pgDB + "?sslmode=disable", "SELECT id FROM " + tabA, nil, hintNoPrivilege, "lacks a privilege"},
		{"mariadb unknown session variable", my + "&nosuchvar=1", "", nil, hintBadParam, "query parameter"},
		{"mariadb bad sql_mode", my + "&sql_mode=BOGUS", "", nil, hintBadParam, "query parameter"},
		{"mariadb unknown charset, pymysql URL", "mysql+pymysql://root@" + myHost + "/" + myDB + "?charset=latin9", "", nil, hintBadParam, "query parameter"},
		{"postgres unknown runtime parameter", pg + "&nosuchparam=1", "", nil, hintBadParam, "query parameter"},
		{"postgres bad statement_timeout", pg + "&statement_timeout=abc", "", nil, hintBadParam, "query parameter"},
		{"postgres unknown setting in options, psycopg2 URL", "postgresql+psycopg2://postgres@" + pgHost + "/" + pgDB + "?sslmode=disable&options=-c%20foo%3Dbar", "", nil, hintBadParam, "query parameter"},
		{"mysql unreachable", "mysql://root:" + pw + "@tcp(127.0.0.1:1)/" + myDB + "?timeout=5s", "", nil, "", ""},
		{"sqlite unknown table", "sqlite::memory:", "SELECT id FROM keyward_nosuch_table", nil, hintNoTable, "table does not exist"},
		{"sqlite unknown column", "sqlite::memory:", "SELECT keyward_nosuch_column FROM sqlite_master", nil, hintNoColumn, "column does not exist"},
		{"sqlite missing file, read-only", "sqlite:///" + filepath.Join(dir, "app.db"), "SELECT 1", &fernetstore.DBOptions{MustExist: true}, hintNoSQLiteFile, "SQLite database file does not exist"},
		{"sqlite missing directory", "sqlite:" + filepath.Join(dir, "nosuchdir", "app.db"), "", nil, hintNoSQLiteFile, "does not exist"},
		{"bad URL", "postgres://u:" + pw + "@[::1", "", nil, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := connectErr(t, c.dsn, c.query, c.o)
			if err == nil {
				t.Fatal("no error")
			}
			if found := leaked(err.Error() + fmt.Sprintf("%+v %#v", err, err)); len(found) != 0 {
				t.Fatalf("the error shows %v", found)
			}
			for what, e := range map[string]error{
				"the error": err,
				// As the store returns it: ErrUnavailable around the cause.
				"the store's error": &secrets.Error{Op: "resolve", Backend: "fernet", Code: secrets.CodeUnavailable, Reason: "database error", Err: err},
			} {
				got := configProblem(e)
				if got != c.hint {
					t.Errorf("configProblem(%s) = %q, want %q (error: %v)", what, got, c.hint, e)
				}
				if c.says != "" && !strings.Contains(got, c.says) {
					t.Errorf("the hint %q does not say %q", got, c.says)
				}
				if strings.Contains(got, "\n") || len(leaked(got)) != 0 {
					t.Errorf("the hint %q is not one line free of the DSN", got)
				}
			}
		})
	}
}

// TestConfigProblemCodes: the codes the test servers cannot produce here
// (the test PostgreSQL trusts local connections, and no MariaDB account
// authenticates by socket only), and the errors that are not configuration
// problems.
func TestConfigProblemCodes(t *testing.T) {
	for _, c := range []struct {
		err  error
		hint string
	}{
		{&pgconn.PgError{Code: "28P01"}, hintBadPassword},
		{&pgconn.PgError{Code: "57P03"}, ""},
		{&mysql.MySQLError{Number: 1698}, hintSocketOnly},
		{&mysql.MySQLError{Number: 1040}, ""},
		{fmt.Errorf("query: %w", &mysql.MySQLError{Number: 1146}), hintNoTable},
		{errors.New(`table "api_keys" has no column named provider`), hintNoColumn},
		{context.Canceled, ""},
		{context.DeadlineExceeded, ""},
		{sql.ErrConnDone, ""},
		{secrets.ErrInvalidRef, ""},
		{nil, ""},
	} {
		if got := configProblem(c.err); got != c.hint {
			t.Errorf("configProblem(%v) = %q, want %q", c.err, got, c.hint)
		}
	}
}

// TestMissingSQLiteDirectory: every command on a SQLite URL whose
// directory does not exist exits 3 with the store's reason and the hint,
// and no message calls it unavailable or a database error (the old code
// said "unavailable: database error: ... invalid ref: no SQLite database",
// and resolve exited 2, as for a malformed ref).
func TestMissingSQLiteDirectory(t *testing.T) {
	h := newHarness(t)
	h.env["ENCRYPTION_KEY"] = testKey(t)
	h.env["DATABASE_URL"] = "sqlite:///nosuchdir/app.db"
	for _, args := range [][]string{
		{"list"}, {"check"}, {"migrate"}, {"rotate"}, {"resolve", "db:1"},
		{"put", "--name", "n", "--provider", "p"}, {"update", "1"}, {"delete", "1"},
	} {
		r := h.must(exitConfig, nil, "sk-never-stored\n", args...)
		for _, says := range []string{"no SQLite database at", "nosuchdir", hintNoSQLiteFile} {
			if !strings.Contains(r.stderr, says) {
				t.Errorf("%s: stderr does not say %q", r, says)
			}
		}
		for _, not := range []string{"unavailable", "database error"} {
			if strings.Contains(r.stderr, not) {
				t.Errorf("%s: stderr says %q", r, not)
			}
		}
	}
}
