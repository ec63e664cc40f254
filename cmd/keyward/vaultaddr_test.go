package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestVaultAddrPasswordNotPrinted: a VAULT_ADDR with a password in its user
// info that does not parse as a URL is reported by name, with how to fix
// it, by check and by resolve; the password appears in neither output
// (url.Parse's error quotes the whole URL).
func TestVaultAddrPasswordNotPrinted(t *testing.T) {
	h := newHarness(t)
	canary := randomValue(t, "kwvaultpass")
	h.secret(canary) // checkLeaks searches every run's stdout and stderr too
	key := h.genkey()
	cfgFile := filepath.Join(h.dir, "keyward.conf")
	if err := os.WriteFile(cfgFile, []byte("vault = vault://?mount=secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := map[string]string{"ENCRYPTION_KEY": key, "VAULT_ADDR": "http://u:" + canary + "@[::1",
		"VAULT_TOKEN": "test-token-not-real"}
	with := func(extra map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	h.must(0, with(nil), "", "init")

	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
	}{
		{"check with vault configured", with(map[string]string{"KEYWARD_CONFIG_FILE": cfgFile}), []string{"check"}},
		{"resolve through the defaults", with(nil), []string{"resolve", "vault:secret/x#k"}},
		{"resolve with vault configured", with(map[string]string{"KEYWARD_CONFIG_FILE": cfgFile}), []string{"resolve", "vault:x#k"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := h.run(tc.env, "", tc.args...)
			out := r.stdout + r.stderr
			shown := strings.ReplaceAll(r.String(), canary, "<the password>")
			if strings.Contains(out, canary) {
				t.Fatalf("the output holds VAULT_ADDR's password:\n%s", shown)
			}
			if r.code == 0 || !strings.Contains(out, "VAULT_ADDR is malformed") {
				t.Errorf("want a failure saying \"VAULT_ADDR is malformed\", got\n%s", shown)
			}
		})
	}
}
