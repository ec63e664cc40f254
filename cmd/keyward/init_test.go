package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestInitWithoutKey: creating the table needs no ENCRYPTION_KEY (the old
// code exited 3: "ENCRYPTION_KEY is not set"); what needs the key still
// says to set it, and the table init made is the one put then fills.
func TestInitWithoutKey(t *testing.T) {
	db := "sqlite:" + filepath.Join(t.TempDir(), "k.db")
	noKey := map[string]string{"DATABASE_URL": db}
	code, out, stderr := runInProcess(noKey, "", "init")
	if code != exitOK || !strings.Contains(out, "api_keys") {
		t.Fatalf("init without ENCRYPTION_KEY: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, stderr)
	}
	if code, _, stderr := runInProcess(noKey, "", "init"); code != exitOK { // idempotent
		t.Fatalf("second init: exit %d\n%s", code, stderr)
	}
	// A malformed key is not init's business either.
	if code, _, stderr := runInProcess(map[string]string{"DATABASE_URL": db, "ENCRYPTION_KEY": "abc"}, "", "init"); code != exitOK {
		t.Errorf("init with a malformed ENCRYPTION_KEY: exit %d\n%s", code, stderr)
	}
	code, _, stderr = runInProcess(noKey, "v", "put", "--name", "n", "--provider", "p")
	if code != exitConfig || !strings.Contains(stderr, "ENCRYPTION_KEY is not set") {
		t.Errorf("put without ENCRYPTION_KEY: exit %d\n%s", code, stderr)
	}
	withKey := map[string]string{"DATABASE_URL": db, "ENCRYPTION_KEY": testKey(t)}
	if code, _, stderr := runInProcess(withKey, "sk-ant-init-test", "put", "--name", "n", "--provider", "p"); code != exitOK {
		t.Errorf("put into the table init made without a key: exit %d\n%s", code, stderr)
	}
	// An incompatible table is still refused, key or not.
	code, _, stderr = runInProcess(noKey, "", "init", "--column", "nosuch")
	if code != exitConfig || !strings.Contains(stderr, "nosuch") {
		t.Errorf("init over a table without the --column: exit %d\n%s", code, stderr)
	}
}
