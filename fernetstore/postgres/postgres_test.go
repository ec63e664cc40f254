package postgres

import (
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
