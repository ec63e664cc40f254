package secrets_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	secrets "github.com/keyward/secrets"
	_ "github.com/keyward/secrets/all"
	"github.com/keyward/secrets/secretstest"
)

// Issue 11: a backend URL with an unknown parameter or a bad value fails at
// OpenConfig, naming the configuration line and the parameter, not at the
// first resolve; a scheme the host serves itself is checked too.
func TestOpenConfigValidatesEveryBackendURL(t *testing.T) {
	own := map[string]secrets.KeyResolver{"db": new(secretstest.Fake)}
	for _, tc := range []struct {
		config string
		own    bool // the host serves "db" itself
		want   string
	}{
		{"keys = fernet://?bogus=1", false, `unknown parameter "bogus"`},
		{"keys = fernet://?plaintext=maybe", false, `plaintext= takes "allow"`},
		{"keys = fernet://somehost", false, "DATABASE_URL"},
		{"keys = env://?bogus=1", false, `unknown parameter "bogus"`},
		{"keys = env://?allow=[", false, "pattern"},
		{"keys = env://?allow=%zz", false, "query is malformed"},
		{"keys = vault://?auth=bogus", false, "unknown auth method"},
		{"keys = awssm://?regoin=eu-west-1", false, `unknown parameter "regoin"`},
		{"keys = azurekv://myvault.vault.azure.net?bogus=1", false, `unknown parameter "bogus"`},
		{"db = fernet://?bogus=1", true, `unknown parameter "bogus"`},
	} {
		c, err := secrets.ParseConfig(tc.config)
		if err != nil {
			t.Fatalf("ParseConfig(%q): %v", tc.config, err)
		}
		opts := &secrets.StackOptions{}
		if tc.own {
			opts.Backends = own
		}
		st, err := secrets.OpenConfig(context.Background(), c, opts)
		if err == nil {
			st.Close()
			t.Errorf("OpenConfig(%q) succeeded; want an error at open time", tc.config)
			continue
		}
		name, _, _ := strings.Cut(tc.config, " ")
		if !errors.Is(err, secrets.ErrInvalidRef) || !strings.Contains(err.Error(), tc.want) ||
			!strings.Contains(err.Error(), `"`+name+`"`) {
			t.Errorf("OpenConfig(%q) = %v; want ErrInvalidRef naming %q and saying %q", tc.config, err, name, tc.want)
		}
	}
}

// Validating every URL at OpenConfig does no I/O: a database that does not
// exist and a Vault that does not answer are found by the first resolve.
func TestOpenConfigDoesNoIO(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("DATABASE_URL", "sqlite:"+filepath.Join(dir, "no", "such", "dir", "keys.db"))
	t.Setenv("ENCRYPTION_KEY", "")
	t.Setenv("VAULT_ADDR", "http://127.0.0.1:1")
	t.Setenv("VAULT_TOKEN", "t")
	c, err := secrets.ParseConfig("db = fernet://?table=api_keys\nvault = vault://?mount=secret")
	if err != nil {
		t.Fatal(err)
	}
	st, err := secrets.OpenConfig(context.Background(), c, nil)
	if err != nil {
		t.Fatalf("OpenConfig: %v", err)
	}
	defer st.Close()
	if _, err := os.Stat(filepath.Join(dir, "no")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("OpenConfig touched the database's directory: %v", err)
	}
	if _, err := st.Resolve(context.Background(), "db:1"); err == nil {
		t.Error("db:1 resolved without ENCRYPTION_KEY")
	}
}

// The default configuration names azurekv:// bare, whose opener needs
// AZURE_KEYVAULT_URL: a host that never uses Azure must still open it, and
// an azurekv: ref says what to set.
func TestDefaultConfigOpensWithoutEveryBackendsEnvironment(t *testing.T) {
	t.Setenv("AZURE_KEYVAULT_URL", "")
	t.Setenv("KW_STACK_TEST_KEY", "sk-stack-test-1")
	st, err := secrets.OpenConfig(context.Background(), secrets.DefaultConfig(), &secrets.StackOptions{
		Auditor: secrets.AuditFunc(func(context.Context, secrets.AuditEvent) {}),
	})
	if err != nil {
		t.Fatalf("OpenConfig(DefaultConfig()): %v", err)
	}
	defer st.Close()
	if s, err := st.Resolve(context.Background(), "env:KW_STACK_TEST_KEY"); err != nil || s.Reveal() != "sk-stack-test-1" {
		t.Fatalf("env: %v", err)
	}
	_, err = st.Resolve(context.Background(), "azurekv:name")
	if !errors.Is(err, secrets.ErrInvalidRef) || !strings.Contains(err.Error(), "AZURE_KEYVAULT_URL") {
		t.Errorf("azurekv: without a vault: %v; want ErrInvalidRef naming AZURE_KEYVAULT_URL", err)
	}
}

// Issue 11: the configuration is read through a getenv-style lookup, so a
// CLI or a service with its own environment needs no copy of the rules.
func TestConfigFromLookup(t *testing.T) {
	// The process environment says otherwise: only the lookup counts.
	t.Setenv(secrets.ConfigEnv, "bogus")
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }

	env[secrets.ConfigEnv] = "env = env://?allow=A_*"
	c, err := secrets.ConfigFromLookup(getenv)
	if err != nil || c.Backends["env"] != "env://?allow=A_*" {
		t.Fatalf("KEYWARD_CONFIG through the lookup: %+v %v", c, err)
	}
	file := filepath.Join(t.TempDir(), "keyward.conf")
	if err := os.WriteFile(file, []byte("files = env://?allow=B_*\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env[secrets.ConfigFileEnv] = file
	if _, err := secrets.ConfigFromLookup(getenv); !errors.Is(err, secrets.ErrInvalidRef) || !strings.Contains(err.Error(), "both set") {
		t.Fatalf("both set: %v", err)
	}
	delete(env, secrets.ConfigEnv)
	if c, err := secrets.ConfigFromLookup(getenv); err != nil || c.Backends["files"] == "" {
		t.Fatalf("KEYWARD_CONFIG_FILE through the lookup: %+v %v", c, err)
	}
	delete(env, secrets.ConfigFileEnv)
	if c, err := secrets.ConfigFromLookup(getenv); err != nil || !c.Audit || c.Backends["env"] != "env://" {
		t.Fatalf("neither set: %+v %v", c, err)
	}
}

// OpenFromEnv takes the lookup too (StackOptions.Getenv), so a host with
// its own environment can use it.
func TestOpenFromEnvLookup(t *testing.T) {
	t.Setenv(secrets.ConfigEnv, "")
	t.Setenv(secrets.ConfigFileEnv, "")
	t.Setenv("KW_LOOKUP_TEST", "sk-lookup-1")
	env := map[string]string{secrets.ConfigEnv: "mine = env://?allow=KW_LOOKUP_*"}
	st, err := secrets.OpenFromEnv(context.Background(), &secrets.StackOptions{Getenv: func(k string) string { return env[k] }})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if s, err := st.Resolve(context.Background(), "mine:KW_LOOKUP_TEST"); err != nil || s.Reveal() != "sk-lookup-1" {
		t.Fatalf("mine:KW_LOOKUP_TEST: %v", err)
	}
	env[secrets.ConfigEnv] = "mine = env://?bogus=1"
	if _, err := secrets.OpenFromEnv(context.Background(), &secrets.StackOptions{Getenv: func(k string) string { return env[k] }}); !errors.Is(err, secrets.ErrInvalidRef) {
		t.Fatalf("a bad URL through OpenFromEnv: %v", err)
	}
}
