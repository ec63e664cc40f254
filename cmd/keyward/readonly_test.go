package main

import (
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "modernc.org/sqlite"
)

// TestReadOnlyCommandsCreateNoDatabase: list, check and resolve on a
// SQLite path that does not exist are a configuration error naming the
// path, and leave no file behind (the old code created an empty database,
// then said the table was missing, and the Python service's
// sqlite:///./app.db became /app.db at the root).
func TestReadOnlyCommandsCreateNoDatabase(t *testing.T) {
	h := newHarness(t)
	key := h.genkey()
	for _, url := range []string{"sqlite:missing.db", "sqlite:///./missing.db", "sqlite:///missing.db"} {
		env := map[string]string{"ENCRYPTION_KEY": key, "DATABASE_URL": url}
		for _, args := range [][]string{{"list"}, {"check"}, {"resolve", "db:1"}} {
			r := h.must(exitConfig, env, "", args...)
			if !strings.Contains(r.stderr, "missing.db") || !strings.Contains(r.stderr, "keyward init") {
				t.Errorf("keyward %s with %s: the error does not name the file and say how to make it: %s", args[0], url, r)
			}
			if _, err := os.Stat(filepath.Join(h.dir, "missing.db")); err == nil {
				t.Fatalf("keyward %s with %s created the database file", args[0], url)
			}
			if _, err := os.Stat("/missing.db"); err == nil {
				t.Fatalf("keyward %s with %s created /missing.db at the filesystem root", args[0], url)
			}
		}
	}
	// init is the command that creates it, relative to the working directory.
	h.must(0, map[string]string{"DATABASE_URL": "sqlite:///./missing.db", "ENCRYPTION_KEY": key}, "", "init")
	if _, err := os.Stat(filepath.Join(h.dir, "missing.db")); err != nil {
		t.Fatalf("init did not create ./missing.db: %v", err)
	}
}

// TestInitChecksAnExistingTable: init over a table that cannot serve the
// options says what is missing and exits 3 (the old code said "table
// api_keys is ready").
func TestInitChecksAnExistingTable(t *testing.T) {
	h := newHarness(t)
	path := filepath.Join(h.dir, "app.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE api_keys (id VARCHAR(36) NOT NULL, name VARCHAR(255), secret TEXT, PRIMARY KEY (id))`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	env := map[string]string{"DATABASE_URL": "sqlite:" + path, "ENCRYPTION_KEY": h.genkey()}
	r := h.must(exitConfig, env, "", "init")
	if !strings.Contains(r.stderr, "no column api_key") || strings.Contains(r.stdout, "ready") {
		t.Errorf("init over an incompatible table: %s", r)
	}
	h.must(exitConfig, env, "", "list")
	h.must(0, env, "", "init", "--column", "secret")
}

// TestTableFlagLeavesTheDBLine: --table naming another table than the db
// line's does not carry that line's ref_columns (the bots table has no
// key_env_var), as the old code did.
func TestTableFlagLeavesTheDBLine(t *testing.T) {
	h := newHarness(t)
	path := filepath.Join(h.dir, "app.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE bots (id VARCHAR(36) NOT NULL, name VARCHAR(255) NOT NULL, api_key_id VARCHAR(36), api_key TEXT, PRIMARY KEY (id))`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	env := map[string]string{"DATABASE_URL": "sqlite:" + path, "ENCRYPTION_KEY": h.genkey(),
		"KEYWARD_CONFIG": "db = fernet://?ref_columns=key_env_var:env,secret_name:awssm"}
	h.must(0, env, "", "--table", "bots", "--column", "api_key", "list")
}
