package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyward/secrets/fernetstore"
)

// Issue 11: a backend URL with an unknown parameter or a bad value is a
// configuration error (exit 3) for keyward check, whichever scheme it
// serves: the CLI's own db line included, which it used to read with a
// parser of its own that ignored what it did not know.
func TestCheckRefusesBadBackendURLs(t *testing.T) {
	h := newHarness(t)
	key := h.genkey()
	env := map[string]string{"ENCRYPTION_KEY": key, "DATABASE_URL": "sqlite:" + filepath.Join(h.dir, "keys.db")}
	h.must(0, env, "", "init")
	h.must(0, env, "", "check")
	for config, says := range map[string]string{
		"db = fernet://?bogus=1":          `unknown parameter "bogus"`,
		"db = fernet://?plaintext=maybe":  `plaintext= takes "allow"`,
		"db = fernet://?dialect=oracle":   `dialect`,
		"db = fernet://?table=api-keys":   `not allowed`,
		"db = env://":                     `not a fernet:// URL`,
		"keys = fernet://?bogus=1":        `unknown parameter "bogus"`,
		"keys = env://?allow=A_*&bogus=1": `unknown parameter "bogus"`,
	} {
		t.Run(config, func(t *testing.T) {
			with := map[string]string{"KEYWARD_CONFIG": config}
			for k, v := range env {
				with[k] = v
			}
			r := h.run(with, "", "check")
			if r.code != exitConfig || !strings.Contains(r.stderr, says) {
				t.Errorf("want exit %d saying %q, got %s", exitConfig, says, r)
			}
			// Every command that reads the configuration refuses it.
			r = h.run(with, "", "resolve", "env:HOME")
			if r.code != exitConfig || !strings.Contains(r.stderr, says) {
				t.Errorf("resolve: want exit %d saying %q, got %s", exitConfig, says, r)
			}
		})
	}
}

// Issue 11: the CLI takes the encrypted column's options from the
// configuration's db = fernet://... line through the library, so plaintext=
// and dialect= count (they were dropped).
func TestConfigDBOptionsHonoured(t *testing.T) {
	h := newHarness(t)
	key := h.genkey()
	path := filepath.Join(h.dir, "keys.db")
	env := map[string]string{"ENCRYPTION_KEY": key, "DATABASE_URL": "sqlite:" + path}
	h.must(0, env, "", "init")
	d := &database{url: "sqlite:" + path, dialect: fernetstore.SQLite, db: openTestDB(t, "sqlite:"+path)}
	value := randomValue(t, "sk-old-cfg-")
	h.secret(value)
	id := d.insertPlaintext(t, "legacy", value)

	// Without migration mode a plaintext row is refused ...
	h.must(exitFindings, env, "", "resolve", "db:"+id)
	// ... and with plaintext=allow in the configuration it resolves.
	allow := map[string]string{"KEYWARD_CONFIG": "db = fernet://?plaintext=allow"}
	for k, v := range env {
		allow[k] = v
	}
	r := h.must(0, allow, "", "resolve", "db:"+id)
	if r.stdout != "sk-old-…"+value[len(value)-3:]+"\n" {
		t.Errorf("resolve with plaintext=allow: stdout of %d bytes is not the mask", len(r.stdout))
	}

	// dialect= reaches the store: MySQL's byte-exact compare-and-swap is not
	// SQL that SQLite runs, so a migration under dialect=mysql fails where
	// the detected dialect (and dialect=sqlite) succeed.
	mysql := map[string]string{"KEYWARD_CONFIG": "db = fernet://?dialect=mysql"}
	for k, v := range env {
		mysql[k] = v
	}
	r = h.run(mysql, "", "migrate")
	// (Its catalog query, reading the table on first use, is the first to fail.)
	if r.code == 0 || !strings.Contains(r.stderr, "CONVERT") && !strings.Contains(r.stderr, "syntax") && !strings.Contains(r.stderr, "information_schema") {
		t.Errorf("migrate under dialect=mysql on SQLite: want a failure of MySQL's SQL, got %s", r)
	}
	if raw := d.raw(t); raw[id] != value {
		t.Fatal("the failed migration changed the row")
	}
	sqlite := map[string]string{"KEYWARD_CONFIG": "db = fernet://?dialect=sqlite"}
	for k, v := range env {
		sqlite[k] = v
	}
	h.must(0, sqlite, "", "migrate")
	if raw := d.raw(t); fernetstore.Classify(raw[id]) != fernetstore.KindToken {
		t.Error("migrate under dialect=sqlite did not encrypt the row")
	}
}
