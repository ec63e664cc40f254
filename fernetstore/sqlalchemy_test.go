package fernetstore

import (
	"context"
	"database/sql"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/internal/testenv"
)

// sqliteFile is the file behind an open SQLite database ("" in memory).
func sqliteFile(t *testing.T, db *sql.DB) string {
	t.Helper()
	var seq int
	var name, file string
	if err := db.QueryRowContext(context.Background(), "PRAGMA database_list").Scan(&seq, &name, &file); err != nil {
		t.Fatal(err)
	}
	return file
}

// TestSQLAlchemySQLiteURLs: the Python service's DATABASE_URL, as SQLAlchemy
// reads it: sqlite:///rel.db is relative to the working directory (it used
// to be /rel.db, at the filesystem root), sqlite:////abs.db absolute, and
// sqlite:// and sqlite:///:memory: are in memory.
func TestSQLAlchemySQLiteURLs(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	ctx := context.Background()
	rel := "keyward-sqlalchemy-" + strings.ReplaceAll(t.Name(), "/", "-") + ".db"
	// The old code created it at the root; do not leave it there.
	t.Cleanup(func() { os.Remove("/" + rel) })
	abs := filepath.Join(t.TempDir(), "abs.db")
	for _, c := range []struct{ dsn, file string }{
		{"sqlite:///" + rel, filepath.Join(dir, rel)},
		{"sqlite:///./sub-" + rel, ""}, // its directory does not exist: see below
		{"sqlite:///" + abs, abs},      // four slashes
		{"sqlite+pysqlite:///" + rel, filepath.Join(dir, rel)},
		{"sqlite+aiosqlite:///" + rel, filepath.Join(dir, rel)},
		{"SQLite:///" + rel + "?check_same_thread=false&timeout=5", filepath.Join(dir, rel)},
		{"sqlite://", ""},
		{"sqlite:///:memory:", ""},
		{"sqlite:///", ""},
	} {
		if strings.Contains(c.dsn, "sub-") {
			continue
		}
		db, err := OpenDB(c.dsn)
		if err != nil {
			t.Fatalf("OpenDB(%q): %v", c.dsn, err)
		}
		_, err = db.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS t (x INTEGER)")
		if err != nil {
			db.Close()
			t.Fatalf("%s: %v", c.dsn, err)
		}
		got := sqliteFile(t, db)
		db.Close()
		if got != c.file {
			t.Errorf("%s opens %q, want %q", c.dsn, got, c.file)
		}
	}
	if _, err := os.Stat("/" + rel); err == nil {
		t.Errorf("sqlite:///%s created /%s at the filesystem root", rel, rel)
	}
}

// TestSQLAlchemySQLiteTimeout: pysqlite's timeout (seconds) is SQLite's busy
// timeout, and its Python-only parameters are dropped.
func TestSQLAlchemySQLiteTimeout(t *testing.T) {
	t.Chdir(t.TempDir())
	db, err := OpenDB("sqlite:///t.db?timeout=2.5&check_same_thread=False&detect_types=0")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var ms int
	if err := db.QueryRowContext(context.Background(), "PRAGMA busy_timeout").Scan(&ms); err != nil || ms != 2500 {
		t.Errorf("busy_timeout %d, %v; want 2500", ms, err)
	}
}

