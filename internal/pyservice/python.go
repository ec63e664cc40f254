package pyservice

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyward/secrets/internal/testenv"
)

// scripts are the service's Python files: models.py (its SQLAlchemy models,
// for reference and for ddl.py), service.py (its key selection),
// fixture.py (fill and read) and ddl.py (create_all's DDL, where SQLAlchemy
// is importable).
//
//go:embed python/*.py
var scripts embed.FS

// pythonModules are the modules the fixture needs, and how to get them.
var pythonModules = []struct{ name, how string }{
	{"cryptography", "pip install cryptography"},
	{"boto3", "pip install boto3"},
}

// probe prints, as JSON, which of the modules named in argv cannot be imported.
const probe = `import importlib.util, json, sys
json.dump([m for m in sys.argv[1:] if importlib.util.find_spec(m) is None], sys.stdout)`

var (
	probeMu sync.Mutex
	probed  = map[string][]string{} // python3 path -> missing modules
)

// requirePython returns the path of python3, or calls testenv.Missing
// (a skip, or a failure under KEYWARD_REQUIRE_SERVERS=1) naming Python or
// every missing module and how to install it.
func requirePython(t testing.TB) string {
	t.Helper()
	py := testenv.LookPath(t, "python3", "install Python 3 (apt-get install python3) with cryptography and boto3")
	probeMu.Lock()
	missing, ok := probed[py]
	if !ok {
		args := []string{"-c", probe}
		for _, m := range pythonModules {
			args = append(args, m.name)
		}
		out, err := exec.Command(py, args...).Output()
		if err == nil {
			err = json.Unmarshal(out, &missing)
		}
		if err != nil {
			probeMu.Unlock()
			testenv.Missing(t, "a working python3 ("+py+")", "it did not run a probe for its modules: "+err.Error())
			return ""
		}
		probed[py] = missing
	}
	probeMu.Unlock()
	if len(missing) > 0 {
		var how []string
		for _, m := range pythonModules {
			for _, name := range missing {
				if m.name == name {
					how = append(how, m.how)
				}
			}
		}
		testenv.Missing(t, "the Python module(s) "+strings.Join(missing, ", ")+" for "+py, strings.Join(how, "; "))
	}
	return py
}

// runPython runs "fixture.py command" with input as JSON on stdin and the
// fixture's environment, and decodes its JSON stdout into out (when not
// nil). A failure reports the script's last lines of stderr, with every
// canary of the fixture replaced.
func (f *Fixture) runPython(t testing.TB, command string, input, out any) {
	t.Helper()
	py := requirePython(t)
	dir := writeScripts(t)
	in, err := json.Marshal(input)
	if err != nil {
		t.Fatalf("pyservice: %v", err)
	}
	// A bound, so that a hung boto3 retry or server fails the test with a
	// message instead of at the binary's timeout.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, filepath.Join(dir, "fixture.py"), command)
	cmd.Dir = dir
	cmd.Env = f.pythonEnv()
	cmd.Stdin = bytes.NewReader(in)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
		if len(lines) > 6 {
			lines = lines[len(lines)-6:]
		}
		t.Fatalf("pyservice: fixture.py %s: %v\n%s", command, err, f.scrub(strings.Join(lines, "\n")))
	}
	if out == nil {
		return
	}
	if err := json.Unmarshal(stdout.Bytes(), out); err != nil {
		t.Fatalf("pyservice: fixture.py %s printed %d bytes that are not its JSON: %v", command, stdout.Len(), err)
	}
}

// pythonEnv is the process's environment without anything that would make
// the script use another database, key or AWS account, plus the fixture's.
func (f *Fixture) pythonEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "AWS_") || strings.HasPrefix(k, "ENCRYPTION_KEY") || k == "DATABASE_URL" {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "PYTHONDONTWRITEBYTECODE=1", "PYTHONIOENCODING=utf-8")
	return append(env, f.Env()...)
}

// writeScripts copies the embedded scripts into a directory of t's.
func writeScripts(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	entries, err := scripts.ReadDir("python")
	if err != nil {
		t.Fatalf("pyservice: %v", err)
	}
	for _, e := range entries {
		b, err := scripts.ReadFile("python/" + e.Name())
		if err != nil {
			t.Fatalf("pyservice: %v", err)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o600); err != nil {
			t.Fatalf("pyservice: %v", err)
		}
	}
	return dir
}

// scrub replaces every canary of the fixture in s, for text that came from
// Python or a database and is about to be printed.
func (f *Fixture) scrub(s string) string {
	for _, c := range f.Canaries() {
		s = strings.ReplaceAll(s, c, "[canary]")
	}
	return s
}
