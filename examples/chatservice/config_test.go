package main

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	secrets "github.com/keyward/secrets"
)

// runUntilReady runs the service with env and stops it as soon as it
// listens; it returns run's error (nil if it started).
func runUntilReady(t *testing.T, env map[string]string) error {
	t.Helper()
	env["CHAT_ADDR"] = "127.0.0.1:0"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	return run(ctx, func(k string) string { return env[k] }, io.Discard, io.Discard, &runOptions{ready: func(*app) { cancel() }})
}

// Issue 11: the service reads its configuration through the library, so it
// refuses KEYWARD_CONFIG and KEYWARD_CONFIG_FILE set together as the library
// does (it used to prefer KEYWARD_CONFIG), before it touches the database.
func TestConfigBothSetRefused(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "keyward.conf")
	if err := os.WriteFile(file, []byte("env = env://\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := runUntilReady(t, map[string]string{"CHAT_DATA_DIR": dir,
		secrets.ConfigEnv: "env = env://", secrets.ConfigFileEnv: file})
	if !errors.Is(err, secrets.ErrInvalidRef) || !strings.Contains(err.Error(), "both set") {
		t.Fatalf("run = %v; want the library's refusal of both variables", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "chatservice.db")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the service made its database before refusing the configuration: %v", err)
	}
}

// Issue 11: a backend URL the service would only use later, or the db line
// its own column takes its options from, fails the start on a typo.
func TestConfigBadURLStopsStart(t *testing.T) {
	for config, says := range map[string]string{
		"db = fernet://?bogus=1":                   `unknown parameter "bogus"`,
		"db = fernet://?plaintext=maybe":           `plaintext= takes "allow"`,
		"env = env://; keys = vault://?auth=bogus": "unknown auth method",
	} {
		err := runUntilReady(t, map[string]string{"CHAT_DATA_DIR": t.TempDir(), secrets.ConfigEnv: config})
		if !errors.Is(err, secrets.ErrInvalidRef) || !strings.Contains(err.Error(), says) {
			t.Errorf("%s: run = %v; want ErrInvalidRef saying %q", config, err, says)
		}
	}
}
