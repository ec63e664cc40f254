package postgres

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	secrets "github.com/keyward/secrets"
)

// A user name and password no error or description may show.
const (
	canaryUser = "canaryuser"
	canaryPW   = "CANARYPW-7f3a"
)

// TestForms: the URL pgx gets for each form (fernetstore.OpenDB hands the
// DSN over with its scheme in lower case).
func TestForms(t *testing.T) {
	for _, c := range []struct{ dsn, conn string }{
		{"postgres://u@h:5432/db?sslmode=disable", "postgres://u@h:5432/db?sslmode=disable"},
		{"postgresql://u@h/db", "postgres://u@h/db"},
		{"postgresql+psycopg2://u:p%40w@h:5433/db?sslmode=require&connect_timeout=10", "postgres://u:p%40w@h:5433/db?sslmode=require&connect_timeout=10"},
		{"postgresql+psycopg://u@/db?host=/run/postgresql", "postgres://u@/db?host=/run/postgresql"},
		{"postgresql+pg8000://u@h/db", "postgres://u@h/db"},
		// asyncpg's parameters are libpq's, or the Python client's own.
		{"postgresql+asyncpg://u@h/db?ssl=require", "postgres://u@h/db?sslmode=require"},
		{"postgresql+asyncpg://u@h/db?ssl=verify-full&timeout=2.5&application_name=x", "postgres://u@h/db?sslmode=verify-full&connect_timeout=3&application_name=x"},
		{"postgresql+asyncpg://u@h/db?prepared_statement_cache_size=0&statement_cache_size=0&command_timeout=60", "postgres://u@h/db"},
	} {
		conn, _, err := parse(c.dsn)
		if err != nil || conn != c.conn {
			t.Errorf("parse(%q) = %q, %v; want %q", c.dsn, conn, err, c.conn)
		}
	}
}

// TestPercentEncoded: reserved characters percent-encoded in the user
// information or the database name are accepted and decoded, and the
// description used in connection errors holds neither user nor password.
func TestPercentEncoded(t *testing.T) {
	conn, where, err := parse("postgres://" + canaryUser + ":p%2F%40%23%3F" + canaryPW + "@db.example:6432/my%40db?sslmode=disable")
	if err != nil {
		t.Fatalf("parse: %v (its text is not shown: it could hold the canary)", secrets.CodeOf(err))
	}
	cfg, err := pgconn.ParseConfig(conn)
	if err != nil {
		t.Fatalf("pgx: %v", secrets.CodeOf(err))
	}
	if cfg.User != canaryUser || cfg.Password != "p/@#?"+canaryPW || cfg.Host != "db.example" || cfg.Port != 6432 || cfg.Database != "my@db" {
		t.Errorf("pgx reads user %q, host %q, port %d, database %q (and a password of %d bytes)", cfg.User, cfg.Host, cfg.Port, cfg.Database, len(cfg.Password))
	}
	if want := `PostgreSQL at db.example:6432, database "my@db"`; where != want {
		t.Errorf("description %q, want %q", where, want)
	}
}

// TestAsyncpgRefused: asyncpg parameters keyward cannot map are refused,
// without quoting their values.
func TestAsyncpgRefused(t *testing.T) {
	for _, c := range []struct{ dsn, says string }{
		{"postgresql+asyncpg://u@h/db?ssl=" + canaryPW, "ssl is not one of disable, allow, prefer, require, verify-ca, verify-full"},
		{"postgresql+asyncpg://u@h/db?ssl=true", "ssl is not one of"},
		{"postgresql+asyncpg://u@h/db?timeout=" + canaryPW, "timeout is not a positive number of seconds"},
		{"postgresql+asyncpg://u@h/db?ssl=require&sslmode=disable", "both ssl and sslmode"},
		{"postgresql+asyncpg://u@h/db?x=%zz", "does not parse"},
	} {
		_, _, err := parse(c.dsn)
		if err == nil || !strings.Contains(err.Error(), c.says) || strings.Contains(err.Error(), canaryPW) {
			t.Errorf("parse(%q) = %v; want an error saying %q, without the value", c.dsn, err, c.says)
		}
	}
}