// TestSQLAlchemyPostgresURLs: postgresql+DRIVER:// of SQLAlchemy's
// PostgreSQL drivers reach the server, with their query parameters:
// psycopg's sslmode and asyncpg's ssl reach pgx (the test server has SSL
// on, so the connection is encrypted exactly when they ask).
func TestSQLAlchemyPostgresURLs(t *testing.T) {
	base := testenv.PostgresDSN(t)
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	withQuery := func(scheme, query string) string {
		v := *u
		v.RawQuery = query
		_, rest, _ := strings.Cut(v.String(), "://")
		return scheme + "://" + rest
	}
	for _, c := range []struct {
		dsn string
		ssl bool
	}{
		{withQuery("postgresql", "sslmode=disable"), false},
		{withQuery("postgresql+psycopg2", "sslmode=disable"), false},
		{withQuery("postgresql+psycopg2", "sslmode=require"), true},
		{withQuery("postgresql+psycopg", "sslmode=require&application_name=keyward-test"), true},
		{withQuery("postgresql+pg8000", "sslmode=disable"), false},
		{withQuery("postgresql+asyncpg", "ssl=require"), true},
		{withQuery("postgresql+asyncpg", "ssl=disable&prepared_statement_cache_size=100&timeout=5"), false},
		{withQuery("PostgreSQL+AsyncPG", "ssl=disable"), false},
	} {
		db, err := OpenDB(c.dsn)
		if err != nil {
			t.Errorf("OpenDB(%s): %v", c.dsn, err)
			continue
		}
		var dbName string
		var ssl bool
		err = db.QueryRowContext(ctx, "SELECT current_database(), ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&dbName, &ssl)
		db.Close()
		if err != nil {
			t.Errorf("%s: %v", c.dsn, err)
			continue
		}
		if want := strings.TrimPrefix(u.Path, "/"); dbName != want || ssl != c.ssl {
			t.Errorf("%s: database %q, ssl %v; want %q, ssl %v", c.dsn, dbName, ssl, want, c.ssl)
		}
	}
}

// TestSQLAlchemyMySQLURLs: mysql+DRIVER:// and mariadb+DRIVER:// of
// SQLAlchemy's MySQL drivers reach the server with their parameters
// (pymysql's charset=utf8mb4 used to be sent as SET charset=..., which the
// server refuses), and times are parsed as with mysql://host/db.
func TestSQLAlchemyMySQLURLs(t *testing.T) {
	cfg, err := mysql.ParseDSN(testenv.MySQLDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	userinfo := url.User(cfg.User).String()
	if cfg.Passwd != "" {
		userinfo = url.UserPassword(cfg.User, cfg.Passwd).String()
	}
	for _, c := range []struct{ scheme, query, charset string }{
		{"mysql", "charset=utf8mb4", "utf8mb4"},
		{"mysql+pymysql", "charset=utf8mb4", "utf8mb4"},
		{"mysql+pymysql", "charset=latin1&connect_timeout=5&read_timeout=30&write_timeout=30&use_unicode=1&binary_prefix=true", "latin1"},
		{"mysql+mysqldb", "charset=utf8mb4", "utf8mb4"},
		{"mysql+aiomysql", "charset=utf8mb4", "utf8mb4"},
		{"mysql+asyncmy", "charset=utf8mb4", "utf8mb4"},
		{"mariadb+pymysql", "charset=utf8mb4", "utf8mb4"},
		{"mariadb+mysqldb", "charset=utf8mb4", "utf8mb4"},
		{"mariadb+mariadbconnector", "", ""},
		{"MySQL+PyMySQL", "charset=utf8mb4", "utf8mb4"},
	} {
		dsn := c.scheme + "://" + userinfo + "@" + cfg.Addr + "/" + cfg.DBName
		if c.query != "" {
			dsn += "?" + c.query
		}
		db, err := OpenDB(dsn)
		if err != nil {
			t.Errorf("OpenDB(%s): %v", c.scheme, err)
			continue
		}
		var dbName, charset string
		var now time.Time
		err = db.QueryRowContext(ctx, "SELECT DATABASE(), @@character_set_client, NOW()").Scan(&dbName, &charset, &now)
		db.Close()
		if err != nil {
			t.Errorf("%s?%s: %v", c.scheme, c.query, err)
			continue
		}
		if dbName != cfg.DBName || (c.charset != "" && charset != c.charset) {
			t.Errorf("%s?%s: database %q, charset %q; want %q, %q", c.scheme, c.query, dbName, charset, cfg.DBName, c.charset)
		}
	}
}

// TestSQLAlchemyUnknownDrivers: a dialect or driver keyward cannot open is
// refused before any I/O, with the forms it accepts, quoting nothing after
// the scheme.
func TestSQLAlchemyUnknownDrivers(t *testing.T) {
	for _, dsn := range []string{
		"mssql+pyodbc://" + dsnCanaryUser + ":" + dsnCanary + "@h/db?driver=ODBC+Driver+17",
		"oracle://" + dsnCanaryUser + ":" + dsnCanary + "@h:1521/db",
		"oracle+cx_oracle://" + dsnCanaryUser + ":" + dsnCanary + "@h:1521/db",
		"postgresql+foo://" + dsnCanaryUser + ":" + dsnCanary + "@h/db",
		"mysql+foo://" + dsnCanaryUser + ":" + dsnCanary + "@h/db",
		"mariadb+mariadbconnectorx://" + dsnCanaryUser + ":" + dsnCanary + "@h/db",
		"sqlite+pysqlcipher://:" + dsnCanary + "@/k.db",
	} {
		scheme, _, _ := strings.Cut(dsn, "://")
		_, err := OpenDB(dsn)
		if !errors.Is(err, secrets.ErrInvalidRef) {
			t.Errorf("%s: %v, want ErrInvalidRef", scheme, err)
			continue
		}
		assertNoDSNLeak(t, scheme, err)
		msg := err.Error()
		for _, want := range []string{"sqlite:///", "postgresql+psycopg2://", "postgresql+asyncpg://", "mysql+pymysql://"} {
			if !strings.Contains(msg, want) {
				t.Errorf("%s: the error does not list %s: %s", scheme, want, shown(err))
			}
		}
	}
}
