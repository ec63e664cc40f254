package mysql

import (
	"crypto/tls"
	"encoding/pem"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	secrets "github.com/keyward/secrets"
)

// TestForms: the go-sql-driver DSN of each form, as fernetstore.OpenDB
// hands it over (scheme in lower case).
func TestForms(t *testing.T) {
	for _, c := range []struct{ dsn, conn string }{
		{"mysql://root@tcp(127.0.0.1:3306)/test?parseTime=true", "root@tcp(127.0.0.1:3306)/test?parseTime=true"},
		{"mysql://root:pw@db.example:3307/app", "root:pw@tcp(db.example:3307)/app?parseTime=true"},
		{"mysql://root@db/app?charset=utf8mb4", "root@tcp(db:3306)/app?charset=utf8mb4&parseTime=true"},
		{"mariadb://root@db/app", "root@tcp(db:3306)/app?parseTime=true"},
		// The driver's own parameters are its, not session variables
		// (timeout=5s used to be sent as SET timeout=5s, charset as SET charset).
		{"mysql://root@db/app?timeout=5s&loc=UTC&sql_mode=ANSI", "root@tcp(db:3306)/app?parseTime=true&timeout=5s&sql_mode=ANSI"},
		// SQLAlchemy's forms.
		{"mysql+pymysql://root:pw@db/app?charset=utf8mb4", "root:pw@tcp(db:3306)/app?charset=utf8mb4&parseTime=true"},
		{"mysql+mysqldb://root@db:3307/app?connect_timeout=5&read_timeout=30&write_timeout=2.5", "root@tcp(db:3307)/app?parseTime=true&readTimeout=30s&timeout=5s&writeTimeout=2.5s"},
		{"mariadb+mariadbconnector://root@db/app?use_unicode=1&binary_prefix=true&autocommit=false&local_infile=1", "root@tcp(db:3306)/app?parseTime=true"},
		{"mysql+aiomysql://root@/app?unix_socket=/run/mysqld/mysqld.sock", "root@unix(/run/mysqld/mysqld.sock)/app?parseTime=true"},
		{"mysql+pymysql://root@db/app?parseTime=false&time_zone=%27%2B00%3A00%27", "root@tcp(db:3306)/app?time_zone=%27%2B00%3A00%27"},
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

// TestRefused: what SQLAlchemy's forms cannot map is refused before any
// I/O, naming the parameter (one of keyward's words), never its value.
func TestRefused(t *testing.T) {
	for _, c := range []struct{ dsn, says string }{
		{"mysql+pymysql://root@db/app?init_command=SET+x%3D1", "init_command is not supported"},
		{"mysql+pymysql://root@db/app?ssl_capath=/etc/ssl", "ssl_capath is not supported"},
		{"mysql+pymysql://root@db/app?connect_timeout=soon", "connect_timeout is not a number of seconds"},
		{"mysql+pymysql://root@db/app?ssl_cert=/c.pem", "give both"},
		{"mysql+pymysql://root@db/app?ssl_ca=/ca.pem&tls=true", "keep one"},
		{"mysql+pymysql://root@db/app?ssl_check_hostname=false", "without ssl_ca"},
		{"mysql+pymysql://root@/app", "no host"},
		{"mysql+pymysql://root@tcp(db:3306)/app", "does not parse"},
		{"mysql://root@db/app?timeout=soon", "the driver rejects"},
	} {
		_, _, err := parse(c.dsn)
		if err == nil || !strings.Contains(err.Error(), c.says) || strings.Contains(err.Error(), "SET") || strings.Contains(err.Error(), "soon") {
			t.Errorf("parse(%s) = %v; want an error saying %q, without the value", c.dsn, err, c.says)
		}
	}
}

// TestSSLFiles: ssl_ca verifies the server against that CA (read on
// connect, not at the open), with its name checked unless
// ssl_check_hostname=false, and the errors name the file only.
func TestSSLFiles(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes
	srv.StartTLS()
	defer srv.Close()
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	addr := srv.Listener.Addr().String()

	// From the URL: the files are kept, not read.
	cfg, _, err := parse("mysql+pymysql://root@" + addr + "/app?ssl_ca=" + missing)
	if err != nil || cfg.TLS == nil || cfg.TLS.VerifyConnection == nil {
		t.Fatalf("parse with ssl_ca: TLS %v, %v", cfg.TLS, err)
	}
	dial := func(f tlsFiles, host string) error {
		c, err := tls.Dial("tcp", addr, f.config(host))
		if err == nil {
			c.Close()
		}
		return err
	}
	// httptest's certificate is for example.com and 127.0.0.1.
	for _, c := range []struct {
		f    tlsFiles
		host string
		says string // "" if it connects
	}{
		{tlsFiles{ca: ca, checkHostname: true}, "127.0.0.1", ""},
		{tlsFiles{ca: ca, checkHostname: true}, "example.com", ""},
		{tlsFiles{ca: ca, checkHostname: true}, "wrong.example", "wrong.example"},
		{tlsFiles{ca: ca}, "wrong.example", ""},
		{tlsFiles{ca: notPEM, checkHostname: true}, "127.0.0.1", "ssl_ca " + notPEM + " holds no PEM certificate"},
		{tlsFiles{ca: missing, checkHostname: true}, "127.0.0.1", "cannot read ssl_ca " + missing},
		{tlsFiles{checkHostname: true}, "127.0.0.1", "unknown authority"}, // the system's roots
	} {
		err := dial(c.f, c.host)
		switch {
		case c.says == "" && err != nil:
			t.Errorf("%+v to %s: %v", c.f, c.host, err)
		case c.says != "" && (err == nil || !strings.Contains(err.Error(), c.says)):
			t.Errorf("%+v to %s: %v; want an error saying %q", c.f, c.host, err, c.says)
		}
	}
}
