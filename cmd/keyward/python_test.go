package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyward/secrets/internal/testenv"
)

// python returns the python3 path, skipping (failing under
// KEYWARD_REQUIRE_SERVERS=1) when python3 or its cryptography package is missing.
func python(t *testing.T) string {
	t.Helper()
	py := testenv.LookPath(t, "python3", "install Python 3 and its cryptography package (apt-get install python3-cryptography)")
	if err := exec.Command(py, "-c", "import cryptography.fernet").Run(); err != nil {
		testenv.Missing(t, "python3 cryptography", "pip install cryptography (or apt-get install python3-cryptography)")
	}
	return py
}

// runPython runs a script with env; keys and values go through the
// environment, never argv. Its output must hold no secret.
func runPython(t *testing.T, h *harness, py, script string, env map[string]string, args ...string) string {
	t.Helper()
	path := filepath.Join(h.dir, "script.py")
	if err := os.WriteFile(path, []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, append([]string{path}, args...)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + h.dir}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	for _, s := range h.secrets {
		if strings.Contains(string(out), s) {
			t.Fatal("the Python script printed a secret")
		}
	}
	if err != nil {
		t.Fatalf("python %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestGenkeyPython: Python's Fernet accepts the key keyward genkey prints,
// and a token it makes under that key resolves through keyward.
func TestGenkeyPython(t *testing.T) {
	py := python(t)
	h := newHarness(t)
	key := h.genkey()
	out := runPython(t, h, py, `
import os
from cryptography.fernet import Fernet
Fernet(os.environ["KEY"].encode())
print("accepted")
`, map[string]string{"KEY": key})
	if strings.TrimSpace(out) != "accepted" {
		t.Fatalf("python: %q", out)
	}
}

// interopScript writes a table as a Python service would (its own schema, a
// custom value column, Fernet tokens mixed with legacy plaintext), and reads
// it back, checking every row against the expected values.
const interopScript = `
import json, os, sqlite3, sys
from cryptography.fernet import Fernet, MultiFernet, InvalidToken

mode = sys.argv[1]
con = sqlite3.connect(os.environ["DB_PATH"])
rows = json.loads(os.environ["ROWS"])  # [[name, value, encrypted], ...]
k1 = Fernet(os.environ["KEY1"].encode())

if mode == "write":
    con.execute("""CREATE TABLE bots (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        provider TEXT NOT NULL,
        secret TEXT,
        expires_at TIMESTAMP,
        created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP)""")
    for name, value, encrypted in rows:
        stored = k1.encrypt(value.encode()).decode() if encrypted else value
        con.execute("INSERT INTO bots (name, provider, secret) VALUES (?, 'anthropic', ?)", (name, stored))
    con.commit()
    print("wrote", len(rows))
    sys.exit(0)

want = {name: value for name, value, _ in rows}
if mode == "read-key1":
    readers = [("key1", k1)]
    stale = []
elif mode == "read-key2":
    k2 = Fernet(os.environ["KEY2"].encode())
    readers = [("key2", k2), ("multifernet", MultiFernet([k2, k1]))]
    stale = [k1]
else:
    sys.exit("unknown mode")
got = con.execute("SELECT name, secret FROM bots ORDER BY id").fetchall()
if len(got) != len(rows):
    sys.exit("want %d rows, got %d" % (len(rows), len(got)))
for name, stored in got:
    for label, f in readers:
        try:
            plain = f.decrypt(stored.encode()).decode()
        except InvalidToken:
            sys.exit("row %s: %s cannot decrypt it" % (name, label))
        if plain != want[name]:
            sys.exit("row %s: %s decrypts to the wrong value" % (name, label))
    for f in stale:
        try:
            f.decrypt(stored.encode())
            sys.exit("row %s: the old key still decrypts it after rotation" % name)
        except InvalidToken:
            pass
print("ok", len(got))
`

// TestPythonInterop is issue 7's acceptance: a SQLite table written by
// Python (Fernet tokens and plaintext) migrates with keyward migrate, reads
// back in Python, and after keyward rotate to a new key reads back in Python
// with the new key (and MultiFernet) while the old key opens nothing.
func TestPythonInterop(t *testing.T) {
	py := python(t)
	h := newHarness(t)
	key1, key2 := h.genkey(), h.genkey()
	dbPath := filepath.Join(h.dir, "python.db")
	type row struct {
		name, value string
		encrypted   bool
	}
	var rows []row
	for i, enc := range []bool{true, false, true, false, false, true} {
		v := randomValue(t, "sk-ant-py-")
		if i == 4 {
			v = "sk-ant-py-ünïcode-" + v // non-ASCII survives both languages
		}
		h.secret(v)
		rows = append(rows, row{name: "bot" + string(rune('a'+i)), value: v, encrypted: enc})
	}
	js := make([][]any, len(rows))
	for i, r := range rows {
		js[i] = []any{r.name, r.value, r.encrypted}
	}
	rowsJSON, _ := json.Marshal(js)
	pyEnv := map[string]string{"DB_PATH": dbPath, "ROWS": string(rowsJSON), "KEY1": key1, "KEY2": key2}

	runPython(t, h, py, interopScript, pyEnv, "write")

	db := []string{"--db", "sqlite:" + dbPath, "--table", "bots", "--column", "secret"}
	k1 := map[string]string{"ENCRYPTION_KEY": key1}
	st := states(t, h.must(0, k1, "", append(db, "list")...).stdout)
	for i, r := range rows {
		want := "plaintext"
		if r.encrypted {
			want = "encrypted"
		}
		if got := st[string(rune('1'+i))]; got != want {
			t.Errorf("row %d (%s): state %s, want %s", i+1, r.name, got, want)
		}
	}
	// A Python token resolves through keyward as it is.
	if r := h.must(0, k1, "", append(db, "resolve", "--reveal", "db:1")...); r.stdout != rows[0].value+"\n" {
		t.Error("a Python token does not resolve through keyward")
	}
	h.must(exitFindings, k1, "", append(db, "check")...)

	r := h.must(0, k1, "", append(db, "migrate")...)
	if !strings.Contains(r.stdout, "3 rewritten") {
		t.Errorf("migrate: %s", r)
	}
	if out := runPython(t, h, py, interopScript, pyEnv, "read-key1"); strings.TrimSpace(out) != "ok 6" {
		t.Fatalf("python after migrate: %q", out)
	}

	k2 := map[string]string{"ENCRYPTION_KEY": key2, "ENCRYPTION_KEY_PREVIOUS": key1}
	r = h.must(0, k2, "", append(db, "rotate")...)
	if !strings.Contains(r.stdout, "6 rewritten") {
		t.Errorf("rotate: %s", r)
	}
	if out := runPython(t, h, py, interopScript, pyEnv, "read-key2"); strings.TrimSpace(out) != "ok 6" {
		t.Fatalf("python after rotate: %q", out)
	}
	h.must(0, map[string]string{"ENCRYPTION_KEY": key2}, "", append(db, "check")...)
}
