package envstore_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/envstore"
	"github.com/keyward/secrets/secretstest"
)

// mapEnv is an injected environment, safe for concurrent use.
type mapEnv struct {
	mu sync.Mutex
	m  map[string]string
}

func (e *mapEnv) set(k, v string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.m == nil {
		e.m = map[string]string{}
	}
	e.m[k] = v
}

func (e *mapEnv) lookup(k string) (string, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	v, ok := e.m[k]
	return v, ok
}

func TestConformance(t *testing.T) {
	secretstest.RunConformance(t, secretstest.Harness{
		New: func(t *testing.T) secretstest.Subject {
			env := new(mapEnv)
			s := envstore.New(&envstore.Options{Lookup: env.lookup})
			t.Cleanup(func() { s.Close() })
			return secretstest.Subject{Resolver: s, Put: func(t *testing.T, name, value string, _ time.Time) (string, error) {
				env.set(name, value)
				return name, nil
			}}
		},
		Backend:     envstore.Backend,
		MissingRef:  "KWCONF_NOT_SET",
		InvalidRefs: []string{"1ABC", "A-B", "A B", "A/B", "A?x=1", "A#", "%zz"},
		Documents:   true,
	})
}

func TestConformanceProcessEnv(t *testing.T) {
	secretstest.RunConformance(t, secretstest.Harness{
		New: func(t *testing.T) secretstest.Subject {
			s := envstore.New(nil)
			t.Cleanup(func() { s.Close() })
			return secretstest.Subject{Resolver: s, Put: func(t *testing.T, name, value string, _ time.Time) (string, error) {
				t.Setenv(name, value) // also forbids t.Parallel, which os env needs
				return name, nil
			}}
		},
		Backend:    envstore.Backend,
		MissingRef: "KWCONF_NOT_SET_IN_PROCESS",
		Documents:  true,
	})
}

func TestUnsetAndEmptyDiffer(t *testing.T) {
	t.Setenv("KW_EMPTY", "")
	s := envstore.New(nil)
	got, err := s.Resolve(context.Background(), "KW_EMPTY")
	if err != nil || got.Reveal() != "" {
		t.Fatalf("set but empty: got (%d bytes, %v), want an empty value", got.Len(), err)
	}
	os.Unsetenv("KW_UNSET_FOR_SURE")
	_, err = s.Resolve(context.Background(), "KW_UNSET_FOR_SURE")
	if !errors.Is(err, secrets.ErrNotFound) {
		t.Fatalf("unset: got %v, want ErrNotFound", err)
	}
	for _, want := range []string{"KW_UNSET_FOR_SURE", "is not set", "set it in"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the not-found message %q lacks %q", err, want)
		}
	}
}

