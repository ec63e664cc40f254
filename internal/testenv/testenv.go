// Package testenv finds the real servers keyward's tests talk to, and decides
// what happens when one is missing: a skip that says what to start, or, when
// KEYWARD_REQUIRE_SERVERS=1 (set by .ci/run), a failure, so CI never passes
// by skipping.
package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// Required reports whether missing servers fail tests instead of skipping them.
func Required() bool { return os.Getenv("KEYWARD_REQUIRE_SERVERS") == "1" }

// Missing skips t (or fails it under KEYWARD_REQUIRE_SERVERS=1) because what
// is not available; how says what to run to make it available.
func Missing(t testing.TB, what, how string) {
	t.Helper()
	if Required() {
		t.Fatalf("%s is not available and KEYWARD_REQUIRE_SERVERS=1: %s", what, how)
	}
	t.Skipf("%s is not available: %s (or run .ci/run, which starts everything)", what, how)
}

// Env returns the environment variable name, or calls Missing with how.
func Env(t testing.TB, name, how string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		Missing(t, name, how)
	}
	return v
}

// LookPath returns the path of the program, or calls Missing with how.
func LookPath(t testing.TB, program, how string) string {
	t.Helper()
	p, err := exec.LookPath(program)
	if err != nil {
		Missing(t, program, how)
	}
	return p
}

// PostgresDSN returns the DSN of the test PostgreSQL database
// (KEYWARD_TEST_POSTGRES_DSN), or skips.
func PostgresDSN(t testing.TB) string {
	t.Helper()
	return Env(t, "KEYWARD_TEST_POSTGRES_DSN",
		"start PostgreSQL and set KEYWARD_TEST_POSTGRES_DSN=postgres://postgres@127.0.0.1:5432/test?sslmode=disable")
}

// MySQLDSN returns the DSN of the test MariaDB/MySQL database
// (KEYWARD_TEST_MYSQL_DSN, go-sql-driver form), or skips.
func MySQLDSN(t testing.TB) string {
	t.Helper()
	return Env(t, "KEYWARD_TEST_MYSQL_DSN",
		"start MariaDB and set KEYWARD_TEST_MYSQL_DSN='root@tcp(127.0.0.1:3306)/test?parseTime=true'")
}
