package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// keywardBin builds the operator CLI once per test, as the warning tells the
// operator to run it.
func keywardBin(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "keyward")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/keyward").CombinedOutput(); err != nil {
		t.Fatalf("build keyward: %v\n%s", err, out)
	}
	return bin
}

// keyward runs the CLI with env as its whole environment (plus PATH and
// HOME) and returns its stdout; stderr must hold no key.
func keyward(t *testing.T, bin string, env map[string]string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("keyward %s: %v\nstderr: %s", strings.Join(args, " "), err, stderr.String())
	}
	for _, v := range env {
		if len(v) >= 32 && strings.Contains(stderr.String(), v) {
			t.Errorf("keyward %s printed a key on stderr", args[0])
		}
	}
	return string(out)
}

// warningSteps returns the steps of the development-key warning in log.
func warningSteps(t *testing.T, log string) string {
	t.Helper()
	for _, line := range strings.Split(log, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil {
			continue
		}
		for _, field := range []string{"to_move_to_a_real_key", "to_fix"} {
			if s, ok := m[field].(string); ok {
				return s
			}
		}
	}
	return ""
}

// Issue 14 item 7: following the development-key warning leads to a real
// key with every bot still chatting. Before, setting ENCRYPTION_KEY as the
// warning said made every bot's key undecryptable (500s), with no hint.
func TestDevelopmentKeyToRealKey(t *testing.T) {
	bin := keywardBin(t)
	dir := t.TempDir()
	dbURL := "sqlite:" + filepath.Join(dir, "chatservice.db")

	// 1. The zero-config start, on the development key.
	env := map[string]string{"CHAT_DATA_DIR": dir, "CHAT_RATE": "1000", "CHAT_BURST": "1000"}
	s := start(t, env)
	steps := warningSteps(t, s.stderr.String())
	devKeyPath := filepath.Join(dir, devKeyFile)
	for _, want := range []string{"keyward genkey", "ENCRYPTION_KEY_PREVIOUS=$(cat " + devKeyPath + ")", "keyward rotate", "delete " + devKeyPath} {
		if !strings.Contains(steps, want) {
			t.Fatalf("the warning's steps lack %q: %q", want, steps)
		}
	}
	if code, body := s.post(t, "/api/chat/1", `{"message":"hi"}`); code != 200 {
		t.Fatalf("on the development key: %d %v", code, body)
	}
	devToken := s.devToken
	devKey, err := os.ReadFile(devKeyPath)
	if err != nil {
		t.Fatal(err)
	}

	// Setting only ENCRYPTION_KEY, as the old warning said: the start says
	// what is wrong and how to fix it, and the bot's key does not decrypt.
	_, newKey, _ := strings.Cut(strings.TrimSpace(keyward(t, bin, nil, "genkey")), "=")
	wrong := start(t, map[string]string{"CHAT_DATA_DIR": dir, "ENCRYPTION_KEY": newKey})
	if fix := warningSteps(t, wrong.stderr.String()); !strings.Contains(fix, "ENCRYPTION_KEY_PREVIOUS=$(cat "+devKeyPath+")") {
		t.Errorf("ENCRYPTION_KEY set without moving the rows: no warning with the fix (%q)\n%s", fix, wrong.stderr)
	}
	wrong.token = devToken
	if code, body := wrong.post(t, "/api/chat/1", `{"message":"hi"}`); code != 500 || body["code"] != "key_undecryptable" {
		t.Errorf("before the rotation: %d %v, want 500 key_undecryptable", code, body)
	}

	// 2. The steps: the new key as ENCRYPTION_KEY, the development key as
	// ENCRYPTION_KEY_PREVIOUS, keyward rotate.
	rotateEnv := map[string]string{"ENCRYPTION_KEY": newKey, "ENCRYPTION_KEY_PREVIOUS": strings.TrimSpace(string(devKey))}
	keyward(t, bin, rotateEnv, "rotate", "--db", dbURL)
	// 3. keyward check says every row is under the primary key; then the
	// previous key goes, and the development key file.
	keyward(t, bin, map[string]string{"ENCRYPTION_KEY": newKey}, "check", "--db", dbURL)
	if err := os.Remove(devKeyPath); err != nil {
		t.Fatal(err)
	}

	// The service on the real key alone: every bot chats, no warning.
	real := start(t, map[string]string{"CHAT_DATA_DIR": dir, "ENCRYPTION_KEY": newKey, "CHAT_RATE": "1000", "CHAT_BURST": "1000"})
	if w := warningSteps(t, real.stderr.String()); w != "" || strings.Contains(real.stderr.String(), "DEVELOPMENT") {
		t.Errorf("a warning on the real key: %s", real.stderr)
	}
	if real.devToken != "" || strings.Contains(real.stdout.String(), "export CHAT_TOKEN=") {
		t.Error("the start on a real key printed a development token")
	}
	_, tok, err := real.tokens.add(context.Background(), "after the move", []string{"*"})
	if err != nil {
		t.Fatal(err)
	}
	real.token = tok
	for _, id := range []string{"1", "2"} {
		if code, body := real.post(t, "/api/chat/"+id, `{"message":"hi"}`); code != 200 {
			t.Errorf("bot %s on the real key: %d %v", id, code, body)
		}
	}
	real.assertNoKeys(t, newKey, strings.TrimSpace(string(devKey)))
}
