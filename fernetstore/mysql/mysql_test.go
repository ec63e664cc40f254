package mysql

import (
	"testing"

	secrets "github.com/keyward/secrets"
)

// TestForms: the go-sql-driver DSN of each form, as fernetstore.OpenDB
// hands it over (scheme in lower case).
func TestForms(t *testing.T) {
	for _, c := range []struct{ dsn, conn string }{
		{"mysql://root@tcp(127.0.0.1:3306)/test?parseTime=true", "root@tcp(127.0.0.1:3306)/test?parseTime=true"},
		{"mysql://root:pw@db.example:3307/app", "root:pw@tcp(db.example:3307)/app?parseTime=true"},
		{"mysql://root@db/app?charset=utf8mb4", "root@tcp(db:3306)/app?parseTime=true&charset=utf8mb4"},
		{"mariadb://root@db/app", "root@tcp(db:3306)/app?parseTime=true"},
	} {
		cfg, _, err := parse(c.dsn)
		if err != nil {
			t.Errorf("parse(%q): %v", c.dsn, err)
		} else if got := cfg.FormatDSN(); got != c.conn {
			t.Errorf("parse(%q) = %q; want %q", c.dsn, got, c.conn)
		}
	}
}

// TestPercentEncoded: reserved characters percent-encoded in the user
// information are accepted and decoded, and the description used in
// connection errors holds neither user nor password.
func TestPercentEncoded(t *testing.T) {
	const user, password = "canaryuser", "CANARYPW-7f3a" // no error or description may show them
	cfg, where, err := parse("mariadb://" + user + ":p%2F%40" + password + "@[::1]/app")
	if err != nil {
		t.Fatalf("parse: %v (its text is not shown: it could hold the canary)", secrets.CodeOf(err))
	}
	if cfg.User != user || cfg.Passwd != "p/@"+password || cfg.Addr != "[::1]:3306" || cfg.DBName != "app" {
		t.Errorf("mysql config: user %q, addr %q, database %q (and a password of %d bytes)", cfg.User, cfg.Addr, cfg.DBName, len(cfg.Passwd))
	}
	if want := `MySQL at [::1]:3306, database "app"`; where != want {
		t.Errorf("description %q, want %q", where, want)
	}
}