func TestPolicy(t *testing.T) {
	env := map[string]string{
		"ANTHROPIC_API_KEY":       "sk-ant-policy-1",
		"OPENAI_API_KEY":          "sk-openai-policy-2",
		"ENCRYPTION_KEY":          "master-key-value-3",
		"ENCRYPTION_KEY_PREVIOUS": "old-master-key-4",
		"AWS_SECRET_ACCESS_KEY":   "aws-secret-5",
		"VAULT_TOKEN":             "hvs.vault-6",
		"DATABASE_URL":            "postgres://u:pw-7@h/db",
		"INTERNAL_ADMIN_KEY":      "internal-8",
		"encryption_key":          "lower-master-9",
		"PGPASSWORD":              "pg-password-10",
		"VAULT_ROLE_ID":           "role-id-11",
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	ctx := context.Background()

	tests := []struct {
		name string
		opts envstore.Options
		ref  string
		want error
	}{
		{"default allows ordinary names", envstore.Options{}, "ANTHROPIC_API_KEY", nil},
		{"default denies the master key", envstore.Options{}, "ENCRYPTION_KEY", secrets.ErrPermission},
		{"default denies previous master keys", envstore.Options{}, "ENCRYPTION_KEY_PREVIOUS", secrets.ErrPermission},
		{"default denies AWS secret", envstore.Options{}, "AWS_SECRET_ACCESS_KEY", secrets.ErrPermission},
		{"default denies Vault token", envstore.Options{}, "VAULT_TOKEN", secrets.ErrPermission},
		{"default denies DATABASE_URL", envstore.Options{}, "DATABASE_URL", secrets.ErrPermission},
		{"allow list admits", envstore.Options{Allow: []string{"ANTHROPIC_*", "OPENAI_*"}}, "OPENAI_API_KEY", nil},
		{"allow list refuses others", envstore.Options{Allow: []string{"ANTHROPIC_*"}}, "INTERNAL_ADMIN_KEY", secrets.ErrPermission},
		{"deny beats allow", envstore.Options{Allow: []string{"*"}, Deny: []string{"INTERNAL_*"}}, "INTERNAL_ADMIN_KEY", secrets.ErrPermission},
		{"allow * does not lift the default deny", envstore.Options{Allow: []string{"*"}}, "VAULT_TOKEN", secrets.ErrPermission},
		{"deny ignores case", envstore.Options{}, "encryption_key", secrets.ErrPermission},
		{"deny ignores case in patterns", envstore.Options{Deny: []string{"internal_*"}}, "INTERNAL_ADMIN_KEY", secrets.ErrPermission},
		{"default denies PGPASSWORD", envstore.Options{}, "PGPASSWORD", secrets.ErrPermission},
		{"default denies VAULT_ROLE_ID", envstore.Options{}, "VAULT_ROLE_ID", secrets.ErrPermission},
		{"replacing the default deny", envstore.Options{ReplaceDefaultDeny: true, Deny: []string{"INTERNAL_*"}}, "VAULT_TOKEN", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := tt.opts
			o.Lookup = lookup
			s, err := envstore.New(&o).Resolve(ctx, tt.ref)
			if tt.want == nil {
				if err != nil || s.Reveal() != env[tt.ref] {
					t.Fatalf("Resolve(%q) = (%d bytes, %v), want the value", tt.ref, s.Len(), err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Resolve(%q) error = %v, want %v", tt.ref, err, tt.want)
			}
			if env[tt.ref] == "" {
				t.Fatalf("test bug: no value for %q to search the error for", tt.ref)
			}
			if strings.Contains(err.Error(), env[tt.ref]) {
				t.Fatalf("the error holds the denied variable's value")
			}
		})
	}
}

func TestDotEnv(t *testing.T) {
	dir := t.TempDir()
	first := filepath.Join(dir, "first.env")
	second := filepath.Join(dir, "second.env")
	os.WriteFile(first, []byte("# a comment\nBOT_KEY=sk-from-first\nexport QUOTED=\"sk quoted # not a comment\"\n"), 0o600)
	os.WriteFile(second, []byte("BOT_KEY=sk-from-second\nONLY_SECOND='sk-second'\n"), 0o600)
	env := map[string]string{"FROM_ENV": "sk-env-wins"}
	s := envstore.New(&envstore.Options{
		Lookup: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
		DotEnv: []string{first, second},
	})
	for ref, want := range map[string]string{
		"BOT_KEY": "sk-from-first", "QUOTED": "sk quoted # not a comment", "ONLY_SECOND": "sk-second", "FROM_ENV": "sk-env-wins",
	} {
		got, err := s.Resolve(context.Background(), ref)
		if err != nil || got.Reveal() != want {
			t.Errorf("Resolve(%q) = (%d bytes, %v), want the %d-byte value", ref, got.Len(), err, len(want))
		}
	}
	env["BOT_KEY"] = "sk-env-over-file"
	if got, _ := s.Resolve(context.Background(), "BOT_KEY"); got.Reveal() != "sk-env-over-file" {
		t.Error("a variable in the environment must win over the .env file")
	}
}

func TestDotEnvErrorsHoldNoValue(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.env")
	const value = "sk-ant-dotenv-leak-7f3a9c"
	// An unterminated quote makes godotenv quote the rest of the file in its error.
	os.WriteFile(bad, []byte("GOOD=1\nBROKEN=\""+value+"\nNEXT=2\n"), 0o600)
	s := envstore.New(&envstore.Options{Lookup: func(string) (string, bool) { return "", false }, DotEnv: []string{bad}})
	_, err := s.Resolve(context.Background(), "GOOD")
	if !errors.Is(err, secrets.ErrUnavailable) {
		t.Fatalf("got %v, want ErrUnavailable for an unparsable .env file", err)
	}
	if strings.Contains(err.Error(), value) || strings.Contains(err.Error(), "sk-ant") {
		t.Fatalf("the .env parse error holds the value: %v", err)
	}
	if !strings.Contains(err.Error(), bad) {
		t.Errorf("the error %q should name the file", err)
	}
	if err := s.Ping(context.Background()); !errors.Is(err, secrets.ErrUnavailable) {
		t.Errorf("Ping = %v, want ErrUnavailable", err)
	}

	_, err = envstore.New(&envstore.Options{DotEnv: []string{filepath.Join(dir, "missing.env")}}).Resolve(context.Background(), "KW_SURELY_UNSET_X")
	if !errors.Is(err, secrets.ErrUnavailable) || !strings.Contains(err.Error(), "missing.env") {
		t.Fatalf("a missing .env file: got %v", err)
	}
}

func TestOpenURL(t *testing.T) {
	ctx := context.Background()
	t.Setenv("ANTHROPIC_API_KEY", "sk-ant-url-1")
	t.Setenv("OTHER_KEY", "sk-other-2")
	r, err := secrets.Open(ctx, "env://?allow=ANTHROPIC_*")
	if err != nil {
		t.Fatal(err)
	}
	if s, err := r.Resolve(ctx, "ANTHROPIC_API_KEY"); err != nil || s.Reveal() != "sk-ant-url-1" {
		t.Fatalf("allowed name: %v", err)
	}
	if _, err := r.Resolve(ctx, "OTHER_KEY"); !errors.Is(err, secrets.ErrPermission) {
		t.Fatalf("name outside the allow list: got %v, want ErrPermission", err)
	}
	for _, bad := range []string{"env://?alow=X", "env://host", "env://?allow=[", "env://?allow=A&allow=B"} {
		if _, err := secrets.Open(ctx, bad); !errors.Is(err, secrets.ErrInvalidRef) {
			t.Errorf("Open(%q) = %v, want ErrInvalidRef", bad, err)
		}
	}
}
